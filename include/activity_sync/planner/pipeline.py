"""The planner's entry points: one interval of events + the CRM + org settings -> a Plan.

The steps run in this order: validate the events (``validate``, with R14's meeting
fields in ``meeting_fields``), read the CRM into lookup tables (``lookups``), apply the
rules (``rules``), make the Task and Salesforce Event frames (``rules``,
``salesforce_events``), then order the rejections and count the summary here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from activity_sync.crm import Crm
from activity_sync.planner.columns import normalise_email
from activity_sync.planner.lookups import OpportunityLinks, PersonDirectory
from activity_sync.planner.output import count_reasons, sorted_rejected
from activity_sync.planner.rules import (
    PlannedEvents,
    address_outcomes,
    individual_mode_per_row,
    related_to,
    task_frames,
    task_units,
)
from activity_sync.planner.salesforce_events import salesforce_event_frames
from activity_sync.planner.validate import CheckedEvents, validate
from activity_sync.schema import INDIVIDUAL_MODE, SHARED_MODE, SUMMARY_KEYS, Plan
from activity_sync.settings import Settings, SettingsError

_OPPORTUNITY_MATCHES = ("account", "contact_role")


def plan(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    *,
    salesforce_shared_activities: bool = True,
) -> Plan:
    """Plan the Tasks, Salesforce Events, their relations and the rejections of one
    interval of events.

    Args:
        events: the interval's events, one row per event in the columns of
            ``schema.EVENT_COLUMNS`` (any may be missing or hold wrong values: such
            events are rejected, not raised on).
        crm: the org's CRM snapshot.
        settings: the org's settings.
        salesforce_shared_activities: whether the Salesforce org has Shared Activities on
            (R1, R12): off means individual mode whatever the settings say.

    Returns:
        The Plan: tasks, relations, rejected, salesforce_events and event_relations
        frames in canonical order, and the summary (``schema.SUMMARY_KEYS``, then mode,
        mode_reason, rejected_by_reason, individual_mode_tasks_by_sender and
        individual_mode_salesforce_events_by_sender).

    Raises:
        SettingsError: ``settings.opportunity_match`` is not one the planner knows.
    """
    return _plan(events, crm, settings, salesforce_shared_activities, trace=False)[0]


def plan_traced(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    *,
    salesforce_shared_activities: bool = True,
) -> tuple[Plan, pd.DataFrame]:
    """The plan, plus what became of every address of every planned event.

    Arguments are those of ``plan``. The trace has one row per recipient (in listed order)
    or actor: ``event_id``, ``position`` (index in the recipient list, 0 for an actor),
    ``field`` (to/cc/bcc or actor), ``email`` (normalised), ``outcome`` (``matched``,
    ``repeated`` or a reason code), ``person_id`` (the matched Contact or Lead) and
    ``is_contact``. ``explain`` is built on it.
    """
    plan_, trace = _plan(events, crm, settings, salesforce_shared_activities, trace=True)
    assert trace is not None
    return plan_, trace


def mode_of(settings: Settings, salesforce_shared_activities: bool) -> tuple[str, str]:
    """R1: the planning mode (``shared`` or ``individual``) and why, in words the audit and
    the CLI can show."""
    if settings.shared_activities and salesforce_shared_activities:
        return SHARED_MODE, "shared activities on"
    off = []
    if not settings.shared_activities:
        off.append("tenant setting shared_activities is off")
    if not salesforce_shared_activities:
        off.append("Salesforce org has Shared Activities off")
    return INDIVIDUAL_MODE, " and ".join(off)


def _plan(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    salesforce_shared_activities: bool,
    *,
    trace: bool,
) -> tuple[Plan, pd.DataFrame | None]:
    if settings.opportunity_match not in _OPPORTUNITY_MATCHES:
        raise SettingsError(f"settings key 'opportunity_match' is {settings.opportunity_match!r}")
    mode, mode_reason = mode_of(settings, salesforce_shared_activities)
    checked = validate(events, settings)
    as_events = mode == SHARED_MODE and settings.meetings_as_events  # R14
    planned = PlannedEvents.of(checked, crm, meetings_as_events=as_events)
    directory = PersonDirectory.of(crm)
    outcomes = address_outcomes(checked, planned, settings, directory)
    units = task_units(outcomes, planned, directory, shared=mode == SHARED_MODE)
    links = OpportunityLinks.of(crm, settings)
    records = related_to(units, planned, directory, links, settings)
    is_event = planned.as_event[units.event[records.unit]]
    tasks = records.where(~is_event)
    tasks_frame, relations_frame = task_frames(tasks, units, planned, directory, settings)
    assert checked.meeting_times is not None
    salesforce_events, event_relations = salesforce_event_frames(
        records.where(is_event), units, planned, directory, settings, checked.meeting_times
    )

    rejected = sorted_rejected(
        pd.concat([checked.rejected(), outcomes.rejected(planned)], ignore_index=True)
    )
    reasons = count_reasons(rejected)
    shared_tasks = int(units.shared[tasks.unit].sum())
    if mode == SHARED_MODE:
        per_row = individual_mode_per_row(
            outcomes, planned, directory, links, settings, len(events)
        )
    else:
        per_row = _tasks_per_row(tasks_frame, planned, len(events))
    # Individual mode makes Tasks for all of it; counted apart for what is planned here as
    # Tasks and for the meetings planned as Salesforce Events.
    per_row_tasks = np.where(planned.as_event, 0, per_row)
    per_row_events = per_row - per_row_tasks
    summary: dict[str, Any] = {
        "events": planned.count,
        "events_rejected": len(events) - planned.count,
        "tasks": len(tasks_frame),
        "shared_tasks": shared_tasks,
        "individual_tasks": len(tasks_frame) - shared_tasks,
        "relations": len(relations_frame),
        "recipients_excluded": reasons.get("excluded", 0),
        "recipients_unmatched": reasons.get("unmatched", 0),
        "individual_mode_tasks": int(per_row_tasks.sum()),
        "salesforce_events": len(salesforce_events),
        "event_relations": len(event_relations),
        "individual_mode_salesforce_events": int(per_row_events.sum()),
    }
    assert list(summary) == SUMMARY_KEYS
    summary.update(
        mode=mode,
        mode_reason=mode_reason,
        rejected_by_reason=reasons,
        individual_mode_tasks_by_sender=_by_sender(checked, planned, per_row_tasks),
        individual_mode_salesforce_events_by_sender=_by_sender(checked, planned, per_row_events),
    )
    result = Plan(
        tasks_frame, relations_frame, rejected, summary, salesforce_events, event_relations
    )
    return result, (outcomes.trace(planned, directory) if trace else None)


def _tasks_per_row(tasks: pd.DataFrame, planned: PlannedEvents, rows: int) -> np.ndarray:
    """Tasks planned per input row (event ids are unique among planned rows)."""
    row_of = pd.Series(
        planned.rows, index=planned.event_id.take(pa.array(planned.rows)).to_pandas()
    )
    per_row = np.zeros(rows, dtype=np.int64)
    counts = tasks["event_id"].value_counts()
    np.add.at(per_row, row_of.loc[counts.index.astype(object)].to_numpy(), counts.to_numpy())
    return per_row


def _by_sender(
    checked: CheckedEvents, planned: PlannedEvents, per_row: np.ndarray
) -> dict[str, int]:
    """Individual-mode Tasks per sender (trimmed, lower-cased), for the audit's table."""
    senders = normalise_email(checked.text["sender"].values).take(pa.array(planned.rows))
    frame = pd.DataFrame({"sender": senders.to_pandas(), "tasks": per_row[planned.rows]})
    totals = frame.groupby("sender", sort=True)["tasks"].sum()
    return {str(k): int(v) for k, v in totals.items()}
