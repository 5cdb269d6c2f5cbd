"""Shared Activities: how Tasks (and Events) and their relation rows keep each other right.

Salesforce's rules, as documented for TaskRelation and Task (see the reference notes):

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

from salesforce_emulator.objects import (
    ACTIVITIES,
    ALL_OBJECTS,
    MAX_CONTACTS_PER_ACTIVITY,
    RELATION_OBJECTS,
)
from salesforce_emulator.records import RowErrors
from salesforce_emulator.store import quote_ident

if TYPE_CHECKING:
    from salesforce_emulator.dml import WriteContext

LEAD_PREFIX = "00Q"
CONTACT_PREFIX = "003"
WHO_PREFIXES = (CONTACT_PREFIX, LEAD_PREFIX)

LEAD_WITH_WHAT = "A task or event whose Name is a Lead cannot be related to another record"
LEAD_WITH_OTHERS = "A task or event related to a Lead cannot be related to other contacts or leads"
TOO_MANY = f"A task or event can be related to at most {MAX_CONTACTS_PER_ACTIVITY} contacts"
ONE_WHAT = "A task or event can be related to only one Related To record"
IS_WHAT_MISMATCH = "IsWhat must be true for a Related To record and false for a Contact or Lead"


def _prefix(ids: pd.Series) -> pd.Series:
    return ids.astype(object).where(ids.notna(), "").astype(str).str.slice(0, 3)


def _json(values: Any) -> str:
    return json.dumps(pd.Series(values, dtype=object).dropna().tolist())


def tracked_columns(obj: str) -> list[str]:
    """Current values ``before_update`` needs."""
    return ["WhoId", "WhatId"] if obj in ACTIVITIES else []


# ---------------------------------------------------------------------------- activities


def _effective(
    name: str, ids: pd.Series, typed: pd.DataFrame, given: pd.DataFrame, current: pd.DataFrame
) -> pd.Series:
    """The value after the update: the new one where given, else the stored one."""
    old = ids.map(current[name]) if len(current) else pd.Series(None, index=ids.index)
    if name not in typed:
        return old.astype(object)
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
    is_lead = _prefix(who) == LEAD_PREFIX
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
    """Recompute the derived fields of activities: AccountId and, when shared, the counts."""
    if ids.empty:
        return
    table = quote_ident(obj)
    payload = (_json(ids),)
    db.execute(
        f"UPDATE {table} SET AccountId = CASE "
        "WHEN substr(WhatId, 1, 3) = '001' THEN WhatId "
        f"WHEN substr(WhatId, 1, 3) = '006' THEN "
        f"(SELECT o.AccountId FROM Opportunity o WHERE o.Id = {table}.WhatId) "
        f"WHEN substr(WhoId, 1, 3) = '003' THEN "
        f"(SELECT c.AccountId FROM Contact c WHERE c.Id = {table}.WhoId) END "
        "WHERE Id IN (SELECT value FROM json_each(?))",
        payload,
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


def _add_relations(ctx: WriteContext, db: sqlite3.Connection, obj: str, pairs: pd.DataFrame):
    """Insert relation rows for (parent, RelationId, IsWhat) pairs of activity ``obj``."""
    if pairs.empty:
        return
    relation, parent, _ = ACTIVITIES[obj]
    rows = pairs.copy()
    rows["Id"] = ctx.store.next_ids(db, ALL_OBJECTS[relation].key_prefix, len(rows))
    rows["IsDeleted"] = 0
    rows["CreatedDate"] = rows["LastModifiedDate"] = rows["SystemModstamp"] = ctx.now
    rows["CreatedById"] = rows["LastModifiedById"] = ctx.user_id
    rows = rows[
        [
            "Id",
            "parent",
            "RelationId",
            "IsWhat",
            "IsDeleted",
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "CreatedById",
            "LastModifiedById",
        ]
    ]
    db.executemany(
        f"INSERT INTO {quote_ident(relation)} (Id, {parent}, RelationId, IsWhat, IsDeleted, "
        "CreatedDate, LastModifiedDate, SystemModstamp, CreatedById, LastModifiedById) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows.astype(object).itertuples(index=False, name=None),
    )
    _relation_accounts(db, relation, rows["Id"])


def _relation_accounts(db: sqlite3.Connection, relation: str, ids: pd.Series) -> None:
    table = quote_ident(relation)
    db.execute(
        f"UPDATE {table} SET AccountId = CASE substr(RelationId, 1, 3) "
        f"WHEN '003' THEN (SELECT c.AccountId FROM Contact c WHERE c.Id = {table}.RelationId) "
        "WHEN '001' THEN RelationId "
        f"WHEN '006' THEN (SELECT o.AccountId FROM Opportunity o WHERE o.Id = {table}.RelationId) "
        "END WHERE Id IN (SELECT value FROM json_each(?))",
        (_json(ids),),
    )


def _remove_relations(ctx: WriteContext, db: sqlite3.Connection, obj: str, pairs: pd.DataFrame):
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
    rel = typed["RelationId"] if "RelationId" in typed else pd.Series(None, index=typed.index)
    task = typed[parent] if parent in typed else pd.Series(None, index=typed.index)
    is_who = _prefix(rel).isin(WHO_PREFIXES)
    is_what_flag = typed["IsWhat"].fillna(0).astype(int) == 1
    errors.add(
        rel.notna() & (is_who == is_what_flag),
        "FIELD_INTEGRITY_EXCEPTION",
        IS_WHAT_MISMATCH,
        "IsWhat",
    )
    ok = errors.ok
    if not ok.any():
        return
    parents = task[ok]
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
        existing["Id"].values, index=existing["parent"] + "|" + existing["RelationId"]
    )
    found = key.map(existing_ids)
    errors.add(
        found.notna(),
        "DUPLICATE_VALUE",
        "duplicate value found: RelationId duplicates value on record with id: " + found,
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
    task_is_lead = _prefix(task_who) == LEAD_PREFIX
    row_is_lead = _prefix(rel) == LEAD_PREFIX
    existing_who = task.map(existing[existing["IsWhat"] == 0].groupby("parent").size()).fillna(0)
    existing_what = task.map(existing[existing["IsWhat"] == 1].groupby("parent").size()).fillna(0)

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
    live_who = is_who & errors.ok
    order = live_who.astype(int).groupby(task).cumsum() - live_who.astype(int)
    leads_before = (live_who & row_is_lead).astype(int).groupby(task).cumsum() - (
        live_who & row_is_lead
    ).astype(int)
    errors.add(
        live_who & row_is_lead & ((existing_who + order) > 0),
        "FIELD_INTEGRITY_EXCEPTION",
        LEAD_WITH_OTHERS,
        "RelationId",
    )
    errors.add(
        live_who & ~row_is_lead & (leads_before > 0),
        "FIELD_INTEGRITY_EXCEPTION",
        LEAD_WITH_OTHERS,
        "RelationId",
    )
    live_who = is_who & errors.ok
    order = live_who.astype(int).groupby(task).cumsum() - live_who.astype(int)
    errors.add(
        live_who & ((existing_who + order) >= MAX_CONTACTS_PER_ACTIVITY),
        "FIELD_INTEGRITY_EXCEPTION",
        TOO_MANY,
        "RelationId",
    )


def _after_relation_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, rows: pd.DataFrame
) -> None:
    activity, parent = RELATION_OBJECTS[obj]
    _relation_accounts(db, obj, rows["Id"])
    table, rel = quote_ident(activity), quote_ident(obj)
    live = f"r.{parent} = {table}.Id AND r.IsDeleted = 0"
    db.execute(
        f"UPDATE {table} SET "
        f"WhoId = COALESCE(WhoId, (SELECT r.RelationId FROM {rel} r WHERE {live} "
        "AND r.IsWhat = 0 ORDER BY r.rowid LIMIT 1)), "
        f"WhatId = COALESCE(WhatId, (SELECT r.RelationId FROM {rel} r WHERE {live} "
        "AND r.IsWhat = 1 ORDER BY r.rowid LIMIT 1)) "
        "WHERE Id IN (SELECT value FROM json_each(?))",
        (_json(pd.unique(rows[parent])),),
    )
    parents = pd.Series(pd.unique(rows[parent]))
    _stamp(ctx, db, activity, parents)
    _refresh(ctx, db, activity, parents)


# --------------------------------------------------------------------- hooks used by dml.py


def before_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, typed: pd.DataFrame, errors: RowErrors
) -> None:
    if obj in ACTIVITIES:
        none = pd.Series(None, index=typed.index, dtype=object)
        who = typed.get("WhoId", none)
        what = typed.get("WhatId", none)
        _check_lead_rules(ctx, db, obj, None, who, what, errors)
    elif obj in RELATION_OBJECTS:
        _check_relation_insert(ctx, db, obj, typed, errors)


def after_insert(ctx: WriteContext, db: sqlite3.Connection, obj: str, rows: pd.DataFrame) -> None:
    if obj in ACTIVITIES:
        if ctx.shape.shared_activities:
            pairs = []
            for column, is_what in (("WhoId", 0), ("WhatId", 1)):
                if column in rows:
                    linked = rows[rows[column].notna()]
                    pairs.append(
                        pd.DataFrame(
                            {
                                "parent": linked["Id"],
                                "RelationId": linked[column],
                                "IsWhat": is_what,
                            }
                        )
                    )
            if pairs:
                _add_relations(ctx, db, obj, pd.concat(pairs, ignore_index=True))
        _refresh(ctx, db, obj, rows["Id"])
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
    if obj not in ACTIVITIES:
        return
    if ctx.shape.shared_activities:
        removed, added = [], []
        for column, is_what in (("WhoId", 0), ("WhatId", 1)):
            if column not in typed:
                continue
            old = ids.map(current[column]).astype(object)
            new = typed[column].where(given[column], old).astype(object)
            changed = old.fillna("") != new.fillna("")
            removed.append(pd.DataFrame({"parent": ids, "RelationId": old})[changed & old.notna()])
            added.append(
                pd.DataFrame({"parent": ids, "RelationId": new, "IsWhat": is_what})[
                    changed & new.notna()
                ]
            )
        gone = pd.concat(removed, ignore_index=True) if removed else pd.DataFrame()
        wanted = pd.concat(added, ignore_index=True) if added else pd.DataFrame()
        if not gone.empty or not wanted.empty:
            _remove_relations(ctx, db, obj, gone)
            if not wanted.empty:
                live = _live_pairs(db, obj, wanted["parent"])
                present = (wanted["parent"] + "|" + wanted["RelationId"]).isin(
                    live["parent"] + "|" + live["RelationId"]
                )
                _add_relations(ctx, db, obj, wanted[~present])
            touched = pd.concat(
                [gone.get("parent", pd.Series()), wanted.get("parent", pd.Series())]
            )
            _promote(db, obj, touched)
    _refresh(ctx, db, obj, ids)


def before_delete(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, ids: pd.Series
) -> pd.Series | None:
    """The parents of relations about to go, so that ``after_delete`` can repair them."""
    if obj not in RELATION_OBJECTS:
        return None
    activity, parent = RELATION_OBJECTS[obj]
    return pd.Series(
        [
            r[0]
            for r in db.execute(
                f"SELECT DISTINCT {parent} FROM {quote_ident(obj)} "
                "WHERE Id IN (SELECT value FROM json_each(?))",
                (_json(ids),),
            )
        ],
        dtype=object,
    )


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
