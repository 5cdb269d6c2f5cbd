"""The shared-activity planner: one interval of events + the CRM + org settings -> a Plan.

It applies rules R1–R10 of DESIGN.md to the whole interval at once, with Arrow kernels,
numpy and pandas merges: recipients are exploded into one long table, every distinct
address is validated, excluded and matched once, batches of 50 come from a running count,
and the Opportunity fan-out of R8 is a merge. ``reference.py`` states the same rules one
event at a time; the tests hold the two planners equal.

Text is normalised the way Python's ``str.strip``/``str.lower`` do it (what the rules and
the oracle mean): by Arrow for ASCII text, where the two provably agree, and by Python for
the rare value that is not ASCII.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activity_sync.crm import Crm
from activity_sync.schema import (
    ACTOR_TYPES,
    DESCRIPTION_MAX,
    EMAIL_PATTERN,
    EVENT_TYPES,
    REASONS,
    RECIPIENT_FIELDS,
    RECIPIENT_TYPES,
    REJECTED_COLUMNS,
    RELATION_COLUMNS,
    REQUIRED_FIELDS,
    SHARED_TYPES,
    SUBJECT_MAX,
    SUBJECT_PREFIX,
    SUMMARY_KEYS,
    SYSTEM_LOCAL_PARTS,
    TASK_COLUMNS,
    TASK_STATUS,
    TASK_SUBTYPE,
    Plan,
    task_key,
)
from activity_sync.settings import Settings, SettingsError

BATCH_SIZE = 50  # R6: Salesforce relates at most 50 Contacts to one Task.

# What str.strip() removes from ASCII text (str.isspace), for the Arrow fast path.
_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace())
_EMAIL_FULL = f"^(?:{EMAIL_PATTERN})$"
# Timestamps pandas parses exactly as datetime.fromisoformat does (with an offset); any
# other string is judged by fromisoformat itself, one distinct value at a time.
_ISO_FAST = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_STRING = pa.large_string()
_RECIPIENT = pa.struct([("email", _STRING), ("field", _STRING)])
_RECIPIENTS = pa.list_(_RECIPIENT)
# Outcome of one address of an event, in the precedence of R3/R4/R5.
_MATCHED = "matched"
_REPEATED = "repeated"  # only in the trace: a later copy of an address, silently dropped


def plan(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    *,
    salesforce_shared_activities: bool = True,
) -> Plan:
    """Plan the Tasks, TaskRelations and rejections of one interval of events."""
    return _plan(events, crm, settings, salesforce_shared_activities, trace=False)[0]


def plan_traced(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    *,
    salesforce_shared_activities: bool = True,
) -> tuple[Plan, pd.DataFrame]:
    """The plan, plus what became of every address of every planned event.

    The trace has one row per recipient (in listed order) or actor: ``event_id``,
    ``position`` (index in the recipient list, 0 for an actor), ``field`` (to/cc/bcc or
    actor), ``email`` (normalised), ``outcome`` (``matched``, ``repeated`` or a reason
    code) and ``person_id`` (the matched Contact or Lead). ``explain`` is built on it.
    """
    plan_, trace = _plan(events, crm, settings, salesforce_shared_activities, trace=True)
    assert trace is not None
    return plan_, trace


def mode_of(settings: Settings, salesforce_shared_activities: bool) -> tuple[str, str]:
    """R1: the planning mode and why, in words the audit and the CLI can show."""
    if settings.shared_activities and salesforce_shared_activities:
        return "shared", "shared activities on"
    off = []
    if not settings.shared_activities:
        off.append("tenant setting shared_activities is off")
    if not salesforce_shared_activities:
        off.append("Salesforce org has Shared Activities off")
    return "individual", " and ".join(off)


def add_rejections(plan_: Plan, rejected: pd.DataFrame) -> Plan:
    """The plan with event-level rejections found before planning (the reader's malformed lines)."""
    if rejected.empty:
        return plan_
    merged = _sorted_rejected(pd.concat([plan_.rejected, _as_strings(rejected)], ignore_index=True))
    summary = dict(plan_.summary)
    summary["events_rejected"] += len(rejected)
    summary["rejected_by_reason"] = _count_reasons(merged)
    return Plan(plan_.tasks, plan_.relations, merged, summary)


def write_plan(plan_: Plan, out_dir: str | Path) -> None:
    """Write the DESIGN.md plan folder, replacing what an earlier run of the hour left."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in _frames(plan_).items():
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / name)
    (out / "summary.json").write_text(json.dumps(plan_.summary, indent=2) + "\n", encoding="utf-8")


def read_plan(out_dir: str | Path) -> Plan:
    out = Path(out_dir)
    tasks, relations, rejected = (
        pq.read_table(out / name).to_pandas(types_mapper=_string_dtype)
        for name in ("tasks.parquet", "task_relations.parquet", "rejected.parquet")
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return Plan(tasks, relations, rejected, summary)


def _frames(plan_: Plan) -> dict[str, pd.DataFrame]:
    return {
        "tasks.parquet": plan_.tasks,
        "task_relations.parquet": plan_.relations,
        "rejected.parquet": plan_.rejected,
    }


# --------------------------------------------------------------------------- the pipeline


def _plan(
    events: pd.DataFrame,
    crm: Crm,
    settings: Settings,
    salesforce_shared_activities: bool,
    *,
    trace: bool,
) -> tuple[Plan, pd.DataFrame | None]:
    if settings.opportunity_match not in ("account", "contact_role"):
        raise SettingsError(f"settings key 'opportunity_match' is {settings.opportunity_match!r}")
    mode, mode_reason = mode_of(settings, salesforce_shared_activities)
    checked = _validate(events, settings)
    planned = _Events.of(checked, settings, _owners(crm))
    people = _addresses(checked, planned, settings, crm)
    members, units = _units(people, planned, shared=mode == "shared")
    links = _opportunity_links(crm, settings)
    tasks = _related_to(units, planned, links, settings)
    tasks_frame, relations_frame = _task_frames(tasks, units, members, planned, settings)

    rejected = _sorted_rejected(
        pd.concat([checked.rejected(), people.rejected(planned)], ignore_index=True)
    )
    reasons = _count_reasons(rejected)
    shared_tasks = int(units.shared[tasks.unit].sum())
    if mode == "shared":
        individual_mode_tasks = _individual_mode_tasks(people, planned, links, settings)
    else:
        individual_mode_tasks = len(tasks_frame)
    summary: dict[str, Any] = {
        "events": planned.count,
        "events_rejected": len(events) - planned.count,
        "tasks": len(tasks_frame),
        "shared_tasks": shared_tasks,
        "individual_tasks": len(tasks_frame) - shared_tasks,
        "relations": len(relations_frame),
        "recipients_excluded": reasons.get("excluded", 0),
        "recipients_unmatched": reasons.get("unmatched", 0),
        "individual_mode_tasks": individual_mode_tasks,
    }
    assert list(summary) == SUMMARY_KEYS
    summary.update(mode=mode, mode_reason=mode_reason, rejected_by_reason=reasons)
    result = Plan(tasks_frame, relations_frame, rejected, summary)
    return result, (people.trace(planned) if trace else None)


# --------------------------------------------------------------------------- event columns


@dataclass(frozen=True)
class _Text:
    """One text column as Arrow strings; a cell holding anything but a string is null here."""

    values: pa.Array
    null: np.ndarray  # the cell is null (None, NaN, NA)
    foreign: np.ndarray  # the cell holds a value that is not a string

    @property
    def empty(self) -> np.ndarray:
        return self.null | _mask(pc.equal(self.values, ""))


def _text_column(events: pd.DataFrame, name: str) -> _Text:
    n = len(events)
    if name not in events.columns:
        return _Text(pa.nulls(n, _STRING), np.ones(n, bool), np.zeros(n, bool))
    column = events[name]
    null = column.isna().to_numpy(dtype=bool)
    try:
        values = _array(pa.array(column, type=_STRING, from_pandas=True))
        return _Text(values, null, np.zeros(n, bool))
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        # Mixed cells (only from frames built in memory or odd files): sort them one by one.
        cells = column.to_numpy(dtype=object)
        text = np.fromiter((_is_text(v) for v in cells), bool, n)
        values = pa.array(np.where(text, cells, None), type=_STRING)
        return _Text(values, null, ~text & ~null)


def _is_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON "\ud800" escape
        return False
    return True


@dataclass(frozen=True)
class _Recipients:
    lists: pa.ListArray  # null where missing or invalid
    missing: np.ndarray  # null or an empty list
    invalid: np.ndarray  # not a list of {"email": str, "field": to/cc/bcc}


def _recipients_column(events: pd.DataFrame) -> _Recipients:
    n = len(events)
    if "recipients" not in events.columns:
        return _Recipients(pa.nulls(n, _RECIPIENTS), np.ones(n, bool), np.zeros(n, bool))
    column = events["recipients"]
    lists = _arrow_recipients(column)
    if lists is None:
        lists, missing, invalid = _python_recipients(column.to_numpy(dtype=object))
    else:
        missing = _mask(pc.is_null(lists)) | _mask(pc.equal(pc.list_value_length(lists), 0))
        invalid = np.zeros(n, bool)
    # Entries that are no object, or lack a string email or a to/cc/bcc field.
    flat = pc.list_flatten(lists)
    field = pc.struct_field(flat, "field")
    bad = _mask(pc.is_null(flat)) | _mask(pc.is_null(pc.struct_field(flat, "email")))
    bad |= ~_mask(pc.is_in(field, value_set=pa.array(RECIPIENT_FIELDS, _STRING)))
    parents = pc.list_parent_indices(lists).to_numpy()
    invalid[np.unique(parents[bad])] = True
    lists = pc.if_else(pa.array(invalid), pa.nulls(n, _RECIPIENTS), lists)
    return _Recipients(lists, missing, invalid & ~missing)


def _arrow_recipients(column: pd.Series) -> pa.ListArray | None:
    """The column as an Arrow list of (email, field), or None if it needs the slow path."""
    try:
        if isinstance(column.dtype, pd.ArrowDtype):  # as read_events gives it
            return _array(pa.array(column)).cast(_RECIPIENTS)
        return _array(pa.array(column, type=_RECIPIENTS, from_pandas=True))
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return None


def _python_recipients(cells: np.ndarray) -> tuple[pa.ListArray, np.ndarray, np.ndarray]:
    """Recipients cell by cell, for columns holding something Arrow cannot take as a whole."""
    n = len(cells)
    missing, invalid = np.zeros(n, bool), np.zeros(n, bool)
    lists: list[Any] = [None] * n
    for i, cell in enumerate(cells):
        if isinstance(cell, list | tuple | np.ndarray):
            if len(cell) == 0:
                missing[i] = True
            elif all(_is_recipient(r) for r in cell):
                lists[i] = [{"email": r["email"], "field": r["field"]} for r in cell]
            else:
                invalid[i] = True
        elif cell is None or (not isinstance(cell, dict) and pd.isna(cell)):
            missing[i] = True
        else:
            invalid[i] = True
    return pa.array(lists, type=_RECIPIENTS), missing, invalid


def _is_recipient(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and _is_text(value.get("email"))
        and value.get("field") in RECIPIENT_FIELDS
    )


def _activity_dates(events: pd.DataFrame, timezone: str) -> pa.Array:
    """occurred_at as the org's local date ("YYYY-MM-DD"); null unless it has an offset."""
    n = len(events)
    column = events["occurred_at"] if "occurred_at" in events.columns else None
    dates = np.full(n, np.datetime64("NaT"), "datetime64[D]")
    if column is None or pd.api.types.is_datetime64_dtype(column.dtype):
        return pa.nulls(n, _STRING)  # absent, or timestamps without a zone
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        dates[:] = _local_days(column, timezone)
        return _day_strings(dates)
    text = _text_column(events, "occurred_at")
    fast = _mask(pc.match_substring_regex(text.values, _ISO_FAST))
    stamps = pd.to_datetime(
        text.values.filter(pa.array(fast)).to_pandas(), format="ISO8601", utc=True, errors="coerce"
    )
    dates[fast] = _local_days(stamps, timezone)
    # Everything else that is not null goes to fromisoformat, once per distinct value.
    slow = np.flatnonzero(np.isnat(dates) & ~text.null)
    if len(slow):
        zone = ZoneInfo(timezone)
        cells = pd.Series(column.iloc[slow].to_numpy(dtype=object))
        codes, distinct = pd.factorize(cells.map(_hashable), use_na_sentinel=False)
        days = np.array([_python_day(v, zone) for v in distinct], "datetime64[D]")
        dates[slow] = days[codes]
    return _day_strings(dates)


def _hashable(value: Any) -> str | datetime | None:
    return value if isinstance(value, str | datetime) else None


def _local_days(stamps: pd.Series, timezone: str) -> np.ndarray:
    local = stamps.dt.tz_convert(timezone).dt.tz_localize(None)
    return local.to_numpy().astype("datetime64[D]")


def _python_day(value: Any, zone: ZoneInfo) -> np.datetime64:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return np.datetime64("NaT")
    if not isinstance(value, datetime) or value.tzinfo is None:
        return np.datetime64("NaT")
    try:
        return np.datetime64(value.astimezone(zone).date().isoformat(), "D")
    except (OverflowError, ValueError):  # so near year 1 or 9999 that the zone leaves the calendar
        return np.datetime64("NaT")


def _day_strings(dates: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(dates, from_pandas=True), _STRING)


# --------------------------------------------------------------------------- validation


class _Checked:
    """Every event row with its columns read and its first event-level rejection, if any."""

    def __init__(self, events: pd.DataFrame, settings: Settings) -> None:
        self.n = len(events)
        names = [*REQUIRED_FIELDS, "actor", "subject", "body", "url", "filename"]
        self.text = {name: _text_column(events, name) for name in names}
        self.recipients = _recipients_column(events)
        self.dates = _activity_dates(events, settings.timezone)
        self.raw_event_ids = events["event_id"] if "event_id" in events.columns else None
        types = self.text["type"].values
        self.is_actor = _mask(pc.is_in(types, value_set=_strings(ACTOR_TYPES)))
        self.is_recipient = _mask(pc.is_in(types, value_set=_strings(RECIPIENT_TYPES)))
        self.reason = np.full(self.n, None, object)
        self.detail = np.full(self.n, None, object)
        self.email = np.full(self.n, None, object)
        self.open = np.ones(self.n, bool)
        self.actor_email = _normalise_email(self.text["actor"].values)

    def reject(
        self, mask: np.ndarray, reason: str, detail: str | Callable[[np.ndarray], Any]
    ) -> None:
        """Reject the rows of ``mask`` not rejected yet: the first failing check wins."""
        hit = np.flatnonzero(self.open & mask)
        if len(hit):
            self.reason[hit] = reason
            self.detail[hit] = detail if isinstance(detail, str) else detail(hit)
            self.open[hit] = False

    def quoted(self, name: str, template: str) -> Callable[[np.ndarray], Any]:
        """Details naming each row's value of ``name``: ``template`` with {} for the value."""

        def detail(rows: np.ndarray) -> Any:
            values = self.text[name].values.take(pa.array(rows))
            shown = pc.fill_null(_join("'", values, "'"), _text("a value that is not a string"))
            before, after = template.split("{}")
            return _join(before, shown, after).to_numpy(zero_copy_only=False)

        return detail

    def rejected(self) -> pd.DataFrame:
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


def _validate(events: pd.DataFrame, settings: Settings) -> _Checked:
    """The event-level checks, in the agreed order; each rejects an event at most once."""
    checked = _Checked(events, settings)
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
    known = _mask(pc.is_in(text["type"].values, value_set=_strings(EVENT_TYPES)))
    checked.reject(
        ~known, "unknown_type", checked.quoted("type", "type {} is not one this product syncs")
    )
    same_org = _mask(pc.equal(text["org_id"].values, settings.org_id))
    checked.reject(
        ~same_org, "wrong_org", checked.quoted("org_id", f"org_id {{}} is not {settings.org_id!r}")
    )
    checked.reject(
        _mask(pc.is_null(checked.dates)),
        "invalid_field",
        checked.quoted("occurred_at", "occurred_at {} is not an ISO-8601 timestamp with an offset"),
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

    open_rows = np.flatnonzero(checked.open)
    ids = text["event_id"].values.take(pa.array(open_rows)).to_pandas()
    duplicate = np.zeros(checked.n, bool)
    duplicate[open_rows[ids.duplicated().to_numpy()]] = True
    checked.reject(
        duplicate, "duplicate_event", checked.quoted("event_id", "event_id {} was already seen")
    )

    bad_actor = checked.is_actor & ~_mask(
        pc.match_substring_regex(checked.actor_email, _EMAIL_FULL)
    )
    rows = np.flatnonzero(checked.open & bad_actor)
    checked.email[rows] = checked.actor_email.take(pa.array(rows)).to_numpy(zero_copy_only=False)
    checked.reject(bad_actor, "invalid_email", "the actor is not a syntactically valid email")
    return checked


# --------------------------------------------------------------------------- planned events


@dataclass(frozen=True)
class _Events:
    """The events that passed validation, index 0..count-1, with their Task fields."""

    rows: np.ndarray  # row in the input frame
    event_id: pa.Array
    type: pa.Array
    shared_type: np.ndarray
    owner_id: pa.Array
    subject: pa.Array
    description: pa.Array
    activity_date: pa.Array

    @property
    def count(self) -> int:
        return len(self.rows)

    @classmethod
    def of(cls, checked: _Checked, settings: Settings, owners: pd.Series) -> _Events:
        rows = np.flatnonzero(checked.open)
        take = pa.array(rows)

        def column(name: str) -> pa.Array:
            return checked.text[name].values.take(take)

        types = column("type")
        senders = _normalise_email(column("sender"))
        owner_at = owners.index.get_indexer(senders.to_pandas())
        owner_id = pa.array(_lookup(owners, owner_at), _STRING)
        return cls(
            rows=rows,
            event_id=column("event_id"),
            type=types,
            shared_type=_mask(pc.is_in(types, value_set=_strings(SHARED_TYPES))),
            owner_id=owner_id,
            subject=_subjects(types, column("subject")),
            description=_descriptions(types, column("body"), column("url"), column("filename")),
            activity_date=checked.dates.take(take),
        )


def _subjects(types: pa.Array, subjects: pa.Array) -> pa.Array:
    """schema.subject_for, vectorised: the type's prefix, the stripped subject, cut to 255."""
    kinds = sorted(SUBJECT_PREFIX)
    prefix = pa.array([SUBJECT_PREFIX[k] for k in kinds], _STRING).take(
        pc.index_in(types, value_set=pa.array(kinds, _STRING))
    )
    stripped = _pythonic(subjects, lambda a: pc.ascii_trim(a, _ASCII_SPACE), str.strip)
    joined = _join(prefix, pc.fill_null(stripped, _text("")))
    return pc.utf8_slice_codeunits(joined, 0, SUBJECT_MAX)


def _descriptions(types: pa.Array, body: pa.Array, url: pa.Array, filename: pa.Array) -> pa.Array:
    """schema.description_for, vectorised: the link or file for click/download, else the body."""

    def mention(verb: str, value: pa.Array, otherwise: str) -> pa.Array:
        given = _mask(pc.not_equal(value, ""))
        return pc.if_else(pa.array(given), _join(verb, value), _text(otherwise))

    text = pc.if_else(
        pc.equal(types, "click"),
        mention("Clicked ", url, "Clicked a link"),
        pc.if_else(
            pc.equal(types, "download"),
            mention("Downloaded ", filename, "Downloaded a file"),
            pc.fill_null(body, _text("")),
        ),
    )
    return pc.utf8_slice_codeunits(text, 0, DESCRIPTION_MAX)


def _owners(crm: Crm) -> pd.Series:
    """Active Users by normalised email, the lowest Id where several share one."""
    users = crm.users
    emails = _normalise_email(pa.array(users["Email"].to_numpy(dtype=object), _STRING))
    frame = pd.DataFrame({"email": emails.to_pandas(), "Id": users["Id"].to_numpy(dtype=object)})
    frame = frame[users["IsActive"].to_numpy() & _present(frame) & frame["Id"].notna().to_numpy()]
    frame = frame.sort_values(["email", "Id"]).drop_duplicates("email")
    return pd.Series(frame["Id"].to_numpy(dtype=object), index=pd.Index(frame["email"]))


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class _People:
    """Every address of every planned event, in listed order, with what became of it."""

    event: np.ndarray  # index into _Events
    position: np.ndarray
    field: pa.Array
    email: pa.Array
    outcome: np.ndarray  # object: _MATCHED, _REPEATED or a reason code
    person_id: np.ndarray  # object: the Contact or Lead Id when matched
    is_contact: np.ndarray  # matched to a Contact
    account_id: np.ndarray  # object: that Contact's AccountId

    @property
    def matched(self) -> np.ndarray:
        return self.outcome == _MATCHED

    def rejected(self, planned: _Events) -> pd.DataFrame:
        rows = np.flatnonzero((self.outcome != _MATCHED) & (self.outcome != _REPEATED))
        reasons = self.outcome[rows]
        why = pd.Series(reasons, dtype=object).map(REASONS).to_numpy()
        return pd.DataFrame(
            {
                "event_id": _text_at(planned.event_id, self.event[rows]),
                "email": _text_at(self.email, rows),
                "reason": reasons,
                "detail": _text_at(self.field, rows) + ": " + why,
            }
        )

    def trace(self, planned: _Events) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "event_id": _text_at(planned.event_id, self.event),
                "position": self.position,
                "field": self.field.to_numpy(zero_copy_only=False),
                "email": self.email.to_numpy(zero_copy_only=False),
                "outcome": self.outcome,
                "person_id": self.person_id,
                "is_contact": self.is_contact,
            }
        )


def _addresses(checked: _Checked, planned: _Events, settings: Settings, crm: Crm) -> _People:
    """R3–R5 for every recipient and actor: dedupe, Bcc, syntax, exclusion, matching."""
    recipient_events = np.flatnonzero(checked.is_recipient[planned.rows])
    lists = checked.recipients.lists.take(pa.array(planned.rows[recipient_events]))
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    starts = lists.offsets.to_numpy()[:-1] - lists.offsets[0].as_py()
    actor_events = np.flatnonzero(checked.is_actor[planned.rows])
    actors = checked.actor_email.take(pa.array(planned.rows[actor_events]))

    event = np.concatenate([recipient_events[parents], actor_events])
    position = np.concatenate(
        [np.arange(len(parents)) - starts[parents], np.zeros(len(actor_events), np.int64)]
    )
    field = pa.concat_arrays(
        [
            pc.struct_field(flat, "field"),
            pa.array(np.full(len(actor_events), "actor", object), _STRING),
        ]
    )
    email = pa.concat_arrays([_normalise_email(pc.struct_field(flat, "email")), actors])

    # Each distinct address is judged once; ``code`` maps every row to its address.
    encoded = pc.dictionary_encode(email)
    code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = encoded.dictionary
    syntax_ok = _mask(pc.match_substring_regex(distinct, _EMAIL_FULL))
    excluded = _excluded(distinct, settings)
    contacts = crm.contacts
    leads = crm.leads[~crm.leads["IsConverted"].to_numpy()]
    contact_at = _winners(contacts, distinct)[code]
    lead_at = _winners(leads, distinct)[code]

    # R3: a repeated address of an event counts once, where it first appears.
    repeated = pd.Series(event * len(distinct) + code).duplicated().to_numpy()
    is_bcc = _mask(pc.equal(field, "bcc")) & (not settings.sync_bcc)
    outcome = np.select(
        [repeated, is_bcc, ~syntax_ok[code], excluded[code], (contact_at < 0) & (lead_at < 0)],
        [_REPEATED, "bcc_not_synced", "invalid_email", "excluded", "unmatched"],
        _MATCHED,
    ).astype(object)
    matched = outcome == _MATCHED
    is_contact = matched & (contact_at >= 0)
    is_lead = matched & ~is_contact
    person_id = _lookup(contacts["Id"], np.where(is_contact, contact_at, -1))
    person_id[is_lead] = _lookup(leads["Id"], lead_at[is_lead])
    account_id = _lookup(contacts["AccountId"], np.where(is_contact, contact_at, -1))
    return _People(event, position, field, email, outcome, person_id, is_contact, account_id)


def _excluded(addresses: pa.Array, settings: Settings) -> np.ndarray:
    """R4 for valid addresses: an excluded address or domain (and its subdomains), or a
    system mailbox whose local part, without any +tag, is a known automated one."""
    local = pc.replace_substring_regex(addresses, "@.*$", "")
    domain = pc.replace_substring_regex(addresses, "^[^@]*@", "")
    out = _mask(pc.is_in(addresses, value_set=_strings(settings.excluded_addresses)))
    out |= _mask(pc.is_in(domain, value_set=_strings(settings.excluded_domains)))
    for excluded_domain in settings.excluded_domains:
        out |= _mask(pc.ends_with(domain, "." + excluded_domain))
    if settings.exclude_system_addresses:
        untagged = pc.replace_substring_regex(local, r"\+.*$", "")
        out |= _mask(pc.is_in(untagged, value_set=_strings(SYSTEM_LOCAL_PARTS)))
    return out


def _winners(people: pd.DataFrame, addresses: pa.Array) -> np.ndarray:
    """R5 per address: the row of ``people`` it matches (newest LastModifiedDate, then the
    lowest Id), or -1. Only rows whose email is among ``addresses`` are sorted."""
    emails = _normalise_email(pa.array(people["Email"].to_numpy(dtype=object), _STRING))
    wanted = _mask(pc.is_in(emails, value_set=addresses)) & people["Id"].notna().to_numpy()
    rows = np.flatnonzero(wanted)
    candidates = pd.DataFrame(
        {
            "email": emails.filter(pa.array(wanted)).to_pandas(),
            "date": people["LastModifiedDate"].iloc[rows].reset_index(drop=True),
            "Id": people["Id"].to_numpy(dtype=object)[rows],
            "row": rows,
        }
    )
    candidates = candidates.sort_values(
        ["email", "date", "Id"], ascending=[True, False, True], na_position="last"
    ).drop_duplicates("email")
    at = pd.Index(candidates["email"]).get_indexer(addresses.to_pandas())
    return np.where(at >= 0, candidates["row"].to_numpy()[at], -1) if len(candidates) else at


# --------------------------------------------------------------------------- Tasks


@dataclass(frozen=True)
class _Units:
    """One row per Task before the Opportunity fan-out of R8: a batch or one person."""

    event: np.ndarray
    who_id: np.ndarray  # object
    is_contact: np.ndarray
    account_id: np.ndarray  # object
    part: pa.Array  # "b<batch>" or "w<WhoId>", the task_key part
    batch_index: np.ndarray
    who_count: np.ndarray
    shared: np.ndarray
    member_start: np.ndarray  # first row of the unit in the members table


@dataclass(frozen=True)
class _Members:
    relation_id: np.ndarray  # object
    position: np.ndarray


def _units(people: _People, planned: _Events, *, shared: bool) -> tuple[_Members, _Units]:
    """R6/R7: Contacts of a shared event in batches of 50; every other person on their own."""
    rows = np.flatnonzero(people.matched)
    event, position = people.event[rows], people.position[rows]
    in_batch = people.is_contact[rows] & planned.shared_type[event] & shared
    # Batch members first within each event, in listed order; then one unit per person.
    order = np.lexsort((position, ~in_batch, event))
    rows, event, in_batch = rows[order], event[order], in_batch[order]
    rank = np.zeros(len(rows), np.int64)
    batched = np.flatnonzero(in_batch)
    if len(batched):
        first = np.r_[True, event[batched][1:] != event[batched][:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(batched)), 0))
        rank[batched] = np.arange(len(batched)) - starts
    member_position = rank % BATCH_SIZE
    unit = np.cumsum(member_position == 0) - 1
    heads = np.flatnonzero(member_position == 0)
    batch_index = np.where(in_batch, rank // BATCH_SIZE, 0)[heads]
    who_id = people.person_id[rows[heads]]
    unit_shared = in_batch[heads]
    part = pc.if_else(
        pa.array(unit_shared),
        _join("b", pc.cast(pa.array(batch_index), _STRING)),
        _join("w", pa.array(who_id, _STRING)),
    )
    units = _Units(
        event=event[heads],
        who_id=who_id,
        is_contact=people.is_contact[rows[heads]],
        account_id=people.account_id[rows[heads]],
        part=part,
        batch_index=batch_index.astype(np.int64),
        who_count=np.bincount(unit, minlength=len(heads)).astype(np.int64),
        shared=unit_shared,
        member_start=heads,
    )
    members = _Members(people.person_id[rows], member_position.astype(np.int64))
    return members, units


def _opportunity_links(crm: Crm, settings: Settings) -> pd.DataFrame | None:
    """R8's candidate Opportunities by the key a primary Contact brings (its AccountId or
    its own Id), after the open filter; None when opportunity sync is off."""
    if not settings.sync_to_opportunities:
        return None
    opportunities = crm.opportunities
    if settings.open_opportunities_only:
        opportunities = opportunities[~opportunities["IsClosed"]]
    opportunities = opportunities[opportunities["Id"].notna()]
    if settings.opportunity_match == "account":
        links = pd.DataFrame(
            {
                "key": opportunities["AccountId"],
                "what": opportunities["Id"],
                "owner": opportunities["OwnerId"],
            }
        )
    else:
        roles = crm.contact_roles[["ContactId", "OpportunityId"]].dropna()
        links = roles.merge(
            opportunities[["Id", "OwnerId"]], left_on="OpportunityId", right_on="Id"
        ).rename(columns={"ContactId": "key", "Id": "what", "OwnerId": "owner"})[
            ["key", "what", "owner"]
        ]
    keys = _link_columns(settings)
    links = links[links[keys].notna().all(axis=1)]
    return links.drop_duplicates([*keys, "what"]).reset_index(drop=True)


def _link_columns(settings: Settings) -> list[str]:
    """What a primary must share with an Opportunity link: its key, and the owner if R8 says."""
    return ["key", "owner"] if settings.owned_opportunities_only else ["key"]


@dataclass(frozen=True)
class _Tasks:
    unit: np.ndarray
    what_id: np.ndarray  # object


def _link_keys(settings: Settings, who_id: np.ndarray, account_id: np.ndarray) -> np.ndarray:
    return account_id if settings.opportunity_match == "account" else who_id


def _related_to(
    units: _Units, planned: _Events, links: pd.DataFrame | None, settings: Settings
) -> _Tasks:
    """R8/R10: one Task per remaining Opportunity of the primary Contact, else its Account."""
    all_units = np.arange(len(units.event))
    if links is None or links.empty:
        return _Tasks(all_units, units.account_id)
    keys = _link_columns(settings)
    primaries = pd.DataFrame(
        {
            "unit": all_units,
            "key": _link_keys(settings, units.who_id, units.account_id),
            "owner": planned.owner_id.take(pa.array(units.event)).to_numpy(zero_copy_only=False),
        }
    )
    primaries = primaries[units.is_contact]
    primaries = primaries[primaries[keys].notna().all(axis=1)]
    fanned = primaries[["unit", *keys]].merge(links[[*keys, "what"]], on=keys)
    alone = np.setdiff1d(all_units, fanned["unit"].to_numpy())
    return _Tasks(
        np.concatenate([fanned["unit"].to_numpy(np.int64), alone]),
        np.concatenate([fanned["what"].to_numpy(dtype=object), units.account_id[alone]]),
    )


def _individual_mode_tasks(
    people: _People, planned: _Events, links: pd.DataFrame | None, settings: Settings
) -> int:
    """R13 without planning twice: each matched person as a primary of its own, counted."""
    matched = np.flatnonzero(people.matched)
    if links is None or links.empty:
        return len(matched)
    keys = _link_columns(settings)
    counts = links.groupby(keys).size().rename("n").reset_index()
    contacts = matched[people.is_contact[matched]]
    persons = pd.DataFrame(
        {
            "key": _link_keys(settings, people.person_id[contacts], people.account_id[contacts]),
            "owner": planned.owner_id.take(pa.array(people.event[contacts])).to_numpy(
                zero_copy_only=False
            ),
        }
    )
    n = persons[keys].merge(counts, on=keys, how="left")["n"].fillna(0).to_numpy()
    return int(np.maximum(n, 1).sum()) + len(matched) - len(contacts)


def _task_frames(
    tasks: _Tasks, units: _Units, members: _Members, planned: _Events, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tasks and task_relations frames in canonical order (task_key, then position)."""
    unit = tasks.unit
    event = units.event[unit]
    event_ids = planned.event_id.take(pa.array(event)).to_pylist()
    parts = units.part.take(pa.array(unit)).to_pylist()
    whats = tasks.what_id.tolist()
    keys = [
        task_key(settings.org_id, e, p, w) for e, p, w in zip(event_ids, parts, whats, strict=True)
    ]
    key_array = pa.array(keys, _STRING)
    order = pc.sort_indices(key_array).to_numpy()
    unit, event, what = unit[order], event[order], tasks.what_id[order]
    key_array = key_array.take(pa.array(order))
    take_event = pa.array(event)
    types = planned.type.take(take_event)
    n = len(order)
    table = pa.table(
        {
            "task_key": key_array,
            "org_id": pa.array(np.full(n, settings.org_id, object), _STRING),
            "event_id": planned.event_id.take(take_event),
            "event_type": types,
            "WhoId": pa.array(units.who_id[unit], _STRING),
            "WhatId": pa.array(what, _STRING),
            "OwnerId": planned.owner_id.take(take_event),
            "Subject": planned.subject.take(take_event),
            "Description": planned.description.take(take_event),
            "ActivityDate": planned.activity_date.take(take_event),
            "Status": pa.array(np.full(n, TASK_STATUS, object), _STRING),
            "TaskSubtype": _subtypes(types),
            "who_count": pa.array(units.who_count[unit], pa.int64()),
            "batch_index": pa.array(units.batch_index[unit], pa.int64()),
        }
    )
    # Each Task carries its unit's members in position order: a ragged range per Task.
    counts = units.who_count[unit]
    owner = np.repeat(np.arange(n), counts)
    offsets = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    member = units.member_start[unit][owner] + offsets
    relations = pa.table(
        {
            "task_key": key_array.take(pa.array(owner)),
            "RelationId": pa.array(members.relation_id[member], _STRING),
            "position": pa.array(members.position[member], pa.int64()),
            "is_primary": pa.array(members.position[member] == 0),
        }
    )
    return _to_pandas(table, TASK_COLUMNS), _to_pandas(relations, RELATION_COLUMNS)


def _subtypes(types: pa.Array) -> pa.Array:
    kinds = sorted(TASK_SUBTYPE)
    return pa.array([TASK_SUBTYPE[k] for k in kinds], _STRING).take(
        pc.index_in(types, value_set=pa.array(kinds, _STRING))
    )


# --------------------------------------------------------------------------- helpers


def _pythonic(
    values: pa.Array, arrow: Callable[[pa.Array], pa.Array], python: Callable[[str], str]
) -> pa.Array:
    """``arrow`` applied where it equals ``python`` (ASCII text), ``python`` on the rest."""
    out = arrow(values)
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    if not pc.any(non_ascii).as_py():
        return out
    slow = [python(v) for v in values.filter(non_ascii).to_pylist()]
    return pc.replace_with_mask(out, non_ascii, pa.array(slow, out.type))


def _normalise_email(values: pa.Array) -> pa.Array:
    """R3: trimmed and lower-cased, exactly as ``value.strip().lower()``."""
    return _pythonic(
        values,
        lambda a: pc.ascii_lower(pc.ascii_trim(a, _ASCII_SPACE)),
        lambda v: v.strip().lower(),
    )


def _lookup(values: pd.Series, at: np.ndarray) -> np.ndarray:
    """``values`` at positions ``at`` as objects, None where ``at`` is -1."""
    out = np.full(len(at), None, object)
    found = at >= 0
    out[found] = values.to_numpy(dtype=object)[at[found]]
    return out


def _text_at(values: pa.Array, at: np.ndarray) -> np.ndarray:
    return values.take(pa.array(at, pa.int64())).to_numpy(zero_copy_only=False)


def _present(frame: pd.DataFrame) -> np.ndarray:
    return (frame["email"].notna() & (frame["email"] != "")).to_numpy()


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, _STRING)


def _join(*parts: str | pa.Array) -> pa.Array:
    """Concatenate text arrays and literals row by row (null if any array value is null)."""
    return pc.binary_join_element_wise(
        *(_text(p) if isinstance(p, str) else p for p in parts), _text("")
    )


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result as numpy, null counting as false."""
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(bool)


def _strings(values: Any) -> pa.Array:
    return pa.array(sorted(values), _STRING)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _string_dtype(arrow_type: pa.DataType) -> pd.StringDtype | None:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def _to_pandas(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    return table.select(columns).to_pandas(types_mapper=_string_dtype)


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[REJECTED_COLUMNS].astype(pd.StringDtype("pyarrow"))


def _sorted_rejected(rejected: pd.DataFrame) -> pd.DataFrame:
    rejected = _as_strings(rejected)
    return rejected.sort_values(REJECTED_COLUMNS, na_position="last", ignore_index=True)


def _count_reasons(rejected: pd.DataFrame) -> dict[str, int]:
    counts = rejected["reason"].value_counts()
    return {str(code): int(counts[code]) for code in sorted(counts.index)}
