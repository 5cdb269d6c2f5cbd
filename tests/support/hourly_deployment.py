"""One org's deployment for tests that run the hourly DAG with ``dag.test()``: its lake,
orgs file and Salesforce connection (the emulator), and the means to inspect both.

Used by tests/dags/test_replan_dag.py and, with the hour's meetings landed too, by
tests/dags/test_sync_dag.py.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from salesforce_state import (
    assert_salesforce_holds_exactly,
    salesforce_relations,
    salesforce_tasks,
)

from activity_sync import lake
from activity_sync.crm import read_crm
from activity_sync.mirror import refresh_crm
from activity_sync.plan import read_plan
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import Plan
from demo_data.generate import generate_day, write_landing

ORG = "acme"
DAY = date(2026, 11, 26)
HOUR = datetime(2026, 11, 26, 14, tzinfo=UTC)


class Deployment:
    """One org's lake and connection, the emulator behind it, and the means to inspect both."""

    def __init__(self, tmp_path: Path, emulator, monkeypatch) -> None:
        self.emulator = emulator
        self.lake = tmp_path / "lake"
        orgs = tmp_path / "orgs.yaml"
        orgs.write_text(
            f"version: 1\norgs:\n  - org_id: {ORG}\n    salesforce_conn_id: salesforce_{ORG}\n"
            "    settings: {exclusions: [competitor.com]}\n"
        )
        monkeypatch.setenv("ACTIVITY_SYNC_LAKE", str(self.lake))
        monkeypatch.setenv("ACTIVITY_SYNC_ORGS", str(orgs))
        # The emulator answers at once: no need for production's polling and backoff pace.
        monkeypatch.setenv("ACTIVITY_SYNC_BULK_POLL_SECONDS", "0.05")
        monkeypatch.setenv("ACTIVITY_SYNC_RETRY_BACKOFF_SECONDS", "0.05")
        monkeypatch.setenv(
            f"AIRFLOW_CONN_SALESFORCE_{ORG.upper()}", json.dumps(emulator.airflow_connection())
        )
        self.client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.05, backoff=0.05)

    def land_day(self, sends: int = 120) -> None:
        crm_dir = lake.crm_folder(self.lake, ORG)
        refresh_crm(self.client, crm_dir)
        write_landing(self.day_events(read_crm(crm_dir), sends), self.lake / "landing", ORG)

    def day_events(self, crm, sends: int) -> pd.DataFrame:
        """The generated day of email activity that ``land_day`` lands."""
        return generate_day(crm, org_id=ORG, day=DAY, sends=sends)

    def part(self, area: str) -> Path:
        return lake.partition(self.lake, area, ORG, HOUR)

    def plan(self) -> Plan:
        return read_plan(self.part(lake.PLAN))

    def salesforce_tasks(self) -> pd.DataFrame:
        return salesforce_tasks(self.client)

    def salesforce_relations(self) -> pd.DataFrame:
        return salesforce_relations(self.client)

    def assert_salesforce_holds_exactly_the_plan(self) -> None:
        assert_salesforce_holds_exactly(self.client, [self.plan()])

    def load_summary(self) -> dict:
        return json.loads((self.part(lake.LOADED) / lake.LOAD_SUMMARY).read_text())
