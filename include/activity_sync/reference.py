"""The reference planner: rules R1–R10 and R14 (docs/rules.md) as plain row-by-row Python.

This is the test oracle for the vectorised planner in ``plan.py``. It is written for
obviousness, not speed: one loop over the events, one helper per rule, so that when the
two planners disagree, reading this file tells which rule the other one broke.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from activity_sync.reference_meetings import EventTimes, meeting_times
from activity_sync.reference_values import (
    activity_date,
    crm_email,
    is_null,
    is_text,
    missing,
    normalise,
    recipient_list,
    text_or_none,
)
from activity_sync.schema import (
    ACTIVITY_DATE_RANGE,
    ACTOR_TYPES,
    BATCH_SIZE,
    DECLINED_RESPONSE,
    EVENT_RELATION_COLUMNS,
    EVENT_TYPES,
    INDIVIDUAL_MODE,
    RECIPIENT_TYPES,
    REJECTED_COLUMNS,
    RELATION_COLUMNS,
    REQUIRED_FIELDS,
    SALESFORCE_EVENT_COLUMNS,
    SALESFORCE_EVENT_SUBTYPE,
    SHARED_MODE,
    SHARED_TYPES,
    SUMMARY_KEYS,
    SYSTEM_LOCAL_PARTS,
    TASK_COLUMNS,
    TASK_STATUS,
    TASK_SUBTYPE,
    Plan,
    description_for,
    event_key,
    is_valid_email,
    subject_for,
    task_key,
)

if TYPE_CHECKING:
    from activity_sync.crm import Crm
    from activity_sync.settings import Settings


def plan(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    *,
    salesforce_shared_activities: bool = True,
) -> Plan:
    """Plan the Tasks, Salesforce Events, their relations and the rejections for one
    interval of events."""
    shared = settings.shared_activities and salesforce_shared_activities  # R1
    as_events = shared and settings.meetings_as_events  # R14
    directory = _Directory(crm)
    draft = _plan_events(events, directory, settings, shared=shared, as_events=as_events)
    if shared:
        # R13: what individual mode would have made, by simply planning it; counted apart
        # for the meetings this plan makes Salesforce Events of.
        alone = _plan_events(events, directory, settings, shared=False, as_events=False).tasks
        for_events = sum(1 for t in alone if as_events and t["event_type"] == "meeting")
        individual = (len(alone) - for_events, for_events)
    else:
        individual = (len(draft.tasks), 0)
    return draft.to_plan(mode=SHARED_MODE if shared else INDIVIDUAL_MODE, individual=individual)


# --------------------------------------------------------------------------- rules


def _is_excluded(address: str, settings: Settings) -> bool:
    """R4: an excluded address, a domain or any subdomain of it, or a system mailbox."""
    if address in settings.excluded_addresses:
        return True
    local, _, domain = address.rpartition("@")
    for excluded in settings.excluded_domains:
        if domain == excluded or domain.endswith("." + excluded):
            return True
    return settings.exclude_system_addresses and local.split("+")[0] in SYSTEM_LOCAL_PARTS


@dataclass(frozen=True)
class _Person:
    id: str
    is_contact: bool
    account_id: str | None


def _newest_then_lowest_id(records: list[dict[str, Any]]) -> dict[str, Any]:
    """R5 tie-break: the greatest LastModifiedDate, then the lowest Id."""
    by_id = sorted(records, key=lambda r: r["Id"])
    dated = [r for r in by_id if not is_null(r["LastModifiedDate"])]
    # max() keeps the first of equal keys, which after sorting by Id is the lowest Id; a
    # record with no date at all is older than any dated one.
    return max(dated, key=lambda r: r["LastModifiedDate"]) if dated else by_id[0]


def _by_email(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by their email as R5 compares it; records without one are left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        email = crm_email(record["Email"])
        if email is not None:
            groups.setdefault(email, []).append(record)
    return groups


class _Directory:
    """The CRM snapshot as the lookups the rules ask for."""

    def __init__(self, crm: Crm) -> None:
        self.contacts_by_email = _by_email(crm.contacts.to_dict("records"))
        self.leads_by_email = _by_email(
            [lead for lead in crm.leads.to_dict("records") if not lead["IsConverted"]]
        )
        self.opportunities = crm.opportunities.to_dict("records")
        self.contact_roles = crm.contact_roles.to_dict("records")
        self.users = crm.users.to_dict("records")

    def match(self, address: str) -> _Person | None:
        """R5: the Contact with this email, else the unconverted Lead, else nobody."""
        if address in self.contacts_by_email:
            contact = _newest_then_lowest_id(self.contacts_by_email[address])
            return _Person(contact["Id"], True, text_or_none(contact["AccountId"]))
        if address in self.leads_by_email:
            return _Person(_newest_then_lowest_id(self.leads_by_email[address])["Id"], False, None)
        return None

    def owner(self, sender: str) -> str | None:
        """The active User with the sender's email, lowest Id first."""
        address = normalise(sender)
        ids = [u["Id"] for u in self.users if u["IsActive"] and crm_email(u["Email"]) == address]
        return min(ids) if ids else None

    def related_to(
        self, primary: _Person, owner_id: str | None, settings: Settings
    ) -> list[str | None]:
        """R8/R10: the WhatId of each copy of a Task whose WhoId is ``primary``."""
        if not primary.is_contact:
            return [None]
        if settings.sync_to_opportunities:
            if settings.opportunity_match == "account":
                candidates = [
                    o
                    for o in self.opportunities
                    if primary.account_id is not None and o["AccountId"] == primary.account_id
                ]
            else:
                role_opp_ids = {
                    r["OpportunityId"] for r in self.contact_roles if r["ContactId"] == primary.id
                }
                candidates = [o for o in self.opportunities if o["Id"] in role_opp_ids]
            if settings.open_opportunities_only:
                candidates = [o for o in candidates if not o["IsClosed"]]
            if settings.owned_opportunities_only:
                candidates = [
                    o for o in candidates if owner_id is not None and o["OwnerId"] == owner_id
                ]
            if candidates:
                return sorted({o["Id"] for o in candidates})
        return [primary.account_id]


# --------------------------------------------------------------------------- planning


@dataclass
class _Draft:
    tasks: list[dict[str, Any]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)
    salesforce_events: list[dict[str, Any]] = field(default_factory=list)
    event_relations: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    events_rejected: int = 0
    shared_tasks: int = 0

    def reject(self, event_id: Any, email: str | None, reason: str, detail: str) -> None:
        event_id = None if is_null(event_id) else str(event_id)
        self.rejected.append(
            {"event_id": event_id, "email": email, "reason": reason, "detail": detail}
        )

    def to_plan(self, *, mode: str, individual: tuple[int, int]) -> Plan:
        tasks = sorted(self.tasks, key=lambda t: t["task_key"])
        relations = sorted(self.relations, key=lambda r: (r["task_key"], r["position"]))
        salesforce_events = sorted(self.salesforce_events, key=lambda e: e["event_key"])
        event_relations = sorted(
            self.event_relations, key=lambda r: (r["event_key"], r["position"])
        )
        rejected = sorted(
            self.rejected,
            key=lambda r: tuple((r[c] is None, r[c] or "") for c in REJECTED_COLUMNS),
        )
        reasons = Counter(r["reason"] for r in self.rejected)
        summary: dict[str, Any] = {
            "events": self.events,
            "events_rejected": self.events_rejected,
            "tasks": len(tasks),
            "shared_tasks": self.shared_tasks,
            "individual_tasks": len(tasks) - self.shared_tasks,
            "relations": len(relations),
            "recipients_excluded": reasons["excluded"],
            "recipients_unmatched": reasons["unmatched"],
            "individual_mode_tasks": individual[0],
            "salesforce_events": len(salesforce_events),
            "event_relations": len(event_relations),
            "individual_mode_salesforce_events": individual[1],
        }
        assert list(summary) == SUMMARY_KEYS
        summary["mode"] = mode
        summary["rejected_by_reason"] = dict(sorted(reasons.items()))
        return Plan(
            tasks=pd.DataFrame(tasks, columns=TASK_COLUMNS).astype(
                {"who_count": "int64", "batch_index": "int64"}
            ),
            relations=pd.DataFrame(relations, columns=RELATION_COLUMNS).astype(
                {"position": "int64", "is_primary": "bool"}
            ),
            rejected=pd.DataFrame(rejected, columns=REJECTED_COLUMNS),
            summary=summary,
            salesforce_events=pd.DataFrame(
                salesforce_events, columns=SALESFORCE_EVENT_COLUMNS
            ).astype(
                {
                    "DurationInMinutes": "int64",
                    "IsAllDayEvent": "bool",
                    "who_count": "int64",
                    "batch_index": "int64",
                }
            ),
            event_relations=pd.DataFrame(event_relations, columns=EVENT_RELATION_COLUMNS).astype(
                {"position": "int64", "is_primary": "bool"}
            ),
        )


def _event_rejection(event: dict[str, Any], settings: Settings) -> tuple[str, str] | None:
    """The first of missing_field, unknown_type, wrong_org, invalid_field that applies."""
    for name in REQUIRED_FIELDS:
        if missing(event.get(name)):
            return "missing_field", f"{name} is absent or empty"
    # A type that is no string (an odd file) is simply no type this product knows.
    event_type = event["type"] if isinstance(event["type"], str) else None
    if event_type in ACTOR_TYPES and missing(event.get("actor")):
        return "missing_field", f"a {event_type} event needs an actor"
    if event_type in RECIPIENT_TYPES:
        recipients = event.get("recipients")
        if is_null(recipients) or (
            isinstance(recipients, list | tuple | np.ndarray) and len(recipients) == 0
        ):
            return "missing_field", f"a {event_type} event needs recipients"
    if event_type not in EVENT_TYPES:
        return "unknown_type", f"type {event['type']!r} is not synced"
    if event["org_id"] != settings.org_id:
        return "wrong_org", f"org {event['org_id']!r} is not {settings.org_id!r}"
    date = activity_date(event["occurred_at"], settings.timezone)
    if date is None:
        return "invalid_field", "occurred_at is no ISO-8601 time with an offset and a calendar date"
    first, last = ACTIVITY_DATE_RANGE
    if not first <= date <= last:
        return "invalid_field", f"occurred_at falls outside Salesforce's dates ({first} to {last})"
    if event_type in RECIPIENT_TYPES and recipient_list(event["recipients"]) is None:
        return "invalid_field", "recipients must be objects with a string email and to/cc/bcc"
    text_fields = ["event_id", "sender", "subject", "body", "url", "filename"]
    if event_type in ACTOR_TYPES:
        text_fields.append("actor")
    for name in text_fields:
        value = event.get(name)
        if not is_null(value) and not is_text(value):
            return "invalid_field", f"{name} is not a string"
    if event_type == "meeting":  # R14's optional fields, judged in every mode
        times = meeting_times(event, settings.timezone)
        if isinstance(times, str):
            return "invalid_field", times
    return None


def _plan_events(
    events: pd.DataFrame,
    directory: _Directory,
    settings: Settings,
    *,
    shared: bool,
    as_events: bool,
) -> _Draft:
    draft = _Draft()
    seen_event_ids: set[Any] = set()
    for event in events.to_dict("records"):
        rejection = _event_rejection(event, settings)
        if rejection is not None:
            draft.reject(event.get("event_id"), None, *rejection)
            draft.events_rejected += 1
            continue
        if event["event_id"] in seen_event_ids:
            draft.reject(
                event["event_id"], None, "duplicate_event", "an earlier row had this event_id"
            )
            draft.events_rejected += 1
            continue
        seen_event_ids.add(event["event_id"])
        if event["type"] in ACTOR_TYPES:
            actor = normalise(event["actor"])
            if not is_valid_email(actor):
                draft.reject(
                    event["event_id"], actor, "invalid_email", "the actor is not a valid address"
                )
                draft.events_rejected += 1
                continue
        draft.events += 1
        _plan_event(event, directory, settings, shared, as_events, draft)
    return draft


def _people(
    event: dict[str, Any],
    directory: _Directory,
    settings: Settings,
    draft: _Draft,
    *,
    declines: bool,
) -> list[_Person]:
    """The matched people of an event in order; every address left out gets a rejected row.
    ``declines``: a declined attendee is left out (R14, a meeting planned as Events)."""
    event_id = event["event_id"]
    if event["type"] in ACTOR_TYPES:
        candidates = [(normalise(event["actor"]), "actor", None)]
    else:
        candidates = []
        seen: set[str] = set()
        for recipient in recipient_list(event["recipients"]) or []:
            address = normalise(recipient["email"])
            if address not in seen:  # R3: a repeated address counts once, first place wins
                seen.add(address)
                candidates.append((address, recipient["field"], recipient.get("response")))
    people = []
    for address, place, response in candidates:
        if place == "bcc" and not settings.sync_bcc:
            draft.reject(event_id, address, "bcc_not_synced", "Bcc recipients are not synced")
        elif not is_valid_email(address):
            draft.reject(event_id, address, "invalid_email", "not a valid address")
        elif _is_excluded(address, settings):
            draft.reject(event_id, address, "excluded", "excluded by the org's settings")
        elif declines and response == DECLINED_RESPONSE:
            draft.reject(event_id, address, "declined", "declined the meeting")
        else:
            person = directory.match(address)
            if person is None:
                draft.reject(event_id, address, "unmatched", "no Contact or unconverted Lead")
            else:
                people.append(person)
    return people


def _plan_event(
    event: dict[str, Any],
    directory: _Directory,
    settings: Settings,
    shared: bool,
    as_events: bool,
    draft: _Draft,
) -> None:
    event_type = event["type"]
    owner_id = directory.owner(event["sender"])
    as_event = as_events and event_type == "meeting"  # R14: Salesforce Events, not Tasks
    common = {
        "org_id": event["org_id"],
        "event_id": event["event_id"],
        "OwnerId": owner_id,
        "Subject": subject_for(event_type, text_or_none(event.get("subject"))),
        "Description": description_for(
            event_type,
            text_or_none(event.get("body")),
            text_or_none(event.get("url")),
            text_or_none(event.get("filename")),
        ),
    }
    if as_event:
        times = meeting_times(event, settings.timezone)
        assert isinstance(times, EventTimes)  # a meeting with unusable fields was rejected
        common |= times.fields() | {"EventSubtype": SALESFORCE_EVENT_SUBTYPE}
    else:
        common |= {
            "event_type": event_type,
            "ActivityDate": activity_date(event["occurred_at"], settings.timezone),
            "Status": TASK_STATUS,
            "TaskSubtype": TASK_SUBTYPE[event_type],
        }

    def add(people: list[_Person], part: str, batch_index: int) -> None:
        """One record per WhatId of the primary (R8): a Task, or a Salesforce Event."""
        primary = people[0]
        for what_id in directory.related_to(primary, owner_id, settings):
            record = {
                **common,
                "WhoId": primary.id,
                "WhatId": what_id,
                "who_count": len(people),
                "batch_index": batch_index,
            }
            if as_event:
                key_name, key = (
                    "event_key",
                    event_key(event["org_id"], event["event_id"], part, what_id),
                )
                records, relations = draft.salesforce_events, draft.event_relations
            else:
                key_name, key = (
                    "task_key",
                    task_key(event["org_id"], event["event_id"], part, what_id),
                )
                records, relations = draft.tasks, draft.relations
                if part.startswith("b"):
                    draft.shared_tasks += 1
            records.append({key_name: key, **record})
            for position, person in enumerate(people):
                relations.append(
                    {
                        key_name: key,
                        "RelationId": person.id,
                        "position": position,
                        "is_primary": position == 0,
                    }
                )

    people = _people(event, directory, settings, draft, declines=as_event)
    if shared and (event_type in SHARED_TYPES or as_event):
        # R6/R7/R14: Contacts share records in batches of 50; each Lead gets its own.
        contacts = [p for p in people if p.is_contact]
        for batch_index, start in enumerate(range(0, len(contacts), BATCH_SIZE)):
            add(contacts[start : start + BATCH_SIZE], f"b{batch_index}", batch_index)
        for lead in (p for p in people if not p.is_contact):
            add([lead], f"w{lead.id}", 0)
    else:
        # R1/R2/R10: one Task per person, including every meeting attendee and the actor.
        for person in people:
            add([person], f"w{person.id}", 0)
