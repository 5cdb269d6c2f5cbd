"""R14's meeting fields, checked and turned into the times of a Salesforce Event.

A ``meeting`` may carry ``starts_at``/``ends_at`` (default: ``occurred_at`` and 30
minutes later), ``is_all_day``, ``location`` and a ``response`` per attendee. Bad values
reject the meeting (``invalid_field``, the detail naming the field) whatever the mode, so
the same line is judged alike in shared and individual mode. Only meeting rows are looked
at: the cost on email-only input is a few empty columns. ``reference.py`` states the same
checks row by row.

Times count in whole minutes (seconds are dropped), as Salesforce's ``DurationInMinutes``
does. Salesforce's Event reference (https://developer.salesforce.com/docs/atlas.en-us.
object_reference.meta/object_reference/sforce_api_objects_event.htm) fixes the rest:
"Multiday events can't exceed 14 days"; for an all-day Event the start is midnight UTC
of its first day and StartDateTime + DurationInMinutes must equal EndDateTime ("values
add up to the same amount of time"); dates run from 1700-01-01 to 4000-12-31
(https://help.salesforce.com/s/articleView?id=000383587&type=1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.planner.arrow import (
    STRING,
    join_text,
    mask,
    sorted_strings,
    text_scalar,
    utf16_prefix,
)
from activity_sync.planner.columns import (
    flag_column,
    local_days,
    strip,
    utc_minutes,
)
from activity_sync.schema import (
    LOCATION_MAX,
    MEETING_DEFAULT_MINUTES,
    MEETING_RESPONSES,
    SALESFORCE_DATE_FIRST,
    SALESFORCE_DATE_LAST,
    SALESFORCE_EVENT_MAX_MINUTES,
)

if TYPE_CHECKING:
    from activity_sync.planner.validate import CheckedEvents

_NAT = np.datetime64("NaT", "m")
_MINUTE = np.timedelta64(1, "m")
_DAY = np.timedelta64(1, "D")
_MAX_DAYS = SALESFORCE_EVENT_MAX_MINUTES // (24 * 60)
# The instants Salesforce's dateTime takes: from the first day's midnight to the last day's.
_FIRST_INSTANT = np.datetime64(SALESFORCE_DATE_FIRST, "m")
_LAST_INSTANT = np.datetime64(SALESFORCE_DATE_LAST, "m") + np.timedelta64(24 * 60 - 1, "m")
_RESPONSES_TEXT = ", ".join(MEETING_RESPONSES)


@dataclass(frozen=True)
class MeetingTimes:
    """Per input row, the times a Salesforce Event of the meeting would carry (NaT and
    false for rows that are no open meeting).

    Attributes:
        start, end: StartDateTime and EndDateTime (UTC, whole minutes); for an all-day
            Event midnight UTC of its first day and of the day after its last.
        all_day: IsAllDayEvent.
        first_day: the all-day Event's ActivityDate (its first day in the org's zone).
        location: Location, trimmed, cut to Salesforce's 255, null when empty.
    """

    start: np.ndarray
    end: np.ndarray
    all_day: np.ndarray
    first_day: np.ndarray
    location: pa.Array


def check_meetings(checked: CheckedEvents, events: pd.DataFrame, timezone: str) -> MeetingTimes:
    """Reject the open meetings whose R14 fields are unusable, in this order: starts_at,
    ends_at, is_all_day, location, a response, ends_at not after the start, longer than 14
    days, outside Salesforce's dates. Returns the times of the meetings still open."""
    n = checked.n
    is_meeting = mask(pc.equal(checked.text["type"].values, "meeting"))
    rows = np.flatnonzero(checked.open & is_meeting)
    start = np.full(n, _NAT)
    end = np.full(n, _NAT)
    all_day = np.zeros(n, bool)
    first_day = np.full(n, np.datetime64("NaT"), "datetime64[D]")
    if not len(rows):
        return MeetingTimes(start, end, all_day, first_day, pa.nulls(n, STRING))

    def column(name: str) -> pd.Series:
        if name not in events.columns:
            return pd.Series([None] * len(rows), dtype=object)
        return events[name].iloc[rows].reset_index(drop=True)

    def at_rows(values: np.ndarray) -> np.ndarray:
        full = np.zeros(n, bool)
        full[rows] = values
        return full

    def reject(bad: np.ndarray, detail: str | object) -> None:
        checked.reject(at_rows(bad), "invalid_field", detail)  # type: ignore[arg-type]

    starts, starts_given = utc_minutes(column("starts_at"))
    ends, ends_given = utc_minutes(column("ends_at"))
    occurred, _ = utc_minutes(column("occurred_at"))
    flag = flag_column(column("is_all_day"))
    day_flag, day_foreign = flag.values, flag.foreign
    location = checked.text["location"]

    reject(
        starts_given & np.isnat(starts),
        checked.quoted("starts_at", "starts_at {} is not an ISO-8601 timestamp with an offset"),
    )
    reject(
        ends_given & np.isnat(ends),
        checked.quoted("ends_at", "ends_at {} is not an ISO-8601 timestamp with an offset"),
    )
    reject(day_foreign, "is_all_day is not true or false")
    reject(location.foreign[rows], "location is not a string")
    bad_response = _bad_responses(checked, rows)
    reject(bad_response >= 0, _response_detail(checked, rows, bad_response))

    begin = np.where(starts_given, starts, occurred)
    finish = np.where(ends_given, ends, begin + MEETING_DEFAULT_MINUTES * _MINUTE)
    reject(
        ends_given & ~np.isnat(begin) & (finish <= begin),
        checked.quoted("ends_at", "ends_at {} is not after the meeting's start"),
    )
    # All-day: the days in the org's zone from the start to the last minute before the end.
    days_first = local_days(np.where(day_flag, begin, _NAT), timezone)
    days_last = np.where(
        ends_given, local_days(np.where(day_flag, finish - _MINUTE, _NAT), timezone), days_first
    )
    event_start = np.where(day_flag, days_first.astype("datetime64[m]"), begin)
    event_end = np.where(day_flag, (days_last + _DAY).astype("datetime64[m]"), finish)
    too_long = np.where(
        day_flag,
        (days_last - days_first) >= _MAX_DAYS,
        (finish - begin) > SALESFORCE_EVENT_MAX_MINUTES * _MINUTE,
    )
    reject(
        too_long,
        checked.quoted(
            "ends_at",
            "ends_at {} makes the meeting longer than 14 days, the "
            "longest a Salesforce Event may last",
        ),
    )
    outside = (
        np.isnat(event_start)
        | np.isnat(event_end)
        | (event_start < _FIRST_INSTANT)
        | (event_end > _LAST_INSTANT)
    )
    reject(
        outside,
        "the meeting's times (starts_at, ends_at or occurred_at) fall outside Salesforce's "
        f"dates, {SALESFORCE_DATE_FIRST} to {SALESFORCE_DATE_LAST}",
    )

    kept = checked.open[rows]
    start[rows] = np.where(kept, event_start, _NAT)
    end[rows] = np.where(kept, event_end, _NAT)
    all_day[rows] = kept & day_flag
    first_day[rows] = np.where(kept & day_flag, days_first, np.datetime64("NaT"))
    return MeetingTimes(start, end, all_day, first_day, _locations(location.values))


def _bad_responses(checked: CheckedEvents, rows: np.ndarray) -> np.ndarray:
    """Per meeting row, the position of its first recipient with an unknown response, -1
    if none."""
    lists = checked.recipients.lists.take(pa.array(rows))
    response = pc.struct_field(pc.list_flatten(lists), "response")
    bad = mask(pc.is_valid(response)) & ~mask(
        pc.is_in(response, value_set=sorted_strings(MEETING_RESPONSES))
    )
    first = np.full(len(rows), -1, np.int64)
    if bad.any():
        parents = pc.list_parent_indices(lists).to_numpy()
        starts = lists.offsets.to_numpy()[:-1] - lists.offsets[0].as_py()
        flat_at = np.flatnonzero(bad)[::-1]  # last first, so the first bad one is written last
        first[parents[flat_at]] = flat_at - starts[parents[flat_at]]
    return first


def _response_detail(checked: CheckedEvents, rows: np.ndarray, first: np.ndarray):
    """Details naming the first bad response of each rejected meeting row."""
    by_row = dict(zip(rows.tolist(), first.tolist(), strict=True))

    def detail(hit: np.ndarray) -> np.ndarray:
        out = []
        for row in hit.tolist():
            recipients = checked.recipients.lists[row].as_py()
            index = by_row[row]
            value = recipients[index]["response"]
            out.append(f"recipients[{index}].response {value!r} is not one of {_RESPONSES_TEXT}")
        return np.array(out, dtype=object)

    return detail


def _locations(values: pa.Array) -> pa.Array:
    """Location: trimmed, cut to 255 UTF-16 code units, null when nothing is left."""
    text = utf16_prefix(pc.fill_null(strip(values), text_scalar("")), LOCATION_MAX)
    return pc.if_else(pc.equal(text, ""), pa.nulls(len(text), STRING), text)


def datetime_text(instants: np.ndarray) -> pa.Array:
    """Instants (``datetime64[m]``) as Salesforce dateTime text, ``yyyy-MM-ddTHH:mm:00.000Z``."""
    minutes = np.datetime_as_string(instants, unit="m")
    return join_text(pa.array(minutes, STRING), ":00.000Z")
