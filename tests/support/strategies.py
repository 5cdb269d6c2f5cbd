"""Test data for the planners: builders for hand-made inputs, hypothesis strategies for
random ones, and the canonical form in which two plans are compared.

A plain module (not a conftest) so that test_rules.py and test_reference.py share one
definition of "the same plan".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import idna
import numpy as np
import pandas as pd
from hypothesis import strategies as st

from activity_sync.crm import OBJECTS, Crm
from activity_sync.schema import (
    EVENT_COLUMNS,
    EVENT_RELATION_COLUMNS,
    EVENT_TYPES,
    RECIPIENT_TYPES,
    RELATION_COLUMNS,
    REQUIRED_FIELDS,
    SALESFORCE_EVENT_COLUMNS,
    SUMMARY_KEYS,
    TASK_COLUMNS,
    Plan,
)
from activity_sync.settings import Settings, parse_settings

ORG = "acme"


# --------------------------------------------------------------------------- builders


def crm_of(**objects: list[dict[str, Any]]) -> Crm:
    """A Crm from lists of records (Crm.from_frames parses dates and flags); others empty."""
    return Crm.from_frames(
        **{
            name: pd.DataFrame(records, columns=list(OBJECTS[name][1]))
            for name, records in objects.items()
        }
    )


def events_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """An events frame with every contract column, as the readers hand it to the planner."""
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def write_jsonl(events: pd.DataFrame, path: Path) -> None:
    """The events as a landing file: one JSON object a line, arrays as lists, NaN as null."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value]
        if isinstance(value, float) and np.isnan(value):
            return None
        return value

    lines = [json.dumps({k: plain(v) for k, v in row.items()}) for row in events.to_dict("records")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def settings_of(**values: Any) -> Settings:
    return parse_settings({"org_id": ORG, **values})


# --------------------------------------------------------------------------- comparison


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, list | np.ndarray) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _records(frame: pd.DataFrame, columns: list[str], ints: tuple[str, ...]) -> list[dict]:
    rows = []
    for row in frame[columns].astype(object).to_dict("records"):
        row = {k: _plain(v) for k, v in row.items()}
        for name in ints:
            row[name] = int(row[name])
        rows.append(row)
    return rows


def comparable(plan: Plan) -> dict[str, Any]:
    """A plan as plain Python values: the form in which two planners must agree.

    Frames become lists of dicts with None for nulls, in the order the plan gives them (so
    the canonical order is compared too); rejected rows keep only (event_id, email,
    reason), re-sorted on those, since details are free text.
    """
    frames = (plan.tasks, plan.relations, plan.rejected, plan.salesforce_events)
    for frame in (*frames, plan.event_relations):
        assert frame.index.equals(pd.RangeIndex(len(frame))), "plan frames need a fresh index"
    rejected = [
        (r["event_id"], r["email"], r["reason"])
        for r in _records(plan.rejected, ["event_id", "email", "reason"], ())
    ]
    rejected.sort(key=lambda r: tuple((v is None, v or "") for v in r))
    summary = {key: plan.summary[key] for key in [*SUMMARY_KEYS, "mode"]}
    summary["rejected_by_reason"] = {
        code: count for code, count in plan.summary["rejected_by_reason"].items() if count
    }
    return {
        "tasks": _records(plan.tasks, TASK_COLUMNS, ("who_count", "batch_index")),
        "relations": [
            {**r, "is_primary": bool(r["is_primary"])}
            for r in _records(plan.relations, RELATION_COLUMNS, ("position",))
        ],
        "salesforce_events": [
            {**e, "IsAllDayEvent": bool(e["IsAllDayEvent"])}
            for e in _records(
                plan.salesforce_events,
                SALESFORCE_EVENT_COLUMNS,
                ("DurationInMinutes", "who_count", "batch_index"),
            )
        ],
        "event_relations": [
            {**r, "is_primary": bool(r["is_primary"])}
            for r in _records(plan.event_relations, EVENT_RELATION_COLUMNS, ("position",))
        ],
        "rejected": rejected,
        "summary": summary,
    }


# --------------------------------------------------------------------------- strategies

ACCOUNT_IDS = ["001A", "001B", "001C"]
USER_IDS = ["005A", "005B", "005C"]
SENDERS = ["rep@acme.com", "boss@acme.com", "temp@acme.com"]
# Few distinct times, so that Contacts sharing an email often tie and the Id decides.
TIMES = ["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-06-01T00:00:00Z"]
# Addresses people in the CRM have: a client company with a subdomain, a look-alike of an
# excluded competitor, a system mailbox, and Lead-only prospects.
PEOPLE = [
    "ann@client.com",
    "bob@client.com",
    "cat@eu.client.com",
    "dan@other.org",
    "eve@competitor.com",
    "fay@sales.competitor.com",
    "gil@notcompetitor.com",
    "noreply@client.com",
    "notifications+x@other.org",
    "hal@prospect.io",
    "ida@prospect.io",
    # Addresses as Salesforce accepts them (R3): an apostrophe, consecutive dots, and
    # internationalised ones (EAI), whose domain may be written in Unicode or "xn--" form.
    "o'brien@client.com",
    "jo..ann@client.com",
    "zoë@exämple.com",
    "ivan@xn--e1afmkfd.xn--p1ai",
]
BULK = [f"p{i:02d}@bulk.example.com" for i in range(70)]
UNKNOWN = ["zed@nowhere.net", "yan@client.com", "zoé@exämple.com"]
INVALID = ["not-an-email", "ann@client", "bad address@client.com", "", "a@@client.com"]
INVALID += [".ann@client.com", "ann@xn--zz.com", "zo ë@exämple.com"]
EXCLUSIONS = ["competitor.com", "eve@competitor.com", "bob@client.com", "other.org", "client.com"]
EXCLUSIONS += ["xn--exmple-cua.com", "пример.рф"]
TIMEZONES = ["UTC", "America/Los_Angeles", "Asia/Tokyo"]


def _variant(address: str) -> st.SearchStrategy[str]:
    """The same address as a person might type it: case and surrounding space vary, and an
    internationalised domain is written in Unicode or in its IDNA "xn--" form."""
    local, _, domain = address.rpartition("@")
    other = idna.decode(domain) if "xn--" in domain else idna.encode(domain).decode()
    return st.sampled_from(
        [
            address,
            address.upper(),
            f"  {address} ",
            address.capitalize(),
            f"\t{address.title()}",
            f"{local}@{other}",
            f"{local.upper()}@{other.upper()} ",
        ]
    )


@st.composite
def crms(draw: st.DrawFn) -> Crm:
    """A small org: Contacts sharing emails, Leads (some converted), open/closed Opportunities."""
    accounts = [{"Id": a, "Name": f"Account {a}"} for a in ACCOUNT_IDS]
    # AccountIds include one absent from the Account table: Salesforce data is not tidy.
    account_ids = st.sampled_from([*ACCOUNT_IDS, *ACCOUNT_IDS, "001Z", None])
    # Most addresses belong to one Contact, some to none or to two (a duplicate record).
    copies = st.sampled_from([0, 1, 1, 1, 2])
    contact_emails = [e for e in PEOPLE[:9] + PEOPLE[11:] for _ in range(draw(copies))]
    contacts = [
        {
            "Id": f"003{i:04d}",
            "Email": draw(_variant(email)) if draw(st.integers(0, 19)) else None,
            "AccountId": draw(account_ids),
            "LastModifiedDate": draw(st.sampled_from(TIMES)),
        }
        for i, email in enumerate(draw(st.permutations(contact_emails)))
    ]
    if draw(st.booleans()):
        # A mailing-list-sized Account, drawn as one block to keep examples small.
        bulk_account = draw(account_ids)
        contacts += [
            {
                "Id": f"003B{i:03d}",
                "Email": email,
                "AccountId": bulk_account,
                "LastModifiedDate": TIMES[0],
            }
            for i, email in enumerate(BULK)
        ]
    leads = [
        {
            "Id": f"00Q{i:04d}",
            "Email": draw(_variant(email)),
            "IsConverted": draw(st.booleans()),
            "LastModifiedDate": draw(st.sampled_from(TIMES)),
        }
        for i, email in enumerate(email for email in PEOPLE for _ in range(draw(copies)))
    ]
    opportunities = [
        {
            "Id": f"006{i:04d}",
            "AccountId": draw(account_ids),
            "Name": f"Deal {i}",
            "IsClosed": draw(st.booleans()),
            "CloseDate": "2024-12-31",
            "OwnerId": draw(st.sampled_from([*USER_IDS, None])),
        }
        # Drawn from a few sizes, not a range hypothesis would mostly keep at 0.
        for i in range(draw(st.sampled_from([0, 2, 3, 5])))
    ]
    contact_roles = []
    if opportunities and contacts:
        pairs = draw(
            st.lists(
                st.tuples(st.sampled_from(opportunities), st.sampled_from(contacts)), max_size=8
            )
        )
        contact_roles = [
            {"Id": f"00K{i:04d}", "OpportunityId": o["Id"], "ContactId": c["Id"]}
            for i, (o, c) in enumerate(pairs)
        ]
    users = [
        {
            "Id": uid,
            "Email": draw(_variant(draw(st.sampled_from(SENDERS)))),
            "IsActive": draw(st.booleans()),
        }
        for uid in draw(st.permutations(USER_IDS))
    ]
    return crm_of(
        contacts=contacts,
        leads=leads,
        accounts=accounts,
        opportunities=opportunities,
        contact_roles=contact_roles,
        users=users,
    )


settings_values = st.fixed_dictionaries(
    {
        "org_id": st.just(ORG),
        "shared_activities": st.booleans(),
        "sync_to_opportunities": st.booleans(),
        "opportunity_match": st.sampled_from(["account", "contact_role"]),
        "open_opportunities_only": st.booleans(),
        "owned_opportunities_only": st.booleans(),
        "exclusions": st.lists(st.sampled_from(EXCLUSIONS), unique=True, max_size=3).map(
            lambda xs: [x.upper() if len(x) % 2 else x for x in xs]
        ),
        "exclude_system_addresses": st.booleans(),
        "sync_bcc": st.booleans(),
        "timezone": st.sampled_from(TIMEZONES),
        "meetings_as_events": st.sampled_from([True, True, False]),
    }
)

# Near midnight UTC, so that the time zone decides the ActivityDate.
VALID_TIMES = [
    "2024-05-01T23:30:00Z",
    "2024-05-01T00:15:00+00:00",
    "2024-05-01T18:00:00-07:00",
    "2024-05-02T08:00:00+09:00",
    "2024-05-01T12:00:00.250+05:30",
]
# Text fields an odd file may fill with a number or a list instead of a string.
TEXT_FIELDS = ["event_id", "sender", "subject", "body", "url", "filename", "actor"]
INVALID_TIMES = ["yesterday", "2024-05-01T12:00:00", "2024-13-01T00:00:00Z", "2024-05-01"]

# Weighted toward people the CRM knows, so that most events make Tasks.
people_address = st.sampled_from(PEOPLE).flatmap(_variant)
any_address = st.one_of(
    people_address,
    people_address,
    people_address,
    st.sampled_from(BULK[:5]),
    st.sampled_from(UNKNOWN),
    st.sampled_from(INVALID),
)


# R14: an attendee's answer; mostly none given, now and then one no calendar sends.
RESPONSES = [None, None, "accepted", "declined", "declined", "tentative", "none"]
BAD_RESPONSES = ["maybe", "Declined", ""]


@st.composite
def recipient_lists(draw: st.DrawFn, *, responses: bool = False) -> Any:
    def recipient() -> dict[str, Any]:
        entry = {
            "email": draw(any_address),
            "field": draw(st.sampled_from(["to", "to", "cc", "bcc"])),
        }
        if responses:
            kind = draw(st.integers(0, 29))
            response = draw(st.sampled_from(BAD_RESPONSES if kind == 0 else RESPONSES))
            if response is not None:
                entry["response"] = response
        return entry

    recipients = [recipient() for _ in range(draw(st.integers(1, 6)))]
    if draw(st.integers(0, 2)) == 0:
        # A rotation rather than a permutation: a few draws instead of seventy, so these
        # examples stay inside hypothesis's size budget instead of being discarded.
        start = draw(st.integers(0, len(BULK) - 1))
        bulk = (BULK[start:] + BULK[:start])[: draw(st.integers(48, 70))]
        # A meeting's invitees answer too: a declined one may leave a batch of exactly 50.
        declined = draw(st.sets(st.integers(0, len(bulk) - 1), max_size=3)) if responses else ()
        recipients += [
            {"email": a, "field": "to", **({"response": "declined"} if i in declined else {})}
            for i, a in enumerate(bulk)
        ]
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return None
    if shape == 1:
        return []
    if shape == 2:  # malformed: a wrong field name, a non-string email, a stray surrogate
        bad = draw(
            st.sampled_from(
                [
                    {"email": "ann@client.com", "field": "from"},
                    {"email": 7, "field": "to"},
                    {"email": "\ud800@client.com", "field": "cc"},
                    {"email": "ann@client.com", "field": "to", "response": 7},
                    "ann@client.com",
                ]
            )
        )
        return [*recipients, bad]
    if shape < 8:  # as read back from Parquet
        return np.array(recipients, dtype=object)
    return recipients


# R14's meeting fields: times near midnight and across days, all-day or not, hostile ones.
MEETING_STARTS = [None, None, *VALID_TIMES, "2024-05-01T23:59:59.999+00:00"]
MEETING_ENDS = [
    None,
    None,
    "2024-05-02T01:00:00Z",
    "2024-05-03T00:00:00+09:00",
    "2024-05-01T18:00:30-07:00",
    "2024-05-14T23:00:00Z",
]
BAD_MEETING_TIMES = [
    "tomorrow",
    "2024-05-01T12:00:00",  # no offset
    "2024-04-01T00:00:00Z",  # before every start
    "2024-06-01T00:00:00Z",  # a month: longer than any Salesforce Event
    "1650-01-01T00:00:00Z",  # before Salesforce's dates
    "3999-12-31T22:00:00-05:00",  # past pandas' nanoseconds, inside Salesforce's dates
    "9999-12-31T23:50:00+00:00",
    7,
]
LOCATIONS = [None, None, "Room 4", "  Zoom  ", "   ", "\U0001f4cd" * 200, "x" * 300]


def _meeting_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    hostile = draw(st.integers(0, 9)) == 0
    for name, good in (("starts_at", MEETING_STARTS), ("ends_at", MEETING_ENDS)):
        value = draw(st.sampled_from(BAD_MEETING_TIMES if hostile else good))
        if value is not None:
            fields[name] = value
    all_day = draw(st.sampled_from([None, None, False, True, True, "yes" if hostile else None]))
    if all_day is not None:
        fields["is_all_day"] = all_day
    location = draw(st.sampled_from([*LOCATIONS, 7] if hostile else LOCATIONS))
    if location is not None:
        fields["location"] = location
    return fields


@st.composite
def event_rows(draw: st.DrawFn, event_id: str, *, meetings: bool = False) -> dict[str, Any]:
    # Shared types and meetings twice as likely: they carry most of the rules; ``meetings``
    # makes nearly every event one.
    types = sorted(EVENT_TYPES) + ["sent", "internal_reply", "meeting", "call"]
    event_type = draw(st.sampled_from(["meeting"] * 3 + ["sent"] if meetings else types))
    has_recipients = event_type in RECIPIENT_TYPES
    row = {
        "event_id": event_id,
        "org_id": ORG if draw(st.integers(0, 9)) else "globex",
        "type": event_type,
        "occurred_at": draw(
            st.sampled_from(VALID_TIMES if draw(st.integers(0, 9)) else INVALID_TIMES)
        ),
        "sender": draw(st.sampled_from(SENDERS).flatmap(_variant)),
        "actor": None if has_recipients or not draw(st.integers(0, 9)) else draw(any_address),
        "recipients": (
            draw(recipient_lists(responses=event_type == "meeting")) if has_recipients else None
        ),
        "subject": draw(st.sampled_from(["Pricing", "  Re: next steps ", "", None])),
        "body": draw(st.sampled_from(["Hi all", None])),
        "thread_id": None,
        "message_id": None,
        "url": draw(st.sampled_from(["https://acme.com/pricing", None])),
        "filename": draw(st.sampled_from(["deck.pdf", None])),
        **(_meeting_fields(draw) if event_type == "meeting" else {}),
    }
    broken = draw(st.integers(0, 19))
    if broken == 0:  # a required field absent or empty
        row[draw(st.sampled_from(REQUIRED_FIELDS))] = draw(st.sampled_from([None, ""]))
    elif broken == 1:  # a field holding no string, as an odd file can
        row[draw(st.sampled_from(TEXT_FIELDS))] = draw(st.sampled_from([7, 2.5, ["x"]]))
    return row


@st.composite
def event_frames(
    draw: st.DrawFn, *, unique_ids: bool = False, meetings: bool = False
) -> pd.DataFrame:
    """A few events of every type (mostly meetings with ``meetings``), some broken on
    purpose; ids repeat unless ``unique_ids``."""
    count = draw(st.integers(1, 8))
    if unique_ids:
        ids = [f"e{i}" for i in range(count)]
    else:
        ids = [
            f"e{draw(st.integers(0, i))}" if draw(st.integers(0, 5)) == 0 else f"e{i}"
            for i in range(count)
        ]
    return events_of([draw(event_rows(event_id, meetings=meetings)) for event_id in ids])
