"""Writes: insert, update, upsert and delete of a batch of records, with Salesforce's checks.

REST (one record or a collection of 200) and Bulk (chunks of 200 rows) share this code,
so a rule holds the same way through every door. A batch is checked a column at a time;
rows that fail get an error and the rest are written with ``executemany``. Object-specific
behaviour (Shared Activities) lives in ``activity_relations.py`` and is called at fixed
points.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesforce_emulator import activity_relations as relations
from salesforce_emulator import retention, unique
from salesforce_emulator.context import WriteContext
from salesforce_emulator.ids import prefix_of, to_18
from salesforce_emulator.objects import ALL_OBJECTS, PREFIX_TO_OBJECT, Field
from salesforce_emulator.records import Incoming, RowErrors, coerce
from salesforce_emulator.store import quote_ident, sql_rows


@dataclass
class Outcome:
    """Per input row: the record Id (None when unknown) and whether it was created."""

    ids: pd.Series
    created: pd.Series

    @classmethod
    def empty(cls, index: pd.Index) -> Outcome:
        return cls(
            pd.Series(None, index=index, dtype=object), pd.Series(False, index=index, dtype=bool)
        )

    def merge(self, other: Outcome) -> None:
        self.ids.update(other.ids.dropna())
        self.created[other.created.index] = other.created


def lookup(
    db: sqlite3.Connection, table: str, ids: pd.Series | list[str], columns: list[str]
) -> pd.DataFrame:
    """Rows of ``table`` (deleted ones too) for the given Ids, indexed by Id."""
    wanted = pd.unique(pd.Series(ids, dtype=object).dropna())
    cols = ["Id", "IsDeleted", *[c for c in columns if c not in ("Id", "IsDeleted")]]
    if len(wanted) == 0:
        return pd.DataFrame(columns=cols).set_index("Id")
    sql = (
        f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM {quote_ident(table)} "
        "WHERE Id IN (SELECT value FROM json_each(?))"
    )
    rows = db.execute(sql, (json.dumps(wanted.tolist()),)).fetchall()
    return pd.DataFrame(rows, columns=cols).set_index("Id")


def _fields_given(inc: Incoming, fields: dict[str, Field]) -> list[Field]:
    return [fields[c] for c in inc.values.columns if c in fields]


def check_writable(inc: Incoming, fields: dict[str, Field], errors: RowErrors, *, insert: bool):
    """Fields the client may not set: Salesforce's INVALID_FIELD_FOR_INSERT_UPDATE."""
    for f in _fields_given(inc, fields):
        if f.name == "Id" and insert:
            errors.add(
                inc.given[f.name] & inc.values[f.name].notna(),
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                "cannot specify Id in an insert call",
                "Id",
            )
            continue
        allowed = f.createable if insert else f.updateable
        if not allowed and f.name != "Id":
            errors.add(
                inc.given[f.name],
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {f.name}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission "
                "set.",
                f.name,
            )


def coerce_all(
    inc: Incoming,
    fields: dict[str, Field],
    errors: RowErrors,
    *,
    insert: bool,
    api_version: float | None = None,
) -> pd.DataFrame:
    """Storage values of every given, stored, writable field (None where set to null)."""
    typed = {}
    for f in _fields_given(inc, fields):
        writable = f.createable if insert else f.updateable
        if f.name == "Id" or not f.stored or not writable:
            continue
        if inc.coerced is not None and f.name in inc.coerced:
            typed[f.name] = inc.coerced[f.name]
            continue
        values = inc.values[f.name].where(inc.given[f.name], None)
        typed[f.name] = coerce(f, values, errors, api_version)
    return pd.DataFrame(typed, index=inc.index, dtype=object)


def prepare(
    fields: dict[str, Field], inc: Incoming, errors: RowErrors, api_version: float | None
) -> Incoming:
    """``inc`` with every given field a write may set already checked and coerced.

    The checks need no database, so a Bulk job runs them once for a whole batch and
    then writes it chunk by chunk; the rows that fail get their error in ``errors``.
    """
    coerced = {}
    for f in _fields_given(inc, fields):
        if f.name == "Id" or not f.stored or not (f.createable or f.updateable):
            continue
        values = inc.values[f.name].where(inc.given[f.name], None)
        coerced[f.name] = coerce(f, values, errors, api_version)
    return Incoming(inc.values, inc.given, pd.DataFrame(coerced, index=inc.index, dtype=object))


def check_references(
    ctx: WriteContext,
    db: sqlite3.Connection,
    fields: dict[str, Field],
    typed: pd.DataFrame,
    errors: RowErrors,
) -> None:
    """Each reference must name a record of an allowed object that exists and is not deleted."""
    visible = ctx.shape.objects()
    for name in typed.columns:
        f = fields[name]
        if f.type != "reference":
            continue
        values = typed[name].where(errors.ok).dropna()
        # The running user is known to exist and be active (the usual OwnerId default).
        values = values[values != ctx.user_id]
        if values.empty:
            continue
        target = prefix_of(values).map(PREFIX_TO_OBJECT)
        allowed = target.isin([t for t in f.reference_to if t in visible])
        errors.add(
            ~allowed,
            "FIELD_INTEGRITY_EXCEPTION",
            f"{f.label}: id value of incorrect type: " + values,
            f.name,
        )
        for table in target[allowed].unique():
            ids = values[allowed & (target == table)]
            extra = ["IsActive"] if table == "User" else []
            found = lookup(db, table, ids, extra)
            state = ids.map(found["IsDeleted"]) if len(found) else pd.Series(np.nan, ids.index)
            errors.add(
                state.isna(),
                "INVALID_CROSS_REFERENCE_KEY",
                f"invalid cross reference id: {f.label}",
                f.name,
            )
            errors.add(state == 1, "ENTITY_IS_DELETED", "entity is deleted", f.name)
            if table == "User" and len(found):
                inactive = ids.map(found["IsActive"]) == 0
                errors.add(
                    inactive,
                    "INACTIVE_OWNER_OR_USER",
                    "operation performed with inactive user",
                    f.name,
                )


def _required_missing(
    typed: pd.DataFrame, fields: list[Field], errors: RowErrors, index: pd.Index
) -> None:
    """REQUIRED_FIELD_MISSING naming every missing field of the row, as Salesforce does."""
    missing = pd.Series("", index=index, dtype=object)
    for f in fields:
        absent = typed[f.name].isna() if f.name in typed else pd.Series(True, index=index)
        missing = missing + np.where(absent, f.name + ", ", "")
    has = missing != ""
    names = missing.str.rstrip(", ")
    errors.add(has, "REQUIRED_FIELD_MISSING", "Required fields are missing: [" + names + "]", "")
    errors.fields[has & (errors.code == "REQUIRED_FIELD_MISSING")] = names[has]


def insert(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, inc: Incoming, errors: RowErrors
) -> Outcome:
    fields = ctx.shape.fields(obj)
    check_writable(inc, fields, errors, insert=True)
    typed = coerce_all(inc, fields, errors, insert=True, api_version=ctx.api_version)
    for f in fields.values():
        if f.default is None or not f.createable:
            continue
        default = ctx.user_id if f.default == "$user" else f.default
        default = int(default) if isinstance(default, bool) else default
        current = typed[f.name] if f.name in typed else pd.Series(None, index=inc.index)
        typed[f.name] = current.where(current.notna(), default)
    required = [f for f in fields.values() if f.required and f.stored]
    _required_missing(typed, required, errors, inc.index)
    check_references(ctx, db, fields, typed, errors)
    relations.before_insert(ctx, db, obj, typed, errors)
    repeats = unique.check(db, obj, fields, typed, errors)
    outcome = Outcome.empty(inc.index)
    ok = errors.ok
    if not ok.any():
        return outcome
    rows = typed[ok].copy()
    rows["Id"] = ctx.store.next_ids(db, ALL_OBJECTS[obj].key_prefix, int(ok.sum()))
    rows["IsDeleted"] = 0
    rows["CreatedDate"] = rows["LastModifiedDate"] = rows["SystemModstamp"] = ctx.now
    rows["CreatedById"] = rows["LastModifiedById"] = ctx.user_id
    columns = list(rows.columns)
    db.executemany(
        f"INSERT INTO {quote_ident(obj)} ({', '.join(quote_ident(c) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})",
        sql_rows(rows),
    )
    outcome.ids[ok] = rows["Id"]
    outcome.created[ok] = True
    unique.name_batch_holders(repeats, outcome.ids, errors)
    relations.after_insert(ctx, db, obj, rows)
    retention.archive(db, obj, ctx.now, rows["Id"])
    return outcome


def _canonical_ids(ids: pd.Series, obj: str, errors: RowErrors) -> pd.Series:
    """Record Ids of ``obj`` in 18-character form; malformed or foreign Ids fail the row."""
    canonical = to_18(ids.astype(object).where(ids.notna(), ""))
    missing = ids.isna() | (ids.astype(str) == "")
    errors.add(missing, "MISSING_ARGUMENT", "Id not specified in an update call", "Id")
    errors.add(canonical.isna(), "MALFORMED_ID", "malformed id " + ids.astype(str), "Id")
    wrong = canonical.notna() & (prefix_of(canonical) != ALL_OBJECTS[obj].key_prefix)
    errors.add(wrong, "MALFORMED_ID", f"{obj} ID: id value of incorrect type: " + canonical, "Id")
    return canonical.where(errors.ok, None)


def _existing(
    db: sqlite3.Connection, obj: str, ids: pd.Series, errors: RowErrors, columns: list[str]
) -> pd.DataFrame:
    """Current rows for ``ids``; unknown or deleted Ids fail their row."""
    found = lookup(db, obj, ids, columns)
    state = ids.map(found["IsDeleted"]) if len(found) else pd.Series(np.nan, index=ids.index)
    errors.add(
        ids.notna() & state.isna(),
        "INVALID_CROSS_REFERENCE_KEY",
        "invalid cross reference id",
        "Id",
    )
    errors.add(state == 1, "ENTITY_IS_DELETED", "entity is deleted", "")
    return found


def update(
    ctx: WriteContext, db: sqlite3.Connection, obj: str, inc: Incoming, errors: RowErrors
) -> Outcome:
    fields = ctx.shape.fields(obj)
    ids = _canonical_ids(inc.values["Id"], obj, errors)
    duplicate = ids.notna() & ids.duplicated(keep="first")
    errors.add(duplicate, "INVALID_ID_FIELD", "Duplicate id in list: " + ids.astype(str), "Id")
    check_writable(inc, fields, errors, insert=False)
    typed = coerce_all(inc, fields, errors, insert=False, api_version=ctx.api_version)
    given = inc.given[typed.columns]
    for name in typed.columns:
        f = fields[name]
        if not f.nillable:
            if f.type == "boolean":
                typed[name] = typed[name].where(typed[name].notna() | ~given[name], 0)
            else:
                errors.add(
                    given[name] & typed[name].isna(),
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{name}]",
                    name,
                )
    check_references(ctx, db, fields, typed, errors)
    current = _existing(db, obj, ids.where(errors.ok), errors, relations.tracked_columns(obj))
    relations.before_update(ctx, db, obj, ids, typed, given, current, errors)
    unique.check(db, obj, fields, typed, errors, own_ids=ids)
    outcome = Outcome.empty(inc.index)
    ok = errors.ok
    if not ok.any():
        return outcome
    columns = list(typed.columns)
    assignments = [f"{quote_ident(c)} = iif(?, ?, {quote_ident(c)})" for c in columns]
    assignments += ["LastModifiedDate = ?", "SystemModstamp = ?", "LastModifiedById = ?"]
    params = pd.DataFrame(index=typed.index[ok])
    for c in columns:
        params[c + "\x00g"] = given[c][ok].astype(int)
        params[c] = typed[c][ok]
    params["_lm"] = params["_sm"] = ctx.now
    params["_by"] = ctx.user_id
    params["_id"] = ids[ok]
    db.executemany(
        f"UPDATE {quote_ident(obj)} SET {', '.join(assignments)} WHERE Id = ?",
        sql_rows(params),
    )
    outcome.ids[ok] = ids[ok]
    relations.after_update(ctx, db, obj, ids[ok], typed[ok], given[ok], current)
    retention.archive(db, obj, ctx.now, ids[ok])
    return outcome


def match_keys(db: sqlite3.Connection, obj: str, field: Field, keys: pd.Series) -> pd.DataFrame:
    """The records an upsert on ``field`` finds for ``keys`` (columns Id, value).

    Live records that are not archived: an archived Task is found only by ``queryAll``,
    and its key still holds the Unique index (see ``retention``).
    """
    return unique.holders(db, obj, field, keys, archived=False)


def upsert(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    inc: Incoming,
    external_field: str,
    errors: RowErrors,
    matches: pd.DataFrame | None = None,
) -> Outcome:
    """Insert rows whose key is new, update rows whose key matches one record.

    ``matches`` (from ``match_keys``) are the records found by an earlier read, as a Bulk
    chunk finds them before it writes; by default they are read now.
    """
    if external_field == "Id":
        has_id = inc.given["Id"] & inc.values["Id"].notna() if "Id" in inc.values else None
        outcome = Outcome.empty(inc.index)
        if has_id is not None and has_id.any():
            outcome.merge(_on_rows(update, ctx, db, obj, inc.subset(has_id), errors))
        new = ~has_id if has_id is not None else pd.Series(True, index=inc.index)
        if new.any():
            rest = inc.subset(new)
            if "Id" in rest.values:
                rest = Incoming(rest.values.drop(columns="Id"), rest.given.drop(columns="Id"))
            outcome.merge(_on_rows(insert, ctx, db, obj, rest, errors))
        return outcome
    f = ctx.shape.fields(obj)[external_field]
    keys = (
        inc.values[external_field].where(inc.given[external_field], None)
        if external_field in inc.values
        else pd.Series(None, index=inc.index, dtype=object)
    )
    errors.add(keys.isna(), "MISSING_ARGUMENT", f"{external_field} not specified", "")
    if inc.coerced is not None and external_field in inc.coerced:
        checked = inc.coerced[external_field].where(errors.ok, None)
    else:
        checked = coerce(f, keys, errors)
    compared = pd.Series(None, index=checked.index, dtype=object)
    present = checked.notna()
    compared[present] = unique.normal(f, checked[present])
    repeated = present & compared.duplicated(keep=False)
    errors.add(
        repeated, "DUPLICATE_VALUE", "Duplicate external id specified: " + checked.astype(str), ""
    )
    if matches is None:
        matches = match_keys(db, obj, f, checked.where(errors.ok))
    found = unique.normal(f, matches["value"]) if len(matches) else pd.Series(dtype=object)
    count = compared.map(found.value_counts()).fillna(0)
    listed = matches["Id"].groupby(found.values).agg(", ".join) if len(matches) else {}
    errors.add(
        count > 1,
        "DUPLICATE_EXTERNAL_ID",
        f"{f.label}: more than one record found for external id field: ["
        + compared.map(listed).astype(str)
        + "]",
        "",
    )
    single = pd.Series(matches["Id"].to_numpy(), index=found.to_numpy())
    single = single[~single.index.duplicated()]
    outcome = Outcome.empty(inc.index)
    existing = errors.ok & (count == 1)
    fresh = errors.ok & (count == 0)
    if existing.any():
        # The key matched, so rewriting it would only churn its index.
        sub = inc.subset(existing)
        sub = Incoming(
            sub.values.drop(columns=external_field), sub.given.drop(columns=external_field)
        )
        sub.set("Id", compared[existing].map(single))
        outcome.merge(_on_rows(update, ctx, db, obj, sub, errors))
    if fresh.any():
        outcome.merge(_on_rows(insert, ctx, db, obj, inc.subset(fresh), errors))
    return outcome


def _on_rows(operation, ctx, db, obj, sub: Incoming, errors: RowErrors) -> Outcome:
    """Run ``operation`` on some rows of a batch, with those rows' share of the errors."""
    part = errors.subset(sub.index)
    outcome = operation(ctx, db, obj, sub, part)
    errors.absorb(part)
    return outcome


def delete(
    ctx: WriteContext,
    db: sqlite3.Connection,
    obj: str,
    raw_ids: pd.Series,
    errors: RowErrors,
    *,
    hard: bool = False,
) -> Outcome:
    """Soft delete (IsDeleted = 1, seen by queryAll) or, for hardDelete, remove the rows."""
    ids = _canonical_ids(raw_ids, obj, errors)
    errors.add(ids.notna() & ids.duplicated(), "INVALID_ID_FIELD", "Duplicate id in list", "Id")
    _existing(db, obj, ids.where(errors.ok), errors, [])
    outcome = Outcome.empty(raw_ids.index)
    ok = errors.ok
    if not ok.any():
        return outcome
    gone = ids[ok]
    state = relations.before_delete(ctx, db, obj, gone)
    payload = (json.dumps(gone.tolist()),)
    if hard:
        db.execute(
            f"DELETE FROM {quote_ident(obj)} WHERE Id IN (SELECT value FROM json_each(?))", payload
        )
    else:
        db.execute(
            f"UPDATE {quote_ident(obj)} SET IsDeleted = 1, SystemModstamp = ?, "
            "LastModifiedDate = ?, LastModifiedById = ? "
            "WHERE Id IN (SELECT value FROM json_each(?))",
            (ctx.now, ctx.now, ctx.user_id, payload[0]),
        )
    relations.after_delete(ctx, db, obj, gone, state, hard=hard)
    outcome.ids[ok] = gone
    return outcome
