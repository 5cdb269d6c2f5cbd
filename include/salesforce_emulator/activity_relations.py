"""Shared Activities: how Tasks and Events and their relation rows keep each other right.

These are Salesforce's own rules (not activity-sync's design rules R1–R14), as documented
for TaskRelation, EventRelation, Task and Event (see the reference notes); the rules a
relation row itself must meet are ``relation_rows``, an Event's times ``event_times``:

- ``WhoId`` is a Contact or Lead; a Lead ``WhoId`` allows no ``WhatId`` and no other people.
- While Shared Activities is on, inserting an activity with a ``WhoId`` creates its primary
  relation (``IsWhat`` false) and one for its ``WhatId`` (``IsWhat`` true); deleting an
  activity deletes its relations; ``WhoCount``/``WhatCount`` count them. On an Event these
  are ``IsParent`` rows; a person who is only invited does not count.
- ``AccountId`` follows the What record (an Account, or an Opportunity's Account), else the
  primary Contact's Account.

Choices where Salesforce's behaviour is not documented:

- Changing ``WhoId`` replaces the primary: the old primary's relation is deleted (an Event
  invitee's row stays, no longer relating) and the new person's is created (or kept, or
  an invitee's row made to relate). Setting ``WhoId`` to null promotes the oldest
  remaining person. Changing ``WhatId`` replaces the What relation.
- A relation that stops relating (deleted, or an EventRelation's ``IsParent`` cleared)
  promotes the oldest remaining person if it was the primary; the What relation's going
  clears ``WhatId``; a first relation on an activity without one becomes its WhoId/WhatId.
- Turning Shared Activities off keeps the relation rows (hiding TaskRelation); turning it
  back on creates the primary and What relations missing for activities written meanwhile.

Everything here works on whole batches with set-based SQL and pandas group operations.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

import pandas as pd

from salesforce_emulator import event_times, relation_rows
from salesforce_emulator.ids import LEAD_PREFIX, prefix_of
from salesforce_emulator.objects import ACTIVITIES, ALL_OBJECTS, PARENT_FLAG, RELATION_OBJECTS
from salesforce_emulator.records import RowErrors
from salesforce_emulator.relation_rows import (
    INTEGRITY,
    LEAD_WITH_OTHERS,
    LEAD_WITH_WHAT,
    WHO_PREFIXES,
    account_of,
    column_of,
    json_list,
    live_pairs,
    parent_only,
    unique,
)
from salesforce_emulator.store import quote_ident, sql_rows

if TYPE_CHECKING:
    from salesforce_emulator.context import WriteContext

# An activity that Shared Activities has not touched (Events have times too).
_EVENT = "Event"


def tracked_columns(obj: str) -> list[str]:
    """Current values ``before_update``/``after_update`` need."""
    if obj == _EVENT:
        return ["WhoId", "WhatId", *event_times.TIME_FIELDS]
    if obj in ACTIVITIES:
        return ["WhoId", "WhatId"]
    if obj in PARENT_FLAG:
        return [RELATION_OBJECTS[obj][1], "RelationId", "IsWhat", PARENT_FLAG[obj], "IsInvitee"]
    return []


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
    errors.add(is_lead & what.notna(), INTEGRITY, LEAD_WITH_WHAT, "WhatId")
    if ids is None or not ctx.shape.shared_activities:
        return
    relation, parent, _ = ACTIVITIES[obj]
    suspects = ids[is_lead & errors.ok]
    if suspects.empty:
        return
    others = pd.DataFrame(
        db.execute(
            f"SELECT {parent}, COUNT(*) FROM {quote_ident(relation)} r "
            f"WHERE IsDeleted = 0 AND IsWhat = 0{parent_only(relation)} "
            f"AND {parent} IN (SELECT value FROM json_each(?)) "
            f"AND RelationId NOT IN (SELECT WhoId FROM {quote_ident(obj)} a "
            f"WHERE a.Id = r.{parent} AND a.WhoId IS NOT NULL) GROUP BY {parent}",
            (json_list(suspects),),
        ).fetchall(),
        columns=["parent", "n"],
    ).set_index("parent")["n"]
    crowded = ids.map(others).fillna(0) > 0
    errors.add(is_lead & crowded, INTEGRITY, LEAD_WITH_OTHERS, "WhoId")


def _refresh(ctx: WriteContext, db: sqlite3.Connection, obj: str, ids: pd.Series) -> None:
    """Recompute AccountId and, when shared, the counts of activities whose relations moved."""
    ids = unique(ids)
    if ids.empty:
        return
    table = quote_ident(obj)
    payload = (json_list(ids),)
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
        db.execute(
            f"UPDATE {table} SET {_counts(obj)} WHERE Id IN (SELECT value FROM json_each(?))",
            payload,
        )


def _counts(obj: str) -> str:
    """SQL assigning WhoCount and WhatCount from the rows that relate."""
    relation, parent, _ = ACTIVITIES[obj]
    count = (
        f"(SELECT COUNT(*) FROM {quote_ident(relation)} r WHERE r.{parent} = {quote_ident(obj)}.Id "
        f"AND r.IsDeleted = 0{parent_only(relation)} AND r.IsWhat = {{}})"
    )
    return f"WhoCount = {count.format(0)}, WhatCount = {count.format(1)}"


def _add_relations(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, pairs: pd.DataFrame
) -> None:
    """Relate (parent, RelationId, IsWhat) pairs to activities ``obj`` that do not relate them.

    An Event's invitee row for the person is made to relate; otherwise a row is inserted.
    """
    if pairs.empty:
        return
    relation, parent, _ = ACTIVITIES[obj]
    flag = PARENT_FLAG.get(relation)
    rows = pairs.rename(columns={"parent": parent}).reset_index(drop=True)
    if flag:
        invited = live_pairs(db, obj, rows[parent], invitees=True)
        key = rows[parent] + "|" + rows["RelationId"]
        held = pd.Series(
            invited["Id"].to_numpy(), index=invited["parent"] + "|" + invited["RelationId"]
        )
        found = key.map(held)
        db.execute(
            f"UPDATE {quote_ident(relation)} SET {flag} = 1, SystemModstamp = ?, "
            "LastModifiedDate = ? WHERE Id IN (SELECT value FROM json_each(?))",
            (ctx.now, ctx.now, json_list(found)),
        )
        rows = rows[found.isna()].reset_index(drop=True)
        rows[flag], rows["IsInvitee"] = 1, 0
        if rows.empty:
            return
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
    """Stop relating the given (parent, RelationId) pairs: soft-delete their rows, except
    that an Event's invitee keeps its row, no longer relating."""
    if pairs.empty:
        return
    relation, parent, _ = ACTIVITIES[obj]
    flag = PARENT_FLAG.get(relation)
    keep = "IsInvitee = 1" if flag else "0"
    db.execute(
        f"UPDATE {quote_ident(relation)} SET "
        f"IsDeleted = CASE WHEN {keep} THEN 0 ELSE 1 END, "
        + (f"{flag} = 0, " if flag else "")
        + "SystemModstamp = ?, LastModifiedDate = ? "
        f"WHERE IsDeleted = 0{parent_only(relation, quote_ident(relation))} "
        f"AND ({parent}, RelationId) IN "
        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        (ctx.now, ctx.now, json.dumps(pairs[["parent", "RelationId"]].values.tolist())),
    )


def _rederive(ctx: WriteContext, db: sqlite3.Connection, obj: str, parents: pd.Series) -> None:
    """Make WhoId and WhatId of these activities follow the rows that relate, then recount.

    A WhoId (WhatId) whose row no longer relates gives way to the oldest relating person
    (record), if any; an activity without one takes the oldest.
    """
    parents = unique(parents)
    if parents.empty:
        return
    relation, parent, _ = ACTIVITIES[obj]
    table, rel = quote_ident(obj), quote_ident(relation)
    live = f"r.{parent} = {table}.Id AND r.IsDeleted = 0{parent_only(relation)}"

    def follow(column: str, is_what: int) -> str:
        return (
            f"{column} = CASE WHEN EXISTS (SELECT 1 FROM {rel} r WHERE {live} "
            f"AND r.RelationId = {column}) THEN {column} ELSE (SELECT r.RelationId FROM {rel} r "
            f"WHERE {live} AND r.IsWhat = {is_what} ORDER BY r.rowid LIMIT 1) END"
        )

    db.execute(
        f"UPDATE {table} SET {follow('WhoId', 0)}, {follow('WhatId', 1)}, "
        "SystemModstamp = ?, LastModifiedDate = ? WHERE Id IN (SELECT value FROM json_each(?))",
        (ctx.now, ctx.now, json_list(parents)),
    )
    _refresh(ctx, db, obj, parents)


# --------------------------------------------------------------------- hooks used by dml.py


def before_insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, typed: pd.DataFrame, errors: RowErrors
) -> None:
    """Check the rules and fill the derived columns, which are then inserted with the row."""
    if obj in ACTIVITIES:
        none = pd.Series(None, index=typed.index, dtype=object)
        who, what = typed.get("WhoId", none), typed.get("WhatId", none)
        _check_lead_rules(ctx, db, obj, None, who, what, errors)
        if obj == _EVENT:
            event_times.settle(typed, None, None, errors)
        typed["AccountId"] = account_of(db, who.where(errors.ok), what.where(errors.ok))
        if ctx.shape.shared_activities:
            typed["WhoCount"] = who.notna().astype(int)
            typed["WhatCount"] = what.notna().astype(int)
    elif obj in RELATION_OBJECTS:
        relation_rows.check_insert(ctx, db, obj, typed, errors)


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
    elif obj in RELATION_OBJECTS and ctx.shape.shared_activities:
        activity, parent = RELATION_OBJECTS[obj]
        _rederive(ctx, db, activity, rows[parent])


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
    if obj in RELATION_OBJECTS:
        relation_rows.check_update(ctx, db, obj, ids, typed, given, current, errors)
        return
    if obj not in ACTIVITIES:
        return
    who = _effective("WhoId", ids, typed, given, current)
    what = _effective("WhatId", ids, typed, given, current)
    _check_lead_rules(ctx, db, obj, ids, who, what, errors)
    if obj == _EVENT and typed.columns.isin(event_times.TIME_FIELDS).any():
        stored = current.reindex(columns=list(event_times.TIME_FIELDS)).reindex(ids.to_numpy())
        stored.index = ids.index
        event_times.settle(typed, given, stored, errors)


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
    if obj in PARENT_FLAG and obj in RELATION_OBJECTS:
        flag = PARENT_FLAG[obj]
        if flag in typed and not current.empty:
            old = ids.map(current[flag]).fillna(0)
            changed = given[flag] & (typed[flag].fillna(0) != old)
            activity, parent = RELATION_OBJECTS[obj]
            _rederive(ctx, db, activity, ids[changed].map(current[parent]))
        return
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
            live = live_pairs(db, obj, wanted["parent"])
            present = (wanted["parent"] + "|" + wanted["RelationId"]).isin(
                live["parent"] + "|" + live["RelationId"]
            )
            _add_relations(ctx, db, obj, wanted[~present])
        _rederive(ctx, db, obj, touched)
    else:
        _refresh(ctx, db, obj, touched)


def before_delete(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, ids: pd.Series
) -> pd.Series | None:
    """The parents of relations about to go, so that ``after_delete`` can repair them."""
    if obj not in RELATION_OBJECTS:
        return None
    _, parent = RELATION_OBJECTS[obj]
    return pd.Series(list(column_of(db, obj, ids, parent).values()), dtype=object)


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
            db.execute(f"DELETE FROM {quote_ident(relation)} WHERE {where}", (json_list(ids),))
        else:
            db.execute(
                f"UPDATE {quote_ident(relation)} SET IsDeleted = 1, SystemModstamp = ? "
                f"WHERE IsDeleted = 0 AND {where}",
                (ctx.now, json_list(ids)),
            )
    elif obj in RELATION_OBJECTS and parents is not None and ctx.shape.shared_activities:
        activity, _ = RELATION_OBJECTS[obj]
        _rederive(ctx, db, activity, parents)


def resync(ctx: WriteContext, db: sqlite3.Connection) -> None:
    """Shared Activities turned (back) on: relate missing primaries and What records, recount."""
    for obj, (relation, parent, _) in ACTIVITIES.items():
        table, rel = quote_ident(obj), quote_ident(relation)
        missing = pd.DataFrame(
            db.execute(
                " UNION ALL ".join(
                    f"SELECT a.Id, a.{column}, {is_what} FROM {table} a "
                    f"WHERE a.IsDeleted = 0 AND a.{column} IS NOT NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {rel} r WHERE r.{parent} = a.Id "
                    f"AND r.RelationId = a.{column} AND r.IsDeleted = 0{parent_only(relation)})"
                    for column, is_what in (("WhoId", 0), ("WhatId", 1))
                )
            ).fetchall(),
            columns=["parent", "RelationId", "IsWhat"],
        )
        _add_relations(ctx, db, obj, missing)
        db.execute(f"UPDATE {table} SET {_counts(obj)}")
