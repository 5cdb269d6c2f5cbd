"""Reading one interval's email activity events from JSON Lines or Parquet.

The reader only decodes: every field rule is the planner's (``planner/validate.py``), so that
a frame built in memory and a file read from the lake are judged alike. What the reader alone
can see it reports as rejected rows and reads on: a line that is not one JSON object
(``malformed``), and a field whose bytes are not UTF-8 (``invalid_field``).

A line is what ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (the line breaks Arrow's reader
accepts). Arrow reads a file whole only where it is known to read every line as the
line-by-line judge below does (``_whole_file`` says where; test_hostile_input.py holds the
two equal); otherwise the file is judged line by line in Python. Either way a line's fate
depends on that line alone, never on its neighbours.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from activity_sync.errors import ActivitySyncError
from activity_sync.event_tables import (
    RECIPIENT_KEYS,
    RECIPIENTS_TYPE,
    SCHEMA,
    JsonConstant,
    from_lake,
)
from activity_sync.schema import EVENT_COLUMNS, REJECTED_COLUMNS, is_text

log = logging.getLogger(__name__)

# The explicit schema makes Arrow refuse a value of another JSON type instead of guessing;
# such a file is then read line by line and the planner judges the odd value.
_PARSE = pa_json.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
_READ = pa_json.ReadOptions(block_size=16 << 20)
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
BOM = b"\xef\xbb\xbf"
_JSON_SPACE = b" \t"  # besides the line breaks, the only whitespace JSON allows around a value
# Python's int() refuses more digits than this (CVE-2020-10735); Arrow takes any number.
_INT_DIGITS_MAX = 4000
_ENCODING_PROBLEM = "is not valid UTF-8 text"
_LF, _CR, _OPEN, _CLOSE = b"\n\r{}"
_FIELDS = frozenset(EVENT_COLUMNS)
_RECIPIENT_KEYS = frozenset(RECIPIENT_KEYS)


class EventsError(ActivitySyncError, ValueError):
    """An events file that cannot be read at all (the CLI exits 2 on it)."""


def read_events(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events of a ``.jsonl`` or ``.parquet`` file, and the rows the reader rejected.

    The frame has exactly :data:`EVENT_COLUMNS` (a column absent from the file is all
    null). ``recipients`` is an Arrow list column when the file allows it, so that no
    Python object is made per recipient; its cells read back as lists of dicts. The
    rejected frame has :data:`REJECTED_COLUMNS`: a line that is not one JSON object is
    ``malformed``; a line (or Parquet row) with a field that is not valid UTF-8 is
    ``invalid_field``, with its event_id where that one is readable.

    Raises:
        EventsError: the file is missing, unreadable, damaged Parquet, or neither JSON
            Lines (``.jsonl``, ``.ndjson``, ``.json``) nor Parquet.
    """
    path = Path(path)
    if not path.is_file():
        raise EventsError(f"events file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise EventsError(f"events file {path} is not readable Parquet: {exc}") from exc
        return from_lake(table)
    if suffix not in JSONL_SUFFIXES:
        raise EventsError(f"events file {path} is neither JSON Lines (.jsonl) nor Parquet")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EventsError(f"events file {path} cannot be read: {exc}") from exc
    return read_jsonl(data, str(path))


def read_jsonl(data: bytes, name: str = "events") -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`read_events` of JSON Lines given as bytes (``name`` is for the log)."""
    table = _whole_file(data)
    if table is not None:
        return _frame(table), _no_rejections()
    lines = data.splitlines()  # bytes split at \n, \r\n and \r only
    log.info(
        "%s: reading %d lines one by one (not every line is one clean object)", name, len(lines)
    )
    return _line_by_line(lines)


def _whole_file(data: bytes) -> pa.Table | None:
    """The file as Arrow reads it whole, or None where that could differ from judging it
    line by line. Arrow reads a stream of JSON values, not lines: it takes two objects on
    one line, or one object over two lines, and crashes the process on a file that starts
    with ``null`` (pyarrow 26; https://github.com/apache/arrow/issues/47409). So it only
    sees files whose every line is a ``{…}`` without NUL bytes, and its result counts only
    if it found one object per line, every text valid UTF-8 and every list well formed."""
    count, bom = _object_lines(data)
    if not count:
        return None  # nothing to read, or a line Arrow must not judge
    if bom:
        data = data.removeprefix(BOM).replace(b"\n" + BOM, b"\n").replace(b"\r" + BOM, b"\r")
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=_READ, parse_options=_PARSE)
        table.validate(full=True)  # Arrow's parser does not check UTF-8 inside strings
    except pa.ArrowException:
        return None
    return table if table.num_rows == count else None


def _object_lines(data: bytes) -> tuple[int, bool]:
    """How many lines hold something, if each looks like one object (``{`` … ``}`` between
    optional spaces and tabs, after a byte order mark at most) and no NUL byte is anywhere,
    else 0; and whether a line starts with a byte order mark. Vectorised: the file may be
    large and is almost always clean."""
    if b"\x00" in data:
        return 0, False
    buf = np.frombuffer(data, np.uint8)
    breaks = np.flatnonzero((buf == _LF) | (buf == _CR))
    starts = np.r_[0, breaks + 1]
    stops = np.r_[breaks, len(buf)]
    filled = stops > starts
    starts, stops = starts[filled], stops[filled]
    plain = (buf[starts] == _OPEN) & (buf[stops - 1] == _CLOSE)
    count, bom = int(plain.sum()), False
    for start, stop in zip(starts[~plain], stops[~plain], strict=True):
        body = _bare(data[start:stop])
        bom |= data.startswith(BOM, start)
        if not body:
            continue
        if body[:1] != b"{" or body[-1:] != b"}":
            return 0, False
        count += 1
    return count, bom


def _bare(line: bytes) -> bytes:
    """A line without its byte order mark (from a Windows editor, or from concatenating
    such files) and the spaces and tabs JSON allows around a value."""
    return line.removeprefix(BOM).strip(_JSON_SPACE)


# --------------------------------------------------------------------------- line by line


Judged = tuple[dict[str, Any] | None, dict[str, Any] | None]  # (record, rejection)


def _line_by_line(lines: list[bytes]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every line judged on its own: an event record, or a rejected row saying why not."""
    records: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not _bare(line):
            continue
        record, rejection = _judge(line.removeprefix(BOM), number)
        if record is not None:
            records.append(record)
        else:
            rejected.append(rejection)
    frame = _records_frame(records)
    return frame, pd.DataFrame(rejected, columns=REJECTED_COLUMNS, dtype=object)


def _judge(line: bytes, number: int) -> Judged:
    """One line as an event record (the contract fields), or as a rejected row."""
    try:
        text, valid_utf8 = line.decode("utf-8"), True
    except UnicodeDecodeError:
        # Undecodable bytes become lone surrogates (U+DC80-U+DCFF), which no JSON token
        # but a string can hold; the field holding them is named in _event.
        text, valid_utf8 = line.decode("utf-8", "surrogateescape"), False
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return _malformed(f"line {number} is not JSON ({exc.msg} at column {exc.colno})")
    except ValueError as exc:  # a number Python cannot make, for one
        return _malformed(f"line {number} is not JSON Python can read ({exc})")
    except RecursionError:
        return _deep_line(line, number)
    if not isinstance(value, dict):
        return _malformed(f"line {number} is a JSON {_json_kind(value)}, not an object")
    return _event(value, number, valid_utf8)


def _event(value: dict[str, Any], number: int, valid_utf8: bool) -> Judged:
    if isinstance(value, _Repeated) and value.repeated & _FIELDS:
        name = min(value.repeated & _FIELDS)
        return _malformed(f"line {number} has the field {name!r} more than once")
    record = {name: value.get(name) for name in EVENT_COLUMNS}
    recipients = record["recipients"]
    if isinstance(recipients, list):
        if any(isinstance(r, _Repeated) and r.repeated & _RECIPIENT_KEYS for r in recipients):
            return _malformed(
                f"line {number} has a recipient with email, field or response more than once"
            )
        # As Arrow reads them: email, field and response only, a missing one null.
        record["recipients"] = [
            {key: r.get(key) for key in RECIPIENT_KEYS} if isinstance(r, dict) else r
            for r in recipients
        ]
    event_id = record["event_id"]
    if not valid_utf8:
        # Only what Arrow reads counts: a bad byte in an ignored field is ignored with it.
        for name in EVENT_COLUMNS:
            if _has_surrogate(record[name]):
                shown = event_id if is_text(event_id) else None
                detail = f"line {number}: {name} {_ENCODING_PROBLEM}"
                return None, _rejected(shown, "invalid_field", detail)
    if isinstance(event_id, str) and not is_text(event_id):
        return _malformed(f"line {number} has an event_id that is not text (a lone surrogate)")
    return record, None


def _deep_line(line: bytes, number: int) -> Judged:
    """A line nested deeper than Python's json can read: Arrow, which has no depth limit,
    judges it as it would have in the whole file (the contract fields are never that deep)."""
    too_deep = _malformed(f"line {number} is JSON nested too deeply to read")
    if _object_lines(line) != (1, False):
        return too_deep  # what Arrow is never shown (see _whole_file)
    try:
        table = pa_json.read_json(io.BytesIO(line), read_options=_READ, parse_options=_PARSE)
        table.validate(full=True)
    except pa.ArrowException:
        return too_deep
    if table.num_rows != 1:
        return too_deep
    row = table.to_pylist()[0]
    return {name: row.get(name) for name in EVENT_COLUMNS}, None


class _Repeated(dict):
    """A JSON object that had keys more than once (json keeps the last); they are named."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.repeated = {key for key, _ in pairs if key in seen or seen.add(key)}


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    return value if len(value) == len(pairs) else _Repeated(pairs)


def _integer(digits: str) -> int | float:
    return int(digits) if len(digits) <= _INT_DIGITS_MAX else float(digits)


_DECODER = json.JSONDecoder(
    parse_constant=JsonConstant, parse_int=_integer, object_pairs_hook=_object
)


def _has_surrogate(value: Any) -> bool:
    """Whether a decoded value holds a lone surrogate anywhere (in text, keys or items)."""
    if isinstance(value, str):
        return not is_text(value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, JsonConstant):
        return "number"
    return {bool: "boolean", str: "string", list: "list"}.get(type(value), "number")


def _malformed(detail: str) -> Judged:
    return None, _rejected(None, "malformed", detail)


def _rejected(event_id: str | None, reason: str, detail: str) -> dict[str, Any]:
    return {"event_id": event_id, "email": None, "reason": reason, "detail": detail}


def _records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The judged records as a frame: each column typed (text, recipients as an Arrow list)
    where every value fits, else left as Python objects for the planner to judge."""
    columns = {}
    for name in EVENT_COLUMNS:
        values = [r[name] for r in records]
        try:
            array = pa.array(values, type=SCHEMA.field(name).type, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
            columns[name] = pd.Series(values, dtype=object)
            continue
        if name == "recipients":
            columns[name] = pd.Series(array, dtype=pd.ArrowDtype(RECIPIENTS_TYPE))
        else:
            columns[name] = pd.Series(array.to_pylist(), dtype=object)
    return pd.DataFrame(columns, columns=EVENT_COLUMNS)


def _frame(table: pa.Table) -> pd.DataFrame:
    return from_lake(table)[0]


def _no_rejections() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in REJECTED_COLUMNS})
