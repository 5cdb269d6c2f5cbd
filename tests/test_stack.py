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

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
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

from activity_sync.plan import read_plan
from activity_sync.salesforce import SalesforceClient
from salesforce_emulator import process

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "stack.py"
DAG_ID = "activity_sync_hourly"
ORG = "demo"
# Afternoon (busy) hours of yesterday: past, after the DAG's start_date, and never the
# interval that unpausing makes the scheduler run (the hour before now).
YESTERDAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
HOURS = [YESTERDAY + timedelta(hours=h) for h in (13, 14, 15)]
RUN_TIMEOUT = 300


def _load_script():
    """scripts/ is no package: load the script as the module ``stack_script``."""
    spec = importlib.util.spec_from_file_location("stack_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stack_script = _load_script()


def _stack(*args: str, timeout: float = 360) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _wait_for(what: str, check: Callable[[], Any], timeout: float = RUN_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result is not None and result is not False:
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Stack:
    home: Path
    info: dict
    token: str

    @property
    def lake(self) -> Path:
        return Path(self.info["lake"])

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(
            method, self.info["url"] + path, headers=headers, timeout=30, **kwargs
        )

    def salesforce(self) -> Callable[[], Any]:
        """Opens a simple_salesforce client on the stack's emulator (its standing token)."""
        from simple_salesforce import Salesforce

        connection = json.loads(Path(self.info["emulator"]["connection_file"]).read_text())
        info = process.EmulatorInfo.from_json(connection)
        return lambda: Salesforce(
            instance_url=info.instance_url,
            session_id=info.access_token,
            session=process.trusting_session(info.ca_file),
            version=info.api_version,
        )

    def client(self) -> SalesforceClient:
        return SalesforceClient(self.salesforce(), poll_wait=0.05, backoff=0.05)

    def backfill_runs(self) -> dict[str, dict]:
        """This DAG's backfill runs by logical date (ISO, UTC)."""
        response = self.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "limit": 100}
        )
        response.raise_for_status()
        return {pd.Timestamp(r["logical_date"]).isoformat(): r for r in response.json()["dag_runs"]}

    def task_instances(self, run_id: str) -> dict[str, dict]:
        response = self.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        )
        response.raise_for_status()
        return {ti["task_id"]: ti for ti in response.json()["task_instances"]}

    def backfill(self, reprocess_behavior: str) -> dict[str, dict]:
        """Backfill HOURS as the UI's dialog does; wait until the scheduler has finished it.

        On SQLite the API answers 503 "Database is locked" when the scheduler writes at the
        same moment (Airflow says so itself); like a user, try again.
        """
        body = {
            "dag_id": DAG_ID,
            "from_date": HOURS[0].isoformat(),
            "to_date": HOURS[-1].isoformat(),
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": 3,
            "run_backwards": False,
            "dag_run_conf": {},
        }

        def created() -> requests.Response | None:
            response = self.api("POST", "/api/v2/backfills", json=body)
            return None if response.status_code == 503 else response

        response = _wait_for("the backfill to be accepted", created, timeout=60)
        assert response.status_code == 200, response.text
        backfill_id = response.json()["id"]
        wanted = {h.isoformat() for h in HOURS}

        def finished() -> dict[str, dict] | None:
            runs = {k: r for k, r in self.backfill_runs().items() if k in wanted}
            if len(runs) < len(wanted) or any(
                r["state"] not in ("success", "failed") for r in runs.values()
            ):
                return None
            failed = {k: self._failed_tasks(r) for k, r in runs.items() if r["state"] != "success"}
            assert not failed, f"backfill runs failed: {failed}; task logs in {self.home}/logs"
            return runs

        return _wait_for(f"backfill {backfill_id} ({reprocess_behavior}) to run", finished)

    def wait_until_backfills_complete(self) -> None:
        """Only one backfill per DAG may be active; the scheduler closes one within 30 s."""

        def complete() -> bool:
            response = self.api("GET", "/api/v2/backfills", params={"dag_id": DAG_ID})
            return all(b["completed_at"] for b in response.json()["backfills"])

        _wait_for("the backfill to be marked complete", complete, timeout=90)

    def _failed_tasks(self, run: dict) -> dict[str, str]:
        return {
            task_id: ti["state"]
            for task_id, ti in self.task_instances(run["dag_run_id"]).items()
            if ti["state"] not in ("success", "skipped")
        }

    def plans(self) -> dict[str, Any]:
        """Every hour's plan in the lake, by partition (the scheduler's own run included)."""
        folders = sorted((self.lake / "plan" / f"org_id={ORG}").glob("date=*/hour=*"))
        return {f"{f.parent.name}/{f.name}": read_plan(f) for f in folders}

    def load_summary(self, hour: datetime) -> dict:
        part = self.lake / "loaded" / f"org_id={ORG}" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        return json.loads((part / "load_summary.json").read_text())

    def wait_until_no_run_is_active(self) -> None:
        def idle() -> bool:
            response = self.api(
                "GET",
                f"/api/v2/dags/{DAG_ID}/dagRuns",
                params={"state": ["queued", "running"], "limit": 100},
            )
            return response.json()["total_entries"] == 0

        _wait_for("every run of the hourly DAG to finish", idle)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("stack")
    ports = ["--port", "0", "--emulator-port", "0", "--worker-log-port", "0"]
    started = time.monotonic()
    up = _stack("up", "--home", str(home), *ports, "--trigger-log-port", "0", "--demo-hours", "0")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"stack up in {time.monotonic() - started:.1f} s")
        info = json.loads((home / "stack.json").read_text())
        assert f"Login                    admin / {info['password']}" in up.stdout
        assert info["url"] in up.stdout
        login = {"username": info["username"], "password": info["password"]}
        token = requests.post(info["url"] + "/auth/token", json=login, timeout=30)
        assert token.status_code == 201, token.text
        pids = {
            name: json.loads((home / "run" / f"{name}.pid").read_text())["pid"]
            for name in stack_script.COMPONENTS
        }
        yield Stack(home, info, token.json()["access_token"])
    finally:
        down = _stack("down", "--home", str(home))
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in pids.items():
        assert stack_script.started_at(pid) is None, f"{name} (pid {pid}) still runs after down"
    again = _stack("down", "--home", str(home))
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
    landed = stack_script.land_events(stack.lake, stack.salesforce(), HOURS)
    assert landed > 100
    response = stack.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    started = time.monotonic()
    runs = stack.backfill("none")
    stack.wait_until_backfills_complete()
    print(f"first backfill done in {time.monotonic() - started:.1f} s")
    # Unpausing also made the scheduler run the latest hour; let it finish too.
    stack.wait_until_no_run_is_active()
    client = stack.client()
    return FirstBackfill(
        runs=runs,
        tasks=salesforce_tasks(client).sort_values(EXT).reset_index(drop=True),
        relations=len(salesforce_relations(client)),
        load_summaries=[stack.load_summary(h) for h in HOURS],
    )


def test_the_last_complete_hours_end_at_the_top_of_the_current_hour() -> None:
    now = datetime(2026, 11, 27, 0, 20, tzinfo=UTC)
    assert stack_script.last_complete_hours(now, 2) == [
        datetime(2026, 11, 26, 22, tzinfo=UTC),
        datetime(2026, 11, 26, 23, tzinfo=UTC),
    ]
    assert stack_script.last_complete_hours(now, 0) == []


def test_down_where_nothing_runs_says_so_and_succeeds(tmp_path: Path) -> None:
    result = _stack("down", "--home", str(tmp_path))
    assert (result.returncode, result.stdout.strip()) == (0, f"Nothing running in {tmp_path}.")
    status = _stack("status", "--home", str(tmp_path))
    assert status.returncode == 1
    assert "scheduler      stopped" in status.stdout


def test_a_pid_file_whose_process_started_at_another_time_is_not_ours(tmp_path: Path) -> None:
    layout = stack_script.Layout(tmp_path)
    layout.run.mkdir()
    # This very process, recorded with another start time: a recycled pid, never signalled.
    layout.pid_file("scheduler").write_text(
        json.dumps({"pid": os.getpid(), "started_at": "Thu Jan  1 00:00:00 1970"})
    )
    assert stack_script.running_pid(layout, "scheduler") is None
    assert stack_script.stop_component(layout, "scheduler") is False
    recorded = {"pid": os.getpid(), "started_at": stack_script.started_at(os.getpid())}
    layout.pid_file("scheduler").write_text(json.dumps(recorded))
    assert stack_script.running_pid(layout, "scheduler") == os.getpid()


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
    pool = stack.api("GET", "/api/v2/pools/salesforce_api").json()
    assert pool["slots"] == 4
    status = _stack("status", "--home", str(stack.home))
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
    plans = stack.plans()
    backfilled = [plans[f"date={h:%Y-%m-%d}/hour={h:%H}"] for h in HOURS]
    assert all((plan.tasks["who_count"] > 1).any() for plan in backfilled)
    assert_salesforce_holds_exactly(stack.client(), plans.values())
    created = sum(s["tasks_created"] for s in first_backfill.load_summaries)
    keys = set().union(*(set(plan.tasks["task_key"]) for plan in backfilled))
    assert created == len(keys)


@pytest.mark.stack
def test_backfilling_again_with_completed_runs_reruns_them_and_duplicates_nothing(
    stack: Stack, first_backfill: FirstBackfill
) -> None:
    started = time.monotonic()
    runs = stack.backfill("completed")
    print(f"second backfill done in {time.monotonic() - started:.1f} s")
    stack.wait_until_no_run_is_active()
    for key, run in runs.items():
        before = first_backfill.runs[key]
        assert run["dag_run_id"] == before["dag_run_id"]
        assert run["end_date"] > before["end_date"]
        # The load itself ran again: it started after the first run ended. (Not its try
        # number: that of this mapped task was once seen to stay at 1 after a reprocess.)
        load = stack.task_instances(run["dag_run_id"])["org.load"]
        assert load["state"] == "success"
        assert load["start_date"] > before["end_date"], load
    client = stack.client()
    after = salesforce_tasks(client).sort_values(EXT).reset_index(drop=True)
    pd.testing.assert_frame_equal(after, first_backfill.tasks)
    assert len(salesforce_relations(client)) == first_backfill.relations
    assert_salesforce_holds_exactly(client, stack.plans().values())
    for hour in HOURS:
        summary = stack.load_summary(hour)
        assert (summary["tasks_created"], summary["relations_inserted"]) == (0, 0)
        assert summary["tasks_updated"] > 0
