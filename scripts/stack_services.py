"""The backing services of ``stack.py up --executor celery``, the compose file without Docker.

PostgreSQL (the metadata database and Celery's result backend) runs a cluster of its own in
``<home>/postgres/``; Redis (the Celery broker) keeps nothing on disk; each Celery worker
runs in a UTS namespace of its own, so that it has a host name of its own as a container
does, and task instances report which worker ran them. Debian's packages provide the
servers; a missing one is installed with apt-get. Standard library only.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from stack_processes import ROOT, Layout, StackError, run_cli, spawn, tail, write_private

# The one file of Airflow settings that docker-compose.yaml reads too (env_file:).
SHARED_SETTINGS = ROOT / "deploy" / "airflow.env"
POSTGRES_USER = "airflow"
POSTGRES_DB = "airflow"
# Debian's postgresql package creates this system user; the server refuses to run as root.
POSTGRES_SYSTEM_USER = "postgres"
# A fast shutdown: open sessions are ended rather than waited for.
POSTGRES_STOP_SIGNAL = signal.SIGINT
WORKER_PREFIX = "worker-"
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


def shared_settings(path: Path = SHARED_SETTINGS) -> dict[str, str]:
    """The KEY=value lines of the shared settings file, in order."""
    settings = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def _ensure_debian_package(found: bool, package: str, layout: Layout) -> None:
    """Install ``package`` with apt-get unless ``found``; StackError where that is impossible."""
    if found:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(f"{package} is missing: install Debian's {package!r} package")
    print(f"Installing Debian's {package} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    try:
        run_cli(layout, "apt", install, env)
    except StackError:
        run_cli(layout, "apt", ["apt-get", "update"], env)
        run_cli(layout, "apt", install, env)


# --- PostgreSQL ---------------------------------------------------------------------


def _postgres_bin(layout: Layout) -> Path:
    """The newest installed PostgreSQL's bin folder (Debian keeps one per major version)."""

    def found() -> list[Path]:
        return sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )

    _ensure_debian_package(bool(found()), "postgresql", layout)
    return found()[-1]


def _unreachable(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder on the way to ``path`` that ``user`` may not enter, if any."""
    for folder in [*reversed(path.parents), path]:
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def _postgres_prefix(layout: Layout, password_file: Path) -> list[str]:
    """How to run PostgreSQL's programs: as the postgres system user when this is root.

    The server refuses to run as root. That user gets the cluster's folder and password
    file, and must be able to reach them.
    """
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        raise StackError(f"no {POSTGRES_SYSTEM_USER!r} user to run PostgreSQL as") from None
    if blocked := _unreachable(layout.postgres, user):
        raise StackError(
            f"PostgreSQL runs as {user.pw_name}, who cannot enter {blocked}; "
            "choose a --home it can reach"
        )
    for path in (layout.postgres, password_file):
        os.chown(path, user.pw_uid, user.pw_gid)
    return ["setpriv", f"--reuid={user.pw_name}", f"--regid={user.pw_name}", "--init-groups"]


def start_postgres(layout: Layout, port: int) -> str:
    """Start (creating on first use) the stack's cluster on 127.0.0.1:``port``.

    Returns the address of its ``airflow`` database, ``user:password@host:port/airflow``,
    for the URLs of the metadata database and of Celery's result backend. The password is made once and
    kept in ``postgres/password``, as the cluster keeps it.
    """
    bin_dir = _postgres_bin(layout)
    layout.postgres.mkdir(parents=True, exist_ok=True)
    data = layout.postgres / "data"
    password_file = layout.postgres / "password"
    if not password_file.exists():
        write_private(password_file, secrets.token_urlsafe(24))
    password = password_file.read_text(encoding="utf-8").strip()
    prefix = _postgres_prefix(layout, password_file)
    if not (data / "PG_VERSION").exists():
        print("Creating the PostgreSQL cluster ...", flush=True)
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", POSTGRES_USER]
        initdb += ["--pwfile", str(password_file), "--auth=scram-sha-256"]
        initdb += ["--encoding=UTF8", "--no-locale"]
        run_cli(layout, "postgres-init", [*prefix, *initdb], dict(os.environ))
    server = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
    # TCP on loopback only; no Unix socket, whose path length the home folder could exceed.
    server += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
    proc = spawn(layout, "postgres", [*prefix, *server], dict(os.environ))
    client_env = {**os.environ, "PGPASSWORD": password}
    where = ["-h", "127.0.0.1", "-p", str(port), "-U", POSTGRES_USER]
    deadline = time.monotonic() + 60
    while subprocess.run(
        [str(bin_dir / "pg_isready"), *where, "-q"], env=client_env, check=False
    ).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StackError(f"PostgreSQL did not start:\n{tail(layout.log('postgres'))}")
        time.sleep(0.3)
    exists = subprocess.run(
        [str(bin_dir / "psql"), *where, "-d", "postgres", "-tAc"]
        + [f"SELECT 1 FROM pg_database WHERE datname = '{POSTGRES_DB}'"],
        env=client_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if exists.stdout.strip() != "1":
        createdb = [str(bin_dir / "createdb"), *where, POSTGRES_DB]
        run_cli(layout, "postgres-init", createdb, client_env)
    return f"{POSTGRES_USER}:{password}@127.0.0.1:{port}/{POSTGRES_DB}"


# --- Redis --------------------------------------------------------------------------


def start_redis(layout: Layout, port: int) -> str:
    """Start Redis on 127.0.0.1:``port`` without persistence; returns the broker URL.

    An empty broker after a restart loses nothing: the scheduler re-queues task instances
    whose messages are gone.
    """
    _ensure_debian_package(shutil.which("redis-server") is not None, "redis-server", layout)
    layout.redis.mkdir(parents=True, exist_ok=True)
    argv = [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--dir", str(layout.redis), "--save", "", "--appendonly", "no"]
    proc = spawn(layout, "redis", argv, dict(os.environ))
    deadline = time.monotonic() + 30
    while not _redis_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StackError(f"Redis did not start:\n{tail(layout.log('redis'))}")
        time.sleep(0.2)
    return f"redis://127.0.0.1:{port}/0"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- Celery workers -----------------------------------------------------------------


def worker_hostname(number: int) -> str:
    """The host name worker ``number`` (from 1) runs under, as a container would."""
    return f"airflow-{WORKER_PREFIX}{number}"


def start_workers(layout: Layout, count: int, env: dict[str, str]) -> dict[str, str]:
    """Start ``count`` Celery workers, each in a UTS namespace with its own host name.

    Returns their component names (``worker-1``...) and Celery node names. They serve no logs: task logs land in the stack's
    ``logs/`` folder, which the API server reads directly (a log server each would need a
    port each on this one host).
    """
    airflow = str(Path(sys.executable).parent / "airflow")
    # Root may make a UTS namespace; anyone else makes a user namespace to hold it.
    unshare = ["unshare", "--uts"] if os.geteuid() == 0 else ["unshare", "-r", "--uts"]
    rename = (
        "import os, socket, sys; socket.sethostname(sys.argv[1]); "
        "os.execv(sys.argv[2], sys.argv[2:])"
    )
    nodes = {}
    for number in range(1, count + 1):
        host = worker_hostname(number)
        name, node = f"{WORKER_PREFIX}{number}", f"celery@{host}"
        argv = [*unshare, sys.executable, "-c", rename, host, airflow, "celery", "worker"]
        argv += ["--celery-hostname", node, "--skip-serve-logs"]
        spawn(layout, name, argv, env)
        nodes[name] = node
    return nodes


def workers_answering(nodes: list[str], env: dict[str, str]) -> set[str]:
    """Which of the Celery ``nodes`` answer a ping (the compose file's worker health check)."""
    celery = str(Path(sys.executable).parent / "celery")
    result = subprocess.run(
        [celery, "--app", CELERY_APP, "inspect", "ping", "--timeout", "5", "-d", ",".join(nodes)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return {node for node in nodes if f"{node}: OK" in result.stdout}
