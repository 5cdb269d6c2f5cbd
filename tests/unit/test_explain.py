"""explain(): one event's way into Tasks, in words, from the planner's own output."""

from __future__ import annotations

from typing import Any

import pytest
from strategies import crm_of, events_of, settings_of

from activity_sync.explain import UnknownEventError, explain
from activity_sync.schema import event_key, task_key

TIME = "2024-05-01T23:30:00Z"
CRM = crm_of(
    contacts=[
        {"Id": "003A", "Email": "ann@client.com", "AccountId": "001A", "LastModifiedDate": TIME},
        {"Id": "003B", "Email": "bob@client.com", "AccountId": "001B", "LastModifiedDate": TIME},
    ],
    leads=[
        {"Id": "00QA", "Email": "hal@prospect.io", "IsConverted": False, "LastModifiedDate": TIME}
    ],
    opportunities=[
        {
            "Id": "006A",
            "AccountId": "001A",
            "Name": "D",
            "IsClosed": False,
            "CloseDate": "2024-12-31",
            "OwnerId": None,
        }
    ],
    users=[{"Id": "005A", "Email": "rep@acme.com", "IsActive": True}],
)


def event(event_id: str = "e1", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "org_id": "acme",
        "type": "sent",
        "occurred_at": TIME,
        "sender": "rep@acme.com",
        "recipients": [
            {"email": "ann@client.com", "field": "to"},
            {"email": "Bob@Client.com", "field": "cc"},
            {"email": "hal@prospect.io", "field": "to"},
            {"email": "x@competitor.com", "field": "to"},
            {"email": "ann@client.com", "field": "cc"},
            {"email": "boss@acme.com", "field": "bcc"},
        ],
        "subject": "Pricing",
    } | fields


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_every_recipient_is_shown_in_order_with_where_it_went():
    text = explain("e1", events_of([event()]), CRM, settings_of(exclusions=["competitor.com"]))
    shared = task_key("acme", "e1", "b0", "006A")
    recipients = lines(text)[lines(text).index("recipients:") + 1 :][:6]
    assert recipients == [
        f"  #0 to    ann@client.com -> Contact 003A, primary of batch 0, on {shared} (WhatId 006A)",
        f"  #1 cc    bob@client.com -> Contact 003B, position 1 of batch 0, on {shared} (WhatId 006A)",
        f"  #2 to    hal@prospect.io -> Lead 00QA, primary, on {task_key('acme', 'e1', 'w00QA', None)}"
        " (WhatId -)",
        "  #3 to    x@competitor.com -> excluded: the address is excluded by the org's settings",
        "  #4 cc    ann@client.com -> repeated, counted once at #0",
        "  #5 bcc   boss@acme.com -> bcc_not_synced: a Bcc recipient and sync_bcc is off",
    ]


def test_the_type_mode_and_tasks_are_stated():
    text = explain("e1", events_of([event()]), CRM, settings_of())
    assert lines(text)[:2] == [
        f"event e1: sent from rep@acme.com at {TIME}",
        "mode: shared (shared activities on)",
    ]
    assert "Contacts share Tasks in batches of 50" in lines(text)[2]
    assert "tasks (2):" in lines(text)
    assert (
        f"  {task_key('acme', 'e1', 'b0', '006A')} WhoId 003A WhatId 006A who_count 2 batch 0 "
        "OwnerId 005A 2024-05-01 'Email: Pricing'"
    ) in lines(text)


def test_r14_a_meeting_attendee_is_shown_on_the_salesforce_event_it_went_to():
    meeting = event(
        "m1",
        type="meeting",
        recipients=[
            {"email": "ann@client.com", "field": "to", "response": "declined"},
            {"email": "bob@client.com", "field": "to", "response": "accepted"},
            {"email": "hal@prospect.io", "field": "to"},
        ],
        subject="Kickoff",
        starts_at="2024-05-02T09:00:00+02:00",
        location="Room 4",
    )
    text = explain("m1", events_of([meeting]), CRM, settings_of())
    assert "a meeting becomes Salesforce Events" in lines(text)[2]
    shared, alone = event_key("acme", "m1", "b0", "001B"), event_key("acme", "m1", "w00QA", None)
    assert lines(text)[4:7] == [
        "  #0 to    ann@client.com -> declined: the attendee declined the meeting, so the "
        "Salesforce Event leaves them out",
        f"  #1 to    bob@client.com -> Contact 003B, primary of batch 0, on Salesforce Event "
        f"{shared} (WhatId 001B)",
        f"  #2 to    hal@prospect.io -> Lead 00QA, primary, on Salesforce Event {alone} (WhatId -)",
    ]
    assert "salesforce events (2):" in lines(text)
    assert (
        f"  {shared} WhoId 003B WhatId 001B who_count 1 batch 0 OwnerId 005A from "
        "2024-05-02T07:00:00.000Z to 2024-05-02T07:30:00.000Z (30 min) at Room 4 "
        "'Meeting: Kickoff'"
    ) in lines(text)


def test_a_meeting_without_r14_still_shows_one_task_per_attendee():
    meeting = event("m1", type="meeting", recipients=[{"email": "ann@client.com", "field": "to"}])
    text = explain("m1", events_of([meeting]), CRM, settings_of(meetings_as_events=False))
    assert "one Task per attendee" in lines(text)[2]
    assert "tasks (1):" in lines(text)


def test_r1_individual_mode_says_which_side_is_off_and_makes_a_task_each():
    text = explain(
        "e1", events_of([event()]), CRM, settings_of(), salesforce_shared_activities=False
    )
    assert "mode: individual (Salesforce org has Shared Activities off)" in lines(text)
    assert "tasks (3):" in lines(text)
    assert "batch" not in text.split("recipients:")[1].split("tasks")[0]


def test_an_actor_event_shows_the_actor():
    click = event(
        "e2", type="click", recipients=None, actor="bob@client.com", url="https://acme.com/a"
    )
    text = explain("e2", events_of([click]), CRM, settings_of())
    assert "actor:" in lines(text)
    assert any(
        line.startswith("  #0 actor bob@client.com -> Contact 003B, primary,")
        for line in lines(text)
    )


def test_a_rejected_event_gives_the_reason_and_detail():
    text = explain("e3", events_of([event("e3", org_id="globex")]), CRM, settings_of())
    assert lines(text)[-1] == "rejected: wrong_org: org_id 'globex' is not 'acme'"


def test_later_rows_with_the_same_event_id_are_mentioned():
    rows = [event(), event(subject="again"), event("e9")]
    text = explain("e1", events_of(rows), CRM, settings_of())
    assert lines(text)[-1] == "1 later row(s) with this event_id: duplicate_event, ignored"
    assert "'Email: again'" not in text


def test_an_event_id_not_in_the_events_is_an_error_naming_it():
    with pytest.raises(UnknownEventError, match="'nope'"):
        explain("nope", events_of([event()]), CRM, settings_of())
