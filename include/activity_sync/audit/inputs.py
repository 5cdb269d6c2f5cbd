"""Reading one org's day from the lake: every hour's plan, events and load results.

Only columns the audit counts are kept, and every frame carries its partition ``hour``. A
missing partition or file is an hour that did not happen (yet), never an error: the audit
also runs while the day is still being loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from activity_sync import lake

_EVENT_COLS = ["event_id", "type", "sender"]
_TASK_COLS = ["task_key", "event_id", "event_type", "who_count", "ActivityDate", "WhoId"]
_RELATION_COLS = ["task_key", "RelationId", "position", "is_primary"]
_REJECTED_COLS = ["event_id", "email", "reason"]
_TASK_RESULT_COLS = ["task_key", "Id", "success", "error_code"]
_RELATION_RESULT_COLS = ["task_key", "TaskId", "RelationId", "status", "error_code"]
_DEAD_LETTER_COLS = ["object", "task_key", "event_key", "RelationId", "error_code"]
# R14: Salesforce Events and their relations, planned and loaded.
_SF_EVENT_COLS = [
    "event_key",
    "event_id",
    "who_count",
    "StartDateTime",
    "ActivityDate",
    "WhoId",
]
_EVENT_RELATION_COLS = ["event_key", "RelationId", "position", "is_primary"]
_EVENT_RESULT_COLS = ["event_key", "Id", "success", "error_code"]
_EVENT_RELATION_RESULT_COLS = ["event_key", "EventId", "RelationId", "status", "error_code"]
_REMOVAL_COLS = ["task_key", "task_id", "event_id", "outcome"]


@dataclass
class DayInputs:
    """One org's day as the lake holds it; every frame carries the partition ``hour``."""

    org_id: str
    day: str
    summaries: pd.DataFrame  # one row per planned hour: summary.json + plan_written_at
    events: pd.DataFrame  # hour, event_id, type, sender
    tasks: pd.DataFrame  # hour, task_key, event_id, event_type, who_count, ActivityDate, WhoId
    relations: pd.DataFrame  # hour, task_key, RelationId, position, is_primary
    rejected: pd.DataFrame  # hour, event_id, email, reason
    task_results: pd.DataFrame  # hour, task_key, Id, success, error_code
    relation_results: pd.DataFrame  # hour, task_key, TaskId, RelationId, status, error_code
    dead_letter: pd.DataFrame  # hour, object, task_key, event_key, RelationId, error_code
    loaded_hours: frozenset[int] = field(default_factory=frozenset)
    # R14, empty for plans and loads from before Salesforce Events.
    salesforce_events: pd.DataFrame = field(  # hour, event_key, event_id, who_count, ...
        default_factory=lambda: pd.DataFrame(columns=["hour", *_SF_EVENT_COLS])
    )
    event_relations: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["hour", *_EVENT_RELATION_COLS])
    )
    event_results: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["hour", *_EVENT_RESULT_COLS])
    )
    event_relation_results: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["hour", *_EVENT_RELATION_RESULT_COLS])
    )
    # hour, task_key, task_id, event_id, outcome: what re-plans deleted or kept (converge)
    removals: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_REMOVAL_COLS))


def read_parquet(path: Any, columns: list[str]) -> pd.DataFrame:
    """A partition file, reduced to ``columns``; an empty file may have no columns at all."""
    with path.open("rb") as fh:
        frame = pd.read_parquet(fh)
    return frame.reindex(columns=columns)


def _read_if_there(folder: Any, name: str, columns: list[str], hour: int) -> pd.DataFrame:
    """A file that older partitions do not have (before R14, or re-plans): empty when absent."""
    path = folder / name
    if not path.exists():
        return pd.DataFrame(columns=["hour", *columns])
    return read_parquet(path, columns).assign(hour=hour)


def read_json(path: Any) -> Any:
    """A JSON file on a local disk or object storage."""
    with path.open("r") as fh:
        return json.load(fh)


def _modified(path: Any) -> datetime | None:
    """When a file was written, on a local disk or object storage; None if unknown."""
    try:
        mtime = path.stat().st_mtime
    except (AttributeError, OSError, NotImplementedError):
        return None
    if isinstance(mtime, datetime):
        return mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(mtime), tz=UTC)


def _stack(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["hour", *columns])
    return pd.concat(parts, ignore_index=True)


def read_day(root: Any, org_id: str, day: str) -> DayInputs:
    """Every hour partition of one org's day.

    Args:
        root: the lake root (a path or an ``ObjectStoragePath``).
        org_id: the org, as in ``orgs.yaml``.
        day: ``YYYY-MM-DD``, the lake's partition date (UTC hours).

    Returns:
        The day's frames; a plan hour counts only once its ``summary.json`` exists, a
        loaded hour once its ``task_results.parquet`` does.
    """
    summaries, tasks, relations, rejected, sf_events, event_relations = [], [], [], [], [], []
    for hour, folder in lake.hour_folders(root, lake.PLAN, org_id, day):
        summary_path = folder / lake.PLAN_SUMMARY
        if not summary_path.exists():
            continue
        summary = read_json(summary_path)
        summary["hour"] = hour
        summary["plan_written_at"] = _modified(summary_path)
        summaries.append(summary)
        tasks.append(read_parquet(folder / lake.PLAN_TASKS, _TASK_COLS).assign(hour=hour))
        relations.append(
            read_parquet(folder / lake.PLAN_RELATIONS, _RELATION_COLS).assign(hour=hour)
        )
        rejected.append(read_parquet(folder / lake.PLAN_REJECTED, _REJECTED_COLS).assign(hour=hour))
        sf_events.append(_read_if_there(folder, lake.PLAN_SALESFORCE_EVENTS, _SF_EVENT_COLS, hour))
        event_relations.append(
            _read_if_there(folder, lake.PLAN_EVENT_RELATIONS, _EVENT_RELATION_COLS, hour)
        )

    events = [
        read_parquet(folder / lake.EVENTS_FILE, _EVENT_COLS).assign(hour=hour)
        for hour, folder in lake.hour_folders(root, lake.EVENTS, org_id, day)
        if (folder / lake.EVENTS_FILE).exists()
    ]

    results, rel_results, dead, loaded = [], [], [], set()
    event_results, event_rel_results = [], []
    removals = []
    for hour, folder in lake.hour_folders(root, lake.LOADED, org_id, day):
        if not (folder / lake.TASK_RESULTS).exists():
            continue
        loaded.add(hour)
        results.append(
            read_parquet(folder / lake.TASK_RESULTS, _TASK_RESULT_COLS).assign(hour=hour)
        )
        rel_results.append(
            read_parquet(folder / lake.RELATION_RESULTS, _RELATION_RESULT_COLS).assign(hour=hour)
        )
        dead.append(read_parquet(folder / lake.DEAD_LETTER, _DEAD_LETTER_COLS).assign(hour=hour))
        event_results.append(_read_if_there(folder, lake.EVENT_RESULTS, _EVENT_RESULT_COLS, hour))
        event_rel_results.append(
            _read_if_there(folder, lake.EVENT_RELATION_RESULTS, _EVENT_RELATION_RESULT_COLS, hour)
        )
        removals.append(_read_if_there(folder, lake.REMOVALS, _REMOVAL_COLS, hour))

    return DayInputs(
        org_id=org_id,
        day=day,
        summaries=pd.DataFrame(summaries),
        events=_stack(events, _EVENT_COLS),
        tasks=_stack(tasks, _TASK_COLS),
        relations=_stack(relations, _RELATION_COLS),
        rejected=_stack(rejected, _REJECTED_COLS),
        task_results=_stack(results, _TASK_RESULT_COLS),
        relation_results=_stack(rel_results, _RELATION_RESULT_COLS),
        dead_letter=_stack(dead, _DEAD_LETTER_COLS),
        loaded_hours=frozenset(loaded),
        salesforce_events=_stack(sf_events, _SF_EVENT_COLS),
        event_relations=_stack(event_relations, _EVENT_RELATION_COLS),
        event_results=_stack(event_results, _EVENT_RESULT_COLS),
        event_relation_results=_stack(event_rel_results, _EVENT_RELATION_RESULT_COLS),
        removals=_stack(removals, _REMOVAL_COLS),
    )


def has_plan(root: Any, org_id: str, day: str) -> bool:
    """Whether any hour of one org's day was planned (its ``summary.json`` exists)."""
    return any(
        (folder / lake.PLAN_SUMMARY).exists()
        for _, folder in lake.hour_folders(root, lake.PLAN, org_id, day)
    )


def planned_by(root: Any, org_id: str, day: str) -> bool:
    """Whether any hour of one org was planned on ``day`` or before it: whether the org
    was being synced by then, so that a day without a plan is a day the runs missed."""
    return any(has_plan(root, org_id, d) for d in lake.days(root, lake.PLAN, org_id) if d <= day)


def planned_keys(root: Any, org_id: str, days: Iterable[str]) -> set[str]:
    """Every task_key and event_key any plan partition of these days holds (to tell extra
    Tasks and Salesforce Events apart)."""
    keys: set[str] = set()
    for day in days:
        for _, folder in lake.hour_folders(root, lake.PLAN, org_id, day):
            for name, key in (
                (lake.PLAN_TASKS, "task_key"),
                (lake.PLAN_SALESFORCE_EVENTS, "event_key"),
            ):
                if (folder / name).exists():
                    keys.update(read_parquet(folder / name, [key])[key])
    return keys


def neighbour_days(day: str, reach: int = 2) -> list[str]:
    """UTC partition days whose Tasks can share an ActivityDate with ``day``'s.

    ActivityDate is in the org's time zone (offsets -12..+14 h), so a UTC day's Tasks carry
    local dates day-1..day+1, and each of those holds Tasks of UTC days up to one further.
    """
    base = date.fromisoformat(day)
    return [(base + timedelta(days=d)).isoformat() for d in range(-reach, reach + 1)]
