"""salesforce.py over real HTTPS to the emulator: counted calls, Bulk jobs, retries, re-login."""

from __future__ import annotations

import pandas as pd
import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from activity_sync.bulk import JobTimeout
from activity_sync.errors import ActivitySyncError
from activity_sync.salesforce import (
    BulkJobFailed,
    SalesforceClient,
    SalesforceUnavailable,
    is_transient,
)
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


@pytest.fixture
def client(fresh_emulator) -> SalesforceClient:
    return SalesforceClient(
        fresh_emulator.simple_salesforce, poll_wait=0.02, backoff=0.01, max_attempts=8
    )


def test_a_rest_query_follows_next_records_url_one_counted_call_per_page(client, fresh_emulator):
    rows = pd.DataFrame({"LastName": [f"Page{i}" for i in range(2_500)], "Email": None})
    client.ingest("Contact", "insert", rows)
    before = fresh_emulator.stats()["api"]["api_calls"]
    frame = client.query("SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Page%'")
    assert len(frame) == 2_500
    assert "attributes" not in frame.columns
    assert fresh_emulator.stats()["api"]["api_calls"] - before == client.calls["query"] == 2


def test_a_bulk_upsert_reports_created_then_updated_rows_by_external_key(client):
    contact = client.query("SELECT Id FROM Contact LIMIT 1")["Id"].iloc[0]
    rows = pd.DataFrame(
        {
            EXT: ["k1", "k2"],
            "WhoId": contact,
            "Subject": ["a, with comma", 'b "quoted"\r\nand a lone \r carriage return'],
            "Status": "Completed",
        }
    )
    first = client.ingest("Task", "upsert", rows, external_id_field=EXT)
    assert first.state == "JobComplete"
    assert set(first.successful["sf__Created"]) == {"true"}
    again = client.ingest("Task", "upsert", rows, external_id_field=EXT)
    assert set(again.successful["sf__Created"]) == {"false"}
    held = client.query(f"SELECT Subject FROM Task ORDER BY {EXT}")
    assert held["Subject"].tolist() == rows["Subject"].tolist()


def test_row_failures_come_back_with_salesforces_error_not_an_exception(client):
    rows = pd.DataFrame({EXT: ["k1"], "WhoId": ["001000000000000AAA"], "Status": "Completed"})
    result = client.ingest("Task", "upsert", rows, external_id_field=EXT)
    assert result.successful.empty
    assert result.failed["sf__Error"].str.contains("WhoId").all()


def test_a_bulk_query_pages_by_locator(client):
    frame = client.bulk_query("SELECT Id, Email FROM Contact")
    assert len(frame) == len(client.query("SELECT Id FROM Contact"))
    assert list(frame.columns) == ["Id", "Email"]


def test_transient_failures_are_retried_until_the_call_succeeds(client, fresh_emulator):
    fresh_emulator.set_faults(seed=3, http_503_rate=0.3, request_limit_rate=0.2)
    for _ in range(10):
        assert client.limits()["DailyApiRequests"]["Max"] > 0
    injected = fresh_emulator.stats()["faults"]["injected"]
    assert injected, "the faults never fired"


def test_an_expired_session_is_recovered_by_a_new_login_not_by_retrying_the_token(fresh_emulator):
    """An expired session stays expired until a new OAuth login (INVALID_SESSION_ID, REST API
    guide: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_concepts_errorhandling.htm).
    simple-salesforce logs in again itself when it holds OAuth credentials; the factory is the
    fallback for sessions it cannot refresh. Either way every call ends answered."""
    from simple_salesforce import Salesforce

    host = fresh_emulator.info.instance_url.removeprefix("https://")

    def connect() -> Salesforce:
        return Salesforce(
            consumer_key=fresh_emulator.info.client_id,
            consumer_secret=fresh_emulator.info.client_secret,
            domain=f"{host}/services/oauth2/token#",
            session=fresh_emulator.session(),
            version=fresh_emulator.info.api_version,
        )

    client = SalesforceClient(connect, poll_wait=0.02, backoff=0.01, max_attempts=10)
    fresh_emulator.set_faults(seed=5, expired_session_rate=0.5)
    described = [client.describe("Task")["name"] for _ in range(6)]
    auth = fresh_emulator.stats()["auth"]
    assert described == ["Task"] * 6
    assert auth["expired_sessions"] >= 1
    assert auth["logins"] >= 1 + auth["expired_sessions"]


def test_failures_that_never_clear_end_in_salesforce_unavailable(fresh_emulator):
    client = SalesforceClient(fresh_emulator.simple_salesforce, backoff=0.001, max_attempts=3)
    fresh_emulator.set_faults(seed=1, http_503_rate=1.0)
    with pytest.raises(SalesforceUnavailable, match="after 3 attempts") as error:
        client.limits()
    assert isinstance(error.value, ActivitySyncError)


def test_a_malformed_query_is_not_retried(client):
    with pytest.raises(SalesforceMalformedRequest):
        client.query("SELECT Id FROM Contact WHERE Email = 'o'brien@x.com'")
    assert client.calls["query"] == 1


def test_only_5xx_limits_expiry_and_dropped_connections_count_as_transient():
    import requests
    from simple_salesforce.exceptions import (
        SalesforceExpiredSession,
        SalesforceGeneralError,
        SalesforceRefusedRequest,
    )

    assert is_transient(SalesforceGeneralError("u", 503, "r", "busy"))
    assert not is_transient(SalesforceGeneralError("u", 409, "r", "conflict"))
    assert is_transient(
        SalesforceRefusedRequest("u", 403, "r", [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    )
    assert not is_transient(
        SalesforceRefusedRequest("u", 403, "r", [{"errorCode": "INSUFFICIENT_ACCESS"}])
    )
    assert is_transient(SalesforceExpiredSession("u", 401, "r", "expired"))
    assert is_transient(requests.ConnectionError())
    assert not is_transient(ValueError())


def test_a_bulk_job_that_never_finishes_fails_the_attempt_after_the_job_timeout(fresh_emulator):
    client = SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.05, job_timeout=0.3)
    fresh_emulator.set_faults(slow_bulk_seconds=2)
    with pytest.raises(JobTimeout, match="still InProgress|still UploadComplete"):
        client.bulk_query("SELECT Id FROM Contact")


def test_a_bulk_query_job_that_ends_aborted_raises_bulk_job_failed_naming_job_and_state(
    fresh_emulator,
):
    """An admin (here: the test, while the client waits) aborts the running query job.

    Abort a Job: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_abort_job.htm
    """
    sf = fresh_emulator.simple_salesforce()
    jobs_url = f"{sf.bulk2_url}query"

    def abort_running_jobs(seconds: float) -> None:
        for job in sf.session.get(jobs_url, headers=sf.headers).json()["records"]:
            if job["state"] not in ("JobComplete", "Failed", "Aborted"):
                sf.session.patch(
                    f"{jobs_url}/{job['id']}", json={"state": "Aborted"}, headers=sf.headers
                ).raise_for_status()

    fresh_emulator.set_faults(slow_bulk_seconds=2)
    client = SalesforceClient(
        fresh_emulator.simple_salesforce, poll_wait=0.01, sleep=abort_running_jobs
    )
    with pytest.raises(BulkJobFailed, match=r"Bulk query job \S+ ended Aborted") as error:
        client.bulk_query("SELECT Id FROM Contact")
    assert error.value.state == "Aborted"
    assert error.value.job_id in str(error.value)
    assert isinstance(error.value, ActivitySyncError)
