"""The fixed contracts (docs/events.md, docs/outputs.md) as code: event types, reason codes, plan columns, limits.

Both planners (the vectorised one in ``planner/`` and the row-by-row oracle in
``reference.py``) import their shared vocabulary from here, so that a test comparing them
compares the rules, not two spellings of a constant.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import idna
import pandas as pd

EVENT_TYPES = frozenset(
    {"sent", "internal_reply", "reply", "open", "click", "download", "bounce", "meeting"}
)
# R2: only these are shared; meeting has recipients but is planned one Task per attendee.
SHARED_TYPES = frozenset({"sent", "internal_reply"})
RECIPIENT_TYPES = frozenset({"sent", "internal_reply", "meeting"})
ACTOR_TYPES = frozenset({"reply", "open", "click", "download", "bounce"})
RECIPIENT_FIELDS = ("to", "cc", "bcc")

REQUIRED_FIELDS = ("event_id", "org_id", "type", "occurred_at", "sender")

# Stable reason codes for rejected.parquet. Event-level reasons have no recipient email
# unless the actor is the cause; recipient-level reasons carry the recipient's email.
REASONS = {
    "malformed": "the line is not a JSON object",
    "missing_field": "a required field is absent or empty",
    "invalid_field": "a field has the wrong type or an unusable value",
    "unknown_type": "the event type is not one this product syncs",
    "wrong_org": "the event belongs to another org",
    "duplicate_event": "an event with this event_id was already seen",
    "invalid_email": "the address is not a syntactically valid email",
    "excluded": "the address is excluded by the org's settings",
    "bcc_not_synced": "a Bcc recipient and sync_bcc is off",
    "unmatched": "no Contact and no unconverted Lead has this email",
    "declined": "the attendee declined the meeting, so the Salesforce Event leaves them out",
    "already_synced": "a load of an earlier hour already wrote this event (delivered again)",
}
ALREADY_SYNCED = "already_synced"

# R3: what Salesforce's Email fields accept, which is what can ever match a Contact, Lead or
# User. Local part: RFC 5322 atext (apostrophes included) and dots, consecutive dots too, but
# not a leading dot; with Email Address Internationalization any non-ASCII character except
# controls and spaces (RFC 6532). Domain: dot-separated LDH labels, a top-level domain of 2+
# letters (or its IDNA "xn--" form). Quotes, comments, spaces and angle brackets: never.
# https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai.htm
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
# Non-ASCII characters of an internationalised local part: all but C1 controls, no-break
# and other Unicode spaces, line separators and surrogates (literal characters, so that
# Python's re and Arrow's RE2 read the class alike).
_EAI_LOCAL = (
    "\u00a1-\u167f\u1681-\u1fff\u200b-\u2027\u202a-\u202e\u2030-\u205e"
    "\u2060-\u2fff\u3001-\ud7ff\ue000-\U0010ffff"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN_PATTERN = rf"(?:{_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})"
EMAIL_PATTERN = rf"[{_ATEXT}][{_ATEXT}.]*@{DOMAIN_PATTERN}"
EMAIL_RE = re.compile(EMAIL_PATTERN)
# The prefix of an IDNA ("ASCII-compatible") label. A canonical address keeps one only where
# IDNA refused the domain, which is then no valid domain.
IDNA_PREFIX = b"xn--"
_IDNA_LEFTOVER_PATTERN = r"@(?:[^@]*\.)?xn--[^@]*$"
_LOCAL_RE = re.compile(f"[{_ATEXT}{_EAI_LOCAL}][{_ATEXT}{_EAI_LOCAL}.]*")
_DOMAIN_RE = re.compile(DOMAIN_PATTERN)
_IDNA_LEFTOVER_RE = re.compile(_IDNA_LEFTOVER_PATTERN)
_DOMAIN_MAX = 253  # DNS: a longer name is no domain (and bounds IDNA's work on hostile text)


def canonical_domain(domain: str) -> str:
    """A lower-cased domain with every internationalised label in its Unicode form (as
    Salesforce stores and shows EAI addresses), so that ``exämple.com`` and
    ``xn--exmple-cua.com`` are one domain. A domain IDNA refuses is returned as it was (and
    is then no valid address)."""
    if domain.isascii() and "xn--" not in domain:
        return domain
    if len(domain) > _DOMAIN_MAX * 4:
        return domain
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False)
        labels = [
            label
            if label.isascii() and not label.startswith("xn--")
            else idna.decode(idna.encode(label))
            for label in mapped.split(".")
        ]
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain
    return ".".join(labels)


def canonical_email(address: str) -> str:
    """R3: an address as it is compared: trimmed, lower-cased (as ``str.strip().lower()``),
    its domain in the one form of :func:`canonical_domain`."""
    text = address.strip().lower()
    if text.isascii() and "xn--" not in text:
        return text
    local, at, domain = text.rpartition("@")
    return f"{local}@{canonical_domain(domain)}" if at else text


def is_valid_email(address: str) -> bool:
    """R3: whether a canonical address (:func:`canonical_email`) is one Salesforce accepts."""
    if address.isascii():
        return bool(EMAIL_RE.fullmatch(address)) and not _IDNA_LEFTOVER_RE.search(address)
    local, at, domain = address.rpartition("@")
    if not (at and _LOCAL_RE.fullmatch(local)) or len(domain) > _DOMAIN_MAX:
        return False
    labels = domain.split(".")
    if any(label.startswith("xn--") for label in labels):
        return False  # left by canonical_domain because IDNA refused the domain
    try:
        ascii_labels = [
            label if label.isascii() else idna.encode(label).decode("ascii") for label in labels
        ]
    except (idna.IDNAError, UnicodeError):
        return False
    return bool(_DOMAIN_RE.fullmatch(".".join(ascii_labels)))


# Automated mailboxes treated as excluded when exclude_system_addresses is on. Compared to
# the local part with any +tag removed.
SYSTEM_LOCAL_PARTS = frozenset(
    {
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
        "do_not_reply",
        "mailer-daemon",
        "postmaster",
        "notifications",
        "notification",
        "bounce",
        "bounces",
    }
)

# Text limits in UTF-16 code units, which is how Salesforce counts (an emoji is two):
# Task Subject is a 255-character string, Description a 32,000-character text area
# (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm).
SUBJECT_MAX = 255
# The dates a Salesforce date field can hold, ActivityDate included: "The earliest valid date
# is 1700-01-01 ... The latest valid date is 4000-12-31" (Data Loader Guide, "Data Import
# Dates": https://developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/data_loader_dates.htm).
ACTIVITY_DATE_RANGE = ("1700-01-01", "4000-12-31")
DESCRIPTION_MAX = 32_000
TASK_KEY_MAX = 80
BATCH_SIZE = 50  # R6: Salesforce relates at most 50 Contacts to one Task.

# R11's task_key: the prefix marks the keys this product wrote (the audit reads back only
# those); the digest is the first 20 bytes of the SHA-256 of the key's parts joined by the
# separator, shown as 40 hex digits.
TASK_KEY_PREFIX = "as1_"
TASK_KEY_SEPARATOR = "\x1f"
TASK_KEY_HASH = hashlib.sha256
TASK_KEY_DIGEST_BYTES = 20

# R1: the planning mode summary.json names (Shared Activities on, or off somewhere).
SHARED_MODE, INDIVIDUAL_MODE = "shared", "individual"

# Subject prefixes, in the style of email-sync tools: the type must be visible in the
# Task list without opening the record.
SUBJECT_PREFIX = {
    "sent": "Email: ",
    "internal_reply": "Email: ",
    "reply": "Reply: ",
    "open": "Email opened: ",
    "click": "Link clicked: ",
    "download": "File downloaded: ",
    "bounce": "Email bounced: ",
    "meeting": "Meeting: ",
}
TASK_STATUS = "Completed"
TASK_SUBTYPE = {t: ("Task" if t == "meeting" else "Email") for t in EVENT_TYPES}

EVENT_COLUMNS = [
    "event_id",
    "org_id",
    "type",
    "occurred_at",
    "sender",
    "actor",
    "recipients",
    "subject",
    "body",
    "thread_id",
    "message_id",
    "url",
    "filename",
    # R14's optional meeting fields (recipients may also carry a ``response``).
    "starts_at",
    "ends_at",
    "location",
    "is_all_day",
]
TASK_COLUMNS = [
    "task_key",
    "org_id",
    "event_id",
    "event_type",
    "WhoId",
    "WhatId",
    "OwnerId",
    "Subject",
    "Description",
    "ActivityDate",
    "Status",
    "TaskSubtype",
    "who_count",
    "batch_index",
]
RELATION_COLUMNS = ["task_key", "RelationId", "position", "is_primary"]
REJECTED_COLUMNS = ["event_id", "email", "reason", "detail"]
SUMMARY_KEYS = [
    "events",
    "events_rejected",
    "tasks",
    "shared_tasks",
    "individual_tasks",
    "relations",
    "recipients_excluded",
    "recipients_unmatched",
    "individual_mode_tasks",
    "salesforce_events",
    "event_relations",
    "individual_mode_salesforce_events",
]

# --------------------------------------------------------------------------- R14
# A meeting as Salesforce Events. "event" alone always means an email activity event (a
# row of EVENT_COLUMNS); the calendar record is a "Salesforce Event" (SALESFORCE_EVENT_*),
# its key ``event_key`` and its people ``EventRelation`` rows.

# A meeting attendee's answer (recipients[].response); a declined attendee is not related.
MEETING_RESPONSES = ("accepted", "declined", "tentative", "none")
DECLINED_RESPONSE = "declined"
# Salesforce's Event limits (Object Reference, Event: Subject and Location 255, Description
# 32,000, "Multiday events can't exceed 14 days"), counted in UTF-16 code units as
# Salesforce counts string length.
LOCATION_MAX = 255
MEETING_DEFAULT_MINUTES = 30
MINUTES_PER_DAY = 24 * 60
SALESFORCE_EVENT_MAX_MINUTES = 14 * MINUTES_PER_DAY
SALESFORCE_EVENT_SUBTYPE = "Event"
# The dates Salesforce takes, for an Event's times as for ActivityDate.
SALESFORCE_DATE_FIRST, SALESFORCE_DATE_LAST = ACTIVITY_DATE_RANGE
# R11 for Salesforce Events: the same recipe as task_key under its own prefix and with a
# leading "Event" part, so that no event_key can equal a task_key (Task and Event share the
# Activity external-ID field).
EVENT_KEY_PREFIX = "ae1_"
EVENT_KEY_DOMAIN = "Event"
EVENT_KEY_MAX = 80
# dateTime as Bulk API 2.0 CSV takes it (yyyy-MM-ddTHH:mm:ss.SSSZ), always UTC.
SALESFORCE_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000Z"

# events.parquet: one row per Salesforce Event to exist. StartDateTime/EndDateTime are UTC
# text in SALESFORCE_DATETIME_FORMAT, whole minutes; DurationInMinutes is their difference.
# An all-day Event (IsAllDayEvent) starts at midnight UTC of its first day (ActivityDate,
# the day in the org's time zone) and ends at midnight UTC after its last day; ActivityDate
# is null for a timed Event (Salesforce derives it).
SALESFORCE_EVENT_COLUMNS = [
    "event_key",
    "org_id",
    "event_id",
    "WhoId",
    "WhatId",
    "OwnerId",
    "Subject",
    "Description",
    "StartDateTime",
    "EndDateTime",
    "DurationInMinutes",
    "IsAllDayEvent",
    "ActivityDate",
    "Location",
    "EventSubtype",
    "who_count",
    "batch_index",
]
# event_relations.parquet: every person on each Salesforce Event, position 0 the primary
# (the Event's WhoId, related by Salesforce itself); the others are EventRelation rows the
# loader inserts with IsParent true.
EVENT_RELATION_COLUMNS = ["event_key", "RelationId", "position", "is_primary"]
_INTEGER_COLUMNS = frozenset({"who_count", "batch_index", "position", "DurationInMinutes"})
_BOOLEAN_COLUMNS = frozenset({"is_primary", "IsAllDayEvent"})


def empty_frame(columns: list[str]) -> pd.DataFrame:
    """A frame with no rows in a plan file's columns and the dtypes the planner gives them."""
    return pd.DataFrame(
        {
            name: pd.Series(
                [],
                dtype="int64"
                if name in _INTEGER_COLUMNS
                else "bool"
                if name in _BOOLEAN_COLUMNS
                else pd.StringDtype("pyarrow"),
            )
            for name in columns
        }
    )


def task_key(org_id: str, event_id: str, part: str, what_id: str | None) -> str:
    """Deterministic external key of one planned Task (R11).

    ``part`` is ``b<batch_index>`` for a shared Task and ``w<WhoId>`` for a Task of one
    person; ``what_id`` separates the per-Opportunity copies of R8. A hash keeps the key
    within Salesforce's text field and unique however long the event ids are.
    """
    raw = TASK_KEY_SEPARATOR.join((org_id, event_id, part, what_id or ""))
    digest = TASK_KEY_HASH(raw.encode("utf-8")).digest()[:TASK_KEY_DIGEST_BYTES]
    return TASK_KEY_PREFIX + digest.hex()


def is_text(value: Any) -> bool:
    """A string without lone surrogates (a JSON ``"\\ud800"`` escape makes one): text that
    can be stored in Parquet and sent to Salesforce. The readers and the planner ask it of
    every field."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cut_utf16(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-16 code units, never inside a surrogate pair.

    Salesforce's length limits count UTF-16 code units; cutting by code points lets an
    emoji-rich text through here and fails it there with STRING_TOO_LONG.
    """
    encoded = text.encode("utf-16-le")
    if len(encoded) <= 2 * limit:
        return text
    cut = encoded[: 2 * limit]
    if cut and 0xD8 <= cut[-1] <= 0xDB:  # the last unit is the high half of a surrogate pair
        cut = cut[:-2]
    return cut.decode("utf-16-le")


def subject_for(event_type: str, subject: str | None) -> str:
    return cut_utf16(SUBJECT_PREFIX[event_type] + (subject or "").strip(), SUBJECT_MAX)


def description_for(
    event_type: str, body: str | None, url: str | None, filename: str | None
) -> str:
    """Task Description: the body for messages, the link or file for click/download."""
    if event_type == "click":
        text = f"Clicked {url}" if url else "Clicked a link"
    elif event_type == "download":
        text = f"Downloaded {filename}" if filename else "Downloaded a file"
    else:
        text = body or ""
    return cut_utf16(text, DESCRIPTION_MAX)


def event_key(org_id: str, event_id: str, part: str, what_id: str | None) -> str:
    """Deterministic external key of one planned Salesforce Event (R11, R14).

    Arguments as for ``task_key`` (``part`` is ``b<batch_index>`` for a shared Event and
    ``w<WhoId>`` for a Lead's own); the leading ``EVENT_KEY_DOMAIN`` part and the prefix
    keep every event_key apart from every task_key.
    """
    raw = TASK_KEY_SEPARATOR.join((EVENT_KEY_DOMAIN, org_id, event_id, part, what_id or ""))
    digest = TASK_KEY_HASH(raw.encode("utf-8")).digest()[:TASK_KEY_DIGEST_BYTES]
    return EVENT_KEY_PREFIX + digest.hex()


@dataclass
class Plan:
    """What must exist in Salesforce for one interval (docs/outputs.md).

    Frames hold exactly the contract columns in canonical order (tasks by task_key,
    relations by task_key and position, rejected by event_id, email, reason, Salesforce
    Events by event_key, their relations by event_key and position), so two plans of the
    same input compare equal whatever order the input came in. A plan built without
    Salesforce Events has empty frames for them.
    """

    tasks: pd.DataFrame
    relations: pd.DataFrame
    rejected: pd.DataFrame
    summary: dict[str, Any]
    salesforce_events: pd.DataFrame = field(
        default_factory=lambda: empty_frame(SALESFORCE_EVENT_COLUMNS)
    )
    event_relations: pd.DataFrame = field(
        default_factory=lambda: empty_frame(EVENT_RELATION_COLUMNS)
    )
