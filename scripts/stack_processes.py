"""The process layer of scripts/stack.py: where a stack keeps its files, and its processes.

Standard library only, so ``stack.py down`` and ``status`` work without the venv. Every
process a stack starts has a pid file in ``run/`` recording when it started (pids get
recycled) and a log in ``logs/``; ``stop_component`` ends its whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


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
    def postgres(self) -> Path:
        return self.home / "postgres"

    @property
    def redis(self) -> Path:
        return self.home / "redis"

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

    def recorded(self) -> list[str]:
        """Every component with a pid file, running or not."""
        return sorted(p.stem for p in self.run.glob("*.pid")) if self.run.is_dir() else []


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


def spawn(layout: Layout, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
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


# docker-compose.yaml's `restart: always`: a component that exits on its own is started
# again. `down` signals the whole process group, so the loop ends with its component.
RESTART_ALWAYS = 'while :; do "$@"; echo "exited with $?; starting again in 5 s" >&2; sleep 5; done'


def restart_always(argv: list[str]) -> list[str]:
    """``argv`` run again whenever it exits, as the compose file's services are (an Airflow
    scheduler on SQLite can crash on a race with the API server; the stack heals as
    production does)."""
    return ["/bin/sh", "-c", RESTART_ALWAYS, argv[0], *argv]


def stop_component(
    layout: Layout, name: str, timeout: float = 30, sig: signal.Signals = signal.SIGTERM
) -> bool:
    """Send ``sig`` to the component's process group, SIGKILL it after ``timeout``.

    Returns True if it ran.
    """
    return bool(stop_components(layout, [name], timeout, {name: sig}))


def stop_components(
    layout: Layout, names: list[str], timeout: float = 30, signals: dict | None = None
) -> list[str]:
    """Stop ``names`` together: signal each (SIGTERM unless ``signals`` says otherwise),
    then wait for all at once and SIGKILL what still runs after ``timeout``. Returns the
    names that ran. Together, because each component takes seconds to shut down cleanly
    and none waits for another."""
    pids = {name: running_pid(layout, name) for name in names}
    for name, pid in pids.items():
        if pid is not None:
            signal_group(pid, (signals or {}).get(name, signal.SIGTERM))
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids.values() if pid is not None]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if started_at(pid) is not None]
    for pid in alive:
        signal_group(pid, signal.SIGKILL)
    for name in names:
        layout.pid_file(name).unlink(missing_ok=True)
    return [name for name, pid in pids.items() if pid is not None]


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pid`` leads, or ``pid`` alone if it leads none."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def run_cli(layout: Layout, name: str, argv: list[str], env: dict[str, str]) -> None:
    """Run a command to completion, logging to ``logs/<name>.log``; StackError if it fails."""
    with layout.log(name).open("ab") as log:
        result = subprocess.run(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(argv[1:])}` failed:\n{tail(layout.log(name))}")


def write_private(path: Path, text: str) -> None:
    """Written readable by the owner only: it holds the login and connection secrets."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


# --- network ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port(value: int, host: str, env_name: str) -> int:
    """``value``, or a free port for 0; a port in use is refused before anything starts."""
    if not value:
        return free_port()
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


def http(
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


def health(url: str) -> dict[str, str] | None:
    """Each component's status from ``/api/v2/monitor/health``, or None if unreachable."""
    try:
        status, body = http("GET", f"{url}/api/v2/monitor/health", timeout=5)
    except OSError:
        return None
    if status != 200 or not isinstance(body, dict):
        return None
    return {name: (part or {}).get("status") or "unknown" for name, part in body.items()}
