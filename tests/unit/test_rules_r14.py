"""R14, meetings as shared Salesforce Events: one small hand-made example per point of the
rule, run against both planners like test_rules.py.

Salesforce facts pinned here come from the Event object reference
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_event.htm):
Subject and Location hold 255 characters, Description 32,000; an all-day Event's start is
midnight UTC and StartDateTime + DurationInMinutes must match EndDateTime; "Multiday events
can't exceed 14 days". Salesforce's dates run from 1700-01-01 to 4000-12-31
(https://help.salesforce.com/s/articleView?id=000383587&type=1). A field's length is counted
in UTF-16 code units, so a character past U+FFFF takes two of the 255.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from strategies import comparable, crm_of, events_of, settings_of

from activity_sync import lake
from activity_sync import plan as product
from activity_sync.plan import read_plan, write_plan
from activity_sync.schema import (
    EVENT_KEY_MAX,
    EVENT_RELATION_COLUMNS,
    SALESFORCE_EVENT_COLUMNS,
    event_key,
    task_key,
)


def contact(id: str, email: str, account: str | None = "001A") -> dict[str, Any]:
    return {"Id": id, "Email": email, "AccountId": account, "LastModifiedDate": "2024-01-01"}


def opp(id: str, account: str) -> dict[str, Any]:
    return {
        "Id": id,
        "AccountId": account,
        "Name": f"Deal {id}",
        "IsClosed": False,
        "CloseDate": "2024-12-31",
        "OwnerId": None,
    }


CLIENT = [
    contact("003A", "ann@client.com"),
    contact("003B", "bob@client.com"),
    contact("003C", "cat@client.com"),
    contact("003D", "dan@other.org", "001B"),
]
HAL = {"Id": "00QH", "Email": "hal@prospect.io", "IsConverted": False, "LastModifiedDate": "2024"}


def org(**objects: Any):
    objects.setdefault("contacts", CLIENT)
    objects.setdefault("leads", [HAL])
    objects.setdefault("users", [{"Id": "005R", "Email": "rep@acme.com", "IsActive": True}])
    return crm_of(**objects)


def meeting(*attendees: str | tuple[str, str], event_id: str = "m1", **fields: Any):
    """A meeting; an attendee is an address, or (address, response), or (address, "bcc")."""
    recipients = []
    for attendee in attendees:
        email, extra = attendee if isinstance(attendee, tuple) else (attendee, None)
        entry = {"email": email, "field": "bcc" if extra == "bcc" else "to"}
        if extra not in (None, "bcc"):
            entry["response"] = extra
        recipients.append(entry)
    return {
        "event_id": event_id,
        "org_id": "acme",
        "type": "meeting",
        "occurred_at": "2024-05-01T12:00:00Z",
        "sender": "rep@acme.com",
        "recipients": recipients,
        "subject": "Kickoff",
        "body": "Agenda attached",
        **fields,
    }


def run(planner, rows: list[dict[str, Any]], crm=None, *, salesforce: bool = True, **settings):
    return planner(
        events_of(rows),
        crm if crm is not None else org(),
        settings_of(**settings),
        salesforce_shared_activities=salesforce,
    )


def salesforce_events(plan) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(WhoId, WhatId, RelationIds by position) per Salesforce Event, sorted."""
    relations: dict[str, list[str]] = {}
    for r in comparable(plan)["event_relations"]:
        relations.setdefault(r["event_key"], []).append(r["RelationId"])
    return sorted(
        (e["WhoId"], e["WhatId"], tuple(relations[e["event_key"]]))
        for e in comparable(plan)["salesforce_events"]
    )


def only_event(plan) -> dict[str, Any]:
    (event,) = comparable(plan)["salesforce_events"]
    return event


def rejected(plan) -> list[tuple[str | None, str | None, str]]:
    return comparable(plan)["rejected"]


# --------------------------------------------------------------------------- one shared Event


def test_r14_a_meeting_with_three_contacts_is_one_salesforce_event_shared_by_them(planner):
    plan = run(planner, [meeting("ann@client.com", "bob@client.com", "cat@client.com")])
    assert salesforce_events(plan) == [("003A", "001A", ("003A", "003B", "003C"))]
    assert [r["is_primary"] for r in comparable(plan)["event_relations"]] == [True, False, False]
    assert only_event(plan)["who_count"] == 3 and only_event(plan)["batch_index"] == 0
    # A meeting made an Event is in neither tasks.parquet nor task_relations.parquet.
    assert plan.tasks.empty and plan.relations.empty
    assert (plan.summary["salesforce_events"], plan.summary["event_relations"]) == (1, 3)
    assert plan.summary["tasks"] == 0


def test_r14_the_event_fields_come_from_the_meeting(planner):
    plan = run(planner, [meeting("ann@client.com", location="  Room 4 ")])
    assert only_event(plan) | {"event_key": None} == {
        "event_key": None,
        "org_id": "acme",
        "event_id": "m1",
        "WhoId": "003A",
        "WhatId": "001A",
        "OwnerId": "005R",
        "Subject": "Meeting: Kickoff",
        "Description": "Agenda attached",
        # An old meeting line: it starts at occurred_at and lasts 30 minutes.
        "StartDateTime": "2024-05-01T12:00:00.000Z",
        "EndDateTime": "2024-05-01T12:30:00.000Z",
        "DurationInMinutes": 30,
        "IsAllDayEvent": False,
        "ActivityDate": None,
        "Location": "Room 4",
        "EventSubtype": "Event",
        "who_count": 1,
        "batch_index": 0,
    }


def test_r14_sixty_contacts_make_an_event_of_fifty_and_one_of_ten(planner):
    crm = org(contacts=[contact(f"003{i:03d}", f"p{i:03d}@client.com") for i in range(60)])
    plan = run(planner, [meeting(*[f"p{i:03d}@client.com" for i in range(60)])], crm)
    events = sorted(comparable(plan)["salesforce_events"], key=lambda e: e["batch_index"])
    assert [(e["WhoId"], e["who_count"], e["batch_index"]) for e in events] == [
        ("003000", 50, 0),
        ("003050", 10, 1),
    ]
    assert plan.summary["event_relations"] == 60


def test_r14_a_declined_attendee_is_not_related_and_is_rejected_as_declined(planner):
    rows = [
        meeting(("ann@client.com", "declined"), ("bob@client.com", "accepted"), "cat@client.com")
    ]
    plan = run(planner, rows)
    # Bob, the first attendee who did not decline, is the primary.
    assert salesforce_events(plan) == [("003B", "001A", ("003B", "003C"))]
    assert rejected(plan) == [("m1", "ann@client.com", "declined")]
    assert plan.summary["rejected_by_reason"] == {"declined": 1}


def test_r14_tentative_and_none_responses_are_related(planner):
    rows = [meeting(("ann@client.com", "tentative"), ("bob@client.com", "none"))]
    assert salesforce_events(run(planner, rows)) == [("003A", "001A", ("003A", "003B"))]


def test_r14_a_repeated_attendee_keeps_the_response_of_its_first_place(planner):
    rows = [meeting(("ann@client.com", "declined"), "bob@client.com", "ANN@client.com")]
    plan = run(planner, rows)
    assert salesforce_events(plan) == [("003B", "001A", ("003B",))]
    assert rejected(plan) == [("m1", "ann@client.com", "declined")]


def test_r14_exclusions_bcc_and_matching_apply_as_for_tasks(planner):
    rows = [
        meeting(
            "ceo@client.com",  # excluded: never on the Event, not even as primary
            ("cat@client.com", "bcc"),  # Bcc without sync_bcc
            "bad address",
            "stranger@client.com",
            "  BOB@Client.com ",
            "ann@client.com",
        )
    ]
    crm = org(contacts=[*CLIENT, contact("003X", "ceo@client.com")])
    plan = run(planner, rows, crm, exclusions=["ceo@client.com"])
    assert salesforce_events(plan) == [("003B", "001A", ("003B", "003A"))]
    assert rejected(plan) == [
        ("m1", "bad address", "invalid_email"),
        ("m1", "cat@client.com", "bcc_not_synced"),
        ("m1", "ceo@client.com", "excluded"),
        ("m1", "stranger@client.com", "unmatched"),
    ]


def test_r14_an_excluded_attendee_who_declined_counts_as_excluded(planner):
    plan = run(planner, [meeting(("ann@client.com", "declined"))], exclusions=["client.com"])
    assert rejected(plan) == [("m1", "ann@client.com", "excluded")]


def test_r14_bcc_attendees_are_related_with_sync_bcc(planner):
    rows = [meeting("ann@client.com", ("bob@client.com", "bcc"))]
    plan = run(planner, rows, sync_bcc=True)
    assert salesforce_events(plan) == [("003A", "001A", ("003A", "003B"))]


def test_r14_each_lead_gets_its_own_event_never_shared(planner):
    plan = run(planner, [meeting("hal@prospect.io", "ann@client.com", "bob@client.com")])
    assert salesforce_events(plan) == [
        ("003A", "001A", ("003A", "003B")),
        ("00QH", None, ("00QH",)),
    ]


def test_r14_related_to_fans_out_one_event_per_opportunity_of_the_primarys_account(planner):
    crm = org(opportunities=[opp("006A", "001A"), opp("006B", "001A"), opp("006D", "001B")])
    plan = run(planner, [meeting("ann@client.com", "dan@other.org")], crm)
    # R8 by the primary alone; R9: Dan of another Account rides on Ann's Events.
    assert salesforce_events(plan) == [
        ("003A", "006A", ("003A", "003D")),
        ("003A", "006B", ("003A", "003D")),
    ]
    events = comparable(plan)["salesforce_events"]
    assert len({e["event_key"] for e in events}) == 2


def test_r14_an_attendee_of_another_account_as_primary_relates_to_its_own_account(planner):
    plan = run(planner, [meeting("dan@other.org", "ann@client.com")])
    assert salesforce_events(plan) == [("003D", "001B", ("003D", "003A"))]


def test_r14_a_sender_who_is_no_active_user_leaves_the_owner_empty(planner):
    plan = run(planner, [meeting("ann@client.com", sender="temp@acme.com")])
    assert only_event(plan)["OwnerId"] is None


# --------------------------------------------------------------------------- when R14 applies


def test_r14_individual_mode_keeps_one_task_per_attendee_declined_or_not(planner):
    rows = [meeting(("ann@client.com", "declined"), "bob@client.com")]
    plan = run(planner, rows, salesforce=False)
    assert plan.salesforce_events.empty and plan.event_relations.empty
    assert sorted(plan.tasks["WhoId"]) == ["003A", "003B"]
    assert set(plan.tasks["TaskSubtype"]) == {"Task"}
    assert rejected(plan) == []


def test_r14_the_setting_off_keeps_one_task_per_attendee(planner):
    rows = [meeting(("ann@client.com", "declined"), "bob@client.com")]
    plan = run(planner, rows, meetings_as_events=False)
    assert plan.salesforce_events.empty
    assert sorted(plan.tasks["WhoId"]) == ["003A", "003B"]
    assert (
        plan.summary["salesforce_events"] == plan.summary["individual_mode_salesforce_events"] == 0
    )


def test_r14_emails_are_unaffected_by_the_setting(planner):
    sent = meeting("ann@client.com", "bob@client.com", type="sent", event_id="s1")
    on, off = (run(planner, [sent], meetings_as_events=flag) for flag in (True, False))
    assert comparable(on) == comparable(off)
    assert on.salesforce_events.empty and len(on.tasks) == 1


# --------------------------------------------------------------------------- the meeting's fields


@pytest.mark.parametrize(
    ("fields", "start", "end", "minutes"),
    [
        # Offsets become UTC; seconds are dropped, as DurationInMinutes counts whole minutes.
        (
            {"starts_at": "2024-05-01T09:00:45-07:00", "ends_at": "2024-05-01T10:15:10-07:00"},
            "2024-05-01T16:00:00.000Z",
            "2024-05-01T17:15:00.000Z",
            75,
        ),
        # ends_at defaults to 30 minutes after starts_at, not after occurred_at.
        (
            {"starts_at": "2024-05-02T08:00:00Z"},
            "2024-05-02T08:00:00.000Z",
            "2024-05-02T08:30:00.000Z",
            30,
        ),
        # ends_at alone: the meeting starts at occurred_at.
        (
            {"ends_at": "2024-05-01T14:00:00+00:00"},
            "2024-05-01T12:00:00.000Z",
            "2024-05-01T14:00:00.000Z",
            120,
        ),
        # Exactly 14 days is the longest Salesforce Event.
        (
            {"ends_at": "2024-05-15T12:00:00Z"},
            "2024-05-01T12:00:00.000Z",
            "2024-05-15T12:00:00.000Z",
            20160,
        ),
    ],
)
def test_r14_starts_at_and_ends_at_set_the_event_times(planner, fields, start, end, minutes):
    event = only_event(run(planner, [meeting("ann@client.com", **fields)]))
    assert (event["StartDateTime"], event["EndDateTime"]) == (start, end)
    assert event["DurationInMinutes"] == minutes and event["IsAllDayEvent"] is False


@pytest.mark.parametrize(
    ("fields", "day", "end", "days"),
    [
        # One day, taken in the org's zone: 17:00 in Los Angeles on May 1 is May 2 in UTC.
        ({"starts_at": "2024-05-02T00:00:00Z"}, "2024-05-01", "2024-05-02T00:00:00.000Z", 1),
        # An end at midnight is exclusive, as calendars send all-day ends.
        (
            {"starts_at": "2024-05-01T00:00:00-07:00", "ends_at": "2024-05-03T00:00:00-07:00"},
            "2024-05-01",
            "2024-05-03T00:00:00.000Z",
            2,
        ),
        # An end inside a day includes that day.
        (
            {"starts_at": "2024-05-01T09:00:00-07:00", "ends_at": "2024-05-02T09:00:00-07:00"},
            "2024-05-01",
            "2024-05-03T00:00:00.000Z",
            2,
        ),
    ],
)
def test_r14_an_all_day_meeting_covers_its_days_in_the_org_time_zone(
    planner, fields, day, end, days
):
    rows = [meeting("ann@client.com", is_all_day=True, **fields)]
    event = only_event(run(planner, rows, timezone="America/Los_Angeles"))
    assert event["IsAllDayEvent"] is True and event["ActivityDate"] == day
    # Midnight UTC of the first day; start + duration = end, as Salesforce requires.
    assert event["StartDateTime"] == f"{day}T00:00:00.000Z"
    assert (event["EndDateTime"], event["DurationInMinutes"]) == (end, days * 1440)


def test_r14_location_subject_and_description_are_cut_as_salesforce_counts_them(planner):
    pin = "\U0001f4cd"  # past U+FFFF: two UTF-16 code units
    rows = [meeting("ann@client.com", location=pin * 200, subject=pin * 200, body="é" * 40_000)]
    event = only_event(run(planner, rows))
    assert event["Location"] == pin * 127  # 254 units: the 128th would split a pair
    assert event["Subject"] == "Meeting: " + pin * 123
    assert len(event["Subject"].encode("utf-16-le")) // 2 == 255
    assert event["Description"] == "é" * 32_000


def test_r14_a_blank_location_is_left_empty(planner):
    assert only_event(run(planner, [meeting("ann@client.com", location="   ")]))["Location"] is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"starts_at": "2024-05-01T09:00:00"}, "starts_at"),  # no offset
        ({"ends_at": 1714557600}, "ends_at"),
        ({"ends_at": "2024-05-01T11:00:00Z"}, "ends_at"),  # before occurred_at
        ({"ends_at": "2024-05-01T12:00:00Z"}, "ends_at"),  # zero minutes
        ({"ends_at": "2024-05-15T12:01:00Z"}, "ends_at"),  # a minute over 14 days
        ({"is_all_day": True, "ends_at": "2024-05-16T00:00:00Z"}, "ends_at"),  # 15 days
        ({"is_all_day": "yes"}, "is_all_day"),
        ({"location": 7}, "location"),
        ({"starts_at": "1699-12-31T23:00:00Z"}, "starts_at"),  # before Salesforce's dates
        ({"starts_at": "4000-12-31T23:50:00Z"}, "starts_at"),  # ends past them
    ],
)
def test_r14_an_unusable_meeting_field_rejects_the_meeting_naming_the_field(planner, fields, named):
    plan = run(
        planner, [meeting("ann@client.com", **fields), meeting("bob@client.com", event_id="m2")]
    )
    assert rejected(plan) == [("m1", None, "invalid_field")]
    assert named in plan.rejected["detail"].iloc[0]
    assert list(plan.salesforce_events["event_id"]) == ["m2"]


@pytest.mark.parametrize(
    "starts_at",
    ["9999-12-31T23:30:00-05:00", "0001-01-01T00:30:00+01:00", "1699-12-31T23:00:00Z"],
    ids=["year 10000 in UTC", "year 0 in UTC", "before 1700"],
)
def test_r14_a_meeting_time_past_salesforce_dates_is_named_as_such_like_occurred_at(starts_at):
    """As for occurred_at (issue 12): a valid time Salesforce cannot hold is said to be
    outside its dates, also when its UTC instant leaves Python's calendar."""
    plan = run(product.plan, [meeting("ann@client.com", starts_at=starts_at)])
    assert rejected(plan) == [("m1", None, "invalid_field")]
    assert (
        "fall outside Salesforce's dates, 1700-01-01 to 4000-12-31"
        in plan.rejected["detail"].iloc[0]
    )


def test_r14_an_unknown_response_rejects_the_meeting_naming_the_attendee(planner):
    plan = run(planner, [meeting("ann@client.com", ("bob@client.com", "maybe"))])
    assert rejected(plan) == [("m1", None, "invalid_field")]
    assert "recipients[1].response" in plan.rejected["detail"].iloc[0]


@pytest.mark.parametrize("event_type", ["meeting", "sent"])
def test_r14_a_response_that_is_no_string_makes_the_recipients_invalid(planner, event_type):
    row = meeting("ann@client.com", type=event_type)
    row["recipients"][0]["response"] = 1
    assert rejected(run(planner, [row])) == [("m1", None, "invalid_field")]


def test_r14_meeting_fields_are_judged_in_individual_mode_too(planner):
    rows = [meeting("ann@client.com", starts_at="soon")]
    assert rejected(run(planner, rows, salesforce=False)) == [("m1", None, "invalid_field")]


def test_r14_other_events_ignore_the_meeting_fields(planner):
    sent = meeting("ann@client.com", type="sent", starts_at="soon", is_all_day="yes", location=7)
    sent["recipients"][0]["response"] = "maybe"
    plan = run(planner, [sent])
    assert rejected(plan) == [] and len(plan.tasks) == 1


# --------------------------------------------------------------------------- keys and counts


def test_r14_event_keys_are_deterministic_apart_from_task_keys_and_at_most_80(planner):
    crm = org(opportunities=[opp("006A", "001A")])
    rows = [meeting("ann@client.com", "hal@prospect.io")]
    plan = run(planner, rows, crm)
    keys = sorted(e["event_key"] for e in comparable(plan)["salesforce_events"])
    assert keys == sorted(
        [event_key("acme", "m1", "b0", "006A"), event_key("acme", "m1", "w00QH", None)]
    )
    assert max(len(k) for k in keys) <= EVENT_KEY_MAX
    assert event_key("acme", "m1", "b0", "006A") != task_key("acme", "m1", "b0", "006A")
    assert comparable(run(planner, rows, crm)) == comparable(plan)


def test_r14_summary_counts_salesforce_events_and_what_individual_mode_would_make(planner):
    crm = org(opportunities=[opp("006A", "001A"), opp("006B", "001A")])
    rows = [
        # Ann, Bob (Account 001A, two Opportunities) and the Lead: 2 shared Events + 1.
        # Individual mode: Ann 2, Bob 2, Cat (declined) 2, Hal 1 = 7 Tasks.
        meeting(
            "ann@client.com", "bob@client.com", ("cat@client.com", "declined"), "hal@prospect.io"
        ),
        meeting("dan@other.org", type="sent", event_id="s1", sender="boss@acme.com"),
    ]
    plan = run(planner, rows, crm)
    assert {k: plan.summary[k] for k in ("salesforce_events", "event_relations", "tasks")} == {
        "salesforce_events": 3,
        "event_relations": 2 * 2 + 1,
        "tasks": 1,
    }
    assert plan.summary["individual_mode_salesforce_events"] == 7
    assert plan.summary["individual_mode_tasks"] == 1
    individual = run(planner, rows, crm, salesforce=False)
    assert individual.summary["tasks"] == 7 + 1


def test_r14_summary_per_sender_splits_tasks_and_salesforce_events():
    rows = [
        meeting("ann@client.com", "bob@client.com"),
        meeting("dan@other.org", type="sent", event_id="s1", sender=" Boss@acme.com"),
    ]
    summary = run(product.plan, rows).summary
    assert summary["individual_mode_salesforce_events_by_sender"] == {
        "boss@acme.com": 0,
        "rep@acme.com": 2,
    }
    assert summary["individual_mode_tasks_by_sender"] == {"boss@acme.com": 1, "rep@acme.com": 0}


def test_r14_every_plan_folder_has_both_files_empty_or_not(tmp_path):
    for name, rows in (
        ("none", [meeting("ann@client.com", type="sent")]),
        ("some", [meeting("ann@client.com")]),
    ):
        written = run(product.plan, rows)
        write_plan(written, tmp_path / name)
        back = read_plan(tmp_path / name)
        assert list(back.salesforce_events.columns) == SALESFORCE_EVENT_COLUMNS
        assert list(back.event_relations.columns) == EVENT_RELATION_COLUMNS
        assert comparable(back) == comparable(written)
        pd.testing.assert_frame_equal(back.salesforce_events, written.salesforce_events)
    assert read_plan(tmp_path / "none").salesforce_events.empty
    assert len(read_plan(tmp_path / "some").salesforce_events) == 1


def test_r14_a_plan_folder_from_before_r14_reads_with_no_salesforce_events(tmp_path):
    """A retry or backfill may load an hour planned before the upgrade."""
    written = run(product.plan, [meeting("ann@client.com", type="sent")])
    write_plan(written, tmp_path)
    for name in (lake.PLAN_SALESFORCE_EVENTS, lake.PLAN_EVENT_RELATIONS):
        (tmp_path / name).unlink()
    back = read_plan(tmp_path)
    assert comparable(back) == comparable(written)
    pd.testing.assert_frame_equal(back.salesforce_events, written.salesforce_events)
    pd.testing.assert_frame_equal(back.event_relations, written.event_relations)
