"""Bulk API 2.0 jobs as records: their vocabulary, life cycle, persistence and work queue.

A job moves Open → UploadComplete → InProgress → JobComplete (or Failed / Aborted).
Descriptions persist in SQLite (table ``_jobs``) so that a restart keeps them; uploaded data
and result files live under ``<data-dir>/jobs/<id>/``; query results are held in memory
only, so a query job that completed before a restart is failed rather than left without
results. Both the HTTP handlers (``bulk.py``) and the worker (``bulk_worker.py``) change
jobs only through :class:`Jobs`, under its lock.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any

from salesforce_emulator.ids import BULK_JOB_PREFIX
from salesforce_emulator.store import Store, timestamp

JOBS_FOLDER = "jobs"
DATA_FILE = "data.csv"


class JobState(StrEnum):
    """A job's ``state``, as Bulk API 2.0 spells it."""

    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


TERMINAL = (JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED)


class JobType(StrEnum):
    """A job's ``jobType``: ingest jobs live under ``/jobs/ingest``, query jobs ``/jobs/query``."""

    INGEST = "V2Ingest"
    QUERY = "V2Query"


class Operation(StrEnum):
    """A job's ``operation``."""

    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"
    HARD_DELETE = "hardDelete"
    QUERY = "query"
    QUERY_ALL = "queryAll"


INGEST_OPERATIONS = (
    Operation.INSERT,
    Operation.UPDATE,
    Operation.UPSERT,
    Operation.DELETE,
    Operation.HARD_DELETE,
)
QUERY_OPERATIONS = (Operation.QUERY, Operation.QUERY_ALL)


class ResultFile(StrEnum):
    """The result files of an ingest job, by the name they are stored under."""

    SUCCESSFUL = "successfulResults"
    FAILED = "failedResults"
    UNPROCESSED = "unprocessedrecords"


DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
RESTARTED = "The emulator restarted during the job"

Job = dict[str, Any]


class JobFailure(Exception):
    """A problem with the whole job: the job ends Failed with this errorMessage."""


class Jobs:
    """Every job of the org by Id, saved on each change, and the queue the worker takes from.

    ``store``: where descriptions persist; ``folder``: where each job's files go.
    """

    def __init__(self, store: Store, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self.lock = threading.RLock()
        # Notified when a job's result files are complete (``bulk_results.READY``).
        self.results_ready = threading.Condition(self.lock)
        self.by_id: dict[str, Job] = {}
        # Query results: (header, rows) by job Id, in memory only.
        self.query_rows: dict[str, tuple[list[str], list[tuple]]] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        for job_id, info in store.read("SELECT id, info FROM _jobs"):
            self.by_id[job_id] = json.loads(info)
        for job in self.by_id.values():
            if job["state"] == JobState.IN_PROGRESS or (
                job["jobType"] == JobType.QUERY and job["state"] == JobState.JOB_COMPLETE
            ):
                self.set_state(job, JobState.FAILED, errorMessage=RESTARTED)
            elif job["state"] == JobState.UPLOAD_COMPLETE:
                self._queue.put(job["id"])

    def new(self, body: dict[str, Any], job_type: JobType, version: str, user_id: str) -> Job:
        """A job description with a fresh Id and the client's format options (not yet saved)."""
        with self.store.transaction() as db:
            job_id = self.store.next_ids(db, BULK_JOB_PREFIX, 1)[0]
        now = timestamp()
        kind = "ingest" if job_type == JobType.INGEST else "query"
        return {
            "id": job_id,
            "jobType": job_type,
            "createdById": user_id,
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

    def add(self, job: Job) -> None:
        with self.lock:
            self.by_id[job["id"]] = job
            self.save(job)

    def save(self, job: Job) -> None:
        job["systemModstamp"] = timestamp()
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO _jobs (id, info) VALUES (?, ?)",
                (job["id"], json.dumps(job)),
            )

    def set_state(self, job: Job, state: JobState, **extra: Any) -> None:
        """Move ``job`` to ``state`` (with e.g. ``errorMessage``) and save it."""
        with self.lock:
            job.update(state=state, **extra)
            self.save(job)

    def get(self, job_id: str, job_type: JobType) -> Job | None:
        """The job of that Id and type, or None (a query job is not found as an ingest job)."""
        job = self.by_id.get(job_id)
        return job if job is not None and job["jobType"] == job_type else None

    def of_type(self, job_type: JobType) -> list[Job]:
        with self.lock:
            return [j for j in self.by_id.values() if j["jobType"] == job_type]

    def remove(self, job_id: str) -> None:
        with self.lock:
            del self.by_id[job_id]
            self.query_rows.pop(job_id, None)
            with self.store.transaction() as db:
                db.execute("DELETE FROM _jobs WHERE id = ?", (job_id,))

    def path(self, job_id: str, name: str) -> Path:
        """Where the file ``name`` of a job is (not created)."""
        return self.folder / job_id / name

    def files(self, job_id: str) -> Path:
        """The job's folder, created on first use."""
        path = self.folder / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def enqueue(self, job_id: str) -> None:
        self._queue.put(job_id)

    def next(self) -> str | None:
        """The next job Id to process, waiting for one; None means stop."""
        return self._queue.get()

    def stop_worker(self) -> None:
        self._queue.put(None)

    def counts(self) -> dict[str, Any]:
        with self.lock:
            states = Counter(f"{j['jobType']}:{j['state']}" for j in self.by_id.values())
            return {"total": len(self.by_id), "by_state": dict(states)}

    def forget_all(self) -> None:
        """No jobs, no queued work, no files (the store is reset by the caller)."""
        with self.lock:
            self.by_id.clear()
            self.query_rows.clear()
            while not self._queue.empty():
                self._queue.get_nowait()
            shutil.rmtree(self.folder, ignore_errors=True)
