"""Coverage: which hours of a day were synced, and the day's hours in the org's time zone.

The audit's day is a UTC day (the lake's partitions, ``hour=00`` to ``hour=23``); the
people reading the report live in the org's time zone, where Salesforce dates its Tasks.
Every hour is therefore labelled twice: local time first, UTC in brackets.

An hour's state, judged at the audit's time (``HOUR_STATES``):

- *synced*: its load wrote results (``task_results.parquet``);
- *in progress*: not synced, but its plan was written, or the hour ended, less than
  ``AuditOptions.load_grace`` ago: its run may still be loading;
- *not loaded*: planned longer ago than that and never loaded (a dry run, a failed load);
- *not planned*: ended longer ago than that and never planned (the run never ran, or
  failed before planning);
- *not over*: the hour has not ended yet.

*Expected* hours are those that have ended; *missing* ones are expected hours that are
neither synced nor in progress. A day that is over with missing hours raises the coverage
alert (``alerts.coverage_alert``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from activity_sync.audit.counts import IN_PROGRESS, LOADED, NOT_LOADED, AuditOptions

HOURS = range(24)
SYNCED, NOT_PLANNED, NOT_OVER = "synced", "not_planned", "not_over"
HOUR_STATES = (SYNCED, IN_PROGRESS, NOT_LOADED, NOT_PLANNED, NOT_OVER)
STATE_LABELS = {
    SYNCED: "synced",
    IN_PROGRESS: "in progress",
    NOT_LOADED: "planned, not loaded",
    NOT_PLANNED: "not planned",
    NOT_OVER: "not over yet",
}


def hour_start(day: str, hour: int) -> pd.Timestamp:
    """The UTC start of ``hour`` of ``day``."""
    return pd.Timestamp(date.fromisoformat(day)).tz_localize("UTC") + pd.Timedelta(hours=hour)


def hour_labels(day: str, timezone: str) -> list[dict[str, Any]]:
    """The day's 24 UTC hours as a reader in ``timezone`` names them.

    Returns:
        One dict per hour: ``hour``, ``utc`` ("14:00"), ``local`` ("09:00"), ``local_date``
        (YYYY-MM-DD) and ``label``: "09:00 (14:00 UTC)", with the local weekday and date in
        front when the UTC day spans two local dates; plain "14:00 UTC" for a UTC org.
    """
    zone = ZoneInfo(timezone)
    starts = [hour_start(day, h) for h in HOURS]
    local = [s.tz_convert(zone) for s in starts]
    two_dates = len({t.date() for t in local}) > 1
    labels = []
    for h, utc, here in zip(HOURS, starts, local, strict=True):
        if timezone == "UTC":
            label = f"{utc:%H:%M} UTC"
        else:
            when = f"{here:%a %d %b %H:%M}" if two_dates else f"{here:%H:%M}"
            label = f"{when} ({utc:%H:%M} UTC)"
        labels.append(
            {
                "hour": h,
                "utc": f"{utc:%H:%M}",
                "local": f"{here:%H:%M}",
                "local_date": here.date().isoformat(),
                "label": label,
            }
        )
    return labels


def local_dates(day: str, timezone: str) -> list[str]:
    """The dates in ``timezone`` that the UTC day overlaps (one or two), as YYYY-MM-DD."""
    zone = ZoneInfo(timezone)
    first = hour_start(day, 0).tz_convert(zone).date()
    last = (hour_start(day, 23) + pd.Timedelta(minutes=59)).tz_convert(zone).date()
    return sorted({first.isoformat(), last.isoformat()})


def _ranges(hours: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of hours as ``(first, last + 1)``: [0, 1, 2, 5] -> [(0, 3), (5, 6)]."""
    if not hours:
        return []
    values = np.array(sorted(hours))
    breaks = np.flatnonzero(np.diff(values) != 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(values, breaks)]


def describe_hours(hours: list[int], day: str, timezone: str) -> str:
    """Hours as time ranges, local first: "19:00–22:00 (00:00–03:00 UTC), 00:00–01:00 (…)".

    A range's end is the end of its last hour: 24:00 UTC for the day's last.
    """
    zone = ZoneInfo(timezone)
    parts = []
    for first, end in _ranges(hours):
        start, stop = hour_start(day, first), hour_start(day, end)
        utc = f"{start:%H:%M}–{'24:00' if end == 24 else f'{stop:%H:%M}'} UTC"
        if timezone == "UTC":
            parts.append(utc)
        else:
            here, there = start.tz_convert(zone), stop.tz_convert(zone)
            parts.append(f"{here:%H:%M}–{there:%H:%M} ({utc})")
    return ", ".join(parts)


def coverage(
    hours: pd.DataFrame, day: str, timezone: str, now: datetime, options: AuditOptions
) -> dict[str, Any]:
    """Which of the day's hours were synced, and which are missing.

    Args:
        hours: ``counts.hour_counts`` of the day (one row per planned hour).
        day: the UTC day, YYYY-MM-DD.
        timezone: the org's time zone (for the sentence).
        now: the audit's time.
        options: ``load_grace``.

    Returns:
        ``state`` per hour (24 entries, ``HOUR_STATES``), the lists ``expected``, ``synced``,
        ``in_progress`` and ``missing`` (each a list of UTC hours), ``day_over``, ``complete``
        (a day that is over with every hour synced) and ``missing_text`` (the missing hours
        as time ranges, local first).
    """
    now_ts = pd.Timestamp(now)
    planned = hours.set_index("hour")["load_state"] if len(hours) else pd.Series(dtype=object)
    states = []
    for h in HOURS:
        end = hour_start(day, h) + pd.Timedelta(hours=1)
        load_state = planned.get(h)
        if load_state == LOADED:
            states.append(SYNCED)
        elif end > now_ts:
            states.append(NOT_OVER)
        elif load_state is None:
            recent = end > now_ts - pd.Timedelta(options.load_grace)
            states.append(IN_PROGRESS if recent else NOT_PLANNED)
        else:
            states.append(load_state)
    expected = [h for h, s in zip(HOURS, states, strict=True) if s != NOT_OVER]
    missing = [h for h, s in zip(HOURS, states, strict=True) if s in (NOT_LOADED, NOT_PLANNED)]
    day_over = hour_start(day, 0) + pd.Timedelta(days=1) <= now_ts
    synced = [h for h, s in zip(HOURS, states, strict=True) if s == SYNCED]
    return {
        "state": states,
        "expected": expected,
        "synced": synced,
        "in_progress": [h for h, s in zip(HOURS, states, strict=True) if s == IN_PROGRESS],
        "missing": missing,
        "day_over": bool(day_over),
        "complete": bool(day_over and len(synced) == len(HOURS)),
        "missing_text": describe_hours(missing, day, timezone),
    }


def day_window(day: str, timezone: str) -> dict[str, str]:
    """The UTC day as a sentence for the report's subtitle, in the org's time zone."""
    start = hour_start(day, 0)
    end = start + timedelta(days=1)
    if timezone == "UTC":
        return {"text": f"{start:%a %d %b %Y}, 00:00–24:00 UTC"}
    zone = ZoneInfo(timezone)
    here, there = start.tz_convert(zone), end.tz_convert(zone)
    return {
        "text": f"{here:%a %d %b %H:%M} – {there:%a %d %b %H:%M} {timezone} "
        f"(the UTC day {start:%d %b %Y}, 00:00–24:00 UTC)"
    }
