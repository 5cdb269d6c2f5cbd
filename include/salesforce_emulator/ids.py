"""Salesforce record Ids: key prefixes, 18-character case-safe form, 15-character input.

An Id is a 3-character key prefix naming the object, 12 characters of record number, and
(in the 18-character form) a 3-character suffix that encodes which of the first 15
characters are upper case, so that the Id survives case-insensitive systems. Both the
generator and the normaliser work on whole arrays because Bulk jobs handle 10,000 rows
at a time.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Key prefixes: the first three characters of an Id name the object (or kind of thing).
ORGANIZATION_PREFIX = "00D"
USER_PREFIX = "005"
ACCOUNT_PREFIX = "001"
CONTACT_PREFIX = "003"
LEAD_PREFIX = "00Q"
OPPORTUNITY_PREFIX = "006"
OPPORTUNITY_CONTACT_ROLE_PREFIX = "00K"
TASK_PREFIX = "00T"
TASK_RELATION_PREFIX = "0RT"
EVENT_PREFIX = "00U"
EVENT_RELATION_PREFIX = "0RE"
BULK_JOB_PREFIX = "750"
QUERY_LOCATOR_PREFIX = "01g"
PREFIX_LENGTH = 3
ID_LENGTH = 18

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# Two characters of "pod" and one reserved character, as in real Ids (e.g. 0035g00000…).
POD = "8c0"
NUMBER_WIDTH = 9

ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")

_BASE62_CODES = np.frombuffer(BASE62.encode(), dtype=np.uint8)
_SUFFIX_CODES = np.frombuffer(SUFFIX_CHARS.encode(), dtype=np.uint8)
_WEIGHTS = np.array([1, 2, 4, 8, 16], dtype=np.int64)


def _suffix_codes(codes15: np.ndarray) -> np.ndarray:
    """The three suffix characters (as byte codes) for an (n, 15) array of Id byte codes."""
    upper = ((codes15 >= ord("A")) & (codes15 <= ord("Z"))).astype(np.int64)
    bits = (upper.reshape(-1, 3, 5) * _WEIGHTS).sum(axis=2)
    return _SUFFIX_CODES[bits]


def _codes_to_strings(codes: np.ndarray) -> list[str]:
    width = codes.shape[1]
    packed = np.ascontiguousarray(codes, dtype=np.uint8).view(f"S{width}").ravel()
    return packed.astype(f"U{width}").tolist()


def make_ids(prefix: str, first_number: int, count: int) -> list[str]:
    """``count`` consecutive 18-character Ids for the object with key ``prefix``."""
    numbers = np.arange(first_number, first_number + count, dtype=np.int64)
    digits = np.empty((count, NUMBER_WIDTH), dtype=np.int64)
    rest = numbers.copy()
    for place in range(NUMBER_WIDTH - 1, -1, -1):
        rest, digits[:, place] = np.divmod(rest, 62)
    head = np.frombuffer((prefix + POD).encode(), dtype=np.uint8)
    codes15 = np.hstack([np.broadcast_to(head, (count, 6)), _BASE62_CODES[digits]])
    codes = np.hstack([codes15, _suffix_codes(codes15)])
    return _codes_to_strings(codes)


def to_18(ids: pd.Series) -> pd.Series:
    """Canonical 18-character form of each Id; NaN where the value is not a well-formed Id.

    The suffix of an 18-character input is recomputed, not trusted: Salesforce identifies a
    record by its first 15 characters.
    """
    text = ids.astype("string")
    ok = text.str.fullmatch(ID_RE.pattern).fillna(False).astype(bool)
    out = pd.Series(np.nan, index=ids.index, dtype=object)
    if not ok.any():
        return out
    first15 = text[ok].str.slice(0, 15).to_numpy(dtype=str)
    codes15 = np.frombuffer("".join(first15).encode("ascii"), dtype=np.uint8).reshape(-1, 15)
    codes = np.hstack([codes15, _suffix_codes(codes15)])
    out[ok] = _codes_to_strings(codes)
    return out


def to_18_one(value: str) -> str | None:
    """Scalar form of :func:`to_18` for URL path segments."""
    if not ID_RE.fullmatch(value or ""):
        return None
    codes15 = np.frombuffer(value[:15].encode("ascii"), dtype=np.uint8).reshape(1, 15)
    return value[:15] + _suffix_codes(codes15).tobytes().decode("ascii")


def prefix_of(ids: pd.Series) -> pd.Series:
    """The key prefix of each Id; an empty string where the value is missing.

    Cut by numpy (casting to a 3-character string type keeps the first 3): Bulk chunks call
    this several times each, and pandas string methods cost more than the work here.
    """
    text = ids.where(ids.notna(), "").to_numpy(dtype=f"U{ID_LENGTH}")
    return pd.Series(text.astype(f"U{PREFIX_LENGTH}"), index=ids.index, dtype=object)
