"""An ingest job's result files: every uploaded row in exactly one of them once it ends.

"Get Job Unprocessed Record Results ... Retrieves a list of unprocessed records for failed
or aborted jobs ... A job that is interrupted or otherwise fails to complete can result in
rows that aren't processed", each row with "Field data for the row that was provided in
the original job data upload request"
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_unprocessed_results.htm).
So whatever ends a job (it completes, fails before or during processing, is aborted before
or while it runs, or the emulator restarts under it), the successful, failed and
unprocessed files together hold each uploaded row once. Successful and failed rows are
appended as each chunk commits; the unprocessed rows are written when the job stops, and
only then are the results ``ready`` (the results endpoint waits for that).

A file that cannot be parsed at all is returned whole as the unprocessed records: the
rows as uploaded are all there is.

Salesforce documents no order for the rows of a result file, so each file's rows come in
a shuffled order, seeded by the job's Id (repeatable): a client must match results to its
rows by their columns or ``sf__Id``, never by position.
"""

from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from salesforce_emulator.bulk_jobs import (
    DATA_FILE,
    DELIMITERS,
    Job,
    JobFailure,
    Jobs,
    ResultFile,
)

SUCCESS_COLUMNS = ["sf__Id", "sf__Created"]
FAILED_COLUMNS = ["sf__Id", "sf__Error"]
READY = "_results"


def parse_csv(data: bytes, delimiter: str, line_ending: str) -> tuple[list[str], pd.DataFrame]:
    """Header and rows as strings; a line ending that contradicts the job fails the job."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobFailure(f"ClientInputError : The data is not valid UTF-8: {exc}") from exc
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


def csv_text(frame: pd.DataFrame, *, header: bool = True) -> str:
    """Rows as Salesforce writes result files: every value quoted, LF line ends."""
    return frame.to_csv(index=False, header=header, quoting=csv.QUOTE_ALL, lineterminator="\n")


class ResultFiles:
    """The three result files of one job, in its folder."""

    def __init__(self, jobs: Jobs, job: Job) -> None:
        self.jobs = jobs
        self.job = job
        self.folder = jobs.files(job["id"])

    def path(self, kind: ResultFile) -> Path:
        return self.folder / f"{kind}.csv"

    def begin(self, header: list[str]) -> None:
        """Empty successful and failed files: their headers before any row."""
        for kind, extra in (
            (ResultFile.SUCCESSFUL, SUCCESS_COLUMNS),
            (ResultFile.FAILED, FAILED_COLUMNS),
        ):
            self.path(kind).write_text(
                csv_text(pd.DataFrame(columns=[*extra, *header])), encoding="utf-8"
            )

    def append(self, done: pd.DataFrame, failed: pd.DataFrame) -> None:
        """One committed chunk's rows (result columns first, then the uploaded ones)."""
        for kind, rows in ((ResultFile.SUCCESSFUL, done), (ResultFile.FAILED, failed)):
            if len(rows):
                with self.path(kind).open("a", encoding="utf-8") as out:
                    out.write(csv_text(rows, header=False))

    def finish(self, unprocessed: pd.DataFrame | bytes) -> None:
        """Write the rows never processed (as uploaded), shuffle every file's rows and make
        the results ready."""
        rng = np.random.default_rng(zlib.crc32(self.job["id"].encode()))
        for kind in (ResultFile.SUCCESSFUL, ResultFile.FAILED):
            self._shuffle(self.path(kind), rng)
        target = self.path(ResultFile.UNPROCESSED)
        if isinstance(unprocessed, bytes):
            target.write_bytes(unprocessed)
        else:
            order = rng.permutation(len(unprocessed))
            target.write_text(csv_text(unprocessed.iloc[order]), encoding="utf-8")
        with self.jobs.lock:
            self.job[READY] = True
            self.jobs.save(self.job)
            self.jobs.results_ready.notify_all()

    @staticmethod
    def _shuffle(path: Path, rng: np.random.Generator) -> None:
        """Rewrite a result file with its rows (not its header) in a shuffled order."""
        if not path.exists():
            return
        # Read without a header row, so that no column name is renamed on the way.
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_filter=False)
        if len(frame) <= 2:
            return
        order = np.concatenate([[0], 1 + rng.permutation(len(frame) - 1)])
        # Replaced whole, so that a restart meanwhile still finds every reported row.
        temporary = path.with_suffix(".shuffling")
        temporary.write_text(csv_text(frame.iloc[order], header=False), encoding="utf-8")
        temporary.replace(path)


def uploaded(jobs: Jobs, job: Job) -> bytes | None:
    """The job's uploaded data, or None when nothing was uploaded."""
    path = jobs.path(job["id"], DATA_FILE)
    return path.read_bytes() if path.exists() else None


def account_for_unstarted(jobs: Jobs, job: Job) -> None:
    """Results of a job that ends before processing (aborted): every row unprocessed."""
    data = uploaded(jobs, job)
    files = ResultFiles(jobs, job)
    if data is None:
        files.finish(b"")
        return
    try:
        header, rows = parse_csv(data, DELIMITERS[job["columnDelimiter"]], job["lineEnding"])
    except JobFailure:
        files.finish(data)
        return
    files.begin(header)
    rows.columns = header
    files.finish(rows)


def account_for_restart(jobs: Jobs, job: Job) -> None:
    """Results of a job the emulator stopped under: rows already reported, the rest unprocessed.

    Chunks are processed and appended in upload order, so the rows held by the successful
    and failed files are the first ones; a chunk committed but not yet appended when the
    emulator died is reported unprocessed (sending it again is what a client does).
    """
    data = uploaded(jobs, job)
    files = ResultFiles(jobs, job)
    if data is None:
        files.finish(b"")
        return
    try:
        header, rows = parse_csv(data, DELIMITERS[job["columnDelimiter"]], job["lineEnding"])
    except JobFailure:
        files.finish(data)
        return
    reported = 0
    kept = [files.path(ResultFile.SUCCESSFUL), files.path(ResultFile.FAILED)]
    if all(path.exists() for path in kept):
        reported = sum(len(pd.read_csv(p, dtype=str, keep_default_na=False)) for p in kept)
    else:
        files.begin(header)
    rest = rows.iloc[reported:].copy()
    rest.columns = header
    files.finish(rest)
