"""Why one event became the Tasks (or Salesforce Events) it did: the answer to "where did
my email go?".

Built on the planner's own output (``plan_traced``): the event is planned as it would be
in its hour, and its trace, Tasks and relations are put into words. No rule is stated a
second time here, so the explanation cannot drift from what was planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from activity_sync.crm import Crm
from activity_sync.errors import ActivitySyncError
from activity_sync.plan import mode_of, plan_traced
from activity_sync.schema import ACTOR_TYPES, BATCH_SIZE, REASONS, SHARED_MODE, SHARED_TYPES, Plan
from activity_sync.settings import Settings


class UnknownEventError(ActivitySyncError, LookupError):
    """No row of the events has the event_id asked about."""


def explain(
    event_id: str,
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    *,
    salesforce_shared_activities: bool = True,
) -> str:
    """A few lines on one event: its type and mode, every recipient or actor in order with
    the Task(s) or Salesforce Event(s) it went to or why it was left out, and the records
    made."""
    same_id = events["event_id"].astype("string").eq(event_id).fillna(False).to_numpy(dtype=bool)
    rows = events[same_id]
    if rows.empty:
        raise UnknownEventError(f"event_id {event_id!r} is not in the events")
    planned, trace = plan_traced(
        rows, crm, settings, salesforce_shared_activities=salesforce_shared_activities
    )
    event = rows.iloc[0]
    mode, why = mode_of(settings, salesforce_shared_activities)
    lines = [
        f"event {event_id}: {event.get('type')} from {event.get('sender')} "
        f"at {event.get('occurred_at')}",
        f"mode: {mode} ({why})",
    ]
    if planned.summary["events"] == 0:
        lines += [f"rejected: {r['reason']}: {r['detail']}" for r in _records(planned.rejected)]
        return "\n".join(lines) + "\n"
    as_events = mode == SHARED_MODE and settings.meetings_as_events and event["type"] == "meeting"
    lines.append(f"planning: {_how(str(event['type']), mode, as_events)}; {_related_to(settings)}")
    batched = mode == SHARED_MODE and (event["type"] in SHARED_TYPES or as_events)
    records = _Records.of(planned, as_events)
    lines += _addresses(trace, records, batched=batched)
    lines += _tasks(planned) if not as_events else _salesforce_events(planned)
    repeats = planned.rejected["reason"].eq("duplicate_event").sum()
    if repeats:
        lines.append(f"{repeats} later row(s) with this event_id: duplicate_event, ignored")
    return "\n".join(lines) + "\n"


def _how(event_type: str, mode: str, as_events: bool) -> str:
    if event_type in ACTOR_TYPES:
        return "one Task for the person who acted (R2, R10)"
    if as_events:
        return (
            f"a meeting becomes Salesforce Events: Contacts share them in batches of "
            f"{BATCH_SIZE}, each Lead gets its own, declined attendees are left out (R14)"
        )
    if event_type not in SHARED_TYPES:
        return f"a {event_type} is not shared: one Task per attendee (R2)"
    if mode == SHARED_MODE:
        return f"Contacts share Tasks in batches of {BATCH_SIZE}, each Lead gets its own (R6, R7)"
    return "one Task per matched Contact or Lead (R1)"


def _related_to(settings: Settings) -> str:
    if not settings.sync_to_opportunities:
        return "Related To is the primary Contact's Account (opportunity sync off)"
    filters = [
        name
        for name, on in (
            ("open", settings.open_opportunities_only),
            ("owned by the sender", settings.owned_opportunities_only),
        )
        if on
    ]
    which = f" ({', '.join(filters)} only)" if filters else ""
    return (
        f"Related To is one copy per Opportunity{which} matched by "
        f"{settings.opportunity_match} to the primary Contact, else its Account (R8)"
    )


@dataclass(frozen=True)
class _Records:
    """What the event's people went to: Tasks, or Salesforce Events (R14), by key."""

    noun: str  # before each key: "" for Tasks (the usual case), "Salesforce Event "
    key: str
    by_key: dict[str, dict[str, Any]]
    relations: pd.DataFrame

    @classmethod
    def of(cls, planned: Plan, as_events: bool) -> _Records:
        if as_events:
            events = {e["event_key"]: e for e in _records(planned.salesforce_events)}
            return cls("Salesforce Event ", "event_key", events, planned.event_relations)
        tasks = {task["task_key"]: task for task in _records(planned.tasks)}
        return cls("", "task_key", tasks, planned.relations)


def _addresses(trace: pd.DataFrame, records: _Records, batched: bool) -> list[str]:
    lines = ["recipients:" if trace["field"].ne("actor").any() else "actor:"]
    seen: dict[str, int] = {}
    for address in _records(trace):
        where = f"  #{address['position']} {address['field']:<5} {address['email']} ->"
        outcome = address["outcome"]
        if outcome == "matched":
            lines.append(f"{where} {_placement(address, records, batched)}")
        elif outcome == "repeated":
            lines.append(f"{where} repeated, counted once at #{seen[address['email']]}")
        else:
            lines.append(f"{where} {outcome}: {REASONS[outcome]}")
        seen.setdefault(address["email"], address["position"])
    return lines


def _placement(address: dict[str, Any], records: _Records, batched: bool) -> str:
    """Where a matched person went: the Task(s) or Salesforce Event(s) relating them, at
    which position."""
    kind = "Contact" if address["is_contact"] else "Lead"
    relations = records.relations
    on = _records(relations[relations["RelationId"] == address["person_id"]])
    first = on[0]
    role = "primary" if first["is_primary"] else f"position {first['position']}"
    if batched and address["is_contact"]:
        role += f" of batch {records.by_key[first[records.key]]['batch_index']}"
    copies = ", ".join(
        f"{r[records.key]} (WhatId {records.by_key[r[records.key]]['WhatId'] or '-'})" for r in on
    )
    return f"{kind} {address['person_id']}, {role}, on {records.noun}{copies}"


def _tasks(planned: Plan) -> list[str]:
    lines = [f"tasks ({len(planned.tasks)}):"]
    for task in _records(planned.tasks):
        lines.append(
            f"  {task['task_key']} WhoId {task['WhoId']} WhatId {task['WhatId'] or '-'} "
            f"who_count {task['who_count']} batch {task['batch_index']} "
            f"OwnerId {task['OwnerId'] or '-'} {task['ActivityDate']} {task['Subject']!r}"
        )
    return lines


def _salesforce_events(planned: Plan) -> list[str]:
    lines = [f"salesforce events ({len(planned.salesforce_events)}):"]
    for event in _records(planned.salesforce_events):
        span = "all day from " + event["ActivityDate"] if event["IsAllDayEvent"] else "from"
        lines.append(
            f"  {event['event_key']} WhoId {event['WhoId']} WhatId {event['WhatId'] or '-'} "
            f"who_count {event['who_count']} batch {event['batch_index']} "
            f"OwnerId {event['OwnerId'] or '-'} {span} {event['StartDateTime']} to "
            f"{event['EndDateTime']} ({event['DurationInMinutes']} min) "
            f"at {event['Location'] or '-'} {event['Subject']!r}"
        )
    return lines


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with None, not NA, for missing values."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
