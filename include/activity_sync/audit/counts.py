"""Pure counting (R13): per sender, per hour, per event type, and the day's headline.

Nothing here reads or writes; every function takes the frames ``inputs.read_day`` returns.

Definitions a reader of the report relies on:

- *Tasks* are the planned Tasks (``summary.json`` ``tasks``); *loaded* are those the load
  reported as upserted. *Change* compares planned Tasks with what individual mode would
  have planned: ``(tasks - individual_mode_tasks) / individual_mode_tasks * 100``.
- The org/day/hour *individual mode* figures are the planner's exact ``individual_mode_tasks``.
  Per sender they are the planner's ``individual_mode_tasks_by_sender`` where the plan
  carries it; for older plans they are the sum of ``who_count`` over the sender's Tasks:
  each Contact on a shared Task counted as one Task per Related-To copy. That is exact
  unless a shared email mixed Contacts whose Accounts (or Opportunity roles) differ from
  the primary's (R9); such senders are flagged as estimated and the report says so.
- *Fallback* hours are hours planned in individual mode because Salesforce had Shared
  Activities off while the tenant setting had it on (R12).
- *Salesforce Events* (R14) are the meetings planned as one shared Event per batch of
  Contacts; they are counted apart from Tasks, next to the Tasks individual mode would
  have made for the same meetings (the planner's ``individual_mode_salesforce_events``,
  per sender ``individual_mode_salesforce_events_by_sender``). *Tasks* and their
  individual-mode figure never include those meetings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from activity_sync.audit.inputs import DayInputs
from activity_sync.converge import RemovalOutcome
from activity_sync.reconcile import SKIPPED
from activity_sync.schema import ALREADY_SYNCED, EVENT_TYPES, REASONS

DEFAULT_CHANGE_THRESHOLD_PCT = 30.0
# Below this many Tasks a day, a few emails swing the ratio; no day-over-day alert.
DEFAULT_MIN_TASKS_FOR_CHANGE_ALERT = 20
# A planned hour with no load result is "in progress" (not yet expected in Salesforce)
# for this long after its plan was written; after that it counts as not loaded.
DEFAULT_LOAD_GRACE = timedelta(hours=2)
UNKNOWN_SENDER = "(unknown)"
# An hour's load_state: loaded, or planned and not loaded yet (within the grace) or at all.
LOADED, IN_PROGRESS, NOT_LOADED = "loaded", "in_progress", "not_loaded"
TYPE_ORDER = ("sent", "internal_reply", "reply", "open", "click", "download", "bounce", "meeting")
MEETING = "meeting"  # the one event type planned as Salesforce Events (R14)
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
    "salesforce_events",
    "salesforce_events_loaded",
    "event_relations",
    "individual_mode_salesforce_events",
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
    "salesforce_events",
    "event_relations",
    "individual_mode_salesforce_events",
    "load_state",
    "tasks_loaded",
    "salesforce_events_loaded",
    "dead_lettered",
]


@dataclass(frozen=True)
class AuditOptions:
    """The audit's thresholds.

    Attributes:
        change_threshold_pct: the day-over-day change in Tasks (percent) that, unexplained
            by the event mix, raises an alert.
        min_tasks_for_change_alert: days with fewer Tasks than this (today's or expected)
            never raise the day-over-day alert.
        load_grace: how long after its plan an hour without load results is in progress
            rather than not loaded (and left out of the reconciliation).
    """

    change_threshold_pct: float = DEFAULT_CHANGE_THRESHOLD_PCT
    min_tasks_for_change_alert: int = DEFAULT_MIN_TASKS_FOR_CHANGE_ALERT
    load_grace: timedelta = DEFAULT_LOAD_GRACE


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
    """Distinct events of known types per hour, with the normalised sender.

    An event delivered again after an earlier hour loaded it (``already_synced``) is no
    new event: it is left out here and counted only among the rejections.
    """
    events = inputs.events[inputs.events["type"].isin(EVENT_TYPES)]
    events = events.drop_duplicates(["hour", "event_id"])
    synced = inputs.rejected.loc[inputs.rejected["reason"].eq(ALREADY_SYNCED), ["hour", "event_id"]]
    if not synced.empty:
        again = events[["hour", "event_id"]].merge(
            synced.drop_duplicates().assign(_again=True), on=["hour", "event_id"], how="left"
        )["_again"]
        events = events[~again.fillna(False).astype(bool).to_numpy()]
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
    """One row per sender with the day's counts (R13).

    Args:
        inputs: the day, as ``read_day`` returns it.

    Returns:
        The rows of ``counts.parquet``, columns ``SENDER_COLUMNS``, most Tasks first.
        Senders are trimmed and lower-cased; events without one count as ``UNKNOWN_SENDER``.
    """
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
    sf_events = _with_sender(inputs.salesforce_events, senders)
    sf_event_sender = sf_events[["hour", "event_key", "sender"]]
    events_loaded = inputs.event_results[inputs.event_results["success"].astype(bool)]
    events_loaded = events_loaded.merge(sf_event_sender, on=["hour", "event_key"], how="inner")
    event_relations = inputs.event_relations.merge(
        sf_event_sender, on=["hour", "event_key"], how="inner"
    )
    dead = _dead_letter_senders(inputs.dead_letter, task_sender, sf_event_sender)

    table = pd.concat(
        [
            _count(events, "sender", "events"),
            by_type,
            _count(tasks, "sender", "tasks"),
            _count(loaded, "sender", "tasks_loaded"),
            _count(relations, "sender", "relations"),
            *_individual_by_sender(inputs, tasks),
            _count(sf_events, "sender", "salesforce_events"),
            _count(events_loaded, "sender", "salesforce_events_loaded"),
            _count(event_relations, "sender", "event_relations"),
            _individual_events_by_sender(inputs, sf_events),
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


def _dead_letter_senders(
    dead: pd.DataFrame, task_sender: pd.DataFrame, sf_event_sender: pd.DataFrame
) -> pd.DataFrame:
    """Dead-lettered rows with the sender of their Task or Salesforce Event."""
    # Keys compare as text: a column with no key at all would otherwise be float-typed.
    keys = {"task_key": object, "event_key": object}
    dead = dead.astype(keys)
    task_sender = task_sender.astype({"task_key": object})
    sf_event_sender = sf_event_sender.astype({"event_key": object})
    by_task = dead.merge(task_sender, on=["hour", "task_key"], how="left")["sender"]
    by_event = dead.merge(sf_event_sender, on=["hour", "event_key"], how="left")["sender"]
    sender = by_task.fillna(by_event).fillna(UNKNOWN_SENDER)
    return dead.assign(sender=sender.to_numpy())


def _by_sender_summaries(inputs: DayInputs, name: str) -> tuple[pd.Series, set[int]]:
    """The planner's per-sender counts ``name`` summed over the hours that carry them."""
    by_hour = inputs.summaries.get(name)
    if by_hour is None:
        return pd.Series(dtype="int64"), set()
    known = inputs.summaries[by_hour.map(lambda v: isinstance(v, dict))]
    records = pd.DataFrame(
        [(s, n) for counts in known[name] for s, n in counts.items()],
        columns=["sender", "n"],
    )
    if records.empty:
        return pd.Series(dtype="int64"), set(known["hour"])
    records["sender"] = _normalise_sender(records["sender"])
    return records.groupby("sender")["n"].sum(), set(known["hour"])


def _individual_events_by_sender(inputs: DayInputs, sf_events: pd.DataFrame) -> pd.Series:
    """Per sender, the Tasks individual mode would have made for the meetings planned as
    Salesforce Events: the planner's figure, else one per person on each Event."""
    exact, exact_hours = _by_sender_summaries(inputs, "individual_mode_salesforce_events_by_sender")
    rest = sf_events[~sf_events["hour"].isin(exact_hours)]
    who = pd.to_numeric(rest["who_count"]).fillna(1)
    estimate = who.groupby(rest["sender"]).sum()
    return (
        exact.add(estimate, fill_value=0)
        .astype("int64")
        .rename("individual_mode_salesforce_events")
    )


def _individual_by_sender(inputs: DayInputs, tasks: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per sender, the Tasks individual mode would have made, and whether that is estimated.

    Exact for hours whose plan summary carries the planner's per-sender count; for older
    plans without it, the people on each Task (an estimate when one email mixed Contacts
    whose Accounts or Opportunities differ from the primary's).
    """
    exact, exact_hours = _by_sender_summaries(inputs, "individual_mode_tasks_by_sender")
    rest = tasks[~tasks["hour"].isin(exact_hours)]
    estimate = rest.groupby("sender")["who_count"].sum()
    individual = exact.add(estimate, fill_value=0).astype("int64")
    estimated = rest.groupby("sender")["who_count"].max().gt(1)
    return individual.rename("individual_mode_tasks"), estimated.rename("individual_mode_estimated")


def hour_counts(inputs: DayInputs, now: datetime, options: AuditOptions) -> pd.DataFrame:
    """One row per planned hour: the mode in force and why, and the hour's figures.

    Args:
        inputs: the day, as ``read_day`` returns it.
        now: the audit's time, which tells an hour still loading from one that failed to.
        options: ``load_grace`` is how long an unloaded hour counts as in progress.

    Returns:
        Columns ``HOUR_COLUMNS``, earliest hour first; ``load_state`` is ``loaded``,
        ``in_progress`` or ``not_loaded``.
    """
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
        "salesforce_events",
        "event_relations",
        "individual_mode_salesforce_events",
    ):
        hours[name] = pd.to_numeric(column(name, 0)).fillna(0).astype("int64")
    hours["change_pct"] = percent_change(hours["tasks"], hours["individual_mode_tasks"])

    written = pd.to_datetime(s["plan_written_at"], utc=True)
    recent = written.notna() & (written > pd.Timestamp(now) - options.load_grace)
    loaded = hours["hour"].isin(inputs.loaded_hours)
    hours["load_state"] = np.select([loaded, recent.to_numpy()], [LOADED, IN_PROGRESS], NOT_LOADED)

    for name, results in (
        ("tasks_loaded", inputs.task_results),
        ("salesforce_events_loaded", inputs.event_results),
    ):
        ok = results[results["success"].astype(bool)].groupby("hour").size()
        hours[name] = hours["hour"].map(ok).fillna(0).astype("int64")
    dead = inputs.dead_letter.groupby("hour").size()
    hours["dead_lettered"] = hours["hour"].map(dead).fillna(0).astype("int64")
    return hours[HOUR_COLUMNS]


def type_mix(inputs: DayInputs) -> dict[str, dict[str, int]]:
    """Events, planned Tasks and Salesforce Events per event type: the baseline of
    tomorrow's comparison.

    Returns:
        ``{type: {"events": n, "tasks": n, "salesforce_events": n,
        "individual_mode_salesforce_events": n}}`` for the types the day has, in
        ``TYPE_ORDER``; Salesforce Events are all meetings, the last figure the Tasks
        individual mode would have made for them.
    """
    events = _events(inputs).groupby("type").size()
    tasks = inputs.tasks.groupby("event_type").size()
    replaced = inputs.summaries.get("individual_mode_salesforce_events")
    instead = 0 if replaced is None else int(pd.to_numeric(replaced).fillna(0).sum())
    sf_events = {MEETING: (len(inputs.salesforce_events), instead)}
    mix = {}
    for t in TYPE_ORDER:
        made, instead = sf_events.get(t, (0, 0))
        if events.get(t, 0) or tasks.get(t, 0) or made:
            mix[t] = {
                "events": int(events.get(t, 0)),
                "tasks": int(tasks.get(t, 0)),
                "salesforce_events": made,
                "individual_mode_salesforce_events": instead,
            }
    return mix


def headline(
    inputs: DayInputs, hours: pd.DataFrame, senders: pd.DataFrame, reconciliation: Mapping
) -> dict[str, Any]:
    """The day's totals, as the report's headline cards and ``audit.json`` show them.

    Args:
        inputs: the day, as ``read_day`` returns it.
        hours: ``hour_counts`` of the same day (totals of Tasks and modes come from plans).
        senders: ``sender_counts`` of the same day (events received come from events).
        reconciliation: the reconciliation section; only its ``status`` is used.
    """
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
        "salesforce_events": int(hours["salesforce_events"].sum()),
        "salesforce_events_loaded": int(hours["salesforce_events_loaded"].sum()),
        "event_relations": int(hours["event_relations"].sum()),
        "individual_mode_salesforce_events": int(hours["individual_mode_salesforce_events"].sum()),
        "rejected_recipients": int(rejected.reindex(list(RECIPIENT_REASONS)).fillna(0).sum()),
        "rejected_by_reason": {r: int(rejected[r]) for r in REASON_ORDER if r in rejected},
        "dead_lettered": len(inputs.dead_letter),
        # Re-plans (issue 10): Tasks deleted to the Recycle Bin, and those kept because
        # someone else edited them (listed in the report).
        "tasks_deleted": int(inputs.removals["outcome"].eq(RemovalOutcome.DELETED).sum()),
        "tasks_kept_edited": int(inputs.removals["outcome"].eq(RemovalOutcome.KEPT_EDITED).sum()),
        "hours_planned": len(hours),
        "hours_loaded": int(hours["load_state"].eq(LOADED).sum()),
        "fallback_hours": [int(h) for h in hours.loc[hours["fallback"], "hour"]],
        "senders": len(senders),
        "reconciliation": reconciliation.get("status", SKIPPED),
    }
