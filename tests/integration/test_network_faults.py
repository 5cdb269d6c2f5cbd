"""Nothing hangs, nothing is lost: an hour's load through a proxy that breaks an answer at
every step (issue 12, items 7 and 8).

The org's Airflow connection points at ``faulty_proxy.FaultyProxy`` in front of the local
Salesforce, with short timeouts. The hour runs as the DAG runs it (CRM mirror, extract,
detect, plan, API budget, load), then loads again as a retried task would. The proxy breaks
the first answer of every step — after Salesforce has done the work — by stalling it past
the read timeout, or by cutting its body mid-way, framed by Content-Length or chunked.

Salesforce must end up holding every planned Task and TaskRelation exactly once, and each
stalled answer must have been given up within the read timeout. Salesforce documents no
"answer lost in transit" behaviour; the proxy takes the harshest reading: the work is done
and only the answer is lost. (Timeouts in requests:
https://requests.readthedocs.io/en/latest/user/advanced/#timeouts)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from faulty_proxy import Fault, FaultyProxy, Framing
from salesforce_state import assert_salesforce_holds_exactly

from activity_sync import lake
from activity_sync.airflow_adapter import salesforce_client
from activity_sync.mirror import read_mirror
from activity_sync.plan import read_plan
from activity_sync.salesforce import SalesforceClient
from activity_sync.steps import (
    step_budget,
    step_detect,
    step_extract,
    step_load,
    step_plan,
    step_refresh_crm,
)
from activity_sync.tenants import Org
from demo_data.generate import generate_day, write_landing

CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 0.6
# A stalled answer must be given up within the read timeout, plus scheduling slack on a
# busy two-core machine; without a timeout the client would wait the proxy's stall_max.
HANG_UP_SLACK = 1.5
START = datetime(2026, 11, 26, 14, tzinfo=UTC)
CONN_ID = "sf_proxied"


def _expected_steps() -> set[str]:
    """Every step of an hour's load, as ``faulty_proxy.step_of`` names them."""
    steps = {"login", "create query job", "poll query job", "results of query job"}
    steps |= {"describe Task", "limits", "query TaskRelation"}
    for obj in ("Task", "TaskRelation"):
        steps |= {
            f"create {obj} job",
            f"upload {obj}",
            f"close {obj} job",
            f"poll {obj} job",
            f"successfulResults {obj}",
            f"failedResults {obj}",
        }
    return steps


def _run_hour(org: Org, root) -> tuple[dict, dict]:
    """The hourly DAG's steps for one org, then the load again (a retried task)."""
    client = salesforce_client(CONN_ID)
    step_refresh_crm(org, client, root)
    events = generate_day(
        read_mirror(lake.crm_folder(root, org.org_id)),
        org_id=org.org_id,
        day=START.date(),
        sends=60,
    )
    write_landing(events, root / org.landing, org.org_id)
    step_extract(org, root, START, START.replace(hour=15))
    step_plan(org, root, START, step_detect(org, client))
    assert not step_budget(org, client)["exhausted"]
    first = step_load(org, client, root, START)
    again = step_load(org, client, root, START)
    return first, again


# The answers with the largest bodies, which a connection is most likely to lose mid-way.
DOWNLOADS = frozenset(
    {
        "results of query job",
        "query TaskRelation",
        *(
            f"{name} {obj}"
            for name in ("successfulResults", "failedResults")
            for obj in ("Task", "TaskRelation")
        ),
    }
)


@pytest.mark.parametrize(
    ("fault", "framing", "steps"),
    [
        pytest.param("stall", "length", None, id="every-answer-withheld"),
        pytest.param("cut", "length", None, id="every-body-cut-content-length"),
        pytest.param("cut", "chunked", None, id="every-body-cut-chunked"),
        pytest.param("stall_body", "chunked", DOWNLOADS, id="downloads-stalled-mid-body"),
    ],
)
def test_a_load_finishes_exactly_when_every_step_has_its_answer_stalled_or_cut(
    fault: Fault, framing: Framing, steps, fresh_emulator, tmp_path, monkeypatch
):
    org = Org.from_dict({"org_id": "acme", "salesforce_conn_id": CONN_ID})
    root = tmp_path / "lake"
    monkeypatch.setenv("ACTIVITY_SYNC_BULK_POLL_SECONDS", "0.05")
    monkeypatch.setenv("ACTIVITY_SYNC_RETRY_BACKOFF_SECONDS", "0.05")
    info = fresh_emulator.info
    with FaultyProxy(info.data_dir, info.port, fault, framing, steps=steps) as proxy:
        connection = fresh_emulator.airflow_connection()
        connection["extra"].update(
            domain=f"{proxy.host_port}/services/oauth2/token#",
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
        started = time.monotonic()
        first, again = _run_hour(org, root)
        took = time.monotonic() - started

    broken = {b.step for b in proxy.broken}
    expected = steps or _expected_steps()
    assert expected <= broken, f"never broken: {expected - broken}; seen: {dict(proxy.seen)}"
    stalls = [b for b in proxy.broken if b.fault != "cut"]
    assert all(
        b.hung_up_after is not None and b.hung_up_after <= READ_TIMEOUT + HANG_UP_SLACK
        for b in stalls
    ), proxy.report()

    plan = read_plan(lake.partition(root, lake.PLAN, org.org_id, START))
    assert (~plan.relations["is_primary"]).sum() > 0, "no TaskRelation to insert: no relation job"
    assert_salesforce_holds_exactly(SalesforceClient(fresh_emulator.simple_salesforce), [plan])
    for summary in (first, again):
        assert summary["tasks_failed"] == summary["relations_failed"] == 0, summary
        assert summary["dead_letter"] == 0, summary
    assert again["tasks_updated"] == len(plan.tasks)
    print(f"{fault}/{framing}: {len(proxy.broken)} answers broken, hour took {took:.1f}s")
