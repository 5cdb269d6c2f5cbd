"""The shared-activity planner: one interval of events + the CRM + org settings -> a Plan.

It applies rules R1–R10 of DESIGN.md to the whole interval at once, with Arrow kernels
and numpy: recipients are exploded into one long table, every distinct address is
validated, excluded and matched once, batches of 50 come from a running count, the
Opportunity fan-out of R8 repeats each primary over its grouped Opportunities, and only
the SHA-256 of each task_key is computed per Task. ``reference.py`` states the same rules
one event at a time; the tests hold the two planners equal.

Text is normalised the way Python's ``str.strip``/``str.lower`` do it (what the rules and
the oracle mean): by Arrow for ASCII text, where the two provably agree, and by Python for
the rare value that is not ASCII.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
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
)
from activity_sync.settings import Settings, SettingsError

BATCH_SIZE = 50  # R6: Salesforce relates at most 50 Contacts to one Task.

# What str.strip() removes from ASCII text (str.isspace), for the Arrow fast path.
_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace())
_EMAIL_FULL = f"^(?:{EMAIL_PATTERN})$"
# Timestamps pandas parses exactly as datetime.fromisoformat does (with an offset); any
# other string is judged by fromisoformat itself, one distinct value at a time.
_ISO_FAST = (
    r"^([1-9]\d{3}|0[1-9]\d\d|00[1-9]\d|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# The calendar of datetime.date: a time whose local date falls outside it has no ActivityDate.
_FIRST_DAY, _LAST_DAY = np.datetime64("0001-01-01"), np.datetime64("9999-12-31")
_STRING = pa.large_string()
_RECIPIENT = pa.struct([("email", _STRING), ("field", _STRING)])
_RECIPIENTS = pa.list_(_RECIPIENT)


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
    planned = _Events.of(checked, crm)
    directory = _Directory.of(crm)
    people = _addresses(checked, planned, settings, directory)
    units = _units(people, planned, directory, shared=mode == "shared")
    links = _Links.of(crm, settings)
    tasks = _related_to(units, planned, directory, links, settings)
    tasks_frame, relations_frame = _task_frames(tasks, units, planned, directory, settings)

    rejected = _sorted_rejected(
        pd.concat([checked.rejected(), people.rejected(planned)], ignore_index=True)
    )
    reasons = _count_reasons(rejected)
    shared_tasks = int(units.shared[tasks.unit].sum())
    if mode == "shared":
        per_row = _individual_mode_per_row(people, planned, directory, links, settings, len(events))
    else:
        per_row = _tasks_per_row(tasks_frame, planned, len(events))
    individual_mode_tasks = int(per_row.sum())
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
    summary.update(
        mode=mode,
        mode_reason=mode_reason,
        rejected_by_reason=reasons,
        individual_mode_tasks_by_sender=_by_sender(checked, planned, per_row),
    )
    result = Plan(tasks_frame, relations_frame, rejected, summary)
    return result, (people.trace(planned, directory) if trace else None)


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
    values = _arrow_as(column, _is_string_type)
    if values is not None:
        return _Text(values.cast(_STRING), null, np.zeros(n, bool))
    # Mixed cells (only from frames built in memory or odd files): sort them one by one.
    cells = column.to_numpy(dtype=object)
    text = np.fromiter((_is_text(v) for v in cells), bool, n)
    values = pa.array(np.where(text, cells, None), type=_STRING)
    return _Text(values, null, ~text & ~null)


def _arrow_as(column: pd.Series, wanted: Callable[[pa.DataType], bool]) -> pa.Array | None:
    """The column as Arrow infers it, if that type is ``wanted``; else None (slow path).

    Inferred rather than converted to a target type, because conversion would quietly
    decode bytes as text, and bytes are not a string (the agreed rule)."""
    try:
        values = _array(pa.array(column, from_pandas=True))
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        return None
    return values if wanted(values.type) else None


def _is_string_type(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_null(arrow_type)
    )


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
    values = _arrow_as(column, _is_recipients_type)
    return None if values is None else values.cast(_RECIPIENTS)


def _is_recipients_type(arrow_type: pa.DataType) -> bool:
    """A list of objects whose email and field are text, or a column with no lists at all."""
    if pa.types.is_null(arrow_type):
        return True
    if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
        return False
    item = arrow_type.value_type
    if pa.types.is_null(item):
        return True
    names = {item.field(i).name: item.field(i).type for i in range(item.num_fields)}
    return (
        pa.types.is_struct(item)
        and {"email", "field"} <= set(names)
        and all(_is_string_type(names[k]) for k in ("email", "field"))
    )


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
        return _day_strings(_in_calendar(dates))
    text = _text_column(events, "occurred_at")
    fast = _mask(pc.match_substring_regex(text.values, _ISO_FAST))
    stamps = pd.to_datetime(
        text.values.filter(pa.array(fast)).to_pandas(), format="ISO8601", utc=True, errors="coerce"
    )
    dates[fast] = _local_days(stamps, timezone)
    dates = _in_calendar(dates)  # pandas reaches past it; Python decides what is left
    # Everything else that is not null goes to fromisoformat, once per distinct value.
    slow = np.flatnonzero(np.isnat(dates) & ~text.null)
    if len(slow):
        zone = ZoneInfo(timezone)
        cells = pd.Series(column.iloc[slow].to_numpy(dtype=object))
        codes, distinct = pd.factorize(cells.map(_parsable), use_na_sentinel=False)
        days = np.array([_python_day(v, zone) for v in distinct], "datetime64[D]")
        dates[slow] = days[codes]
    return _day_strings(dates)


def _parsable(value: Any) -> str | datetime | None:
    """What fromisoformat can judge; anything else (hashable or not) stands as None."""
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


def _in_calendar(dates: np.ndarray) -> np.ndarray:
    return np.where((dates < _FIRST_DAY) | (dates > _LAST_DAY), np.datetime64("NaT"), dates)


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
    """The Task fields of every input row; ``rows`` are the ones that passed validation.

    Indexed by input row, so that nothing is copied just to drop the rejected rows."""

    rows: np.ndarray
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
    def of(cls, checked: _Checked, crm: Crm) -> _Events:
        text = {name: column.values for name, column in checked.text.items()}
        types = text["type"]
        return cls(
            rows=np.flatnonzero(checked.open),
            event_id=text["event_id"],
            type=types,
            shared_type=_mask(pc.is_in(types, value_set=_strings(SHARED_TYPES))),
            owner_id=_owner_ids(crm, _normalise_email(text["sender"])),
            subject=_subjects(types, text["subject"]),
            description=_descriptions(types, text["body"], text["url"], text["filename"]),
            activity_date=checked.dates,
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


def _owner_ids(crm: Crm, senders: pa.Array) -> pa.Array:
    """OwnerId per sender: the active User with that email, the lowest Id if several."""
    users = crm.users
    ids = _arrow(users["Id"])
    usable = users["IsActive"].to_numpy() & _mask(pc.is_valid(ids))
    by_email = _ByEmail.of(_normalise_email(_arrow(users["Email"])), usable, users[["Id"]], [True])
    return _take(ids, by_email.lookup(senders))


@dataclass(frozen=True)
class _ByEmail:
    """The one row chosen for each distinct normalised email. Only rows that share an email
    are sorted by the ranking, so the common case of unique emails costs one hash."""

    emails: pa.Array  # distinct
    row: np.ndarray  # the chosen row per email, then -1 for "none"

    @classmethod
    def of(
        cls, emails: pa.Array, usable: np.ndarray, ranking: pd.DataFrame, ascending: list[bool]
    ) -> _ByEmail:
        rows = np.flatnonzero(usable & _mask(pc.not_equal(emails, "")))
        email = emails.take(pa.array(rows))
        shared = email.to_pandas().duplicated(keep=False).to_numpy()
        ties = ranking.iloc[rows[shared]].assign(email=_text_at(email, np.flatnonzero(shared)))
        ties = ties.assign(row=rows[shared]).sort_values(
            ["email", *ranking.columns], ascending=[True, *ascending], na_position="last"
        )
        ties = ties.drop_duplicates("email")
        unique = np.flatnonzero(~shared)
        emails = pa.concat_arrays([email.take(pa.array(unique)), _arrow(ties["email"])])
        chosen = np.concatenate([rows[unique], ties["row"].to_numpy(np.int64), [-1]])
        return cls(emails, chosen)

    def lookup(self, addresses: pa.Array) -> np.ndarray:
        """The chosen row per address, -1 where no row has that email."""
        return self.row[_index_in(addresses, self.emails)]


# --------------------------------------------------------------------------- addresses

# What became of an address, in the precedence of R3/R4/R5; index = code in _People.outcome.
_OUTCOMES = ("matched", "repeated", "bcc_not_synced", "invalid_email", "excluded", "unmatched")
_MATCHED, _REPEATED = 0, 1  # "repeated": a later copy of an address, dropped without a row


@dataclass(frozen=True)
class _Directory:
    """The CRM people as one indexed list: Contacts, then unconverted Leads (R5)."""

    person_id: pa.Array
    account_id: pa.Array  # null for Leads
    contacts: int  # a person index below this is a Contact
    by_email: _ByEmail

    @classmethod
    def of(cls, crm: Crm) -> _Directory:
        """R5's choice per email: a Contact before a Lead, then the newest LastModifiedDate,
        then the lowest Id."""
        people = pd.concat(
            [crm.contacts.assign(is_lead=False), crm.leads[~crm.leads["IsConverted"]]],
            ignore_index=True,
        ).fillna({"is_lead": True})
        person_id = _arrow(people["Id"])
        ranking = people[["is_lead", "LastModifiedDate", "Id"]].astype({"is_lead": bool})
        return cls(
            person_id=person_id,
            account_id=_arrow(people["AccountId"]),
            contacts=len(crm.contacts),
            by_email=_ByEmail.of(
                _normalise_email(_arrow(people["Email"])),
                _mask(pc.is_valid(person_id)),
                ranking,
                [True, False, True],
            ),
        )


@dataclass(frozen=True)
class _People:
    """Every address of every planned event, in listed order, with what became of it."""

    event: np.ndarray  # input row of the event
    position: np.ndarray
    field: pa.Array
    email: pa.Array
    outcome: np.ndarray  # index into _OUTCOMES
    person: np.ndarray  # index into _Directory, -1 unless matched
    is_contact: np.ndarray  # matched to a Contact

    @property
    def matched(self) -> np.ndarray:
        return self.outcome == _MATCHED

    def rejected(self, planned: _Events) -> pd.DataFrame:
        rows = np.flatnonzero(self.outcome > _REPEATED)
        reasons = np.array(_OUTCOMES, object)[self.outcome[rows]]
        why = pd.Series(reasons, dtype=object).map(REASONS).to_numpy()
        return pd.DataFrame(
            {
                "event_id": _text_at(planned.event_id, self.event[rows]),
                "email": _text_at(self.email, rows),
                "reason": reasons,
                "detail": _text_at(self.field, rows) + ": " + why,
            }
        )

    def trace(self, planned: _Events, directory: _Directory) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "event_id": _text_at(planned.event_id, self.event),
                "position": self.position,
                "field": self.field.to_numpy(zero_copy_only=False),
                "email": self.email.to_numpy(zero_copy_only=False),
                "outcome": np.array(_OUTCOMES, object)[self.outcome],
                "person_id": _text_at(directory.person_id, self.person),
                "is_contact": self.is_contact,
            }
        )


def _addresses(
    checked: _Checked, planned: _Events, settings: Settings, directory: _Directory
) -> _People:
    """R3–R5 for every recipient and actor: dedupe, Bcc, syntax, exclusion, matching."""
    recipient_events = planned.rows[checked.is_recipient[planned.rows]]
    lists = checked.recipients.lists.take(pa.array(recipient_events))
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    starts = lists.offsets.to_numpy()[:-1] - lists.offsets[0].as_py()
    actor_events = planned.rows[checked.is_actor[planned.rows]]
    actors = checked.actor_email.take(pa.array(actor_events))

    event = np.concatenate([recipient_events[parents], actor_events])
    position = np.concatenate(
        [np.arange(len(parents)) - starts[parents], np.zeros(len(actor_events), np.int64)]
    )
    field = pa.concat_arrays(
        [pc.struct_field(flat, "field"), pa.nulls(len(actor_events), _STRING).fill_null("actor")]
    )
    email = pa.concat_arrays([_normalise_email(pc.struct_field(flat, "email")), actors])

    # Each distinct address is judged once; ``code`` maps every row to its address.
    code, uniques = pd.factorize(email.to_pandas())
    distinct = _arrow(pd.Series(uniques))
    syntax_ok = _mask(pc.match_substring_regex(distinct, _EMAIL_FULL))
    excluded = _excluded(distinct, settings)
    person = directory.by_email.lookup(distinct)[code]

    # R3: a repeated address of an event counts once, where it first appears.
    repeated = pd.Series(event * len(distinct) + code).duplicated().to_numpy()
    is_bcc = _mask(pc.equal(field, "bcc")) & (not settings.sync_bcc)
    checks = [repeated, is_bcc, ~syntax_ok[code], excluded[code], person < 0]
    outcome = np.select(checks, np.arange(1, len(_OUTCOMES)), _MATCHED).astype(np.int8)
    person = np.where(outcome == _MATCHED, person, -1)
    is_contact = (person >= 0) & (person < directory.contacts)
    return _People(event, position, field, email, outcome, person, is_contact)


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


# --------------------------------------------------------------------------- Tasks


@dataclass(frozen=True)
class _Units:
    """One row per Task before the Opportunity fan-out of R8: a batch or one person."""

    event: np.ndarray
    who: np.ndarray  # person index of the primary
    is_contact: np.ndarray
    part: pa.Array  # "b<batch>" or "w<WhoId>", the task_key part
    batch_index: np.ndarray
    who_count: np.ndarray
    shared: np.ndarray
    member_start: np.ndarray  # first row of the unit in ``members``
    members: np.ndarray  # person index of every member, unit after unit, in position order
    position: np.ndarray  # of each member


def _units(people: _People, planned: _Events, directory: _Directory, *, shared: bool) -> _Units:
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
    who = people.person[rows[heads]]
    unit_shared = in_batch[heads]
    part = pc.if_else(
        pa.array(unit_shared),
        _join("b", pc.cast(pa.array(batch_index), _STRING)),
        _join("w", directory.person_id.take(pa.array(who))),
    )
    return _Units(
        event=event[heads],
        who=who,
        is_contact=people.is_contact[rows[heads]],
        part=part,
        batch_index=batch_index.astype(np.int64),
        who_count=np.bincount(unit, minlength=len(heads)).astype(np.int64),
        shared=unit_shared,
        member_start=heads,
        members=people.person[rows],
        position=member_position.astype(np.int64),
    )


@dataclass(frozen=True)
class _Links:
    """R8's candidate Opportunities grouped by the key a primary Contact brings: its
    AccountId (``account``) or its own Id (``contact_role``), with the owning User appended
    when only the sender's Opportunities count. Closed ones are gone if R8 says so."""

    keys: pa.Array  # distinct
    start: np.ndarray  # per key: first of its Opportunities in ``what``
    count: np.ndarray
    what: pa.Array  # Opportunity Ids, key after key

    @classmethod
    def of(cls, crm: Crm, settings: Settings) -> _Links | None:
        if not settings.sync_to_opportunities:
            return None
        opportunities = crm.opportunities[crm.opportunities["Id"].notna()]
        if settings.open_opportunities_only:
            opportunities = opportunities[~opportunities["IsClosed"]]
        if settings.opportunity_match == "account":
            links = opportunities.rename(columns={"AccountId": "key"})
        else:
            links = crm.contact_roles.merge(
                opportunities, left_on="OpportunityId", right_on="Id", suffixes=("_role", "")
            ).rename(columns={"ContactId": "key"})
        keys = _link_keys(settings, _arrow(links["key"]), _arrow(links["OwnerId"])).to_pandas()
        links = pd.DataFrame({"key": keys, "what": links["Id"].to_numpy()}).dropna()
        links = links.drop_duplicates().sort_values("key", kind="stable")
        codes, keys = pd.factorize(links["key"])
        count = np.bincount(codes, minlength=len(keys))
        return cls(_arrow(pd.Series(keys)), np.cumsum(count) - count, count, _arrow(links["what"]))

    def counts(self, keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Per key: where its Opportunities start in ``what``, and how many there are."""
        at = _index_in(keys, self.keys)  # -1, no such key, picks the appended 0
        return np.append(self.start, 0)[at], np.append(self.count, 0)[at]


def _link_keys(settings: Settings, key: pa.Array, owner: pa.Array) -> pa.Array:
    """The link key of rows: ``key``, joined with the owner's Id for owned_opportunities_only
    (null when either is null: no key, or no owner, matches nothing)."""
    return _join(key, "\x1f", owner) if settings.owned_opportunities_only else key


def _primary_keys(
    settings: Settings, directory: _Directory, person: np.ndarray, owner: pa.Array
) -> pa.Array:
    ids = directory.account_id if settings.opportunity_match == "account" else directory.person_id
    return _link_keys(settings, ids.take(pa.array(person)), owner)


@dataclass(frozen=True)
class _Tasks:
    unit: np.ndarray
    what_id: pa.Array


def _related_to(
    units: _Units, planned: _Events, directory: _Directory, links: _Links | None, settings: Settings
) -> _Tasks:
    """R8/R10: one Task per remaining Opportunity of the primary Contact, else its Account."""
    accounts = directory.account_id.take(pa.array(units.who))
    count = np.zeros(len(units.who), np.int64)
    start = np.zeros(len(units.who), np.int64)
    if links is not None:
        contacts = np.flatnonzero(units.is_contact)
        owners = planned.owner_id.take(pa.array(units.event[contacts]))
        keys = _primary_keys(settings, directory, units.who[contacts], owners)
        start[contacts], count[contacts] = links.counts(keys)
    alone = np.flatnonzero(count == 0)
    what = [accounts.take(pa.array(alone))]
    if links is not None:
        what.insert(0, links.what.take(pa.array(np.repeat(start, count) + _ragged(count))))
    fanned = np.repeat(np.arange(len(count)), count)
    return _Tasks(np.concatenate([fanned, alone]), pa.concat_arrays(what))


def _individual_mode_per_row(
    people: _People,
    planned: _Events,
    directory: _Directory,
    links: _Links | None,
    settings: Settings,
    rows: int,
) -> np.ndarray:
    """R13 without planning twice: each matched person as a primary of its own, counted
    per input row (so the audit can tell each sender's figure exactly)."""
    matched = np.flatnonzero(people.matched)
    per_row = np.bincount(people.event[matched], minlength=rows)
    if links is None:
        return per_row
    contacts = matched[people.is_contact[matched]]
    owners = planned.owner_id.take(pa.array(people.event[contacts]))
    _, count = links.counts(_primary_keys(settings, directory, people.person[contacts], owners))
    # Every matched person makes one Task, and one more per Opportunity past the first.
    np.add.at(per_row, people.event[contacts], np.maximum(count - 1, 0))
    return per_row


def _tasks_per_row(tasks: pd.DataFrame, planned: _Events, rows: int) -> np.ndarray:
    """Tasks planned per input row (event ids are unique among planned rows)."""
    row_of = pd.Series(
        planned.rows, index=planned.event_id.take(pa.array(planned.rows)).to_pandas()
    )
    per_row = np.zeros(rows, dtype=np.int64)
    counts = tasks["event_id"].value_counts()
    np.add.at(per_row, row_of.loc[counts.index.astype(object)].to_numpy(), counts.to_numpy())
    return per_row


def _by_sender(checked: _Checked, planned: _Events, per_row: np.ndarray) -> dict[str, int]:
    """Individual-mode Tasks per sender (trimmed, lower-cased), for the audit's table."""
    senders = _normalise_email(checked.text["sender"].values).take(pa.array(planned.rows))
    frame = pd.DataFrame({"sender": senders.to_pandas(), "tasks": per_row[planned.rows]})
    totals = frame.groupby("sender", sort=True)["tasks"].sum()
    return {str(k): int(v) for k, v in totals.items()}


def _ragged(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count in turn: the position within each repeated group."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


_KEY_PREFIX = "as1_"
_KEY_BYTES = 20  # a task_key shows the first 20 bytes of the SHA-256 as 40 hex digits


def _task_digests(
    org_id: str, event_ids: pa.Array, parts: pa.Array, what_ids: pa.Array
) -> np.ndarray:
    """The hash behind schema.task_key for every Task, one row of bytes per Task.

    The key text is joined by Arrow exactly as ``task_key`` joins it ("\\x1f" between org,
    event, part and WhatId or ""); only the hashing itself runs per Task. Tests hold the
    resulting keys equal to ``task_key``'s (R11).
    """
    raw = _join(org_id, "\x1f", event_ids, "\x1f", parts, "\x1f", pc.fill_null(what_ids, _text("")))
    data = memoryview(raw.buffers()[2] or b"").cast("B")
    bounds = np.frombuffer(raw.buffers()[1], np.int64)[raw.offset : raw.offset + len(raw) + 1]
    bounds = bounds.tolist()
    digests = b"".join(
        [sha256(data[a:b]).digest() for a, b in zip(bounds, bounds[1:], strict=False)]
    )
    return np.frombuffer(digests, np.uint8).reshape(-1, 32)[:, :_KEY_BYTES]


def _digest_order(digests: np.ndarray) -> np.ndarray:
    """The order that sorts the keys: hex text sorts as the bytes it shows do."""
    words = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel()
    order = np.argsort(words, kind="stable")
    if np.any(words[order][1:] == words[order][:-1]):  # 64 equal bits: let all 20 bytes decide
        rest = np.ascontiguousarray(np.pad(digests[:, 8:], ((0, 0), (0, 4)))).view(">u8")
        order = np.lexsort((rest[:, 1], rest[:, 0], words))
    return order


def _hex_keys(digests: np.ndarray) -> pa.Array:
    """The task_key strings of digests, built as one Arrow buffer."""
    hex_text = np.ascontiguousarray(digests).tobytes().hex().encode("ascii")
    text = np.empty((len(digests), len(_KEY_PREFIX) + 2 * _KEY_BYTES), np.uint8)
    text[:, : len(_KEY_PREFIX)] = np.frombuffer(_KEY_PREFIX.encode(), np.uint8)
    text[:, len(_KEY_PREFIX) :] = np.frombuffer(hex_text, np.uint8).reshape(-1, 2 * _KEY_BYTES)
    return _fixed_width_strings(text)


def _constant(value: str, n: int) -> pa.Array:
    text = np.frombuffer(value.encode(), np.uint8)
    return _fixed_width_strings(np.broadcast_to(text, (n, len(text))))


def _fixed_width_strings(text: np.ndarray) -> pa.Array:
    """Rows of UTF-8 bytes, all of one width, as an Arrow string array."""
    n, width = text.shape
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int64) * width)
    data = pa.py_buffer(np.ascontiguousarray(text).tobytes())
    return pa.LargeStringArray.from_buffers(n, offsets, data)


def _task_frames(
    tasks: _Tasks, units: _Units, planned: _Events, directory: _Directory, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tasks and task_relations frames in canonical order (task_key, then position)."""
    event = units.event[tasks.unit]
    digests = _task_digests(
        settings.org_id,
        planned.event_id.take(pa.array(event)),
        units.part.take(pa.array(tasks.unit)),
        tasks.what_id,
    )
    order = _digest_order(digests)
    key = _hex_keys(digests[order])
    unit = tasks.unit[order]
    take_event = pa.array(event[order])
    types = planned.type.take(take_event)
    n = len(unit)
    table = pa.table(
        {
            "task_key": key,
            "org_id": _constant(settings.org_id, n),
            "event_id": planned.event_id.take(take_event),
            "event_type": types,
            "WhoId": directory.person_id.take(pa.array(units.who[unit])),
            "WhatId": tasks.what_id.take(pa.array(order)),
            "OwnerId": planned.owner_id.take(take_event),
            "Subject": planned.subject.take(take_event),
            "Description": planned.description.take(take_event),
            "ActivityDate": planned.activity_date.take(take_event),
            "Status": _constant(TASK_STATUS, n),
            "TaskSubtype": _subtypes(types),
            "who_count": pa.array(units.who_count[unit], pa.int64()),
            "batch_index": pa.array(units.batch_index[unit], pa.int64()),
        }
    )
    # Each Task carries its unit's members in position order.
    counts = units.who_count[unit]
    member = np.repeat(units.member_start[unit], counts) + _ragged(counts)
    relations = pa.table(
        {
            "task_key": key.take(pa.array(np.repeat(np.arange(n), counts))),
            "RelationId": directory.person_id.take(pa.array(units.members[member])),
            "position": pa.array(units.position[member], pa.int64()),
            "is_primary": pa.array(units.position[member] == 0),
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


def _index_in(values: pa.Array, lookup: pa.Array) -> np.ndarray:
    """Position of each value in ``lookup`` (distinct values), -1 where it is not there."""
    at = pc.index_in(values, value_set=lookup)
    return pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _take(values: pa.Array, at: np.ndarray) -> pa.Array:
    """``values`` at positions ``at``, null where ``at`` is -1."""
    return values.take(pa.array(at, pa.int64(), mask=at < 0))


def _text_at(values: pa.Array, at: np.ndarray) -> np.ndarray:
    return _take(values, at).to_numpy(zero_copy_only=False)


def _arrow(values: pd.Series) -> pa.Array:
    return _array(pa.array(values, type=_STRING, from_pandas=True))


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
    table = pa.Table.from_pandas(_as_strings(rejected), preserve_index=False)
    keys = [(name, "ascending", "at_end") for name in REJECTED_COLUMNS]
    return _to_pandas(table.sort_by(keys), REJECTED_COLUMNS)


def _count_reasons(rejected: pd.DataFrame) -> dict[str, int]:
    counts = rejected["reason"].value_counts()
    return {str(code): int(counts[code]) for code in sorted(counts.index)}
