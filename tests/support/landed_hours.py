"""One org's hour ready to plan, for tests that call the hourly steps one by one
(tests/dags/test_ledger.py, test_plan_basis.py): the CRM mirrored from the emulator, a
generated day landed, and the hour extracted."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from activity_sync import lake
from activity_sync.mirror import read_mirror
from activity_sync.salesforce import SalesforceClient
from activity_sync.steps import step_extract, step_refresh_crm
from activity_sync.tenants import Org
from demo_data.generate import generate_day, write_landing


def landed_hour(emulator, root: Path, start: datetime, sends: int) -> tuple[Org, SalesforceClient]:
    """Org ``acme`` on ``emulator`` with the hour from ``start`` extracted into ``root``."""
    org = Org.from_dict({"org_id": "acme", "salesforce_conn_id": "unused"})
    client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.02)
    step_refresh_crm(org, client, root)
    crm = read_mirror(lake.crm_folder(root, "acme"))
    events = generate_day(crm, org_id="acme", day=start.date(), sends=sends)
    write_landing(events, root / org.landing, "acme")
    assert step_extract(org, root, start, start + timedelta(hours=1))["events"] > 0
    return org, client
