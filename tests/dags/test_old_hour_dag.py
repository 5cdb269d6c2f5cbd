"""A 400-day-old hour through the real hourly DAG, twice, then the real audit DAG (R11).

Salesforce archives closed Tasks whose ActivityDate is 365 days old: ``query`` leaves them
out, ``queryAll`` returns them ("Archived Activities":
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_guidelines_archive.htm).
So the second run's upserts cannot match the Tasks the first one made (the emulator's
harsher, undocumented choice: DUPLICATE_VALUE naming the archived Task), and the audit
must find them with queryAll. The emulator's clock is the real date here, so the hour is
400 days before Salesforce's "today" as well as before Airflow's now.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import hourly_deployment
import pandas as pd
import pytest
from hourly_deployment import ORG
from salesforce_state import assert_salesforce_holds_exactly

from activity_sync import lake
from demo_data.generate import generate_day

OLD_HOUR = (datetime.now(UTC) - timedelta(days=400)).replace(
    hour=14, minute=0, second=0, microsecond=0
)
OLD_DAY: date = OLD_HOUR.date()


class OldDeployment(hourly_deployment.Deployment):
    """The shared deployment, its landed day and hour 400 days back."""

    def day_events(self, crm, sends: int) -> pd.DataFrame:
        return generate_day(crm, org_id=ORG, day=OLD_DAY, sends=sends)

    def part(self, area: str) -> Path:
        return lake.partition(self.lake, area, ORG, OLD_HOUR)


@pytest.fixture
def deployment(tmp_path, fresh_emulator, monkeypatch, airflow_db) -> OldDeployment:
    d = OldDeployment(tmp_path, fresh_emulator, monkeypatch)
    d.land_day(sends=60)
    return d


def test_r11_a_400_day_old_hour_run_twice_through_the_dag_holds_each_task_once_and_reconciles(
    hourly_dag, audit_dag, deployment
):
    conf = {"dry_run": False}
    first = hourly_dag.test(logical_date=OLD_HOUR + timedelta(hours=1), run_conf=conf)
    assert first.state == "success"
    plan = deployment.plan()
    assert len(plan.tasks) > 10
    assert deployment.salesforce_tasks().empty, "the old hour's Tasks were not archived"
    second = hourly_dag.test(logical_date=OLD_HOUR + timedelta(hours=1, minutes=1), run_conf=conf)
    assert second.state == "success"
    assert_salesforce_holds_exactly(deployment.client, [plan], archived=True)
    summary = deployment.load_summary()
    assert (summary["tasks_created"], summary["relations_inserted"]) == (0, 0)
    assert summary["dead_letter"] == 0

    day = OLD_DAY.isoformat()
    audit_conf = {"day": day, "orgs": [ORG], "reconcile": True, "fail_on_alert": False}
    audit = audit_dag.test(logical_date=datetime.now(UTC), run_conf=audit_conf)
    assert audit.state == "success"
    document = json.loads(
        (lake.audit_folder(deployment.lake, ORG, day) / lake.AUDIT_DOCUMENT).read_text()
    )
    reconciliation = document["reconciliation"]
    assert reconciliation["status"] == "ok", reconciliation.get("summary")
    assert reconciliation["tasks_found"] == reconciliation["tasks_expected"] == len(plan.tasks)
