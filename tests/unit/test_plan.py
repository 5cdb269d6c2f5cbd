"""The vectorised planner: its own machinery (keys, order, input shapes, text that is not
ASCII, output form and files). The rules themselves are exemplified rule by rule, against
both planners, in test_rules.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from strategies import comparable, crm_of, events_of, settings_of

from activity_sync import reference
from activity_sync.plan import (
    add_rejections,
    mode_of,
    plan,
    plan_traced,
    read_plan,
    write_plan,
)
from activity_sync.planner.arrow import utf16_prefix
from activity_sync.planner.keys import digest_order, hex_keys, task_digests
from activity_sync.schema import (
    REJECTED_COLUMNS,
    RELATION_COLUMNS,
    SUMMARY_KEYS,
    TASK_COLUMNS,
    cut_utf16,
    task_key,
)

TIME = "2024-05-01T10:00:00Z"


def sent(*to: str, event_id: str = "e1", **fields: Any) -> dict[str, Any]:
    recipients = [{"email": address, "field": "to"} for address in to]
    return {
        "event_id": event_id,
        "org_id": "acme",
        "type": "sent",
        "occurred_at": TIME,
        "sender": "rep@acme.com",
        "recipients": recipients,
        "subject": "Pricing",
    } | fields


def contacts(count: int, account: str | None = "001A") -> list[dict[str, Any]]:
    return [
        {
            "Id": f"003{i:04d}",
            "Email": f"p{i}@client.com",
            "AccountId": account,
            "LastModifiedDate": TIME,
        }
        for i in range(count)
    ]


def test_sixty_contacts_make_a_task_of_fifty_and_one_of_ten():
    crm = crm_of(contacts=contacts(60))
    result = plan(events_of([sent(*(f"p{i}@client.com" for i in range(60)))]), crm, settings_of())
    assert sorted(zip(result.tasks["batch_index"], result.tasks["who_count"], strict=True)) == [
        (0, 50),
        (1, 10),
    ]
    first = result.tasks.set_index("batch_index").loc[1]
    on_second = result.relations[result.relations["task_key"] == first["task_key"]]
    assert on_second["RelationId"].tolist() == [f"003{i:04d}" for i in range(50, 60)]
    assert on_second["position"].tolist() == list(range(10))
    assert first["WhoId"] == "0030050"


def test_keys_are_those_of_schema_task_key_for_any_text():
    event_ids = pa.array(["e1", "ünï-cødé ✉", "e1", "x" * 300], pa.large_string())
    parts = pa.array(["b0", "w003A", "b12", "w00Q\x1fodd"], pa.large_string())
    what_ids = pa.array(["006A", None, "", "001Ä"], pa.large_string())
    digests = task_digests("acme", event_ids, parts, what_ids)
    keys = hex_keys(digests).to_pylist()
    expected = [
        task_key("acme", e, p, w)
        for e, p, w in zip(
            event_ids.to_pylist(), parts.to_pylist(), what_ids.to_pylist(), strict=True
        )
    ]
    assert keys == expected


def test_task_keys_sort_as_text_even_when_their_first_bytes_tie():
    rng = np.random.default_rng(1)
    digests = rng.integers(0, 256, (200, 20), dtype=np.uint8)
    digests[100:, :8] = digests[:100, :8]  # pairs equal in the first 64 bits
    order = digest_order(digests)
    keys = hex_keys(digests).to_pylist()
    assert [keys[i] for i in order] == sorted(keys)


def test_no_events_make_an_empty_plan_in_the_contract_form():
    result = plan(events_of([]), crm_of(), settings_of())
    assert list(result.tasks.columns) == TASK_COLUMNS
    assert list(result.relations.columns) == RELATION_COLUMNS
    assert list(result.rejected.columns) == REJECTED_COLUMNS
    assert result.tasks.empty and result.relations.empty and result.rejected.empty
    assert [result.summary[k] for k in SUMMARY_KEYS] == [0] * len(SUMMARY_KEYS)


def test_plan_frames_have_contract_dtypes_and_a_fresh_index():
    crm = crm_of(contacts=contacts(3))
    events = events_of([sent("p0@client.com", "p1@client.com", "nobody@x.io")])
    events.index = [7]
    result = plan(events, crm, settings_of())
    for frame in (result.tasks, result.relations, result.rejected):
        assert frame.index.equals(pd.RangeIndex(len(frame)))
    assert result.tasks["who_count"].dtype == "int64"
    assert result.tasks["batch_index"].dtype == "int64"
    assert result.relations["position"].dtype == "int64"
    assert result.relations["is_primary"].dtype == "bool"
    assert result.tasks["WhatId"].dtype == pd.StringDtype("pyarrow")


@pytest.mark.parametrize(
    "shape",
    [list, lambda rs: np.array(rs, dtype=object), tuple],
    ids=["list", "numpy", "tuple"],
)
def test_recipient_cells_may_be_lists_arrays_or_arrow(shape):
    rows = [sent("p0@client.com", "p1@client.com"), sent("p2@client.com", event_id="e2")]
    crm = crm_of(contacts=contacts(3))
    as_python = events_of([r | {"recipients": shape(r["recipients"])} for r in rows])
    as_arrow = events_of(rows)
    as_arrow["recipients"] = pd.array(
        [r["recipients"] for r in rows],
        dtype=pd.ArrowDtype(pa.list_(pa.struct([("email", pa.string()), ("field", pa.string())]))),
    )
    assert comparable(plan(as_python, crm, settings_of())) == comparable(
        plan(as_arrow, crm, settings_of())
    )


def test_an_address_that_is_not_ascii_is_trimmed_and_lower_cased_as_python_does():
    """Unicode spaces and case rules are Python's (the oracle's), not a byte-wise ASCII one;
    the address is a valid internationalised one, so it is looked up (and unknown here)."""
    address = "\u00a0Åsa.İnce@Client.COM\u2003"
    result = plan(events_of([sent(address)]), crm_of(), settings_of())
    assert result.rejected[["email", "reason"]].values.tolist() == [
        [address.strip().lower(), "unmatched"]
    ]


def test_a_subject_that_is_not_ascii_is_stripped_as_python_does():
    crm = crm_of(contacts=contacts(1))
    result = plan(
        events_of([sent("p0@client.com", subject="\u2002Prix ñ\u3000")]), crm, settings_of()
    )
    assert result.tasks["Subject"].tolist() == ["Email: Prix ñ"]


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("planner", [plan, reference.plan], ids=["product", "reference"])
@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("😀" * 130, "Email: " + "😀" * 124),  # 7 + 248 = 255 units exactly
        ("a" + "😀" * 130, "Email: a" + "😀" * 123),  # 254: the 124th would split
        ("é" * 300, "Email: " + "é" * 248),  # one unit each, as code points
    ],
)
def test_subjects_are_cut_to_255_utf16_units_never_inside_a_surrogate_pair(
    planner, subject, expected
):
    """Salesforce counts text length in UTF-16 code units: an emoji is two, and a
    Subject over 255 fails with STRING_TOO_LONG (Task object reference:
    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm)."""
    crm = crm_of(contacts=contacts(1))
    result = planner(events_of([sent("p0@client.com", subject=subject)]), crm, settings_of())
    (cut,) = result.tasks["Subject"].tolist()
    assert cut == expected
    assert utf16_units(cut) <= 255
    cut.encode("utf-8")  # no lone surrogate: it would not encode


@pytest.mark.parametrize("planner", [plan, reference.plan], ids=["product", "reference"])
def test_descriptions_are_cut_to_32000_utf16_units(planner):
    crm = crm_of(contacts=contacts(1))
    body = "a" + "🎉" * 16_000  # 32,001 units
    result = planner(events_of([sent("p0@client.com", body=body)]), crm, settings_of())
    (cut,) = result.tasks["Description"].tolist()
    assert cut == "a" + "🎉" * 15_999
    assert utf16_units(cut) == 31_999


@pytest.mark.parametrize("limit", range(0, 14))
def test_utf16_cuts_of_the_planner_and_of_the_reference_agree_on_any_text(limit):
    texts = ["", "abc", "a😀b😀c", "😀" * 7, "中文字", "\U0010ffff\U00010000x", None]
    cut = utf16_prefix(pa.array(texts, pa.large_string()), limit).to_pylist()
    assert cut == [None if t is None else cut_utf16(t, limit) for t in texts]
    assert all(utf16_units(c) <= limit for c in cut if c is not None)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2024-05-01 23:30:00+00:00",  # a space, not a T
        "2024-05-01T23:30:00+0000",  # an offset without a colon
        "2024-05-01T23:30:00.1234567Z",  # more digits than a microsecond
        "2300-05-01T23:30:00Z",  # after pandas' nanosecond range
        datetime(2024, 5, 1, 23, 30, tzinfo=UTC),  # a datetime built in memory
    ],
)
def test_timestamps_outside_the_fast_path_are_judged_by_fromisoformat(occurred_at):
    crm = crm_of(contacts=contacts(1))
    result = plan(
        events_of([sent("p0@client.com", occurred_at=occurred_at)]),
        crm,
        settings_of(timezone="Asia/Tokyo"),
    )
    assert result.rejected.empty
    expected = "2300-05-02" if str(occurred_at).startswith("2300") else "2024-05-02"
    assert result.tasks["ActivityDate"].tolist() == [expected]


def test_a_column_of_aware_timestamps_is_read_as_such():
    events = events_of([sent("p0@client.com")])
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    result = plan(events, crm_of(contacts=contacts(1)), settings_of(timezone="America/Los_Angeles"))
    assert result.tasks["ActivityDate"].tolist() == ["2024-05-01"]


def test_r13_individual_mode_tasks_is_what_shared_activities_off_would_plan():
    """R13 counted without re-planning, checked against actually planning it."""
    rng = np.random.default_rng(3)
    people = contacts(40) + [
        {
            "Id": f"003B{i:03d}",
            "Email": f"q{i}@other.org",
            "AccountId": "001B",
            "LastModifiedDate": TIME,
        }
        for i in range(10)
    ]
    crm = crm_of(
        contacts=people,
        leads=[
            {
                "Id": "00QA",
                "Email": "hal@prospect.io",
                "IsConverted": False,
                "LastModifiedDate": TIME,
            }
        ],
        opportunities=[
            {
                "Id": f"006{i}",
                "AccountId": "001A" if i < 3 else "001B",
                "Name": "D",
                "IsClosed": i == 1,
                "CloseDate": "2024-12-31",
                "OwnerId": "005A" if i % 2 else None,
            }
            for i in range(5)
        ],
        contact_roles=[{"Id": "00K1", "OpportunityId": "0063", "ContactId": "0030001"}],
        users=[{"Id": "005A", "Email": "rep@acme.com", "IsActive": True}],
    )
    addresses = [p["Email"] for p in people] + ["hal@prospect.io", "nobody@x.io"]
    rows = [sent(*rng.choice(addresses, rng.integers(1, 70)), event_id=f"e{i}") for i in range(30)]
    for match in ("account", "contact_role"):
        for flags in ({}, {"open_opportunities_only": True}, {"owned_opportunities_only": True}):
            shared = plan(events_of(rows), crm, settings_of(opportunity_match=match, **flags))
            individual = plan(
                events_of(rows),
                crm,
                settings_of(opportunity_match=match, **flags),
                salesforce_shared_activities=False,
            )
            assert shared.summary["individual_mode_tasks"] == len(individual.tasks)
            assert shared.summary["tasks"] < len(individual.tasks)


@pytest.mark.parametrize(
    ("tenant", "salesforce", "expected"),
    [
        (True, True, ("shared", "shared activities on")),
        (False, True, ("individual", "tenant setting shared_activities is off")),
        (True, False, ("individual", "Salesforce org has Shared Activities off")),
    ],
)
def test_the_mode_says_which_side_turned_shared_activities_off(tenant, salesforce, expected):
    assert mode_of(settings_of(shared_activities=tenant), salesforce) == expected
    result = plan(
        events_of([]),
        crm_of(),
        settings_of(shared_activities=tenant),
        salesforce_shared_activities=salesforce,
    )
    assert (result.summary["mode"], result.summary["mode_reason"]) == expected


def test_the_trace_shows_every_address_in_order_with_its_outcome():
    crm = crm_of(contacts=contacts(2))
    events = events_of([sent("p0@client.com", "bad", "P0@client.com ", "p1@client.com")])
    _, trace = plan_traced(events, crm, settings_of())
    shown = trace[["position", "email", "outcome", "person_id"]].astype(object)
    assert shown.where(shown.notna(), None).values.tolist() == [
        [0, "p0@client.com", "matched", "0030000"],
        [1, "bad", "invalid_email", None],
        [2, "p0@client.com", "repeated", None],
        [3, "p1@client.com", "matched", "0030001"],
    ]


def test_a_written_plan_reads_back_the_same(tmp_path):
    crm = crm_of(contacts=contacts(3))
    result = plan(
        events_of([sent("p0@client.com", "p1@client.com", "no@x.io")]), crm, settings_of()
    )
    write_plan(result, tmp_path / "plan")
    again = read_plan(tmp_path / "plan")
    for name in ("tasks", "relations", "rejected"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(result, name))
    assert again.summary == result.summary


def test_the_reader_s_malformed_lines_join_the_rejections_and_the_counts():
    result = plan(events_of([sent("no@x.io")]), crm_of(), settings_of())
    malformed = pd.DataFrame(
        [{"event_id": None, "email": None, "reason": "malformed", "detail": "line 2 is not JSON"}]
    )
    merged = add_rejections(result, malformed)
    assert merged.summary["events_rejected"] == result.summary["events_rejected"] + 1
    assert merged.summary["rejected_by_reason"] == {"malformed": 1, "unmatched": 1}
    assert merged.rejected["reason"].tolist() == ["unmatched", "malformed"]


@pytest.mark.parametrize("salesforce_shared", [True, False])
def test_r13_individual_mode_tasks_are_also_counted_exactly_per_sender(salesforce_shared):
    crm = crm_of(
        contacts=[
            {"Id": "003A", "Email": "a@client.com", "AccountId": "001A", "LastModifiedDate": TIME},
            {"Id": "003B", "Email": "b@other.com", "AccountId": "001B", "LastModifiedDate": TIME},
        ],
        leads=[
            {"Id": "00QL", "Email": "lead@new.com", "IsConverted": False, "LastModifiedDate": TIME}
        ],
        opportunities=[
            {"Id": f"006{n}", "AccountId": "001A", "Name": n, "IsClosed": False, "OwnerId": None}
            for n in ("1", "2")
        ],
    )
    events = events_of(
        [
            # a (2 Opportunities) + b (its Account) + a Lead: 2 + 1 + 1 in individual mode
            sent("a@client.com", "b@other.com", "lead@new.com", sender=" Rep@Acme.com "),
            {
                "event_id": "e2",
                "org_id": "acme",
                "type": "open",
                "occurred_at": TIME,
                "sender": "boss@acme.com",
                "actor": "a@client.com",
                "subject": "Pricing",
            },
        ]
    )
    result = plan(events, crm, settings_of(), salesforce_shared_activities=salesforce_shared)
    by_sender = result.summary["individual_mode_tasks_by_sender"]
    assert by_sender == {"rep@acme.com": 4, "boss@acme.com": 2}
    assert sum(by_sender.values()) == result.summary["individual_mode_tasks"] == 6
