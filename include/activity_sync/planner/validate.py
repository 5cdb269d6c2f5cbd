"""Event-level validation: each event row's first rejection, in the agreed order.

The order of the checks is part of the contract (the reason code a broken event gets is
that of the first check it fails), and ``reference.py`` states the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.planner.arrow import join_text, mask, may_contain, sorted_strings, text_scalar
from activity_sync.planner.columns import (
    activity_dates,
    normalise_email,
    recipient_column,
    text_column,
)
from activity_sync.planner.meeting_fields import MeetingTimes, check_meetings
from activity_sync.schema import (
    ACTIVITY_DATE_RANGE,
    ACTOR_TYPES,
    EMAIL_PATTERN,
    EVENT_TYPES,
    IDNA_PREFIX,
    RECIPIENT_TYPES,
    REQUIRED_FIELDS,
    is_valid_email,
)
from activity_sync.settings import Settings

_EMAIL_FULL = f"^(?:{EMAIL_PATTERN})$"


def is_email(addresses: pa.Array) -> np.ndarray:
    """R3: which canonical addresses (``normalise_email``) Salesforce accepts, as
    ``schema.is_valid_email`` says: a regular expression for plain ASCII ones, and Python
    (IDNA) for the rare one that is not ASCII or keeps an "xn--" label."""
    valid = mask(pc.match_substring_regex(addresses, _EMAIL_FULL))
    rare = np.zeros(len(valid), bool)
    failed = np.flatnonzero(~valid)
    if len(failed):
        ascii_ = pc.string_is_ascii(addresses.take(pa.array(failed)))
        rare[failed] = ~mask(pc.fill_null(ascii_, True))
    if may_contain(addresses, IDNA_PREFIX):
        rare |= valid & mask(pc.match_substring(addresses, IDNA_PREFIX.decode()))
    rows = np.flatnonzero(rare)
    if len(rows):
        valid[rows] = [is_valid_email(v) for v in addresses.take(pa.array(rows)).to_pylist()]
    return valid


class CheckedEvents:
    """Every event row with its columns read and its first event-level rejection, if any."""

    def __init__(self, events: pd.DataFrame, settings: Settings) -> None:
        self.n = len(events)
        names = [*REQUIRED_FIELDS, "actor", "subject", "body", "url", "filename"]
        names += ["starts_at", "ends_at", "location"]  # R14's meeting fields
        self.text = {name: text_column(events, name) for name in names}
        self.recipients = recipient_column(events)
        self.dates = activity_dates(events, settings.timezone)
        self.raw_event_ids = events["event_id"] if "event_id" in events.columns else None
        types = self.text["type"].values
        self.is_actor = mask(pc.is_in(types, value_set=sorted_strings(ACTOR_TYPES)))
        self.is_recipient = mask(pc.is_in(types, value_set=sorted_strings(RECIPIENT_TYPES)))
        self.reason = np.full(self.n, None, object)
        self.detail = np.full(self.n, None, object)
        self.email = np.full(self.n, None, object)
        self.open = np.ones(self.n, bool)
        self.actor_email = normalise_email(self.text["actor"].values)
        self.meeting_times: MeetingTimes | None = None  # set by validate()

    def reject(
        self, rows: np.ndarray, reason: str, detail: str | Callable[[np.ndarray], Any]
    ) -> None:
        """Reject the rows of the mask ``rows`` not rejected yet: the first failing check wins."""
        hit = np.flatnonzero(self.open & rows)
        if len(hit):
            self.reason[hit] = reason
            self.detail[hit] = detail if isinstance(detail, str) else detail(hit)
            self.open[hit] = False

    def quoted(self, name: str, template: str) -> Callable[[np.ndarray], Any]:
        """Details naming each row's value of ``name``: ``template`` with {} for the value."""

        def detail(rows: np.ndarray) -> Any:
            values = self.text[name].values.take(pa.array(rows))
            shown = pc.fill_null(
                join_text("'", values, "'"), text_scalar("a value that is not a string")
            )
            before, after = template.split("{}")
            return join_text(before, shown, after).to_numpy(zero_copy_only=False)

        return detail

    def rejected(self) -> pd.DataFrame:
        """The rejected rows in the columns of rejected.parquet (not yet sorted)."""
        rows = np.flatnonzero(~self.open)
        return pd.DataFrame(
            {
                "event_id": self.event_id_text(rows),
                "email": self.email[rows],
                "reason": self.reason[rows],
                "detail": self.detail[rows],
            }
        )

    def event_id_text(self, rows: np.ndarray) -> np.ndarray:
        """event_id as text for the rejected file: a non-string id is shown as str() of it."""
        ids = self.text["event_id"].values.take(pa.array(rows)).to_numpy(zero_copy_only=False)
        foreign = self.text["event_id"].foreign[rows]
        if foreign.any():
            assert self.raw_event_ids is not None
            ids[foreign] = [
                str(v) for v in self.raw_event_ids.to_numpy(dtype=object)[rows[foreign]]
            ]
        return ids


def validate(events: pd.DataFrame, settings: Settings) -> CheckedEvents:
    """The event-level checks, in the agreed order; each rejects an event at most once.

    Args:
        events: the interval's events, one row each, as the reader left them.
        settings: the org's settings (its ``org_id`` and ``timezone`` matter here).

    Returns:
        The decoded columns and, per row, whether it is still open (planned) or why not.
    """
    checked = CheckedEvents(events, settings)
    text = checked.text
    for name in REQUIRED_FIELDS:
        checked.reject(text[name].empty, "missing_field", f"{name} is absent or empty")
    checked.reject(
        checked.is_actor & text["actor"].empty, "missing_field", "actor is absent or empty"
    )
    checked.reject(
        checked.is_recipient & checked.recipients.missing,
        "missing_field",
        "recipients are absent or an empty list",
    )
    known = mask(pc.is_in(text["type"].values, value_set=sorted_strings(EVENT_TYPES)))
    checked.reject(
        ~known, "unknown_type", checked.quoted("type", "type {} is not one this product syncs")
    )
    same_org = mask(pc.equal(text["org_id"].values, settings.org_id))
    checked.reject(
        ~same_org, "wrong_org", checked.quoted("org_id", f"org_id {{}} is not {settings.org_id!r}")
    )
    out_of_range = checked.dates.out_of_range
    checked.reject(
        mask(pc.is_null(checked.dates.dates)) & ~out_of_range,
        "invalid_field",
        checked.quoted("occurred_at", "occurred_at {} is not an ISO-8601 timestamp with an offset"),
    )
    first, last = ACTIVITY_DATE_RANGE
    checked.reject(
        out_of_range,
        "invalid_field",
        checked.quoted(
            "occurred_at",
            f"occurred_at {{}} falls on a date Salesforce cannot hold (only {first} to {last})",
        ),
    )
    checked.reject(
        checked.is_recipient & checked.recipients.invalid,
        "invalid_field",
        "recipients must be a list of objects with a string email and field to, cc or bcc",
    )
    for name in ("event_id", "sender", "subject", "body", "url", "filename"):
        checked.reject(text[name].foreign, "invalid_field", f"{name} is not a string")
    checked.reject(
        checked.is_actor & text["actor"].foreign, "invalid_field", "actor is not a string"
    )
    checked.meeting_times = check_meetings(checked, events, settings.timezone)

    open_rows = np.flatnonzero(checked.open)
    ids = text["event_id"].values.take(pa.array(open_rows)).to_pandas()
    duplicate = np.zeros(checked.n, bool)
    duplicate[open_rows[ids.duplicated().to_numpy()]] = True
    checked.reject(
        duplicate, "duplicate_event", checked.quoted("event_id", "event_id {} was already seen")
    )

    bad_actor = checked.is_actor & ~is_email(checked.actor_email)
    rows = np.flatnonzero(checked.open & bad_actor)
    checked.email[rows] = checked.actor_email.take(pa.array(rows)).to_numpy(zero_copy_only=False)
    checked.reject(bad_actor, "invalid_email", "the actor is not a syntactically valid email")
    return checked
