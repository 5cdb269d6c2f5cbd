"""sync.py: the run's interval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activity_sync.sync import IntervalError, resolve_interval

H13 = datetime(2026, 11, 27, 13, tzinfo=UTC)
H14 = datetime(2026, 11, 27, 14, tzinfo=UTC)


def test_the_interval_is_the_timetables_data_interval():
    assert resolve_interval(H13, H14, {}) == (H13, H14)


def test_explicit_params_win_over_the_data_interval():
    start, end = resolve_interval(
        H13,
        H14,
        {"interval_start": "2026-11-26T05:00:00+00:00", "interval_end": "2026-11-26T07:00:00Z"},
    )
    assert (start.hour, end.hour, start.day) == (5, 7, 26)


def test_a_manual_run_without_logical_date_fails_with_a_message_saying_what_to_do():
    with pytest.raises(IntervalError, match="interval_start and interval_end"):
        resolve_interval(None, None, {})


def test_a_zero_width_interval_is_refused_naming_the_timetable_it_needs():
    with pytest.raises(IntervalError, match="CronDataIntervalTimetable"):
        resolve_interval(H13, H13, {})


def test_interval_params_without_time_zone_are_refused():
    with pytest.raises(IntervalError, match="time zone"):
        resolve_interval(
            None, None, {"interval_start": "2026-11-26T05:00", "interval_end": "2026-11-26T06:00"}
        )
