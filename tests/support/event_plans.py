"""Plans of Salesforce Events (R14) built by hand from the seeded org, for load and
reconciliation tests that set each case up on purpose (the DAG tests load the planner's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import (
    EVENT_RELATION_COLUMNS,
    RELATION_COLUMNS,
    SALESFORCE_DATETIME_FORMAT,
    SALESFORCE_EVENT_COLUMNS,
    SALESFORCE_EVENT_SUBTYPE,
    TASK_COLUMNS,
    Plan,
    event_key,
)

ORG = "acme"
# Recent: Salesforce archives activities a year old.
START = (datetime.now(UTC) - timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)


def seeded_people(client: SalesforceClient) -> dict:
    """Contacts with Accounts, a Lead and a User of the seeded org."""
    contacts = client.query("SELECT Id, AccountId FROM Contact WHERE AccountId != null LIMIT 60")
    lead = client.query("SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")["Id"].iloc[0]
    user = client.query("SELECT Id FROM User WHERE IsActive = true LIMIT 1")["Id"].iloc[0]
    return {"contacts": contacts, "lead": lead, "user": user}


def event_plan(crm: dict, meetings: list[list[int]], *, all_day: bool = False) -> Plan:
    """One Salesforce Event per meeting, relating the Contacts at those positions."""
    contacts, events, people = crm["contacts"], [], []
    for n, positions in enumerate(meetings):
        who = contacts.iloc[positions[0]]
        key = event_key(ORG, f"m{n}", "b0", who["AccountId"])
        start = START + timedelta(hours=n)
        minutes = 1440 if all_day else 30
        if all_day:
            start = start.replace(hour=0)
        events.append(
            {
                "event_key": key,
                "org_id": ORG,
                "event_id": f"m{n}",
                "WhoId": who["Id"],
                "WhatId": who["AccountId"],
                "OwnerId": crm["user"],
                "Subject": f"Meeting: plan {n}",
                "Description": "Agenda",
                "StartDateTime": start.strftime(SALESFORCE_DATETIME_FORMAT),
                "EndDateTime": (start + timedelta(minutes=minutes)).strftime(
                    SALESFORCE_DATETIME_FORMAT
                ),
                "DurationInMinutes": minutes,
                "IsAllDayEvent": all_day,
                "ActivityDate": start.date().isoformat() if all_day else None,
                "Location": "Room 1",
                "EventSubtype": SALESFORCE_EVENT_SUBTYPE,
                "who_count": len(positions),
                "batch_index": 0,
            }
        )
        people += [
            {
                "event_key": key,
                "RelationId": contacts["Id"].iloc[p],
                "position": i,
                "is_primary": i == 0,
            }
            for i, p in enumerate(positions)
        ]
    return Plan(
        pd.DataFrame(columns=TASK_COLUMNS),
        pd.DataFrame(columns=RELATION_COLUMNS).astype({"is_primary": bool}),
        pd.DataFrame(),
        {},
        pd.DataFrame(events, columns=SALESFORCE_EVENT_COLUMNS),
        pd.DataFrame(people, columns=EVENT_RELATION_COLUMNS),
    )


def with_frames(plan: Plan, **frames) -> Plan:
    parts = {
        "tasks": plan.tasks,
        "relations": plan.relations,
        "rejected": plan.rejected,
        "summary": plan.summary,
        "salesforce_events": plan.salesforce_events,
        "event_relations": plan.event_relations,
    }
    return Plan(**{**parts, **frames})


def meeting_lines(crm, *, org_id: str, start: datetime, count: int) -> pd.DataFrame:
    """Landing rows (the event contract plus ``arrived_at``) of ``count`` meetings in the
    hour from ``start``, each with three Contacts of one Account, so that each becomes one
    Salesforce Event with EventRelation rows (R14). ``crm`` is the org's CRM mirror."""
    contacts = crm.contacts.dropna(subset=["Email", "AccountId"])
    accounts = contacts.groupby("AccountId")["Email"].agg(list)
    accounts = accounts[accounts.map(len) >= 3].head(count)
    if len(accounts) < count:
        raise ValueError(f"the mirror has {len(accounts)} Accounts with 3 Contacts, not {count}")
    active = crm.users["IsActive"].astype(str).str.lower().eq("true")
    organiser = crm.users.loc[active, "Email"].iloc[0]
    rows = []
    for n, emails in enumerate(accounts):
        at = (start + timedelta(minutes=5 + n)).isoformat()
        rows.append(
            {
                "event_id": f"{org_id}-meeting-{n}",
                "org_id": org_id,
                "type": "meeting",
                "occurred_at": at,
                "sender": organiser,
                "recipients": [{"email": e, "field": "to"} for e in emails[:3]],
                "subject": f"Review {n}",
                "body": "Agenda",
                "arrived_at": at,
            }
        )
    return pd.DataFrame(rows)
