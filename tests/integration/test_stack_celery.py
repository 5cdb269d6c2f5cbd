"""The Celery deployment of docker-compose.yaml, run for real without Docker.

``scripts/stack.py up --executor celery`` starts what the compose file describes, from the
same settings file (deploy/airflow.env): PostgreSQL, Redis, the API server, scheduler, DAG
processor, triggerer and two Celery workers with host names of their own, plus one local
Salesforce (emulator) per org. Three orgs, one emulator each, as three customers' orgs are
three Salesforce orgs.

1. A backfill of six hours through ``POST /api/v2/backfills`` runs on both workers, and
   each org's Salesforce holds exactly what its plans say.
2. A worker is killed with SIGKILL while it runs a ``load`` (the emulator's Bulk jobs are
   slowed, so that the load is caught after its Tasks reached Salesforce and before it
   is done with their TaskRelations).
   The scheduler notices the missing heartbeats (``[scheduler]
   task_instance_heartbeat_timeout``, 30 s here instead of deploy/airflow.env's 300), the
   org's ``sync`` task runs again on the other worker (its load ran in it), and Salesforce
   is still exact (R11).

Retries wait 5 s instead of the DAG's 2 minutes and more: a cluster policy in the stack's
``config/airflow_local_settings.py``, which Airflow imports in every component, shortens
them. The module takes 5-8 minutes on a 2-core machine: the stack starts in 35-95 s, the
backfill takes 160-190 s (30 task instances: the three orgs share one ``sync`` task an
hour), the crash ~90 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from salesforce_state import assert_salesforce_holds_exactly, salesforce_tasks
from stack_client import DAG_ID, Stack, load_script, run_script, wait_for

stack_script = load_script()
processes = load_script("stack_processes")
services = load_script("stack_services")

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
ORGS = ("acme", "globex", "initech")
CRASH_ORG = "globex"
YESTERDAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
# Six busy hours of yesterday for the backfill, and the next one for the crash.
HOURS = [YESTERDAY + timedelta(hours=h) for h in range(10, 16)]
CRASH_HOUR = YESTERDAY + timedelta(hours=16)
HEARTBEAT_TIMEOUT = 30
# Long enough to find the worker and kill it while a Bulk job of the load is pending.
SLOW_BULK_SECONDS = 20
RETRY_POLICY = '''"""Test stack only: retries after 5 s, so that a retry is seen within the test."""
from datetime import timedelta


def task_policy(task):
    task.retry_delay = timedelta(seconds=5)
    task.retry_exponential_backoff = 0
'''


def _orgs_file(path: Path) -> Path:
    """Three orgs with the demo org's settings, each with a Salesforce connection of its own."""
    demo = yaml.safe_load((ROOT / "include" / "config" / "orgs.yaml").read_text())["orgs"][0]
    # Settings copied per org: a dict shared by all would be written as YAML anchors.
    orgs = [
        {**demo, "org_id": org, "salesforce_conn_id": f"salesforce_{org}"}
        | {"settings": dict(demo["settings"])}
        for org in ORGS
    ]
    path.write_text(yaml.safe_dump({"version": 1, "orgs": orgs}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Not under pytest's private tmp folder: the postgres system user must reach the cluster.
    home = Path(tempfile.mkdtemp(prefix="activity-sync-celery-"))
    home.chmod(0o755)
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(RETRY_POLICY)
    layout = processes.Layout(home)
    with pytest.MonkeyPatch.context() as env:
        # For the stack and for this process, which lands events and reads the lake.
        env.setenv("ACTIVITY_SYNC_ORGS", str(_orgs_file(home / "orgs.yaml")))
        env.setenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", str(HEARTBEAT_TIMEOUT))
        ports = ["--port", "0", "--emulator-port", "0", "--worker-log-port", "0"]
        ports += ["--trigger-log-port", "0"]
        started = time.monotonic()
        up = run_script(
            "up", "--executor", "celery", "--home", str(home), *ports, "--demo-hours", "0"
        )
        pids = {name: processes.running_pid(layout, name) for name in layout.recorded()}
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            print(f"celery stack up in {time.monotonic() - started:.1f} s")
            yield Stack.login(home)
        finally:
            down = run_script("down", "--home", str(home))
            still = {n: p for n, p in pids.items() if p and processes.started_at(p) is not None}
            shutil.rmtree(home, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert still == {}, f"still running after down: {still}"


def test_celery_up_starts_every_component_of_the_compose_file(stack: Stack) -> None:
    layout = processes.Layout(stack.home)
    assert set(layout.recorded()) == {
        "postgres",
        "redis",
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        "worker-1",
        "worker-2",
        *(f"emulator-salesforce_{org}" for org in ORGS),
    }
    assert stack.info["workers"] == ["celery@airflow-worker-1", "celery@airflow-worker-2"]
    env = (stack.home / "stack.env").read_text()
    assert "export AIRFLOW__CORE__EXECUTOR=CeleryExecutor" in env
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:" in env
    # Everything deploy/airflow.env says, except what this test overrides, reached Airflow.
    shared = services.shared_settings()
    shared["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = str(HEARTBEAT_TIMEOUT)
    assert all(f"export {key}={value}\n" in env for key, value in shared.items())
    health = stack.api("GET", "/api/v2/monitor/health").json()
    assert {k: v["status"] for k, v in health.items()} == dict.fromkeys(
        ("metadatabase", "scheduler", "triggerer", "dag_processor"), "healthy"
    )
    status = run_script("status", "--home", str(stack.home))
    assert status.returncode == 0, status.stdout
    assert "Executor                 CeleryExecutor" in status.stdout


@dataclass
class Backfill:
    runs: dict[str, dict]
    hosts: dict[str, int]


@pytest.fixture(scope="module")
def backfill(stack: Stack) -> Backfill:
    """Six hours of events for each org, backfilled through the API, every run finished."""
    for org in ORGS:
        landed = stack_script.land_events(stack.lake, stack.salesforce(org), HOURS, org_id=org)
        assert landed > 100, org
    stack.unpause()
    started = time.monotonic()
    runs = stack.backfill(HOURS, "none", timeout=600)
    print(
        f"backfill of {len(HOURS)} hours x {len(ORGS)} orgs in {time.monotonic() - started:.1f} s"
    )
    # Unpausing also made the scheduler run the latest hour; let it finish too.
    stack.wait_until_no_run_is_active()
    hosts: dict[str, int] = {}
    for run in runs.values():
        for ti in stack.task_instances(run["dag_run_id"]):
            if ti["state"] == "success":
                hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
    print(f"task instances by worker: {hosts}")
    return Backfill(runs, hosts)


def test_a_backfill_of_six_hours_for_three_orgs_runs_on_both_workers_and_loads_exactly_the_plans(
    stack: Stack, backfill: Backfill
) -> None:
    assert sorted(backfill.runs) == [h.isoformat() for h in HOURS]
    assert {r["run_type"] for r in backfill.runs.values()} == {"backfill"}
    assert set(backfill.hosts) == {"airflow-worker-1", "airflow-worker-2"}
    for org in ORGS:
        plans = stack.plans(org)
        hours = [plans[f"date={h:%Y-%m-%d}/hour={h:%H}"] for h in HOURS]
        assert all((plan.tasks["who_count"] > 1).any() for plan in hours), org
        assert_salesforce_holds_exactly(stack.client(org), plans.values())


def _process_tree(root: int) -> list[int]:
    """``root`` and every process under it: all that dies when a worker's container does.

    Airflow puts each task process in a process group of its own, so killing the worker's
    group would leave the task running.
    """
    listing = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _running_load(stack: Stack, run_id: str, tasks_before: int) -> dict | None:
    """The crash org's sync task once its load's Task upsert is in Salesforce and it still
    runs (its shard holds that one org: the run's orgs param names only it)."""
    load = stack.find_task_instance(run_id, "sync", map_index=0)
    if load is None:
        return None
    if load["state"] != "running":
        assert load["state"] in (None, "scheduled", "queued", "deferred", "up_for_reschedule"), (
            f"the load ended before it could be killed: {load['state']}"
        )
        return None
    return load if len(salesforce_tasks(stack.client(CRASH_ORG))) > tasks_before else None


def test_r11_a_worker_killed_in_the_middle_of_a_load_is_noticed_and_the_load_reruns_exactly(
    stack: Stack, backfill: Backfill
) -> None:
    landed = stack_script.land_events(
        stack.lake, stack.salesforce(CRASH_ORG), [CRASH_HOUR], org_id=CRASH_ORG
    )
    assert landed > 10
    tasks_before = len(salesforce_tasks(stack.client(CRASH_ORG)))
    stack.set_faults(CRASH_ORG, slow_bulk_seconds=SLOW_BULK_SECONDS)
    response = stack.api(
        "POST",
        "/api/v2/backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": CRASH_HOUR.isoformat(),
            "to_date": CRASH_HOUR.isoformat(),
            "reprocess_behavior": "none",
            "dag_run_conf": {"orgs": [CRASH_ORG]},
        },
    )
    assert response.status_code == 200, response.text
    run = wait_for(
        "the crash hour's run", lambda: stack.backfill_runs().get(CRASH_HOUR.isoformat())
    )
    run_id = run["dag_run_id"]
    load = wait_for(
        "the load to be between its Task upsert and its relation insert",
        lambda: _running_load(stack, run_id, tasks_before),
        timeout=300,
    )
    victim = next(
        name
        for name in ("worker-1", "worker-2")
        if services.worker_hostname(int(name.removeprefix("worker-"))) == load["hostname"]
    )
    worker = processes.running_pid(processes.Layout(stack.home), victim)
    tree = _process_tree(worker)
    assert load["pid"] in tree, "the task process is not under the worker that runs it"
    for pid in tree:
        os.kill(pid, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    wait_for("the task process to die", lambda: processes.started_at(load["pid"]) is None, 30)
    print(f"killed {victim} ({load['hostname']}) during try {load['try_number']} of the load")
    stack.set_faults(CRASH_ORG)  # the retry need not wait

    runs = wait_for("the crash hour's run to end", lambda: stack.finished_runs([CRASH_HOUR]))
    assert runs[CRASH_HOUR.isoformat()]["state"] == "success"
    rerun = stack.task_instance(run_id, "sync", map_index=0)
    assert rerun["state"] == "success"
    assert rerun["try_number"] == load["try_number"] + 1
    assert rerun["hostname"] not in ("", None, load["hostname"])
    noticed = datetime.fromisoformat(rerun["start_date"]) - killed_at
    print(
        f"the load ran again on {rerun['hostname']} {noticed.total_seconds():.0f} s after the kill"
    )
    assert noticed >= timedelta(seconds=HEARTBEAT_TIMEOUT - 5)
    events = stack.api(
        "GET",
        "/api/v2/eventLogs",
        params={"dag_id": DAG_ID, "run_id": run_id, "event": "heartbeat timeout"},
    ).json()["event_logs"]
    assert [(e["task_id"], e["map_index"], e["try_number"]) for e in events] == [
        ("sync", 0, load["try_number"])
    ]
    for org in ORGS:
        assert_salesforce_holds_exactly(stack.client(org), stack.plans(org).values())
    summary = stack.load_summary(CRASH_ORG, CRASH_HOUR)
    assert summary["tasks_created"] == 0 and summary["tasks_updated"] > 0, json.dumps(summary)
