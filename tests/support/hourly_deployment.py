"""One org's deployment for tests that run the hourly DAG with ``dag.test()``: its lake,
orgs file and Salesforce connection (the emulator), and the means to inspect both.

Used by tests/dags/test_replan_dag.py and tests/dags/test_sync_dag.py, which land the
hour's meetings too (:func:`meetings_at`).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
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
from activity_sync.schema import EVENT_COLUMNS, Plan
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


def meetings_at(crm, hour: datetime) -> pd.DataFrame:
    """Meetings in ``hour`` that R14 makes Salesforce Events: 55 Contacts of the org (an
    Event of 50 and one of 5), 3 Contacts of one Account with one attendee declining, and
    a Lead with a Contact (the Lead's own Event)."""
    contacts = crm.contacts.dropna(subset=["Email", "AccountId"])
    account = contacts.groupby("AccountId")["Email"].apply(list)
    three = next(emails[:3] for emails in account if len(emails) >= 3)
    lead = crm.leads.loc[~crm.leads["IsConverted"].astype(bool), "Email"].dropna().iloc[0]
    sender = crm.users.loc[crm.users["IsActive"].astype(bool), "Email"].iloc[0]

    def meeting(n: int, attendees: list[dict], **fields) -> dict:
        at = hour + timedelta(minutes=10 * n)
        return {
            "event_id": f"{ORG}-meeting-{n}",
            "org_id": ORG,
            "type": "meeting",
            "occurred_at": at.isoformat(),
            "sender": sender,
            "recipients": attendees,
            "subject": f"Review {n}",
            "body": "Agenda",
            "arrived_at": (at + timedelta(minutes=1)).isoformat(),
            **fields,
        }

    rows = [
        meeting(1, [{"email": e, "field": "to"} for e in contacts["Email"].iloc[:55]]),
        meeting(
            2,
            [{"email": three[0], "field": "to"}, {"email": three[1], "field": "to"}]
            + [{"email": three[2], "field": "to", "response": "declined"}],
            starts_at=(hour + timedelta(minutes=30)).isoformat(),
            ends_at=(hour + timedelta(minutes=75)).isoformat(),
            location="Room 4",
        ),
        meeting(3, [{"email": lead, "field": "to"}, {"email": three[0], "field": "to"}]),
    ]
    return pd.DataFrame(rows).reindex(columns=[*EVENT_COLUMNS, "arrived_at"])
