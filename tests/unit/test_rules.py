"""The rules R1–R5 (docs/rules.md), one small hand-made example each, run against both planners.

Every test takes the ``planner`` fixture, so the row-by-row oracle (reference.plan) and
the vectorised product (plan.plan) are held to the same examples; the bullets of the
seed article's "How Mixmax syncs shared activities" and "Additional information" sections
are cited where a test pins one. R6–R13 and event validation: test_rules_batches_and_related.py.
"""

from __future__ import annotations

import pytest
from rule_examples import (
    CLIENT,
    acted,
    contact,
    lead,
    opp,
    org,
    people,
    rejected,
    run,
    sent,
    user,
)
from strategies import comparable

# --------------------------------------------------------------------------- R1 mode


def test_r1_email_to_three_contacts_is_one_shared_task_when_both_settings_allow_it(planner):
    plan = run(planner, [sent("ann@client.com", "bob@client.com", "cat@client.com")], org())
    assert people(plan) == [("003A", "001A", ("003A", "003B", "003C"))]
    assert plan.summary["mode"] == "shared"


def test_r1_setting_off_in_salesforce_makes_one_task_per_contact(planner):
    plan = run(planner, [sent("ann@client.com", "bob@client.com")], org(), salesforce=False)
    assert people(plan) == [("003A", "001A", ("003A",)), ("003B", "001A", ("003B",))]
    assert plan.summary["mode"] == "individual"


def test_r1_setting_off_for_the_tenant_makes_one_task_per_contact(planner):
    plan = run(planner, [sent("ann@client.com", "bob@client.com")], org(), shared_activities=False)
    assert people(plan) == [("003A", "001A", ("003A",)), ("003B", "001A", ("003B",))]
    assert plan.summary["mode"] == "individual"


# --------------------------------------------------------------------------- R2 shared events


def test_r2_internal_reply_to_several_contacts_is_one_shared_task(planner):
    plan = run(planner, [sent("ann@client.com", "bob@client.com", type="internal_reply")], org())
    assert people(plan) == [("003A", "001A", ("003A", "003B"))]


@pytest.mark.parametrize("event_type", ["reply", "open", "click", "download", "bounce"])
def test_r2_other_email_activity_makes_one_task_for_the_contact_who_acted(planner, event_type):
    plan = run(planner, [acted(event_type, "bob@client.com")], org())
    assert people(plan) == [("003B", "001A", ("003B",))]
    assert comparable(plan)["tasks"][0]["who_count"] == 1


@pytest.mark.parametrize("event_type", ["reply", "open", "click", "download", "bounce"])
def test_r2_other_email_activity_makes_one_task_for_the_lead_who_acted(planner, event_type):
    plan = run(
        planner,
        [acted(event_type, "hal@prospect.io")],
        org(leads=[lead("00QH", "hal@prospect.io")]),
    )
    assert people(plan) == [("00QH", None, ("00QH",))]


def test_r2_calendar_events_are_not_shared_but_one_task_per_attendee_without_r14(planner):
    meeting = sent("ann@client.com", "bob@client.com", type="meeting")
    plan = run(planner, [meeting], org(), meetings_as_events=False)
    assert people(plan) == [("003A", "001A", ("003A",)), ("003B", "001A", ("003B",))]
    assert {t["TaskSubtype"] for t in comparable(plan)["tasks"]} == {"Task"}
    assert plan.summary["shared_tasks"] == 0


@pytest.mark.parametrize(
    ("timezone", "occurred_at", "day"),
    [
        ("America/Los_Angeles", "2024-05-02T03:30:00Z", "2024-05-01"),
        ("Asia/Tokyo", "2024-05-01T16:30:00-00:00", "2024-05-02"),
        ("UTC", "2024-05-01T23:30:00-02:00", "2024-05-02"),
    ],
)
def test_r2_task_fields_come_from_the_event_and_the_org_time_zone(
    planner, timezone, occurred_at, day
):
    crm = org(
        users=[
            user("005Z", "rep@acme.com", active=False),
            user("005R", " Rep@Acme.com"),
            user("005Q", "rep@acme.com"),
        ]
    )
    click = acted("click", "ann@client.com", occurred_at=occurred_at, url="https://acme.com/p")
    plan = run(planner, [click], crm, timezone=timezone)
    (task,) = comparable(plan)["tasks"]
    assert task["ActivityDate"] == day
    assert task["OwnerId"] == "005Q"  # the lowest Id among the sender's active Users
    assert task["Subject"] == "Link clicked: Pricing"
    assert task["Description"] == "Clicked https://acme.com/p"
    assert (task["Status"], task["TaskSubtype"], task["event_type"]) == (
        "Completed",
        "Email",
        "click",
    )


def test_r2_a_sender_who_is_no_active_user_leaves_the_owner_empty(planner):
    crm = org(users=[user("005R", "rep@acme.com", active=False)])
    plan = run(planner, [sent("ann@client.com")], crm)
    assert comparable(plan)["tasks"][0]["OwnerId"] is None


# --------------------------------------------------------------------------- R3 recipients


def test_r3_addresses_are_trimmed_and_matched_without_case(planner):
    plan = run(planner, [sent("  ANN@Client.com ", "\tbob@CLIENT.COM")], org())
    assert people(plan) == [("003A", "001A", ("003A", "003B"))]
    assert rejected(plan) == []


def test_r3_recipients_keep_the_order_the_message_lists_them(planner):
    plan = run(planner, [sent("cat@client.com", "ann@client.com", cc=["bob@client.com"])], org())
    assert people(plan) == [("003C", "001A", ("003C", "003A", "003B"))]


def test_r3_a_repeated_address_counts_once_and_its_first_place_wins(planner):
    plan = run(
        planner,
        [sent("ann@client.com", "bob@client.com", cc=["ANN@client.com "], bcc=["bob@client.com"])],
        org(),
    )
    assert people(plan) == [("003A", "001A", ("003A", "003B"))]
    assert rejected(plan) == []


def test_r3_an_address_first_listed_in_bcc_stays_off_even_when_repeated_in_to(planner):
    recipients = [
        {"email": "bob@client.com", "field": "bcc"},
        {"email": "ann@client.com", "field": "to"},
        {"email": "Bob@client.com", "field": "to"},
    ]
    plan = run(planner, [sent() | {"recipients": recipients}], org())
    assert people(plan) == [("003A", "001A", ("003A",))]
    assert rejected(plan) == [("e1", "bob@client.com", "bcc_not_synced")]


def test_r3_an_invalid_address_is_rejected_as_invalid_email(planner):
    plan = run(planner, [sent("ann@client", "ann@client.com", "two words@client.com")], org())
    assert people(plan) == [("003A", "001A", ("003A",))]
    assert rejected(plan) == [
        ("e1", "ann@client", "invalid_email"),
        ("e1", "two words@client.com", "invalid_email"),
    ]


def test_r3_bcc_recipients_are_left_out_without_sync_bcc(planner):
    plan = run(planner, [sent("ann@client.com", bcc=["bob@client.com", "nobody@client"])], org())
    assert people(plan) == [("003A", "001A", ("003A",))]
    # bcc_not_synced comes first in the precedence, even for an invalid address.
    assert rejected(plan) == [
        ("e1", "bob@client.com", "bcc_not_synced"),
        ("e1", "nobody@client", "bcc_not_synced"),
    ]


def test_r3_bcc_recipients_are_related_with_sync_bcc(planner):
    plan = run(planner, [sent("ann@client.com", bcc=["bob@client.com"])], org(), sync_bcc=True)
    assert people(plan) == [("003A", "001A", ("003A", "003B"))]


# --------------------------------------------------------------------------- R4 exclusions


def test_r4_an_excluded_address_never_appears_on_a_task(planner):
    plan = run(
        planner, [sent("ann@client.com", "bob@client.com")], org(), exclusions=["BOB@client.com"]
    )
    assert people(plan) == [("003A", "001A", ("003A",))]
    assert rejected(plan) == [("e1", "bob@client.com", "excluded")]
    assert plan.summary["recipients_excluded"] == 1


def test_r4_an_excluded_domain_covers_its_subdomains(planner):
    crm = org(
        contacts=CLIENT
        + [contact("003E", "eve@competitor.com"), contact("003F", "fay@eu.competitor.com")]
    )
    plan = run(
        planner,
        [sent("eve@competitor.com", "fay@eu.competitor.com", "ann@client.com")],
        crm,
        exclusions=["competitor.com"],
    )
    assert people(plan) == [("003A", "001A", ("003A",))]
    assert [r[2] for r in rejected(plan)] == ["excluded", "excluded"]


def test_r4_a_domain_that_only_ends_with_the_excluded_name_is_not_excluded(planner):
    crm = org(contacts=[contact("003G", "gil@notcompetitor.com", "001A")])
    plan = run(planner, [sent("gil@notcompetitor.com")], crm, exclusions=["competitor.com"])
    assert people(plan) == [("003G", "001A", ("003G",))]


def test_r4_system_addresses_are_excluded_with_or_without_a_plus_tag(planner):
    crm = org(
        contacts=CLIENT
        + [
            contact("003N", "noreply@client.com", "001A"),
            contact("003M", "notifications+crm@client.com", "001A"),
        ]
    )
    plan = run(
        planner, [sent("noreply@client.com", "notifications+crm@client.com", "ann@client.com")], crm
    )
    assert people(plan) == [("003A", "001A", ("003A",))]
    assert plan.summary["recipients_excluded"] == 2


def test_r4_system_addresses_sync_when_their_exclusion_is_off(planner):
    crm = org(contacts=[contact("003N", "noreply@client.com", "001A")])
    plan = run(planner, [sent("noreply@client.com")], crm, exclude_system_addresses=False)
    assert people(plan) == [("003N", "001A", ("003N",))]


def test_r4_an_excluded_actor_gets_no_task(planner):
    plan = run(planner, [acted("open", "Bob@client.com")], org(), exclusions=["client.com"])
    assert people(plan) == []
    assert rejected(plan) == [("e1", "bob@client.com", "excluded")]
    assert plan.summary["events"] == 1 and plan.summary["events_rejected"] == 0


def test_r4_an_excluded_first_recipient_makes_the_next_one_primary(planner):
    crm = org(opportunities=[opp("006D", "001B")])
    plan = run(
        planner,
        [sent("ann@client.com", "dan@other.org", "bob@client.com")],
        crm,
        exclusions=["ann@client.com"],
    )
    assert people(plan) == [("003D", "006D", ("003D", "003B"))]


def test_r4_the_primary_is_the_first_valid_matched_recipient(planner):
    """Article: "The first valid recipient email address found would be considered the Primary Contact"."""
    plan = run(
        planner,
        [sent("not-an-email", "stranger@client.com", "bob@client.com", "ann@client.com")],
        org(),
    )
    assert people(plan) == [("003B", "001A", ("003B", "003A"))]
    assert rejected(plan) == [
        ("e1", "not-an-email", "invalid_email"),
        ("e1", "stranger@client.com", "unmatched"),
    ]


# --------------------------------------------------------------------------- R5 matching


def test_r5_the_most_recently_modified_of_two_contacts_with_one_email_wins(planner):
    crm = org(
        contacts=[
            contact("003A", "ann@client.com", "001A", "2024-01-01"),
            contact("003X", "Ann@Client.com", "001B", "2024-04-01"),
        ]
    )
    plan = run(planner, [sent("ann@client.com")], crm)
    assert people(plan) == [("003X", "001B", ("003X",))]


def test_r5_equally_recent_contacts_fall_back_to_the_lowest_id(planner):
    crm = org(
        contacts=[
            contact("003Y", "ann@client.com", "001B", "2024-04-01"),
            contact("003X", "ann@client.com", "001A", "2024-04-01"),
            contact("003W", "ann@client.com", "001B", "2023-01-01"),
        ]
    )
    plan = run(planner, [sent("ann@client.com")], crm)
    assert people(plan) == [("003X", "001A", ("003X",))]


def test_r5_a_contact_beats_a_lead_with_the_same_email(planner):
    crm = org(leads=[lead("00QA", "ann@client.com", modified="2025-01-01")])
    plan = run(planner, [acted("reply", "ann@client.com")], crm)
    assert people(plan) == [("003A", "001A", ("003A",))]


def test_r5_a_converted_lead_is_ignored(planner):
    crm = org(
        leads=[
            lead("00QH", "hal@prospect.io", converted=True, modified="2025-01-01"),
            lead("00QI", "ida@prospect.io", converted=True),
        ]
    )
    plan = run(planner, [sent("hal@prospect.io", "ida@prospect.io")], crm)
    assert people(plan) == []
    assert rejected(plan) == [
        ("e1", "hal@prospect.io", "unmatched"),
        ("e1", "ida@prospect.io", "unmatched"),
    ]


def test_r5_unconverted_leads_use_the_same_tie_break(planner):
    crm = org(
        leads=[
            lead("00QB", "hal@prospect.io", modified="2024-03-01"),
            lead("00QC", "hal@prospect.io", converted=True, modified="2025-01-01"),
            lead("00QA", "HAL@prospect.io", modified="2024-03-01"),
        ]
    )
    plan = run(planner, [sent("hal@prospect.io")], crm)
    assert people(plan) == [("00QA", None, ("00QA",))]


def test_r5_an_address_nobody_has_is_unmatched(planner):
    crm = org(contacts=CLIENT + [contact("003E", None, "001A"), contact("003F", "", "001A")])
    plan = run(planner, [sent("stranger@client.com")], crm)
    assert people(plan) == []
    assert rejected(plan) == [("e1", "stranger@client.com", "unmatched")]
    assert plan.summary["recipients_unmatched"] == 1
