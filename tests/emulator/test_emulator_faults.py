"""Injected faults: each mode, their repeatability for a seed, and their configuration."""

from __future__ import annotations

import csv
import io
import time

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from salesforce_emulator.faults import FaultConfig, FaultConfigError


def _statuses(emu, calls: int) -> list[int]:
    session = emu.session()
    headers = {"Authorization": f"Bearer {emu.info.access_token}"}
    url = f"{emu.info.instance_url}/services/data/v59.0/limits"
    return [session.get(url, headers=headers).status_code for _ in range(calls)]


def test_every_call_can_be_answered_503(sf, fresh_emulator):
    fresh_emulator.set_faults(http_503_rate=1.0)
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM Account")
    assert caught.value.status == 503
    stats = fresh_emulator.stats()
    assert stats["api"]["refused"] == {"fault_503": 1} and stats["api"]["api_calls"] == 0


def test_request_limit_fault_looks_like_an_exhausted_org(sf, fresh_emulator):
    fresh_emulator.set_faults(request_limit_rate=1.0)
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.Account.create({"Name": "x"})
    assert caught.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_expired_session_fault_answers_invalid_session_id(sf, fresh_emulator):
    fresh_emulator.set_faults(expired_session_rate=1.0)
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Account")
    assert caught.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_a_login_based_client_logs_in_again_after_an_expired_session(fresh_emulator):
    from simple_salesforce import Salesforce

    info = fresh_emulator.info
    host = info.instance_url.removeprefix("https://")
    sf = Salesforce(
        consumer_key=info.client_id,
        consumer_secret=info.client_secret,
        domain=f"{host}/services/oauth2/token#",
        session=fresh_emulator.session(),
    )
    fresh_emulator.set_faults(seed=1, expired_session_rate=0.3)
    results = [sf.query("SELECT COUNT() FROM Account")["totalSize"] for _ in range(6)]
    assert results == [40] * 6
    assert fresh_emulator.stats()["faults"]["injected"]["expired"] >= 1


def test_call_faults_repeat_for_a_seed_and_differ_between_seeds(fresh_emulator):
    fresh_emulator.set_faults(seed=11, http_503_rate=0.3, request_limit_rate=0.2)
    first = _statuses(fresh_emulator, 40)
    fresh_emulator.set_faults(seed=11, http_503_rate=0.3, request_limit_rate=0.2)
    assert _statuses(fresh_emulator, 40) == first
    assert {200, 403, 503} == set(first)
    fresh_emulator.set_faults(seed=12, http_503_rate=0.3, request_limit_rate=0.2)
    assert _statuses(fresh_emulator, 40) != first


def test_row_locks_fail_rows_without_applying_them_repeatably(sf, fresh_emulator):
    records = [{"Name": f"Locked {i:03d}"} for i in range(200)]

    def failing_names() -> list[str]:
        result = sf.bulk2.Account.insert(records=records, wait=0.05)
        text = sf.bulk2.Account.get_failed_records(result[0]["job_id"])
        rows = list(csv.DictReader(io.StringIO(text)))
        assert all(r["sf__Error"].startswith("UNABLE_TO_LOCK_ROW:") for r in rows)
        return sorted(r["Name"] for r in rows)

    fresh_emulator.set_faults(seed=5, row_lock_rate=0.25)
    first = failing_names()
    assert 20 < len(first) < 80
    loaded = sf.query_all("SELECT Name FROM Account WHERE Name LIKE 'Locked %'")["records"]
    assert len(loaded) == 200 - len(first)
    assert not set(first) & {r["Name"] for r in loaded}
    fresh_emulator.set_faults(seed=5, row_lock_rate=0.25)
    assert failing_names() == first


def test_slow_bulk_jobs_stay_in_progress_for_the_delay(sf, fresh_emulator):
    fresh_emulator.set_faults(slow_bulk_seconds=0.6)
    started = time.monotonic()
    result = sf.bulk2.Account.insert(records=[{"Name": "Slow"}], wait=0.05)
    assert time.monotonic() - started >= 0.6
    assert result[0]["numberRecordsProcessed"] == 1


def test_admin_rejects_unknown_or_out_of_range_fault_settings(fresh_emulator):
    session = fresh_emulator.session()
    url = f"{fresh_emulator.info.instance_url}/__emulator/faults"
    headers = {"Authorization": f"Bearer {fresh_emulator.info.access_token}"}
    for body in ({"http_503_rate": 1.5}, {"lag": 1}, {"seed": "x"}):
        assert session.post(url, json=body, headers=headers).status_code == 400


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"http_503_rate": 0.6, "request_limit_rate": 0.6}, "add up"),
        ({"slow_bulk_seconds": -1}, "negative"),
        ({"row_lock_rate": True}, "number"),
        ({"start_together": 1.5}, "whole number"),
        ([], "object"),
    ],
)
def test_fault_config_names_what_is_wrong(raw, message):
    with pytest.raises(FaultConfigError, match=message):
        FaultConfig.parse(raw)


def test_admin_calls_need_the_token(fresh_emulator):
    response = requests.Session()
    response.verify, response.trust_env = fresh_emulator.info.ca_file, False
    answer = response.get(f"{fresh_emulator.info.instance_url}/__emulator/stats")
    assert answer.status_code == 401
