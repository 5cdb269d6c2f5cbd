"""Events as Arrow tables: the contract's column types, and the lake's lossless form.

The lake's ``events.parquet`` must hold whatever a landing file held, so that the plan
step judges exactly what the reader read: values of the contract's types go in typed
columns, and any other value (a number where text belongs, a JSON ``NaN``, text with a
lone surrogate) is kept as JSON in one extra column, :data:`ODD_VALUES`, and put back on
reading. A Parquet file (landed, or the lake's) is read back into the reader's frame here,
with a row whose text is not valid UTF-8 rejected (Parquet writers do not all check).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from activity_sync.schema import EVENT_COLUMNS, REJECTED_COLUMNS, is_text

# A recipient's keys; ``response`` is R14's optional meeting answer (null when absent).
RECIPIENT_KEYS = ("email", "field", "response")
RECIPIENTS_TYPE = pa.list_(pa.struct([(key, pa.string()) for key in RECIPIENT_KEYS]))
_TYPES = {"recipients": RECIPIENTS_TYPE, "is_all_day": pa.bool_()}
SCHEMA = pa.schema([(name, _TYPES.get(name, pa.string())) for name in EVENT_COLUMNS])
# Columns of times: a zoned datetime in a frame is kept as its ISO-8601 text.
_TIME_COLUMNS = frozenset({"occurred_at", "starts_at", "ends_at"})
# Per row, a JSON object of the values that fit no typed column, by column name; else null.
ODD_VALUES = "activity_sync_odd_values"
_CONSTANT = "json_constant"  # how ODD_VALUES writes a JsonConstant


@dataclass(frozen=True)
class JsonConstant:
    """``NaN``, ``Infinity`` or ``-Infinity``: not JSON, though Python's and Arrow's parsers
    take them as numbers. Kept as a value that is neither null nor text, so a field holding
    one is judged a wrong type (``invalid_field``) rather than quietly taken as empty."""

    name: str

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------- writing


def to_lake(events: pd.DataFrame) -> pa.Table:
    """The events as the lake keeps them: :data:`SCHEMA` plus :data:`ODD_VALUES`.

    Args:
        events: frames as ``read_events`` makes them (any column may be missing, or hold
            values of other types).

    Returns:
        A table that :func:`from_lake` turns back into the same values (a time with its
        zone becomes its ISO-8601 text, which the planner reads to the same date).
    """
    n = len(events)
    odd: list[dict[str, Any] | None] = [None] * n
    arrays = []
    for name in EVENT_COLUMNS:
        column = events[name] if name in events.columns else pd.Series([None] * n, dtype=object)
        if name in _TIME_COLUMNS:
            column = _times_as_text(column)
        typed, misfits = _typed(column.reset_index(drop=True), SCHEMA.field(name).type)
        for row, value in misfits.items():
            odd[row] = {**(odd[row] or {}), name: value}
        arrays.append(typed)
    encoded = [None if o is None else json.dumps(o, default=_json_value) for o in odd]
    return pa.Table.from_arrays(
        [*arrays, pa.array(encoded, pa.string())],
        schema=SCHEMA.append(pa.field(ODD_VALUES, pa.string())),
    )


def _times_as_text(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        column.dtype
    ):
        column = column.astype(object)
    if column.dtype != object:
        return column
    return column.map(lambda v: v.isoformat() if isinstance(v, datetime) else v)


def _typed(column: pd.Series, arrow_type: pa.DataType) -> tuple[pa.Array, dict[int, Any]]:
    """The column as ``arrow_type`` with nulls where a value does not fit, and those values.

    Arrow's inference decides when it can (one pass in C++); converting straight to the
    type would quietly decode bytes as text, and bytes are not a string."""
    try:
        inferred = pa.array(column, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
        inferred = None
    if isinstance(inferred, pa.ChunkedArray):
        inferred = inferred.combine_chunks()
    if inferred is not None and _fits(inferred.type, arrow_type):
        return _cast(inferred, arrow_type), {}
    cells = column.to_numpy(dtype=object)
    fitting = [_fitting(v, arrow_type) for v in cells]
    misfits = {i: v for i, (v, f) in enumerate(zip(cells, fitting, strict=True)) if f is _MISFIT}
    values = [None if f is _MISFIT else f for f in fitting]
    return pa.array(values, arrow_type), misfits


def _fits(inferred: pa.DataType, wanted: pa.DataType) -> bool:
    if pa.types.is_null(inferred):
        return True
    if pa.types.is_string(wanted):
        return pa.types.is_string(inferred) or pa.types.is_large_string(inferred)
    if pa.types.is_boolean(wanted):
        return pa.types.is_boolean(inferred)
    if not (pa.types.is_list(inferred) or pa.types.is_large_list(inferred)):
        return False
    item = inferred.value_type
    if pa.types.is_null(item):
        return True
    if not pa.types.is_struct(item):
        return False
    names = {item.field(i).name: item.field(i).type for i in range(item.num_fields)}
    return {"email", "field"} <= set(names) and all(
        _fits(names[k], pa.string()) for k in RECIPIENT_KEYS if k in names
    )


def _cast(values: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    if not pa.types.is_list(arrow_type) or pa.types.is_null(values.type):
        return values.cast(arrow_type)
    if pa.types.is_null(values.type.value_type):
        return values.cast(arrow_type)
    # Recipient structs may carry other fields than RECIPIENT_KEYS: keep those (a missing
    # response null). The raw offsets index the raw child (``.values``), whatever slice
    # ``values`` is.
    items = values.values
    children = dict(zip([f.name for f in items.type], items.flatten(), strict=True))
    kept = pa.StructArray.from_arrays(
        [
            children[k].cast(pa.string()) if k in children else pa.nulls(len(items), pa.string())
            for k in RECIPIENT_KEYS
        ],
        names=list(RECIPIENT_KEYS),
        mask=items.is_null(),
    )
    offsets = values.offsets.cast(pa.int32())
    return pa.ListArray.from_arrays(offsets, kept, type=arrow_type, mask=values.is_null())


_MISFIT = object()


def _fitting(value: Any, arrow_type: pa.DataType) -> Any:
    """The value as ``arrow_type`` takes it (None for null), or ``_MISFIT``."""
    if _is_null(value):
        return None
    if pa.types.is_string(arrow_type):
        return value if is_text(value) else _MISFIT
    if pa.types.is_boolean(arrow_type):
        return value if isinstance(value, bool) else _MISFIT
    if not isinstance(value, list | tuple | np.ndarray):
        return _MISFIT
    items = []
    for item in value:
        if _is_null(item):
            items.append(None)
        elif isinstance(item, dict) and all(
            _is_null(item.get(k)) or is_text(item.get(k)) for k in RECIPIENT_KEYS
        ):
            items.append({k: None if _is_null(item.get(k)) else item[k] for k in RECIPIENT_KEYS})
        else:
            return _MISFIT
    return items


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | dict | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _json_value(value: Any) -> Any:
    """What json.dumps cannot write itself, as JSON that is still no text where text belongs."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, JsonConstant):
        return {_CONSTANT: value.name}
    return {"not_json": repr(value)}


def _constant(value: dict[str, Any]) -> Any:
    return JsonConstant(value[_CONSTANT]) if value.keys() == {_CONSTANT} else value


# --------------------------------------------------------------------------- reading


def from_lake(table: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Parquet table (a landing file, or the lake's events) as the reader's frame.

    Args:
        table: the file's table; absent contract columns count as null in every row.

    Returns:
        The frame in :data:`EVENT_COLUMNS` (recipients an Arrow list column where the file
        allows it, odd values put back), and the rejected rows: a row holding text that is
        not valid UTF-8 (``invalid_field``, naming the column).
    """
    table, rejected = _valid_utf8(table)
    odd = table.column(ODD_VALUES) if ODD_VALUES in table.column_names else None
    for name in EVENT_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    table = _with_responses(table)
    frame = table.select(list(EVENT_COLUMNS)).to_pandas(types_mapper=_nested_as_arrow)
    if odd is not None and odd.null_count < len(odd):
        frame = _put_back(frame, odd)
    return frame, rejected


def _with_responses(table: pa.Table) -> pa.Table:
    """Recipients of a Parquet file written before R14 gain a null ``response``, so that
    every reader's recipients look alike."""
    index = table.column_names.index("recipients")
    column = table.column(index)
    kind = column.type
    if not pa.types.is_list(kind) or not pa.types.is_struct(kind.value_type):
        return table
    item = kind.value_type
    if item.get_field_index("response") >= 0 or item.get_field_index("email") < 0:
        return table
    chunks = []
    for chunk in column.chunks:
        values = chunk.values
        fields = [values.field(i) for i in range(item.num_fields)]
        names = [item.field(i).name for i in range(item.num_fields)]
        nulls = pa.nulls(len(values), pa.string())
        structs = pa.StructArray.from_arrays(
            [*fields, nulls], [*names, "response"], mask=values.is_null()
        )
        chunks.append(pa.ListArray.from_arrays(chunk.offsets, structs, mask=chunk.is_null()))
    return table.set_column(index, "recipients", pa.chunked_array(chunks))


def _put_back(frame: pd.DataFrame, odd: pa.ChunkedArray) -> pd.DataFrame:
    texts = odd.to_pylist()
    columns: dict[str, np.ndarray] = {}
    for row, text in enumerate(texts):
        if text is None:
            continue
        for name, value in json.loads(text, object_hook=_constant).items():
            if name not in columns:
                columns[name] = frame[name].to_numpy(dtype=object, copy=True)
            columns[name][row] = value
    for name, values in columns.items():
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _valid_utf8(table: pa.Table) -> tuple[pa.Table, pd.DataFrame]:
    """The table without rows whose contract columns hold invalid UTF-8, and those rows as
    rejections. Checking is one pass per column; finding the rows only runs on failure."""
    bad = np.zeros(table.num_rows, bool)
    first_column: dict[int, str] = {}
    for name in EVENT_COLUMNS:
        if name not in table.column_names:
            continue
        column = table.column(name)
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        for row in range(table.num_rows):
            try:
                column.slice(row, 1).validate(full=True)
            except pa.ArrowInvalid:
                first_column.setdefault(row, name)
                bad[row] = True
    if not bad.any():
        return table, _no_rejections()
    ids = _event_ids(table)
    rejected = pd.DataFrame(
        [
            {
                "event_id": ids[row],
                "email": None,
                "reason": "invalid_field",
                "detail": f"row {row + 1}: {first_column[row]} is not valid UTF-8 text",
            }
            for row in np.flatnonzero(bad)
        ],
        columns=REJECTED_COLUMNS,
        dtype=object,
    )
    return table.filter(pa.array(~bad)), rejected


def _event_ids(table: pa.Table) -> list[str | None]:
    """Each row's event_id where it is valid text (for naming a rejected row), else None."""
    if "event_id" not in table.column_names:
        return [None] * table.num_rows
    column = table.column("event_id")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return [None] * table.num_rows
    return [_decoded(v) for v in column.cast(pa.binary()).to_pylist()]


def _decoded(raw: bytes | None) -> str | None:
    try:
        return None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _nested_as_arrow(arrow_type: pa.DataType) -> pd.ArrowDtype | None:
    nested = pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
    return pd.ArrowDtype(arrow_type) if nested or pa.types.is_struct(arrow_type) else None


def _no_rejections() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in REJECTED_COLUMNS})
