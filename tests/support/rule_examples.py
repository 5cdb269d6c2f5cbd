"""Builders for the rule examples (tests/unit/test_rules.py, test_rules_batches_and_related.py):
a small org's CRM, events as they land, and the plan read back as plain tuples."""

from __future__ import annotations

from typing import Any

from strategies import comparable, crm_of, events_of, settings_of


def contact(id: str, email: str, account: str | None = None, modified: str = "2024-01-01"):
    return {"Id": id, "Email": email, "AccountId": account, "LastModifiedDate": modified}


def lead(id: str, email: str, converted: bool = False, modified: str = "2024-01-01"):
    return {"Id": id, "Email": email, "IsConverted": converted, "LastModifiedDate": modified}


def opp(id: str, account: str | None, closed: bool = False, owner: str | None = None):
    return {
        "Id": id,
        "AccountId": account,
        "Name": f"Deal {id}",
        "IsClosed": closed,
        "CloseDate": "2024-12-31",
        "OwnerId": owner,
    }


def role(id: str, opportunity: str, contact_id: str):
    return {"Id": id, "OpportunityId": opportunity, "ContactId": contact_id}


def user(id: str, email: str, active: bool = True):
    return {"Id": id, "Email": email, "IsActive": active}


def sent(*to: str, event_id: str = "e1", cc=(), bcc=(), **fields: Any) -> dict[str, Any]:
    recipients = [
        {"email": email, "field": field}
        for field, emails in (("to", to), ("cc", cc), ("bcc", bcc))
        for email in emails
    ]
    return {
        "event_id": event_id,
        "org_id": "acme",
        "type": "sent",
        "occurred_at": "2024-05-01T12:00:00Z",
        "sender": "rep@acme.com",
        "recipients": recipients,
        "subject": "Pricing",
        "body": "Hi all",
        **fields,
    }


def acted(event_type: str, actor: str | None, event_id: str = "e1", **fields: Any):
    return {
        "event_id": event_id,
        "org_id": "acme",
        "type": event_type,
        "occurred_at": "2024-05-01T12:00:00Z",
        "sender": "rep@acme.com",
        "actor": actor,
        "subject": "Pricing",
        **fields,
    }


def run(planner, rows: list[dict[str, Any]], crm, *, salesforce: bool = True, **settings: Any):
    return planner(
        events_of(rows), crm, settings_of(**settings), salesforce_shared_activities=salesforce
    )


def people(plan) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(WhoId, WhatId, RelationIds by position) per Task, sorted so tests read plainly."""
    relations: dict[str, list[str]] = {}
    for r in comparable(plan)["relations"]:
        relations.setdefault(r["task_key"], []).append(r["RelationId"])
    return sorted(
        (
            (t["WhoId"], t["WhatId"], tuple(relations[t["task_key"]]))
            for t in comparable(plan)["tasks"]
        ),
        key=lambda p: (p[0], p[1] or ""),
    )


def rejected(plan) -> list[tuple[str | None, str | None, str]]:
    return comparable(plan)["rejected"]


# A small org: three Contacts of Account 001A (client.com), one of 001B (other.org), the
# sender as an active User; no Opportunities unless a test adds them.
CLIENT = [
    contact("003A", "ann@client.com", "001A"),
    contact("003B", "bob@client.com", "001A"),
    contact("003C", "cat@client.com", "001A"),
]
OTHER = [contact("003D", "dan@other.org", "001B")]


def org(**objects: Any):
    objects.setdefault("contacts", CLIENT + OTHER)
    objects.setdefault(
        "accounts", [{"Id": "001A", "Name": "Client"}, {"Id": "001B", "Name": "Other"}]
    )
    objects.setdefault("users", [user("005R", "rep@acme.com")])
    return crm_of(**objects)
