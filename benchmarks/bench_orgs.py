"""One hourly run for N small orgs on the Celery stack (not a test).

For each N: starts ``scripts/stack.py up --executor celery`` (PostgreSQL, Redis, two Celery
workers) in a fresh folder with an orgs file of N orgs, lands a few dozen events for one
hour for each org, triggers that hour's run through the REST API, and waits for it. It
reports the run's wall time, its task instances, the CPU seconds each component used
(scheduler, workers with their task processes, PostgreSQL, the emulator...), the
Salesforce API calls per org, and the load average; then checks that Salesforce holds
exactly the Tasks the N plans hold, and stops the stack.

All N orgs are tenants of **one** emulator (one local Salesforce org, seeded ``small``),
each with its own connection id pointing at it, its own lake partitions and task keys.
That is harsher than N real orgs: every Bulk job of every tenant goes through one
emulator process and one SQLite database on the same two cores as Airflow. Each org's
CRM mirror is copied in before the run (the run refreshes it incrementally), as it is in
every hour but an org's first.

    .venv/bin/python benchmarks/bench_orgs.py [--orgs 20 100 300] [--shard-size 25]
        [--events-per-hour 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

from salesforce_state import salesforce_tasks  # noqa: E402
from stack_client import DAG_ID, Stack, run_script, wait_for  # noqa: E402
from stack_processes import Layout, running_pid  # noqa: E402

from activity_sync import lake  # noqa: E402
from activity_sync.crm import read_crm  # noqa: E402
from activity_sync.mirror import refresh_crm  # noqa: E402
from activity_sync.plan import read_plan  # noqa: E402
from demo_data.generate import generate_day, write_landing  # noqa: E402

CONN_ID = "salesforce_bench"
# Components whose CPU is measured, by pid-file name prefix (stack_processes.Layout).
COMPONENTS = (
    "scheduler",
    "worker",
    "api-server",
    "dag-processor",
    "triggerer",
    "postgres",
    "redis",
    "emulator",
)
RUN_TIMEOUT = 45 * 60


@dataclass
class Result:
    orgs: int
    shard_size: int | None
    wall_seconds: float
    run_state: str
    task_instances: int
    task_instances_by_task: dict[str, int]
    events: int
    tasks_planned: int
    salesforce_tasks: int
    api_calls_per_org: float
    load_api_calls_per_org: float
    cpu_seconds: dict[str, float]
    load_average_before: tuple[float, float, float]
    load_average_after: tuple[float, float, float]
    failed: dict[str, str] = field(default_factory=dict)


def orgs_file(path: Path, n: int, shard_size: int | None) -> list[str]:
    """N small orgs on one connection, with the demo org's settings."""
    demo = yaml.safe_load((ROOT / "include" / "config" / "orgs.yaml").read_text())["orgs"][0]
    ids = [f"org{i:04d}" for i in range(1, n + 1)]
    orgs = [
        {**demo, "org_id": org, "salesforce_conn_id": CONN_ID, "settings": dict(demo["settings"])}
        for org in ids
    ]
    config: dict = {"version": 1}
    if shard_size:
        config["shard_size"] = shard_size
    path.write_text(yaml.safe_dump({**config, "orgs": orgs}, sort_keys=False))
    return ids


def land(stack: Stack, org_ids: list[str], hour: datetime, per_hour: int) -> int:
    """Mirror the CRM once, copy it to every org, land ~``per_hour`` events for each.

    Each org gets its own generated day (its own seed), from which the busiest arrival
    hour's events are moved to ``hour`` (occurred and arrived times shifted alike).
    """
    first = lake.crm_folder(stack.lake, org_ids[0])
    refresh_crm(stack.client(org_ids[0]), first)
    for org in org_ids[1:]:
        shutil.copytree(first, lake.crm_folder(stack.lake, org), dirs_exist_ok=True)
    crm = read_crm(first)
    landed = 0
    for number, org in enumerate(org_ids):
        day = generate_day(crm, org_id=org, day=hour.date(), seed=number, sends=per_hour * 4)
        arrived = pd.to_datetime(day["arrived_at"], utc=True, format="ISO8601")
        busiest = arrived.dt.floor("h").value_counts().idxmax()
        events = day[arrived.dt.floor("h") == busiest].head(per_hour).copy()
        shift = pd.Timestamp(hour) - busiest
        for column in ("arrived_at", "occurred_at"):
            moved = pd.to_datetime(events[column], utc=True, format="ISO8601") + shift
            events[column] = moved.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        write_landing(events, stack.lake / "landing", org)
        landed += len(events)
    return landed


def cpu_seconds(layout: Layout) -> dict[str, float]:
    """CPU (user + system) of each component's process tree, dead children included."""
    totals = dict.fromkeys(COMPONENTS, 0.0)
    for name in layout.recorded():
        kind = next((c for c in COMPONENTS if name == c or name.startswith(f"{c}-")), None)
        pid = running_pid(layout, name)
        if kind is None or pid is None:
            continue
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            totals[kind] += t.user + t.system + t.children_user + t.children_system
    return totals


def api_calls(stack: Stack, org: str) -> int:
    info = stack.emulator(org)
    from salesforce_emulator.process import trusting_session

    session = trusting_session(info.ca_file)
    session.headers["Authorization"] = f"Bearer {info.access_token}"
    stats = session.get(f"{info.instance_url}/__emulator/stats", timeout=60).json()
    return int(stats["api"]["api_calls"])


def task_instances(stack: Stack, run_id: str) -> list[dict]:
    """Every task instance of the run (the API pages by 100 at most)."""
    found: list[dict] = []
    while True:
        page = stack.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found)},
        ).json()
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def wait_for_a_quiet_clock(minutes_needed: int) -> None:
    """The manual run takes the scheduled run's logical date (the hour before the current
    one), so unpausing creates no second run until the next hour ends: make sure the run
    can finish before that."""
    now = datetime.now(UTC)
    if now.minute + minutes_needed >= 60:
        wait = (60 - now.minute) * 60 - now.second + 5
        print(f"  waiting {wait} s for the next hour, so that the run owns the clock", flush=True)
        time.sleep(wait)


def one_run(n: int, shard_size: int | None, per_hour: int, minutes_needed: int) -> Result:
    home = Path(tempfile.mkdtemp(prefix=f"activity-sync-bench-{n}-"))
    home.chmod(0o755)  # the postgres system user must reach its cluster
    org_ids = orgs_file(home / "orgs.yaml", n, shard_size)
    os.environ["ACTIVITY_SYNC_ORGS"] = str(home / "orgs.yaml")
    ports = ["--port", "0", "--emulator-port", "0", "--worker-log-port", "0"]
    ports += ["--trigger-log-port", "0", "--seed", "small", "--demo-hours", "0"]
    started = time.monotonic()
    up = run_script("up", "--executor", "celery", "--home", str(home), *ports, timeout=900)
    if up.returncode != 0:
        raise SystemExit(f"stack up failed:\n{up.stdout}\n{up.stderr}")
    print(f"  stack up in {time.monotonic() - started:.0f} s ({home})", flush=True)
    try:
        stack = Stack.login(home)
        layout = Layout(home)
        wait_for_a_quiet_clock(minutes_needed)
        # The manual run's logical date is the scheduled run's: its interval is the hour before.
        logical = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        hour = logical - timedelta(hours=1)
        events = land(stack, org_ids, hour, per_hour)
        print(f"  landed {events} events for {n} orgs in {hour:%Y-%m-%d %H:00}", flush=True)
        calls_before = api_calls(stack, org_ids[0])
        time.sleep(20)  # let the landing's CPU and the stack's start-up settle
        load_before = os.getloadavg()
        cpu_before = cpu_seconds(layout)
        run_id = f"bench_{n}"
        response = stack.api(
            "POST",
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": logical.isoformat(), "conf": {}},
        )
        assert response.status_code == 200, response.text
        clock = time.monotonic()
        # Not stack.unpause(), which waits for a scheduled run: the manual run took its date.
        unpaused = stack.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        assert unpaused.status_code == 200, unpaused.text

        def finished() -> dict | None:
            run = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()
            return run if run["state"] in ("success", "failed") else None

        run = wait_for(f"run {run_id}", finished, timeout=RUN_TIMEOUT)
        wall = time.monotonic() - clock
        cpu = {k: round(v - cpu_before[k], 1) for k, v in cpu_seconds(layout).items()}
        load_after = os.getloadavg()
        tis = task_instances(stack, run_id)
        by_task: dict[str, int] = {}
        for ti in tis:
            by_task[ti["task_id"]] = by_task.get(ti["task_id"], 0) + 1
        failed = {
            f"{ti['task_id']}[{ti['map_index']}]": ti["state"]
            for ti in tis
            if ti["state"] not in ("success", "skipped")
        }
        calls = api_calls(stack, org_ids[0]) - calls_before
        planned, load_calls = 0, 0
        for org in org_ids:
            planned += len(read_plan(lake.partition(stack.lake, lake.PLAN, org, hour)).tasks)
            summary = lake.partition(stack.lake, lake.LOADED, org, hour) / lake.LOAD_SUMMARY
            if summary.exists():
                load_calls += json.loads(summary.read_text())["api_calls"]
        held = len(salesforce_tasks(stack.client(org_ids[0])))
        return Result(
            orgs=n,
            shard_size=shard_size,
            wall_seconds=round(wall, 1),
            run_state=run["state"],
            task_instances=len(tis),
            task_instances_by_task=by_task,
            events=events,
            tasks_planned=planned,
            salesforce_tasks=held,
            api_calls_per_org=round(calls / n, 1),
            load_api_calls_per_org=round(load_calls / n, 1),
            cpu_seconds=cpu,
            load_average_before=tuple(round(x, 2) for x in load_before),
            load_average_after=tuple(round(x, 2) for x in load_after),
            failed=failed,
        )
    finally:
        run_script("down", "--home", str(home))
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[20, 100, 300])
    parser.add_argument("--shard-size", type=int, default=None, help="orgs file's shard_size")
    parser.add_argument("--events-per-hour", type=int, default=40)
    parser.add_argument(
        "--minutes-needed", type=int, default=15, help="start a run only this long before :00"
    )
    parser.add_argument("--json", type=Path, help="append each result as a JSON line here")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}", flush=True)
    for n in args.orgs:
        print(f"{n} orgs ...", flush=True)
        result = one_run(n, args.shard_size, args.events_per_hour, args.minutes_needed)
        line = json.dumps(asdict(result))
        print(line, flush=True)
        if args.json:
            with args.json.open("a") as out:
                out.write(line + "\n")
        exact = result.salesforce_tasks == result.tasks_planned
        print(
            f"  {n} orgs: {result.run_state} in {result.wall_seconds:.0f} s, "
            f"{result.task_instances} task instances, CPU {result.cpu_seconds}, "
            f"{result.api_calls_per_org} API calls/org, Salesforce exact: {exact}, "
            f"load average {result.load_average_before} -> {result.load_average_after}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
