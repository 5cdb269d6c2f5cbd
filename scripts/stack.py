"""`make up` / `make down`: a local Airflow 3 that runs the pipelines the way production does.

    python scripts/stack.py up      [--home DIR] [--port N] [--emulator-port N] ...
    python scripts/stack.py status  [--home DIR]
    python scripts/stack.py down    [--home DIR]

``up`` starts the local Salesforce (the emulator, seeded with the demo org), migrates a
SQLite metadata database, creates the ``salesforce_api`` pool, lands generated demo events
for the last 24 hours, and starts Airflow's API server (UI and REST API), scheduler, DAG
processor and triggerer as background processes. It returns once the API server reports
every component healthy and both DAGs are parsed, and prints the URL and the login.

SQLite with the LocalExecutor needs no setup and is enough for one machine;
docker-compose.yaml is the PostgreSQL and Celery deployment.

Everything lives in one folder (default ``.airflow/`` in the project): ``airflow.db`` and
``airflow.cfg``, ``logs/`` (one log per process, plus Airflow's task logs), ``run/`` (pid
files), ``lake/``, ``emulator/`` (the local org, kept between restarts), ``stack.env`` (the
settings every Airflow process gets; source it to point the ``airflow`` CLI at this stack)
and ``stack.json`` (URL, login, ports; tests read it).

Ports default to 8080 (UI), 8443 (emulator), 8793 and 8794 (the scheduler's and triggerer's
log servers), overridable by environment (AIRFLOW_API_PORT, EMULATOR_PORT,
AIRFLOW_WORKER_LOG_PORT, AIRFLOW_TRIGGER_LOG_PORT) or options; 0 picks a free port. The
login is ``admin`` with AIRFLOW_ADMIN_PASSWORD (default ``admin``), pinned in the
SimpleAuthManager passwords file so it survives restarts.

``down`` and ``status`` use only the standard library, so they work without the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Stopped in this order: nothing new is scheduled while the rest shuts down, and the
# emulator outlives every task that might still be talking to it.
COMPONENTS = ("scheduler", "triggerer", "dag-processor", "api-server", "emulator")
DAG_IDS = ("activity_sync_hourly", "activity_sync_audit")
DEMO_ORG = "demo"
DEMO_CONN_ID = "salesforce_demo"
POOL = ("salesforce_api", "4", "Salesforce API calls")
USERNAME = "admin"


class StackError(RuntimeError):
    """The stack could not be brought up; the message says which part and why."""


@dataclass(frozen=True)
class Layout:
    """Where one stack keeps its files."""

    home: Path

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def emulator(self) -> Path:
        return self.home / "emulator"

    @property
    def env_file(self) -> Path:
        return self.home / "stack.env"

    @property
    def info_file(self) -> Path:
        return self.home / "stack.json"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


# --- processes ------------------------------------------------------------------------


def started_at(pid: int) -> str | None:
    """When ``pid`` started, as ``ps`` tells it; None when it is gone or a zombie."""
    result = subprocess.run(
        ["ps", "-o", "stat=", "-o", "lstart=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    state, _, started = result.stdout.strip().partition(" ")
    if result.returncode != 0 or not state or state.startswith("Z"):
        return None
    return started.strip()


def running_pid(layout: Layout, name: str) -> int | None:
    """The pid of the component if this stack started it and it still runs.

    The pid file records when the process started: a live process that started at another
    time has a recycled pid and is not ours. (Command lines cannot tell: Airflow retitles
    its processes.)
    """
    try:
        recorded = json.loads(layout.pid_file(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if started_at(recorded["pid"]) != recorded["started_at"]:
        return None
    return recorded["pid"]


def _spawn(layout: Layout, name: str, argv: list[str], env: dict[str, str]):
    """Start ``argv`` in the background, logging to ``logs/<name>.log``.

    In a session of its own: a Ctrl-C in the terminal that ran ``make up`` does not reach
    it, and ``down`` ends it together with all its children.
    """
    with layout.log(name).open("ab") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    layout.pid_file(name).write_text(
        json.dumps({"pid": proc.pid, "started_at": started_at(proc.pid), "argv": argv}),
        encoding="utf-8",
    )
    return proc


def stop_component(layout: Layout, name: str, timeout: float = 30) -> bool:
    """SIGTERM the component's process group, SIGKILL it after ``timeout``; True if it ran."""
    pid = running_pid(layout, name)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while started_at(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if started_at(pid) is not None:
            _signal_group(pid, signal.SIGKILL)
    layout.pid_file(name).unlink(missing_ok=True)
    return pid is not None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# --- HTTP ---------------------------------------------------------------------------


def _http(
    method: str, url: str, body: dict | None = None, token: str | None = None, timeout=10
) -> tuple[int, Any]:
    """A JSON request with the standard library; (status, decoded body or text)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def _health(url: str) -> dict[str, str] | None:
    """Each component's status from ``/api/v2/monitor/health``, or None if unreachable."""
    try:
        status, body = _http("GET", f"{url}/api/v2/monitor/health", timeout=5)
    except OSError:
        return None
    if status != 200 or not isinstance(body, dict):
        return None
    return {name: (part or {}).get("status") or "unknown" for name, part in body.items()}


# --- configuration ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port(value: int, host: str, env_name: str) -> int:
    """``value``, or a free port for 0; a port in use is refused before anything starts."""
    if not value:
        return _free_port()
    with socket.socket() as s:
        try:
            s.bind((host, value))
        except OSError as exc:
            raise StackError(
                f"port {value} on {host} is in use ({exc.strerror}); another stack? "
                f"Set {env_name} or pass 0 for a free port"
            ) from None
    return value


def base_url(host: str, port: int) -> str:
    """Where browsers and tasks reach the API server (listening on all addresses: loopback)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def airflow_settings(
    layout: Layout, *, host: str, port: int, log_ports: tuple[int, int], connection: dict
) -> dict[str, str]:
    """The environment every Airflow process of this stack gets (and stack.env holds)."""
    url = base_url(host, port)
    return {
        "AIRFLOW_HOME": str(layout.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The LocalExecutor forks this many workers up front; 32 would crowd a laptop.
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "8"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{layout.home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.passwords_file),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        # Tasks reach the execution API through these; they must name the port in use.
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_ports[0]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_ports[1]),
        # An edited DAG file shows up within half a minute instead of five.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "PYTHONPATH": str(ROOT / "include"),
        "ACTIVITY_SYNC_LAKE": str(layout.lake),
        "ACTIVITY_SYNC_ORGS": os.environ.get(
            "ACTIVITY_SYNC_ORGS", str(ROOT / "include" / "config" / "orgs.yaml")
        ),
        # The emulator finishes Bulk jobs at once; production's 2 s poll would only wait.
        "ACTIVITY_SYNC_BULK_POLL_SECONDS": os.environ.get("ACTIVITY_SYNC_BULK_POLL_SECONDS", "0.5"),
        f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}": json.dumps(connection),
    }


def _write_private(path: Path, text: str) -> None:
    """Written readable by the owner only: it holds the login and connection secrets."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def _write_env_file(layout: Layout, settings: dict[str, str]) -> None:
    lines = [
        "# The environment of this stack's Airflow processes, written by scripts/stack.py up.",
        f"# Use the airflow CLI against it:  . {layout.env_file} && {BIN / 'airflow'} dags list",
        *(f"export {key}={shlex.quote(value)}" for key, value in sorted(settings.items())),
    ]
    _write_private(layout.env_file, "\n".join(lines) + "\n")


# --- demo events --------------------------------------------------------------------


def last_complete_hours(now: datetime, count: int) -> list[datetime]:
    """The ``count`` whole UTC hours before ``now``, oldest first."""
    top = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=n) for n in range(count, 0, -1)]


def land_events(
    lake: Path,
    connect: Callable[[], Any],
    hours: list[datetime],
    *,
    org_id: str = DEMO_ORG,
    sends: int = 1500,
) -> int:
    """Land generated email activity that *arrived* in ``hours`` (UTC); returns the count.

    The CRM is mirrored from the org first so the events address its real Contacts, Leads
    and Users. Whole days are generated (``sends`` messages a day, one seed per day, so a
    re-run lands the same files) and cut to the arrival hours asked for; the day before
    the first hour is included for its late arrivals. Each landed hour file is replaced.
    """
    import pandas as pd

    from activity_sync.crm import read_crm
    from activity_sync.generate import generate_day, write_landing
    from activity_sync.mirror import refresh_crm
    from activity_sync.salesforce import SalesforceClient
    from activity_sync.tenants import load_orgs

    if not hours:
        return 0
    org = next((o for o in load_orgs() if o.org_id == org_id), None)
    if org is None or "://" in org.landing:
        raise StackError(f"org {org_id!r} with a local landing folder is not in the orgs file")
    crm_dir = lake / "crm" / f"org_id={org_id}"
    refresh_crm(SalesforceClient(connect, poll_wait=0.2), crm_dir)
    crm = read_crm(crm_dir)
    first, last = min(hours).date() - timedelta(days=1), max(hours).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    events = pd.concat(
        [
            generate_day(crm, org_id=org_id, day=day, seed=day.toordinal(), sends=sends)
            for day in days
        ],
        ignore_index=True,
    )
    arrived = pd.to_datetime(events["arrived_at"], utc=True, format="ISO8601").dt.floor("h")
    wanted = arrived.isin(pd.DatetimeIndex([pd.Timestamp(h) for h in hours]))
    write_landing(events[wanted], lake / org.landing, org_id)
    return int(wanted.sum())


# --- up -----------------------------------------------------------------------------


def _start_emulator(layout: Layout, port: int, seed: str, env: dict[str, str]):
    """The emulator as a daemon; returns an EmulatorProcess handle for its API."""
    from salesforce_emulator import process

    layout.emulator.mkdir(parents=True, exist_ok=True)
    ready_file = layout.emulator / "connection.json"
    ready_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "salesforce_emulator",
        "serve",
        "--data-dir",
        str(layout.emulator),
        "--port",
        str(port),
        "--seed",
        seed,
    ]
    # Its stdout carries one "ready" line for a parent that stays; this one reads the file.
    proc = _spawn(layout, "emulator", argv, env)
    deadline = time.monotonic() + 90
    while not ready_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StackError(f"the emulator did not start:\n{_tail(layout.log('emulator'))}")
        time.sleep(0.2)
    info = process.EmulatorInfo.from_json(json.loads(ready_file.read_text(encoding="utf-8")))
    emulator = process.EmulatorProcess(proc, info, layout.log("emulator"))
    emulator.stats()  # TLS, token and store all answer
    return emulator


def _run_cli(layout: Layout, name: str, argv: list[str], env: dict[str, str]) -> None:
    with layout.log(name).open("ab") as log:
        result = subprocess.run(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(argv[1:])}` failed:\n{_tail(layout.log(name))}")


def _wait_until_ready(layout: Layout, url: str, password: str, timeout: float) -> None:
    """Healthy components, a login that works, both DAGs parsed and no import errors."""
    deadline = time.monotonic() + timeout
    waiting_for = "the API server"
    while time.monotonic() < deadline:
        for name in AIRFLOW_COMPONENTS:
            if running_pid(layout, name) is None:
                raise StackError(f"airflow {name} exited:\n{_tail(layout.log(name))}")
        health = _health(url)
        if health is None:
            waiting_for = "the API server"
        elif unhealthy := sorted(k for k, v in health.items() if v != "healthy"):
            waiting_for = "healthy " + ", ".join(unhealthy)
        else:
            status, body = _http(
                "POST", f"{url}/auth/token", {"username": USERNAME, "password": password}
            )
            if status != 201:
                raise StackError(f"login as {USERNAME} failed: {status} {body}")
            token = body["access_token"]
            _, errors = _http("GET", f"{url}/api/v2/importErrors", token=token)
            if errors.get("total_entries"):
                details = "\n".join(e["stack_trace"] for e in errors["import_errors"])
                raise StackError(f"DAG import errors:\n{details}")
            _, dags = _http("GET", f"{url}/api/v2/dags?limit=100", token=token)
            parsed = {d["dag_id"] for d in dags.get("dags", [])}
            if parsed.issuperset(DAG_IDS):
                return
            waiting_for = "the DAG processor to parse " + ", ".join(sorted(set(DAG_IDS) - parsed))
        time.sleep(1)
    raise StackError(f"not ready after {timeout:.0f} s, still waiting for {waiting_for}")


def up(args: argparse.Namespace) -> int:
    layout = Layout(args.home)
    running = [name for name in COMPONENTS if running_pid(layout, name)]
    if len(running) == len(COMPONENTS):
        print(f"Already up in {layout.home}.")
        _print_access(layout)
        return 0
    if running:
        print(f"Partly running ({', '.join(running)}); `make down` first.", file=sys.stderr)
        return 1
    started = time.monotonic()
    for folder in (layout.home, layout.logs, layout.run, layout.lake):
        folder.mkdir(parents=True, exist_ok=True)
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "admin")
    # Users already in the file keep their password: writing it pins the login.
    _write_private(layout.passwords_file, json.dumps({USERNAME: password}))
    host = args.host
    base_env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    airflow = str(BIN / "airflow")
    try:
        port = _port(args.port, host, "AIRFLOW_API_PORT")
        log_ports = (
            _port(args.worker_log_port, "0.0.0.0", "AIRFLOW_WORKER_LOG_PORT"),
            _port(args.trigger_log_port, "0.0.0.0", "AIRFLOW_TRIGGER_LOG_PORT"),
        )
        if args.emulator_port:
            _port(args.emulator_port, "127.0.0.1", "EMULATOR_PORT")
        print(f"Starting the local Salesforce (seed {args.seed}) ...", flush=True)
        emulator = _start_emulator(layout, args.emulator_port, args.seed, base_env)
        settings = airflow_settings(
            layout,
            host=host,
            port=port,
            log_ports=log_ports,
            connection=emulator.airflow_connection(),
        )
        _write_env_file(layout, settings)
        env = {**base_env, **settings}
        print("Migrating the metadata database (SQLite) ...", flush=True)
        _run_cli(layout, "db-migrate", [airflow, "db", "migrate"], env)
        with layout.log("pools").open("ab") as pool_log:
            pool = subprocess.Popen(
                [airflow, "pools", "set", *POOL],
                env=env,
                cwd=ROOT,
                stdout=pool_log,
                stderr=subprocess.STDOUT,
            )
        print("Starting " + ", ".join(AIRFLOW_COMPONENTS) + " ...", flush=True)
        for name in AIRFLOW_COMPONENTS:
            argv = [airflow, name]
            if name == "api-server":
                argv += ["--host", host, "--port", str(port), "--workers", "1"]
            _spawn(layout, name, argv, env)
        hours = last_complete_hours(datetime.now(UTC), args.demo_hours)
        if hours:
            print(f"Landing demo events for the last {len(hours)} hours ...", flush=True)
            landed = land_events(layout.lake, emulator.simple_salesforce, hours)
            print(
                f"  {landed:,} events, arrived {hours[0]:%Y-%m-%d %H:00} to "
                f"{hours[-1] + timedelta(hours=1):%Y-%m-%d %H:00} UTC"
            )
        if pool.wait(timeout=args.timeout) != 0:
            raise StackError(f"`airflow pools set` failed:\n{_tail(layout.log('pools'))}")
        url = base_url(host, port)
        print(f"Waiting for {url} to report healthy and the DAGs parsed ...", flush=True)
        _wait_until_ready(layout, url, password, args.timeout)
    except (StackError, OSError, subprocess.SubprocessError) as exc:
        print(f"up failed: {exc}", file=sys.stderr)
        _stop_all(layout)
        return 1
    except BaseException:
        # Whatever else went wrong (a Ctrl-C included), leave nothing half started.
        _stop_all(layout)
        raise
    info = {
        "url": url,
        "username": USERNAME,
        "password": password,
        "home": str(layout.home),
        "logs": str(layout.logs),
        "lake": str(layout.lake),
        "env_file": str(layout.env_file),
        "emulator": {
            "instance_url": emulator.info.instance_url,
            "connection_file": str(layout.emulator / "connection.json"),
        },
        "ports": {
            "api": port,
            "emulator": emulator.info.port,
            "worker_log_server": log_ports[0],
            "trigger_log_server": log_ports[1],
        },
    }
    _write_private(layout.info_file, json.dumps(info, indent=2))
    print(f"\nUp in {time.monotonic() - started:.0f} s.")
    _print_access(layout)
    return 0


def _print_access(layout: Layout) -> None:
    info = json.loads(layout.info_file.read_text(encoding="utf-8"))
    logs = Path(info["logs"])
    print(f"  Airflow UI and REST API  {info['url']}")
    print(f"  Login                    {info['username']} / {info['password']}")
    print(f"  Activity audit page      {info['url']}/activity-audit/")
    print(f"  Salesforce (emulator)    {info['emulator']['instance_url']}")
    print(f"  Process logs             {logs}/{{{','.join(COMPONENTS)}}}.log")
    print(f"  Task logs                {logs}/dag_id=*/")
    print(f"  Lake                     {info['lake']}")
    print(f"  airflow CLI              . {info['env_file']} && {BIN / 'airflow'} dags list")
    print("New DAGs start paused: unpause activity_sync_hourly (and activity_sync_audit)")
    print("in the UI to let the scheduler run them. Stop everything with `make down`.")


# --- down / status ------------------------------------------------------------------


def _stop_all(layout: Layout, timeout: float = 30) -> list[str]:
    """Stop every component that runs; returns their names."""
    return [name for name in COMPONENTS if stop_component(layout, name, timeout)]


def down(args: argparse.Namespace) -> int:
    layout = Layout(args.home)
    stopped = _stop_all(layout, args.timeout)
    print(f"Stopped {', '.join(stopped)}." if stopped else f"Nothing running in {layout.home}.")
    return 0


def status(args: argparse.Namespace) -> int:
    """Exit 0 when every component runs, 1 otherwise."""
    layout = Layout(args.home)
    pids = {name: running_pid(layout, name) for name in COMPONENTS}
    for name, pid in pids.items():
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"  {name:<14} {state}")
    if layout.info_file.exists() and pids["api-server"]:
        url = json.loads(layout.info_file.read_text(encoding="utf-8"))["url"]
        health = _health(url) or {}
        print(f"  health         {', '.join(f'{k} {v}' for k, v in health.items()) or 'n/a'}")
        _print_access(layout)
    return 0 if all(pids.values()) else 1


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", type=Path, default=ROOT / ".airflow", help="the stack's folder (AIRFLOW_HOME)"
    )
    parser = argparse.ArgumentParser(prog="scripts/stack.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", parents=[common], help="start, and wait until ready")
    start.add_argument("--host", default="127.0.0.1", help="address the UI listens on")
    start.add_argument("--port", type=int, default=_env_int("AIRFLOW_API_PORT", 8080))
    start.add_argument("--emulator-port", type=int, default=_env_int("EMULATOR_PORT", 8443))
    start.add_argument(
        "--worker-log-port", type=int, default=_env_int("AIRFLOW_WORKER_LOG_PORT", 8793)
    )
    start.add_argument(
        "--trigger-log-port", type=int, default=_env_int("AIRFLOW_TRIGGER_LOG_PORT", 8794)
    )
    start.add_argument("--seed", default="demo", help="emulator org for a new stack")
    start.add_argument(
        "--demo-hours", type=int, default=24, help="hours of demo events to land (0: none)"
    )
    start.add_argument("--timeout", type=float, default=300, help="seconds to wait for ready")
    stop = commands.add_parser("down", parents=[common], help="stop every process of the stack")
    stop.add_argument("--timeout", type=float, default=30, help="seconds before SIGKILL")
    commands.add_parser("status", parents=[common], help="what runs, and where")
    args = parser.parse_args(argv)
    args.home = args.home.resolve()
    return {"up": up, "down": down, "status": status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
