"""plan_basis.py and step_plan: a re-run of an hour plans against what its first run
recorded (the CRM mirror's Delta versions, the settings, the mode); a re-plan against
today's (issue 10, item 1). Real steps, the emulator over HTTPS, a lake on disk."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from landed_hours import landed_hour

from activity_sync import lake
from activity_sync.plan import read_plan
from activity_sync.plan_basis import BasisSource, read_basis
from activity_sync.salesforce import SalesforceClient
from activity_sync.settings import parse_settings
from activity_sync.steps import (
    step_detect,
    step_load,
    step_plan,
    step_refresh_crm,
)

START = datetime(2026, 11, 26, 14, tzinfo=UTC)
END = datetime(2026, 11, 26, 15, tzinfo=UTC)


@pytest.fixture
def hour(fresh_emulator, tmp_path):
    org, client = landed_hour(fresh_emulator, tmp_path, START, sends=40)
    return org, client, tmp_path


def _keys(root) -> set[str]:
    return set(read_plan(lake.partition(root, lake.PLAN, "acme", START)).tasks["task_key"])


def _move_every_contact_s_account(client: SalesforceClient) -> None:
    """Every Contact to the next Account (by Id): every shared Task's WhatId changes."""
    accounts = client.query("SELECT Id FROM Account ORDER BY Id")["Id"].tolist()
    contacts = client.query("SELECT Id, AccountId FROM Contact WHERE AccountId != null")
    nxt = {a: accounts[(i + 1) % len(accounts)] for i, a in enumerate(accounts)}
    moved = client.update_records(
        "Contact", contacts.assign(AccountId=contacts["AccountId"].map(nxt))
    )
    assert moved.failed.empty


def test_a_rerun_plans_against_the_mirror_settings_and_mode_its_first_run_recorded(
    hour, fresh_emulator
):
    org, client, root = hour
    caps = step_detect(org, client)
    first = step_plan(org, root, START, caps, end=END)
    step_load(org, client, root, START)
    pinned = read_basis(root, "acme", START)
    assert first["basis"] == BasisSource.FIRST_RUN and pinned is not None
    assert first["tasks"] > 0
    keys = _keys(root)

    _move_every_contact_s_account(client)
    step_refresh_crm(org, client, root)
    changed = replace(org, settings=parse_settings({"org_id": "acme", "shared_activities": False}))
    again = step_plan(changed, root, START, step_detect(org, client), end=END)

    assert again["basis"] == BasisSource.PINNED
    assert again["tasks"] == first["tasks"] and _keys(root) == keys
    assert read_basis(root, "acme", START) == pinned


def test_a_replan_plans_against_today_s_mirror_and_settings_and_is_pinned_once_loaded(
    hour, fresh_emulator
):
    org, client, root = hour
    caps = step_detect(org, client)
    step_plan(org, root, START, caps, end=END)
    step_load(org, client, root, START)
    keys = _keys(root)

    _move_every_contact_s_account(client)
    step_refresh_crm(org, client, root)
    replanned = step_plan(org, root, START, caps, end=END, replan=True)
    assert replanned["basis"] == BasisSource.REPLAN
    assert _keys(root) != keys  # the WhatIds moved with the Accounts: new keys
    basis = json.loads(
        (lake.partition(root, lake.PLAN, "acme", START) / lake.PLAN_BASIS).read_text()
    )
    assert basis["crm_versions"]["Contact"] == 1
    # Not pinned until loaded: a re-plan that never loaded leaves the first run's record.
    assert read_basis(root, "acme", START).crm_versions["Contact"] == 0


def test_a_dry_run_first_plan_pins_nothing(hour):
    org, client, root = hour
    step_plan(org, root, START, step_detect(org, client), end=END)
    assert read_basis(root, "acme", START) is None
