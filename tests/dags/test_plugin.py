"""plugins/activity_audit.py served by the real Airflow API server, seen by curl-like calls
and by headless Chromium, logged in through Airflow's own login form.

One API server for the module (SimpleAuthManager with a users file, so a request without a
token is refused), on a free port, with the test AIRFLOW_HOME of conftest.py. Its lake holds
three audited days: acme on DAY (2 of 24 hours synced) and on LATER, beta on EARLIER.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from audit_days import DAY, NOW, ORG, sample_day
from browser import browser, dump_dom, requires_chromium, text_by_id

from activity_sync import audit, lake

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
SECRET = "SECRET-OUTSIDE-THE-AUDIT-FOLDER"
JWT_SECRET = "test-plugin-jwt-secret-" + "x" * 48
EARLIER, LATER = "2026-11-18", "2026-11-22"


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
    for org_id, day in ((ORG, DAY), (ORG, LATER), ("beta", EARLIER)):
        sample_day(lake_root, day=day, org_id=org_id)
        audit.run_audit(lake_root, org_id, day, now=NOW)
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
        # Known, so a test can sign a token that has expired.
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
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


def _expired(token: str) -> str:
    """The same claims as ``token``, signed alike, but expired a minute ago."""
    import jwt

    algorithm = jwt.get_unverified_header(token)["alg"]
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 60
    return jwt.encode(claims, JWT_SECRET, algorithm=algorithm)


def test_the_page_refuses_a_caller_without_a_valid_token(server: Server) -> None:
    assert server.get("/activity-audit/").status_code == 401
    assert server.get("/activity-audit/", "not-a-jwt").status_code == 401
    forged = server.token[:-4] + ("AAAA" if not server.token.endswith("AAAA") else "BBBB")
    assert server.get("/activity-audit/", forged).status_code == 401
    assert server.get("/activity-audit/", _expired(server.token)).status_code == 401
    assert server.get(f"/activity-audit/reports/{ORG}/{DAY}").status_code == 401
    cookie = server.get("/activity-audit/", cookies={"_token": "garbage"})
    assert cookie.status_code == 401


@pytest.mark.parametrize("login", ["none", "garbage", "expired"])
def test_a_browser_without_a_valid_login_is_sent_to_airflows_login_and_back(
    server: Server, login: str
) -> None:
    cookies = {
        "none": {},
        "garbage": {"_token": "garbage"},
        "expired": {"_token": _expired(server.token)},
    }[login]
    response = requests.get(
        server.url + f"/activity-audit/reports/{ORG}/{DAY}?x=1",
        headers={"Accept": "text/html,application/xhtml+xml"},
        cookies=cookies,
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        f"/auth/login?next=%2Factivity-audit%2Freports%2F{ORG}%2F{DAY}%3Fx%3D1"
    )
    # Airflow's route takes it from there to the auth manager's login form.
    landing = requests.get(server.url + response.headers["location"], timeout=30)
    assert landing.status_code == 200 and "<html" in landing.text.lower()


@pytest.mark.parametrize(
    "path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"], ids=str.strip
)
def test_fastapis_own_pages_are_off_with_or_without_a_token(server: Server, path: str) -> None:
    for token in (None, server.token):
        response = server.get("/activity-audit" + path, token)
        assert response.status_code in (401, 404), (path, token is not None)
        assert "openapi" not in response.text.lower() and "swagger" not in response.text.lower()
    assert server.get("/activity-audit" + path, server.token).status_code == 404


def test_the_page_lists_the_reports_with_their_coverage(server: Server) -> None:
    response = server.get("/activity-audit/", server.token)
    assert response.status_code == 200
    text = " ".join(response.text.split())
    assert f'href="reports/{ORG}/{DAY}"' in text
    assert f'<td class="day">{DAY}</td><td>{ORG}</td>' in text
    assert "2 of 24: not synced 00:00–09:00 UTC, 11:00–22:00 UTC" in text
    assert "3 of 3 reports." in text
    assert "evil" not in text  # its audit.json is outside the audit folder


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        (f"?org={ORG}", [(LATER, ORG), (DAY, ORG)]),
        ("?org=beta", [(EARLIER, "beta")]),
        (f"?from={DAY}", [(LATER, ORG), (DAY, ORG)]),
        (f"?from={EARLIER}&to={DAY}", [(DAY, ORG), (EARLIER, "beta")]),
        (f"?org={ORG}&from={DAY}&to={DAY}", [(DAY, ORG)]),
        ("?org=nobody", []),
    ],
)
def test_the_list_filters_by_org_and_date_range(server: Server, query: str, shown) -> None:
    response = server.get("/activity-audit/" + query, server.token)
    assert response.status_code == 200
    rows = re.findall(r'<tr><td class="day">(\d{4}-\d\d-\d\d)</td><td>([^<]+)</td>', response.text)
    assert rows == shown


def test_a_malformed_filter_is_refused(server: Server) -> None:
    assert server.get("/activity-audit/?from=yesterday", server.token).status_code == 422
    assert server.get("/activity-audit/?org=../x", server.token).status_code == 422


def test_a_report_is_served_with_a_policy_that_forbids_scripts_and_a_link_back(
    server: Server,
) -> None:
    response = server.get(f"/activity-audit/reports/{ORG}/{DAY}", server.token)
    assert response.status_code == 200
    assert 'id="metric-savings" class="sentence">89.6% fewer Tasks than one per person' in (
        response.text
    )
    assert '<nav class="back"><a href="../../">← All audit reports</a></nav>' in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    document = server.get(f"/activity-audit/reports/{ORG}/{DAY}/audit.json", server.token)
    assert document.json()["headline"]["tasks"] == 7
    stored = (lake.audit_folder(server.lake, ORG, DAY) / lake.AUDIT_REPORT).read_text()
    assert "All audit reports" not in stored  # the mailed file has no link into Airflow


def test_a_missing_report_is_a_page_that_leads_back(server: Server) -> None:
    response = server.get(f"/activity-audit/reports/{ORG}/2026-01-01", server.token)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"No report for {ORG} on 2026-01-01" in response.text
    assert 'href="../../"' in response.text
    assert '"detail"' not in response.text


@pytest.mark.parametrize(
    "path",
    ["/activity-audit/nothing-here", f"/activity-audit/reports/{ORG}", "/activity-audit/docs"],
)
def test_an_unknown_address_is_the_plugins_not_found_page_not_json(
    server: Server, path: str
) -> None:
    response = server.get(path, server.token)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "No such page" in response.text and '"detail"' not in response.text
    assert 'href="/activity-audit/">← All audit reports' in response.text
    # The link leads to the list.
    assert server.get("/activity-audit/", server.token).status_code == 200


def test_a_program_asking_for_a_missing_audit_document_still_gets_json(server: Server) -> None:
    response = server.get(f"/activity-audit/reports/{ORG}/2026-01-01/audit.json", server.token)
    assert response.status_code == 404
    assert response.json() == {"detail": "No such report"}


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
    assert SECRET not in response.text and "<script" not in response.text


@requires_chromium
def test_chromium_with_the_ui_cookie_sees_the_list_and_opens_the_report(server: Server) -> None:
    listing = text_by_id(
        dump_dom(server.url + "/activity-audit/", cookies={"_token": server.token})
    )
    assert f"{DAY} {ORG} 2 of 24: not synced 00:00–09:00 UTC" in listing["reports"]
    report = text_by_id(
        dump_dom(
            server.url + f"/activity-audit/reports/{ORG}/{DAY}", cookies={"_token": server.token}
        )
    )
    assert report["metric-tasks-loaded"] == "6 of 7 planned"
    assert report["metric-savings"].startswith("89.6% fewer Tasks than one per person")


@requires_chromium
def test_a_person_logs_in_filters_the_list_and_opens_a_day_with_missing_hours(
    server: Server,
) -> None:
    with browser() as page:
        page.goto(server.url + "/activity-audit/")
        page.wait_until("document.querySelector('input[name=username]')", "Airflow's login form")
        assert "/auth/login" in page.url and "Sign into Airflow" in page.text()
        page.type("input[name=username]", "admin")
        page.type("input[name=password]", "admin")
        page.click("button[type=submit]")
        page.wait_until(
            "location.pathname === '/activity-audit/' && document.querySelector('#reports')",
            "the Activity audit page after logging in",
        )
        assert "3 of 3 reports." in page.text()

        page.evaluate(f"document.querySelector('#filter-org').value = {ORG!r}")
        page.set_value("#filter-from", DAY)
        page.set_value("#filter-to", DAY)
        page.click("#filter-apply")
        page.wait_until(
            "location.search.includes('from=') && document.querySelector('#shown')",
            "the filtered list",
        )
        listing = text_by_id(page.dom())
        assert listing["shown"] == "1 of 3 reports."
        assert listing["reports"].count("Open report") == 1
        assert (
            f"{DAY} {ORG} 2 of 24: not synced 00:00–09:00 UTC, 11:00–22:00 UTC"
            in (listing["reports"])
        )

        page.click("#reports a[href]")
        page.wait_until("document.querySelector('#metric-coverage')", "the report")
        assert page.url.endswith(f"/activity-audit/reports/{ORG}/{DAY}")
        report = text_by_id(page.dom())
        assert report["metric-coverage"].startswith("2 of 24 not synced: 00:00–09:00 UTC")
        assert report["verdict"].startswith("Incomplete: 20 of 24 hours not synced")
        assert report["alerts"].startswith(
            "Coverage : acme 2026-11-20: 2 of 24 hours synced; not synced: 00:00–09:00 UTC"
        )
        assert "Not synced: 00:00–09:00 UTC, 11:00–22:00 UTC." in report["coverage"]
        # The colour a person sees: missing hours are red on the strip.
        red = page.evaluate(
            "[...document.querySelectorAll('#coverage-strip span')]"
            ".filter(s => getComputedStyle(s).backgroundColor === 'rgb(220, 38, 38)').length"
        )
        assert red == 20

        page.click("nav.back a")
        page.wait_until(
            "location.pathname === '/activity-audit/' && document.querySelector('#reports')",
            "the list again",
        )


@requires_chromium
def test_a_person_without_a_session_lands_on_airflows_login_page(server: Server) -> None:
    with browser() as page:
        page.goto(server.url + f"/activity-audit/reports/{ORG}/{DAY}")
        page.wait_until("document.querySelector('input[name=password]')", "the login form")
        assert page.url == (
            server.url + f"/auth/login?next=%2Factivity-audit%2Freports%2F{ORG}%2F{DAY}"
        )
        assert "Sign into Airflow" in page.text()
        assert "Not authenticated" not in page.dom()


def test_the_report_folder_is_under_the_audit_root(tmp_path: Path) -> None:
    import activity_audit

    folder = activity_audit.report_folder(tmp_path, ORG, DAY)
    assert folder == lake.audit_folder(tmp_path, ORG, DAY)
