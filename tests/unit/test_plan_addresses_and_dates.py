"""Real-world values the planners must take as Salesforce does: addresses with apostrophes,
consecutive dots or non-ASCII characters (Email Address Internationalization), domains in
Unicode or IDNA form, and times whose date Salesforce cannot hold. Both planners, as in
test_rules.py.

Salesforce's pages relied on:
- Email Address Internationalization: non-ASCII characters in the local part and the domain
  of Email fields, stored and shown as Unicode
  (https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai.htm,
  https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai_prepare.htm).
- Dates: "The earliest valid date is 1700-01-01T00:00:00Z GMT ... The latest valid date is
  4000-12-31T00:00:00Z GMT" (Data Loader Guide, Data Import Dates,
  https://developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/data_loader_dates.htm).
"""

from __future__ import annotations

from typing import Any

import pytest
from strategies import comparable, crm_of, events_of, settings_of

from activity_sync import plan as product
from activity_sync import reference


@pytest.fixture(params=[reference.plan, product.plan], ids=["reference", "product"])
def planner(request: pytest.FixtureRequest):
    return request.param


def sent(*to: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "org_id": "acme",
        "type": "sent",
        "occurred_at": "2024-05-01T12:00:00Z",
        "sender": "rep@acme.com",
        "recipients": [{"email": address, "field": "to"} for address in to],
        "subject": "Pricing",
    } | fields


def org(*emails: str, leads: tuple[str, ...] = (), users: tuple[str, ...] = ("rep@acme.com",)):
    """Contacts 003000… with ``emails`` (Account 001A), Leads 00Q000…, active Users 005000…."""
    return crm_of(
        contacts=[
            {"Id": f"003{i:03d}", "Email": e, "AccountId": "001A", "LastModifiedDate": "2024-01-01"}
            for i, e in enumerate(emails)
        ],
        leads=[
            {
                "Id": f"00Q{i:03d}",
                "Email": e,
                "IsConverted": False,
                "LastModifiedDate": "2024-01-01",
            }
            for i, e in enumerate(leads)
        ],
        accounts=[{"Id": "001A", "Name": "Client"}],
        users=[{"Id": f"005{i:03d}", "Email": e, "IsActive": True} for i, e in enumerate(users)],
    )


def run(planner, rows: list[dict[str, Any]], crm, **settings: Any):
    return planner(events_of(rows), crm, settings_of(sync_to_opportunities=False, **settings))


def who(plan) -> list[str]:
    """Every person on a Task (WhoIds and relations), in plan order."""
    return [r["RelationId"] for r in comparable(plan)["relations"]]


def rejected(plan) -> list[tuple[str | None, str | None, str]]:
    return comparable(plan)["rejected"]


# --------------------------------------------------------------------------- addresses

RFC_5322_LOCAL = "o'brien+x!#$%&*/=?^_`{|}~-@client.com"


@pytest.mark.parametrize(
    "address", ["o'brien@client.com", RFC_5322_LOCAL, "ann..lee@client.com", "ann.@client.com"]
)
def test_r3_an_address_salesforce_accepts_is_valid_and_matched(planner, address):
    """Apostrophes and every other RFC 5322 atext character, and consecutive dots inside the
    local part, are accepted by Salesforce's Email fields, so such a Contact is synced."""
    plan = run(planner, [sent(address.upper())], org(address))
    assert rejected(plan) == []
    assert who(plan) == ["003000"]


@pytest.mark.parametrize(
    "address",
    [
        ".ann@client.com",  # a leading dot
        "ann@client",  # no top-level domain
        "ann lee@client.com",  # a space
        '"ann"@client.com',  # quotes
        "ann@xn--zz.com",  # an "xn--" label that is no IDNA label
        "ann@ex ample.com",
        "zoë@exä mple.com",
        "zo\u00a0ë@exämple.com",  # a no-break space in an internationalised local part
    ],
)
def test_r3_an_address_salesforce_refuses_is_invalid_email(planner, address):
    plan = run(planner, [sent(address)], org())
    assert [reason for _, _, reason in rejected(plan)] == ["invalid_email"]


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("zoë@exämple.com", "zoë@exämple.com"),
        ("ZOË@EXÄMPLE.COM", "zoë@exämple.com"),
        ("zoë@xn--exmple-cua.com", "zoë@exämple.com"),
        ("zoë@exämple.com", "ZOË@XN--EXMPLE-CUA.COM"),
        ("用户@例子.公司", "用户@xn--fsqu00a.xn--55qx5d"),
        ("иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_r3_an_internationalised_address_matches_in_unicode_or_xn_form(planner, written, stored):
    """EAI addresses are valid, and a domain is one domain whether written in Unicode or in
    its IDNA "xn--" form, on the event's side and on the CRM's."""
    plan = run(planner, [sent(written)], org(stored))
    assert rejected(plan) == []
    assert who(plan) == ["003000"]


def test_r5_leads_and_the_sender_s_user_match_an_idn_domain_in_either_form(planner):
    crm = org(leads=("lea@xn--exmple-cua.com",), users=("rep@exämple.com",))
    plan = run(planner, [sent("LEA@Exämple.com", sender="Rep@XN--EXMPLE-CUA.com")], crm)
    assert who(plan) == ["00Q000"]
    assert comparable(plan)["tasks"][0]["OwnerId"] == "005000"


@pytest.mark.parametrize(
    "exclusion", ["exämple.com", "XN--EXMPLE-CUA.COM", "zoë@exämple.com", "zoë@xn--exmple-cua.com"]
)
def test_r4_an_idn_exclusion_excludes_the_domain_in_either_form(planner, exclusion):
    crm = org("zoë@exämple.com", "ann@client.com")
    plan = run(
        planner, [sent("zoë@xn--exmple-cua.com", "ann@client.com")], crm, exclusions=[exclusion]
    )
    assert rejected(plan) == [("e1", "zoë@exämple.com", "excluded")]
    assert who(plan) == ["003001"]


def test_r4_an_idn_domain_exclusion_covers_its_subdomains(planner):
    crm = org("zoë@eu.exämple.com")
    plan = run(planner, [sent("zoë@eu.xn--exmple-cua.com")], crm, exclusions=["xn--exmple-cua.com"])
    assert rejected(plan) == [("e1", "zoë@eu.exämple.com", "excluded")]


def test_r3_a_rejected_address_is_shown_in_its_canonical_unicode_form(planner):
    plan = run(planner, [sent("Nobody@XN--EXMPLE-CUA.COM")], org())
    assert rejected(plan) == [("e1", "nobody@exämple.com", "unmatched")]


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize("timezone", ["UTC", "America/Los_Angeles", "Asia/Tokyo", "Etc/GMT+12"])
def test_a_time_in_year_10000_utc_is_rejected_not_a_crash(planner, timezone):
    """9999-12-31T23:30-14:00 is 10000-01-01T13:30Z: pandas cannot localise it, Python's
    datetime cannot hold it, and Salesforce could not store its date anyway."""
    rows = [
        sent("ann@client.com", occurred_at="9999-12-31T23:30:00-14:00"),
        sent("ann@client.com", event_id="e2"),
    ]
    plan = run(planner, rows, org("ann@client.com"), timezone=timezone)
    assert rejected(plan) == [("e1", None, "invalid_field")]
    assert [t["event_id"] for t in comparable(plan)["tasks"]] == ["e2"]


@pytest.mark.parametrize(
    ("occurred_at", "timezone"),
    [
        ("1699-12-31T23:59:59Z", "UTC"),
        ("1700-01-01T02:00:00Z", "America/Los_Angeles"),  # still 1699 there
        ("4001-01-01T00:00:00Z", "UTC"),
        ("4000-12-31T20:00:00Z", "Asia/Tokyo"),  # already 4001 there
        ("1500-05-01T12:00:00+02:00", "UTC"),
        ("9999-12-31T12:00:00Z", "UTC"),
    ],
)
def test_a_date_salesforce_cannot_hold_is_rejected_as_invalid_field(planner, occurred_at, timezone):
    plan = run(
        planner,
        [sent("ann@client.com", occurred_at=occurred_at)],
        org("ann@client.com"),
        timezone=timezone,
    )
    assert rejected(plan) == [("e1", None, "invalid_field")]
    assert comparable(plan)["tasks"] == []


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [("1700-01-01T00:00:00Z", "1700-01-01"), ("4000-12-31T23:59:59Z", "4000-12-31")],
)
def test_the_first_and_last_dates_salesforce_holds_are_planned(planner, occurred_at, expected):
    plan = run(planner, [sent("ann@client.com", occurred_at=occurred_at)], org("ann@client.com"))
    assert rejected(plan) == []
    assert [t["ActivityDate"] for t in comparable(plan)["tasks"]] == [expected]


def test_the_detail_says_the_date_is_outside_salesforce_s_range():
    plan = product.plan(
        events_of([sent("ann@client.com", occurred_at="1600-01-01T00:00:00Z")]),
        org("ann@client.com"),
        settings_of(),
    )
    assert plan.rejected["detail"].tolist() == [
        "occurred_at '1600-01-01T00:00:00Z' falls on a date Salesforce cannot hold "
        "(only 1700-01-01 to 4000-12-31)"
    ]
