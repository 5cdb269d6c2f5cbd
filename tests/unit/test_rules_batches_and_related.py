"""The rules R6–R11 and R13 (docs/rules.md) and the validation of events, one small hand-made
example each, run against both planners like test_rules.py (R1–R5), with its builders
(tests/support/rule_examples.py).
"""

from __future__ import annotations

import random

import pandas as pd
import pytest
from rule_examples import (
    CLIENT,
    OTHER,
    acted,
    contact,
    lead,
    opp,
    org,
    people,
    rejected,
    role,
    run,
    sent,
    user,
)
from strategies import comparable, events_of, settings_of

from activity_sync.schema import TASK_KEY_MAX, task_key

# --------------------------------------------------------------------------- R6 batches of 50


def sixty_contacts(account_of=lambda i: "001A"):
    return [contact(f"003{i:03d}", f"p{i:03d}@client.com", account_of(i)) for i in range(60)]


def test_r6_sixty_contacts_make_a_task_of_fifty_and_one_of_ten(planner):
    plan = run(
        planner,
        [sent(*[f"p{i:03d}@client.com" for i in range(60)])],
        org(contacts=sixty_contacts()),
    )
    ids = [f"003{i:03d}" for i in range(60)]
    assert people(plan) == [
        ("003000", "001A", tuple(ids[:50])),
        ("003050", "001A", tuple(ids[50:])),
    ]
    tasks = sorted(comparable(plan)["tasks"], key=lambda t: t["batch_index"])
    assert [(t["batch_index"], t["who_count"]) for t in tasks] == [(0, 50), (1, 10)]
    assert plan.summary["shared_tasks"] == 2 and plan.summary["individual_mode_tasks"] == 60


def test_r6_the_first_contact_of_each_batch_is_its_only_primary(planner):
    plan = run(
        planner,
        [sent(*[f"p{i:03d}@client.com" for i in reversed(range(60))])],
        org(contacts=sixty_contacts()),
    )
    relations = comparable(plan)["relations"]
    primaries = {(r["task_key"], r["RelationId"]) for r in relations if r["is_primary"]}
    whos = {(t["task_key"], t["WhoId"]) for t in comparable(plan)["tasks"]}
    assert (
        primaries
        == whos
        == {
            (task_key("acme", "e1", "b0", "001A"), "003059"),
            (task_key("acme", "e1", "b1", "001A"), "003009"),
        }
    )
    assert all(r["is_primary"] == (r["position"] == 0) for r in relations)


def test_r6_fifty_contacts_fit_in_one_task(planner):
    plan = run(
        planner,
        [sent(*[f"p{i:03d}@client.com" for i in range(50)])],
        org(contacts=sixty_contacts()),
    )
    assert [len(p[2]) for p in people(plan)] == [50]


def test_r6_each_batch_is_related_to_its_own_primarys_account(planner):
    crm = org(contacts=sixty_contacts(lambda i: "001B" if i == 50 else "001A"))
    plan = run(planner, [sent(*[f"p{i:03d}@client.com" for i in range(60)])], crm)
    assert [(p[0], p[1]) for p in people(plan)] == [("003000", "001A"), ("003050", "001B")]


def test_r6_rejected_recipients_do_not_take_a_place_in_a_batch(planner):
    addresses = [f"p{i:03d}@client.com" for i in range(51)]
    plan = run(
        planner,
        [sent("nobody@client.com", *addresses)],
        org(contacts=sixty_contacts()),
        exclusions=["p001@client.com"],
    )
    assert [len(p[2]) for p in people(plan)] == [50]


# --------------------------------------------------------------------------- R7 leads


def test_r7_each_lead_gets_its_own_task_also_when_contacts_share_one(planner):
    crm = org(
        leads=[lead("00QH", "hal@prospect.io"), lead("00QI", "ida@prospect.io")],
        opportunities=[opp("006A", "001A")],
    )
    plan = run(
        planner,
        [sent("hal@prospect.io", "ann@client.com", cc=["ida@prospect.io", "bob@client.com"])],
        crm,
    )
    assert people(plan) == [
        ("003A", "006A", ("003A", "003B")),
        ("00QH", None, ("00QH",)),
        ("00QI", None, ("00QI",)),
    ]
    assert plan.summary["shared_tasks"] == 1 and plan.summary["individual_tasks"] == 2
    lead_keys = {t["task_key"] for t in comparable(plan)["tasks"] if t["WhoId"].startswith("00Q")}
    assert lead_keys == {
        task_key("acme", "e1", "w00QH", None),
        task_key("acme", "e1", "w00QI", None),
    }


# --------------------------------------------------------------------------- R8 related to

OPPS = [
    opp("006A", "001A", owner="005R"),
    opp("006B", "001A", closed=True, owner="005R"),
    opp("006C", "001A", owner="005O"),
    opp("006D", "001B"),
]


def test_r8_account_match_makes_one_task_per_opportunity_of_the_primarys_account(planner):
    plan = run(planner, [sent("ann@client.com", "dan@other.org")], org(opportunities=OPPS))
    assert people(plan) == [("003A", w, ("003A", "003D")) for w in ("006A", "006B", "006C")]
    assert len({t["task_key"] for t in comparable(plan)["tasks"]}) == 3


def test_r8_contact_role_match_makes_one_task_per_opportunity_where_the_primary_has_a_role(planner):
    roles = [
        role("00K1", "006A", "003A"),
        role("00K2", "006D", "003A"),
        role("00K3", "006D", "003A"),
        role("00K4", "006C", "003B"),
    ]
    crm = org(opportunities=OPPS, contact_roles=roles)
    plan = run(
        planner, [sent("ann@client.com", "bob@client.com")], crm, opportunity_match="contact_role"
    )
    assert people(plan) == [("003A", "006A", ("003A", "003B")), ("003A", "006D", ("003A", "003B"))]


def test_r8_contact_role_match_without_a_role_relates_to_the_primarys_account(planner):
    crm = org(opportunities=OPPS, contact_roles=[role("00K4", "006C", "003B")])
    plan = run(
        planner, [sent("ann@client.com", "bob@client.com")], crm, opportunity_match="contact_role"
    )
    assert people(plan) == [("003A", "001A", ("003A", "003B"))]


def test_r8_without_an_opportunity_the_task_is_related_to_the_primarys_account(planner):
    plan = run(planner, [sent("dan@other.org", "ann@client.com")], org(opportunities=OPPS[:3]))
    assert people(plan) == [("003D", "001B", ("003D", "003A"))]


def test_r8_an_account_missing_from_the_snapshot_is_still_related_to(planner):
    crm = org(contacts=[contact("003A", "ann@client.com", "001Q")])
    plan = run(planner, [sent("ann@client.com")], crm)
    assert people(plan) == [("003A", "001Q", ("003A",))]


def test_r8_without_an_opportunity_or_an_account_related_to_is_empty(planner):
    crm = org(
        contacts=[
            contact("003A", "ann@client.com", None),
            contact("003B", "bob@client.com", "001A"),
        ],
        opportunities=[opp("006X", None)],
    )
    plan = run(planner, [sent("ann@client.com", "bob@client.com")], crm)
    assert people(plan) == [("003A", None, ("003A", "003B"))]


def test_r8_with_opportunity_sync_off_the_task_is_related_to_the_account(planner):
    plan = run(
        planner, [sent("ann@client.com")], org(opportunities=OPPS), sync_to_opportunities=False
    )
    assert people(plan) == [("003A", "001A", ("003A",))]


def test_r8_open_opportunities_only_drops_closed_ones(planner):
    plan = run(
        planner, [sent("ann@client.com")], org(opportunities=OPPS), open_opportunities_only=True
    )
    assert [p[1] for p in people(plan)] == ["006A", "006C"]


def test_r8_owned_opportunities_only_keeps_the_senders(planner):
    plan = run(
        planner, [sent("ann@client.com")], org(opportunities=OPPS), owned_opportunities_only=True
    )
    assert [p[1] for p in people(plan)] == ["006A", "006B"]


def test_r8_both_opportunity_filters_together_can_leave_only_the_account(planner):
    crm = org(
        opportunities=OPPS, users=[user("005R", "rep@acme.com"), user("005O", "other@acme.com")]
    )
    plan = run(
        planner,
        [sent("ann@client.com", sender="other@acme.com")],
        crm,
        open_opportunities_only=True,
        owned_opportunities_only=True,
    )
    assert [p[1] for p in people(plan)] == ["006C"]
    plan = run(
        planner,
        [sent("ann@client.com")],
        crm,
        open_opportunities_only=True,
        owned_opportunities_only=True,
    )
    assert [p[1] for p in people(plan)] == ["006A"]
    closed_only = org(opportunities=[OPPS[1]])
    plan = run(planner, [sent("ann@client.com")], closed_only, open_opportunities_only=True)
    assert [p[1] for p in people(plan)] == ["001A"]


def test_r8_owned_opportunities_only_keeps_none_for_a_sender_who_is_no_active_user(planner):
    crm = org(opportunities=OPPS, users=[user("005R", "rep@acme.com", active=False)])
    plan = run(planner, [sent("ann@client.com")], crm, owned_opportunities_only=True)
    assert people(plan) == [("003A", "001A", ("003A",))]


# --------------------------------------------------------------------------- R9 mixed accounts


def test_r9_contacts_of_other_accounts_ride_on_the_primarys_task(planner):
    crm = org(opportunities=[opp("006D", "001B")])
    plan = run(planner, [sent("ann@client.com", "dan@other.org")], crm)
    assert people(plan) == [("003A", "001A", ("003A", "003D"))]


# --------------------------------------------------------------------------- R10 individual events


def test_r10_an_open_by_a_contact_fans_out_to_its_accounts_opportunities(planner):
    plan = run(
        planner,
        [acted("open", "ann@client.com")],
        org(opportunities=OPPS),
        open_opportunities_only=True,
    )
    assert people(plan) == [("003A", "006A", ("003A",)), ("003A", "006C", ("003A",))]
    assert plan.summary["individual_tasks"] == 2


def test_r10_individual_mode_uses_each_contacts_own_related_to(planner):
    crm = org(opportunities=[opp("006D", "001B")])
    plan = run(planner, [sent("ann@client.com", "dan@other.org")], crm, shared_activities=False)
    assert people(plan) == [("003A", "001A", ("003A",)), ("003D", "006D", ("003D",))]


def test_r10_an_unmatched_actor_is_rejected_as_unmatched(planner):
    plan = run(planner, [acted("bounce", " Stranger@Client.com")], org())
    assert people(plan) == []
    assert rejected(plan) == [("e1", "stranger@client.com", "unmatched")]
    assert plan.summary["recipients_unmatched"] == 1


# --------------------------------------------------------------------------- R11 idempotency


def mixed_day():
    crm = org(
        contacts=sixty_contacts() + CLIENT + OTHER,
        leads=[lead("00QH", "hal@prospect.io")],
        opportunities=OPPS,
        contact_roles=[role("00K1", "006A", "003A")],
    )
    rows = [
        sent(*[f"p{i:03d}@client.com" for i in range(60)], event_id="e1"),
        sent("ann@client.com", "hal@prospect.io", "dan@other.org", "bad@", event_id="e2"),
        acted("open", "bob@client.com", event_id="e3"),
        acted("click", "hal@prospect.io", event_id="e4", url="https://acme.com"),
        sent("ann@client.com", "bob@client.com", event_id="e5", type="meeting"),
        acted("reply", "noreply@client.com", event_id="e6"),
        acted("open", "ann@client.com", event_id="e7", org_id="globex"),
    ]
    return rows, crm


def test_r11_the_same_input_in_another_order_gives_the_identical_plan(planner):
    rows, crm = mixed_day()
    first = comparable(run(planner, rows, crm))
    for seed in range(3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert comparable(run(planner, shuffled, crm)) == first


def test_r11_task_keys_are_unique_at_most_80_characters_and_built_from_the_event(planner):
    rows, crm = mixed_day()
    tasks = comparable(run(planner, rows, crm, meetings_as_events=False))["tasks"]
    keys = [t["task_key"] for t in tasks]
    assert len(keys) == len(set(keys)) == 20
    assert max(len(k) for k in keys) <= TASK_KEY_MAX
    assert task_key("acme", "e3", "w003B", "006A") in keys
    assert keys == sorted(keys)


# --------------------------------------------------------------------------- summary


def test_r13_summary_counts_what_individual_mode_would_have_made(planner):
    rows, crm = mixed_day()
    plan = run(planner, rows, crm, meetings_as_events=False)  # R14 has its own summary test
    individual = run(planner, rows, crm, salesforce=False)
    # e1: 60 Contacts of 001A with three Opportunities: 2 batches x 3 shared, 60 x 3 alone.
    # e2: Contacts 003A (3 Opportunities) and 003D (006D) share 3 Tasks, the Lead gets 1;
    #     alone 3 + 1 + 1. e3: an open by 003B, 3. e4: a Lead's click, 1. e5: a meeting
    #     with 003A and 003B, 6. e6: a system-address actor, excluded. e7: another org.
    assert individual.summary["tasks"] == individual.summary["individual_mode_tasks"] == 195
    assert plan.summary["individual_mode_tasks"] == 195
    assert {
        k: plan.summary[k]
        for k in ("events", "events_rejected", "tasks", "shared_tasks", "relations")
    } == {
        "events": 6,
        "events_rejected": 1,
        "tasks": 6 + 4 + 3 + 1 + 6,
        "shared_tasks": 6 + 3,
        "relations": 3 * 60 + (3 * 2 + 1) + 3 + 1 + 6,
    }
    assert plan.summary["individual_tasks"] == 11
    assert plan.summary["rejected_by_reason"] == {"excluded": 1, "invalid_email": 1, "wrong_org": 1}


# --------------------------------------------------------------------------- event validation


@pytest.mark.parametrize("field", ["event_id", "org_id", "type", "occurred_at", "sender"])
@pytest.mark.parametrize("empty", [None, ""])
def test_an_event_without_a_required_field_is_rejected_as_missing_field(planner, field, empty):
    plan = run(planner, [sent("ann@client.com", event_id="e9") | {field: empty}], org())
    ((event_id, email, reason),) = rejected(plan)
    assert (email, reason) == (None, "missing_field")
    assert event_id == ("e9" if field != "event_id" else empty)
    assert people(plan) == []
    assert plan.summary["events_rejected"] == 1 and plan.summary["events"] == 0


def test_an_activity_without_an_actor_is_rejected_as_missing_field(planner):
    plan = run(planner, [acted("open", None), acted("click", "", event_id="e2")], org())
    assert rejected(plan) == [("e1", None, "missing_field"), ("e2", None, "missing_field")]


def test_an_email_without_recipients_is_rejected_as_missing_field(planner):
    plan = run(planner, [sent(), sent(event_id="e2") | {"recipients": None}], org())
    assert rejected(plan) == [("e1", None, "missing_field"), ("e2", None, "missing_field")]


def test_a_missing_field_is_reported_before_an_unknown_type_or_a_wrong_org(planner):
    plan = run(planner, [sent("ann@client.com", type="call", org_id="globex", sender=None)], org())
    assert rejected(plan) == [("e1", None, "missing_field")]


def test_an_unknown_type_is_rejected_as_unknown_type(planner):
    plan = run(planner, [sent("ann@client.com", type="call", org_id="globex")], org())
    assert rejected(plan) == [("e1", None, "unknown_type")]


def test_an_event_of_another_org_is_rejected_as_wrong_org(planner):
    plan = run(planner, [sent("ann@client.com", org_id="globex", occurred_at="garbage")], org())
    assert rejected(plan) == [("e1", None, "wrong_org")]


@pytest.mark.parametrize(
    "occurred_at", ["2024-05-01T12:00:00", "2024-05-01", "last tuesday", "2024-02-30T12:00:00Z"]
)
def test_a_time_without_an_offset_or_not_a_time_is_rejected_as_invalid_field(planner, occurred_at):
    plan = run(planner, [sent("ann@client.com", occurred_at=occurred_at)], org())
    assert rejected(plan) == [("e1", None, "invalid_field")]


@pytest.mark.parametrize(
    "recipients",
    [
        [{"email": "ann@client.com", "field": "from"}],
        [{"email": None, "field": "to"}],
        [{"field": "to"}],
        ["ann@client.com"],
        "ann@client.com",
    ],
)
def test_malformed_recipients_are_rejected_as_invalid_field(planner, recipients):
    plan = run(planner, [sent("bob@client.com") | {"recipients": recipients}], org())
    assert rejected(plan) == [("e1", None, "invalid_field")]


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_id", 7), ("sender", 5), ("subject", ["Pricing"]), ("body", 1.5), ("url", 3)],
)
def test_a_text_field_holding_no_string_is_rejected_as_invalid_field(planner, field, value):
    plan = run(planner, [sent("ann@client.com") | {field: value}], org())
    assert [r[1:] for r in rejected(plan)] == [(None, "invalid_field")]
    assert people(plan) == []


@pytest.mark.parametrize(
    "email", [b"ann@client.com", "\ud800@client.com", 42], ids=["bytes", "lone-surrogate", "number"]
)
def test_a_recipient_email_that_is_no_string_is_rejected_as_invalid_field(planner, email):
    """The agreed rule: recipients must be objects each with a *string* email. Bytes (from
    a binary Parquet column) are not one, nor is text with a lone surrogate."""
    plan = run(
        planner, [sent("bob@client.com") | {"recipients": [{"email": email, "field": "to"}]}], org()
    )
    assert rejected(plan) == [("e1", None, "invalid_field")]


@pytest.mark.parametrize(
    ("occurred_at", "timezone"),
    [
        ("0001-01-01T00:30:00+01:00", "UTC"),
        ("9999-12-31T23:00:00-05:00", "UTC"),
        ("9999-12-31T20:00:00Z", "Asia/Tokyo"),
    ],
)
def test_a_time_whose_local_date_leaves_the_calendar_is_rejected_as_invalid_field(
    planner, occurred_at, timezone
):
    """ActivityDate must be a YYYY-MM-DD date in the org's zone; a time whose local date
    is before year 1 or after 9999 has none, so it is an unusable value, not a Task."""
    plan = run(planner, [sent("ann@client.com", occurred_at=occurred_at)], org(), timezone=timezone)
    assert rejected(plan) == [("e1", None, "invalid_field")]
    assert people(plan) == []


def test_a_repeated_event_id_is_rejected_as_duplicate_event_and_the_first_wins(planner):
    rows = [
        sent("ann@client.com", event_id="e1", org_id="globex"),
        sent("bob@client.com", event_id="e1"),
        sent("cat@client.com", event_id="e1"),
    ]
    plan = run(planner, rows, org())
    assert people(plan) == [("003B", "001A", ("003B",))]
    assert rejected(plan) == [("e1", None, "duplicate_event"), ("e1", None, "wrong_org")]


def test_an_actor_that_is_no_valid_address_is_rejected_as_invalid_email(planner):
    plan = run(planner, [acted("open", "  Someone AT client.com ")], org())
    assert rejected(plan) == [("e1", "someone at client.com", "invalid_email")]
    assert plan.summary["events_rejected"] == 1 and plan.summary["events"] == 0


def test_recipients_read_from_parquet_as_arrays_are_planned_like_lists(planner, tmp_path):
    rows = [
        sent("ann@client.com", "bob@client.com", event_id="e1"),
        acted("open", "ann@client.com", event_id="e2"),
    ]
    path = tmp_path / "events.parquet"
    events_of(rows).to_parquet(path)
    from_parquet = planner(pd.read_parquet(path), org(), settings_of())
    assert comparable(from_parquet) == comparable(run(planner, rows, org()))
