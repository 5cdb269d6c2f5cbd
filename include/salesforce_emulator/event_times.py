"""When an Event happens: start, end, duration and all-day, made to agree on every write.

What the Event object reference says
(https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-event.html):

- StartDateTime: "If this field has a value, then ActivityDate and ActivityDateTime must
  either be null or match the value of this field." A timed Event starts at
  StartDateTime or ActivityDateTime; an all-day Event (IsAllDayEvent) on ActivityDate.
- EndDateTime / DurationInMinutes: "If IsAllDayEvent is false, a value must be supplied
  for either DurationInMinutes or EndDateTime. Supplying values in both fields is allowed
  if the values add up to the same amount of time." For an all-day Event, "If both fields
  are null, the duration defaults to one day."
- Where errors appear (API 39.0 and later): "If there's no value for the
  DurationInMinutes field, errors appear in the EndDateTime field. Otherwise, they appear
  in the DurationInMinutes field."

Stored as Salesforce returns them: ActivityDateTime = StartDateTime, ActivityDate its UTC
date (the emulator's users live in UTC), EndDateTime = start + duration. An all-day Event
starts at midnight UTC of its first day and lasts 1,440 minutes a day, so it ends at
midnight after its last day: read literally, "add up to the same amount of time" makes
EndDateTime - StartDateTime the duration for all-day Events too.

Choices where Salesforce documents nothing (the harsher plausible one): a start given
twice must match to the millisecond (an all-day date: to the day); an end before the
start, a negative duration, an all-day duration that is not whole days and anything
longer than 14 days (Salesforce's multiday-event ceiling) are
``FIELD_INTEGRITY_EXCEPTION``; seconds beyond whole minutes between start and end are
dropped from DurationInMinutes (the end is kept as given), and an end given with a
duration must agree with it to the minute; a missing start is ``REQUIRED_FIELD_MISSING``
on StartDateTime. An update that moves the start and says nothing of the end keeps the
duration (the end moves).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesforce_emulator.records import RowErrors, stored_datetimes

TIME_FIELDS = (
    "StartDateTime",
    "EndDateTime",
    "ActivityDateTime",
    "ActivityDate",
    "DurationInMinutes",
    "IsAllDayEvent",
)
DAY_MINUTES = 1_440
MAX_DURATION_MINUTES = 14 * DAY_MINUTES
INTEGRITY = "FIELD_INTEGRITY_EXCEPTION"

START_MISMATCH = "StartDateTime and ActivityDateTime must match, or one of them be null"
DATE_MISMATCH = "StartDateTime and ActivityDate must match, or one of them be null"
DURATION_MISMATCH = "DurationInMinutes and EndDateTime must add up to the same amount of time"
END_BEFORE_START = "End Date Time must not be before Start Date Time"
WHOLE_DAYS = "An all-day event lasts whole days: DurationInMinutes must be a multiple of 1440"
TOO_LONG = "An event can't last longer than 14 days"


def _times(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="%Y-%m-%d", errors="coerce")


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def settle(
    typed: pd.DataFrame,
    given: pd.DataFrame | None,
    stored: pd.DataFrame | None,
    errors: RowErrors,
) -> None:
    """Check the time fields of Event writes and write back all six, derived and agreeing.

    Args:
        typed: the rows' storage values (None where null or not given); gains all six
            time columns.
        given: which cells the client set (None on insert: every non-null value counts);
            gains True for the six columns, so that an update writes them.
        stored: the records' current values of ``TIME_FIELDS`` by row (None on insert).
        errors: the rows' errors; rows that break a rule get one.
    """
    index = typed.index

    def fresh(name: str) -> pd.Series:
        """The value the write gives (None where it gives none)."""
        if name not in typed:
            return pd.Series(None, index=index, dtype=object)
        value = typed[name]
        return value.where(given[name], None) if given is not None else value

    def before(name: str) -> pd.Series:
        if stored is None:
            return pd.Series(None, index=index, dtype=object)
        return stored[name].reindex(index)

    all_day_new = fresh("IsAllDayEvent")
    all_day = all_day_new.fillna(before("IsAllDayEvent")).fillna(0).astype(int).eq(1)
    start, alt, day = (
        _times(fresh("StartDateTime")),
        _times(fresh("ActivityDateTime")),
        _dates(fresh("ActivityDate")),
    )
    errors.add(
        ~all_day & start.notna() & alt.notna() & (start != alt),
        INTEGRITY,
        START_MISMATCH,
        "StartDateTime",
    )
    timed_start = start.fillna(alt)
    errors.add(
        all_day & day.notna() & timed_start.notna() & (timed_start.dt.floor("D") != day),
        INTEGRITY,
        DATE_MISMATCH,
        "StartDateTime",
    )
    moved = timed_start.notna() | day.notna()
    first = pd.Series(
        np.where(all_day, day.fillna(timed_start.dt.floor("D")), timed_start), index=index
    )
    first = pd.to_datetime(first, utc=True).fillna(_times(before("StartDateTime")))
    first = first.where(~all_day, first.dt.floor("D"))
    errors.add(
        first.isna(),
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [StartDateTime]",
        "StartDateTime",
    )

    duration, end = _numbers(fresh("DurationInMinutes")), _times(fresh("EndDateTime"))
    field = pd.Series(np.where(duration.notna(), "DurationInMinutes", "EndDateTime"), index=index)
    last = pd.Series(np.where(all_day, end.dt.floor("D"), end), index=index)
    from_end = np.floor((pd.to_datetime(last, utc=True) - first).dt.total_seconds() / 60)
    errors.add(
        duration.notna() & from_end.notna() & (duration != from_end),
        INTEGRITY,
        DURATION_MISMATCH,
        "DurationInMinutes",
    )
    kept = _numbers(before("DurationInMinutes"))
    was_all_day = before("IsAllDayEvent").fillna(0).astype(int).eq(1)
    kept = kept.where(was_all_day == all_day)  # a change of kind restarts the duration
    minutes = duration.fillna(from_end).fillna(kept)
    minutes = minutes.where(~(all_day & minutes.isna()), DAY_MINUTES)
    missing = ~all_day & minutes.isna()
    errors.add(
        missing,
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [EndDateTime]",
        "EndDateTime",
    )
    for bad, message in (
        ((minutes < 0) | (all_day & (minutes == 0)), END_BEFORE_START),
        (all_day & (minutes % DAY_MINUTES != 0), WHOLE_DAYS),
        (minutes > MAX_DURATION_MINUTES, TOO_LONG),
    ):
        for name in ("DurationInMinutes", "EndDateTime"):
            errors.add(bad & field.eq(name), INTEGRITY, message, name)

    ok = errors.ok & first.notna() & minutes.notna()
    last = first + pd.to_timedelta(minutes.where(ok, 0), unit="m")
    last = last.where(all_day | end.isna(), end)  # a timed end is kept as given
    derived = {
        "StartDateTime": stored_datetimes(first),
        "ActivityDateTime": stored_datetimes(first),
        "ActivityDate": first.dt.strftime("%Y-%m-%d"),
        "EndDateTime": stored_datetimes(last),
        "DurationInMinutes": minutes.astype("Int64").astype(object),
        "IsAllDayEvent": all_day.astype(int),
    }
    touched = moved | duration.notna() | end.notna() | all_day_new.notna() | (stored is None)
    for name, values in derived.items():
        typed[name] = values.where(ok, None).astype(object)
        if given is not None:
            given[name] = touched & ok
