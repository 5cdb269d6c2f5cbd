"""Run the emulator as a child process and talk to it: for tests, the demo and DAG tests.

    from salesforce_emulator import process
    with process.start(tmp_path, seed="small") as emu:
        sf = emu.simple_salesforce()              # real simple_salesforce.Salesforce
        sf.query("SELECT Id FROM Contact LIMIT 1")
        emu.set_faults(seed=1, http_503_rate=0.2)
        conn = emu.airflow_connection()           # dict for an Airflow Connection

Trusting the emulator's CA: this machine sets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``,
which override ``Session.verify`` whenever ``trust_env`` is true. Sessions made here
therefore set ``verify=<ca_file>`` **and** ``trust_env=False``; code that builds its own
session (e.g. the product's Salesforce adapter from the connection's ``ca_bundle`` extra)
must do the same.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from salesforce_emulator.protocol import API_VERSION

_INCLUDE_DIR = str(Path(__file__).resolve().parents[1])


class EmulatorStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class EmulatorInfo:
    instance_url: str
    access_token: str
    ca_file: str
    data_dir: str
    port: int
    client_id: str
    client_secret: str
    username: str
    password: str
    org_id: str
    user_id: str
    api_version: str = API_VERSION

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> EmulatorInfo:
        return cls(**{k: payload[k] for k in cls.__dataclass_fields__ if k in payload})


def trusting_session(ca_file: str) -> requests.Session:
    """A Session that verifies against ``ca_file`` whatever the environment says."""
    session = requests.Session()
    session.verify = ca_file
    session.trust_env = False
    return session


class EmulatorProcess:
    """A running emulator: its connection details and controls. Also a context manager."""

    def __init__(self, proc: subprocess.Popen[bytes], info: EmulatorInfo, log_path: Path):
        self.proc = proc
        self.info = info
        self.log_path = log_path
        self._admin = trusting_session(info.ca_file)
        self._admin.headers["Authorization"] = f"Bearer {info.access_token}"

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._admin.close()

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self._admin.request(
            method, f"{self.info.instance_url}/__emulator/{path}", json=payload, timeout=60
        )
        if response.status_code != 200:
            raise RuntimeError(f"emulator {path}: {response.status_code} {response.text}")
        return response.json()

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "reset")

    def set_faults(self, **rates: float) -> dict[str, Any]:
        """Replace the fault settings (omitted ones become 0); ``set_faults()`` clears them."""
        return self._call("POST", "faults", rates)

    def set_settings(self, **values: Any) -> dict[str, Any]:
        return self._call("POST", "settings", values)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def expire_sessions(self) -> int:
        """Expire every session issued so far (the standing token too) until a new login."""
        return self._call("POST", "sessions/expire")["expired"]

    def user_session(self, user_id: str) -> str:
        """A session token of another active User (test control): their writes carry their Id."""
        return self._call("POST", f"users/{user_id}/session", {})["access_token"]

    def session(self) -> requests.Session:
        return trusting_session(self.info.ca_file)

    def simple_salesforce(self, **kwargs: Any):
        """A real ``simple_salesforce.Salesforce`` on the standing token (or ``session_id``)."""
        from simple_salesforce import Salesforce

        return Salesforce(
            instance_url=self.info.instance_url,
            session_id=kwargs.pop("session_id", None) or self.info.access_token,
            session=kwargs.pop("session", None) or self.session(),
            version=kwargs.pop("version", self.info.api_version),
            **kwargs,
        )

    def airflow_connection(self) -> dict[str, Any]:
        """An Airflow Connection (as a dict) that authenticates by OAuth client credentials.

        simple-salesforce posts the token request to ``https://{domain}.salesforce.com/…``;
        a domain of ``127.0.0.1:PORT/services/oauth2/token#`` turns that into the
        emulator's token URL (the rest becomes a fragment, which is never sent). The
        ``ca_bundle`` extra is for the product's adapter, which passes
        ``SalesforceHook(..., session=trusting_session(ca_bundle))``.
        """
        host_port = self.info.instance_url.removeprefix("https://")
        return {
            "conn_type": "salesforce",
            "extra": {
                "consumer_key": self.info.client_id,
                "consumer_secret": self.info.client_secret,
                "domain": f"{host_port}/services/oauth2/token#",
                "version": self.info.api_version,
                "ca_bundle": self.info.ca_file,
            },
        }


def _read_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(deadline - time.monotonic(), 0)):
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            if b"\n" in buffer:
                return json.loads(buffer.split(b"\n", 1)[0])
    finally:
        selector.close()
    raise EmulatorStartError("the emulator did not report ready")


def start(
    data_dir: str | Path,
    *,
    port: int = 0,
    seed: str | None = None,
    shared_activities: bool = True,
    faults: dict[str, float] | None = None,
    api_limit: int | None = None,
    bulk_workers: int | None = None,
    host: str = "127.0.0.1",
    cert_hosts: tuple[str, ...] = (),
    timeout: float = 60,
) -> EmulatorProcess:
    """Start ``python -m salesforce_emulator serve`` and wait until it answers."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "salesforce_emulator",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--host",
        host,
        "--shared-activities",
        "on" if shared_activities else "off",
    ]
    if seed:
        command += ["--seed", seed]
    for name in cert_hosts:
        command += ["--cert-host", name]
    if api_limit is not None:
        command += ["--api-limit", str(api_limit)]
    if bulk_workers is not None:
        command += ["--bulk-workers", str(bulk_workers)]
    if faults:
        faults_file = data_dir / "faults.json"
        faults_file.write_text(json.dumps(faults), encoding="utf-8")
        command += ["--faults", str(faults_file)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_INCLUDE_DIR, env.get("PYTHONPATH")) if p)
    log_path = data_dir / "emulator.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        ready = _read_ready_line(proc, timeout)
    except EmulatorStartError as exc:
        proc.kill()
        proc.wait()
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise EmulatorStartError(f"{exc}; log tail:\n{tail}") from None
    info = EmulatorInfo.from_json(ready)
    emulator = EmulatorProcess(proc, info, log_path)
    # The server listens before it reports ready; one admin call proves TLS and auth work.
    emulator.stats()
    return emulator
