"""The reference planner's R14 meeting fields, one meeting at a time in plain Python.

What ``planner/meeting_fields.py`` does for a whole interval, stated for one event: the
checks of a meeting's optional fields (``starts_at``, ``ends_at``, ``is_all_day``,
``location``, each attendee's ``response``) and the Salesforce Event times they give.
Times count in whole minutes; an all-day Event runs from midnight UTC of its first day (in
the org's zone) to midnight UTC after its last; an Event lasts at most 14 days and stays
within Salesforce's dates (see ``meeting_fields.py`` for the pages cited).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from activity_sync.reference_values import is_null, is_text
from activity_sync.schema import (
    LOCATION_MAX,
    MEETING_DEFAULT_MINUTES,
    MEETING_RESPONSES,
    SALESFORCE_DATE_FIRST,
    SALESFORCE_DATE_LAST,
    SALESFORCE_DATETIME_FORMAT,
    SALESFORCE_EVENT_MAX_MINUTES,
    cut_utf16,
)

_FIRST = datetime.fromisoformat(SALESFORCE_DATE_FIRST)
_LAST = datetime.fromisoformat(SALESFORCE_DATE_LAST).replace(hour=23, minute=59)


@dataclass(frozen=True)
class EventTimes:
    """The Salesforce Event fields a meeting gives (times as naive UTC datetimes)."""

    start: datetime
    end: datetime
    all_day: bool
    first_day: date | None
    location: str | None

    def fields(self) -> dict[str, Any]:
        """The events.parquet columns these times fill."""
        return {
            "StartDateTime": self.start.strftime(SALESFORCE_DATETIME_FORMAT),
            "EndDateTime": self.end.strftime(SALESFORCE_DATETIME_FORMAT),
            "DurationInMinutes": (self.end - self.start) // timedelta(minutes=1),
            "IsAllDayEvent": self.all_day,
            "ActivityDate": self.first_day.isoformat() if self.first_day else None,
            "Location": self.location,
        }


def _minute(value: Any) -> datetime | None:
    """An ISO-8601 time with an offset (or a zone-aware datetime) as naive UTC, cut to
    the minute; None for anything else."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute)


def _day(instant: datetime, zone: ZoneInfo) -> date | None:
    try:
        return instant.replace(tzinfo=UTC).astimezone(zone).date()
    except (OverflowError, ValueError):
        return None


def meeting_times(event: dict[str, Any], timezone: str) -> EventTimes | str:
    """A meeting's Salesforce Event times, or the problem (an ``invalid_field`` detail)
    with its R14 fields, the first of: starts_at, ends_at, is_all_day, location, a
    response, ends_at not after the start, longer than 14 days, outside Salesforce's dates.
    ``occurred_at`` is known to be a valid time here."""
    given_start, given_end = (not is_null(event.get(k)) for k in ("starts_at", "ends_at"))
    starts = _minute(event.get("starts_at"))
    ends = _minute(event.get("ends_at"))
    if given_start and starts is None:
        return f"starts_at {event['starts_at']!r} is not an ISO-8601 timestamp with an offset"
    if given_end and ends is None:
        return f"ends_at {event['ends_at']!r} is not an ISO-8601 timestamp with an offset"
    flag = event.get("is_all_day")
    if not is_null(flag) and not isinstance(flag, bool | np.bool_):
        return "is_all_day is not true or false"
    all_day = bool(flag) if not is_null(flag) else False
    location = event.get("location")
    if not is_null(location) and not is_text(location):
        return "location is not a string"
    for index, recipient in enumerate(event["recipients"]):
        response = recipient.get("response")
        if response is not None and response not in MEETING_RESPONSES:
            return f"recipients[{index}].response {response!r} is not a known response"

    start = starts if starts is not None else _minute(event["occurred_at"])
    if start is None:
        return "occurred_at is not a time"
    try:
        end = ends if ends is not None else start + timedelta(minutes=MEETING_DEFAULT_MINUTES)
    except OverflowError:
        return "the meeting's end (30 minutes after starts_at) leaves the calendar"
    if given_end and end <= start:
        return f"ends_at {event['ends_at']!r} is not after the meeting's start"
    first_day = last_day = None
    if all_day:
        zone = ZoneInfo(timezone)
        first_day = _day(start, zone)
        last_day = _day(end - timedelta(minutes=1), zone) if given_end else first_day
        if first_day is None or last_day is None:
            return "the meeting's days (starts_at, ends_at) leave the calendar"
        if (last_day - first_day).days + 1 > SALESFORCE_EVENT_MAX_MINUTES // (24 * 60):
            return "ends_at makes the meeting longer than 14 days"
        try:
            start = datetime.combine(first_day, time())
            end = datetime.combine(last_day + timedelta(days=1), time())
        except OverflowError:
            return "the meeting's days (starts_at, ends_at) leave the calendar"
    elif end - start > timedelta(minutes=SALESFORCE_EVENT_MAX_MINUTES):
        return "ends_at makes the meeting longer than 14 days"
    if start < _FIRST or end > _LAST:
        return "the meeting's times (starts_at, ends_at or occurred_at) leave Salesforce's dates"
    place = cut_utf16(location.strip(), LOCATION_MAX) if isinstance(location, str) else ""
    return EventTimes(start, end, all_day, first_day, place or None)
