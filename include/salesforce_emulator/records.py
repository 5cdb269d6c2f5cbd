"""Incoming records as column frames, their per-row errors, and value checks by field type.

REST bodies and Bulk CSV files both arrive here as a frame of raw values plus a mask of
which cells the client actually set: in CSV an empty cell means "leave alone" and ``#N/A``
means null, in JSON a missing key means "leave alone" and ``null`` or ``""`` means null.
Checks run a column at a time over all rows, so a 200-row Bulk chunk costs the same
number of Python steps as one REST record.

Text lengths count UTF-16 code units, as Salesforce stores text: a character outside the
Basic Multilingual Plane (most emoji) counts 2 ("Surrogate pair characters are treated as
two characters", https://help.salesforce.com/s/articleView?id=005166849&type=1: the help
article shows it for formulas and the String class; the field limit is held the same way
here, the harsher reading). Too long is ``STRING_TOO_LONG``.

A restricted picklist takes only its values, exactly as written, and not those the API may
not set or that its API version does not know; anything else is
``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`` ("bad value for restricted picklist field: X",
the answer Salesforce gives: https://salesforcedictionary.com/errors/invalid-or-null-for-restricted-picklist).

Email fields take internationalised addresses (Email Address Internationalization: a
non-ASCII local part and a Unicode domain, "stored and displayed using Unicode characters",
https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai.htm and
https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai_prepare.htm), from API
49.0 on ("EAI requires API version 49.0 or later"; older callers get
``INVALID_EMAIL_ADDRESS``, the harsher reading). A domain is valid when IDNA (UTS #46) turns
it into an ASCII domain of LDH labels; an ``xn--`` label must be a valid A-label.

Date and dateTime values must fall within "The earliest valid date is 1700-01-01T00:00:00Z
GMT ... The latest valid date is 4000-12-31T00:00:00Z GMT" (Data Loader Guide, Data Import
Dates: https://developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/data_loader_dates.htm).
The page speaks of dates (its midnight is how Data Loader writes one), so a dateTime counts
by its UTC date: 4000-12-31T23:59:59Z is held, 4001-01-01T00:00:00Z is not, as the product's
planner assumes. Outside is ``FIELD_INTEGRITY_EXCEPTION``, the code an out-of-range date gets
on insert (https://salesforce.stackexchange.com/questions/339236); the message is not
documented (chosen: it names the value and the range).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import idna
import numpy as np
import pandas as pd

from salesforce_emulator.ids import to_18
from salesforce_emulator.objects import Field

CSV_NULL = "#N/A"

# Salesforce validates Email fields; an apostrophe is legal, whitespace, controls and
# brackets are not. The domain here is the ASCII one; a Unicode domain is checked in its IDNA
# form (_invalid_emails).
_EMAIL_LOCAL_RE = r"[^\s\x00-\x1f\x7f-\x9f@<>()\[\]\\,;:\"]+"
_EMAIL_DOMAIN_RE = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
EMAIL_FIELD_RE = f"{_EMAIL_LOCAL_RE}@{_EMAIL_DOMAIN_RE}"
# Addresses that need IDNA: a non-ASCII character or an A-label anywhere.
_NEEDS_IDNA_RE = r"[^\x00-\x7f]|(?i:xn--)"
EAI_SINCE_API = 49.0
_DOMAIN_MAX = 253  # DNS: a longer name is no domain (and bounds IDNA's work on hostile text)
DATE_FIRST, DATE_LAST = "1700-01-01", "4000-12-31"
_FIRST_MOMENT = pd.Timestamp(DATE_FIRST, tz="UTC")
_AFTER_LAST_MOMENT = pd.Timestamp(DATE_LAST, tz="UTC") + pd.Timedelta(days=1)
DATE_RE = r"\d{4}-\d{2}-\d{2}"
DATETIME_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:?\d{2})?"
# Characters that UTF-16 stores as a surrogate pair: two code units each.
ASTRAL_RE = r"[\U00010000-\U0010FFFF]"
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


Message = str | pd.Series | Callable[[], str | pd.Series]


class RowErrors:
    """The first error of each row: code, message and the fields it concerns.

    ``code`` changes only through ``add`` and ``absorb`` (others read it), so ``ok`` is
    kept between changes: checks ask for it many times per batch.
    """

    def __init__(self, index: pd.Index) -> None:
        self.code = pd.Series(None, index=index, dtype=object)
        self.message = pd.Series(None, index=index, dtype=object)
        self.fields = pd.Series(None, index=index, dtype=object)
        self._ok: pd.Series | None = None

    @property
    def ok(self) -> pd.Series:
        """Rows without an error (do not modify it)."""
        if self._ok is None:
            self._ok = self.code.isna()
        return self._ok

    def add(self, mask: pd.Series, code: str, message: Message, fields: str = "") -> None:
        """Record an error on the rows of ``mask`` that have none yet.

        ``message`` may be a function making it, called only when a row has the error.
        """
        if not mask.any():
            return
        if not mask.index.equals(self.code.index):
            mask = mask.reindex(self.code.index, fill_value=False)
        hit = mask.astype(bool) & self.ok
        if not hit.any():
            return
        self.code[hit] = code
        self._ok = None
        if callable(message):
            message = message()
        if isinstance(message, pd.Series):
            message = message.reindex(self.code.index)[hit]
        self.message[hit] = message
        self.fields[hit] = fields

    def subset(self, index: pd.Index) -> RowErrors:
        """The errors of some rows, to hand to an operation on those rows alone."""
        part = RowErrors(index)
        part.code, part.message, part.fields = (
            s[index].copy() for s in (self.code, self.message, self.fields)
        )
        return part

    def absorb(self, part: RowErrors) -> None:
        self._ok = None
        for mine, theirs in (
            (self.code, part.code),
            (self.message, part.message),
            (self.fields, part.fields),
        ):
            mine[theirs.index] = theirs

    def rolled_back(self) -> None:
        """allOrNone: every row without an error of its own reports the rollback."""
        self.add(
            pd.Series(True, index=self.code.index),
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
        )


@dataclass
class Incoming:
    """Raw values (None where null or unset) and the cells the client set.

    ``coerced``, when set (``dml.prepare``), holds the fields' storage values already
    checked, so that a Bulk job checks each value once rather than once per chunk.
    """

    values: pd.DataFrame
    given: pd.DataFrame
    coerced: pd.DataFrame | None = None

    @classmethod
    def from_csv(cls, frame: pd.DataFrame) -> Incoming:
        """A frame of CSV strings: empty is unset, ``#N/A`` is null."""
        given = frame != ""
        values = frame.where(given & (frame != CSV_NULL), None).astype(object)
        return cls(values, given)

    @classmethod
    def from_json(cls, records: list[dict[str, Any]], columns: list[str]) -> Incoming:
        """JSON records whose keys are already canonical field names."""
        texts = [{k: _json_text(v) for k, v in r.items()} for r in records]
        values = pd.DataFrame.from_records(texts, columns=columns).astype(object)
        given = pd.DataFrame(
            {c: [c in r for r in records] for c in columns}, index=values.index, dtype=bool
        )
        values = values.where(given & values.notna() & (values != ""), None)
        return cls(values, given)

    @property
    def index(self) -> pd.Index:
        return self.values.index

    def subset(self, mask: pd.Series) -> Incoming:
        coerced = self.coerced[mask] if self.coerced is not None else None
        return Incoming(self.values[mask], self.given[mask], coerced)

    def rows(self, start: int, stop: int) -> Incoming:
        """The rows from position ``start`` to ``stop`` (a Bulk chunk)."""
        coerced = self.coerced.iloc[start:stop] if self.coerced is not None else None
        return Incoming(self.values.iloc[start:stop], self.given.iloc[start:stop], coerced)

    def set(self, name: str, values: pd.Series | Any, given: pd.Series | bool = True) -> None:
        self.values[name] = values
        self.given[name] = given


def _json_text(value: Any) -> Any:
    """JSON scalars in the text form a CSV cell would carry, so one set of checks serves both."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return value


def stored_datetimes(moments: pd.Series) -> pd.Series:
    """UTC datetimes as the store keeps them: ``YYYY-MM-DDTHH:MM:SS.mmm+0000``."""
    return (
        moments.dt.strftime("%Y-%m-%dT%H:%M:%S.")
        + (moments.dt.microsecond // 1000).astype(str).str.zfill(3)
        + "+0000"
    )


def _as_text(s: pd.Series) -> pd.Series:
    return s.astype(str)


def _label(f: Field) -> str:
    return f.label or f.name


def utf16_length(text: pd.Series, limit: int = 0) -> pd.Series:
    """Each string's length in UTF-16 code units, the way Salesforce measures text.

    With ``limit``, only strings that could exceed it (over half of it in code points)
    are counted in full; the others keep their code-point length, which is enough to
    compare with ``limit``.
    """
    length = text.str.len()
    maybe = length > limit // 2 if limit else pd.Series(True, index=text.index)
    if maybe.any():
        length[maybe] += text[maybe].str.count(ASTRAL_RE)
    return length


def _picklist_refusals(f: Field, text: pd.Series, api_version: float | None) -> pd.Series:
    """Rows whose value a restricted picklist does not take from this API version."""
    allowed = [v for v in f.picklist if v not in f.not_settable]
    newer = [v for v, since in f.value_since if api_version is not None and api_version < since]
    return ~text.isin(allowed) | text.isin(newer)


def _invalid_emails(text: pd.Series, api_version: float | None) -> pd.Series:
    """Rows whose address an Email field refuses.

    ASCII addresses are judged by the pattern alone; the rare one with a non-ASCII
    character or an ``xn--`` label has its domain put through IDNA, once per distinct domain.
    """
    invalid = ~text.str.fullmatch(EMAIL_FIELD_RE).astype(bool)
    needs_idna = text.str.contains(_NEEDS_IDNA_RE).astype(bool)
    if not needs_idna.any():
        return invalid
    local, _, domain = (part[needs_idna] for part in _split_address(text))
    if api_version is not None and api_version < EAI_SINCE_API:
        unicode_ok = pd.Series(False, index=local.index)
    else:
        unicode_ok = local.str.fullmatch(_EMAIL_LOCAL_RE).astype(bool)
    distinct = domain.unique()
    ascii_domain = domain.map(dict(zip(distinct, map(_idna_domain, distinct), strict=True)))
    unicode_ok &= ascii_domain.notna() & ascii_domain.fillna("").str.fullmatch(_EMAIL_DOMAIN_RE)
    invalid[needs_idna] = ~unicode_ok
    return invalid


def _split_address(text: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Local part, ``@`` and domain, split at the last ``@`` (no ``@``: all empty)."""
    parts = text.str.rpartition("@")
    return parts[0], parts[1], parts[2]


def _idna_domain(domain: str) -> str | None:
    """The ASCII (IDNA, UTS #46) form of a domain, or None where IDNA refuses it."""
    if not domain or len(domain) > _DOMAIN_MAX * 4:
        return None
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _refuse_outside_dates(f: Field, moments: pd.Series, text: pd.Series, errors: RowErrors) -> None:
    """Rows whose (UTC) date Salesforce cannot hold get ``FIELD_INTEGRITY_EXCEPTION``."""
    outside = moments.notna() & ((moments < _FIRST_MOMENT) | (moments >= _AFTER_LAST_MOMENT))
    errors.add(
        outside,
        "FIELD_INTEGRITY_EXCEPTION",
        lambda: (
            f"{_label(f)}: date outside the range Salesforce holds "
            f"({DATE_FIRST} to {DATE_LAST}): " + text
        ),
        f.name,
    )


def coerce(
    f: Field, raw: pd.Series, errors: RowErrors, api_version: float | None = None
) -> pd.Series:
    """Storage values of one field for every row; rows that fail get an error.

    ``raw`` holds None where the row sets the field to null (or does not set it);
    ``api_version`` is the caller's (None: the newest), for values that came later.
    """
    out = pd.Series(None, index=raw.index, dtype=object)
    present = raw.notna() & errors.ok
    if not present.any():
        return out
    s = raw[present]
    kind = f.type
    bad_type = f"{_label(f)}: value not of required type: "
    if kind in ("string", "textarea", "picklist", "email"):
        text = _as_text(s)
        if f.length:
            errors.add(
                utf16_length(text, f.length) > f.length,
                "STRING_TOO_LONG",
                lambda: (
                    f"{_label(f)}: data value too large: "
                    + text.str.slice(0, 50)
                    + f" (max length={f.length})"
                ),
                f.name,
            )
        if kind == "picklist" and f.restricted:
            errors.add(
                _picklist_refusals(f, text, api_version),
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                lambda: "bad value for restricted picklist field: " + text,
                f.name,
            )
        if kind == "email":
            errors.add(
                _invalid_emails(text, api_version),
                "INVALID_EMAIL_ADDRESS",
                lambda: f"{_label(f)}: invalid email address: " + text,
                f.name,
            )
        out[present] = text
    elif kind == "boolean":
        lowered = _as_text(s).str.strip().str.lower()
        truth = lowered.isin(_TRUE)
        errors.add(
            ~(truth | lowered.isin(_FALSE)),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            lambda: bad_type + lowered,
            f.name,
        )
        out[present] = truth.astype(int)
    elif kind in ("int", "double"):
        number = pd.to_numeric(_as_text(s).str.strip(), errors="coerce")
        bad = number.isna() | ((number % 1 != 0) if kind == "int" else False)
        errors.add(bad, "INVALID_TYPE_ON_FIELD_IN_RECORD", lambda: bad_type + _as_text(s), f.name)
        ok = ~bad
        out[ok[ok].index] = (
            number[ok].astype(np.int64) if kind == "int" else number[ok].astype(float)
        ).astype(object)
    elif kind == "date":
        text = _as_text(s).str.strip()
        parsed = pd.to_datetime(
            text.where(text.str.fullmatch(DATE_RE)), format="%Y-%m-%d", errors="coerce"
        )
        errors.add(
            parsed.isna(), "INVALID_TYPE_ON_FIELD_IN_RECORD", lambda: bad_type + text, f.name
        )
        _refuse_outside_dates(f, parsed.dt.tz_localize("UTC"), text, errors)
        good = parsed.notna() & errors.ok[parsed.index]
        out[good[good].index] = parsed[good].dt.strftime("%Y-%m-%d")
    elif kind == "datetime":
        text = _as_text(s).str.strip()
        parsed = pd.to_datetime(
            text.where(text.str.fullmatch(DATETIME_RE)),
            utc=True,
            format="ISO8601",
            errors="coerce",
        )
        errors.add(
            parsed.isna(), "INVALID_TYPE_ON_FIELD_IN_RECORD", lambda: bad_type + text, f.name
        )
        _refuse_outside_dates(f, parsed, text, errors)
        good = parsed.notna() & errors.ok[parsed.index]
        out[good[good].index] = stored_datetimes(parsed[good])
    elif kind in ("id", "reference"):
        text = _as_text(s).str.strip()
        canonical = to_18(text)
        errors.add(
            canonical.isna(),
            "MALFORMED_ID",
            lambda: f"{_label(f)}: id value of incorrect type: " + text,
            f.name,
        )
        out[present] = canonical
    else:
        raise ValueError(f"field {f.name} of type {kind} cannot be written")
    return out.where(errors.ok, None)
