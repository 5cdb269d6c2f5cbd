"""plugins/activity_audit.py served by the real Airflow API server, seen by curl-like calls
and by headless Chromium with the UI's ``_token`` cookie.

One API server for the module (SimpleAuthManager with a users file, so a request without a
token is refused), on a free port, with the test AIRFLOW_HOME of conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from browser import dump_dom, requires_chromium, text_by_id
from test_audit import DAY, NOW, ORG, sample_day

from activity_sync import audit, lake

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
SECRET = "SECRET-OUTSIDE-THE-AUDIT-FOLDER"


@dataclass
class Server:
    url: str
    token: str
    lake: Path

    def get(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.url + path, headers=headers, timeout=30, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api-server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"api-server not ready in {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from airflow.utils import db

    db.initdb()
    base = tmp_path_factory.mktemp("plugin")
    lake_root = base / "lake"
    sample_day(lake_root)
    audit.run_audit(lake_root, ORG, DAY, now=NOW)
    # A symlink inside the audit folder that leads out of it must not be followed.
    outside = base / "outside"
    outside.mkdir()
    (outside / "report.html").write_text(SECRET)
    (outside / "audit.json").write_text(json.dumps({"headline": {}, "secret": SECRET}))
    evil = lake.audit_folder(lake_root, "evil", DAY)
    evil.parent.mkdir(parents=True)
    evil.symlink_to(outside, target_is_directory=True)

    passwords = base / "passwords.json"
    passwords.write_text(json.dumps({"admin": "admin"}))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ACTIVITY_SYNC_LAKE": str(lake_root),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }
    log = base / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(AIRFLOW), "api-server", "--port", str(port), "--host", "127.0.0.1", "-w", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(url, proc, log)
        response = requests.post(
            url + "/auth/token", json={"username": "admin", "password": "admin"}, timeout=30
        )
        assert response.status_code == 201, response.text
        yield Server(url, response.json()["access_token"], lake_root)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_the_api_server_lists_the_plugin_with_its_page_in_the_browse_menu(server: Server) -> None:
    response = server.get("/api/v2/plugins", server.token)
    assert response.status_code == 200
    plugin = next(p for p in response.json()["plugins"] if p["name"] == "activity_audit")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/activity-audit"]
    view = plugin["external_views"][0]
    assert (view["name"], view["url_route"], view["category"]) == (
        "Activity audit",
        "activity-audit",
        "browse",
    )


def test_the_page_refuses_a_caller_without_a_valid_token(server: Server) -> None:
    assert server.get("/activity-audit/").status_code == 401
    assert server.get("/activity-audit/", "not-a-jwt").status_code == 401
    forged = server.token[:-4] + ("AAAA" if not server.token.endswith("AAAA") else "BBBB")
    assert server.get("/activity-audit/", forged).status_code == 401
    assert server.get(f"/activity-audit/reports/{ORG}/{DAY}").status_code == 401
    cookie = server.get("/activity-audit/", cookies={"_token": "garbage"})
    assert cookie.status_code == 401


def test_the_page_lists_the_report_with_its_headline(server: Server) -> None:
    response = server.get("/activity-audit/", server.token)
    assert response.status_code == 200
    text = " ".join(response.text.split())
    assert f'href="reports/{ORG}/{DAY}"' in text
    assert f"<td>{DAY}</td><td>{ORG}</td>" in text
    assert "evil" not in text  # its audit.json is outside the audit folder


def test_a_report_is_served_with_a_policy_that_forbids_scripts(server: Server) -> None:
    response = server.get(f"/activity-audit/reports/{ORG}/{DAY}", server.token)
    assert response.status_code == 200
    assert 'id="metric-individual-mode-tasks">67' in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    document = server.get(f"/activity-audit/reports/{ORG}/{DAY}/audit.json", server.token)
    assert document.json()["headline"]["tasks"] == 7


@pytest.mark.parametrize(
    "path",
    [
        f"/activity-audit/reports/evil/{DAY}",
        f"/activity-audit/reports/evil/{DAY}/audit.json",
        f"/activity-audit/reports/..%2F..%2Foutside/{DAY}",
        f"/activity-audit/reports/{ORG}/..%2F..%2F..%2Foutside",
        f"/activity-audit/reports/%2E%2E/{DAY}",
        f"/activity-audit/reports/{ORG}/2026-11-20%00",
        "/activity-audit/reports/..;/..;/outside/x",
    ],
)
def test_no_path_reaches_outside_the_audit_folder(server: Server, path: str) -> None:
    response = requests.get(
        server.url + path, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    assert response.status_code == 404
    assert SECRET not in response.text


@requires_chromium
def test_chromium_with_the_ui_cookie_sees_the_list_and_opens_the_report(server: Server) -> None:
    listing = text_by_id(
        dump_dom(server.url + "/activity-audit/", cookies={"_token": server.token})
    )
    assert f"{DAY} {ORG} 5 6 67 -89.6% skipped 1 Open report" in listing["reports"]
    report = text_by_id(
        dump_dom(
            server.url + f"/activity-audit/reports/{ORG}/{DAY}", cookies={"_token": server.token}
        )
    )
    assert report["metric-tasks-loaded"] == "6 of 7 planned"
    assert report["metric-change-pct"] == "-89.6%"
    refused = dump_dom(server.url + "/activity-audit/")
    assert "Not authenticated" in refused


def test_the_report_folder_is_under_the_audit_root(tmp_path: Path) -> None:
    import activity_audit

    folder = activity_audit.report_folder(tmp_path, ORG, DAY)
    assert folder == lake.audit_folder(tmp_path, ORG, DAY)
