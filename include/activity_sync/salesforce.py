"""Talking to Salesforce: REST queries, Bulk API 2.0 jobs, and the retries both need.

Built on a ``simple_salesforce.Salesforce`` client (what ``SalesforceHook.get_conn()``
returns) but driving Bulk API 2.0 through its session directly: simple-salesforce's bulk2
helpers drop the job id when a job fails, parse results row by row, and retry nothing.
Here every call is counted (the API budget is the product's concern), transient failures
are retried with backoff, an expired session logs in again, and results are DataFrames.
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import requests

from activity_sync.errors import ActivitySyncError
from activity_sync.transport import HttpTimeouts, is_transient, session_timeouts, with_timeouts

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- Bulk API 2.0 vocabulary, as Salesforce spells it (simple-salesforce's bulk2 has the
# same): https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/


class JobKind(StrEnum):
    """The two job families, which are also the URL segment under ``/jobs/``."""

    INGEST = "ingest"
    QUERY = "query"


class JobState(StrEnum):
    """A job moves Open → UploadComplete → InProgress → one of the terminal states."""

    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


class Operation(StrEnum):
    """What a job does: the ingest operations, and the two kinds of query job."""

    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"
    HARD_DELETE = "hardDelete"
    QUERY = "query"
    QUERY_ALL = "queryAll"  # also returns deleted and archived rows, with IsDeleted


class ResultFile(StrEnum):
    """The per-row result files of an ingest job, by their URL segment."""

    SUCCESSFUL = "successfulResults"
    FAILED = "failedResults"
    # Spelled as Salesforce's reference spells it (simple-salesforce writes unprocessedRecords):
    # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_unprocessed_results.htm
    UNPROCESSED = "unprocessedrecords"


TERMINAL_JOB_STATES = frozenset({JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED})
CONTENT_TYPE_CSV = "CSV"
LINE_ENDING_CRLF = "CRLF"
COLUMN_DELIMITER_COMMA = "COMMA"
CSV_MEDIA_TYPE = "text/csv"
CSV_UPLOAD_MEDIA_TYPE = "text/csv; charset=UTF-8"
# Response header naming the next page of a query job's results; "null" on the last one.
LOCATOR_HEADER = "Sforce-Locator"
LAST_LOCATOR = "null"
# Columns Salesforce adds to the rows of the result files.
RESULT_ID = "sf__Id"
RESULT_CREATED = "sf__Created"
RESULT_ERROR = "sf__Error"

# Error codes the client and the loader act on.
# Row-level codes worth another attempt: Salesforce says so for lock contention.
TRANSIENT_ROW_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
DUPLICATE_VALUE = "DUPLICATE_VALUE"
INVALID_FIELD_FOR_INSERT_UPDATE = "INVALID_FIELD_FOR_INSERT_UPDATE"


class SalesforceUnavailable(ActivitySyncError, RuntimeError):
    """Transient failures persisted past every retry; the task should be retried later."""


class BulkJobFailed(ActivitySyncError):
    """A Bulk API 2.0 query job ended without completing; names the job, state and reason."""

    def __init__(self, kind: str, job_id: str, state: str, error_message: str | None) -> None:
        reason = f": {error_message}" if error_message else " without an error message"
        super().__init__(f"Bulk {kind} job {job_id} ended {state}{reason}")
        self.job_id = job_id
        self.state = state
        self.error_message = error_message


@dataclass
class IngestResult:
    """Outcome of one Bulk API 2.0 ingest job, results as string-typed frames."""

    job_id: str
    state: str
    successful: pd.DataFrame  # sf__Id, sf__Created, <sent columns>
    failed: pd.DataFrame  # sf__Id, sf__Error, <sent columns>
    unprocessed: pd.DataFrame  # <sent columns>
    error_message: str | None = None


def _csv_frame(text: str) -> pd.DataFrame:
    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


class SalesforceClient:
    """One org's Salesforce API, with call counting, retries and re-login.

    Every request is bounded by the connect and read timeouts of the session the factory
    returns (:mod:`activity_sync.transport`); a session without any gets the defaults.
    A timeout, like any transient failure, is retried with backoff, the login included.
    """

    def __init__(
        self,
        connect: Callable[[], Salesforce],
        *,
        poll_wait: float = 2.0,
        max_attempts: int = 6,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        job_timeout: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self.poll_wait = poll_wait
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.calls: Counter[str] = Counter()
        self.bulk_jobs = 0
        self.sf: Salesforce = self._retrying("log in", self._login)

    # --- plumbing -----------------------------------------------------------------

    def _login(self) -> Salesforce:
        """A fresh, logged-in client from the factory, its session bounded by timeouts.

        The factory's session should carry them already (the Airflow adapter mounts the
        connection's before logging in); one that has none gets the defaults here, so no
        later request can wait forever.
        """
        sf = self._connect()
        if session_timeouts(sf.session) is None:
            log.info("the Salesforce session has no timeouts; using the defaults")
            with_timeouts(sf.session, HttpTimeouts())
        return sf

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; on a transient failure back off (with jitter) and try again.

        After an expired session the next attempt logs in first; a login that fails
        transiently is retried like the call itself.
        """
        from simple_salesforce.exceptions import SalesforceExpiredSession

        relogin = False
        for attempt in range(1, self.max_attempts + 1):
            try:
                if relogin:
                    self.calls["login"] += 1
                    self.sf = self._login()
                    relogin = False
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if attempt == self.max_attempts:
                    raise SalesforceUnavailable(
                        f"{what}: still failing after {attempt} attempts: {exc}"
                    ) from exc
                delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
                log.warning("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
                self.sleep(delay)
                relogin = relogin or isinstance(exc, SalesforceExpiredSession)
        raise AssertionError("unreachable")

    def _http(self, method: str, url: str, kind: str, **kwargs: Any) -> requests.Response:
        from simple_salesforce.util import call_salesforce

        headers = {
            "Authorization": f"Bearer {self.sf.session_id}",
            "X-PrettyPrint": "1",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        headers.update(kwargs.pop("headers", {}))
        self.calls[kind] += 1
        return call_salesforce(url, method, self.sf.session, headers, **kwargs)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    # --- REST ---------------------------------------------------------------------

    def describe(self, object_name: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.calls["describe"] += 1
            return getattr(self.sf, object_name).describe()

        return self._retrying(f"describe {object_name}", run)

    def describe_global(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.calls["describe"] += 1
            return self.sf.describe()

        return self._retrying("describe global", run)

    def limits(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.calls["limits"] += 1
            return self.sf.limits()

        return self._retrying("limits", run)

    def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """REST query following nextRecordsUrl; one counted call per page of 2,000."""
        records: list[dict[str, Any]] = []

        def first() -> dict[str, Any]:
            self.calls["query"] += 1
            return self.sf.query(soql, include_deleted=include_deleted)

        page = self._retrying("query", first)
        records.extend(page["records"])
        while not page["done"]:
            url = page["nextRecordsUrl"]

            def more(url: str = url) -> dict[str, Any]:
                self.calls["query"] += 1
                return self.sf.query_more(
                    url, identifier_is_url=True, include_deleted=include_deleted
                )

            page = self._retrying("query more", more)
            records.extend(page["records"])
        frame = pd.DataFrame.from_records(records)
        return frame.drop(columns=["attributes"], errors="ignore")

    # --- Bulk API 2.0 -------------------------------------------------------------

    def _job_url(self, kind: JobKind, job_id: str | None = None, suffix: str = "") -> str:
        url = f"{self.sf.bulk2_url}{kind}"
        if job_id:
            url += f"/{job_id}"
        return url + suffix

    def _wait(self, kind: JobKind, job_id: str) -> dict[str, Any]:
        """Poll until the job ends; a job stuck past ``job_timeout`` fails the attempt, and
        the task's retry (idempotent, as every load is) takes it up later."""
        delay = self.poll_wait
        waited = 0.0
        while True:
            self.sleep(delay)
            waited += delay
            job = self._retrying(
                f"poll {kind} job {job_id}",
                lambda: self._http("GET", self._job_url(kind, job_id), "bulk_poll").json(),
            )
            if job["state"] in TERMINAL_JOB_STATES:
                return job
            if waited >= self.job_timeout:
                raise SalesforceUnavailable(
                    f"Bulk {kind} job {job_id} still {job['state']} after {waited:.0f}s"
                )
            delay = min(delay * 1.5, 10.0)

    def ingest(
        self,
        object_name: str,
        operation: Operation,
        rows: pd.DataFrame,
        *,
        external_id_field: str | None = None,
    ) -> IngestResult:
        """One Bulk API 2.0 ingest job: create, upload CSV, close, wait, fetch results.

        CRLF line endings, because a lone carriage return inside an email body breaks
        Salesforce's CSV parser under LF. Creating and uploading are retried as one unit
        (a half-made job is aborted first); once the job is closed only the polling and the
        result downloads are retried, so the data is never submitted twice by this call.
        """
        body = rows.to_csv(index=False, lineterminator="\r\n")
        spec: dict[str, Any] = {
            "object": object_name,
            "operation": operation,
            "contentType": CONTENT_TYPE_CSV,
            "lineEnding": LINE_ENDING_CRLF,
            "columnDelimiter": COLUMN_DELIMITER_COMMA,
        }
        if external_id_field:
            spec["externalIdFieldName"] = external_id_field

        def submit() -> str:
            job = self._http("POST", self._job_url(JobKind.INGEST), "bulk_job", json=spec).json()
            job_id = job["id"]
            try:
                self._http(
                    "PUT",
                    self._job_url(JobKind.INGEST, job_id, "/batches"),
                    "bulk_upload",
                    data=body.encode("utf-8"),
                    headers={"Content-Type": CSV_UPLOAD_MEDIA_TYPE},
                )
                self._http(
                    "PATCH",
                    self._job_url(JobKind.INGEST, job_id),
                    "bulk_job",
                    json={"state": JobState.UPLOAD_COMPLETE},
                )
            except Exception:
                self._abort_quietly(job_id)
                raise
            return job_id

        job_id = self._retrying(f"submit {operation} {object_name}", submit)
        self.bulk_jobs += 1
        log.info("Bulk %s of %d %s rows: job %s", operation, len(rows), object_name, job_id)
        job = self._wait(JobKind.INGEST, job_id)

        def results(name: ResultFile) -> pd.DataFrame:
            return self._retrying(
                f"{name} of job {job_id}",
                lambda: _csv_frame(
                    self._http(
                        "GET",
                        self._job_url(JobKind.INGEST, job_id, f"/{name}/"),
                        "bulk_results",
                        headers={"Accept": CSV_MEDIA_TYPE},
                    ).text
                ),
            )

        successful = results(ResultFile.SUCCESSFUL)
        failed = results(ResultFile.FAILED)
        # Only a job that did not complete can leave rows unprocessed: skip the call otherwise.
        unprocessed = (
            results(ResultFile.UNPROCESSED)
            if job["state"] != JobState.JOB_COMPLETE
            else pd.DataFrame()
        )
        log.info(
            "Bulk job %s %s: %d succeeded, %d failed, %d unprocessed",
            job_id,
            job["state"],
            len(successful),
            len(failed),
            len(unprocessed),
        )
        return IngestResult(
            job_id, job["state"], successful, failed, unprocessed, job.get("errorMessage")
        )

    def _abort_quietly(self, job_id: str) -> None:
        try:
            self._http(
                "PATCH",
                self._job_url(JobKind.INGEST, job_id),
                "bulk_job",
                json={"state": JobState.ABORTED},
            )
        except Exception as exc:  # the job is left Open; Salesforce expires it
            log.warning("could not abort job %s: %s", job_id, exc)

    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """Bulk API 2.0 query job, pages fetched by locator; all values as strings.

        ``include_deleted`` runs it as ``queryAll``. A job that ends Failed or Aborted raises
        :class:`BulkJobFailed`; one still running after ``job_timeout`` raises
        :class:`SalesforceUnavailable`.
        """
        operation = Operation.QUERY_ALL if include_deleted else Operation.QUERY
        spec = {"operation": operation, "query": soql}
        job_id = self._retrying(
            "create query job",
            lambda: self._http("POST", self._job_url(JobKind.QUERY), "bulk_job", json=spec).json()[
                "id"
            ],
        )
        self.bulk_jobs += 1
        job = self._wait(JobKind.QUERY, job_id)
        if job["state"] != JobState.JOB_COMPLETE:
            raise BulkJobFailed(JobKind.QUERY, job_id, job["state"], job.get("errorMessage"))
        pages: list[pd.DataFrame] = []
        locator: str | None = None
        while True:
            params = {"maxRecords": 50_000}
            if locator:
                params["locator"] = locator

            def page(params: dict[str, Any] = params) -> requests.Response:
                return self._http(
                    "GET",
                    self._job_url(JobKind.QUERY, job_id, "/results"),
                    "bulk_results",
                    params=params,
                    headers={"Accept": CSV_MEDIA_TYPE},
                )

            response = self._retrying(f"results of query job {job_id}", page)
            pages.append(_csv_frame(response.text))
            locator = response.headers.get(LOCATOR_HEADER)
            if not locator or locator == LAST_LOCATOR:
                break
        non_empty = [p for p in pages if not p.empty]
        return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame()
