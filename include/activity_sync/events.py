"""Reading one interval's email activity events from JSON Lines or Parquet.

The reader only decodes: every field rule is the planner's (``plan.py``), so that a frame
built in memory and a file read from the lake are judged alike. What the reader alone can
see, a line that is not a JSON object, it reports as a ``malformed`` rejection and reads on.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from activity_sync.errors import ActivitySyncError
from activity_sync.schema import EVENT_COLUMNS, REJECTED_COLUMNS

RECIPIENTS_TYPE = pa.list_(pa.struct([("email", pa.string()), ("field", pa.string())]))
_SCHEMA = pa.schema(
    [(name, RECIPIENTS_TYPE if name == "recipients" else pa.string()) for name in EVENT_COLUMNS]
)
# The explicit schema makes Arrow refuse a value of another JSON type instead of guessing;
# such a file is then read line by line and the planner judges the odd value.
_PARSE = pa_json.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_READ = pa_json.ReadOptions(block_size=16 << 20)
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})


class EventsError(ActivitySyncError, ValueError):
    """An events file that cannot be read at all (the CLI exits 2 on it)."""


def read_events(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events of a ``.jsonl`` or ``.parquet`` file, and the rejected rows of malformed lines.

    The frame has exactly :data:`EVENT_COLUMNS` (a column absent from the file is all
    null). ``recipients`` is an Arrow list column when the file allows it, so that no
    Python object is made per recipient; its cells read back as lists of dicts. The
    rejected frame has :data:`REJECTED_COLUMNS`, reason ``malformed``, and is empty for
    Parquet.

    Raises:
        EventsError: the file is missing, unreadable, not UTF-8 text, or neither JSON
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
        return _frame(table), _no_rejections()
    if suffix not in JSONL_SUFFIXES:
        raise EventsError(f"events file {path} is neither JSON Lines (.jsonl) nor Parquet")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EventsError(f"events file {path} cannot be read: {exc}") from exc
    try:
        return _frame(_parse_jsonl(data)), _no_rejections()
    except pa.ArrowInvalid:
        return _read_lines(data, path)


def _parse_jsonl(data: bytes) -> pa.Table:
    return pa_json.read_json(io.BytesIO(data), read_options=_READ, parse_options=_PARSE)


def _read_lines(data: bytes, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The slow path, for files Arrow refused: find the malformed lines, keep the rest."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventsError(f"events file {path} is not UTF-8 text: {exc}") from exc
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    rejected: list[dict[str, Any]] = []
    # Only "\n" ends a line: str.splitlines() would also split inside values on \x1c or \u2028.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"line {number} is not JSON ({exc.msg} at column {exc.colno})"
        except RecursionError:
            problem = f"line {number} is JSON nested too deeply to read"
        else:
            if isinstance(value, dict) and _is_unicode(value):
                records.append(value)
                lines.append(line)
                continue
            if isinstance(value, dict):
                problem = f"line {number} has an event_id that is not text (a lone surrogate)"
            else:
                problem = f"line {number} is a JSON {type(value).__name__}, not an object"
        rejected.append({"event_id": None, "email": None, "reason": "malformed", "detail": problem})
    try:
        # The good lines alone may well suit Arrow, which keeps recipients columnar.
        frame = _frame(_parse_jsonl("\n".join(lines).encode("utf-8")))
    except pa.ArrowInvalid:
        frame = pd.DataFrame(
            {
                name: pd.Series([r.get(name) for r in records], dtype=object)
                for name in EVENT_COLUMNS
            }
        )
    return frame, pd.DataFrame(rejected, columns=REJECTED_COLUMNS, dtype=object)


def _is_unicode(value: dict[str, Any]) -> bool:
    """Whether the event_id is text: JSON may escape a lone surrogate, which no Parquet file,
    log or Salesforce field can hold. Other fields the planner judges (``invalid_field``),
    but without a usable id an event cannot even be recorded as rejected."""
    event_id = value.get("event_id")
    if not isinstance(event_id, str):
        return True
    try:
        event_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _frame(table: pa.Table) -> pd.DataFrame:
    missing = [name for name in EVENT_COLUMNS if name not in table.column_names]
    for name in missing:
        table = table.append_column(name, pa.nulls(table.num_rows, _SCHEMA.field(name).type))
    return table.select(list(EVENT_COLUMNS)).to_pandas(types_mapper=_nested_as_arrow)


def _nested_as_arrow(arrow_type: pa.DataType) -> pd.ArrowDtype | None:
    nested = pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
    return pd.ArrowDtype(arrow_type) if nested or pa.types.is_struct(arrow_type) else None


def _no_rejections() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in REJECTED_COLUMNS})
