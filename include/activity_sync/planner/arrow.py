"""Small Arrow helpers the planner's layers share: one string type, masks, joins, takes.

Every text column of the planner is a ``large_string`` array (``STRING``), so that arrays
from different sources concatenate and compare without casts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

STRING = pa.large_string()


def text_scalar(value: str) -> pa.Scalar:
    return pa.scalar(value, STRING)


def join_text(*pieces: str | pa.Array) -> pa.Array:
    """Concatenate text arrays and literals row by row (null if any array value is null)."""
    return pc.binary_join_element_wise(
        *(text_scalar(p) if isinstance(p, str) else p for p in pieces), text_scalar("")
    )


def mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result as numpy, null counting as false."""
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(bool)


def single_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def may_contain(values: pa.Array, needle: bytes) -> bool:
    """Whether any value may hold ``needle``: one look at the data buffer, without a copy,
    so that looking for a rare text costs next to nothing when it is absent (a slice's
    unused bytes may give a false yes)."""
    values = single_chunk(values)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return True  # no text buffer to look at: let the caller check every value
    data = values.buffers()[2]
    if data is None or len(data) < len(needle):
        return False
    raw = np.frombuffer(data, np.uint8)
    # Candidates: where the needle's last byte is (for "xn--" a rare one in addresses,
    # unlike the x of "example"); then each of its other bytes in turn.
    last = len(needle) - 1
    at = np.flatnonzero(raw[last:] == needle[last])
    for offset, byte in enumerate(needle[:last]):
        at = at[raw[at + offset] == byte]
    return len(at) > 0


def from_series(values: pd.Series) -> pa.Array:
    """A pandas column of text (or nulls) as one ``STRING`` array."""
    return single_chunk(pa.array(values, type=STRING, from_pandas=True))


def sorted_strings(values: Iterable[str]) -> pa.Array:
    """A set of strings as a sorted ``STRING`` array, for ``is_in`` lookups."""
    return pa.array(sorted(values), STRING)


def index_in(values: pa.Array, lookup: pa.Array) -> np.ndarray:
    """Position of each value in ``lookup`` (distinct values), -1 where it is not there."""
    at = pc.index_in(values, value_set=lookup)
    return pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def take_or_null(values: pa.Array, at: np.ndarray) -> pa.Array:
    """``values`` at positions ``at``, null where ``at`` is -1."""
    return values.take(pa.array(at, pa.int64(), mask=at < 0))


def text_at(values: pa.Array, at: np.ndarray) -> np.ndarray:
    """``take_or_null`` as a numpy object array, for building pandas frames."""
    return take_or_null(values, at).to_numpy(zero_copy_only=False)


def fixed_width_strings(text: np.ndarray) -> pa.Array:
    """Rows of UTF-8 bytes, all of one width, as an Arrow string array."""
    n, width = text.shape
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int64) * width)
    data = pa.py_buffer(np.ascontiguousarray(text).tobytes())
    return pa.LargeStringArray.from_buffers(n, offsets, data)


def repeated_string(value: str, n: int) -> pa.Array:
    """``value`` n times, built as one buffer rather than n Python strings."""
    text = np.frombuffer(value.encode(), np.uint8)
    return fixed_width_strings(np.broadcast_to(text, (n, len(text))))


def string_dtype(arrow_type: pa.DataType) -> pd.StringDtype | None:
    """The pandas dtype of a plan's text columns (a ``types_mapper`` for ``to_pandas``)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def to_pandas(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``table`` as a frame whose text columns are Arrow-backed strings."""
    return table.select(columns).to_pandas(types_mapper=string_dtype)


def utf16_prefix(values: pa.Array, limit: int) -> pa.Array:
    """Each string cut to at most ``limit`` UTF-16 code units, as Salesforce counts text.

    A character outside the Basic Multilingual Plane (an emoji) is two units, a
    surrogate pair, and is kept whole or dropped whole. A character never takes fewer
    UTF-8 bytes than UTF-16 units, so only rows of more than ``limit`` bytes can be too
    long; on their bytes, each character's first byte weighs 1, or 2 when it starts a
    4-byte sequence, and a running sum finds every row's cut point at once.
    """
    values = single_chunk(values).cast(STRING)
    long_rows = mask(pc.greater(pc.binary_length(values), limit))
    if not long_rows.any():
        return values
    # The answer has at most ``limit`` characters: cutting there first bounds the work.
    head = pc.utf8_slice_codeunits(values.filter(long_rows), 0, limit)
    return pc.replace_with_mask(values, pa.array(long_rows), _cut(head, limit))


def _cut(values: pa.Array, limit: int) -> pa.Array:
    values = pa.concat_arrays([values])  # fresh buffers, offsets from 0
    offsets = np.frombuffer(values.buffers()[1], np.int64)[: len(values) + 1]
    raw = np.frombuffer(values.buffers()[2], np.uint8)
    weight = ((raw & 0xC0) != 0x80).astype(np.int32) + (raw >= 0xF0)
    units = np.concatenate([[0], np.cumsum(weight)])  # units[p]: units in bytes [0, p)
    starts, ends = offsets[:-1], offsets[1:]
    # The last byte position whose units still fit: just before the first character that
    # would not (a continuation byte never adds a unit, so it is a character boundary).
    cut = np.searchsorted(units, units[starts] + limit, side="right") - 1
    lengths = np.minimum(cut, ends) - starts
    new_offsets = np.concatenate([[0], np.cumsum(lengths)])
    take = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1] - starts, lengths)
    return pa.LargeStringArray.from_buffers(
        len(values), pa.py_buffer(new_offsets.astype(np.int64)), pa.py_buffer(raw[take].tobytes())
    )
