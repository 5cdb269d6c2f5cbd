"""Ingest jobs until every row has an outcome: parts by size, row retries, earlier jobs.

The invariant, checked after every job: each row sent is in exactly one of the job's
successful, failed or unprocessed results — or in none, which counts as unprocessed
(``NO_RESULT``): a job that failed before processing, or that the client gave up on and
aborted, may list nothing. Unprocessed rows and rows Salesforce could not lock go into the
next job; after the last attempt they are given up with that code. An upsert that lost a
race on the external key gets ``DUPLICATE_VALUE`` naming the key and the record holding it:
the Task exists, so the next attempt updates that record by Id (also how an archived Task,
which upserts do not match, answers). Such a row is never given up as ``DUPLICATE_VALUE``:
one lost on the last attempt gets one more attempt, by Id, which cannot meet the key
again. A ``DUPLICATE_VALUE`` about another field, or naming no record, is no race on the
key (another Unique field of the object clashes): no retry can fix it, so it is final.

Rows are cut into jobs whose CSV stays under the upload limit, each job retried on its
own. A job's id is written to the ledger before its data is uploaded; a later attempt
first waits for the unfinished jobs of earlier ones, and a part whose CSV is exactly what
such a job was sent takes that job's results instead of being sent a second time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from activity_sync.bulk import (
    BULK_NULL,
    DUPLICATE_VALUE,
    RESULT_CREATED,
    RESULT_ERROR,
    RESULT_ID,
    TRANSIENT_ROW_CODES,
    IngestResult,
    JobKind,
    JobState,
    Operation,
    csv_body,
)
from activity_sync.errors import ActivitySyncError
from activity_sync.job_ledger import JobEntry, JobLedger

log = logging.getLogger(__name__)

# error_code of rows given up on without a row-level error from Salesforce.
UNPROCESSED = "UNPROCESSED"  # listed in a Failed or Aborted job's unprocessed results
NO_RESULT = "NO_RESULT"  # in none of the job's three result files
ROW_TOO_LARGE = "ROW_TOO_LARGE"  # one row's CSV alone exceeds the upload limit
OUTCOME_COLUMNS = ["sf_id", "created", "error_code", "error_message", "attempts"]

_OK, _FINAL, _RETRY = "ok", "final", "retry"
# The record a DUPLICATE_VALUE names: "... duplicates value on record with id: 00T...".
_RECORD_ID = r"record with id: ([A-Za-z0-9]{15,18})"
_BY_ID = "_record_id"  # pending rows' column: update this record instead of upserting


class DuplicateRowKeys(ActivitySyncError, ValueError):
    """Two rows of one load share a key, so results could not be told apart."""


class UploadTooLarge(ActivitySyncError, RuntimeError):
    """A job's CSV came out over the upload limit (a bug in the size estimate)."""


class OutcomeMismatch(ActivitySyncError, RuntimeError):
    """A job's rows and their outcomes do not add up (a bug in matching results)."""


@dataclass(frozen=True)
class JobSpec:
    """What a family of jobs does, and how its rows are recognised in the results.

    Attributes:
        object_name, operation, external_id_field: the jobs' (the field for upserts).
        key: the columns that identify a row in the result files.
        clearable: columns whose empty value is sent as Bulk's null, so an update clears
            the field instead of leaving it as it was.
        create_only: columns an update must leave out (Salesforce refuses to change them).
    """

    object_name: str
    operation: Operation
    key: tuple[str, ...]
    external_id_field: str | None = None
    clearable: tuple[str, ...] = ()
    create_only: tuple[str, ...] = ()

    def by_id(self) -> JobSpec:
        """The same rows as an update by record Id (the ``Id`` column)."""
        return JobSpec(self.object_name, Operation.UPDATE, self.key, None, self.clearable)

    def key_races(self, code: pd.Series, message: pd.Series) -> pd.Series:
        """Rows that lost a race on the external key: an upsert's DUPLICATE_VALUE naming
        the key field and the record that holds it (so the record exists now)."""
        if self.operation != Operation.UPSERT or not self.external_id_field:
            return pd.Series(False, index=code.index)
        text = message.fillna("")
        named = text.str.extract(_RECORD_ID)[0].notna() & text.str.lower().str.contains(
            self.external_id_field.lower(), regex=False
        )
        return code.eq(DUPLICATE_VALUE) & named


def bulk_cells(rows: pd.DataFrame, clearable: tuple[str, ...]) -> pd.DataFrame:
    """``rows`` as a Bulk CSV carries them: a null or empty ``clearable`` cell is #N/A."""
    rows = rows.astype(object).where(rows.notna(), None)
    for column in clearable:
        rows[column] = rows[column].where(rows[column].notna() & rows[column].ne(""), BULK_NULL)
    return rows


def _row_sizes(rows: pd.DataFrame) -> np.ndarray:
    """An upper bound on each row's bytes in the CSV: every value quoted, quotes doubled."""
    sizes = np.full(len(rows), len(rows.columns) + 1, dtype=np.int64)  # commas and CRLF
    for column in rows.columns:
        text = rows[column].astype(object).where(rows[column].notna(), "").astype(str)
        encoded = text.str.encode("utf-8").str.len().to_numpy(dtype=np.int64)
        sizes += encoded + text.str.count('"').to_numpy(dtype=np.int64) + 2
    return sizes


def split_by_size(rows: pd.DataFrame, limit: int) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Consecutive parts of ``rows`` whose CSV stays within ``limit`` bytes.

    Returns:
        The parts, and the rows too large to go in any job on their own.
    """
    header = len(csv_body(rows.iloc[:0]))
    ends = np.cumsum(_row_sizes(rows))
    parts: list[pd.DataFrame] = []
    too_large: list[int] = []
    start = 0
    while start < len(rows):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + limit - header, side="right"))
        if stop == start:
            too_large.append(start)
            start += 1
            continue
        parts.append(rows.iloc[start:stop])
        start = stop
    return parts, rows.iloc[too_large]


class JobRunner:
    """Runs a load's ingest jobs for one org.

    Args:
        client: the org's Salesforce (a ``SalesforceClient`` or a fake of its Bulk part).
        attempts: jobs a row gets when it could not be locked, lost a race, or was not
            processed; after the last it is given up with that code.
        retry_wait: seconds before the second job, doubling for each later one.
        max_upload_bytes: the most CSV one job is sent.
        ledger: where job ids are recorded before their upload, and earlier attempts'
            jobs are found.
    """

    def __init__(
        self,
        client: Any,
        *,
        attempts: int,
        retry_wait: float,
        max_upload_bytes: int,
        ledger: JobLedger | None = None,
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.retry_wait = retry_wait
        self.max_upload_bytes = max_upload_bytes
        self.ledger = ledger or JobLedger()
        self._earlier: dict[tuple[str, str, str], list[IngestResult]] = {}

    def settle_earlier_jobs(self) -> int:
        """Wait for the jobs earlier attempts recorded and did not see through.

        A job still Open was never closed, so Salesforce never processes it: it is aborted,
        not waited for. The others are waited for (aborted past the job timeout) and their
        results kept, to stand in for a part that would send them the same CSV again.

        Returns:
            How many jobs were settled.
        """
        from simple_salesforce.exceptions import SalesforceResourceNotFound

        settled = 0
        for entry in self.ledger.unfinished():
            try:
                state = self.client.job_status(JobKind.INGEST, entry.job_id)["state"]
            except SalesforceResourceNotFound:
                continue  # Salesforce deletes jobs seven days after they end
            if state == JobState.OPEN:
                # Never closed, so never processed: aborted, so that nothing can close it
                # later and send its rows beside the ones this attempt sends.
                log.info("job %s of an earlier attempt was never closed: aborted", entry.job_id)
                self.client.abort_job(JobKind.INGEST, entry.job_id)
                continue
            log.info("waiting for job %s of an earlier attempt (%s)", entry.job_id, state)
            result = self.client.settle_ingest_job(entry.job_id)
            key = (entry.object_name, entry.operation, entry.digest)
            self._earlier.setdefault(key, []).append(result)
            settled += 1
        return settled

    def run(self, spec: JobSpec, rows: pd.DataFrame) -> pd.DataFrame:
        """Send ``rows`` until each succeeded or failed for good, or its attempts ran out.

        Returns:
            One row per input row: the ``spec.key`` columns and OUTCOME_COLUMNS
            (``error_code`` empty on success).

        Raises:
            DuplicateRowKeys: two rows share a key.
        """
        key = list(spec.key)
        if rows[key].duplicated().any():
            raise DuplicateRowKeys(
                f"{spec.object_name} rows share a key ({', '.join(key)}): "
                f"{rows.loc[rows[key].duplicated(), key].head(3).to_dict('records')}"
            )
        done: list[pd.DataFrame] = []
        pending = rows.reset_index(drop=True)
        retry = pd.DataFrame(columns=[*key, "error_code", "error_message"])
        attempt = 0
        while not pending.empty and (
            attempt < self.attempts
            or (attempt == self.attempts and retry["error_code"].eq(DUPLICATE_VALUE).any())
        ):
            attempt += 1
            if attempt > self.attempts:
                # Key races lost on the last attempt: their Tasks exist, so they get one
                # more attempt (by Id) instead of a dead letter; the rest are given up.
                raced = retry["error_code"].eq(DUPLICATE_VALUE)
                done.append(_given_up(retry[~raced], key, attempt - 1))
                retry = retry[raced]
                pending = pending.merge(retry[key], on=key, how="inner")
            if attempt > 1:
                log.info(
                    "retrying %d %s rows (attempt %d)", len(pending), spec.object_name, attempt
                )
                self.client.sleep(self.retry_wait * 2 ** (attempt - 2))
            outcomes = self._round(spec, pending)
            settled = outcomes[outcomes["status"].ne(_RETRY)]
            done.append(settled.drop(columns="status").assign(attempts=attempt))
            retry = outcomes[outcomes["status"].eq(_RETRY)]
            pending = _next_pending(pending, retry, key)
        if not pending.empty:
            done.append(_given_up(retry, key, attempt))
        frames = [d for d in done if not d.empty]
        if not frames:
            return pd.DataFrame(columns=[*key, *OUTCOME_COLUMNS])
        return pd.concat(frames, ignore_index=True)[[*key, *OUTCOME_COLUMNS]]

    def _round(self, spec: JobSpec, pending: pd.DataFrame) -> pd.DataFrame:
        """One attempt for every pending row. One outcome row per pending row, with status.

        Upserts whose key a record already holds although the upsert did not match it
        (DUPLICATE_VALUE naming that record: how an archived Task may answer) update that
        record by Id instead.
        """
        by_id = pending[_BY_ID].notna() if _BY_ID in pending else pd.Series(False, pending.index)
        frames = [self._send(spec, pending[~by_id].drop(columns=_BY_ID, errors="ignore"))]
        if by_id.any():
            rows = (
                pending[by_id].drop(columns=list(spec.create_only)).rename(columns={_BY_ID: "Id"})
            )
            log.info("updating %d %s rows by Id: their key is taken", len(rows), spec.object_name)
            frames.append(self._send(spec.by_id(), rows))
        return pd.concat(frames, ignore_index=True)

    def _send(self, spec: JobSpec, pending: pd.DataFrame) -> pd.DataFrame:
        """The literal-null rows by REST, the rest by Bulk jobs cut to the upload limit."""
        frames = [pd.DataFrame(columns=[*spec.key, "status", *OUTCOME_COLUMNS[:-1]])]
        literal = pd.Series(False, index=pending.index)
        if spec.operation in (Operation.UPSERT, Operation.UPDATE):
            literal = pending.astype(object).eq(BULK_NULL).any(axis=1)
        if literal.any():
            sent = pending[literal]
            log.info("sending %d rows holding the text %s through REST", len(sent), BULK_NULL)
            if spec.operation == Operation.UPDATE:
                result = self.client.update_records(spec.object_name, sent, spec.clearable)
            else:
                result = self.client.upsert_records(
                    spec.object_name, spec.external_id_field, sent, spec.clearable
                )
            frames.append(_outcomes(spec, sent, result, adopted=False))
        parts, too_large = split_by_size(
            bulk_cells(pending[~literal], spec.clearable), self.max_upload_bytes
        )
        for number, part in enumerate(parts, start=1):
            if len(parts) > 1:
                log.info(
                    "%s part %d of %d: %d rows", spec.object_name, number, len(parts), len(part)
                )
            result, adopted = self._job(spec, part)
            frames.append(_outcomes(spec, part, result, adopted=adopted))
        if not too_large.empty:
            frames.append(
                too_large[list(spec.key)].assign(
                    status=_FINAL,
                    sf_id=None,
                    created=False,
                    error_code=ROW_TOO_LARGE,
                    error_message=f"the row alone is over the {self.max_upload_bytes:,}-byte upload limit",
                )
            )
        return pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)

    def _job(self, spec: JobSpec, part: pd.DataFrame) -> tuple[IngestResult, bool]:
        """The part's job: an earlier attempt's that was sent this very CSV, or a new one."""
        body = csv_body(part)
        if len(body) > self.max_upload_bytes:
            raise UploadTooLarge(
                f"a {spec.object_name} job's CSV is {len(body):,} bytes, over the "
                f"{self.max_upload_bytes:,}-byte limit"
            )
        digest = hashlib.sha256(body).hexdigest()
        earlier = self._earlier.get((spec.object_name, spec.operation, digest))
        if earlier:
            result = earlier.pop(0)
            log.info("%d rows were sent to job %s before: not sent again", len(part), result.job_id)
            return result, True

        def record(job_id: str) -> None:
            self.ledger.record(
                JobEntry(job_id, spec.object_name, str(spec.operation), digest, len(part))
            )

        result = self.client.ingest(
            spec.object_name,
            spec.operation,
            body,
            external_id_field=spec.external_id_field,
            on_created=record,
        )
        return result, False


def _given_up(retry: pd.DataFrame, key: list[str], attempts: int) -> pd.DataFrame:
    """Rows whose attempts ran out, with the error of their last one."""
    gave_up = retry[[*key, "error_code", "error_message"]]
    return gave_up.assign(sf_id=None, created=False, attempts=attempts)


def _next_pending(pending: pd.DataFrame, retry: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The rows to send again, each with the record to update by Id if one is known."""
    named = retry["error_message"].where(retry["error_code"].eq(DUPLICATE_VALUE), "")
    found = retry[key].astype(object).assign(_named=named.str.extract(_RECORD_ID)[0].to_numpy())
    out = pending.merge(found, on=key, how="inner")
    known = out[_BY_ID] if _BY_ID in out else pd.Series(None, index=out.index, dtype=object)
    out[_BY_ID] = out["_named"].where(out["_named"].notna(), known)
    return out.drop(columns="_named")


def _outcomes(
    spec: JobSpec, sent: pd.DataFrame, result: IngestResult, *, adopted: bool
) -> pd.DataFrame:
    """Each sent row's outcome in one job, checking that no row goes without one.

    A row is in the successful, else the failed, else the unprocessed results, else in
    none (``NO_RESULT``). Results that name rows this job was not sent are reported
    and left out; they cannot be matched to anything.
    """
    key = list(spec.key)
    verdicts = []
    for rank, (frame, columns) in enumerate(
        [
            (result.successful, [RESULT_ID, RESULT_CREATED]),
            (result.failed, [RESULT_ID, RESULT_ERROR]),
            (result.unprocessed, []),
        ]
    ):
        if not frame.empty:
            verdicts.append(frame.reindex(columns=[*key, *columns]).assign(_rank=rank))
    sent_keys = sent[key].astype(str).reset_index(drop=True)
    columns = [*key, RESULT_ID, RESULT_CREATED, RESULT_ERROR, "_rank"]
    verdict = (
        pd.concat(verdicts, ignore_index=True).reindex(columns=columns)
        if verdicts
        else pd.DataFrame(columns=columns)
    )
    verdict[key] = verdict[key].fillna("").astype(str)
    in_several = verdict.duplicated(key, keep=False)
    if in_several.any():
        log.warning(
            "job %s listed %d rows in more than one result file; the first file counts",
            result.job_id,
            int(verdict.loc[in_several, key].drop_duplicates().shape[0]),
        )
    verdict = verdict.sort_values("_rank", kind="stable").drop_duplicates(key)
    out = sent_keys.merge(verdict, on=key, how="left", indicator=True)
    unknown = len(verdict) - int(out["_merge"].eq("both").sum())
    if unknown:
        log.error("job %s reported %d rows it was not sent; ignored", result.job_id, unknown)
    rank = out["_rank"]
    counts = {
        "successful": int(rank.eq(0).sum()),
        "failed": int(rank.eq(1).sum()),
        "unprocessed": int(rank.eq(2).sum()),
        "missing": int(rank.isna().sum()),
    }
    if len(out) != len(sent) or sum(counts.values()) != len(sent):
        raise OutcomeMismatch(f"job {result.job_id}: {len(sent)} rows sent, outcomes {counts}")
    if counts["missing"]:
        log.warning(
            "job %s (%s) has no result for %d of its %d rows: they count as unprocessed",
            result.job_id,
            result.state,
            counts["missing"],
            len(sent),
        )
    code, message = _split_error(out[RESULT_ERROR])
    ended = f"job {result.job_id} ended {result.state}"
    if result.error_message:
        ended += f": {result.error_message}"
    code = code.mask(rank.eq(2), UNPROCESSED).mask(rank.isna(), NO_RESULT)
    message = message.mask(rank.eq(2), ended).mask(rank.isna(), f"no result for the row; {ended}")
    status = np.select(
        [
            rank.eq(0),
            code.isin(TRANSIENT_ROW_CODES)
            | spec.key_races(code, message)
            | rank.eq(2)
            | rank.isna(),
        ],
        [_OK, _RETRY],
        _FINAL,
    )
    created = out[RESULT_CREATED].fillna("").str.lower().eq("true") & rank.eq(0)
    frame = pd.DataFrame(
        {
            **{k: sent[k].to_numpy() for k in key},
            "status": status,
            "sf_id": out[RESULT_ID].where(out[RESULT_ID].fillna("").ne(""), None),
            # Rows of an earlier attempt's job: what else that attempt did is unknown.
            "created": created & (not adopted),
            "error_code": code.where(rank.ne(0), ""),
            "error_message": message.where(rank.ne(0), ""),
        }
    )
    log.info("job %s: %s", result.job_id or "(REST)", counts)
    return frame


def _split_error(errors: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split Bulk's ``CODE:message:fields`` into code and message."""
    parts = errors.fillna("").astype(str).str.split(":", n=1, expand=True).reindex(columns=[0, 1])
    return parts[0].fillna(""), parts[1].fillna("").str.removesuffix(":--")
