"""The vectorised planner's R14 machinery: meeting times from every input shape, day
boundaries, UTF-16 cuts, true/false columns and event keys, each held to the plain Python
it stands for. The rule itself is exemplified, against both planners, in test_rules_r14.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from strategies import crm_of, events_of, settings_of

from activity_sync.plan import plan
from activity_sync.planner.arrow import utf16_prefix
from activity_sync.planner.columns import (
    flag_column,
    local_days,
    python_minute,
    utc_minutes,
)
from activity_sync.planner.keys import hex_keys, task_digests
from activity_sync.reference_meetings import meeting_times
from activity_sync.schema import (
    EVENT_KEY_DOMAIN,
    EVENT_KEY_PREFIX,
    SALESFORCE_EVENT_COLUMNS,
    event_key,
)
from activity_sync.schema import cut_utf16 as python_cut

TIMES = [
    "2024-05-01T09:30:45Z",  # seconds dropped
    "2024-05-01T09:30:00.999999+05:30",
    "1969-12-31T23:59:59-00:00",  # before 1970: floored, not truncated toward zero
    "2024-05-01 09:30+02:00",  # a space: fromisoformat's, not the fast path's
    "2024-05-01T09:30:00+0200",
    "3000-01-01T00:00:00Z",  # past pandas' nanoseconds
    "1500-06-01T12:00:00+01:00",
    "9999-12-31T23:59:00-01:00",  # past datetime's calendar once in UTC
    "2024-05-01T09:30:00",  # no offset
    "soon",
    "",
    None,
    7,
    datetime(2024, 5, 1, 9, 30, 59, tzinfo=timezone(timedelta(hours=-7))),
    datetime(2024, 5, 1, 9, 30),  # naive
]


def test_meeting_times_are_read_as_fromisoformat_reads_them_in_whole_utc_minutes():
    minutes, given = utc_minutes(pd.Series(TIMES, dtype=object))
    expected = [python_minute(v) for v in TIMES]
    assert [str(m) for m in minutes] == [str(e) for e in expected]
    assert given.tolist() == [v is not None for v in TIMES]
    assert str(minutes[0]) == "2024-05-01T09:30" and str(minutes[2]) == "1969-12-31T23:59"
    assert str(minutes[13]) == "2024-05-01T16:30"


def test_a_column_of_aware_timestamps_gives_the_same_minutes():
    stamps = pd.Series(pd.to_datetime(["2024-05-01T09:30:45+02:00", None], utc=True))
    minutes, given = utc_minutes(stamps)
    assert [str(m) for m in minutes] == ["2024-05-01T07:30", "NaT"]
    assert given.tolist() == [True, False]


def test_local_days_agree_with_zoneinfo_inside_and_outside_pandas_range():
    instants = np.array(
        ["2024-05-01T03:00", "2262-04-11T10:00", "3999-12-31T23:30", "1678-01-01T00:00", "NaT"],
        "datetime64[m]",
    )
    zone = "America/Los_Angeles"
    days = local_days(instants, zone)
    for instant, day in zip(instants[:-1].tolist(), days[:-1], strict=True):
        expected = instant.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).date()
        assert str(day) == expected.isoformat()
    assert np.isnat(days[-1])


@pytest.mark.parametrize("limit", [1, 2, 5, 255])
def test_locations_and_other_text_are_cut_like_schema_cut_utf16(limit):
    values = ["", "abc", "é" * 300, "\U0001f600" * 200, "a\U0001f600b", "x" * 254 + "\U0001f600"]
    cut = utf16_prefix(pa.array([*values, None], pa.large_string()), limit).to_pylist()
    assert cut == [python_cut(v, limit) for v in values] + [None]
    assert all(len(c.encode("utf-16-le")) // 2 <= limit for c in cut[:-1])


@pytest.mark.parametrize(
    ("cells", "truth", "foreign"),
    [
        ([True, False, None], [True, False, False], [False, False, False]),
        ([None, None], [False, False], [False, False]),
        (
            [True, "yes", 1, np.bool_(True), float("nan")],
            [True, False, False, True, False],
            [False, True, True, False, False],
        ),
    ],
    ids=["arrow booleans", "all null", "mixed cells"],
)
def test_true_false_columns_mark_anything_else_as_foreign(cells, truth, foreign):
    flags = flag_column(pd.Series(cells, dtype=object))
    assert flags.values.tolist() == truth
    assert flags.foreign.tolist() == foreign


def test_event_keys_are_those_of_schema_event_key_for_any_text():
    event_ids = pa.array(["m1", "ünï-cødé ✉", "x" * 300], pa.large_string())
    parts = pa.array(["b0", "w00QA", "b3"], pa.large_string())
    what_ids = pa.array(["006A", None, ""], pa.large_string())
    digests = task_digests("acme", event_ids, parts, what_ids, domain=EVENT_KEY_DOMAIN)
    keys = hex_keys(digests, EVENT_KEY_PREFIX).to_pylist()
    assert keys == [
        event_key("acme", e, p, w)
        for e, p, w in zip(
            event_ids.to_pylist(), parts.to_pylist(), what_ids.to_pylist(), strict=True
        )
    ]


def test_the_reference_reads_a_meeting_s_times_as_the_product_does():
    row = {
        "occurred_at": "2024-05-01T12:00:00Z",
        "starts_at": "2024-05-01 09:00:30-07:00",
        "ends_at": "2024-05-01T17:45:10Z",
        "recipients": [{"email": "ann@client.com", "field": "to"}],
    }
    times = meeting_times(row, "UTC")
    assert not isinstance(times, str)
    assert times.fields() | {"Location": None} == {
        "StartDateTime": "2024-05-01T16:00:00.000Z",
        "EndDateTime": "2024-05-01T17:45:00.000Z",
        "DurationInMinutes": 105,
        "IsAllDayEvent": False,
        "ActivityDate": None,
        "Location": None,
    }


def test_email_only_input_plans_empty_salesforce_event_frames_of_the_contract_form():
    crm = crm_of(
        contacts=[
            {
                "Id": "003A",
                "Email": "ann@client.com",
                "AccountId": "001A",
                "LastModifiedDate": "2024",
            }
        ]
    )
    row = {
        "event_id": "e1",
        "org_id": "acme",
        "type": "sent",
        "occurred_at": "2024-05-01T10:00:00Z",
        "sender": "rep@acme.com",
        "recipients": [{"email": "ann@client.com", "field": "to"}],
    }
    result = plan(events_of([row]), crm, settings_of())
    assert len(result.tasks) == 1
    assert list(result.salesforce_events.columns) == SALESFORCE_EVENT_COLUMNS
    assert result.salesforce_events.empty and result.event_relations.empty
    assert result.salesforce_events["DurationInMinutes"].dtype == "int64"
    assert result.salesforce_events["IsAllDayEvent"].dtype == "bool"
    assert result.salesforce_events["StartDateTime"].dtype == pd.StringDtype("pyarrow")


def test_salesforce_event_frames_have_contract_dtypes_and_a_fresh_index():
    crm = crm_of(
        contacts=[
            {
                "Id": "003A",
                "Email": "ann@client.com",
                "AccountId": "001A",
                "LastModifiedDate": "2024",
            }
        ]
    )
    row = {
        "event_id": "m1",
        "org_id": "acme",
        "type": "meeting",
        "occurred_at": "2024-05-01T10:00:00Z",
        "sender": "rep@acme.com",
        "recipients": [{"email": "ann@client.com", "field": "to"}],
        "is_all_day": True,
    }
    events = events_of([row])
    events.index = [9]
    result = plan(events, crm, settings_of())
    for frame in (result.salesforce_events, result.event_relations):
        assert frame.index.equals(pd.RangeIndex(len(frame)))
    dtypes = result.salesforce_events.dtypes
    assert (dtypes["DurationInMinutes"], dtypes["who_count"], dtypes["IsAllDayEvent"]) == (
        "int64",
        "int64",
        "bool",
    )
    assert dtypes["ActivityDate"] == pd.StringDtype("pyarrow")
    assert result.event_relations["position"].dtype == "int64"
    assert result.event_relations["is_primary"].dtype == "bool"
