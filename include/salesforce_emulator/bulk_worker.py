"""The Bulk API 2.0 workers: a pool of threads that run closed jobs, several at a time.

As "How Requests Are Processed" says
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/how_requests_are_processed.htm),
"Salesforce creates a separate batch for each 10,000 records in your job data" (one
``DailyBulkApiBatches`` unit each), jobs run in parallel ("Support for parallel
processing", https://developer.salesforce.com/docs/platform/api-asynch/guide/bulk-common-diff-two-versions.html),
and the records are processed in chunks of 200 (the chunk size of API 21.0 and later,
"Bulk API Limits"), each chunk one transaction. So two jobs that overlap interleave chunk
by chunk, and an upsert chunk reads which keys exist before it writes: the losing side of
two jobs racing for one key gets DUPLICATE_VALUE, as in Salesforce (``unique``). Each
chunk holds the locks of the records it writes and of their parents for its transaction;
a chunk of another job that needs one waits, then fails ``UNABLE_TO_LOCK_ROW``
(``record_locks``).

``workers`` (default 2, ``--bulk-workers``) is how many jobs run at once. Result files
keep the original columns behind ``sf__Id,sf__Created`` / ``sf__Id,sf__Error``, as
Salesforce writes them; every row ends in one of them or in the unprocessed records
(``bulk_results``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from salesforce_emulator import dml
from salesforce_emulator.bulk_jobs import (
    DELIMITERS,
    Job,
    JobFailure,
    Jobs,
    JobState,
    JobType,
    Operation,
)
from salesforce_emulator.bulk_results import ResultFiles, parse_csv, uploaded
from salesforce_emulator.faults import Faults, IngestFate
from salesforce_emulator.org import Org
from salesforce_emulator.query import QueryService, compile_soql
from salesforce_emulator.record_locks import (
    LOCK_CODE,
    RecordLocks,
    column_or_null,
    lock_keys,
    lock_message,
)
from salesforce_emulator.records import Incoming, RowErrors
from salesforce_emulator.usage import Usage

log = logging.getLogger("salesforce_emulator.bulk")

CHUNK_ROWS = 200
BATCH_ROWS = 10_000
DEFAULT_WORKERS = 2
# The job-level error of a job failed by ``failed_job_rate``. Salesforce documents the event
# ("If the batch still can't be processed after 10 retries, the entire job is moved to the
# Failed state and remaining job data is not processed"), not its message: this one is ours.
FORCED_FAILURE = (
    "InternalServerError : An internal batch failed after 10 retries; "
    "the remaining job data was not processed"
)


class BulkWorker:
    """``workers`` threads running the jobs ``jobs`` queues against ``org``.

    ``usage`` counts batches, ``queries`` renders query results, ``faults`` may slow jobs,
    lock rows, fail jobs or widen the race between a chunk's read and its write.
    """

    def __init__(
        self,
        jobs: Jobs,
        org: Org,
        queries: QueryService,
        usage: Usage,
        faults: Faults,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        if workers < 1:
            raise ValueError(f"the Bulk worker pool needs at least 1 worker, not {workers}")
        self.jobs = jobs
        self.org = org
        self.queries = queries
        self.usage = usage
        self.faults = faults
        self.workers = workers
        self.locks = RecordLocks()
        self._gate = threading.Condition()
        self._running = 0
        self._pauses = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"bulk-worker-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold off every worker (each finishes the job at hand first)."""
        with self._gate:
            self._pauses += 1
            self._gate.wait_for(lambda: self._running == 0)
        try:
            yield
        finally:
            with self._gate:
                self._pauses -= 1
                self._gate.notify_all()

    def stop(self) -> None:
        for _ in self._threads:
            self.jobs.stop_worker()
        for thread in self._threads:
            thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            job_id = self.jobs.next()
            if job_id is None:
                return
            with self._gate:
                self._gate.wait_for(lambda: self._pauses == 0)
                self._running += 1
            try:
                self._run(job_id)
            finally:
                with self._gate:
                    self._running -= 1
                    self._gate.notify_all()

    def _run(self, job_id: str) -> None:
        with self.jobs.lock:
            job = self.jobs.by_id.get(job_id)
            # Aborted or deleted while queued, or gone with a reset.
            if job is None or job["state"] != JobState.UPLOAD_COMPLETE:
                return
            self.jobs.set_state(job, JobState.IN_PROGRESS)
        started = time.monotonic()
        try:
            self._wait_if_slow(job)
            if job["jobType"] == JobType.QUERY:
                self._run_query(job)
            else:
                self._run_ingest(job)
        except JobFailure as failure:
            self._end(job, JobState.FAILED, errorMessage=str(failure))
        except Exception as exc:
            log.exception("bulk job %s failed", job_id)
            self._end(job, JobState.FAILED, errorMessage=f"Unknown : {exc}")
        elapsed = int((time.monotonic() - started) * 1000)
        with self.jobs.lock:
            job.update(totalProcessingTime=elapsed, apiActiveProcessingTime=elapsed)
            self.jobs.save(job)

    def _end(self, job: Job, state: JobState, **extra: object) -> None:
        """Move a running job to ``state``; an abort that came first stands."""
        with self.jobs.lock:
            if job["state"] == JobState.IN_PROGRESS:
                self.jobs.set_state(job, state, **extra)

    def _wait_if_slow(self, job: Job) -> None:
        deadline = time.monotonic() + self.faults.slow_bulk_seconds
        while time.monotonic() < deadline and job["state"] == JobState.IN_PROGRESS:
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def _run_query(self, job: Job) -> None:
        if job["state"] != JobState.IN_PROGRESS:
            return
        compiled = compile_soql(
            self.org.shape,
            job["query"],
            include_deleted=job["operation"] == Operation.QUERY_ALL,
            now=self.org.clock.now(),
        )
        rows = self.queries.csv_rows(compiled)
        with self.jobs.lock:
            self.jobs.query_rows[job["id"]] = (compiled.fields, rows)
        self._end(job, JobState.JOB_COMPLETE, numberRecordsProcessed=len(rows))

    def _fields_for(self, job: Job, header: list[str]) -> list[str]:
        obj = job["object"]
        shape = self.org.shape
        if obj not in shape.objects():
            raise JobFailure(f"InvalidJob : Entity '{obj}' is not supported")
        names = []
        for column in header:
            f = shape.resolve_field(obj, column.strip())
            if f is None or (not f.stored and f.name != "Id"):
                raise JobFailure(f"InvalidBatch : Field name not found : {column}")
            names.append(f.name)
        duplicates = pd.Series(names)[pd.Series(names).duplicated()]
        if not duplicates.empty:
            raise JobFailure(f"InvalidBatch : Duplicate field name : {duplicates.iloc[0]}")
        if job["operation"] in (Operation.DELETE, Operation.HARD_DELETE) and names != ["Id"]:
            raise JobFailure(f"InvalidBatch : The '{job['operation']}' batch must contain only ids")
        return names

    def _run_ingest(self, job: Job) -> None:
        results = ResultFiles(self.jobs, job)
        data = uploaded(self.jobs, job)
        if data is None:
            results.finish(b"")
            raise JobFailure("InvalidBatch : No data found in the batch")
        try:
            header, rows = parse_csv(data, DELIMITERS[job["columnDelimiter"]], job["lineEnding"])
        except Exception:
            results.finish(data)
            raise
        raw = rows.copy()
        raw.columns = header
        results.begin(header)
        processed = 0
        try:
            names = self._fields_for(job, header)
            fate = self.faults.for_ingest_job(len(rows), -(-len(rows) // CHUNK_ROWS))
            self.faults.start_with_group()
            for number, (inc, errors) in enumerate(self._chunks(job, rows, names, fate)):
                if job["state"] != JobState.IN_PROGRESS:
                    break
                if number == fate.fail_at:
                    raise JobFailure(FORCED_FAILURE)
                outcome = self._apply(job, inc, errors)
                ok = errors.ok
                results.append(_successes(outcome, ok, raw), _failures(outcome, errors, raw))
                processed += len(ok)
                with self.jobs.lock:
                    job["numberRecordsProcessed"] = processed
                    job["numberRecordsFailed"] += int((~ok).sum())
                    self.jobs.save(job)
        finally:
            results.finish(raw.iloc[processed:])
        self._end(job, JobState.JOB_COMPLETE)

    def _chunks(
        self, job: Job, rows: pd.DataFrame, names: list[str], fate: IngestFate
    ) -> Iterator[tuple[Incoming, RowErrors]]:
        """The job's 200-row chunks with their errors so far, batch by internal batch.

        A batch's values are checked once (they need no database); locked rows already
        carry their error.
        """
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows.iloc[start : start + BATCH_ROWS]
            batch.columns = names
            errors = RowErrors(batch.index)
            locked = pd.Series(fate.locked[start : start + BATCH_ROWS], index=batch.index)
            errors.add(locked, LOCK_CODE, lock_message(1), "")
            fields = self.org.shape.fields(job["object"])
            inc = dml.prepare(fields, Incoming.from_csv(batch), errors, job["apiVersion"])
            self.usage.add_bulk_batches(1)
            for first in range(0, len(batch), CHUNK_ROWS):
                chunk = inc.rows(first, first + CHUNK_ROWS)
                yield chunk, errors.subset(chunk.index)

    def _apply(self, job: Job, inc: Incoming, errors: RowErrors) -> dml.Outcome:
        """One chunk in one transaction, holding its record locks (``record_locks``).

        An upsert finds its keys first, then takes its locks and writes: a chunk that waited
        for another job's locks writes what it read before, so two jobs racing for one key
        still meet DUPLICATE_VALUE. A chunk that cannot get its locks writes nothing.
        """
        operation, obj = job["operation"], job["object"]
        matches = None
        key = job.get("externalIdFieldName")
        with self.org.store.lock:
            if operation == Operation.UPSERT and key != "Id" and key in inc.values:
                keys = inc.values[key].where(inc.given[key])
                matches = dml.match_keys(
                    self.org.store.conn, obj, self.org.shape.fields(obj)[key], keys
                )
            ok = errors.ok
            written = matches["Id"] if matches is not None else column_or_null(inc.values, "Id")[ok]
            locks = lock_keys(self.org.store.conn, obj, inc.values[ok], written)
        with self.locks.holding(locks, self.org.settings.lock_wait_seconds) as locked:
            if not locked:
                log.info("bulk job %s: a chunk could not lock its records", job["id"])
                errors.add(
                    pd.Series(True, index=inc.index), LOCK_CODE, lock_message(len(inc.index))
                )
                return dml.Outcome.empty(inc.index)
            if self.faults.chunk_seconds:
                time.sleep(self.faults.chunk_seconds)
            return self._write(job, inc, errors, matches)

    def _write(
        self, job: Job, inc: Incoming, errors: RowErrors, matches: pd.DataFrame | None
    ) -> dml.Outcome:
        operation, obj = job["operation"], job["object"]
        key = job.get("externalIdFieldName")
        with self.org.store.transaction() as db:
            ctx = self.org.context(job["apiVersion"])
            if operation == Operation.INSERT:
                return dml.insert(ctx, db, obj, inc, errors)
            if operation == Operation.UPDATE:
                return dml.update(ctx, db, obj, inc, errors)
            if operation == Operation.UPSERT:
                return dml.upsert(ctx, db, obj, inc, key, errors, matches)
            ids = inc.values["Id"]
            return dml.delete(ctx, db, obj, ids, errors, hard=operation == Operation.HARD_DELETE)


def _successes(outcome: dml.Outcome, ok: pd.Series, raw: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
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


def _failures(outcome: dml.Outcome, errors: RowErrors, raw: pd.DataFrame) -> pd.DataFrame:
    bad = ~errors.ok
    return pd.concat(
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
