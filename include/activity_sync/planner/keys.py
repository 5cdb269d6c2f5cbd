"""R11's task_key (and R14's event_key) for every planned record at once, byte for byte
``schema.task_key``'s and ``schema.event_key``'s.

The key text is joined by Arrow exactly as those functions join it; only the hashing
itself (``schema.TASK_KEY_HASH``) runs once per record. Keys are ordered by their
digests, so the hex text is built once, already in order. Tests hold the keys equal.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.planner.arrow import fixed_width_strings, join_text, text_scalar
from activity_sync.schema import (
    TASK_KEY_DIGEST_BYTES,
    TASK_KEY_HASH,
    TASK_KEY_PREFIX,
    TASK_KEY_SEPARATOR,
)


def task_digests(
    org_id: str,
    event_ids: pa.Array,
    key_parts: pa.Array,
    what_ids: pa.Array,
    *,
    domain: str | None = None,
) -> np.ndarray:
    """The digest behind ``schema.task_key`` of every Task, one row of bytes per Task.

    Args:
        org_id: the org every Task belongs to.
        event_ids, key_parts, what_ids: per Task, as ``task_key`` takes them (a null
            WhatId counts as "").
        domain: a leading part, ``schema.EVENT_KEY_DOMAIN`` for ``schema.event_key``.

    Returns:
        A (Tasks x TASK_KEY_DIGEST_BYTES) array of uint8.
    """
    lead = () if domain is None else (domain, TASK_KEY_SEPARATOR)
    raw = join_text(
        *lead,
        org_id,
        TASK_KEY_SEPARATOR,
        event_ids,
        TASK_KEY_SEPARATOR,
        key_parts,
        TASK_KEY_SEPARATOR,
        pc.fill_null(what_ids, text_scalar("")),
    )
    data = memoryview(raw.buffers()[2] or b"").cast("B")
    bounds = np.frombuffer(raw.buffers()[1], np.int64)[raw.offset : raw.offset + len(raw) + 1]
    bounds = bounds.tolist()
    digests = b"".join(
        [TASK_KEY_HASH(data[a:b]).digest() for a, b in zip(bounds, bounds[1:], strict=False)]
    )
    full = np.frombuffer(digests, np.uint8).reshape(-1, TASK_KEY_HASH().digest_size)
    return full[:, :TASK_KEY_DIGEST_BYTES]


def digest_order(digests: np.ndarray) -> np.ndarray:
    """The order that sorts the keys: hex text sorts as the bytes it shows do."""
    words = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel()
    order = np.argsort(words, kind="stable")
    if np.any(words[order][1:] == words[order][:-1]):  # 64 equal bits: let every byte decide
        tail = digests[:, 8:]
        padded = np.pad(tail, ((0, 0), (0, -tail.shape[1] % 8)))
        rest = np.ascontiguousarray(padded).view(">u8")
        order = np.lexsort((*rest.T[::-1], words))
    return order


def hex_keys(digests: np.ndarray, key_prefix: str = TASK_KEY_PREFIX) -> pa.Array:
    """The key strings of digests (task_keys unless another prefix is given), built as one
    Arrow buffer."""
    hex_text = np.ascontiguousarray(digests).tobytes().hex().encode("ascii")
    prefix, digits = len(key_prefix), 2 * TASK_KEY_DIGEST_BYTES
    text = np.empty((len(digests), prefix + digits), np.uint8)
    text[:, :prefix] = np.frombuffer(key_prefix.encode(), np.uint8)
    text[:, prefix:] = np.frombuffer(hex_text, np.uint8).reshape(-1, digits)
    return fixed_width_strings(text)
