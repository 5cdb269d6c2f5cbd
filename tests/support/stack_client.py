"""Drive a stack that scripts/stack.py started, as a user does: its REST API, its Salesforce.

Shared by test_stack.py (LocalExecutor, SQLite) and test_stack_celery.py (CeleryExecutor,
PostgreSQL, Redis): start and stop the stack through the script, log in, backfill through
``POST /api/v2/backfills`` as the UI's dialog does, wait for the scheduler, read task
instances, and read each org's Salesforce (its emulator) and plans back.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import requests

from activity_sync.lake import LOAD_SUMMARY, LOADED, PLAN
from activity_sync.plan import read_plan
from activity_sync.salesforce import SalesforceClient
from salesforce_emulator import process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stack.py"
DAG_ID = "activity_sync_hourly"
RUN_TIMEOUT = 300


def load_script(name: str = "stack"):
    """A module of scripts/, which is no package: put it on sys.path, as running a script does."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module(name)


def run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 360):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float = RUN_TIMEOUT) -> Any:
    """Poll ``check`` every 2 s until it returns something other than None or False."""
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

    @classmethod
    def login(cls, home: Path) -> Stack:
        info = json.loads((home / "stack.json").read_text())
        login = {"username": info["username"], "password": info["password"]}
        token = requests.post(info["url"] + "/auth/token", json=login, timeout=30)
        assert token.status_code == 201, token.text
        return cls(home, info, token.json()["access_token"])

    @property
    def lake(self) -> Path:
        return Path(self.info["lake"])

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(
            method, self.info["url"] + path, headers=headers, timeout=30, **kwargs
        )

    # --- Salesforce -----------------------------------------------------------------

    def emulator(self, org: str) -> process.EmulatorInfo:
        connection = Path(self.info["emulators"][org]["connection_file"]).read_text()
        return process.EmulatorInfo.from_json(json.loads(connection))

    def salesforce(self, org: str) -> Callable[[], Any]:
        """Opens a simple_salesforce client on the org's emulator (its standing token)."""
        from simple_salesforce import Salesforce

        info = self.emulator(org)
        return lambda: Salesforce(
            instance_url=info.instance_url,
            session_id=info.access_token,
            session=process.trusting_session(info.ca_file),
            version=info.api_version,
        )

    def client(self, org: str) -> SalesforceClient:
        return SalesforceClient(self.salesforce(org), poll_wait=0.05, backoff=0.05)

    def set_faults(self, org: str, **rates: float) -> None:
        """The emulator's fault injection (``process.EmulatorProcess.set_faults``)."""
        info = self.emulator(org)
        session = process.trusting_session(info.ca_file)
        session.headers["Authorization"] = f"Bearer {info.access_token}"
        response = session.post(f"{info.instance_url}/__emulator/faults", json=rates, timeout=30)
        assert response.status_code == 200, response.text

    # --- the lake -------------------------------------------------------------------

    def plans(self, org: str) -> dict[str, Any]:
        """Every hour's plan of ``org`` in the lake, by partition (scheduled runs included)."""
        folders = sorted((self.lake / PLAN / f"org_id={org}").glob("date=*/hour=*"))
        return {f"{f.parent.name}/{f.name}": read_plan(f) for f in folders}

    def load_summary(self, org: str, hour: datetime) -> dict:
        from activity_sync.lake import partition

        return json.loads((partition(self.lake, LOADED, org, hour) / LOAD_SUMMARY).read_text())

    # --- runs -----------------------------------------------------------------------

    def unpause(self) -> None:
        """Let the scheduler run the hourly DAG; returns once it created the latest hour's run.

        Waiting for that run keeps a backfill requested next from writing ``dag_run`` at the
        same moment as the scheduler: on SQLite that race crashed the scheduler
        (``StaleDataError: UPDATE statement on table 'dag_run' expected to update 3 row(s)``).
        """
        response = self.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        assert response.status_code == 200, response.text

        def scheduled() -> bool:
            runs = self.api(
                "GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "scheduled"}
            )
            return runs.status_code == 200 and runs.json()["total_entries"] > 0

        wait_for("the scheduler to create the latest hour's run", scheduled, timeout=120)

    def backfill_runs(self) -> dict[str, dict]:
        """The hourly DAG's backfill runs by logical date (ISO, UTC)."""
        response = self.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "limit": 100}
        )
        response.raise_for_status()
        return {pd.Timestamp(r["logical_date"]).isoformat(): r for r in response.json()["dag_runs"]}

    def task_instances(self, run_id: str) -> list[dict]:
        """Every task instance of a run, mapped ones one by one."""
        response = self.api(
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
            params={"limit": 1000},
        )
        response.raise_for_status()
        return response.json()["task_instances"]

    def find_task_instance(self, run_id: str, task_id: str, map_index: int = -1) -> dict | None:
        """The task instance, or None while it does not exist (a mapped one not expanded)."""
        found = [
            ti
            for ti in self.task_instances(run_id)
            if ti["task_id"] == task_id and ti["map_index"] == map_index
        ]
        assert len(found) <= 1, (task_id, map_index, found)
        return found[0] if found else None

    def task_instance(self, run_id: str, task_id: str, map_index: int = -1) -> dict:
        found = self.find_task_instance(run_id, task_id, map_index)
        assert found is not None, f"no task instance {task_id}[{map_index}] in {run_id}"
        return found

    def backfill(
        self,
        hours: list[datetime],
        reprocess_behavior: str,
        conf: dict | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> dict[str, dict]:
        """Backfill ``hours`` as the UI's dialog does; wait until the scheduler has finished.

        On SQLite the API answers 503 "Database is locked" when the scheduler writes at the
        same moment (Airflow says so itself); like a user, try again. A request answered 503
        can leave its backfill row behind (Airflow 3.3's ``_cleanup_partial_backfill`` is
        best effort and hits the same lock), and then the resend gets 409 "already a running
        backfill" until the scheduler closes the empty backfill (after two minutes): after
        a 503, a 409 is waited out too. A reprocessing backfill rewrites ``dag_run`` rows the
        scheduler may be writing too; on SQLite that can surface as 500 "Database error"
        (an OperationalError Airflow does not recognise as a lock), retried the same way.
        """
        body = {
            "dag_id": DAG_ID,
            "from_date": hours[0].isoformat(),
            "to_date": hours[-1].isoformat(),
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": len(hours),
            "run_backwards": False,
            "dag_run_conf": conf or {},
        }

        # Only one backfill per DAG may be active, and the scheduler closes a finished one
        # only on its next loop: wait for that, as a user waits for the one shown running.
        self.wait_until_backfills_complete()
        refused: list[int] = []

        def created() -> requests.Response | None:
            response = self.api("POST", "/api/v2/backfills", json=body)
            busy = response.status_code == 503 or (
                response.status_code == 500 and "Database error" in response.text
            )
            if busy or (response.status_code == 409 and refused):
                refused.append(response.status_code)
                return None
            return response

        response = wait_for("the backfill to be accepted", created, timeout=240)
        assert response.status_code == 200, response.text
        backfill_id = response.json()["id"]
        runs = wait_for(
            f"backfill {backfill_id} ({reprocess_behavior}) to run",
            lambda: self.finished_runs(hours),
            timeout=timeout,
        )
        self.wait_until_backfills_complete()
        return runs

    def finished_runs(self, hours: Iterable[datetime]) -> dict[str, dict] | None:
        """The backfill runs of ``hours`` once all ended; a failed one fails the test."""
        wanted = {h.isoformat() for h in hours}
        runs = {k: r for k, r in self.backfill_runs().items() if k in wanted}
        if len(runs) < len(wanted) or any(
            r["state"] not in ("success", "failed") for r in runs.values()
        ):
            return None
        failed = {k: self._failed_tasks(r) for k, r in runs.items() if r["state"] != "success"}
        assert not failed, f"backfill runs failed: {failed}; task logs in {self.home}/logs"
        return runs

    def _failed_tasks(self, run: dict) -> dict[str, str]:
        return {
            f"{ti['task_id']}[{ti['map_index']}]": ti["state"]
            for ti in self.task_instances(run["dag_run_id"])
            if ti["state"] not in ("success", "skipped")
        }

    def wait_until_backfills_complete(self) -> None:
        """Only one backfill per DAG may be active. The scheduler closes a finished one on its
        next loop, and one left empty by a failed request after two minutes."""

        def complete() -> bool:
            response = self.api("GET", "/api/v2/backfills", params={"dag_id": DAG_ID})
            return response.status_code == 200 and all(
                b["completed_at"] for b in response.json()["backfills"]
            )

        wait_for("the backfill to be marked complete", complete, timeout=180)

    def wait_until_no_run_is_active(self) -> None:
        def idle() -> bool:
            response = self.api(
                "GET",
                f"/api/v2/dags/{DAG_ID}/dagRuns",
                params={"state": ["queued", "running"], "limit": 100},
            )
            return response.json()["total_entries"] == 0

        wait_for("every run of the hourly DAG to finish", idle)
