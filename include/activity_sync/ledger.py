"""The ledger: what the loads wrote into Salesforce, per event — one record of it.

A Delta Lake table per org (``<lake>/ledger/org_id=…/``, partitioned by date), one row per
Task a load left in Salesforce: the event, the Task's key and Salesforce Id, its WhoId,
WhatId and contact relations, the hour whose load wrote it and when. An event whose plan
made no Task has one row without a key, so that it too counts as synced. Each load
replaces its hour's rows (an overwrite of that hour only), so the table always says what
the latest load of every hour left.

An event can be in several hours' rows (delivered again later, then re-planned there):
what Salesforce holds for it is what the *latest* load that had it wrote, and that hour
owns the event. Readers — the planner's "already synced" check, a re-plan's convergence,
reconciliation — ask :func:`current` for the events they have in hand instead of
recomputing keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from activity_sync import lake

log = logging.getLogger(__name__)

HOUR_FORMAT = "%Y-%m-%dT%H"
COMMIT_ATTEMPTS = 5  # concurrent loads of other hours commit to the same table
_SCAN_ROWS = 1 << 20  # rows per batch of a ledger scan: few Python steps, bounded memory


class TaskState(StrEnum):
    """What a ledger row's Task is (``state``)."""

    LOADED = "loaded"  # written by the load, as planned
    KEPT_EDITED = "kept_edited"  # no longer planned, but someone else edited it: kept


SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        # 128 bits of hash of event_id, as two int64: what lookups scan and join on, many
        # times faster than the strings (benchmarks/bench_ledger.py).
        ("event_hash", pa.int64()),
        ("event_hash2", pa.int64()),
        # The activity: a Task, or a Salesforce Event (R14); its key and Salesforce Id.
        ("object", pa.string()),
        ("task_key", pa.string()),
        ("task_id", pa.string()),
        ("who_id", pa.string()),
        ("what_id", pa.string()),
        ("relation_ids", pa.list_(pa.string())),
        ("state", pa.string()),
        ("hour", pa.string()),
        ("date", pa.string()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)
COLUMNS = SCHEMA.names
HASHES = ["event_hash", "event_hash2"]
# Two fixed 16-character keys of pandas' SipHash: fixed, so a hash written today matches
# one computed next month.
_HASH_KEYS = ("activity-sync-l1", "activity-sync-l2")


def event_hashes(event_ids: pd.Series) -> pd.DataFrame:
    """``event_hash`` and ``event_hash2`` of each event id (vectorised SipHash).

    ``categorize=False``: the ids are nearly all distinct, so pandas' default of factorising
    them first only costs time (the hashes are the same either way).
    """
    ids = pd.Series(event_ids, dtype=object).reset_index(drop=True)
    return pd.DataFrame(
        {
            name: pd.util.hash_pandas_object(ids, index=False, categorize=False, hash_key=key)
            .to_numpy()
            .view("int64")
            for name, key in zip(HASHES, _HASH_KEYS, strict=True)
        }
    )


class _Probe:
    """Which scanned ledger rows belong to the wanted events, by their two hashes.

    A month of a large org's ledger is tens of millions of rows against an hour's million
    events. A bitmap of the wanted hashes' leading bits rules out nearly every row with one
    array lookup; the few left are looked up in a hash table of the wanted first hashes
    (several wanted events may share one: each row then stands for all of them) and kept
    where the second hash matches too. Several times faster than an Arrow hash join of the
    two hash columns (benchmarks/bench_ledger.py).
    """

    def __init__(self, wanted: pd.DataFrame):
        first = wanted["event_hash"].to_numpy()
        # About 16 bits per wanted event, 1 KiB to 64 MiB: a row survives by chance with
        # a probability under 1/16.
        self._bits = int(np.clip(np.ceil(np.log2(max(len(first), 1) * 16)), 10, 26))
        self._bitmap = np.zeros(1 << self._bits, dtype=bool)
        self._bitmap[self._prefix(first)] = True
        codes, distinct = pd.factorize(first)
        self._index = pd.Index(distinct)
        # The wanted events of each distinct first hash, grouped: ``_order[_starts[c]:][:n]``.
        self._order = np.argsort(codes, kind="stable")
        self._counts = np.bincount(codes, minlength=len(distinct))
        self._starts = np.cumsum(self._counts) - self._counts
        self._second = wanted["event_hash2"].to_numpy()

    def _prefix(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes.view(np.uint64) >> np.uint64(64 - self._bits)).astype(np.intp)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the matching rows and, for each, the wanted event's position."""
        rows = np.flatnonzero(self._bitmap[self._prefix(first)])
        code = self._index.get_indexer(first[rows])
        rows, code = rows[code >= 0], code[code >= 0]
        counts = self._counts[code]
        rows, code = np.repeat(rows, counts), np.repeat(code, counts)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        at = self._order[self._starts[code] + within]
        same = self._second[at] == second[rows]
        return rows[same], at[same]


def hour_label(start: datetime) -> str:
    """The ``hour`` value of an hour's rows: its UTC start, ``YYYY-MM-DDTHH``."""
    return pd.Timestamp(start).tz_convert("UTC").strftime(HOUR_FORMAT)


def ledger_rows(
    start: datetime,
    event_ids: Iterable[str],
    tasks: pd.DataFrame,
    relations: pd.DataFrame,
    now: datetime | None = None,
) -> pa.Table:
    """One hour's rows.

    Args:
        start: the hour.
        event_ids: every event the hour's load covered (those without a Task get a row
            without a key).
        tasks: the activities in Salesforce after the load: ``object`` (Task or Event),
            ``event_id``, ``task_key`` (a Task's task_key or an Event's event_key),
            ``task_id`` (its Salesforce Id), ``who_id``, ``what_id`` and ``state``.
        relations: their people in Salesforce: ``task_key``, ``RelationId``.
        now: when the load ended (default: the clock).
    """
    now = now or datetime.now(UTC)
    label = hour_label(start)
    grouped = (
        pa.Table.from_pandas(
            relations[["task_key", "RelationId"]].astype(str), preserve_index=False
        )
        .group_by("task_key")
        .aggregate([("RelationId", "list")])
        .to_pandas()
        .rename(columns={"RelationId_list": "relation_ids"})
    )
    rows = tasks.merge(grouped, on="task_key", how="left")
    taskless = pd.Index(pd.unique(pd.Series(list(event_ids), dtype=object))).difference(
        pd.Index(rows["event_id"])
    )
    rows = pd.concat(
        [rows, pd.DataFrame({"event_id": taskless, "state": TaskState.LOADED.value})],
        ignore_index=True,
    )
    rows = rows.assign(hour=label, date=label[:10], loaded_at=pd.Timestamp(now).tz_convert("UTC"))
    rows = rows.reset_index(drop=True)
    rows[HASHES] = event_hashes(rows["event_id"])
    text = [c for c in COLUMNS if c not in ("relation_ids", "loaded_at", *HASHES)]
    rows = rows.reindex(columns=COLUMNS).astype({c: object for c in text})
    rows[text] = rows[text].where(rows[text].notna(), None)
    # relation_ids: Arrow lists (numpy arrays here); null for a Task without relations.
    return pa.Table.from_pandas(rows, schema=SCHEMA, preserve_index=False)


def record_hour(root: Any, org_id: str, start: datetime, rows: pa.Table) -> int:
    """Replace the hour's rows in the org's ledger with ``rows``; returns the version."""
    label = hour_label(start)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            with lake.delta_location(lake.ledger_folder(root, org_id), write=True) as uri:
                write_deltalake(
                    uri,
                    rows,
                    mode="overwrite",
                    predicate=f"hour = '{label}'",
                    partition_by=["date"],
                )
                version = DeltaTable(uri).version()
            log.info("ledger %s %s: %d rows (version %d)", org_id, label, rows.num_rows, version)
            return version
        except CommitFailedError as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("ledger %s %s: concurrent commit, writing again: %s", org_id, label, exc)
    raise AssertionError("unreachable")


def _matches(root: Any, org_id: str, event_ids: Iterable[str]) -> tuple[pd.DataFrame, list]:
    """``event_id``, ``hour`` and ``loaded_at`` of every ledger row of these events, and the
    data files holding them.

    Reads only the two hash columns and the two small ones (``hour`` kept
    dictionary-encoded, as Parquet stores it), batch by batch, so memory stays flat.
    """
    # Not deduplicated (costly for a million ids): an id given twice is found twice.
    wanted = pd.Series(event_ids).astype(object).reset_index(drop=True)
    empty = pd.DataFrame(columns=["event_id", "hour", "loaded_at"])
    with lake.delta_location(lake.ledger_folder(root, org_id)) as uri:
        try:
            table = DeltaTable(uri)
        except TableNotFoundError:
            return empty, []
        if wanted.empty:
            return empty, []
        probe = _Probe(event_hashes(wanted))
        dataset = table.to_pyarrow_dataset(
            parquet_read_options=pads.ParquetReadOptions(dictionary_columns={"hour"})
        )
        positions: list[np.ndarray] = []
        hours: list[pa.Array] = []
        times: list[pa.Array] = []
        files: dict[str, Any] = {}
        scanner = dataset.scanner(columns=[*HASHES, "hour", "loaded_at"], batch_size=_SCAN_ROWS)
        for tagged in scanner.scan_batches():
            batch = tagged.record_batch
            rows, at = probe(batch.column(0).to_numpy(), batch.column(1).to_numpy())
            if len(rows):
                files[tagged.fragment.path] = tagged.fragment
                positions.append(at)
                hours.append(batch.column(2).take(rows).cast(pa.string()))
                times.append(batch.column(3).take(rows))
    if not positions:
        return empty, []
    found = pd.DataFrame(
        {
            "event_id": wanted.to_numpy()[np.concatenate(positions)],
            "hour": pa.chunked_array(hours).to_pandas(),
            "loaded_at": pa.chunked_array(times).to_pandas(),
        }
    )
    return found, list(files.values())


def _latest(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of each event's latest load."""
    if rows.empty:
        return rows
    latest = rows.groupby("event_id", sort=False)["loaded_at"].transform("max")
    return rows[rows["loaded_at"].eq(latest)].reset_index(drop=True)


def current(root: Any, org_id: str, event_ids: Iterable[str]) -> pd.DataFrame:
    """What Salesforce holds for these events, as the ledger records it.

    Per event, the rows of the latest load that had it (its owner ``hour``); events no
    load had are absent.

    Returns:
        The ledger's columns (``COLUMNS``), one row per Task (and one without a key per
        event whose plan made none).
    """
    matches, fragments = _matches(root, org_id, event_ids)  # narrow first: most find none
    if matches.empty:
        return pd.DataFrame(columns=COLUMNS)
    owned = _latest(matches)
    hashes = event_hashes(owned["event_id"].drop_duplicates())
    # Whole rows are read only from the data files that hold the owners' rows (a load
    # writes its hour's rows in files of their own), and only those rows are kept.
    wanted = pc.field("hour").isin(pa.array(owned["hour"].unique().tolist(), pa.string()))
    wanted &= pc.field("event_hash").isin(pa.array(hashes["event_hash"]))
    with lake.delta_location(lake.ledger_folder(root, org_id)) as uri:
        dataset = DeltaTable(uri).to_pyarrow_dataset()
        holding = pads.FileSystemDataset(
            fragments, dataset.schema, dataset.format, fragments[0].filesystem
        )
        found = holding.to_table(filter=wanted)
    # The exact ids: a hash shared by another event (vanishingly rare) is dropped here.
    exact = pc.is_in(found["event_id"], value_set=pa.array(owned["event_id"], pa.string()))
    return _latest(found.filter(exact).select(COLUMNS).to_pandas())


def day_rows(root: Any, org_id: str, days: Iterable[str]) -> pd.DataFrame:
    """Every row the loads of these UTC days' hours wrote (``YYYY-MM-DD``; a partition each),
    superseded or not: the audit asks :func:`owners` which still hold."""
    dates = pa.array(sorted(set(days)), pa.string())
    with lake.delta_location(lake.ledger_folder(root, org_id)) as uri:
        try:
            dataset = DeltaTable(uri).to_pyarrow_dataset()
        except TableNotFoundError:
            return pd.DataFrame(columns=COLUMNS)
        found = dataset.to_table(filter=pc.field("date").isin(dates))
    return found.select(COLUMNS).to_pandas()


def owners(root: Any, org_id: str, event_ids: Iterable[str]) -> pd.Series:
    """event_id -> the hour that owns it (whose load last had it), for the events any load
    had. Reads four narrow columns only: what every hourly plan asks, so it stays fast
    against a month of a large org's ledger (benchmarks/bench_ledger.py)."""
    rows = _latest(_matches(root, org_id, event_ids)[0])
    return rows.drop_duplicates("event_id").set_index("event_id")["hour"]
