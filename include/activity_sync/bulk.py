"""Bulk API 2.0: its vocabulary, its CSV, and the job methods of the Salesforce client.

Jobs are driven through the client's session directly: simple-salesforce's bulk2 helpers
drop the job id when a job fails, parse results row by row, and retry nothing. Here a job
that the client gives up on (stuck past a timeout, an upload that failed) is aborted and
its terminal results read, so every row it was sent ends in a result file or is known to
be missing; :class:`BulkJobs` is mixed into
:class:`~activity_sync.salesforce.SalesforceClient`, which brings the counted, retried
HTTP calls. Rows a CSV cannot carry go through sObject Collections (``record_writes``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import requests

from activity_sync.errors import ActivitySyncError
from activity_sync.transport import is_transient

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
# A CSV cell holding exactly this sets the field to null; an empty cell leaves it unchanged.
# Salesforce documents no escape for the text itself ("Valid CSV Record Rows"):
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_csv_valid_record_rows.htm
BULK_NULL = "#N/A"
# The most CSV one ingest job takes. Salesforce caps an upload at 150 MB once base64
# encoded and asks for at most 100 MB of data ("Prepare CSV Files"):
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm
MAX_UPLOAD_BYTES = 100_000_000

# Error codes the client and the loader act on.
# Row-level codes worth another attempt: Salesforce says so for lock contention.
TRANSIENT_ROW_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
DUPLICATE_VALUE = "DUPLICATE_VALUE"
INVALID_FIELD_FOR_INSERT_UPDATE = "INVALID_FIELD_FOR_INSERT_UPDATE"


class BulkJobFailed(ActivitySyncError):
    """A Bulk API 2.0 query job ended without completing; names the job, state and reason."""

    def __init__(self, kind: str, job_id: str, state: str, error_message: str | None) -> None:
        reason = f": {error_message}" if error_message else " without an error message"
        super().__init__(f"Bulk {kind} job {job_id} ended {state}{reason}")
        self.job_id = job_id
        self.state = state
        self.error_message = error_message


class JobTimeout(ActivitySyncError, RuntimeError):
    """A Bulk job was still unfinished after the client's ``job_timeout``."""


class BulkUploadFailed(ActivitySyncError):
    """Salesforce refused a job's data upload (the job was aborted); names job and error."""

    def __init__(self, job_id: str, error: BaseException) -> None:
        super().__init__(f"upload to Bulk ingest job {job_id} failed: {error}")
        self.job_id = job_id


@dataclass
class IngestResult:
    """Outcome of one Bulk API 2.0 ingest job, results as string-typed frames."""

    job_id: str
    state: str
    successful: pd.DataFrame  # sf__Id, sf__Created, <sent columns>
    failed: pd.DataFrame  # sf__Id, sf__Error, <sent columns>
    unprocessed: pd.DataFrame  # <sent columns>
    error_message: str | None = None


def csv_body(rows: pd.DataFrame) -> bytes:
    """Rows as an ingest job's CSV: UTF-8, CRLF, a null as an empty cell.

    CRLF because a lone carriage return inside an email body breaks Salesforce's CSV
    parser under LF line endings.
    """
    return rows.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def _csv_frame(response: requests.Response) -> pd.DataFrame:
    """A result file's rows. Bulk API 2.0 result files are UTF-8 ("Content-Type: text/csv;
    charset=UTF-8": https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_compression.htm):
    decoded as such whatever the header says, since requests reads a text/csv answer
    without a charset as ISO-8859-1 and would garble every non-ASCII name and address."""
    text = response.content.decode("utf-8", errors="replace")
    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


class BulkJobs:
    """Bulk API 2.0 jobs (and sObject Collections upserts) of one org's client.

    A mixin: :class:`~activity_sync.salesforce.SalesforceClient` provides the session,
    the counted HTTP call, the retries and the polling settings named below.
    """

    if TYPE_CHECKING:
        sf: Salesforce
        poll_wait: float
        job_timeout: float
        max_attempts: int
        backoff: float
        backoff_max: float
        bulk_jobs: int
        sleep: Callable[[float], None]

        def _retrying(self, what: str, fn: Callable[[], T]) -> T: ...

        def _http(self, method: str, url: str, kind: str, **kwargs: Any) -> requests.Response: ...

    def _job_url(self, kind: JobKind, job_id: str | None = None, suffix: str = "") -> str:
        url = f"{self.sf.bulk2_url}{kind}"
        if job_id:
            url += f"/{job_id}"
        return url + suffix

    def job_status(self, kind: JobKind, job_id: str) -> dict[str, Any]:
        """The job's info as Salesforce reports it (``state``, ``errorMessage``, counts)."""
        return self._retrying(
            f"poll {kind} job {job_id}",
            lambda: self._http("GET", self._job_url(kind, job_id), "bulk_poll").json(),
        )

    def _wait(self, kind: JobKind, job_id: str) -> dict[str, Any]:
        """Poll until the job is terminal; :class:`JobTimeout` past ``job_timeout``."""
        delay = self.poll_wait
        waited = 0.0
        while True:
            self.sleep(delay)
            waited += delay
            job = self.job_status(kind, job_id)
            if job["state"] in TERMINAL_JOB_STATES:
                return job
            if waited >= self.job_timeout:
                raise JobTimeout(
                    f"Bulk {kind} job {job_id} still {job['state']} after {waited:.0f}s"
                )
            delay = min(delay * 1.5, 10.0)

    def abort_job(self, kind: JobKind, job_id: str) -> None:
        """Ask Salesforce to abort the job; a job that is terminal already is left as it is.

        Salesforce refuses to abort a terminal job (InvalidJobState); that refusal is
        only accepted after reading the state back.
        """
        try:
            self._retrying(
                f"abort {kind} job {job_id}",
                lambda: self._http(
                    "PATCH",
                    self._job_url(kind, job_id),
                    "bulk_job",
                    json={"state": JobState.ABORTED},
                ),
            )
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, ActivitySyncError):
                raise
            if self.job_status(kind, job_id)["state"] not in TERMINAL_JOB_STATES:
                raise

    def _submit(
        self, spec: dict[str, Any], body: bytes, on_created: Callable[[str], None] | None
    ) -> str:
        """Create, upload and close one ingest job; its id once Salesforce has the data.

        ``on_created`` runs between create and upload, so the id is on record before any
        data can be processed. An upload that fails leaves the job Open, which Salesforce
        never processes: it is aborted and a new job made (an upload is never repeated on
        the same job, which could hold the rows twice). A close whose answer is lost is
        checked by reading the job's state.
        """
        for attempt in range(1, self.max_attempts + 1):
            job_id = self._retrying(
                f"create {spec['operation']} {spec['object']} job",
                lambda: self._http(
                    "POST", self._job_url(JobKind.INGEST), "bulk_job", json=spec
                ).json()["id"],
            )
            if on_created:
                on_created(job_id)
            try:
                self._http(
                    "PUT",
                    self._job_url(JobKind.INGEST, job_id, "/batches"),
                    "bulk_upload",
                    data=body,
                    headers={"Content-Type": CSV_UPLOAD_MEDIA_TYPE},
                )
            except Exception as exc:
                self.abort_job(JobKind.INGEST, job_id)
                if not is_transient(exc) or attempt == self.max_attempts:
                    raise BulkUploadFailed(job_id, exc) from exc
                log.warning("upload to job %s failed (%s): aborted, new job", job_id, exc)
                self.sleep(min(self.backoff_max, self.backoff * 2 ** (attempt - 1)))
                continue
            self._close(job_id)
            return job_id
        raise AssertionError("unreachable")

    def _close(self, job_id: str) -> None:
        def close() -> None:
            self._http(
                "PATCH",
                self._job_url(JobKind.INGEST, job_id),
                "bulk_job",
                json={"state": JobState.UPLOAD_COMPLETE},
            )

        def close_if_open() -> None:
            if self.job_status(JobKind.INGEST, job_id)["state"] == JobState.OPEN:
                close()

        try:
            close()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The answer may be lost although the job closed: its state tells.
            log.warning("closing job %s failed (%s): checking its state", job_id, exc)
            self._retrying(f"close job {job_id}", close_if_open)

    def ingest(
        self,
        object_name: str,
        operation: Operation,
        rows: pd.DataFrame | bytes,
        *,
        external_id_field: str | None = None,
        on_created: Callable[[str], None] | None = None,
    ) -> IngestResult:
        """One Bulk API 2.0 ingest job: create, upload CSV, close, wait, fetch results.

        Args:
            object_name, operation, external_id_field: the job's (the field for upserts).
            rows: the rows, or their CSV as :func:`csv_body` renders it.
            on_created: called with the job id before any data is uploaded (the loader
                records it, so a retried task can find the job).

        Returns:
            The job's terminal results. A job that stays unfinished past ``job_timeout`` is
            aborted and its results read: the rows it did not process are in none of the
            result files or in ``unprocessed``, never silently "done".

        Raises:
            SalesforceUnavailable: Salesforce stayed unreachable past every retry.
            BulkUploadFailed: Salesforce refused the upload itself (not a row).
        """
        body = rows if isinstance(rows, bytes) else csv_body(rows)
        spec: dict[str, Any] = {
            "object": object_name,
            "operation": operation,
            "contentType": CONTENT_TYPE_CSV,
            "lineEnding": LINE_ENDING_CRLF,
            "columnDelimiter": COLUMN_DELIMITER_COMMA,
        }
        if external_id_field:
            spec["externalIdFieldName"] = external_id_field
        job_id = self._submit(spec, body, on_created)
        self.bulk_jobs += 1
        log.info("Bulk %s %s (%d bytes): job %s", operation, object_name, len(body), job_id)
        return self.settle_ingest_job(job_id)

    def settle_ingest_job(self, job_id: str) -> IngestResult:
        """Wait for a closed ingest job to end and read its three result files.

        A job still unfinished after ``job_timeout`` is aborted, then waited for: the
        rows it did not get to are in ``unprocessed`` or in no result file at all, and
        ``error_message`` says the client gave up.
        """
        try:
            job = self._wait(JobKind.INGEST, job_id)
            gave_up = None
        except JobTimeout as exc:
            log.warning("%s: aborting it", exc)
            self.abort_job(JobKind.INGEST, job_id)
            job = self._wait(JobKind.INGEST, job_id)
            gave_up = str(exc)

        def results(name: ResultFile) -> pd.DataFrame:
            return self._retrying(
                f"{name} of job {job_id}",
                lambda: _csv_frame(
                    self._http(
                        "GET",
                        self._job_url(JobKind.INGEST, job_id, f"/{name}/"),
                        "bulk_results",
                        headers={"Accept": CSV_MEDIA_TYPE},
                    )
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
            job_id,
            job["state"],
            successful,
            failed,
            unprocessed,
            gave_up or job.get("errorMessage"),
        )

    # --- Bulk API 2.0 queries ---------------------------------------------------------

    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """Bulk API 2.0 query job, pages fetched by locator; all values as strings.

        ``include_deleted`` runs it as ``queryAll``. A job that ends Failed or Aborted raises
        :class:`BulkJobFailed`; one still running after ``job_timeout`` is aborted and
        raises :class:`JobTimeout`.
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
        try:
            job = self._wait(JobKind.QUERY, job_id)
        except JobTimeout:
            self.abort_job(JobKind.QUERY, job_id)
            raise
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
            pages.append(_csv_frame(response))
            locator = response.headers.get(LOCATOR_HEADER)
            if not locator or locator == LAST_LOCATOR:
                break
        non_empty = [p for p in pages if not p.empty]
        return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame()
