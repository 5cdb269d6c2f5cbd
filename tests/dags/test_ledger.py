"""ledger.py: what the loads wrote, per event, as a Delta table in the lake (issue 10,
item 6); and converge.already_synced: an event an earlier hour loaded is not planned again
(item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from landed_hours import landed_hour
from salesforce_state import EXT, salesforce_relations, salesforce_tasks

from activity_sync import lake, ledger
from activity_sync.plan import read_plan
from activity_sync.steps import step_detect, step_load, step_plan

H14 = datetime(2026, 11, 26, 14, tzinfo=UTC)
H17 = H14 + timedelta(hours=3)


def _tasks(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [e for e, _ in rows],
            "task_key": [k for _, k in rows],
            "task_id": [f"00T{k}" for _, k in rows],
            "who_id": "003a",
            "what_id": None,
            "state": ledger.TaskState.LOADED.value,
        }
    )


def _relations(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"task_key": [k for k, _ in pairs], "RelationId": [r for _, r in pairs]})


def test_each_hour_s_rows_replace_only_that_hour_and_the_latest_load_of_an_event_wins(tmp_path):
    ledger.record_hour(
        tmp_path,
        "acme",
        H14,
        ledger.ledger_rows(
            H14,
            ["e1", "e2", "e3"],
            _tasks(("e1", "k1"), ("e2", "k2")),
            _relations(("k1", "003a"), ("k1", "003b")),
            now=H14 + timedelta(hours=1),
        ),
    )
    # e2 delivered again at 17:00 and re-planned there: its rows of 17:00 are what holds.
    ledger.record_hour(
        tmp_path,
        "acme",
        H17,
        ledger.ledger_rows(H17, ["e2"], _tasks(("e2", "k2b")), _relations(), H17),
    )
    rows = ledger.current(tmp_path, "acme", ["e1", "e2", "e3", "e9"]).set_index("event_id")
    assert sorted(rows.index) == ["e1", "e2", "e3"]
    assert rows.loc["e1", "relation_ids"].tolist() == ["003a", "003b"]
    assert rows.loc["e2", "task_key"] == "k2b" and rows.loc["e2", "hour"] == "2026-11-26T17"
    assert pd.isna(rows.loc["e3", "task_key"])  # planned, no Task: synced all the same
    assert rows.loc["e2", "relation_ids"] is None
    # A re-run of 14:00 replaces its own rows and leaves 17:00's.
    ledger.record_hour(
        tmp_path, "acme", H14, ledger.ledger_rows(H14, ["e1"], _tasks(("e1", "k1")), _relations())
    )
    assert set(ledger.current(tmp_path, "acme", ["e1", "e2", "e3"])["event_id"]) == {"e1", "e2"}


def test_the_probe_finds_every_wanted_event_sharing_a_first_hash_and_no_row_whose_second_differs():
    # Two wanted events share a first hash (as two ids might): a row stands for the one
    # whose second hash it has, never for both.
    wanted = pd.DataFrame({"event_hash": [5, 5, 7], "event_hash2": [1, 2, 3]})
    probe = ledger._Probe(wanted)
    rows, at = probe(np.array([5, 5, 7, 7, 9, -5]), np.array([2, 1, 3, 4, 1, 1]))
    assert sorted(zip(rows.tolist(), at.tolist(), strict=True)) == [(0, 1), (1, 0), (2, 2)]


def test_an_id_asked_for_twice_is_found_and_an_unknown_one_is_not(tmp_path):
    ledger.record_hour(
        tmp_path,
        "acme",
        H14,
        ledger.ledger_rows(H14, ["e1", "e2"], _tasks(("e1", "k1")), _relations(), H14),
    )
    owners = ledger.owners(tmp_path, "acme", pd.Series(["e1", "e1", "e2", "e9"]))
    assert owners.to_dict() == {"e1": "2026-11-26T14", "e2": "2026-11-26T14"}


def test_an_org_without_a_ledger_has_no_rows(tmp_path):
    assert ledger.current(tmp_path, "acme", ["e1"]).empty


@pytest.fixture
def hour(fresh_emulator, tmp_path):
    org, client = landed_hour(fresh_emulator, tmp_path, H14, sends=30)
    return org, client, tmp_path


def test_a_load_records_every_task_s_salesforce_id_and_relations_in_the_ledger(hour):
    org, client, root = hour
    step_plan(org, root, H14, step_detect(org, client))
    step_load(org, client, root, H14)
    plan = read_plan(lake.partition(root, lake.PLAN, "acme", H14))
    rows = ledger.current(root, "acme", plan.tasks["event_id"]).dropna(subset=["task_key"])
    held = salesforce_tasks(client).set_index(EXT)
    assert len(rows) == len(plan.tasks) == len(held)
    assert (rows.set_index("task_key")["task_id"] == held.loc[rows["task_key"], "Id"]).all()
    in_sf = salesforce_relations(client).groupby("TaskId")["RelationId"].agg(set)
    recorded = rows.set_index("task_id")["relation_ids"].map(set)
    assert recorded.sort_index().to_dict() == in_sf.sort_index().to_dict()


def test_an_event_delivered_again_in_a_later_hour_is_already_synced_unless_replanned(hour):
    org, client, root = hour
    caps = step_detect(org, client)
    step_plan(org, root, H14, caps)
    step_load(org, client, root, H14)
    # The same events arrive again at 17:00 (an at-least-once feed).
    events = lake.partition(root, lake.EVENTS, "acme", H14)
    again = lake.partition(root, lake.EVENTS, "acme", H17)
    again.mkdir(parents=True)
    for name in (lake.EVENTS_FILE, lake.MALFORMED_FILE):
        (again / name).write_bytes((events / name).read_bytes())
    planned = step_plan(org, root, H17, caps)
    plan = read_plan(lake.partition(root, lake.PLAN, "acme", H17))
    total = pd.read_parquet(events / lake.EVENTS_FILE)["event_id"].nunique()
    assert planned["already_synced"] == total and planned["tasks"] == 0
    assert plan.rejected["reason"].eq("already_synced").sum() == total
    assert step_plan(org, root, H17, caps, replan=True)["already_synced"] == 0
