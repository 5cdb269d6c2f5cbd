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

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from activity_sync import lake

log = logging.getLogger(__name__)

HOUR_FORMAT = "%Y-%m-%dT%H"
COMMIT_ATTEMPTS = 5  # concurrent loads of other hours commit to the same table


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
    """``event_hash`` and ``event_hash2`` of each event id (vectorised SipHash)."""
    ids = pd.Series(event_ids, dtype=object).reset_index(drop=True)
    return pd.DataFrame(
        {
            name: pd.util.hash_pandas_object(ids, index=False, hash_key=key)
            .to_numpy()
            .view("int64")
            for name, key in zip(HASHES, _HASH_KEYS, strict=True)
        }
    )


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


def _matches(root: Any, org_id: str, event_ids: Iterable[str]) -> pd.DataFrame:
    """``hour``, ``loaded_at`` and ``event_id`` of every ledger row of these events.

    Scans only the two hash columns and the two small ones, and hash-joins them with the
    wanted events' hashes (an Arrow join builds one table of the wanted, where a filter
    expression would hash the wanted set again for every batch).
    """
    wanted = pd.Series(pd.unique(pd.Series(list(event_ids), dtype=object)), dtype=object)
    keys = pa.Table.from_pandas(
        event_hashes(wanted).assign(event_id=wanted.to_numpy()), preserve_index=False
    )
    with lake.delta_location(lake.ledger_folder(root, org_id)) as uri:
        try:
            table = DeltaTable(uri)
        except TableNotFoundError:
            return pd.DataFrame(columns=["event_id", "hour", "loaded_at"])
        scanned = table.to_pyarrow_dataset().to_table(columns=[*HASHES, "hour", "loaded_at"])
    joined = scanned.join(keys, keys=HASHES, join_type="inner")
    return joined.select(["event_id", "hour", "loaded_at"]).to_pandas()


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
    matches = _matches(root, org_id, event_ids)  # narrow first: a first run finds none
    if matches.empty:
        return pd.DataFrame(columns=COLUMNS)
    hashes = event_hashes(matches["event_id"].drop_duplicates())
    # Only the dates holding them are read (the table is partitioned by date).
    dates = pa.array(matches["hour"].str.slice(0, 10).drop_duplicates().tolist(), pa.string())
    wanted = pc.field("date").isin(dates) & pc.field("event_hash").isin(
        pa.array(hashes["event_hash"])
    )
    with lake.delta_location(lake.ledger_folder(root, org_id)) as uri:
        found = DeltaTable(uri).to_pyarrow_dataset().to_table(filter=wanted)
    rows = found.select(COLUMNS).to_pandas()
    # The exact ids: a hash shared by another event (vanishingly rare) is dropped here.
    return _latest(rows[rows["event_id"].isin(matches["event_id"])])


def owners(root: Any, org_id: str, event_ids: Iterable[str]) -> pd.Series:
    """event_id -> the hour that owns it (whose load last had it), for the events any load
    had. Reads three narrow columns only: what every hourly plan asks, so it stays fast
    against a month of ledger (benchmarks/bench_ledger.py)."""
    rows = _latest(_matches(root, org_id, event_ids))
    return rows.drop_duplicates("event_id").set_index("event_id")["hour"]
