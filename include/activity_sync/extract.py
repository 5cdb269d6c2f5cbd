"""Collect one data interval's events from the landing area into the lake.

Events land as JSON Lines per *arrival* hour. An interval takes every file that arrived
within it, whatever the events' own timestamps say, so a late event is planned in the hour
it arrived instead of being lost behind an hour already done.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from activity_sync.event_tables import to_lake
from activity_sync.events import read_events
from activity_sync.lake import landing_hour, local_copy
from activity_sync.schema import REJECTED_COLUMNS

log = logging.getLogger(__name__)


def arrival_hours(start: datetime, end: datetime) -> list[datetime]:
    if end <= start:
        raise ValueError(
            f"empty interval: start {start.isoformat()} is not before end {end.isoformat()}"
        )
    first = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    hour = first
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def _read(path: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    with local_copy(path) as local:
        return read_events(local)


def extract_interval(
    landing_root: Any, org_id: str, start: datetime, end: datetime, out_dir: Any
) -> dict[str, int]:
    """Write ``events.parquet`` and ``rejected.parquet`` (lines the reader rejected) for the
    interval.

    Returns:
        Counts: ``files`` read, ``events`` kept, ``rejected`` lines (malformed, or with a
        field that is not UTF-8).
    """
    frames, rejected, files = [], [], 0
    for hour in arrival_hours(start, end):
        folder = landing_hour(landing_root, org_id, hour)
        if not folder.exists():
            continue
        for path in sorted(folder.iterdir(), key=str):
            if not str(path).endswith((".jsonl", ".parquet")):
                continue
            events, bad = _read(path)
            log.info("read %s: %d events, %d lines rejected", path, len(events), len(bad))
            files += 1
            frames.append(events)
            if not bad.empty:
                rejected.append(bad.assign(detail=bad["detail"] + f" in {path}"))
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    bad = (
        pd.concat(rejected, ignore_index=True)
        if rejected
        else pd.DataFrame(columns=REJECTED_COLUMNS)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # Every value as the reader read it, odd ones included (event_tables.to_lake).
    with (out_dir / "events.parquet").open("wb") as fh:
        pq.write_table(to_lake(events), fh)
    with (out_dir / "rejected.parquet").open("wb") as fh:
        bad.astype(object).to_parquet(fh, index=False)
    stats = {"files": files, "events": len(events), "rejected": len(bad)}
    log.info("extract %s [%s, %s): %s", org_id, start.isoformat(), end.isoformat(), stats)
    return stats
