"""scripts/stack.py: the local Airflow that ``make up`` starts, driven as a user drives it.

The stack runs in a temporary folder on free ports (the same ``up`` as ``make up``, so it
never collides with a developer's own stack): emulator with the demo org, SQLite, API
server, scheduler, DAG processor and triggerer. The hourly DAG is then backfilled for three
past hours through the REST call the UI's backfill dialog makes, the scheduler runs it, and
Salesforce (the emulator) must hold exactly what the runs planned; a second backfill of the
same hours that reprocesses completed runs must re-run them and duplicate nothing (R11).

The module takes about two minutes on a 2-core machine (the stack starts in ~20 s, each
backfill takes 20-60 s), most of it Airflow starting a process per task.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import requests
from salesforce_state import (
    EXT,
    assert_salesforce_holds_exactly,
    salesforce_relations,
    salesforce_tasks,
)
from stack_client import DAG_ID, Stack, load_script, run_script, wait_for

from activity_sync.airflow_adapter import SALESFORCE_POOL, SALESFORCE_POOL_SLOTS
from activity_sync.audit import run_audit
from activity_sync.tenants import load_orgs_file

ORG = "demo"
# Afternoon (busy) hours of yesterday: past, after the DAG's start_date, and never the
# interval that unpausing makes the scheduler run (the hour before now).
YESTERDAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
HOURS = [YESTERDAY + timedelta(hours=h) for h in (13, 14, 15)]

ORGS_FILE = Path(__file__).resolve().parents[2] / "include" / "config" / "orgs.yaml"
stack_script = load_script()
processes = load_script("stack_processes")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("stack")
    ports = ["--port", "0", "--emulator-port", "0", "--worker-log-port", "0"]
    started = time.monotonic()
    # A copy of the orgs file: a test changes the org's settings (read at every run).
    orgs = home / "orgs.yaml"
    orgs.write_text(ORGS_FILE.read_text())
    up = run_script(
        "up",
        "--home",
        str(home),
        *ports,
        "--trigger-log-port",
        "0",
        "--demo-hours",
        "0",
        env={**os.environ, "ACTIVITY_SYNC_ORGS": str(orgs)},
    )
    pids = {}
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"stack up in {time.monotonic() - started:.1f} s")
        layout = processes.Layout(home)
        pids = {name: processes.running_pid(layout, name) for name in layout.recorded()}
        assert set(pids) == {
            "api-server",
            "scheduler",
            "dag-processor",
            "triggerer",
            "emulator-salesforce_demo",
        }
        stack = Stack.login(home)
        assert f"Login                    admin / {stack.info['password']}" in up.stdout
        assert stack.info["url"] in up.stdout
        yield stack
    finally:
        down = run_script("down", "--home", str(home))
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in pids.items():
        assert processes.started_at(pid) is None, f"{name} (pid {pid}) still runs after down"
    again = run_script("down", "--home", str(home))
    assert (again.returncode, again.stdout.strip()) == (0, f"Nothing running in {home}.")


@dataclass
class FirstBackfill:
    runs: dict[str, dict]
    tasks: pd.DataFrame
    relations: int
    load_summaries: list[dict]


@pytest.fixture(scope="module")
def first_backfill(stack: Stack) -> FirstBackfill:
    """Three hours of landed events, the DAG unpaused, backfilled, every run finished."""
    landed = stack_script.land_events(stack.lake, stack.salesforce(ORG), HOURS, org_id=ORG)
    assert landed > 100
    stack.unpause()
    started = time.monotonic()
    runs = stack.backfill(HOURS, "none")
    print(f"first backfill done in {time.monotonic() - started:.1f} s")
    # Unpausing also made the scheduler run the latest hour; let it finish too.
    stack.wait_until_no_run_is_active()
    client = stack.client(ORG)
    return FirstBackfill(
        runs=runs,
        tasks=salesforce_tasks(client).sort_values(EXT).reset_index(drop=True),
        relations=len(salesforce_relations(client)),
        load_summaries=[stack.load_summary(ORG, h) for h in HOURS],
    )


def test_the_last_complete_hours_end_at_the_top_of_the_current_hour() -> None:
    now = datetime(2026, 11, 27, 0, 20, tzinfo=UTC)
    assert stack_script.last_complete_hours(now, 2) == [
        datetime(2026, 11, 26, 22, tzinfo=UTC),
        datetime(2026, 11, 26, 23, tzinfo=UTC),
    ]
    assert stack_script.last_complete_hours(now, 0) == []


def test_down_where_nothing_runs_says_so_and_succeeds(tmp_path: Path) -> None:
    result = run_script("down", "--home", str(tmp_path))
    assert (result.returncode, result.stdout.strip()) == (0, f"Nothing running in {tmp_path}.")
    status = run_script("status", "--home", str(tmp_path))
    assert status.returncode == 1
    assert "nothing started in" in status.stdout


def test_a_pid_file_whose_process_started_at_another_time_is_not_ours(tmp_path: Path) -> None:
    layout = processes.Layout(tmp_path)
    layout.run.mkdir()
    # This very process, recorded with another start time: a recycled pid, never signalled.
    layout.pid_file("scheduler").write_text(
        json.dumps({"pid": os.getpid(), "started_at": "Thu Jan  1 00:00:00 1970"})
    )
    assert processes.running_pid(layout, "scheduler") is None
    assert processes.stop_component(layout, "scheduler") is False
    recorded = {"pid": os.getpid(), "started_at": processes.started_at(os.getpid())}
    layout.pid_file("scheduler").write_text(json.dumps(recorded))
    assert processes.running_pid(layout, "scheduler") == os.getpid()


def test_a_component_that_exits_on_its_own_is_started_again_until_down(tmp_path: Path) -> None:
    """As the compose file's ``restart: always``: a crashed scheduler comes back; ``down``
    ends the loop with it."""
    layout = processes.Layout(tmp_path)
    layout.run.mkdir()
    layout.logs.mkdir()
    starts = tmp_path / "starts"
    argv = [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x')"]
    processes.spawn(layout, "scheduler", processes.restart_always(argv), dict(os.environ))
    deadline = time.monotonic() + 30
    while (not starts.exists() or len(starts.read_text()) < 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(starts.read_text()) >= 2, "the component was not started again"
    assert processes.stop_component(layout, "scheduler", timeout=10)
    after_down = len(starts.read_text())
    time.sleep(6)
    assert len(starts.read_text()) == after_down, "started again after down"


@pytest.mark.stack
def test_make_up_serves_every_component_healthy_with_both_dags_and_the_pool(stack: Stack) -> None:
    health = stack.api("GET", "/api/v2/monitor/health").json()
    assert {k: v["status"] for k, v in health.items()} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    dags = {d["dag_id"]: d for d in stack.api("GET", "/api/v2/dags").json()["dags"]}
    assert set(dags) == {"activity_sync_hourly", "activity_sync_audit"}
    pool = stack.api("GET", f"/api/v2/pools/{SALESFORCE_POOL}").json()
    assert pool["slots"] == SALESFORCE_POOL_SLOTS
    status = run_script("status", "--home", str(stack.home))
    assert status.returncode == 0, status.stdout
    assert "dag_processor healthy" in status.stdout


@pytest.mark.stack
def test_the_audit_page_is_served_to_a_logged_in_user_only(stack: Stack) -> None:
    assert stack.api("GET", "/activity-audit/").status_code == 200
    assert requests.get(stack.info["url"] + "/activity-audit/", timeout=30).status_code == 401


@pytest.mark.stack
def test_a_backfill_of_three_hours_loads_exactly_the_planned_tasks_and_relations(
    stack: Stack, first_backfill: FirstBackfill
) -> None:
    assert sorted(first_backfill.runs) == [h.isoformat() for h in HOURS]
    assert {r["run_type"] for r in first_backfill.runs.values()} == {"backfill"}
    plans = stack.plans(ORG)
    backfilled = [plans[f"date={h:%Y-%m-%d}/hour={h:%H}"] for h in HOURS]
    assert all((plan.tasks["who_count"] > 1).any() for plan in backfilled)
    assert_salesforce_holds_exactly(stack.client(ORG), plans.values())
    created = sum(s["tasks_created"] for s in first_backfill.load_summaries)
    keys = set().union(*(set(plan.tasks["task_key"]) for plan in backfilled))
    assert created == len(keys)


@pytest.mark.stack
def test_backfilling_again_with_completed_runs_reruns_them_and_duplicates_nothing(
    stack: Stack, first_backfill: FirstBackfill
) -> None:
    started = time.monotonic()
    runs = stack.backfill(HOURS, "completed")
    print(f"second backfill done in {time.monotonic() - started:.1f} s")
    stack.wait_until_no_run_is_active()
    for key, run in runs.items():
        before = first_backfill.runs[key]
        assert run["dag_run_id"] == before["dag_run_id"]
        assert run["end_date"] > before["end_date"]
        # The load itself ran again: it started after the first run ended. (Not its try
        # number: that of this mapped task was once seen to stay at 1 after a reprocess.)
        load = stack.task_instance(run["dag_run_id"], "sync", map_index=0)
        assert load["state"] == "success"
        assert load["start_date"] > before["end_date"], load
    client = stack.client(ORG)
    after = salesforce_tasks(client).sort_values(EXT).reset_index(drop=True)
    pd.testing.assert_frame_equal(after, first_backfill.tasks)
    assert len(salesforce_relations(client)) == first_backfill.relations
    assert_salesforce_holds_exactly(client, stack.plans(ORG).values())
    for hour in HOURS:
        summary = stack.load_summary(ORG, hour)
        assert (summary["tasks_created"], summary["relations_inserted"]) == (0, 0)
        assert summary["tasks_updated"] > 0


@pytest.mark.stack
def test_a_replan_backfill_after_a_settings_change_converges_and_reconciles_clean(
    stack: Stack, first_backfill: FirstBackfill
) -> None:
    """Issue 10: the tenant turns Shared Activities off; a backfill with ``replan`` (the
    dialog's conf) through POST /api/v2/backfills makes Salesforce hold exactly the new,
    one-Task-per-person plans: the shared Tasks are deleted, the audit reconciles clean."""
    orgs = stack.home / "orgs.yaml"
    orgs.write_text(orgs.read_text().replace("shared_activities: true", "shared_activities: false"))
    before = {h: stack.plans(ORG)[f"date={h:%Y-%m-%d}/hour={h:%H}"] for h in HOURS}
    stack.backfill(HOURS, "completed", conf={"replan": True, "max_delete_share": 1.0})
    stack.wait_until_no_run_is_active()
    client = stack.client(ORG)
    plans = stack.plans(ORG)
    for hour in HOURS:
        plan = plans[f"date={hour:%Y-%m-%d}/hour={hour:%H}"]
        assert plan.summary["basis"] == "replan" and (plan.tasks["who_count"] == 1).all()
        summary = stack.load_summary(ORG, hour)
        assert summary["replan"] and summary["tasks_deleted"] > 0
        dropped = set(before[hour].tasks["task_key"]) - set(plan.tasks["task_key"])
        assert summary["tasks_deleted"] == len(dropped)
    assert_salesforce_holds_exactly(client, plans.values())
    settings = load_orgs_file(orgs).orgs[0].settings
    audit = run_audit(stack.lake, ORG, f"{YESTERDAY:%Y-%m-%d}", client=client, settings=settings)
    assert audit.document["reconciliation"]["status"] == "ok", audit.document["reconciliation"]
    assert audit.document["headline"]["tasks_deleted"] > 0


@pytest.mark.stack
def test_an_hourly_run_that_loaded_starts_an_audit_run_through_the_loaded_asset(
    stack: Stack, first_backfill: FirstBackfill
) -> None:
    """The audit DAG is scheduled on the ``activity_sync_loaded`` asset, which the hourly
    run's ``publish`` task emits (through an asset alias) only when an org loaded: the
    running scheduler must turn that event into an audit run."""
    audit_dag = "activity_sync_audit"
    response = stack.api("PATCH", f"/api/v2/dags/{audit_dag}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    hour = HOURS[-1]
    # The trigger form's run: its data interval is the last complete hour before it.
    response = stack.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        json={"logical_date": (hour + timedelta(hours=1)).isoformat(), "conf": {}},
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    def hourly_state() -> str | None:
        got = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")
        state = got.json()["state"]
        return state if state in ("success", "failed") else None

    assert wait_for("the triggered hourly run", hourly_state, timeout=300) == "success"

    def audited() -> list[dict] | None:
        runs = stack.api(
            "GET",
            f"/api/v2/dags/{audit_dag}/dagRuns",
            params={"run_type": "asset_triggered", "state": "success"},
        ).json()["dag_runs"]
        return runs or None

    wait_for("an audit run started by the loaded asset", audited, timeout=300)
