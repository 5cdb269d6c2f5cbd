"""Bulk API 2.0: ingest jobs (insert, update, upsert, delete, hardDelete) and query jobs.

A job moves Open → UploadComplete → InProgress → JobComplete (or Failed / Aborted), and a
worker thread does the processing after the client closes the job, so clients really poll.
Ingest data is cut into chunks of 10,000 rows, Salesforce's internal batch size; each chunk
is one transaction and one ``DailyBulkApiBatches`` unit. Result files keep the original
columns behind ``sf__Id,sf__Created`` / ``sf__Id,sf__Error``, as Salesforce writes them.
Job descriptions persist in SQLite and data/results under ``<data-dir>/jobs/<id>/``; query
results are held in memory only.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from salesforce_emulator import dml
from salesforce_emulator.objects import ALL_OBJECTS
from salesforce_emulator.protocol import ApiError, Request, Response
from salesforce_emulator.query import Compiled, compile_soql
from salesforce_emulator.records import Incoming, RowErrors
from salesforce_emulator.soql import SoqlError
from salesforce_emulator.store import timestamp

if TYPE_CHECKING:
    from salesforce_emulator.app import Emulator

log = logging.getLogger("salesforce_emulator.bulk")

CHUNK_ROWS = 10_000
TERMINAL = ("JobComplete", "Failed", "Aborted")
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
LOCK_MESSAGE = "unable to obtain exclusive access to this record or 1 records"


class JobFailure(Exception):
    """A problem with the whole job: the job ends Failed with this errorMessage."""


def _job_not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except ValueError as exc:
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from exc


def parse_csv(data: bytes, delimiter: str, line_ending: str) -> tuple[list[str], pd.DataFrame]:
    """Header and rows as strings; a line ending that contradicts the job fails the job."""
    text = data.decode("utf-8-sig")
    first_break = text.find("\n")
    if first_break >= 0:
        crlf = first_break > 0 and text[first_break - 1] == "\r"
        if crlf != (line_ending == "CRLF"):
            raise JobFailure(
                f"ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                f"setting is {line_ending}"
            )
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.EmptyDataError as exc:
        raise JobFailure("InvalidBatch : No data found in the batch") from exc
    except pd.errors.ParserError as exc:
        raise JobFailure(f"InvalidBatch : Failed to parse CSV: {exc}") from exc
    header = [str(h) for h in frame.iloc[0].tolist()]
    rows = frame.iloc[1:].reset_index(drop=True)
    rows.columns = range(len(header))
    return header, rows


def _csv_text(frame: pd.DataFrame, delimiter: str = ",", line_ending: str = "\n") -> str:
    return frame.to_csv(
        index=False, sep=delimiter, quoting=csv.QUOTE_ALL, lineterminator=line_ending
    )


class BulkService:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.jobs: dict[str, dict[str, Any]] = {}
        self.query_rows: dict[str, tuple[list[str], list[tuple]]] = {}
        self._lock = threading.RLock()
        self._processing = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        for job_id, info in emu.store.read("SELECT id, info FROM _jobs"):
            self.jobs[job_id] = json.loads(info)
        for job in self.jobs.values():
            if job["state"] == "InProgress" or (
                job["jobType"] == "V2Query" and job["state"] == "JobComplete"
            ):
                self._finish(job, "Failed", errorMessage="The emulator restarted during the job")
            elif job["state"] == "UploadComplete":
                self._queue.put(job["id"])
        self._worker = threading.Thread(target=self._work, name="bulk-worker", daemon=True)
        self._worker.start()
        self._register()

    # -------------------------------------------------------------- bookkeeping

    def _save(self, job: dict[str, Any]) -> None:
        job["systemModstamp"] = timestamp()
        with self.emu.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO _jobs (id, info) VALUES (?, ?)",
                (job["id"], json.dumps(job)),
            )

    def _finish(self, job: dict[str, Any], state: str, **extra: Any) -> None:
        with self._lock:
            job.update(state=state, **extra)
            self._save(job)

    def _job(self, job_id: str, job_type: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None or job["jobType"] != job_type:
            raise _job_not_found()
        return job

    def _dir(self, job_id: str):
        path = self.emu.data_dir / "jobs" / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def counts(self) -> dict[str, Any]:
        with self._lock:
            states = Counter(f"{j['jobType']}:{j['state']}" for j in self.jobs.values())
            return {"total": len(self.jobs), "by_state": dict(states)}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold off the worker (it finishes the job at hand first)."""
        with self._processing:
            yield

    def forget_all(self) -> None:
        with self._lock:
            self.jobs.clear()
            self.query_rows.clear()
            while not self._queue.empty():
                self._queue.get_nowait()

    def stop(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _new_job(self, body: dict[str, Any], job_type: str, version: str, kind: str) -> dict:
        with self.emu.store.transaction() as db:
            job_id = self.emu.store.next_ids(db, "750", 1)[0]
        now = timestamp()
        return {
            "id": job_id,
            "jobType": job_type,
            "createdById": self.emu.auth.credentials.user_id,
            "createdDate": now,
            "systemModstamp": now,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "lineEnding": body.get("lineEnding", "LF"),
            "columnDelimiter": body.get("columnDelimiter", "COMMA"),
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
            "contentUrl": f"services/data/v{version}/jobs/{kind}/{job_id}/batches",
        }

    @staticmethod
    def _check_format(body: dict[str, Any]) -> None:
        if body.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "Only CSV content is supported")
        if body.get("columnDelimiter", "COMMA") not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter: {body['columnDelimiter']}")
        if body.get("lineEnding", "LF") not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"Invalid lineEnding: {body['lineEnding']}")

    @staticmethod
    def _view(job: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in job.items() if not k.startswith("_")}
        if job["jobType"] == "V2Query":
            view.pop("contentUrl", None)
        return view

    # ------------------------------------------------------------------ ingest API

    def create_ingest(self, req: Request, version: str) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        self._check_format(body)
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        obj = self.emu.shape.resolve_object(str(body.get("object", "")))
        if obj is None:
            raise ApiError(
                400, "INVALIDENTITY", f"sObject type '{body.get('object')}' is not supported."
            )
        if operation in ("update", "upsert") and not ALL_OBJECTS[obj].updateable:
            raise ApiError(
                400, "INVALIDJOB", f"Entity '{obj}' is not supported for operation {operation}."
            )
        job = self._new_job(body, "V2Ingest", version, "ingest")
        job.update(object=obj, operation=operation, state="Open")
        if operation == "upsert":
            name = body.get("externalIdFieldName")
            f = self.emu.shape.resolve_field(obj, str(name or ""))
            if f is None or not (f.external_id or f.name == "Id"):
                raise ApiError(
                    400,
                    "INVALIDJOB",
                    f"Field name provided, {name} does not match an External ID, Salesforce Id, "
                    f"or indexed field for {obj}",
                )
            job["externalIdFieldName"] = f.name
        with self._lock:
            self.jobs[job["id"]] = job
            self._save(job)
        view = self._view(job)
        for key in (
            "jobType",
            "numberRecordsProcessed",
            "numberRecordsFailed",
            "retries",
            "totalProcessingTime",
            "apiActiveProcessingTime",
            "apexProcessingTime",
        ):
            view.pop(key)
        return Response.json(200, view)

    def upload(self, req: Request, version: str, job: str) -> Response:
        info = self._job(job, "V2Ingest")
        with self._lock:
            if info["state"] != "Open":
                raise ApiError(
                    409, "INVALIDJOBSTATE", f"Job {job} is not open for upload: {info['state']}"
                )
            path = self._dir(job) / "data.csv"
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
        return Response.json(200, self._view(self._job(job, "V2Ingest")))

    def change_state(self, req: Request, version: str, job: str, job_type: str) -> Response:
        info = self._job(job, job_type)
        body = req.json()
        state = body.get("state") if isinstance(body, dict) else None
        with self._lock:
            current = info["state"]
            if state == "UploadComplete" and job_type == "V2Ingest" and current == "Open":
                info["state"] = "UploadComplete"
                self._save(info)
                self._queue.put(job)
            elif state == "Aborted" and current not in TERMINAL:
                self._finish(info, "Aborted")
            else:
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Can't change the job state from {current} to {state}"
                )
        return Response.json(200, self._view(info))

    def delete_job(self, req: Request, version: str, job: str, job_type: str) -> Response:
        info = self._job(job, job_type)
        with self._lock:
            if info["state"] not in (*TERMINAL, "UploadComplete"):
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Can't delete a job in state {info['state']}"
                )
            del self.jobs[job]
            self.query_rows.pop(job, None)
            with self.emu.store.transaction() as db:
                db.execute("DELETE FROM _jobs WHERE id = ?", (job,))
        return Response.empty(204)

    def list_jobs(self, req: Request, version: str, job_type: str) -> Response:
        with self._lock:
            records = [self._view(j) for j in self.jobs.values() if j["jobType"] == job_type]
        return Response.json(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def results(self, req: Request, version: str, job: str, kind: str) -> Response:
        info = self._job(job, "V2Ingest")
        if info["state"] not in TERMINAL:
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Results are not available while the job is {info['state']}",
            )
        path = self.emu.data_dir / "jobs" / job / f"{kind}.csv"
        return Response.csv(200, path.read_text(encoding="utf-8") if path.exists() else "")

    # ------------------------------------------------------------------- query API

    def create_query(self, req: Request, version: str) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        self._check_format(body)
        operation = body.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        try:
            compiled = compile_soql(
                self.emu.shape, str(body.get("query", "")), include_deleted=operation == "queryAll"
            )
        except SoqlError as err:
            raise ApiError(400, err.error_code, err.message) from err
        if compiled.is_count:
            raise ApiError(400, "API_ERROR", "Aggregate queries are not supported by Bulk API 2.0")
        job = self._new_job(body, "V2Query", version, "query")
        job.update(
            object=compiled.object_name,
            operation=operation,
            state="UploadComplete",
            query=body["query"],
        )
        self.emu.usage.add_bulk_query_job()
        with self._lock:
            self.jobs[job["id"]] = job
            self._save(job)
        self._queue.put(job["id"])
        return Response.json(200, self._view(job))

    def get_query(self, req: Request, version: str, job: str) -> Response:
        view = self._view(self._job(job, "V2Query"))
        view["isPkChunkingSupported"] = False
        return Response.json(200, view)

    def query_results(self, req: Request, version: str, job: str) -> Response:
        info = self._job(job, "V2Query")
        if info["state"] != "JobComplete" or job not in self.query_rows:
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Results are not available while the job is {info['state']}",
            )
        header, rows = self.query_rows[job]
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

    # ---------------------------------------------------------------------- worker

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._processing:
                job = self.jobs.get(job_id)
                if job is None or job["state"] != "UploadComplete":
                    continue
                started = time.monotonic()
                self._finish(job, "InProgress")
                try:
                    self._wait_if_slow(job)
                    if job["jobType"] == "V2Query":
                        self._run_query(job)
                    else:
                        self._run_ingest(job)
                except JobFailure as failure:
                    self._finish(job, "Failed", errorMessage=str(failure))
                except Exception as exc:
                    log.exception("bulk job %s failed", job_id)
                    self._finish(job, "Failed", errorMessage=f"Unknown : {exc}")
                elapsed = int((time.monotonic() - started) * 1000)
                with self._lock:
                    job.update(totalProcessingTime=elapsed, apiActiveProcessingTime=elapsed)
                    self._save(job)

    def _wait_if_slow(self, job: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.emu.faults.slow_bulk_seconds
        while time.monotonic() < deadline and job["state"] == "InProgress":
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def _run_query(self, job: dict[str, Any]) -> None:
        if job["state"] != "InProgress":
            return
        compiled: Compiled = compile_soql(
            self.emu.shape, job["query"], include_deleted=job["operation"] == "queryAll"
        )
        rows = self.emu.queries.csv_rows(compiled)
        with self._lock:
            self.query_rows[job["id"]] = (compiled.fields, rows)
        self._finish(job, "JobComplete", numberRecordsProcessed=len(rows))

    def _fields_for(self, job: dict[str, Any], header: list[str]) -> list[str]:
        obj = job["object"]
        if obj not in self.emu.shape.objects():
            raise JobFailure(f"InvalidJob : Entity '{obj}' is not supported")
        names = []
        for column in header:
            f = self.emu.shape.resolve_field(obj, column.strip())
            if f is None or (not f.stored and f.name != "Id"):
                raise JobFailure(f"InvalidBatch : Field name not found : {column}")
            names.append(f.name)
        duplicates = pd.Series(names)[pd.Series(names).duplicated()]
        if not duplicates.empty:
            raise JobFailure(f"InvalidBatch : Duplicate field name : {duplicates.iloc[0]}")
        if job["operation"] in ("delete", "hardDelete") and names != ["Id"]:
            raise JobFailure(f"InvalidBatch : The '{job['operation']}' batch must contain only ids")
        return names

    def _run_ingest(self, job: dict[str, Any]) -> None:
        path = self.emu.data_dir / "jobs" / job["id"] / "data.csv"
        if not path.exists():
            raise JobFailure("InvalidBatch : No data found in the batch")
        header, rows = parse_csv(
            path.read_bytes(), DELIMITERS[job["columnDelimiter"]], job["lineEnding"]
        )
        names = self._fields_for(job, header)
        locked = self.emu.faults.locked_rows(len(rows))
        raw = rows.copy()
        raw.columns = header
        done, failed = [], []
        processed = 0
        for start in range(0, len(rows), CHUNK_ROWS):
            if job["state"] != "InProgress":
                break
            chunk = rows.iloc[start : start + CHUNK_ROWS]
            chunk.columns = names
            errors = RowErrors(chunk.index)
            errors.add(
                pd.Series(locked[start : start + CHUNK_ROWS], index=chunk.index),
                "UNABLE_TO_LOCK_ROW",
                LOCK_MESSAGE,
                "",
            )
            outcome = self._apply(job, Incoming.from_csv(chunk), errors)
            self.emu.usage.add_bulk_batches(1)
            ok = errors.ok
            done.append(
                pd.concat(
                    [
                        pd.DataFrame(
                            {
                                "sf__Id": outcome.ids[ok],
                                "sf__Created": np.where(outcome.created[ok], "true", "false"),
                            }
                        ),
                        raw.loc[ok[ok].index],
                    ],
                    axis=1,
                )
            )
            bad = ~ok
            failed.append(
                pd.concat(
                    [
                        pd.DataFrame(
                            {
                                "sf__Id": outcome.ids[bad].fillna(""),
                                "sf__Error": errors.code[bad]
                                + ":"
                                + errors.message[bad].astype(str)
                                + ":"
                                + errors.fields[bad].fillna("").replace("", "--"),
                            }
                        ),
                        raw.loc[bad[bad].index],
                    ],
                    axis=1,
                )
            )
            processed = start + len(chunk)
            with self._lock:
                job["numberRecordsProcessed"] = processed
                job["numberRecordsFailed"] = job.get("numberRecordsFailed", 0) + int(bad.sum())
        folder = self._dir(job["id"])
        empty_success = pd.DataFrame(columns=["sf__Id", "sf__Created", *header])
        empty_failed = pd.DataFrame(columns=["sf__Id", "sf__Error", *header])
        (folder / "successfulResults.csv").write_text(
            _csv_text(pd.concat([empty_success, *done], ignore_index=True)), encoding="utf-8"
        )
        (folder / "failedResults.csv").write_text(
            _csv_text(pd.concat([empty_failed, *failed], ignore_index=True)), encoding="utf-8"
        )
        (folder / "unprocessedrecords.csv").write_text(
            _csv_text(raw.iloc[processed:]), encoding="utf-8"
        )
        if job["state"] == "InProgress":
            self._finish(job, "JobComplete")
        else:
            self._save(job)

    def _apply(self, job: dict[str, Any], inc: Incoming, errors: RowErrors) -> dml.Outcome:
        operation, obj = job["operation"], job["object"]
        with self.emu.store.transaction() as db:
            ctx = self.emu.context()
            if operation == "insert":
                return dml.insert(ctx, db, obj, inc, errors)
            if operation == "update":
                return dml.update(ctx, db, obj, inc, errors)
            if operation == "upsert":
                return dml.upsert(ctx, db, obj, inc, job["externalIdFieldName"], errors)
            ids = inc.values["Id"]
            return dml.delete(ctx, db, obj, ids, errors, hard=operation == "hardDelete")

    # --------------------------------------------------------------------- routes

    def _register(self) -> None:
        add = self.emu.router.add
        base = "/services/data/{version}/jobs"
        add("POST", f"{base}/ingest", self.create_ingest)
        add("GET", f"{base}/ingest", lambda r, version: self.list_jobs(r, version, "V2Ingest"))
        add("GET", f"{base}/ingest/{{job}}", self.get_ingest)
        add(
            "PATCH",
            f"{base}/ingest/{{job}}",
            lambda r, version, job: self.change_state(r, version, job, "V2Ingest"),
        )
        add(
            "DELETE",
            f"{base}/ingest/{{job}}",
            lambda r, version, job: self.delete_job(r, version, job, "V2Ingest"),
        )
        add("PUT", f"{base}/ingest/{{job}}/batches", self.upload)
        for path, kind in (
            ("successfulResults", "successfulResults"),
            ("failedResults", "failedResults"),
            ("unprocessedrecords", "unprocessedrecords"),
            ("unprocessedRecords", "unprocessedrecords"),
        ):
            add(
                "GET",
                f"{base}/ingest/{{job}}/{path}",
                lambda r, version, job, kind=kind: self.results(r, version, job, kind),
            )
        add("POST", f"{base}/query", self.create_query)
        add("GET", f"{base}/query", lambda r, version: self.list_jobs(r, version, "V2Query"))
        add("GET", f"{base}/query/{{job}}", self.get_query)
        add(
            "PATCH",
            f"{base}/query/{{job}}",
            lambda r, version, job: self.change_state(r, version, job, "V2Query"),
        )
        add(
            "DELETE",
            f"{base}/query/{{job}}",
            lambda r, version, job: self.delete_job(r, version, job, "V2Query"),
        )
        add("GET", f"{base}/query/{{job}}/results", self.query_results)
