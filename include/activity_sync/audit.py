"""The daily audit (R13): what Shared Activities saved, for whom, and what went wrong.

Reads one org's day from the lake (every hour's plan, events and load results), counts
per sender and per hour, reconciles with Salesforce (``reconcile.py``), raises alerts, and
writes ``counts.parquet``, ``audit.json`` and ``report.html`` (``report.py``) into
``lake.audit_folder``. Everything is recomputed from the partitions on every run, so an
audit of any past day can be re-run and gives the same answer.

Definitions a reader of the report relies on:

- *Tasks* are the planned Tasks (``summary.json`` ``tasks``); *loaded* are those the load
  reported as upserted. *Change* compares planned Tasks with what individual mode would
  have planned: ``(tasks - individual_mode_tasks) / individual_mode_tasks * 100``.
- The org/day/hour *individual mode* figures are the planner's exact ``individual_mode_tasks``.
  Per sender they are not in the plan, so they are computed as the sum of ``who_count``
  over the sender's Tasks: each Contact on a shared Task counted as one Task per Related-To
  copy. That is exact unless a shared email mixed Contacts whose Accounts (or Opportunity
  roles) differ from the primary's (R9); senders with multi-Contact Tasks are flagged as
  estimated and the report says so.
- *Fallback* hours are hours planned in individual mode because Salesforce had Shared
  Activities off while the tenant setting had it on (R12).
- The *day-over-day* alert compares with the previous day's ``audit.json``: it fires when
  total Tasks moved by more than the threshold **and** today's events, priced at
  yesterday's Tasks per event of each type, do not explain today's Tasks within the same
  threshold. A partial day (the audit also runs after every hourly load) therefore does
  not alert merely for being partial.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from activity_sync import lake
from activity_sync.reconcile import ReconcileOptions, describe_counts, reconcile
from activity_sync.report import render_report
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import EVENT_TYPES, REASONS
from activity_sync.tenants import Org

log = logging.getLogger(__name__)

AUDIT_VERSION = 1
ALERT_CALLBACK_ENV = "ACTIVITY_SYNC_ALERT_CALLBACK"
DEFAULT_CHANGE_THRESHOLD_PCT = 30.0
# Below this many Tasks a day, a few emails swing the ratio; no day-over-day alert.
DEFAULT_MIN_TASKS_FOR_CHANGE_ALERT = 20
# A planned hour with no load result is "in progress" (not yet expected in Salesforce)
# for this long after its plan was written; after that it counts as not loaded.
DEFAULT_LOAD_GRACE = timedelta(hours=2)
UNKNOWN_SENDER = "(unknown)"
TYPE_ORDER = ("sent", "internal_reply", "reply", "open", "click", "download", "bounce", "meeting")
assert set(TYPE_ORDER) == EVENT_TYPES
REASON_ORDER = tuple(REASONS)
RECIPIENT_REASONS = ("invalid_email", "excluded", "bcc_not_synced", "unmatched")

SENDER_COLUMNS = [
    "org_id",
    "date",
    "sender",
    "events",
    *(f"events_{t}" for t in TYPE_ORDER),
    "tasks",
    "tasks_loaded",
    "relations",
    "individual_mode_tasks",
    "individual_mode_estimated",
    "change_pct",
    "rejected",
    *(f"rejected_{r}" for r in REASON_ORDER),
    "dead_lettered",
]
HOUR_COLUMNS = [
    "hour",
    "interval_start",
    "mode",
    "mode_reason",
    "fallback",
    "salesforce_shared_activities",
    "setting_shared_activities",
    "events",
    "events_rejected",
    "tasks",
    "shared_tasks",
    "individual_mode_tasks",
    "change_pct",
    "relations",
    "load_state",
    "tasks_loaded",
    "dead_lettered",
]


@dataclass(frozen=True)
class AuditOptions:
    change_threshold_pct: float = DEFAULT_CHANGE_THRESHOLD_PCT
    min_tasks_for_change_alert: int = DEFAULT_MIN_TASKS_FOR_CHANGE_ALERT
    load_grace: timedelta = DEFAULT_LOAD_GRACE


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
    dead_letter: pd.DataFrame  # hour, object, task_key, RelationId, error_code
    loaded_hours: frozenset[int] = field(default_factory=frozenset)


# --------------------------------------------------------------------------- reading


def _read_parquet(path: Any, columns: list[str]) -> pd.DataFrame:
    """A partition file, reduced to ``columns``; an empty file may have no columns at all."""
    with path.open("rb") as fh:
        frame = pd.read_parquet(fh)
    return frame.reindex(columns=columns)


def _read_json(path: Any) -> dict[str, Any]:
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


def _hour_folders(root: Any, area: str, org_id: str, day: str) -> list[tuple[int, Any]]:
    folder = root / area / f"org_id={org_id}" / f"date={day}"
    if not folder.exists():
        return []
    found = []
    for child in folder.iterdir():
        name = child.name
        if name.startswith("hour=") and name[5:].isdigit():
            found.append((int(name[5:]), child))
    return sorted(found, key=lambda item: item[0])


def _stack(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["hour", *columns])
    return pd.concat(parts, ignore_index=True)


def read_day(root: Any, org_id: str, day: str) -> DayInputs:
    """Every hour partition of ``day`` (``YYYY-MM-DD``, the lake's partition date)."""
    event_cols = ["event_id", "type", "sender"]
    task_cols = ["task_key", "event_id", "event_type", "who_count", "ActivityDate", "WhoId"]
    relation_cols = ["task_key", "RelationId", "position", "is_primary"]
    rejected_cols = ["event_id", "email", "reason"]
    result_cols = ["task_key", "Id", "success", "error_code"]
    rel_result_cols = ["task_key", "TaskId", "RelationId", "status", "error_code"]
    dead_cols = ["object", "task_key", "RelationId", "error_code"]

    summaries, tasks, relations, rejected = [], [], [], []
    for hour, folder in _hour_folders(root, "plan", org_id, day):
        summary_path = folder / "summary.json"
        if not summary_path.exists():
            continue
        summary = _read_json(summary_path)
        summary["hour"] = hour
        summary["plan_written_at"] = _modified(summary_path)
        summaries.append(summary)
        tasks.append(_read_parquet(folder / "tasks.parquet", task_cols).assign(hour=hour))
        relations.append(
            _read_parquet(folder / "task_relations.parquet", relation_cols).assign(hour=hour)
        )
        rejected.append(_read_parquet(folder / "rejected.parquet", rejected_cols).assign(hour=hour))

    events = [
        _read_parquet(folder / "events.parquet", event_cols).assign(hour=hour)
        for hour, folder in _hour_folders(root, "events", org_id, day)
        if (folder / "events.parquet").exists()
    ]

    results, rel_results, dead, loaded = [], [], [], set()
    for hour, folder in _hour_folders(root, "loaded", org_id, day):
        if not (folder / "task_results.parquet").exists():
            continue
        loaded.add(hour)
        results.append(
            _read_parquet(folder / "task_results.parquet", result_cols).assign(hour=hour)
        )
        rel_results.append(
            _read_parquet(folder / "relation_results.parquet", rel_result_cols).assign(hour=hour)
        )
        dead.append(_read_parquet(folder / "dead_letter.parquet", dead_cols).assign(hour=hour))

    return DayInputs(
        org_id=org_id,
        day=day,
        summaries=pd.DataFrame(summaries),
        events=_stack(events, event_cols),
        tasks=_stack(tasks, task_cols),
        relations=_stack(relations, relation_cols),
        rejected=_stack(rejected, rejected_cols),
        task_results=_stack(results, result_cols),
        relation_results=_stack(rel_results, rel_result_cols),
        dead_letter=_stack(dead, dead_cols),
        loaded_hours=frozenset(loaded),
    )


def planned_keys(root: Any, org_id: str, days: Iterable[str]) -> set[str]:
    """Every task_key any plan partition of these days holds (to tell extra Tasks apart)."""
    keys: set[str] = set()
    for day in days:
        for _, folder in _hour_folders(root, "plan", org_id, day):
            if (folder / "tasks.parquet").exists():
                keys.update(_read_parquet(folder / "tasks.parquet", ["task_key"])["task_key"])
    return keys


def neighbour_days(day: str, reach: int = 2) -> list[str]:
    """UTC partition days whose Tasks can share an ActivityDate with ``day``'s.

    ActivityDate is in the org's time zone (offsets -12..+14 h), so a UTC day's Tasks carry
    local dates day-1..day+1, and each of those holds Tasks of UTC days up to one further.
    """
    base = date.fromisoformat(day)
    return [(base + timedelta(days=d)).isoformat() for d in range(-reach, reach + 1)]


# --------------------------------------------------------------------------- counting


def percent_change(tasks: Any, individual: Any) -> Any:
    """(tasks - individual) / individual * 100; NaN where individual mode made nothing."""
    tasks = np.asarray(tasks, dtype="float64")
    individual = np.asarray(individual, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(individual > 0, (tasks - individual) / individual * 100.0, np.nan)
    return change if change.ndim else float(change)


def _normalise_sender(sender: pd.Series) -> pd.Series:
    cleaned = sender.astype("string").str.strip().str.lower()
    return cleaned.mask(cleaned.isna() | cleaned.eq(""), UNKNOWN_SENDER).astype(object)


def _events(inputs: DayInputs) -> pd.DataFrame:
    """Distinct events of known types per hour, with the normalised sender."""
    events = inputs.events[inputs.events["type"].isin(EVENT_TYPES)]
    events = events.drop_duplicates(["hour", "event_id"])
    return events.assign(sender=_normalise_sender(events["sender"]))[
        ["hour", "event_id", "type", "sender"]
    ]


def _event_senders(inputs: DayInputs) -> pd.DataFrame:
    """hour, event_id -> sender for every event row (whatever its type), first row wins.

    Rows without an event_id are dropped: pandas would join their null key to the null
    event_id of a malformed line's rejection.
    """
    events = inputs.events.dropna(subset=["event_id"]).drop_duplicates(["hour", "event_id"])
    return events.assign(sender=_normalise_sender(events["sender"]))[["hour", "event_id", "sender"]]


def _with_sender(frame: pd.DataFrame, senders: pd.DataFrame) -> pd.DataFrame:
    out = frame.merge(senders, on=["hour", "event_id"], how="left")
    out["sender"] = out["sender"].fillna(UNKNOWN_SENDER)
    return out


def _count(frame: pd.DataFrame, by: str, name: str) -> pd.Series:
    return frame.groupby(by).size().rename(name)


def sender_counts(inputs: DayInputs) -> pd.DataFrame:
    """One row per sender with the day's counts (the rows of ``counts.parquet``)."""
    events = _events(inputs)
    senders = _event_senders(inputs)
    tasks = _with_sender(inputs.tasks, senders)
    tasks["who_count"] = pd.to_numeric(tasks["who_count"]).fillna(1).astype("int64")
    task_sender = tasks[["hour", "task_key", "sender"]]

    by_type = (
        events.groupby(["sender", "type"])
        .size()
        .unstack("type")
        .reindex(columns=list(TYPE_ORDER))
        .add_prefix("events_")
    )
    loaded = inputs.task_results[inputs.task_results["success"].astype(bool)]
    loaded = loaded.merge(task_sender, on=["hour", "task_key"], how="inner")
    relations = inputs.relations.merge(task_sender, on=["hour", "task_key"], how="inner")
    rejected = _with_sender(inputs.rejected, senders)
    rejected_by_reason = (
        rejected.groupby(["sender", "reason"])
        .size()
        .unstack("reason")
        .reindex(columns=list(REASON_ORDER))
        .add_prefix("rejected_")
    )
    dead = inputs.dead_letter.merge(task_sender, on=["hour", "task_key"], how="left")
    dead["sender"] = dead["sender"].fillna(UNKNOWN_SENDER)

    table = pd.concat(
        [
            _count(events, "sender", "events"),
            by_type,
            _count(tasks, "sender", "tasks"),
            _count(loaded, "sender", "tasks_loaded"),
            _count(relations, "sender", "relations"),
            *_individual_by_sender(inputs, tasks),
            _count(rejected, "sender", "rejected"),
            rejected_by_reason,
            _count(dead, "sender", "dead_lettered"),
        ],
        axis=1,
    )
    table.index.name = "sender"
    table = table.reset_index()
    counts = [c for c in SENDER_COLUMNS if c not in ("org_id", "date", "sender")]
    counts.remove("individual_mode_estimated")
    counts.remove("change_pct")
    table = table.reindex(columns=["sender", *counts, "individual_mode_estimated"])
    table[counts] = table[counts].fillna(0).astype("int64")
    table["individual_mode_estimated"] = (
        table["individual_mode_estimated"].astype("boolean").fillna(False).astype(bool)
    )
    table["change_pct"] = percent_change(table["tasks"], table["individual_mode_tasks"])
    table.insert(0, "org_id", inputs.org_id)
    table.insert(1, "date", inputs.day)
    table = table.sort_values(["tasks", "events", "sender"], ascending=[False, False, True])
    return table[SENDER_COLUMNS].reset_index(drop=True)


def _individual_by_sender(inputs: DayInputs, tasks: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per sender, the Tasks individual mode would have made, and whether that is estimated.

    Exact for hours whose plan summary carries the planner's per-sender count; for older
    plans without it, the people on each Task (an estimate when one email mixed Contacts
    whose Accounts or Opportunities differ from the primary's).
    """
    by_hour = inputs.summaries.get("individual_mode_tasks_by_sender")
    exact_hours: set[int] = set()
    exact = pd.Series(dtype="int64")
    if by_hour is not None:
        known = inputs.summaries[by_hour.map(lambda v: isinstance(v, dict))]
        exact_hours = set(known["hour"])
        records = pd.DataFrame(
            [(s, n) for counts in known[by_hour.name] for s, n in counts.items()],
            columns=["sender", "n"],
        )
        if not records.empty:
            records["sender"] = _normalise_sender(records["sender"])
            exact = records.groupby("sender")["n"].sum()
    rest = tasks[~tasks["hour"].isin(exact_hours)]
    estimate = rest.groupby("sender")["who_count"].sum()
    individual = exact.add(estimate, fill_value=0).astype("int64")
    estimated = rest.groupby("sender")["who_count"].max().gt(1)
    return individual.rename("individual_mode_tasks"), estimated.rename("individual_mode_estimated")


def hour_counts(inputs: DayInputs, now: datetime, options: AuditOptions) -> pd.DataFrame:
    """One row per planned hour: the mode in force and why, and the hour's figures."""
    s = inputs.summaries
    if s.empty:
        return pd.DataFrame(columns=HOUR_COLUMNS)
    s = s.sort_values("hour").reset_index(drop=True)

    def column(name: str, default: Any) -> pd.Series:
        return s[name] if name in s else pd.Series(default, index=s.index)

    hours = pd.DataFrame({"hour": s["hour"].astype("int64")})
    hours["interval_start"] = column("interval_start", None)
    hours["mode"] = column("mode", "unknown").fillna("unknown")
    hours["mode_reason"] = column("mode_reason", "").fillna("")
    for name in ("salesforce_shared_activities", "setting_shared_activities"):
        hours[name] = column(name, True).astype("boolean").fillna(True).astype(bool)
    # Plans record the fallback (R12); older partitions are judged from the two flags.
    derived = (
        hours["mode"].eq("individual")
        & hours["setting_shared_activities"]
        & ~hours["salesforce_shared_activities"]
    )
    hours["fallback"] = column("fallback", None).astype("boolean").fillna(derived).astype(bool)
    for name in (
        "events",
        "events_rejected",
        "tasks",
        "shared_tasks",
        "individual_mode_tasks",
        "relations",
    ):
        hours[name] = pd.to_numeric(column(name, 0)).fillna(0).astype("int64")
    hours["change_pct"] = percent_change(hours["tasks"], hours["individual_mode_tasks"])

    written = pd.to_datetime(s["plan_written_at"], utc=True)
    recent = written.notna() & (written > pd.Timestamp(now) - options.load_grace)
    loaded = hours["hour"].isin(inputs.loaded_hours)
    hours["load_state"] = np.select(
        [loaded, recent.to_numpy()], ["loaded", "in_progress"], "not_loaded"
    )

    ok = inputs.task_results[inputs.task_results["success"].astype(bool)]
    hours["tasks_loaded"] = hours["hour"].map(ok.groupby("hour").size()).fillna(0).astype("int64")
    dead = inputs.dead_letter.groupby("hour").size()
    hours["dead_lettered"] = hours["hour"].map(dead).fillna(0).astype("int64")
    return hours[HOUR_COLUMNS]


def type_mix(inputs: DayInputs) -> dict[str, dict[str, int]]:
    """Events and planned Tasks per event type: the baseline of tomorrow's comparison."""
    events = _events(inputs).groupby("type").size()
    tasks = inputs.tasks.groupby("event_type").size()
    return {
        t: {"events": int(events.get(t, 0)), "tasks": int(tasks.get(t, 0))}
        for t in TYPE_ORDER
        if events.get(t, 0) or tasks.get(t, 0)
    }


def headline(
    inputs: DayInputs, hours: pd.DataFrame, senders: pd.DataFrame, reconciliation: Mapping
) -> dict[str, Any]:
    rejected = inputs.rejected["reason"].value_counts()
    tasks = int(hours["tasks"].sum())
    individual = int(hours["individual_mode_tasks"].sum())
    change = percent_change(tasks, individual)
    return {
        "events": int(hours["events"].sum()),
        "events_received": int(senders["events"].sum()),
        # An at-least-once feed may deliver an event again in a later hour; each hour's
        # plan counts it (its Task is upserted again, not duplicated).
        "events_redelivered": int(_events(inputs)["event_id"].duplicated().sum()),
        "events_rejected": int(hours["events_rejected"].sum()),
        "tasks": tasks,
        "tasks_loaded": int(hours["tasks_loaded"].sum()),
        "individual_mode_tasks": individual,
        "change_pct": None if np.isnan(change) else round(float(change), 1),
        "relations": int(hours["relations"].sum()),
        "rejected_recipients": int(rejected.reindex(list(RECIPIENT_REASONS)).fillna(0).sum()),
        "rejected_by_reason": {r: int(rejected[r]) for r in REASON_ORDER if r in rejected},
        "dead_lettered": len(inputs.dead_letter),
        "hours_planned": len(hours),
        "hours_loaded": int(hours["load_state"].eq("loaded").sum()),
        "fallback_hours": [int(h) for h in hours.loc[hours["fallback"], "hour"]],
        "senders": len(senders),
        "reconciliation": reconciliation.get("status", "skipped"),
    }


# --------------------------------------------------------------------------- alerts


def _alert(kind: str, org_id: str, day: str, key: str, message: str, **details: Any) -> dict:
    return {
        "id": f"{org_id}/{day}/{kind}/{key}",
        "kind": kind,
        "severity": "warning",
        "org_id": org_id,
        "date": day,
        "message": message,
        "details": details,
    }


def fallback_alerts(org_id: str, day: str, hours: pd.DataFrame) -> list[dict]:
    return [
        _alert(
            "fallback",
            org_id,
            day,
            f"hour={h:02d}",
            f"{org_id} {day} {h:02d}:00 UTC fell back to individual mode ({reason}). "
            "Tasks were made one per person; turn Shared Activities back on in Salesforce or "
            "switch the tenant setting off deliberately (R12).",
            hour=int(h),
            mode_reason=reason,
        )
        for h, reason in hours.loc[hours["fallback"], ["hour", "mode_reason"]].itertuples(
            index=False
        )
    ]


def reconciliation_alert(org_id: str, day: str, reconciliation: Mapping) -> dict | None:
    if reconciliation.get("status") != "differences":
        return None
    counts = reconciliation["counts"]
    digest = ",".join(f"{label}={n}" for label, n in counts.items())
    return _alert(
        "reconciliation",
        org_id,
        day,
        digest,
        f"{org_id} {day}: Salesforce does not hold what was planned: "
        f"{describe_counts(counts)}. The report lists each record by key.",
        counts=dict(counts),
    )


def day_over_day_alert(
    org_id: str,
    day: str,
    today: Mapping[str, Mapping[str, int]],
    yesterday: Mapping[str, Mapping[str, int]] | None,
    options: AuditOptions,
) -> dict | None:
    """Alert when Tasks moved beyond the threshold and the event mix does not explain it."""
    if not yesterday:
        return None
    types = sorted(set(today) | set(yesterday))
    events_today = np.array([today.get(t, {}).get("events", 0) for t in types], dtype=float)
    tasks_today = np.array([today.get(t, {}).get("tasks", 0) for t in types], dtype=float)
    events_before = np.array([yesterday.get(t, {}).get("events", 0) for t in types], dtype=float)
    tasks_before = np.array([yesterday.get(t, {}).get("tasks", 0) for t in types], dtype=float)
    total_before, total_today = tasks_before.sum(), tasks_today.sum()
    if total_before <= 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(events_before > 0, tasks_before / events_before, np.nan)
    # A type absent yesterday has no baseline: its Tasks count as explained.
    expected_by_type = np.where(np.isnan(ratio), tasks_today, events_today * ratio)
    expected = float(expected_by_type.sum())
    total_change = float(percent_change(total_today, total_before))
    if max(expected, total_today) < options.min_tasks_for_change_alert:
        return None
    unexplained = float(percent_change(total_today, expected)) if expected > 0 else np.inf
    threshold = options.change_threshold_pct
    if abs(total_change) <= threshold or abs(unexplained) <= threshold:
        return None
    return _alert(
        "day_over_day",
        org_id,
        day,
        "tasks",
        f"{org_id} {day}: Tasks changed {total_change:+.1f}% day over day "
        f"({int(total_before):,} → {int(total_today):,}); today's events at yesterday's Tasks "
        f"per event predict {expected:,.0f}, so {unexplained:+.1f}% is not explained by the "
        f"event mix (threshold {threshold:g}%). Look for a drop in matched recipients, a "
        "setting change or a failed load.",
        tasks_yesterday=int(total_before),
        tasks_today=int(total_today),
        expected_tasks=round(expected, 1),
        change_pct=round(total_change, 1),
        unexplained_pct=round(unexplained, 1) if np.isfinite(unexplained) else None,
        tasks_per_event_yesterday={
            t: round(float(r), 3) for t, r in zip(types, ratio, strict=True) if not np.isnan(r)
        },
    )


def unnotified(alerts: list[dict], notified_ids: Iterable[str]) -> list[dict]:
    """Alerts not yet sent: the audit re-runs after every hourly load, the callback should not."""
    seen = set(notified_ids)
    return [a for a in alerts if a["id"] not in seen]


def load_callback(spec: str) -> Callable[[list[dict], Mapping[str, Any]], Any]:
    """``package.module:function`` -> the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"{ALERT_CALLBACK_ENV} must look like 'package.module:function', got {spec!r}"
        )
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target


def notify(
    alerts: list[dict],
    context: Mapping[str, Any] | None = None,
    callback: Callable[[list[dict], Mapping[str, Any]], Any] | None = None,
) -> int:
    """Log each alert as a warning, then hand them all to the user's callback, if any.

    The callback is ``callback(alerts, context)`` (``context`` is the Airflow task context),
    called once with every alert, from ``callback`` or the import path in
    ``ACTIVITY_SYNC_ALERT_CALLBACK``. A failing callback is not swallowed: the alert must
    not be lost silently, so the task fails and Airflow retries it.
    """
    for alert in alerts:
        log.warning("activity-sync audit alert [%s] %s", alert["kind"], alert["message"])
    if not alerts:
        return 0
    if callback is None and os.environ.get(ALERT_CALLBACK_ENV):
        callback = load_callback(os.environ[ALERT_CALLBACK_ENV])
    if callback is not None:
        callback(alerts, dict(context or {}))
    return len(alerts)


# --------------------------------------------------------------------------- the run


@dataclass
class AuditResult:
    document: dict[str, Any]  # what audit.json holds
    senders: pd.DataFrame  # what counts.parquet holds
    html: str

    @property
    def alerts(self) -> list[dict]:
        return self.document["alerts"]


def previous_day(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def read_audit(root: Any, org_id: str, day: str) -> dict[str, Any] | None:
    path = lake.audit_folder(root, org_id, day) / "audit.json"
    return _read_json(path) if path.exists() else None


def _json_ready(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records with NaN as null and numpy scalars as Python ones."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def build_audit(
    inputs: DayInputs,
    hours: pd.DataFrame,
    reconciliation: Mapping[str, Any],
    yesterday: Mapping[str, Any] | None,
    options: AuditOptions,
    now: datetime,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The audit document and the per-sender table, from inputs already read."""
    senders = sender_counts(inputs)
    mix = type_mix(inputs)
    alerts = fallback_alerts(inputs.org_id, inputs.day, hours)
    for alert in (
        reconciliation_alert(inputs.org_id, inputs.day, reconciliation),
        day_over_day_alert(
            inputs.org_id, inputs.day, mix, (yesterday or {}).get("by_type"), options
        ),
    ):
        if alert is not None:
            alerts.append(alert)
    document = {
        "version": AUDIT_VERSION,
        "org_id": inputs.org_id,
        "date": inputs.day,
        "generated_at": now.isoformat(),
        "headline": headline(inputs, hours, senders, reconciliation),
        "hours": _json_ready(hours),
        "senders": _json_ready(senders),
        "by_type": mix,
        "reconciliation": dict(reconciliation),
        "alerts": alerts,
        "options": {
            "change_threshold_pct": options.change_threshold_pct,
            "min_tasks_for_change_alert": options.min_tasks_for_change_alert,
            "load_grace_seconds": int(options.load_grace.total_seconds()),
        },
        "compared_with": (yesterday or {}).get("date"),
    }
    return document, senders


def reconcile_day(
    client: SalesforceClient,
    root: Any,
    inputs: DayInputs,
    hours: pd.DataFrame,
    options: ReconcileOptions | None = None,
) -> dict[str, Any]:
    """Reconcile the hours that should be in Salesforce by now.

    Hours still in progress (planned recently, no load result yet) are left out, so an
    audit that runs while a later hour loads does not report that hour's Tasks missing.
    """
    settled = set(hours.loc[hours["load_state"].ne("in_progress"), "hour"])

    def settled_only(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["hour"].isin(settled)]

    return reconcile(
        client,
        settled_only(inputs.tasks),
        settled_only(inputs.relations),
        settled_only(inputs.task_results),
        settled_only(inputs.relation_results),
        lambda: planned_keys(root, inputs.org_id, neighbour_days(inputs.day)),
        options,
    )


def run_audit(
    root: Any,
    org_id: str,
    day: str,
    *,
    client: SalesforceClient | None = None,
    options: AuditOptions | None = None,
    reconcile_options: ReconcileOptions | None = None,
    now: datetime | None = None,
) -> AuditResult:
    """Audit one org's day and write its three outputs (overwriting any earlier ones).

    Without a Salesforce ``client`` the reconciliation is reported as skipped.
    """
    options = options or AuditOptions()
    now = now or datetime.now(UTC)
    inputs = read_day(root, org_id, day)
    hours = hour_counts(inputs, now, options)
    reconciliation: Mapping[str, Any] = (
        reconcile_day(client, root, inputs, hours, reconcile_options)
        if client is not None
        else {"status": "skipped"}
    )
    yesterday = read_audit(root, org_id, previous_day(day))
    document, senders = build_audit(inputs, hours, reconciliation, yesterday, options, now)
    html = render_report(document)
    write_outputs(root, org_id, day, document, senders, html)
    log.info("audit %s %s: %s", org_id, day, json.dumps(document["headline"]))
    return AuditResult(document, senders, html)


def write_outputs(
    root: Any, org_id: str, day: str, document: dict, senders: pd.DataFrame, html: str
) -> None:
    out = lake.audit_folder(root, org_id, day)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "counts.parquet").open("wb") as fh:
        senders.to_parquet(fh, index=False)
    with (out / "audit.json").open("w") as fh:
        fh.write(json.dumps(document, indent=2, sort_keys=False, default=str))
    with (out / "report.html").open("w") as fh:
        fh.write(html)


class AuditTargetError(ValueError):
    """The run's params name a day or org that cannot be audited."""


def audit_targets(
    *,
    configured: Iterable[str],
    day: str | None = None,
    orgs: Iterable[str] = (),
    asset_extras: Iterable[Mapping[str, Any]] = (),
    logical_date: datetime | None = None,
    run_after: datetime | None = None,
) -> list[dict[str, str]]:
    """Which (org, day) pairs a run audits, first rule that applies:

    1. the ``day`` param (a manual run for any past day), for the ``orgs`` param or all orgs;
    2. the triggering asset events (a load just finished): each event's ``start`` gives the
       partition day and its ``orgs`` the orgs that loaded;
    3. the day before the logical date (the 00:30 UTC run, a backfill) or, for a manual
       run without one, the day before it was triggered, for all orgs.
    """
    configured = sorted(set(configured))
    wanted = sorted(set(orgs))
    unknown = sorted(set(wanted) - set(configured))
    if unknown:
        raise AuditTargetError(f"unknown org_id(s) in params.orgs: {unknown}")
    pool = wanted or configured
    if day:
        try:
            date.fromisoformat(day)
        except ValueError as exc:
            raise AuditTargetError(f"params.day must be YYYY-MM-DD, got {day!r}") from exc
        return [{"org_id": o, "day": day} for o in pool]
    extras = [e for e in asset_extras if e and e.get("start")]
    if extras:
        pairs = {
            (o, datetime.fromisoformat(e["start"]).strftime("%Y-%m-%d"))
            for e in extras
            for o in (e.get("orgs") or configured)
            if o in pool
        }
        return [{"org_id": o, "day": d} for o, d in sorted(pairs)]
    moment = logical_date or run_after
    if moment is None:
        raise AuditTargetError("the run has no day: set params.day (YYYY-MM-DD)")
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    previous = (stamp - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    return [{"org_id": o, "day": previous} for o in pool]


NOTIFIED_FILE = "notified.json"


def notified_ids(root: Any, org_id: str, day: str) -> list[str]:
    path = lake.audit_folder(root, org_id, day) / NOTIFIED_FILE
    return list(_read_json(path)["ids"]) if path.exists() else []


def mark_notified(root: Any, org_id: str, day: str, alerts: list[dict]) -> None:
    """Remember which alerts were sent, after the callback succeeded."""
    if not alerts:
        return
    ids = sorted(set(notified_ids(root, org_id, day)) | {a["id"] for a in alerts})
    out = lake.audit_folder(root, org_id, day)
    out.mkdir(parents=True, exist_ok=True)
    with (out / NOTIFIED_FILE).open("w") as fh:
        fh.write(json.dumps({"ids": ids}, indent=2))


def step_audit(
    orgs: Mapping[str, Org],
    target: Mapping[str, str],
    root: Any,
    params: Mapping[str, Any],
    connector: Callable[[str], Callable[[], Any]],
) -> dict[str, Any]:
    """The audit DAG's per-(org, day) task: returns what the alerting task needs."""
    org = orgs.get(target["org_id"])
    if org is None:
        raise AuditTargetError(
            f"org {target['org_id']!r} is not in the orgs config; add it or drop it from params.orgs"
        )
    client = (
        SalesforceClient(connector(org.salesforce_conn_id))
        if params.get("reconcile", True)
        else None
    )
    result = run_audit(
        root,
        org.org_id,
        target["day"],
        client=client,
        options=AuditOptions(
            change_threshold_pct=float(
                params.get("change_threshold_pct", DEFAULT_CHANGE_THRESHOLD_PCT)
            )
        ),
        reconcile_options=ReconcileOptions(external_id_field=org.external_id_field),
    )
    return {
        "org_id": org.org_id,
        "day": target["day"],
        "headline": result.document["headline"],
        "alerts": result.alerts,
    }


def send_alerts(
    results: Iterable[Mapping[str, Any]], root: Any, context: Mapping[str, Any] | None = None
) -> int:
    """Notify the alerts of these audits not sent before, then remember them as sent."""
    fresh = [
        (r, unnotified(r["alerts"], notified_ids(root, r["org_id"], r["day"]))) for r in results
    ]
    sent = notify([a for _, alerts in fresh for a in alerts], context)
    for r, alerts in fresh:
        mark_notified(root, r["org_id"], r["day"], alerts)
    return sent
