"""Nothing hangs, nothing is lost: an hour's load through a proxy that breaks an answer at
every step (issue 12, items 7 and 8).

The org's Airflow connection points at ``faulty_proxy.FaultyProxy`` in front of the local
Salesforce, with short timeouts. The hour, which holds meetings as well as emails, runs as
the DAG runs it (CRM mirror, extract, detect, plan, API budget, load: Tasks, TaskRelations,
Salesforce Events and EventRelations of R14), then loads again as a retried task would
(reading which relations exist), then is re-planned with settings that drop some Tasks and
turn meetings into Tasks, so that the load deletes Tasks and Events (Bulk API 2.0
``delete`` jobs, issue 10). The proxy breaks the first answer of every step — after
Salesforce has done the work — by stalling it past the read timeout, or by cutting its
body mid-way, framed by Content-Length or chunked. The steps a load has only once per hour
(the deletes, the Event jobs) thus meet each fault in every case, at little cost: every
later answer of a step passes.

Salesforce must end up holding every Task, TaskRelation, Event and EventRelation of the
re-plan exactly once, nothing it dropped, and each stalled answer must have been given up
within the read timeout. Salesforce documents no
"answer lost in transit" behaviour; the proxy takes the harshest reading: the work is done
and only the answer is lost. (Timeouts in requests:
https://requests.readthedocs.io/en/latest/user/advanced/#timeouts)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from event_plans import meeting_lines
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


# Ingest jobs as ``faulty_proxy.step_of`` names them: the load's (R14 adds the Event ones)
# and the re-plan's deletes.
JOBS = ("Task", "TaskRelation", "Event", "EventRelation", "Task delete", "Event delete")
RESULTS = ("successfulResults", "failedResults")
MEETINGS = 2
# Addresses the re-plan excludes: the primaries of this many one-person Tasks.
DROPPED = 3


def _expected_steps() -> set[str]:
    """Every step of an hour's load, re-load and re-plan, as ``step_of`` names them."""
    steps = {"login", "create query job", "poll query job", "results of query job"}
    steps |= {"describe Task", "limits", "query TaskRelation", "query EventRelation"}
    steps |= {"query Task", "query Event"}  # the re-plan's look at what it would delete
    for obj in JOBS:
        steps |= {f"create {obj} job", f"upload {obj}", f"close {obj} job", f"poll {obj} job"}
        steps |= {f"{name} {obj}" for name in RESULTS}
    return steps


def _run_hour(org: Org, root) -> tuple[dict, dict, dict]:
    """The hourly DAG's steps for one org, the load again (a retried task), then a re-plan
    that drops a few Tasks and makes the meetings Tasks instead of Events."""
    client = salesforce_client(CONN_ID)
    step_refresh_crm(org, client, root)
    crm = read_mirror(lake.crm_folder(root, org.org_id))
    events = generate_day(crm, org_id=org.org_id, day=START.date(), sends=60)
    meetings = meeting_lines(crm, org_id=org.org_id, start=START, count=MEETINGS)
    write_landing(pd.concat([events, meetings], ignore_index=True), root / org.landing, org.org_id)
    step_extract(org, root, START, START.replace(hour=15))
    step_plan(org, root, START, step_detect(org, client))
    assert not step_budget(org, client)["exhausted"]
    first = step_load(org, client, root, START)
    again = step_load(org, client, root, START)

    plan = read_plan(lake.partition(root, lake.PLAN, org.org_id, START))
    # A meeting makes one Event per Opportunity of the primary's Account (R8 via R14).
    assert set(meetings["event_id"]) <= set(plan.salesforce_events["event_id"])
    assert (~plan.event_relations["is_primary"]).any(), "no EventRelation to insert"
    alone = plan.tasks.loc[plan.tasks["who_count"].eq(1), "WhoId"].drop_duplicates()
    emails = crm.contacts.set_index("Id").loc[alone.head(DROPPED), "Email"].tolist()
    settings = {"meetings_as_events": False, "exclusions": emails}
    changed = Org.from_dict(
        {"org_id": org.org_id, "salesforce_conn_id": CONN_ID, "settings": settings}
    )
    step_plan(changed, root, START, step_detect(changed, client), replan=True)
    replanned = step_load(changed, client, root, START, replan=True, max_delete_share=1.0)
    assert replanned["salesforce_events_deleted"] == len(plan.salesforce_events), replanned
    return first, again, replanned


# The answers with the largest bodies, which a connection is most likely to lose mid-way.
DOWNLOADS = frozenset(
    {
        "results of query job",
        "query TaskRelation",
        "query EventRelation",
        *(f"{name} {obj}" for name in RESULTS for obj in JOBS),
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
        first, again, replanned = _run_hour(org, root)
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
    assert plan.salesforce_events.empty, "the re-plan kept Salesforce Events"
    assert_salesforce_holds_exactly(SalesforceClient(fresh_emulator.simple_salesforce), [plan])
    for summary in (first, again, replanned):
        assert summary["tasks_failed"] == summary["relations_failed"] == 0, summary
        assert summary["dead_letter"] == 0, summary
    assert again["tasks_updated"] == first["tasks_created"]
    assert replanned["tasks_deleted"] >= DROPPED, replanned
    assert replanned["tasks_delete_failed"] == 0, replanned
    print(f"{fault}/{framing}: {len(proxy.broken)} answers broken, hour took {took:.1f}s")
