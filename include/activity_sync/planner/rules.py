"""The rule core: planned events -> addresses -> Task units -> related-to -> plan frames.

One dataflow over the whole interval, rules R2–R10 and R14 (docs/rules.md) in turn, reading
the CRM through the lookup tables of ``lookups.py``. Recipients are exploded into one long
table, every distinct address is validated, excluded and matched once (R3–R5), batches of
50 come from a running count (R6/R7), the Opportunity fan-out of R8 repeats each primary
over its grouped Opportunities, and only the hash of each task_key is computed per Task
(``keys.py``). A meeting planned as Salesforce Events (R14) goes through the same units
and fan-out; ``salesforce_events.py`` makes its frames. ``reference.py`` states the same
rules one event at a time; the tests hold the two planners equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activity_sync.crm import Crm
from activity_sync.planner.arrow import (
    STRING,
    from_series,
    join_text,
    mask,
    repeated_string,
    sorted_strings,
    text_at,
    text_scalar,
    to_pandas,
    utf16_prefix,
)
from activity_sync.planner.columns import normalise_email, strip
from activity_sync.planner.keys import digest_order, hex_keys, task_digests
from activity_sync.planner.lookups import (
    OpportunityLinks,
    PersonDirectory,
    owner_ids,
    primary_keys,
)
from activity_sync.planner.validate import CheckedEvents, is_email
from activity_sync.schema import (
    BATCH_SIZE,
    DECLINED_RESPONSE,
    DESCRIPTION_MAX,
    REASONS,
    RELATION_COLUMNS,
    SHARED_TYPES,
    SUBJECT_MAX,
    SUBJECT_PREFIX,
    SYSTEM_LOCAL_PARTS,
    TASK_COLUMNS,
    TASK_STATUS,
    TASK_SUBTYPE,
)
from activity_sync.settings import Settings

# What became of an address, in the precedence of R3/R4/R14/R5; index =
# AddressOutcomes.outcome. "declined" only for attendees of a meeting planned as Events.
OUTCOMES = (
    "matched",
    "repeated",
    "bcc_not_synced",
    "invalid_email",
    "excluded",
    "declined",
    "unmatched",
)
_MATCHED, _REPEATED = 0, 1  # "repeated": a later copy of an address, dropped without a row
_DECLINED = OUTCOMES.index("declined")


# --------------------------------------------------------------------------- planned events


@dataclass(frozen=True)
class PlannedEvents:
    """The Task fields of every input row; ``rows`` are the ones that passed validation.

    Indexed by input row, so that nothing is copied just to drop the rejected rows.
    ``as_event`` marks the meetings planned as Salesforce Events (R14); ``batched`` the
    rows whose Contacts share records in batches of 50 when shared mode is on."""

    rows: np.ndarray
    event_id: pa.Array
    type: pa.Array
    as_event: np.ndarray
    batched: np.ndarray
    owner_id: pa.Array
    subject: pa.Array
    description: pa.Array
    activity_date: pa.Array

    @property
    def count(self) -> int:
        return len(self.rows)

    @classmethod
    def of(cls, checked: CheckedEvents, crm: Crm, *, meetings_as_events: bool) -> PlannedEvents:
        """The planned rows; ``meetings_as_events``: R14 applies (shared mode and the
        org's setting)."""
        text = {name: column.values for name, column in checked.text.items()}
        types = text["type"]
        as_event = mask(pc.equal(types, "meeting")) & meetings_as_events
        return cls(
            rows=np.flatnonzero(checked.open),
            event_id=text["event_id"],
            type=types,
            as_event=as_event,
            batched=mask(pc.is_in(types, value_set=sorted_strings(SHARED_TYPES))) | as_event,
            owner_id=owner_ids(crm, normalise_email(text["sender"])),
            subject=_subjects(types, text["subject"]),
            description=_descriptions(types, text["body"], text["url"], text["filename"]),
            activity_date=checked.dates.dates,
        )


def _subjects(types: pa.Array, subjects: pa.Array) -> pa.Array:
    """schema.subject_for, vectorised: the type's prefix, the stripped subject, cut to 255
    UTF-16 code units."""
    kinds = sorted(SUBJECT_PREFIX)
    prefix = pa.array([SUBJECT_PREFIX[k] for k in kinds], STRING).take(
        pc.index_in(types, value_set=pa.array(kinds, STRING))
    )
    joined = join_text(prefix, pc.fill_null(strip(subjects), text_scalar("")))
    return utf16_prefix(joined, SUBJECT_MAX)


def _descriptions(types: pa.Array, body: pa.Array, url: pa.Array, filename: pa.Array) -> pa.Array:
    """schema.description_for, vectorised: the link or file for click/download, else the body."""

    def mention(verb: str, value: pa.Array, otherwise: str) -> pa.Array:
        given = mask(pc.not_equal(value, ""))
        return pc.if_else(pa.array(given), join_text(verb, value), text_scalar(otherwise))

    text = pc.if_else(
        pc.equal(types, "click"),
        mention("Clicked ", url, "Clicked a link"),
        pc.if_else(
            pc.equal(types, "download"),
            mention("Downloaded ", filename, "Downloaded a file"),
            pc.fill_null(body, text_scalar("")),
        ),
    )
    return utf16_prefix(text, DESCRIPTION_MAX)


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class AddressOutcomes:
    """Every address (recipient or actor) of every planned event, in listed order, with
    what became of it."""

    event: np.ndarray  # input row of the event
    position: np.ndarray
    field: pa.Array
    email: pa.Array
    outcome: np.ndarray  # index into OUTCOMES
    person: np.ndarray  # index into PersonDirectory, -1 unless matched
    is_contact: np.ndarray  # matched to a Contact
    # The person individual mode would relate: the matched one, or a declined attendee's
    # match (individual mode plans a Task for every attendee, R13); -1 otherwise.
    individual_person: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        return self.outcome == _MATCHED

    def rejected(self, planned: PlannedEvents) -> pd.DataFrame:
        """The recipient-level rejections in the columns of rejected.parquet."""
        rows = np.flatnonzero(self.outcome > _REPEATED)
        reasons = np.array(OUTCOMES, object)[self.outcome[rows]]
        why = pd.Series(reasons, dtype=object).map(REASONS).to_numpy()
        return pd.DataFrame(
            {
                "event_id": text_at(planned.event_id, self.event[rows]),
                "email": text_at(self.email, rows),
                "reason": reasons,
                "detail": text_at(self.field, rows) + ": " + why,
            }
        )

    def trace(self, planned: PlannedEvents, directory: PersonDirectory) -> pd.DataFrame:
        """One row per address, as ``plan_traced`` documents it."""
        return pd.DataFrame(
            {
                "event_id": text_at(planned.event_id, self.event),
                "position": self.position,
                "field": self.field.to_numpy(zero_copy_only=False),
                "email": self.email.to_numpy(zero_copy_only=False),
                "outcome": np.array(OUTCOMES, object)[self.outcome],
                "person_id": text_at(directory.person_id, self.person),
                "is_contact": self.is_contact,
            }
        )


def address_outcomes(
    checked: CheckedEvents, planned: PlannedEvents, settings: Settings, directory: PersonDirectory
) -> AddressOutcomes:
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
        [pc.struct_field(flat, "field"), pa.nulls(len(actor_events), STRING).fill_null("actor")]
    )
    email = pa.concat_arrays([normalise_email(pc.struct_field(flat, "email")), actors])

    # Each distinct address is judged once; ``code`` maps every row to its address.
    code, uniques = pd.factorize(email.to_pandas())
    distinct = from_series(pd.Series(uniques))
    syntax_ok = is_email(distinct)
    excluded = _excluded(distinct, settings)
    person = directory.by_email.lookup(distinct)[code]

    # R3: a repeated address of an event counts once, where it first appears.
    repeated = pd.Series(event * len(distinct) + code).duplicated().to_numpy()
    is_bcc = mask(pc.equal(field, "bcc")) & (not settings.sync_bcc)
    # R14: a declined attendee of a meeting planned as Salesforce Events is not related.
    declined = np.zeros(len(event), bool)
    if planned.as_event[recipient_events].any():  # email-only input skips the responses
        response = pc.struct_field(flat, "response")
        declined[: len(parents)] = mask(pc.equal(response, DECLINED_RESPONSE))
        declined &= planned.as_event[event]
    checks = [repeated, is_bcc, ~syntax_ok[code], excluded[code], declined, person < 0]
    outcome = np.select(checks, np.arange(1, len(OUTCOMES)), _MATCHED).astype(np.int8)
    individual_person = np.where((outcome == _MATCHED) | (outcome == _DECLINED), person, -1)
    person = np.where(outcome == _MATCHED, person, -1)
    is_contact = (person >= 0) & (person < directory.contacts)
    return AddressOutcomes(
        event, position, field, email, outcome, person, is_contact, individual_person
    )


def _excluded(addresses: pa.Array, settings: Settings) -> np.ndarray:
    """R4 for valid addresses: an excluded address or domain (and its subdomains), or a
    system mailbox whose local part, without any +tag, is a known automated one."""
    local = pc.replace_substring_regex(addresses, "@.*$", "")
    domain = pc.replace_substring_regex(addresses, "^[^@]*@", "")
    out = mask(pc.is_in(addresses, value_set=sorted_strings(settings.excluded_addresses)))
    out |= mask(pc.is_in(domain, value_set=sorted_strings(settings.excluded_domains)))
    for excluded_domain in settings.excluded_domains:
        out |= mask(pc.ends_with(domain, "." + excluded_domain))
    if settings.exclude_system_addresses:
        untagged = pc.replace_substring_regex(local, r"\+.*$", "")
        out |= mask(pc.is_in(untagged, value_set=sorted_strings(SYSTEM_LOCAL_PARTS)))
    return out


# --------------------------------------------------------------------------- Task units


@dataclass(frozen=True)
class TaskUnits:
    """One row per Task before the Opportunity fan-out of R8: a batch or one person."""

    event: np.ndarray
    who: np.ndarray  # person index of the primary
    is_contact: np.ndarray
    key_part: pa.Array  # "b<batch>" or "w<WhoId>", the task_key part
    batch_index: np.ndarray
    who_count: np.ndarray
    shared: np.ndarray
    member_start: np.ndarray  # first row of the unit in ``members``
    members: np.ndarray  # person index of every member, unit after unit, in position order
    position: np.ndarray  # of each member


def task_units(
    outcomes: AddressOutcomes, planned: PlannedEvents, directory: PersonDirectory, *, shared: bool
) -> TaskUnits:
    """R6/R7/R14: Contacts of a shared event (or of a meeting planned as Salesforce Events)
    in batches of 50; every other person on their own."""
    rows = np.flatnonzero(outcomes.matched)
    event, position = outcomes.event[rows], outcomes.position[rows]
    in_batch = outcomes.is_contact[rows] & planned.batched[event] & shared
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
    who = outcomes.person[rows[heads]]
    unit_shared = in_batch[heads]
    key_part = pc.if_else(
        pa.array(unit_shared),
        join_text("b", pc.cast(pa.array(batch_index), STRING)),
        join_text("w", directory.person_id.take(pa.array(who))),
    )
    return TaskUnits(
        event=event[heads],
        who=who,
        is_contact=outcomes.is_contact[rows[heads]],
        key_part=key_part,
        batch_index=batch_index.astype(np.int64),
        who_count=np.bincount(unit, minlength=len(heads)).astype(np.int64),
        shared=unit_shared,
        member_start=heads,
        members=outcomes.person[rows],
        position=member_position.astype(np.int64),
    )


# --------------------------------------------------------------------------- related-to


@dataclass(frozen=True)
class RelatedTasks:
    """One row per Task: the unit it plans and its WhatId."""

    unit: np.ndarray
    what_id: pa.Array

    def where(self, keep: np.ndarray) -> RelatedTasks:
        """The rows of ``keep`` (a mask over the rows)."""
        return RelatedTasks(self.unit[keep], self.what_id.filter(pa.array(keep)))


def related_to(
    units: TaskUnits,
    planned: PlannedEvents,
    directory: PersonDirectory,
    links: OpportunityLinks | None,
    settings: Settings,
) -> RelatedTasks:
    """R8/R10: one Task per remaining Opportunity of the primary Contact, else its Account."""
    accounts = directory.account_id.take(pa.array(units.who))
    count = np.zeros(len(units.who), np.int64)
    start = np.zeros(len(units.who), np.int64)
    if links is not None:
        contacts = np.flatnonzero(units.is_contact)
        owners = planned.owner_id.take(pa.array(units.event[contacts]))
        keys = primary_keys(settings, directory, units.who[contacts], owners)
        start[contacts], count[contacts] = links.counts(keys)
    alone = np.flatnonzero(count == 0)
    what = [accounts.take(pa.array(alone))]
    if links is not None:
        what.insert(0, links.what.take(pa.array(np.repeat(start, count) + ragged(count))))
    fanned = np.repeat(np.arange(len(count)), count)
    return RelatedTasks(np.concatenate([fanned, alone]), pa.concat_arrays(what))


def individual_mode_per_row(
    outcomes: AddressOutcomes,
    planned: PlannedEvents,
    directory: PersonDirectory,
    links: OpportunityLinks | None,
    settings: Settings,
    rows: int,
) -> np.ndarray:
    """R13 without planning twice: each person individual mode relates as a primary of its
    own, counted per input row (so the audit can tell each sender's figure exactly)."""
    person = outcomes.individual_person
    matched = np.flatnonzero(person >= 0)
    per_row = np.bincount(outcomes.event[matched], minlength=rows)
    if links is None:
        return per_row
    contacts = matched[person[matched] < directory.contacts]
    owners = planned.owner_id.take(pa.array(outcomes.event[contacts]))
    _, count = links.counts(primary_keys(settings, directory, person[contacts], owners))
    # Every matched person makes one Task, and one more per Opportunity past the first.
    np.add.at(per_row, outcomes.event[contacts], np.maximum(count - 1, 0))
    return per_row


def ragged(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count in turn: the position within each repeated group."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


# --------------------------------------------------------------------------- frames


def task_frames(
    tasks: RelatedTasks,
    units: TaskUnits,
    planned: PlannedEvents,
    directory: PersonDirectory,
    settings: Settings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tasks and task_relations frames in canonical order (task_key, then position)."""
    event = units.event[tasks.unit]
    digests = task_digests(
        settings.org_id,
        planned.event_id.take(pa.array(event)),
        units.key_part.take(pa.array(tasks.unit)),
        tasks.what_id,
    )
    order = digest_order(digests)
    key = hex_keys(digests[order])
    unit = tasks.unit[order]
    take_event = pa.array(event[order])
    types = planned.type.take(take_event)
    n = len(unit)
    table = pa.table(
        {
            "task_key": key,
            "org_id": repeated_string(settings.org_id, n),
            "event_id": planned.event_id.take(take_event),
            "event_type": types,
            "WhoId": directory.person_id.take(pa.array(units.who[unit])),
            "WhatId": tasks.what_id.take(pa.array(order)),
            "OwnerId": planned.owner_id.take(take_event),
            "Subject": planned.subject.take(take_event),
            "Description": planned.description.take(take_event),
            "ActivityDate": planned.activity_date.take(take_event),
            "Status": repeated_string(TASK_STATUS, n),
            "TaskSubtype": _subtypes(types),
            "who_count": pa.array(units.who_count[unit], pa.int64()),
            "batch_index": pa.array(units.batch_index[unit], pa.int64()),
        }
    )
    relations = member_table("task_key", key, unit, units, directory)
    return to_pandas(table, TASK_COLUMNS), to_pandas(relations, RELATION_COLUMNS)


def member_table(
    key_name: str, key: pa.Array, unit: np.ndarray, units: TaskUnits, directory: PersonDirectory
) -> pa.Table:
    """Every person on each record (keys ``key``, of units ``unit``), in position order."""
    counts = units.who_count[unit]
    member = np.repeat(units.member_start[unit], counts) + ragged(counts)
    return pa.table(
        {
            key_name: key.take(pa.array(np.repeat(np.arange(len(unit)), counts))),
            "RelationId": directory.person_id.take(pa.array(units.members[member])),
            "position": pa.array(units.position[member], pa.int64()),
            "is_primary": pa.array(units.position[member] == 0),
        }
    )


def _subtypes(types: pa.Array) -> pa.Array:
    kinds = sorted(TASK_SUBTYPE)
    return pa.array([TASK_SUBTYPE[k] for k in kinds], STRING).take(
        pc.index_in(types, value_set=pa.array(kinds, STRING))
    )
