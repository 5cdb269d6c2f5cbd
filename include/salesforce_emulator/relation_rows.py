"""Relation rows (TaskRelation, EventRelation): reading them, and the rules a new or changed row must meet.

Salesforce's rules, as the Object Reference documents them for TaskRelation and
EventRelation (see ``salesforce_api.md`` §1 and the pages cited in ``activity_objects.py``):

- A relation names a person (Contact or Lead: ``IsWhat`` false) or a record (Account,
  Opportunity: ``IsWhat`` true); one row per activity and person or record.
- An activity relates to one Lead or up to 50 Contacts, and to one record at most; a
  Lead allows no record and no other people.
- EventRelation rows also invite: "EventRelation records can represent: Invitees
  (IsInvitee is set to true) OR Related contacts or lead (IsParent is set to true)", "If a
  contact or lead is also an invitee, there is one EventRelation record for that person
  with IsInvitee and IsParent [...] set to true", a User can be invited, and "A
  non-recurring event can have up to 1,000 invitees". Only ``IsParent`` rows count
  towards the 50 Contacts, WhoId, WhoCount and WhatCount. "IsInvitee defaults to true
  [...] if IsInvitee, IsParent, and IsWhat are not set" and "to false [...] if IsParent
  is set to true"; both flags can be updated
  (http://www.salesforce.com/us/developer/docs/api/Content/sforce_api_objects_eventattendee.htm).
  Without Shared Activities "EventRelation records only represent invitees"
  (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-eventrelation.html).

Choices where Salesforce documents nothing (the harsher plausible one; codes UNCONFIRMED,
``salesforce_api.md`` §1.4): every breach is ``FIELD_INTEGRITY_EXCEPTION`` naming the
rule, on ``RelationId`` (or the flag at fault); a record (``IsWhat`` true) is always a
parent and never an invitee; a row that neither relates nor invites is refused; a User is
only ever an invitee.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pandas as pd

from salesforce_emulator.ids import (
    ACCOUNT_PREFIX,
    CONTACT_PREFIX,
    LEAD_PREFIX,
    OPPORTUNITY_PREFIX,
    USER_PREFIX,
    prefix_of,
)
from salesforce_emulator.objects import (
    ACTIVITIES,
    MAX_CONTACTS_PER_ACTIVITY,
    PARENT_FLAG,
    RELATION_OBJECTS,
)
from salesforce_emulator.records import RowErrors
from salesforce_emulator.store import quote_ident

if TYPE_CHECKING:
    from salesforce_emulator.context import WriteContext

WHO_PREFIXES = (CONTACT_PREFIX, LEAD_PREFIX)
PERSON_PREFIXES = (*WHO_PREFIXES, USER_PREFIX)
MAX_INVITEES = 1_000
INTEGRITY = "FIELD_INTEGRITY_EXCEPTION"

LEAD_WITH_WHAT = "A task or event whose Name is a Lead cannot be related to another record"
LEAD_WITH_OTHERS = "A task or event related to a Lead cannot be related to other contacts or leads"
TOO_MANY = f"A task or event can be related to at most {MAX_CONTACTS_PER_ACTIVITY} contacts"
ONE_WHAT = "A task or event can be related to only one Related To record"
IS_WHAT_MISMATCH = "IsWhat must be true for a Related To record and false for a person"
USER_NOT_PARENT = "A user can be invited to an event, not related to it"
WHAT_IS_PARENT = "A Related To record is related to the event: IsParent must be true"
WHAT_NOT_INVITED = "Only people can be invited to an event"
NEITHER = "An event relation must relate its person to the event (IsParent) or invite them"
TOO_MANY_INVITEES = f"An event can have at most {MAX_INVITEES:,} invitees"


# ------------------------------------------------------------------------------ reading


def json_list(values: Any) -> str:
    """Non-null values as a JSON array, for ``json_each(?)``."""
    return json.dumps(pd.Series(values, dtype=object).dropna().tolist())


def unique(values: pd.Series) -> pd.Series:
    return pd.Series(pd.unique(values.dropna()), dtype=object)


def parent_only(relation: str, alias: str = "r") -> str:
    """SQL narrowing ``relation`` rows to those that relate (not merely invite)."""
    flag = PARENT_FLAG.get(relation)
    return f" AND {alias}.{flag} = 1" if flag else ""


def column_of(db: sqlite3.Connection, table: str, ids: pd.Series, column: str) -> dict[str, Any]:
    """``column`` of the given records of ``table``, by Id."""
    return dict(
        db.execute(
            f"SELECT Id, {quote_ident(column)} FROM {quote_ident(table)} "
            "WHERE Id IN (SELECT value FROM json_each(?))",
            (json_list(pd.unique(ids.dropna())),),
        ).fetchall()
    )


def account_of(db: sqlite3.Connection, who: pd.Series, what: pd.Series) -> pd.Series:
    """The AccountId an activity (or relation) takes: its What's Account, else its Contact's."""
    out = pd.Series(None, index=who.index, dtype=object)
    what_prefix, who_prefix = prefix_of(what), prefix_of(who)
    is_account = what_prefix == ACCOUNT_PREFIX
    is_opportunity = what_prefix == OPPORTUNITY_PREFIX
    out[is_account] = what[is_account]
    if is_opportunity.any():
        opportunities = what[is_opportunity]
        out[is_opportunity] = opportunities.map(
            column_of(db, "Opportunity", opportunities, "AccountId")
        )
    by_contact = ~is_account & ~is_opportunity & (who_prefix == CONTACT_PREFIX)
    if by_contact.any():
        contacts = who[by_contact]
        out[by_contact] = contacts.map(column_of(db, "Contact", contacts, "AccountId"))
    return out.astype(object).where(out.notna(), None)


def live_pairs(
    db: sqlite3.Connection, activity: str, parents: pd.Series, *, invitees: bool = False
) -> pd.DataFrame:
    """Live relation rows of these activities: Id, parent, RelationId, IsWhat, IsInvitee, relates.

    Only the rows that relate, unless ``invitees`` asks for the invitee-only rows too;
    ``relates`` (0/1) tells them apart.
    """
    relation, parent, _ = ACTIVITIES[activity]
    flag = PARENT_FLAG.get(relation)
    flags = f"IsInvitee, {flag}" if flag else "0, 1"
    narrow = "" if invitees else parent_only(relation)
    return pd.DataFrame(
        db.execute(
            f"SELECT Id, {parent}, RelationId, IsWhat, {flags} FROM {quote_ident(relation)} r "
            f"WHERE IsDeleted = 0{narrow} AND {parent} IN (SELECT value FROM json_each(?))",
            (json_list(pd.unique(parents.dropna())),),
        ).fetchall(),
        columns=["Id", "parent", "RelationId", "IsWhat", "IsInvitee", "relates"],
    )


def _activities(db: sqlite3.Connection, activity: str, ids: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        db.execute(
            f"SELECT Id, WhoId, WhatId FROM {quote_ident(activity)} "
            "WHERE Id IN (SELECT value FROM json_each(?))",
            (json_list(pd.unique(ids.dropna())),),
        ).fetchall(),
        columns=["Id", "WhoId", "WhatId"],
    ).set_index("Id")


# ------------------------------------------------------------------------------ checking


def _flag(values: pd.DataFrame, name: str) -> pd.Series:
    """A 0/1 checkbox column, None where the row left it unset."""
    if name not in values:
        return pd.Series(None, index=values.index, dtype=object)
    return values[name].astype(object)


def _event_flags(ctx: WriteContext, typed: pd.DataFrame, rel: pd.Series, errors: RowErrors):
    """Default and check IsWhat, IsParent and IsInvitee of new EventRelation rows."""
    if not ctx.shape.shared_activities:
        # The flags are not visible: every row is an invitee, so a person.
        typed["IsWhat"], typed["IsParent"], typed["IsInvitee"] = 0, 0, 1
        errors.add(
            rel.notna() & ~prefix_of(rel).isin(PERSON_PREFIXES),
            INTEGRITY,
            WHAT_NOT_INVITED,
            "RelationId",
        )
        return
    what = _flag(typed, "IsWhat").fillna(0).astype(int)
    given_parent = _flag(typed, "IsParent")
    parent = given_parent.fillna(what).astype(int)
    invitee = _flag(typed, "IsInvitee").fillna(1 - parent).astype(int)
    is_user = prefix_of(rel) == USER_PREFIX
    errors.add((what == 1) & given_parent.eq(0), INTEGRITY, WHAT_IS_PARENT, "IsParent")
    errors.add((what == 1) & (invitee == 1), INTEGRITY, WHAT_NOT_INVITED, "IsInvitee")
    errors.add(is_user & (parent == 1), INTEGRITY, USER_NOT_PARENT, "IsParent")
    errors.add((parent == 0) & (invitee == 0), INTEGRITY, NEITHER, "IsParent, IsInvitee")
    typed["IsWhat"], typed["IsParent"], typed["IsInvitee"] = what, parent, invitee


def _check_people(
    owner: pd.Series,
    rel: pd.Series,
    who_rows: pd.Series,
    what_rows: pd.Series,
    activities: pd.DataFrame,
    existing: pd.DataFrame,
    errors: RowErrors,
) -> None:
    """Rows that would relate (``who_rows``, ``what_rows``) against those already relating.

    The What side: one record, never on a Lead's activity. The Who side: a Lead alone, or
    up to 50 Contacts; rows of one batch count in order.
    """
    act_who = owner.map(activities["WhoId"]).astype(object)
    act_what = owner.map(activities["WhatId"]).astype(object)
    act_is_lead = prefix_of(act_who) == LEAD_PREFIX
    row_is_lead = prefix_of(rel) == LEAD_PREFIX
    who_side = existing["IsWhat"] == 0
    existing_who = owner.map(existing[who_side].groupby("parent").size()).fillna(0)
    existing_what = owner.map(existing[~who_side].groupby("parent").size()).fillna(0)

    errors.add(what_rows & act_is_lead, INTEGRITY, LEAD_WITH_WHAT, "RelationId")
    errors.add(
        what_rows & (act_what.notna() | (existing_what > 0)), INTEGRITY, ONE_WHAT, "RelationId"
    )
    live_what = (what_rows & errors.ok).astype(int)
    errors.add(
        (live_what.groupby(owner).cumsum() - live_what) > 0, INTEGRITY, ONE_WHAT, "RelationId"
    )

    errors.add(who_rows & act_is_lead, INTEGRITY, LEAD_WITH_OTHERS, "RelationId")
    errors.add(who_rows & row_is_lead & act_what.notna(), INTEGRITY, LEAD_WITH_WHAT, "RelationId")
    live_who = (who_rows & errors.ok).astype(int)
    before = live_who.groupby(owner).cumsum() - live_who
    live_leads = (who_rows & errors.ok & row_is_lead).astype(int)
    leads_before = live_leads.groupby(owner).cumsum() - live_leads
    errors.add(
        who_rows & row_is_lead & ((existing_who + before) > 0),
        INTEGRITY,
        LEAD_WITH_OTHERS,
        "RelationId",
    )
    errors.add(
        who_rows & ~row_is_lead & (leads_before > 0), INTEGRITY, LEAD_WITH_OTHERS, "RelationId"
    )
    live_who = (who_rows & errors.ok).astype(int)
    before = live_who.groupby(owner).cumsum() - live_who
    errors.add(
        who_rows & ((existing_who + before) >= MAX_CONTACTS_PER_ACTIVITY),
        INTEGRITY,
        TOO_MANY,
        "RelationId",
    )


def check_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, typed: pd.DataFrame, errors: RowErrors
) -> None:
    """Check new relation rows of ``obj``, fill their derived columns (flags, AccountId)."""
    activity, parent = RELATION_OBJECTS[obj]
    none = pd.Series(None, index=typed.index, dtype=object)
    rel, owner = typed.get("RelationId", none), typed.get(parent, none)
    prefix = prefix_of(rel)
    is_who, is_person = prefix.isin(WHO_PREFIXES), prefix.isin(PERSON_PREFIXES)
    if obj in PARENT_FLAG:
        _event_flags(ctx, typed, rel, errors)
    is_what_flag = typed["IsWhat"].fillna(0).astype(int) == 1
    errors.add(rel.notna() & (is_person == is_what_flag), INTEGRITY, IS_WHAT_MISMATCH, "IsWhat")
    typed["AccountId"] = account_of(db, rel.where(is_who), rel.where(~is_person))
    if not errors.ok.any():
        return
    relating = (
        typed[PARENT_FLAG[obj]].eq(1) if obj in PARENT_FLAG else pd.Series(True, index=typed.index)
    )
    existing = live_pairs(db, activity, owner[errors.ok], invitees=True)
    key = owner.astype(str) + "|" + rel.astype(str)
    held = pd.Series(
        existing["Id"].to_numpy(), index=existing["parent"] + "|" + existing["RelationId"]
    )
    found = key.map(held).astype(object)
    errors.add(
        found.notna(),
        "DUPLICATE_VALUE",
        "duplicate value found: RelationId duplicates value on record with id: "
        + found.astype(str),
        "RelationId",
    )
    errors.add(
        errors.ok & key.duplicated(),
        "DUPLICATE_VALUE",
        "duplicate value found: RelationId duplicates value in the same request",
        "RelationId",
    )
    _check_people(
        owner,
        rel,
        is_who & relating,
        ~is_person & relating,
        _activities(db, activity, owner[errors.ok]),
        existing[existing["relates"].eq(1)],
        errors,
    )
    if obj in PARENT_FLAG:
        _check_invitees(owner, typed["IsInvitee"].eq(1), existing, errors)


def _check_invitees(
    owner: pd.Series, inviting: pd.Series, existing: pd.DataFrame, errors: RowErrors
) -> None:
    held = owner.map(existing[existing["IsInvitee"].eq(1)].groupby("parent").size()).fillna(0)
    live = (inviting & errors.ok).astype(int)
    before = live.groupby(owner).cumsum() - live
    errors.add(inviting & ((held + before) >= MAX_INVITEES), INTEGRITY, TOO_MANY_INVITEES, "")


def check_update(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    ids: pd.Series,
    typed: pd.DataFrame,
    given: pd.DataFrame,
    current: pd.DataFrame,
    errors: RowErrors,
) -> pd.Series:
    """Check EventRelation rows whose flags change; return their Events, to re-derive.

    A row that starts relating meets the same rules as a new relating row; one that stops
    is handled like a deleted relation (``activity_relations`` promotes another primary).
    """
    flag = PARENT_FLAG.get(obj)
    if flag is None or not ctx.shape.shared_activities or current.empty:
        return pd.Series(dtype=object)
    activity, parent = RELATION_OBJECTS[obj]

    def old(name: str) -> pd.Series:
        return ids.map(current[name]).astype(object)

    def new(name: str) -> pd.Series:
        if name not in typed:
            return old(name)
        return typed[name].where(given[name], old(name)).astype(object)

    what = old("IsWhat").fillna(0).astype(int)
    was, relates, invited = old(flag).fillna(0), new(flag).fillna(0), new("IsInvitee").fillna(0)
    rel, owner = old("RelationId"), old(parent)
    errors.add((what == 1) & (relates == 0), INTEGRITY, WHAT_IS_PARENT, flag)
    errors.add((what == 1) & (invited == 1), INTEGRITY, WHAT_NOT_INVITED, "IsInvitee")
    errors.add((prefix_of(rel) == USER_PREFIX) & (relates == 1), INTEGRITY, USER_NOT_PARENT, flag)
    errors.add((relates == 0) & (invited == 0), INTEGRITY, NEITHER, f"{flag}, IsInvitee")
    starting = errors.ok & (relates == 1) & (was == 0)
    if starting.any():
        existing = live_pairs(db, activity, owner[starting])
        _check_people(
            owner,
            rel,
            starting & prefix_of(rel).isin(WHO_PREFIXES),
            starting & (what == 1),
            _activities(db, activity, owner[starting]),
            existing,
            errors,
        )
    starting_invitee = errors.ok & (invited == 1) & (old("IsInvitee").fillna(0) == 0)
    if starting_invitee.any():
        everyone = live_pairs(db, activity, owner[starting_invitee], invitees=True)
        _check_invitees(owner, starting_invitee, everyone, errors)
    return owner[errors.ok & (relates != was)]
