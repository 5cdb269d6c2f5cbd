"""The reference planner's reading of single values: nulls, text, addresses, dates and
recipient lists, stated plainly for ``reference.py`` and ``reference_meetings.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from activity_sync.schema import RECIPIENT_FIELDS, canonical_email


def is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | dict | np.ndarray):
        return False
    return bool(pd.isna(value))


def missing(value: Any) -> bool:
    return is_null(value) or (isinstance(value, str) and value == "")


def is_text(value: Any) -> bool:
    """A string that is text: a lone surrogate (a stray JSON "\\ud800" escape) cannot be
    stored or sent, so a value holding one is treated as not a string at all."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalise(address: str) -> str:
    """R3: addresses are trimmed and compared without case, a domain in Unicode or in its
    IDNA "xn--" form alike."""
    return canonical_email(address)


def crm_email(value: Any) -> str | None:
    """A CRM email as compared in R5; null or empty never matches anything."""
    if is_null(value) or not isinstance(value, str):
        return None
    return normalise(value) or None


def text_or_none(value: Any) -> str | None:
    return None if is_null(value) else value


def activity_date(occurred_at: Any, timezone: str) -> str | None:
    """The org's local date ("YYYY-MM-DD") of an ISO-8601 timestamp with an explicit offset
    (or Z); None for anything else, including a time whose local date leaves the calendar
    (years 1-9999). Four-digit years compare as text, so the caller checks the range."""
    if isinstance(occurred_at, str):
        try:
            occurred_at = datetime.fromisoformat(occurred_at)
        except ValueError:
            return None
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
        return None
    try:
        return occurred_at.astimezone(ZoneInfo(timezone)).date().isoformat()
    except (OverflowError, ValueError):
        return None


def recipient_list(value: Any) -> list[dict[str, Any]] | None:
    """The recipients as a list of well-formed dicts (a string email, a to/cc/bcc field, a
    string response if any), or None if any entry is malformed."""
    if not isinstance(value, list | tuple | np.ndarray):
        return None
    recipients = list(value)
    for recipient in recipients:
        if not isinstance(recipient, dict):
            return None
        if not is_text(recipient.get("email")):
            return None
        if recipient.get("field") not in RECIPIENT_FIELDS:
            return None
        response = recipient.get("response")  # R14: optional, but text when given
        if response is not None and not is_text(response):
            return None
    return recipients
