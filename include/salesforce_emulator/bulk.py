"""Bulk API 2.0 over HTTP: ingest jobs (insert, update, upsert, delete, hardDelete), query jobs.

The handlers here create, upload to, close, abort, list, delete and read jobs; the jobs
themselves are records in ``bulk_jobs.Jobs`` and the processing happens in
``bulk_worker.BulkWorker`` once the client closes a job, so clients really poll. An
upload over the org's ``upload_limit_bytes`` (150 MB once base64-encoded, as Salesforce
counts it) is refused; the results of a job are read only once all its rows are in one of
the three result files (``bulk_results``).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from salesforce_emulator.bulk_jobs import (
    DATA_FILE,
    DELIMITERS,
    INGEST_OPERATIONS,
    JOBS_FOLDER,
    LINE_ENDINGS,
    QUERY_OPERATIONS,
    TERMINAL,
    Job,
    Jobs,
    JobState,
    JobType,
    Operation,
    ResultFile,
)
from salesforce_emulator.bulk_results import READY, account_for_restart, account_for_unstarted
from salesforce_emulator.bulk_worker import DEFAULT_WORKERS, BulkWorker
from salesforce_emulator.faults import Faults
from salesforce_emulator.objects import ALL_OBJECTS
from salesforce_emulator.org import Org
from salesforce_emulator.protocol import (
    CSV_CONTENT_TYPE,
    ApiError,
    Request,
    Response,
    Route,
    not_found,
)
from salesforce_emulator.query import QueryService, compile_soql
from salesforce_emulator.soql import SoqlError
from salesforce_emulator.usage import Usage

# Result paths clients use, and the file each names (both spellings of unprocessed exist).
RESULT_PATHS = {
    "successfulResults": ResultFile.SUCCESSFUL,
    "failedResults": ResultFile.FAILED,
    "unprocessedrecords": ResultFile.UNPROCESSED,
    "unprocessedRecords": ResultFile.UNPROCESSED,
}
# How long a results request waits for an aborted job's worker to stop at its chunk's end.
RESULTS_WAIT_SECONDS = 60
# Fields that Salesforce leaves out of the answer to an ingest job's creation.
_NOT_IN_CREATE_ANSWER = (
    "jobType",
    "numberRecordsProcessed",
    "numberRecordsFailed",
    "retries",
    "totalProcessingTime",
    "apiActiveProcessingTime",
    "apexProcessingTime",
)


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except ValueError as exc:
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from exc


class BulkService:
    """Bulk API 2.0 for ``org``; its jobs persist in ``org.store`` and under ``data_dir``.

    ``queries`` renders query results, ``usage`` counts batches and query jobs, ``faults``
    may slow jobs down, lock rows or fail jobs; ``workers`` jobs run at once.
    """

    def __init__(
        self,
        org: Org,
        queries: QueryService,
        usage: Usage,
        faults: Faults,
        data_dir: Path,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.org = org
        self.usage = usage
        self.jobs = Jobs(org.store, data_dir / JOBS_FOLDER)
        # Jobs that ended while the emulator was down (or stopped under it) get their results.
        for job in self.jobs.of_type(JobType.INGEST):
            if job["state"] in TERMINAL and not job.get(READY):
                account_for_restart(self.jobs, job)
        self.worker = BulkWorker(self.jobs, org, queries, usage, faults, workers)

    # -------------------------------------------------------------- bookkeeping

    def counts(self) -> dict[str, Any]:
        """Jobs in total and by ``jobType:state``, the workers and the record locks held, waited
        for and timed out (``record_locks``), for the admin stats."""
        return {
            **self.jobs.counts(),
            "workers": self.worker.workers,
            "locks": self.worker.locks.counts(),
        }

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold off the worker (it finishes the job at hand first)."""
        with self.worker.paused():
            yield

    def forget_all(self) -> None:
        """No jobs, queued work or job files: the state after a reset."""
        self.jobs.forget_all()
        self.worker.locks.reset_counts()

    def stop(self) -> None:
        self.worker.stop()

    def _job(self, job_id: str, job_type: JobType) -> Job:
        job = self.jobs.get(job_id, job_type)
        if job is None:
            raise not_found()
        return job

    @staticmethod
    def _check_format(body: dict[str, Any]) -> None:
        if body.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "Only CSV content is supported")
        if body.get("columnDelimiter", "COMMA") not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter: {body['columnDelimiter']}")
        if body.get("lineEnding", "LF") not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"Invalid lineEnding: {body['lineEnding']}")

    @staticmethod
    def _view(job: Job) -> dict[str, Any]:
        view = {k: v for k, v in job.items() if not k.startswith("_")}
        if job["jobType"] == JobType.QUERY:
            view.pop("contentUrl", None)
        return view

    # ------------------------------------------------------------------ ingest API

    def create_ingest(self, req: Request, version: str) -> Response:
        body = req.json_object()
        self._check_format(body)
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        obj = self.org.shape.resolve_object(str(body.get("object", "")))
        if obj is None:
            raise ApiError(
                400, "INVALIDENTITY", f"sObject type '{body.get('object')}' is not supported."
            )
        if operation in (Operation.UPDATE, Operation.UPSERT) and not ALL_OBJECTS[obj].updateable:
            raise ApiError(
                400, "INVALIDJOB", f"Entity '{obj}' is not supported for operation {operation}."
            )
        job = self.jobs.new(body, JobType.INGEST, version, self.org.user_id)
        job.update(object=obj, operation=operation, state=JobState.OPEN)
        if operation == Operation.UPSERT:
            name = body.get("externalIdFieldName")
            f = self.org.shape.resolve_field(obj, str(name or ""))
            if f is None or not (f.external_id or f.name == "Id"):
                raise ApiError(
                    400,
                    "INVALIDJOB",
                    f"Field name provided, {name} does not match an External ID, Salesforce Id, "
                    f"or indexed field for {obj}",
                )
            job["externalIdFieldName"] = f.name
        self.jobs.add(job)
        view = self._view(job)
        for key in _NOT_IN_CREATE_ANSWER:
            view.pop(key)
        return Response.json(200, view)

    def upload(self, req: Request, version: str, job: str) -> Response:
        info = self._job(job, JobType.INGEST)
        with self.jobs.lock:
            if info["state"] != JobState.OPEN:
                raise ApiError(
                    409, "INVALIDJOBSTATE", f"Job {job} is not open for upload: {info['state']}"
                )
            encoded = 4 * math.ceil(len(req.body) / 3)
            limit = self.org.settings.upload_limit_bytes
            if encoded > limit:
                # Salesforce documents the limit, not the answer: this is the Bulk API's
                # answer to an oversized request as clients report it (ClientInputError,
                # https://github.com/jsforce/jsforce/issues/31). The job stays Open.
                raise ApiError(
                    400,
                    "CLIENTINPUTERROR",
                    f"Failed to read request. Exceeded max size limit of {limit}",
                )
            path = self.jobs.files(job) / DATA_FILE
            if path.exists():
                raise ApiError(
                    400,
                    "INVALIDJOB",
                    f"Found multiple contents for job: <{job}>, please 'Close' / 'Abort' / "
                    "'Delete' the current Job then create a new Job and make sure you only do "
                    "'PUT' once on a given Job.",
                )
            path.write_bytes(req.body)
        return Response.empty(201)

    def get_ingest(self, req: Request, version: str, job: str) -> Response:
        return Response.json(200, self._view(self._job(job, JobType.INGEST)))

    def change_state(self, req: Request, version: str, job: str, job_type: JobType) -> Response:
        info = self._job(job, job_type)
        body = req.json()
        state = body.get("state") if isinstance(body, dict) else None
        with self.jobs.lock:
            current = info["state"]
            if (
                state == JobState.UPLOAD_COMPLETE
                and job_type == JobType.INGEST
                and current == JobState.OPEN
            ):
                self.jobs.set_state(info, JobState.UPLOAD_COMPLETE)
                self.jobs.enqueue(job)
            elif state == JobState.ABORTED and current not in TERMINAL:
                self.jobs.set_state(info, JobState.ABORTED)
                # A running job's worker stops at its chunk's end and reports the rest.
                if current != JobState.IN_PROGRESS and job_type == JobType.INGEST:
                    account_for_unstarted(self.jobs, info)
            else:
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Can't change the job state from {current} to {state}"
                )
        return Response.json(200, self._view(info))

    def delete_job(self, req: Request, version: str, job: str, job_type: JobType) -> Response:
        info = self._job(job, job_type)
        with self.jobs.lock:
            if info["state"] not in (*TERMINAL, JobState.UPLOAD_COMPLETE):
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Can't delete a job in state {info['state']}"
                )
            self.jobs.remove(job)
        return Response.empty(204)

    def list_jobs(self, req: Request, version: str, job_type: JobType) -> Response:
        with self.jobs.lock:
            records = [self._view(j) for j in self.jobs.of_type(job_type)]
        return Response.json(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def results(self, req: Request, version: str, job: str, kind: ResultFile) -> Response:
        info = self._job(job, JobType.INGEST)
        with self.jobs.lock:
            if info["state"] not in TERMINAL:
                raise ApiError(
                    400,
                    "INVALIDJOBSTATE",
                    f"Results are not available while the job is {info['state']}",
                )
            ready = self.jobs.results_ready.wait_for(
                lambda: info.get(READY), timeout=RESULTS_WAIT_SECONDS
            )
        if not ready:
            raise ApiError(503, "SERVER_UNAVAILABLE", f"The results of job {job} are not ready")
        path = self.jobs.path(job, f"{kind}.csv")
        # Bytes as stored: unprocessed rows of an upload that was no UTF-8 come back as sent.
        return Response(200, path.read_bytes() if path.exists() else b"", CSV_CONTENT_TYPE)

    # ------------------------------------------------------------------- query API

    def create_query(self, req: Request, version: str) -> Response:
        body = req.json_object()
        self._check_format(body)
        operation = body.get("operation", Operation.QUERY)
        if operation not in QUERY_OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        try:
            compiled = compile_soql(
                self.org.shape,
                str(body.get("query", "")),
                include_deleted=operation == Operation.QUERY_ALL,
                now=self.org.clock.now(),
            )
        except SoqlError as err:
            raise ApiError(400, err.error_code, err.message) from err
        if compiled.is_count:
            raise ApiError(400, "API_ERROR", "Aggregate queries are not supported by Bulk API 2.0")
        job = self.jobs.new(body, JobType.QUERY, version, self.org.user_id)
        job.update(
            object=compiled.object_name,
            operation=operation,
            state=JobState.UPLOAD_COMPLETE,
            query=body["query"],
        )
        self.usage.add_bulk_query_job()
        self.jobs.add(job)
        self.jobs.enqueue(job["id"])
        return Response.json(200, self._view(job))

    def get_query(self, req: Request, version: str, job: str) -> Response:
        view = self._view(self._job(job, JobType.QUERY))
        view["isPkChunkingSupported"] = False
        return Response.json(200, view)

    def query_results(self, req: Request, version: str, job: str) -> Response:
        info = self._job(job, JobType.QUERY)
        if info["state"] != JobState.JOB_COMPLETE or job not in self.jobs.query_rows:
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Results are not available while the job is {info['state']}",
            )
        header, rows = self.jobs.query_rows[job]
        start = _offset(req.query["locator"]) if req.query.get("locator") else 0
        limit = req.query.get("maxRecords")
        count = int(limit) if limit and limit.isdigit() and int(limit) > 0 else len(rows)
        page = rows[start : start + count]
        end = start + len(page)
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=DELIMITERS[info["columnDelimiter"]],
            lineterminator=LINE_ENDINGS[info["lineEnding"]],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(header)
        writer.writerows(page)
        return Response.csv(
            200,
            buffer.getvalue(),
            {
                "Sforce-Locator": _locator(end) if end < len(rows) else "null",
                "Sforce-NumberOfRecords": str(len(page)),
            },
        )

    # --------------------------------------------------------------------- routes

    def routes(self) -> list[Route]:
        """Every ``/jobs/ingest`` and ``/jobs/query`` route."""
        base = "/services/data/{version}/jobs"
        ingest, query = f"{base}/ingest", f"{base}/query"

        def of_type(handler, job_type: JobType):
            return lambda r, version, **params: handler(r, version, job_type=job_type, **params)

        def result(kind: ResultFile):
            return lambda r, version, job: self.results(r, version, job, kind)

        return [
            Route("POST", ingest, self.create_ingest),
            Route("GET", ingest, of_type(self.list_jobs, JobType.INGEST)),
            Route("GET", f"{ingest}/{{job}}", self.get_ingest),
            Route("PATCH", f"{ingest}/{{job}}", of_type(self.change_state, JobType.INGEST)),
            Route("DELETE", f"{ingest}/{{job}}", of_type(self.delete_job, JobType.INGEST)),
            Route("PUT", f"{ingest}/{{job}}/batches", self.upload),
            *(
                Route("GET", f"{ingest}/{{job}}/{path}", result(kind))
                for path, kind in RESULT_PATHS.items()
            ),
            Route("POST", query, self.create_query),
            Route("GET", query, of_type(self.list_jobs, JobType.QUERY)),
            Route("GET", f"{query}/{{job}}", self.get_query),
            Route("PATCH", f"{query}/{{job}}", of_type(self.change_state, JobType.QUERY)),
            Route("DELETE", f"{query}/{{job}}", of_type(self.delete_job, JobType.QUERY)),
            Route("GET", f"{query}/{{job}}/results", self.query_results),
        ]
