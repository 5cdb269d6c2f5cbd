"""audit_steps.py: the audit DAG's steps on a hand-written day: its targets, the audit of
an (org, day) with and without Salesforce, the lake upkeep that follows it, and alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from audit_days import DAY, ORG, sample_day
from deltalake import DeltaTable

from activity_sync import lake, ledger
from activity_sync.audit import AuditTargetError
from activity_sync.audit_steps import step_audit, step_raise_alerts, step_targets
from activity_sync.salesforce import SalesforceClient
from activity_sync.tenants import Org


def _orgs(*org_ids: str) -> list[Org]:
    return [Org.from_dict({"org_id": o, "salesforce_conn_id": f"salesforce_{o}"}) for o in org_ids]


def test_an_audit_run_targets_the_chosen_orgs_for_the_day_param(tmp_path):
    for org_id in ("a", "b"):
        sample_day(tmp_path, day="2026-10-01", org_id=org_id)
    targets = step_targets(_orgs("a", "b"), {"day": "2026-10-01"}, [], None, None, tmp_path)
    assert targets == [{"org_id": "a", "day": "2026-10-01"}, {"org_id": "b", "day": "2026-10-01"}]


class _NoSalesforceHere(Exception):
    """Raised where a client would be opened: these tests have no Salesforce."""


class _ClientFactory:
    """Stands in for ``airflow_adapter.salesforce_client``: records which connections opened."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, conn_id: str) -> SalesforceClient:
        self.opened.append(conn_id)
        raise _NoSalesforceHere(conn_id)


def test_the_audit_step_opens_no_salesforce_client_without_reconciliation(tmp_path):
    sample_day(tmp_path)
    clients = _ClientFactory()
    orgs = {o.org_id: o for o in _orgs(ORG)}
    result = step_audit(orgs, {"org_id": ORG, "day": DAY}, tmp_path, {"reconcile": False}, clients)
    assert clients.opened == []
    assert (result["org_id"], result["day"], result["headline"]["tasks"]) == (ORG, DAY, 7)
    assert [a["kind"] for a in result["alerts"]] == ["coverage", "fallback"]
    assert (lake.audit_folder(tmp_path, ORG, DAY) / lake.AUDIT_REPORT).exists()


def test_the_audit_step_ends_with_the_org_s_lake_upkeep(tmp_path):
    sample_day(tmp_path)
    start = datetime(2026, 11, 26, 9, tzinfo=UTC)
    for hour in range(3):
        at = start + timedelta(hours=hour)
        rows = ledger.ledger_rows(
            at,
            [f"e{hour}"],
            pd.DataFrame(columns=["object", "event_id", "task_key"]),
            pd.DataFrame(columns=["task_key", "RelationId"]),
        )
        ledger.record_hour(tmp_path, ORG, at, rows)
    orgs = {o.org_id: o for o in _orgs(ORG)}
    step_audit(orgs, {"org_id": ORG, "day": DAY}, tmp_path, {"reconcile": False}, _ClientFactory())
    log_folder = lake.ledger_folder(tmp_path, ORG) / "_delta_log"
    assert (log_folder / "_last_checkpoint").exists()
    live = DeltaTable(str(lake.ledger_folder(tmp_path, ORG))).file_uris()
    assert len(live) == 1  # the three hours' files compacted


def test_the_audit_step_opens_the_orgs_connection_through_the_given_factory(tmp_path):
    sample_day(tmp_path)
    clients = _ClientFactory()
    orgs = {o.org_id: o for o in _orgs(ORG)}
    with pytest.raises(_NoSalesforceHere):
        step_audit(orgs, {"org_id": ORG, "day": DAY}, tmp_path, {}, clients)
    assert clients.opened == [f"salesforce_{ORG}"]


def test_the_audit_step_refuses_an_org_missing_from_the_config(tmp_path):
    with pytest.raises(AuditTargetError, match="not in the orgs config"):
        step_audit({}, {"org_id": "x", "day": DAY}, tmp_path, {}, _ClientFactory())


def test_alerts_are_sent_once_and_failed_audits_are_skipped(tmp_path, monkeypatch):
    sample_day(tmp_path)
    monkeypatch.delenv("ACTIVITY_SYNC_ALERT_CALLBACK", raising=False)
    orgs = {o.org_id: o for o in _orgs(ORG)}
    result = step_audit(
        orgs, {"org_id": ORG, "day": DAY}, tmp_path, {"reconcile": False}, _ClientFactory()
    )
    assert step_raise_alerts([result, None], tmp_path, {}) == 2  # coverage and fallback
    assert step_raise_alerts([result], tmp_path, {}) == 0
