"""Benchmark of the ledger lookups: one hour's events against 30 days of ledger.

    .venv/bin/python benchmarks/bench_ledger.py                          # 1,000,000 events, 30 days
    .venv/bin/python benchmarks/bench_ledger.py --ledger-per-hour 20000  # a smaller org's month
    .venv/bin/python benchmarks/bench_ledger.py --compare  # and the Arrow join it replaced

The ledger is written as the loads write it: one Delta table per org, partitioned by date,
a commit per day here (24 hours of rows each; the loads commit one per hour) with one row
per Task, 1-3 relations each. The looked-up hour has ``--events`` events, of which
``--redelivered`` (a share) were loaded by earlier hours. Three lookups are timed:

1. "already synced?" (``ledger.owners``): what the hourly plan step asks for every run;
2. the whole rows of those redelivered events, spread over every hour of the month
   (``ledger.current``; the worst case, a re-plan of an hour of redeliveries);
3. the hour loaded (a commit of its own, as a load writes it) and then re-planned: the
   re-plan (and every load) reads back what the hour's load left (``ledger.current``).

Generation is vectorised (Arrow) and timed apart from the lookups.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from activity_sync import lake, ledger

ORG = "acme"


def _ids(prefix: str, start: int, count: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(start, start + count)), pa.string())
    return pc.binary_join_element_wise(prefix, numbers, "")


def _day(first: int, count: int, day: datetime, rng: np.random.Generator) -> pa.Table:
    """``count`` ledger rows of one day, event numbers from ``first``, spread over 24 hours."""
    hours = rng.integers(0, 24, count)
    hour_labels = pa.array([f"{day:%Y-%m-%d}T{h:02d}" for h in range(24)])
    sizes = rng.integers(1, 4, count)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    relations = pa.ListArray.from_arrays(pa.array(offsets), _ids("003", 0, int(offsets[-1])))
    event_ids = _ids("evt-", first, count)
    hashes = ledger.event_hashes(event_ids.to_pandas())
    return pa.table(
        {
            "event_id": event_ids,
            "event_hash": pa.array(hashes["event_hash"]),
            "event_hash2": pa.array(hashes["event_hash2"]),
            "object": pa.array(["Task"] * count),
            "task_key": _ids("key-", first, count),
            "task_id": _ids("00T", first, count),
            "who_id": _ids("003", first, count),
            "what_id": _ids("006", first, count),
            "relation_ids": relations,
            "state": pa.array(["loaded"] * count),
            "hour": pc.take(hour_labels, pa.array(hours)),
            "date": pa.array([f"{day:%Y-%m-%d}"] * count),
            "loaded_at": pa.array(
                np.full(count, np.datetime64(day.replace(tzinfo=None), "us"))
                + (hours * 3_600_000_000).astype("timedelta64[us]"),
                pa.timestamp("us"),
            ).cast(pa.timestamp("us", tz="UTC")),
        },
        schema=ledger.SCHEMA,
    )


def arrow_join_owners(root: Path, ids: pd.Series) -> pd.Series:
    """The lookup as it was before the probe (for ``--compare``): the four narrow columns
    scanned whole and hash-joined with the wanted events' hashes in Arrow."""
    wanted = pd.Series(pd.unique(pd.Series(list(ids), dtype=object)), dtype=object)
    keys = pa.Table.from_pandas(
        ledger.event_hashes(wanted).assign(event_id=wanted.to_numpy()), preserve_index=False
    )
    uri = str(lake.ledger_folder(root, ORG))
    scanned = (
        DeltaTable(uri).to_pyarrow_dataset().to_table(columns=[*ledger.HASHES, "hour", "loaded_at"])
    )
    rows = scanned.join(keys, keys=ledger.HASHES, join_type="inner").to_pandas()
    latest = rows[rows["loaded_at"].eq(rows.groupby("event_id")["loaded_at"].transform("max"))]
    return latest.drop_duplicates("event_id").set_index("event_id")["hour"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the hour")
    parser.add_argument("--days", type=int, default=30, help="days of ledger")
    parser.add_argument("--ledger-per-hour", type=int, default=50_000, help="ledger rows per hour")
    parser.add_argument("--redelivered", type=float, default=0.05, help="share already loaded")
    parser.add_argument(
        "--lake", type=Path, default=None, help="lake folder, kept (default: a temp one)"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time the Arrow hash join the lookup used before, in the same run",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        root = args.lake or Path(tmp)
        uri = str(lake.ledger_folder(root, ORG))
        rng = np.random.default_rng(7)
        per_day = args.ledger_per_hour * 24
        first_day = datetime(2026, 10, 1, tzinfo=UTC)
        began = time.perf_counter()
        # A --lake that already holds the ledger is reused (the lookups again, not the writes).
        for d in range(args.days if not (Path(uri) / "_delta_log").is_dir() else 0):
            day = first_day + timedelta(days=d)
            write_deltalake(
                uri, _day(d * per_day, per_day, day, rng), mode="append", partition_by=["date"]
            )
        held = args.days * per_day
        print(
            f"ledger: {held:,} rows over {args.days} days, written in "
            f"{time.perf_counter() - began:.1f} s"
        )

        old = int(args.events * args.redelivered)
        picked = rng.choice(held, old, replace=False)
        fresh = _ids("new-", 0, args.events - old)
        hour_ids = pa.concat_arrays(
            [pc.binary_join_element_wise("evt-", pc.cast(pa.array(picked), pa.string()), ""), fresh]
        )
        ids = hour_ids.to_pandas()

        began = time.perf_counter()
        owners = ledger.owners(root, ORG, ids)
        lookup = time.perf_counter() - began
        print(
            f"already synced? {args.events:,} events against {held:,} ledger rows in "
            f"{lookup:.2f} s ({len(owners):,} loaded before)"
        )
        assert len(owners) == old, (len(owners), old)
        if args.compare:
            began = time.perf_counter()
            before = arrow_join_owners(root, ids)
            print(
                f"  the same by an Arrow hash join (the lookup before): "
                f"{time.perf_counter() - began:.2f} s"
            )
            assert before.to_dict() == owners.to_dict()
        began = time.perf_counter()
        found = ledger.current(root, ORG, ids)
        print(
            f"whole rows of the {old:,} loaded before, spread over {args.days * 24} hours: "
            f"{time.perf_counter() - began:.2f} s ({len(found):,} rows)"
        )

        # The hour is loaded (its rows in a commit of their own, as a load writes them),
        # then re-planned: the re-plan reads back what that load left.
        hour = first_day + timedelta(days=args.days)
        loaded = _day(0, args.events, hour, rng).set_column(
            0, "event_id", hour_ids.cast(pa.string())
        )
        hashes = ledger.event_hashes(ids)
        loaded = loaded.set_column(1, "event_hash", pa.array(hashes["event_hash"]))
        loaded = loaded.set_column(2, "event_hash2", pa.array(hashes["event_hash2"]))
        label = ledger.hour_label(hour)
        loaded = loaded.set_column(
            loaded.schema.get_field_index("hour"), "hour", pa.array([label] * args.events)
        )
        ledger.record_hour(root, ORG, hour, loaded)
        began = time.perf_counter()
        found = ledger.current(root, ORG, ids)
        print(
            f"a re-plan reads back its hour: {args.events:,} events in "
            f"{time.perf_counter() - began:.2f} s ({len(found):,} rows)"
        )
        assert len(found) == args.events and found["hour"].eq(label).all()
        ledger.record_hour(root, ORG, hour, loaded.slice(0, 0))  # a kept --lake as it was


if __name__ == "__main__":
    main()
