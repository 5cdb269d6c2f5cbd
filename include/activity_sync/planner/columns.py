"""Decoding the event columns, whatever shape the input gave them, into Arrow arrays.

A column Arrow can take as a whole (text, or lists of {email, field} objects) is read in
one go; a column holding mixed cells (only from frames built in memory or odd files) is
sorted cell by cell in Python. Text is normalised the way Python's ``str.strip`` /
``str.lower`` do it (what the rules and the reference planner mean): by Arrow for ASCII
text, where the two provably agree, and by Python for the rare value that is not ASCII.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.planner.arrow import STRING, mask, may_contain, single_chunk
from activity_sync.schema import (
    ACTIVITY_DATE_RANGE,
    IDNA_PREFIX,
    RECIPIENT_FIELDS,
    canonical_email,
    is_text,
)

# What str.strip() removes from ASCII text (str.isspace), for the Arrow fast path.
_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace())
# Timestamps pandas parses exactly as datetime.fromisoformat does (with an offset), for years
# 1700-3999, whose instants pandas converts safely; any other string is judged by
# fromisoformat itself, one distinct value at a time.
_ISO_FAST = (
    r"^(1[7-9]\d\d|[23]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_FIRST_DAY, _LAST_DAY = (np.datetime64(day, "D") for day in ACTIVITY_DATE_RANGE)
# The day given to a valid time so far out that its local date cannot even be computed.
_BEYOND = np.datetime64("10000-01-01", "D")
_NAT = np.datetime64("NaT", "D")
# Instants pandas can hold (nanoseconds since 1970): the fast path of local_days.
_NS_FIRST, _NS_LAST = np.datetime64("1678-01-01T00:00"), np.datetime64("2262-04-10T00:00")
_RECIPIENT = pa.struct([("email", STRING), ("field", STRING), ("response", STRING)])
_RECIPIENT_LISTS = pa.list_(_RECIPIENT)


# --------------------------------------------------------------------------- text


def like_python(
    values: pa.Array,
    arrow: Callable[[pa.Array], pa.Array],
    python: Callable[[str], str],
    also: bytes | None = None,
) -> pa.Array:
    """``arrow`` applied where it equals ``python`` (ASCII text), ``python`` on the rest and
    on ASCII values that hold the text ``also`` once ``arrow`` is applied."""
    out = arrow(values)
    slow = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    if also is not None and may_contain(out, also):
        slow = pc.or_(slow, pc.fill_null(pc.match_substring(out, also.decode()), False))
    if not pc.any(slow).as_py():
        return out
    done = [python(v) for v in values.filter(slow).to_pylist()]
    return pc.replace_with_mask(out, slow, pa.array(done, out.type))


def normalise_email(values: pa.Array) -> pa.Array:
    """R3: ``schema.canonical_email`` of every address: Arrow trims and lower-cases ASCII
    text; Python takes the rare address that is not ASCII or names an IDNA ("xn--") label."""
    return like_python(
        values,
        lambda a: pc.ascii_lower(pc.ascii_trim(a, _ASCII_SPACE)),
        canonical_email,
        IDNA_PREFIX,
    )


def strip(values: pa.Array) -> pa.Array:
    """Trimmed exactly as ``value.strip()``."""
    return like_python(values, lambda a: pc.ascii_trim(a, _ASCII_SPACE), str.strip)


@dataclass(frozen=True)
class TextColumn:
    """One text column as Arrow strings; a cell holding anything but a string is null here."""

    values: pa.Array
    null: np.ndarray  # the cell is null (None, NaN, NA)
    foreign: np.ndarray  # the cell holds a value that is not a string

    @property
    def empty(self) -> np.ndarray:
        return self.null | mask(pc.equal(self.values, ""))


def text_column(events: pd.DataFrame, name: str) -> TextColumn:
    """Column ``name`` of the events (all null if there is no such column)."""
    n = len(events)
    if name not in events.columns:
        return TextColumn(pa.nulls(n, STRING), np.ones(n, bool), np.zeros(n, bool))
    column = events[name]
    null = column.isna().to_numpy(dtype=bool)
    values = _arrow_as(column, _is_string_type)
    if values is not None:
        return TextColumn(values.cast(STRING), null, np.zeros(n, bool))
    # Mixed cells: sort them one by one.
    cells = column.to_numpy(dtype=object)
    text = np.fromiter((is_text(v) for v in cells), bool, n)
    values = pa.array(np.where(text, cells, None), type=STRING)
    return TextColumn(values, null, ~text & ~null)


def _arrow_as(column: pd.Series, wanted: Callable[[pa.DataType], bool]) -> pa.Array | None:
    """The column as Arrow infers it, if that type is ``wanted``; else None (slow path).

    Inferred rather than converted to a target type, because conversion would quietly
    decode bytes as text, and bytes are not a string (the agreed rule)."""
    try:
        values = single_chunk(pa.array(column, from_pandas=True))
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return None
    return values if wanted(values.type) else None


def _is_string_type(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_null(arrow_type)
    )


# --------------------------------------------------------------------------- recipients


@dataclass(frozen=True)
class RecipientColumn:
    lists: pa.ListArray  # null where missing or invalid
    missing: np.ndarray  # null or an empty list
    invalid: np.ndarray  # not a list of {"email": str, "field": to/cc/bcc}


def recipient_column(events: pd.DataFrame) -> RecipientColumn:
    """The recipients of every event as Arrow lists of (email, field, response), with what
    is wrong (a response that is no string makes the list invalid)."""
    n = len(events)
    if "recipients" not in events.columns:
        return RecipientColumn(pa.nulls(n, _RECIPIENT_LISTS), np.ones(n, bool), np.zeros(n, bool))
    column = events["recipients"]
    lists = _arrow_recipients(column)
    if lists is None:
        lists, missing, invalid = _python_recipients(column.to_numpy(dtype=object))
    else:
        missing = mask(pc.is_null(lists)) | mask(pc.equal(pc.list_value_length(lists), 0))
        invalid = np.zeros(n, bool)
    # Entries that are no object, or lack a string email or a to/cc/bcc field.
    flat = pc.list_flatten(lists)
    field = pc.struct_field(flat, "field")
    bad = mask(pc.is_null(flat)) | mask(pc.is_null(pc.struct_field(flat, "email")))
    bad |= ~mask(pc.is_in(field, value_set=pa.array(RECIPIENT_FIELDS, STRING)))
    parents = pc.list_parent_indices(lists).to_numpy()
    invalid[np.unique(parents[bad])] = True
    lists = pc.if_else(pa.array(invalid), pa.nulls(n, _RECIPIENT_LISTS), lists)
    return RecipientColumn(lists, missing, invalid & ~missing)


def _arrow_recipients(column: pd.Series) -> pa.ListArray | None:
    """The column as an Arrow list of (email, field), or None if it needs the slow path."""
    values = _arrow_as(column, _is_recipients_type)
    return None if values is None else values.cast(_RECIPIENT_LISTS)


def _is_recipients_type(arrow_type: pa.DataType) -> bool:
    """A list of objects whose email and field are text, or a column with no lists at all."""
    if pa.types.is_null(arrow_type):
        return True
    if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
        return False
    item = arrow_type.value_type
    if pa.types.is_null(item):
        return True
    names = {item.field(i).name: item.field(i).type for i in range(item.num_fields)}
    return (
        pa.types.is_struct(item)
        and {"email", "field"} <= set(names)
        and all(_is_string_type(names[k]) for k in ("email", "field"))
        and _is_string_type(names.get("response", pa.null()))
    )


def _python_recipients(cells: np.ndarray) -> tuple[pa.ListArray, np.ndarray, np.ndarray]:
    """Recipients cell by cell, for columns holding something Arrow cannot take as a whole."""
    n = len(cells)
    missing, invalid = np.zeros(n, bool), np.zeros(n, bool)
    lists: list[Any] = [None] * n
    for i, cell in enumerate(cells):
        if isinstance(cell, list | tuple | np.ndarray):
            if len(cell) == 0:
                missing[i] = True
            elif all(_is_recipient(r) for r in cell):
                lists[i] = [
                    {"email": r["email"], "field": r["field"], "response": r.get("response")}
                    for r in cell
                ]
            else:
                invalid[i] = True
        elif cell is None or (not isinstance(cell, dict) and pd.isna(cell)):
            missing[i] = True
        else:
            invalid[i] = True
    return pa.array(lists, type=_RECIPIENT_LISTS), missing, invalid


def _is_recipient(value: Any) -> bool:
    """An object with a string email, a to/cc/bcc field and, if any, a string response."""
    if not isinstance(value, dict):
        return False
    response = value.get("response")
    return (
        is_text(value.get("email"))
        and value.get("field") in RECIPIENT_FIELDS
        and (response is None or is_text(response))
    )


# --------------------------------------------------------------------------- occurred_at


@dataclass(frozen=True)
class ActivityDates:
    """occurred_at as ActivityDates, and which valid times Salesforce cannot hold."""

    dates: pa.Array  # "YYYY-MM-DD" in the org's zone; null unless valid and within range
    out_of_range: np.ndarray  # a valid time whose local date is outside ACTIVITY_DATE_RANGE


def activity_dates(events: pd.DataFrame, timezone: str) -> ActivityDates:
    """occurred_at as the org's local date; only a time with an offset has one."""
    n = len(events)
    column = events["occurred_at"] if "occurred_at" in events.columns else None
    days = np.full(n, _NAT)
    if column is None or pd.api.types.is_datetime64_dtype(column.dtype):
        return _in_range(days)  # absent, or timestamps without a zone
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        days[:] = _zoned_days(column, timezone)
        return _in_range(days)
    text = text_column(events, "occurred_at")
    fast = mask(pc.match_substring_regex(text.values, _ISO_FAST))
    stamps = pd.to_datetime(
        text.values.filter(pa.array(fast)).to_pandas(), format="ISO8601", utc=True, errors="coerce"
    )
    days[fast] = _local_days(stamps, timezone)
    # Everything else that is not null goes to fromisoformat, once per distinct value.
    slow = np.flatnonzero(np.isnat(days) & ~text.null)
    if len(slow):
        zone = ZoneInfo(timezone)
        cells = pd.Series(column.iloc[slow].to_numpy(dtype=object))
        codes, distinct = pd.factorize(cells.map(_parsable), use_na_sentinel=False)
        found = np.array([_python_day(v, zone) for v in distinct], "datetime64[D]")
        days[slow] = found[codes]
    return _in_range(days)


def _parsable(value: Any) -> str | datetime | None:
    """What fromisoformat can judge; anything else (hashable or not) stands as None."""
    return value if isinstance(value, str | datetime) else None


def _local_days(stamps: pd.Series, timezone: str) -> np.ndarray:
    """Local dates of aware stamps that pandas can localise (years within 1700-3999)."""
    local = stamps.dt.tz_convert(timezone).dt.tz_localize(None)
    return local.to_numpy().astype("datetime64[D]")


def _zoned_days(stamps: pd.Series, timezone: str) -> np.ndarray:
    """Local dates of a column of aware timestamps, whatever their years. pandas cannot
    localise an instant past year 9999 (nor need it: such a time is outside Salesforce's
    range in any zone), so only instants within a day of the range are converted; the
    others get ``_BEYOND``."""
    utc = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    near = (utc >= _FIRST_DAY - 1) & (utc <= _LAST_DAY + 1)
    days = np.where(np.isnat(utc), _NAT, _BEYOND)
    if near.any():
        days[near] = _local_days(stamps[near], timezone)
    return days


def _python_day(value: Any, zone: ZoneInfo) -> np.datetime64:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return _NAT
    if not isinstance(value, datetime) or value.tzinfo is None:
        return _NAT
    try:
        return np.datetime64(value.astimezone(zone).date().isoformat(), "D")
    except (OverflowError, ValueError):  # so near year 1 or 9999 that the zone leaves the calendar
        return _BEYOND


def _in_range(days: np.ndarray) -> ActivityDates:
    outside = (days < _FIRST_DAY) | (days > _LAST_DAY)  # NaT compares false
    kept = np.where(outside, _NAT, days)
    return ActivityDates(pc.cast(pa.array(kept, from_pandas=True), STRING), outside)


# --------------------------------------------------------------------------- instants


def utc_minutes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """R14's meeting times: each cell as a UTC instant cut to the whole minute.

    Args:
        column: timestamps as ISO-8601 text with an offset (or zone-aware datetimes).

    Returns:
        ``datetime64[m]`` instants (NaT where a cell is null or holds no such time), and
        which cells hold a value at all. Parsed as ``datetime.fromisoformat`` parses: by
        pandas for the plain forms where the two agree, by Python for the rest.
    """
    n = len(column)
    minutes = np.full(n, np.datetime64("NaT"), "datetime64[m]")
    given = column.notna().to_numpy(dtype=bool)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return minutes, given  # timestamps without a zone are no instants
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        utc = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return utc.to_numpy().astype("datetime64[m]"), given
    text = text_column(column.to_frame("value"), "value")
    fast = mask(pc.match_substring_regex(text.values, _ISO_FAST))
    stamps = pd.to_datetime(
        text.values.filter(pa.array(fast)).to_pandas(), format="ISO8601", utc=True, errors="coerce"
    )
    minutes[fast] = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[m]")
    slow = np.flatnonzero(np.isnat(minutes) & given)
    if len(slow):
        cells = pd.Series(column.iloc[slow].to_numpy(dtype=object))
        codes, distinct = pd.factorize(cells.map(_parsable), use_na_sentinel=False)
        values = np.array([python_minute(v) for v in distinct], "datetime64[m]")
        minutes[slow] = values[codes]
    return minutes, given


def python_minute(value: Any) -> np.datetime64:
    """One value as ``utc_minutes`` reads it, by ``datetime.fromisoformat``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return np.datetime64("NaT")
    if not isinstance(value, datetime) or value.tzinfo is None:
        return np.datetime64("NaT")
    try:
        utc = value.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        # A valid time whose UTC instant leaves datetime's calendar (year 0 or 10000):
        # numpy holds it, so the range check names it as outside Salesforce's dates.
        offset = np.timedelta64(int(value.utcoffset().total_seconds()), "s")
        naive = np.datetime64(value.replace(tzinfo=None), "s") - offset
        return naive.astype("datetime64[m]")
    return np.datetime64(utc, "m")


def local_days(minutes: np.ndarray, zone_name: str) -> np.ndarray:
    """The date (``datetime64[D]``) of each UTC instant in the zone; NaT stays NaT."""
    days = np.full(len(minutes), np.datetime64("NaT"), "datetime64[D]")
    # pandas holds nanoseconds (years 1677-2262); Python takes the rare instant past them.
    fast = ~np.isnat(minutes) & (minutes >= _NS_FIRST) & (minutes <= _NS_LAST)
    if fast.any():
        stamps = pd.Series(minutes[fast].astype("datetime64[ns]")).dt.tz_localize("UTC")
        days[fast] = _local_days(stamps, zone_name)
    slow = np.flatnonzero(~np.isnat(minutes) & ~fast)
    if len(slow):
        zone = ZoneInfo(zone_name)
        # An instant past datetime's calendar (year 9999) comes back as an int: no day.
        days[slow] = [
            python_day(m, zone) if isinstance(m, datetime) else np.datetime64("NaT")
            for m in minutes[slow].tolist()
        ]
    return days


def python_day(instant: datetime, zone: ZoneInfo) -> np.datetime64:
    """The date of a naive UTC ``instant`` in ``zone``, NaT if it leaves the calendar."""
    try:
        local = instant.replace(tzinfo=UTC).astimezone(zone)
    except (OverflowError, ValueError):
        return np.datetime64("NaT")
    return np.datetime64(local.date().isoformat(), "D")


# --------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class FlagColumn:
    """One true/false column; a cell holding anything but a boolean is ``foreign``."""

    values: np.ndarray  # false where null or foreign
    foreign: np.ndarray


def flag_column(column: pd.Series) -> FlagColumn:
    """A column of true/false values (null counting as false)."""
    n = len(column)
    values = _arrow_as(column, lambda t: pa.types.is_boolean(t) or pa.types.is_null(t))
    if values is not None:
        truth = np.zeros(n, bool) if pa.types.is_null(values.type) else mask(values)
        return FlagColumn(truth, np.zeros(n, bool))
    cells = column.to_numpy(dtype=object)
    flag = np.fromiter((isinstance(v, bool | np.bool_) for v in cells), bool, n)
    null = column.isna().to_numpy(dtype=bool) & ~flag
    truth = np.fromiter(
        (bool(v) if f else False for v, f in zip(cells, flag, strict=True)), bool, n
    )
    return FlagColumn(truth, ~flag & ~null)
