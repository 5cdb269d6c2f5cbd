"""The Bulk API 2.0 worker: one thread that runs closed jobs, so clients really poll.

Ingest data is cut into chunks of 10,000 rows, Salesforce's internal batch size; each chunk
is one transaction and one ``DailyBulkApiBatches`` unit. Result files keep the original
columns behind ``sf__Id,sf__Created`` / ``sf__Id,sf__Error``, as Salesforce writes them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from salesforce_emulator import dml
from salesforce_emulator.bulk_jobs import (
    DATA_FILE,
    DELIMITERS,
    Job,
    JobFailure,
    Jobs,
    JobState,
    JobType,
    Operation,
    ResultFile,
)
from salesforce_emulator.faults import Faults
from salesforce_emulator.org import Org
from salesforce_emulator.query import QueryService, compile_soql
from salesforce_emulator.records import Incoming, RowErrors
from salesforce_emulator.usage import Usage

log = logging.getLogger("salesforce_emulator.bulk")

CHUNK_ROWS = 10_000
LOCK_MESSAGE = "unable to obtain exclusive access to this record or 1 records"


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


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")


class BulkWorker:
    """Runs the jobs ``jobs`` queues against ``org``; counts batches in ``usage``.

    ``queries`` renders query results; ``faults`` may slow jobs down or lock rows.
    """

    def __init__(
        self, jobs: Jobs, org: Org, queries: QueryService, usage: Usage, faults: Faults
    ) -> None:
        self.jobs = jobs
        self.org = org
        self.queries = queries
        self.usage = usage
        self.faults = faults
        self._processing = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="bulk-worker", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold off the worker (it finishes the job at hand first)."""
        with self._processing:
            yield

    def stop(self) -> None:
        self.jobs.stop_worker()
        self._thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            job_id = self.jobs.next()
            if job_id is None:
                return
            with self._processing:
                job = self.jobs.by_id.get(job_id)
                if job is None or job["state"] != JobState.UPLOAD_COMPLETE:
                    continue
                started = time.monotonic()
                self.jobs.set_state(job, JobState.IN_PROGRESS)
                try:
                    self._wait_if_slow(job)
                    if job["jobType"] == JobType.QUERY:
                        self._run_query(job)
                    else:
                        self._run_ingest(job)
                except JobFailure as failure:
                    self.jobs.set_state(job, JobState.FAILED, errorMessage=str(failure))
                except Exception as exc:
                    log.exception("bulk job %s failed", job_id)
                    self.jobs.set_state(job, JobState.FAILED, errorMessage=f"Unknown : {exc}")
                elapsed = int((time.monotonic() - started) * 1000)
                with self.jobs.lock:
                    job.update(totalProcessingTime=elapsed, apiActiveProcessingTime=elapsed)
                    self.jobs.save(job)

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
        self.jobs.set_state(job, JobState.JOB_COMPLETE, numberRecordsProcessed=len(rows))

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
        path = self.jobs.path(job["id"], DATA_FILE)
        if not path.exists():
            raise JobFailure("InvalidBatch : No data found in the batch")
        header, rows = parse_csv(
            path.read_bytes(), DELIMITERS[job["columnDelimiter"]], job["lineEnding"]
        )
        names = self._fields_for(job, header)
        locked = self.faults.locked_rows(len(rows))
        raw = rows.copy()
        raw.columns = header
        done, failed = [], []
        processed = 0
        for start in range(0, len(rows), CHUNK_ROWS):
            if job["state"] != JobState.IN_PROGRESS:
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
            self.usage.add_bulk_batches(1)
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
            with self.jobs.lock:
                job["numberRecordsProcessed"] = processed
                job["numberRecordsFailed"] = job.get("numberRecordsFailed", 0) + int(bad.sum())
        folder = self.jobs.files(job["id"])
        empty_success = pd.DataFrame(columns=["sf__Id", "sf__Created", *header])
        empty_failed = pd.DataFrame(columns=["sf__Id", "sf__Error", *header])
        (folder / f"{ResultFile.SUCCESSFUL}.csv").write_text(
            _csv_text(pd.concat([empty_success, *done], ignore_index=True)), encoding="utf-8"
        )
        (folder / f"{ResultFile.FAILED}.csv").write_text(
            _csv_text(pd.concat([empty_failed, *failed], ignore_index=True)), encoding="utf-8"
        )
        (folder / f"{ResultFile.UNPROCESSED}.csv").write_text(
            _csv_text(raw.iloc[processed:]), encoding="utf-8"
        )
        if job["state"] == JobState.IN_PROGRESS:
            self.jobs.set_state(job, JobState.JOB_COMPLETE)
        else:
            self.jobs.save(job)

    def _apply(self, job: Job, inc: Incoming, errors: RowErrors) -> dml.Outcome:
        operation, obj = job["operation"], job["object"]
        with self.org.store.transaction() as db:
            ctx = self.org.context(job["apiVersion"])
            if operation == Operation.INSERT:
                return dml.insert(ctx, db, obj, inc, errors)
            if operation == Operation.UPDATE:
                return dml.update(ctx, db, obj, inc, errors)
            if operation == Operation.UPSERT:
                return dml.upsert(ctx, db, obj, inc, job["externalIdFieldName"], errors)
            ids = inc.values["Id"]
            return dml.delete(ctx, db, obj, ids, errors, hard=operation == Operation.HARD_DELETE)
