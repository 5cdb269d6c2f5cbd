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
    EVENT_TYPES,
    RECIPIENT_TYPES,
    RELATION_COLUMNS,
    REQUIRED_FIELDS,
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
    for frame in (plan.tasks, plan.relations, plan.rejected):
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
        for i in range(draw(st.integers(0, 5)))
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


@st.composite
def recipient_lists(draw: st.DrawFn) -> Any:
    recipients = [
        {"email": draw(any_address), "field": draw(st.sampled_from(["to", "to", "cc", "bcc"]))}
        for _ in range(draw(st.integers(1, 6)))
    ]
    if draw(st.integers(0, 2)) == 0:
        # A rotation rather than a permutation: a few draws instead of seventy, so these
        # examples stay inside hypothesis's size budget instead of being discarded.
        start = draw(st.integers(0, len(BULK) - 1))
        bulk = (BULK[start:] + BULK[:start])[: draw(st.integers(48, 70))]
        recipients += [{"email": a, "field": "to"} for a in bulk]
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
                    "ann@client.com",
                ]
            )
        )
        return [*recipients, bad]
    if shape < 8:  # as read back from Parquet
        return np.array(recipients, dtype=object)
    return recipients


@st.composite
def event_rows(draw: st.DrawFn, event_id: str) -> dict[str, Any]:
    # Shared types twice as likely: they carry most of the rules.
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES) + ["sent", "internal_reply", "call"]))
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
        "recipients": draw(recipient_lists()) if has_recipients else None,
        "subject": draw(st.sampled_from(["Pricing", "  Re: next steps ", "", None])),
        "body": draw(st.sampled_from(["Hi all", None])),
        "thread_id": None,
        "message_id": None,
        "url": draw(st.sampled_from(["https://acme.com/pricing", None])),
        "filename": draw(st.sampled_from(["deck.pdf", None])),
    }
    broken = draw(st.integers(0, 19))
    if broken == 0:  # a required field absent or empty
        row[draw(st.sampled_from(REQUIRED_FIELDS))] = draw(st.sampled_from([None, ""]))
    elif broken == 1:  # a field holding no string, as an odd file can
        row[draw(st.sampled_from(TEXT_FIELDS))] = draw(st.sampled_from([7, 2.5, ["x"]]))
    return row


@st.composite
def event_frames(draw: st.DrawFn, *, unique_ids: bool = False) -> pd.DataFrame:
    """A few events of every type, some broken on purpose; ids repeat unless ``unique_ids``."""
    count = draw(st.integers(1, 8))
    if unique_ids:
        ids = [f"e{i}" for i in range(count)]
    else:
        ids = [
            f"e{draw(st.integers(0, i))}" if draw(st.integers(0, 5)) == 0 else f"e{i}"
            for i in range(count)
        ]
    return events_of([draw(event_rows(event_id)) for event_id in ids])
