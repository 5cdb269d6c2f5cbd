"""Shared Activities: how Tasks (and Events) and their relation rows keep each other right.

These are Salesforce's own rules (not activity-sync's design rules R1–R14), as documented for TaskRelation and Task (see the reference notes):

- ``WhoId`` is a Contact or Lead; a Lead ``WhoId`` allows no ``WhatId`` and no other people.
- A Task relates to one Lead or up to 50 Contacts, and to at most one "What" record.
- While Shared Activities is on, inserting a Task with a ``WhoId`` creates its primary
  relation (``IsWhat`` false) and one for its ``WhatId`` (``IsWhat`` true); a relation pair
  exists once; deleting a Task deletes its relations; ``WhoCount``/``WhatCount`` count them.
- ``AccountId`` follows the What record (an Account, or an Opportunity's Account), else the
  primary Contact's Account.

Choices where Salesforce's behaviour is not documented (error codes are UNCONFIRMED, see
``salesforce_api.md`` §1.4):

- Every breach of the lead / 50-contact / one-What rules is ``FIELD_INTEGRITY_EXCEPTION``
  with a message that names the rule, on field ``RelationId`` (relation inserts) or
  ``WhatId``/``WhoId`` (Task writes).
- Changing ``WhoId`` replaces the primary: the old primary's relation is deleted and the
  new person's is created (or kept, if already related). Setting ``WhoId`` to null
  promotes the oldest remaining person. Changing ``WhatId`` replaces the What relation.
- Deleting the primary's relation promotes the oldest remaining person; deleting the What
  relation clears ``WhatId``.
- Turning Shared Activities off keeps the relation rows but hides them; turning it back on
  creates the primary and What relations missing for Tasks written meanwhile.

Everything here works on whole batches with set-based SQL and pandas group operations.
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
    prefix_of,
)
from salesforce_emulator.objects import (
    ACTIVITIES,
    ALL_OBJECTS,
    MAX_CONTACTS_PER_ACTIVITY,
    RELATION_OBJECTS,
)
from salesforce_emulator.records import RowErrors
from salesforce_emulator.store import quote_ident, sql_rows

if TYPE_CHECKING:
    from salesforce_emulator.context import WriteContext

WHO_PREFIXES = (CONTACT_PREFIX, LEAD_PREFIX)

LEAD_WITH_WHAT = "A task or event whose Name is a Lead cannot be related to another record"
LEAD_WITH_OTHERS = "A task or event related to a Lead cannot be related to other contacts or leads"
TOO_MANY = f"A task or event can be related to at most {MAX_CONTACTS_PER_ACTIVITY} contacts"
ONE_WHAT = "A task or event can be related to only one Related To record"
IS_WHAT_MISMATCH = "IsWhat must be true for a Related To record and false for a Contact or Lead"


def _json(values: Any) -> str:
    return json.dumps(pd.Series(values, dtype=object).dropna().tolist())


def _unique(values: pd.Series) -> pd.Series:
    return pd.Series(pd.unique(values.dropna()), dtype=object)


def tracked_columns(obj: str) -> list[str]:
    """Current values ``before_update``/``after_update`` need."""
    return ["WhoId", "WhatId"] if obj in ACTIVITIES else []


def _column(db: sqlite3.Connection, table: str, ids: pd.Series, column: str) -> dict[str, Any]:
    """``column`` of the given records of ``table``, by Id."""
    return dict(
        db.execute(
            f"SELECT Id, {quote_ident(column)} FROM {quote_ident(table)} "
            "WHERE Id IN (SELECT value FROM json_each(?))",
            (_json(pd.unique(ids.dropna())),),
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
            _column(db, "Opportunity", opportunities, "AccountId")
        )
    by_contact = ~is_account & ~is_opportunity & (who_prefix == CONTACT_PREFIX)
    if by_contact.any():
        contacts = who[by_contact]
        out[by_contact] = contacts.map(_column(db, "Contact", contacts, "AccountId"))
    return out.astype(object).where(out.notna(), None)


# ---------------------------------------------------------------------------- activities


def _stored(name: str, ids: pd.Series, current: pd.DataFrame) -> pd.Series:
    old = ids.map(current[name]) if len(current) else pd.Series(None, index=ids.index)
    return old.astype(object).where(old.notna(), None)


def _effective(
    name: str, ids: pd.Series, typed: pd.DataFrame, given: pd.DataFrame, current: pd.DataFrame
) -> pd.Series:
    """The value after the update: the new one where given, else the stored one."""
    old = _stored(name, ids, current)
    if name not in typed:
        return old
    return typed[name].where(given[name], old).astype(object)


def _check_lead_rules(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    ids: pd.Series | None,
    who: pd.Series,
    what: pd.Series,
    errors: RowErrors,
) -> None:
    """A Lead WhoId: no WhatId, and (on update) no other people already related."""
    is_lead = prefix_of(who) == LEAD_PREFIX
    errors.add(is_lead & what.notna(), "FIELD_INTEGRITY_EXCEPTION", LEAD_WITH_WHAT, "WhatId")
    if ids is None or not ctx.shape.shared_activities:
        return
    relation, parent, _ = ACTIVITIES[obj]
    suspects = ids[is_lead & errors.ok]
    if suspects.empty:
        return
    others = pd.DataFrame(
        db.execute(
            f"SELECT {parent}, COUNT(*) FROM {quote_ident(relation)} r "
            f"WHERE IsDeleted = 0 AND IsWhat = 0 AND {parent} IN (SELECT value FROM json_each(?)) "
            f"AND RelationId NOT IN (SELECT WhoId FROM {quote_ident(obj)} a "
            f"WHERE a.Id = r.{parent} AND a.WhoId IS NOT NULL) GROUP BY {parent}",
            (_json(suspects),),
        ).fetchall(),
        columns=["parent", "n"],
    ).set_index("parent")["n"]
    crowded = ids.map(others).fillna(0) > 0
    errors.add(is_lead & crowded, "FIELD_INTEGRITY_EXCEPTION", LEAD_WITH_OTHERS, "WhoId")


def _refresh(ctx: WriteContext, db: sqlite3.Connection, obj: str, ids: pd.Series) -> None:
    """Recompute AccountId and, when shared, the counts of activities whose relations moved."""
    ids = _unique(ids)
    if ids.empty:
        return
    table = quote_ident(obj)
    payload = (_json(ids),)
    current = pd.DataFrame(
        db.execute(
            f"SELECT Id, WhoId, WhatId FROM {table} WHERE Id IN (SELECT value FROM json_each(?))",
            payload,
        ).fetchall(),
        columns=["Id", "WhoId", "WhatId"],
    )
    current["AccountId"] = account_of(db, current["WhoId"], current["WhatId"])
    db.executemany(
        f"UPDATE {table} SET AccountId = ? WHERE Id = ?", sql_rows(current[["AccountId", "Id"]])
    )
    if ctx.shape.shared_activities:
        relation, parent, _ = ACTIVITIES[obj]
        count = (
            f"(SELECT COUNT(*) FROM {quote_ident(relation)} r WHERE r.{parent} = {table}.Id "
            "AND r.IsDeleted = 0 AND r.IsWhat = {})"
        )
        db.execute(
            f"UPDATE {table} SET WhoCount = {count.format(0)}, WhatCount = {count.format(1)} "
            "WHERE Id IN (SELECT value FROM json_each(?))",
            payload,
        )


def _add_relations(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, pairs: pd.DataFrame
) -> None:
    """Insert relation rows for (parent, RelationId, IsWhat) pairs of activity ``obj``."""
    if pairs.empty:
        return
    relation, parent, _ = ACTIVITIES[obj]
    rows = pairs.rename(columns={"parent": parent}).reset_index(drop=True)
    rows["Id"] = ctx.store.next_ids(db, ALL_OBJECTS[relation].key_prefix, len(rows))
    rows["IsDeleted"] = 0
    rows["CreatedDate"] = rows["LastModifiedDate"] = rows["SystemModstamp"] = ctx.now
    rows["CreatedById"] = rows["LastModifiedById"] = ctx.user_id
    is_who = prefix_of(rows["RelationId"]).isin(WHO_PREFIXES)
    rows["AccountId"] = account_of(
        db, rows["RelationId"].where(is_who), rows["RelationId"].where(~is_who)
    )
    columns = list(rows.columns)
    db.executemany(
        f"INSERT INTO {quote_ident(relation)} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})",
        sql_rows(rows),
    )


def _remove_relations(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, pairs: pd.DataFrame
) -> None:
    """Soft-delete the live relation rows of the given (parent, RelationId) pairs."""
    if pairs.empty:
        return
    relation, parent, _ = ACTIVITIES[obj]
    db.execute(
        f"UPDATE {quote_ident(relation)} SET IsDeleted = 1, SystemModstamp = ?, "
        f"LastModifiedDate = ? WHERE IsDeleted = 0 AND ({parent}, RelationId) IN "
        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        (ctx.now, ctx.now, json.dumps(pairs[["parent", "RelationId"]].values.tolist())),
    )


def _live_pairs(db: sqlite3.Connection, obj: str, parents: pd.Series) -> pd.DataFrame:
    relation, parent, _ = ACTIVITIES[obj]
    return pd.DataFrame(
        db.execute(
            f"SELECT Id, {parent}, RelationId, IsWhat FROM {quote_ident(relation)} "
            f"WHERE IsDeleted = 0 AND {parent} IN (SELECT value FROM json_each(?))",
            (_json(pd.unique(parents.dropna())),),
        ).fetchall(),
        columns=["Id", "parent", "RelationId", "IsWhat"],
    )


def _promote(db: sqlite3.Connection, obj: str, parents: pd.Series) -> None:
    """Give a primary to activities whose WhoId lost its relation, and drop a lost WhatId."""
    relation, parent, _ = ACTIVITIES[obj]
    table, rel = quote_ident(obj), quote_ident(relation)
    live = f"r.{parent} = {table}.Id AND r.IsDeleted = 0"
    db.execute(
        f"UPDATE {table} SET "
        f"WhoId = CASE WHEN EXISTS (SELECT 1 FROM {rel} r WHERE {live} AND r.RelationId = WhoId) "
        f"THEN WhoId ELSE (SELECT r.RelationId FROM {rel} r WHERE {live} AND r.IsWhat = 0 "
        "ORDER BY r.rowid LIMIT 1) END, "
        f"WhatId = CASE WHEN EXISTS (SELECT 1 FROM {rel} r WHERE {live} AND r.RelationId = WhatId) "
        "THEN WhatId END "
        "WHERE Id IN (SELECT value FROM json_each(?))",
        (_json(pd.unique(parents.dropna())),),
    )


def _stamp(ctx: WriteContext, db: sqlite3.Connection, obj: str, ids: pd.Series) -> None:
    db.execute(
        f"UPDATE {quote_ident(obj)} SET SystemModstamp = ?, LastModifiedDate = ? "
        "WHERE Id IN (SELECT value FROM json_each(?))",
        (ctx.now, ctx.now, _json(pd.unique(ids.dropna()))),
    )


# ---------------------------------------------------------------------------- relations


def _check_relation_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, typed: pd.DataFrame, errors: RowErrors
) -> None:
    activity, parent = RELATION_OBJECTS[obj]
    none = pd.Series(None, index=typed.index, dtype=object)
    rel, task = typed.get("RelationId", none), typed.get(parent, none)
    is_who = prefix_of(rel).isin(WHO_PREFIXES)
    is_what_flag = typed["IsWhat"].fillna(0).astype(int) == 1
    errors.add(
        rel.notna() & (is_who == is_what_flag),
        "FIELD_INTEGRITY_EXCEPTION",
        IS_WHAT_MISMATCH,
        "IsWhat",
    )
    typed["AccountId"] = account_of(db, rel.where(is_who), rel.where(~is_who))
    if not errors.ok.any():
        return
    parents = task[errors.ok]
    tasks = pd.DataFrame(
        db.execute(
            f"SELECT Id, WhoId, WhatId FROM {quote_ident(activity)} "
            "WHERE Id IN (SELECT value FROM json_each(?))",
            (_json(pd.unique(parents)),),
        ).fetchall(),
        columns=["Id", "WhoId", "WhatId"],
    ).set_index("Id")
    existing = _live_pairs(db, activity, parents)
    key = task.astype(str) + "|" + rel.astype(str)
    existing_ids = pd.Series(
        existing["Id"].to_numpy(), index=existing["parent"] + "|" + existing["RelationId"]
    )
    found = key.map(existing_ids).astype(object)
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
    task_who = task.map(tasks["WhoId"]).astype(object)
    task_what = task.map(tasks["WhatId"]).astype(object)
    task_is_lead = prefix_of(task_who) == LEAD_PREFIX
    row_is_lead = prefix_of(rel) == LEAD_PREFIX
    who_side = existing["IsWhat"] == 0
    existing_who = task.map(existing[who_side].groupby("parent").size()).fillna(0)
    existing_what = task.map(existing[~who_side].groupby("parent").size()).fillna(0)

    # The What side: one record, never on a Lead's task.
    what_rows = ~is_who
    errors.add(what_rows & task_is_lead, "FIELD_INTEGRITY_EXCEPTION", LEAD_WITH_WHAT, "RelationId")
    errors.add(
        what_rows & (task_what.notna() | (existing_what > 0)),
        "FIELD_INTEGRITY_EXCEPTION",
        ONE_WHAT,
        "RelationId",
    )
    live_what = (what_rows & errors.ok).astype(int)
    errors.add(
        (live_what.groupby(task).cumsum() - live_what) > 0,
        "FIELD_INTEGRITY_EXCEPTION",
        ONE_WHAT,
        "RelationId",
    )

    # The Who side: a Lead alone, or up to 50 Contacts. Within the batch, rows count in order.
    errors.add(is_who & task_is_lead, "FIELD_INTEGRITY_EXCEPTION", LEAD_WITH_OTHERS, "RelationId")
    errors.add(
        is_who & row_is_lead & task_what.notna(),
        "FIELD_INTEGRITY_EXCEPTION",
        LEAD_WITH_WHAT,
        "RelationId",
    )
    live_who = (is_who & errors.ok).astype(int)
    before = live_who.groupby(task).cumsum() - live_who
    live_leads = (is_who & errors.ok & row_is_lead).astype(int)
    leads_before = live_leads.groupby(task).cumsum() - live_leads
    errors.add(
        is_who & row_is_lead & ((existing_who + before) > 0),
        "FIELD_INTEGRITY_EXCEPTION",
        LEAD_WITH_OTHERS,
        "RelationId",
    )
    errors.add(
        is_who & ~row_is_lead & (leads_before > 0),
        "FIELD_INTEGRITY_EXCEPTION",
        LEAD_WITH_OTHERS,
        "RelationId",
    )
    live_who = (is_who & errors.ok).astype(int)
    before = live_who.groupby(task).cumsum() - live_who
    errors.add(
        is_who & ((existing_who + before) >= MAX_CONTACTS_PER_ACTIVITY),
        "FIELD_INTEGRITY_EXCEPTION",
        TOO_MANY,
        "RelationId",
    )


def _after_relation_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, rows: pd.DataFrame
) -> None:
    """A first person becomes the primary; a What relation becomes the WhatId."""
    activity, parent = RELATION_OBJECTS[obj]
    table, rel = quote_ident(activity), quote_ident(obj)
    live = f"r.{parent} = {table}.Id AND r.IsDeleted = 0"
    parents = _unique(rows[parent])
    db.execute(
        f"UPDATE {table} SET "
        f"WhoId = COALESCE(WhoId, (SELECT r.RelationId FROM {rel} r WHERE {live} "
        "AND r.IsWhat = 0 ORDER BY r.rowid LIMIT 1)), "
        f"WhatId = COALESCE(WhatId, (SELECT r.RelationId FROM {rel} r WHERE {live} "
        "AND r.IsWhat = 1 ORDER BY r.rowid LIMIT 1)) "
        "WHERE Id IN (SELECT value FROM json_each(?))",
        (_json(parents),),
    )
    _stamp(ctx, db, activity, parents)
    _refresh(ctx, db, activity, parents)


# --------------------------------------------------------------------- hooks used by dml.py


def before_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, typed: pd.DataFrame, errors: RowErrors
) -> None:
    """Check the rules and fill the derived columns, which are then inserted with the row."""
    if obj in ACTIVITIES:
        none = pd.Series(None, index=typed.index, dtype=object)
        who, what = typed.get("WhoId", none), typed.get("WhatId", none)
        _check_lead_rules(ctx, db, obj, None, who, what, errors)
        typed["AccountId"] = account_of(db, who.where(errors.ok), what.where(errors.ok))
        if ctx.shape.shared_activities:
            typed["WhoCount"] = who.notna().astype(int)
            typed["WhatCount"] = what.notna().astype(int)
    elif obj in RELATION_OBJECTS:
        _check_relation_insert(ctx, db, obj, typed, errors)


def after_insert(ctx: WriteContext, db: sqlite3.Connection, obj: str, rows: pd.DataFrame) -> None:
    if obj in ACTIVITIES and ctx.shape.shared_activities:
        pairs = [
            pd.DataFrame(
                {"parent": rows["Id"], "RelationId": rows[column], "IsWhat": is_what}
            ).dropna(subset=["RelationId"])
            for column, is_what in (("WhoId", 0), ("WhatId", 1))
            if column in rows
        ]
        if pairs:
            _add_relations(ctx, db, obj, pd.concat(pairs, ignore_index=True))
    elif obj in RELATION_OBJECTS:
        _after_relation_insert(ctx, db, obj, rows)


def before_update(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    ids: pd.Series,
    typed: pd.DataFrame,
    given: pd.DataFrame,
    current: pd.DataFrame,
    errors: RowErrors,
) -> None:
    if obj not in ACTIVITIES:
        return
    who = _effective("WhoId", ids, typed, given, current)
    what = _effective("WhatId", ids, typed, given, current)
    _check_lead_rules(ctx, db, obj, ids, who, what, errors)


def after_update(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    ids: pd.Series,
    typed: pd.DataFrame,
    given: pd.DataFrame,
    current: pd.DataFrame,
) -> None:
    """Replace the relations of a changed WhoId/WhatId; rederive only what moved."""
    if obj not in ACTIVITIES:
        return
    removed, added, moved = [], [], []
    for column, is_what in (("WhoId", 0), ("WhatId", 1)):
        if column not in typed:
            continue
        old = _stored(column, ids, current)
        new = typed[column].where(given[column], old).astype(object)
        changed = old.fillna("") != new.fillna("")
        moved.append(ids[changed])
        removed.append(pd.DataFrame({"parent": ids, "RelationId": old})[changed & old.notna()])
        added.append(
            pd.DataFrame({"parent": ids, "RelationId": new, "IsWhat": is_what})[
                changed & new.notna()
            ]
        )
    touched = pd.concat(moved) if moved else pd.Series(dtype=object)
    if touched.empty:
        return
    if ctx.shape.shared_activities:
        _remove_relations(ctx, db, obj, pd.concat(removed, ignore_index=True))
        wanted = pd.concat(added, ignore_index=True)
        if not wanted.empty:
            live = _live_pairs(db, obj, wanted["parent"])
            present = (wanted["parent"] + "|" + wanted["RelationId"]).isin(
                live["parent"] + "|" + live["RelationId"]
            )
            _add_relations(ctx, db, obj, wanted[~present])
        _promote(db, obj, touched)
    _refresh(ctx, db, obj, touched)


def before_delete(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, ids: pd.Series
) -> pd.Series | None:
    """The parents of relations about to go, so that ``after_delete`` can repair them."""
    if obj not in RELATION_OBJECTS:
        return None
    _, parent = RELATION_OBJECTS[obj]
    return pd.Series(list(_column(db, obj, ids, parent).values()), dtype=object)


def after_delete(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    ids: pd.Series,
    parents: pd.Series | None,
    *,
    hard: bool,
) -> None:
    if obj in ACTIVITIES:
        relation, parent, _ = ACTIVITIES[obj]
        where = f"{parent} IN (SELECT value FROM json_each(?))"
        if hard:
            db.execute(f"DELETE FROM {quote_ident(relation)} WHERE {where}", (_json(ids),))
        else:
            db.execute(
                f"UPDATE {quote_ident(relation)} SET IsDeleted = 1, SystemModstamp = ? "
                f"WHERE IsDeleted = 0 AND {where}",
                (ctx.now, _json(ids)),
            )
    elif obj in RELATION_OBJECTS and parents is not None:
        activity, _ = RELATION_OBJECTS[obj]
        parents = _unique(parents)
        _promote(db, activity, parents)
        _stamp(ctx, db, activity, parents)
        _refresh(ctx, db, activity, parents)


def resync(ctx: WriteContext, db: sqlite3.Connection) -> None:
    """Shared Activities turned (back) on: create missing primary and What relations, recount."""
    for obj, (relation, parent, _) in ACTIVITIES.items():
        table, rel = quote_ident(obj), quote_ident(relation)
        missing = pd.DataFrame(
            db.execute(
                " UNION ALL ".join(
                    f"SELECT a.Id, a.{column}, {is_what} FROM {table} a "
                    f"WHERE a.IsDeleted = 0 AND a.{column} IS NOT NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {rel} r WHERE r.{parent} = a.Id "
                    f"AND r.RelationId = a.{column} AND r.IsDeleted = 0)"
                    for column, is_what in (("WhoId", 0), ("WhatId", 1))
                )
            ).fetchall(),
            columns=["parent", "RelationId", "IsWhat"],
        )
        _add_relations(ctx, db, obj, missing)
        count = (
            f"(SELECT COUNT(*) FROM {rel} r WHERE r.{parent} = {table}.Id "
            "AND r.IsDeleted = 0 AND r.IsWhat = {})"
        )
        db.execute(
            f"UPDATE {table} SET WhoCount = {count.format(0)}, WhatCount = {count.format(1)}"
        )
