"""`make up` / `make down`: a local Airflow 3 that runs the pipelines the way production does.

    python scripts/stack.py up      [--executor local|celery] [--home DIR] [--port N] ...
    python scripts/stack.py status  [--home DIR]
    python scripts/stack.py down    [--home DIR]

``up`` starts the local Salesforce (one emulator per Salesforce connection named in the
orgs file, ACTIVITY_SYNC_ORGS, the first seeded with ``--seed``, the others with the next
seed numbers), migrates the metadata database, creates the ``salesforce_api`` pool, lands
generated demo events for the last 24 hours for every org, and starts Airflow's API server
(UI and REST API), scheduler, DAG processor and triggerer as background processes. It
returns once the API server reports every component healthy and both DAGs are parsed, and
prints the URL and the login.

Two executors:

- ``local`` (the default): SQLite and the LocalExecutor, nothing else to set up.
- ``celery``: the deployment of docker-compose.yaml without Docker. PostgreSQL (a cluster of
  the stack's own), Redis and two Celery workers, each with a host name of its own; ``up``
  also waits for both workers to answer a ping. Both read their Airflow settings from
  deploy/airflow.env, the file the compose file reads; the caller's environment overrides
  a value in it (as ``environment:`` does ``env_file:`` in compose).

Everything lives in one folder (default ``.airflow/`` in the project): ``airflow.cfg`` (and
``airflow.db`` or ``postgres/``), ``logs/`` (one log per process, plus Airflow's task logs),
``run/`` (pid files), ``lake/``, ``emulator/`` (the local orgs, kept between restarts),
``stack.env`` (the settings every Airflow process gets; source it to point the ``airflow``
CLI at this stack) and ``stack.json`` (URL, login, ports; tests read it).

Ports default to 8080 (UI), 8443 (the first emulator), 8793 and 8794 (the scheduler's and
triggerer's log servers), overridable by environment (AIRFLOW_API_PORT, EMULATOR_PORT,
AIRFLOW_WORKER_LOG_PORT, AIRFLOW_TRIGGER_LOG_PORT) or options; 0 picks a free port. Other
emulators, PostgreSQL and Redis take free ports. The login is ``admin`` with
AIRFLOW_ADMIN_PASSWORD (default ``admin``), pinned in the SimpleAuthManager passwords file
so it survives restarts.

``down`` and ``status`` use only the standard library, so they work without the venv.
Beside this file: stack_processes.py (pid files, logs, ports), stack_services.py
(PostgreSQL, Redis, Celery workers, deploy/airflow.env) and stack_salesforce.py (the
emulators and the demo events).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stack_processes import (
    ROOT,
    Layout,
    StackError,
    base_url,
    free_port,
    health,
    http,
    port,
    restart_always,
    run_cli,
    running_pid,
    spawn,
    stop_components,
    tail,
    write_private,
)
from stack_salesforce import (
    land_events,
    last_complete_hours,
    org_connections,
    seed_for,
    start_emulator,
)
from stack_services import (
    POSTGRES_STOP_SIGNAL,
    shared_settings,
    start_postgres,
    start_redis,
    start_workers,
    workers_answering,
)

BIN = Path(sys.executable).parent
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Stopped in waves, each wave's components together: first nothing new is scheduled and
# workers finish their tasks while those can still reach the API server and the emulators;
# then the API server and the emulators; the broker and database last.
STOP_WAVES = (
    ("scheduler", "worker", "triggerer", "dag-processor"),
    ("api-server", "emulator"),
    ("redis", "postgres"),
)
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
CELERY_WORKERS = 2
DAG_IDS = ("activity_sync_hourly", "activity_sync_audit")
USERNAME = "admin"


def stop_rank(name: str) -> int:
    """The wave of STOP_WAVES that component ``name`` (``worker-2``, ``emulator-<conn>``...)
    stops in."""
    for rank, kinds in enumerate(STOP_WAVES):
        if any(name == kind or name.startswith(f"{kind}-") for kind in kinds):
            return rank
    return len(STOP_WAVES)


# --- configuration ------------------------------------------------------------------


def airflow_settings(
    layout: Layout,
    *,
    executor: str,
    host: str,
    port: int,
    log_ports: tuple[int, int],
    connections: dict[str, dict],
    database: str | None = None,
    broker: str | None = None,
) -> dict[str, str]:
    """The environment every Airflow process of this stack gets (and stack.env holds).

    ``connections`` maps Airflow connection ids to connections. For ``celery``, ``database``
    is the PostgreSQL address (``user:password@host:port/db``) and ``broker`` Redis's URL.
    """
    url = base_url(host, port)
    settings = {key: os.environ.get(key, value) for key, value in shared_settings().items()}
    settings |= {
        "AIRFLOW_HOME": str(layout.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor],
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
        "PYTHONPATH": str(ROOT / "include"),
        "ACTIVITY_SYNC_LAKE": str(layout.lake),
        "ACTIVITY_SYNC_ORGS": os.environ.get(
            "ACTIVITY_SYNC_ORGS", str(ROOT / "include" / "config" / "orgs.yaml")
        ),
        # The emulator finishes Bulk jobs at once; production's 2 s poll would only wait.
        "ACTIVITY_SYNC_BULK_POLL_SECONDS": os.environ.get("ACTIVITY_SYNC_BULK_POLL_SECONDS", "0.5"),
    }
    settings |= {f"AIRFLOW_CONN_{c.upper()}": json.dumps(v) for c, v in connections.items()}
    if executor == "local":
        settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{layout.home / 'airflow.db'}"
        # The LocalExecutor forks this many workers up front; 32 would crowd a laptop.
        settings["AIRFLOW__CORE__PARALLELISM"] = os.environ.get("AIRFLOW__CORE__PARALLELISM", "8")
    else:
        # The same URLs as docker-compose.yaml's, with this host's addresses.
        settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"postgresql+psycopg2://{database}"
        settings["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+postgresql://{database}"
        settings["AIRFLOW__CELERY__BROKER_URL"] = broker
        # Each org's Salesforce slots live in Redis too (another database than the broker's),
        # as in docker-compose.yaml: workers on several hosts share them there.
        settings["ACTIVITY_SYNC_LOCKS"] = broker.rsplit("/", 1)[0] + "/1"
        # Each worker's host name is its own (stack_services); no resolver knows it, so
        # tasks report it as it is rather than look up a fully qualified name.
        settings["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "socket.gethostname"
    return settings


def _write_env_file(layout: Layout, settings: dict[str, str]) -> None:
    lines = [
        "# The environment of this stack's Airflow processes, written by scripts/stack.py up.",
        f"# Use the airflow CLI against it:  . {layout.env_file} && {BIN / 'airflow'} dags list",
        *(f"export {key}={shlex.quote(value)}" for key, value in sorted(settings.items())),
    ]
    write_private(layout.env_file, "\n".join(lines) + "\n")


# --- up -----------------------------------------------------------------------------


def _wait_until_ready(
    layout: Layout, url: str, password: str, timeout: float, workers: dict[str, str], env: dict
) -> None:
    """Healthy components, a login that works, both DAGs parsed, no import errors, and each
    Celery worker (component name: node name) answering a ping."""
    deadline = time.monotonic() + timeout
    waiting_for = "the API server"
    while time.monotonic() < deadline:
        for name in [*AIRFLOW_COMPONENTS, *workers]:
            if running_pid(layout, name) is None:
                raise StackError(f"airflow {name} exited:\n{tail(layout.log(name))}")
        states = health(url)
        if states is None:
            waiting_for = "the API server"
        elif unhealthy := sorted(k for k, v in states.items() if v != "healthy"):
            waiting_for = "healthy " + ", ".join(unhealthy)
        else:
            status, body = http(
                "POST", f"{url}/auth/token", {"username": USERNAME, "password": password}
            )
            if status != 201:
                raise StackError(f"login as {USERNAME} failed: {status} {body}")
            token = body["access_token"]
            _, errors = http("GET", f"{url}/api/v2/importErrors", token=token)
            if errors.get("total_entries"):
                details = "\n".join(e["stack_trace"] for e in errors["import_errors"])
                raise StackError(f"DAG import errors:\n{details}")
            _, dags = http("GET", f"{url}/api/v2/dags?limit=100", token=token)
            parsed = {d["dag_id"] for d in dags.get("dags", [])}
            nodes = list(workers.values())
            silent = set(nodes) - workers_answering(nodes, env) if nodes else set()
            if parsed.issuperset(DAG_IDS) and not silent:
                return
            waiting_for = (
                f"the Celery workers {', '.join(sorted(silent))}"
                if silent
                else "the DAG processor to parse " + ", ".join(sorted(set(DAG_IDS) - parsed))
            )
        time.sleep(1)
    raise StackError(f"not ready after {timeout:.0f} s, still waiting for {waiting_for}")


def up(args: argparse.Namespace) -> int:
    layout = Layout(args.home)
    recorded = layout.recorded()
    running = [name for name in recorded if running_pid(layout, name)]
    if running and len(running) == len(recorded):
        print(f"Already up in {layout.home}.")
        _print_access(layout)
        return 0
    if running:
        print(f"Partly running ({', '.join(running)}); `make down` first.", file=sys.stderr)
        return 1
    for name in recorded:  # left by a stack that died: not ours to stop, nor to report
        layout.pid_file(name).unlink(missing_ok=True)
    started = time.monotonic()
    for folder in (layout.home, layout.logs, layout.run, layout.lake):
        folder.mkdir(parents=True, exist_ok=True)
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "admin")
    # Users already in the file keep their password: writing it pins the login.
    write_private(layout.passwords_file, json.dumps({USERNAME: password}))
    host = args.host
    base_env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    airflow = str(BIN / "airflow")
    try:
        from activity_sync.airflow_adapter import (
            SALESFORCE_POOL,
            SALESFORCE_POOL_DESCRIPTION,
            SALESFORCE_POOL_SLOTS,
        )

        api_port = port(args.port, host, "AIRFLOW_API_PORT")
        log_ports = (
            port(args.worker_log_port, "0.0.0.0", "AIRFLOW_WORKER_LOG_PORT"),
            port(args.trigger_log_port, "0.0.0.0", "AIRFLOW_TRIGGER_LOG_PORT"),
        )
        if args.emulator_port:
            port(args.emulator_port, "127.0.0.1", "EMULATOR_PORT")
        org_conns = org_connections()
        emulators = {}
        for index, conn_id in enumerate(dict.fromkeys(org_conns.values())):
            seed = seed_for(args.seed, index)
            print(f"Starting the local Salesforce {conn_id} (seed {seed}) ...", flush=True)
            emulator_port = args.emulator_port if index == 0 else 0
            emulators[conn_id] = start_emulator(layout, conn_id, emulator_port, seed, base_env)
        backends = {}
        if args.executor == "celery":
            print("Starting PostgreSQL and Redis ...", flush=True)
            backends["database"] = start_postgres(layout, free_port())
            backends["broker"] = start_redis(layout, free_port())
        settings = airflow_settings(
            layout,
            executor=args.executor,
            host=host,
            port=api_port,
            log_ports=log_ports,
            connections={c: e.airflow_connection() for c, e in emulators.items()},
            **backends,
        )
        _write_env_file(layout, settings)
        env = {**base_env, **settings}
        database = "PostgreSQL" if args.executor == "celery" else "SQLite"
        print(f"Migrating the metadata database ({database}) ...", flush=True)
        run_cli(layout, "db-migrate", [airflow, "db", "migrate"], env)
        pool_argv = [airflow, "pools", "set", SALESFORCE_POOL, str(SALESFORCE_POOL_SLOTS)]
        with layout.log("pools").open("ab") as pool_log:
            pool = subprocess.Popen(
                [*pool_argv, SALESFORCE_POOL_DESCRIPTION],
                env=env,
                cwd=ROOT,
                stdout=pool_log,
                stderr=subprocess.STDOUT,
            )
        print("Starting " + ", ".join(AIRFLOW_COMPONENTS) + " ...", flush=True)
        for name in AIRFLOW_COMPONENTS:
            argv = [airflow, name]
            if name == "api-server":
                argv += ["--host", host, "--port", str(api_port), "--workers", "1"]
            spawn(layout, name, restart_always(argv), env)
        workers: dict[str, str] = {}
        if args.executor == "celery":
            print(f"Starting {CELERY_WORKERS} Celery workers ...", flush=True)
            workers = start_workers(layout, CELERY_WORKERS, env)
        hours = last_complete_hours(datetime.now(UTC), args.demo_hours)
        for org_id, conn_id in org_conns.items():
            if not hours:
                break
            connect = emulators[conn_id].simple_salesforce
            landed = land_events(layout.lake, connect, hours, org_id=org_id)
            print(
                f"Landed {landed:,} demo events for {org_id}, arrived {hours[0]:%Y-%m-%d %H:00}"
                f" to {hours[-1] + timedelta(hours=1):%Y-%m-%d %H:00} UTC",
                flush=True,
            )
        if pool.wait(timeout=args.timeout) != 0:
            raise StackError(f"`airflow pools set` failed:\n{tail(layout.log('pools'))}")
        url = base_url(host, api_port)
        print(f"Waiting for {url} to report healthy and the DAGs parsed ...", flush=True)
        _wait_until_ready(layout, url, password, args.timeout, workers, env)
    except (StackError, OSError, subprocess.SubprocessError) as exc:
        print(f"up failed: {exc}", file=sys.stderr)
        _stop_all(layout)
        return 1
    except BaseException:
        # Whatever else went wrong (a Ctrl-C included), leave nothing half started.
        _stop_all(layout)
        raise
    info = {
        "executor": args.executor,
        "url": url,
        "username": USERNAME,
        "password": password,
        "home": str(layout.home),
        "logs": str(layout.logs),
        "lake": str(layout.lake),
        "env_file": str(layout.env_file),
        "workers": sorted(workers.values()),
        "emulators": {
            org_id: {
                "conn_id": conn_id,
                "instance_url": emulators[conn_id].info.instance_url,
                "connection_file": str(layout.emulator / conn_id / "connection.json"),
            }
            for org_id, conn_id in org_conns.items()
        },
        "ports": {
            "api": api_port,
            "worker_log_server": log_ports[0],
            "trigger_log_server": log_ports[1],
        },
    }
    write_private(layout.info_file, json.dumps(info, indent=2))
    print(f"\nUp in {time.monotonic() - started:.0f} s.")
    _print_access(layout)
    return 0


def _print_access(layout: Layout) -> None:
    info = json.loads(layout.info_file.read_text(encoding="utf-8"))
    logs = Path(info["logs"])
    print(f"  Executor                 {EXECUTORS[info['executor']]}")
    print(f"  Airflow UI and REST API  {info['url']}")
    print(f"  Login                    {info['username']} / {info['password']}")
    print(f"  Activity audit page      {info['url']}/activity-audit/")
    for org_id, emulator in info["emulators"].items():
        print(f"  Salesforce of {org_id:<10} {emulator['instance_url']} (emulator)")
    if info["workers"]:
        print(f"  Celery workers           {', '.join(info['workers'])}")
    print(f"  Process logs             {logs}/<component>.log")
    print(f"  Task logs                {logs}/dag_id=*/")
    print(f"  Lake                     {info['lake']}")
    print(f"  airflow CLI              . {info['env_file']} && {BIN / 'airflow'} dags list")
    print("New DAGs start paused: unpause activity_sync_hourly (and activity_sync_audit)")
    print("in the UI to let the scheduler run them. Stop everything with `make down`.")


# --- down / status ------------------------------------------------------------------


def _stop_all(layout: Layout, timeout: float = 30) -> list[str]:
    """Stop every component that runs, wave by wave (STOP_WAVES); returns their names."""
    names = sorted(layout.recorded(), key=stop_rank)
    return [
        stopped
        for wave in range(len(STOP_WAVES) + 1)
        for stopped in stop_components(
            layout,
            [n for n in names if stop_rank(n) == wave],
            timeout,
            {"postgres": POSTGRES_STOP_SIGNAL},
        )
    ]


def down(args: argparse.Namespace) -> int:
    layout = Layout(args.home)
    stopped = _stop_all(layout, args.timeout)
    print(f"Stopped {', '.join(stopped)}." if stopped else f"Nothing running in {layout.home}.")
    return 0


def status(args: argparse.Namespace) -> int:
    """Exit 0 when every component runs, 1 otherwise (or when none was started)."""
    layout = Layout(args.home)
    pids = {name: running_pid(layout, name) for name in sorted(layout.recorded(), key=stop_rank)}
    for name, pid in pids.items():
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"  {name:<14} {state}")
    if not pids:
        print(f"  nothing started in {layout.home}")
    if layout.info_file.exists() and pids.get("api-server"):
        url = json.loads(layout.info_file.read_text(encoding="utf-8"))["url"]
        states = health(url) or {}
        print(f"  health         {', '.join(f'{k} {v}' for k, v in states.items()) or 'n/a'}")
        _print_access(layout)
    return 0 if pids and all(pids.values()) else 1


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
    start.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default="local",
        help="local: SQLite and the LocalExecutor; celery: docker-compose.yaml's deployment",
    )
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
