"""The plan folder (docs/outputs.md): writing it, reading it back, and the
canonical order and counts of rejected.parquet that every writer of it shares."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from activity_sync.lake import (
    PLAN_EVENT_RELATIONS,
    PLAN_REJECTED,
    PLAN_RELATIONS,
    PLAN_SALESFORCE_EVENTS,
    PLAN_SUMMARY,
    PLAN_TASKS,
)
from activity_sync.planner.arrow import string_dtype, to_pandas
from activity_sync.schema import (
    EVENT_RELATION_COLUMNS,
    REJECTED_COLUMNS,
    SALESFORCE_EVENT_COLUMNS,
    Plan,
    empty_frame,
)


def write_plan(plan_: Plan, out_dir: str | Path) -> None:
    """Write the plan folder, replacing what an earlier run of the hour left.

    Args:
        plan_: the plan to write.
        out_dir: the folder (created if missing); it receives tasks.parquet,
            task_relations.parquet, events.parquet and event_relations.parquet (R14,
            empty when no meeting became a Salesforce Event), rejected.parquet and
            summary.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        PLAN_TASKS: plan_.tasks,
        PLAN_RELATIONS: plan_.relations,
        PLAN_SALESFORCE_EVENTS: plan_.salesforce_events,
        PLAN_EVENT_RELATIONS: plan_.event_relations,
        PLAN_REJECTED: plan_.rejected,
    }
    for name, frame in frames.items():
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / name)
    (out / PLAN_SUMMARY).write_text(json.dumps(plan_.summary, indent=2) + "\n", encoding="utf-8")


def read_plan(out_dir: str | Path) -> Plan:
    """Read a plan folder that ``write_plan`` wrote.

    Args:
        out_dir: the plan folder.

    Returns:
        The same Plan, text columns as Arrow-backed pandas strings, as ``plan`` makes them.
        A folder written before R14 has no Salesforce Event files: its frames are empty,
        so that an hour planned before an upgrade still loads (a backfill, a retry).
    """
    out = Path(out_dir)

    def frame(name: str, columns: list[str] | None = None) -> pd.DataFrame:
        if columns is not None and not (out / name).exists():
            return empty_frame(columns)
        return pq.read_table(out / name).to_pandas(types_mapper=string_dtype)

    summary = json.loads((out / PLAN_SUMMARY).read_text(encoding="utf-8"))
    return Plan(
        frame(PLAN_TASKS),
        frame(PLAN_RELATIONS),
        frame(PLAN_REJECTED),
        summary,
        frame(PLAN_SALESFORCE_EVENTS, SALESFORCE_EVENT_COLUMNS),
        frame(PLAN_EVENT_RELATIONS, EVENT_RELATION_COLUMNS),
    )


def add_rejections(plan_: Plan, rejected: pd.DataFrame) -> Plan:
    """The plan with event-level rejections found before planning (the reader's malformed lines).

    Args:
        plan_: a plan as ``plan`` made it.
        rejected: rows in the columns of rejected.parquet.

    Returns:
        A new Plan whose rejected frame holds both, in canonical order, with
        ``events_rejected`` and ``rejected_by_reason`` counted again.
    """
    if rejected.empty:
        return plan_
    merged = sorted_rejected(pd.concat([plan_.rejected, _as_strings(rejected)], ignore_index=True))
    summary = dict(plan_.summary)
    summary["events_rejected"] += len(rejected)
    summary["rejected_by_reason"] = count_reasons(merged)
    return Plan(
        plan_.tasks,
        plan_.relations,
        merged,
        summary,
        plan_.salesforce_events,
        plan_.event_relations,
    )


def sorted_rejected(rejected: pd.DataFrame) -> pd.DataFrame:
    """Rejections as text columns in canonical order (event_id, email, reason, detail)."""
    table = pa.Table.from_pandas(_as_strings(rejected), preserve_index=False)
    keys = [(name, "ascending", "at_end") for name in REJECTED_COLUMNS]
    return to_pandas(table.sort_by(keys), REJECTED_COLUMNS)


def count_reasons(rejected: pd.DataFrame) -> dict[str, int]:
    """Rejections per reason code, codes in sorted order."""
    counts = rejected["reason"].value_counts()
    return {str(code): int(counts[code]) for code in sorted(counts.index)}


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[REJECTED_COLUMNS].astype(pd.StringDtype("pyarrow"))
