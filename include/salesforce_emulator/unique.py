"""Unique fields: one live record holds a value; a write that would give it to another fails.

Salesforce keeps a Unique field with a unique index, so the check is part of the write
itself, and the losing side of two writes racing for one value gets ``DUPLICATE_VALUE``
naming the record that holds it: "duplicate value found: <field> duplicates value on record
with id: <Id>" (the answer Salesforce gives to a Task upsert that lost such a race,
https://salesforce.stackexchange.com/questions/197382). Matching is case-sensitive unless the
field has "Treat "ABC" and "abc" as duplicate values" ticked: "Custom field matching is
case-insensitive only if the custom field has the Unique and Treat "ABC" and "abc" as
duplicate values (case insensitive) attributes selected"
(https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_upsert.htm).

A record in the Recycle Bin holds no value here (a new record may take it). An archived
activity still does, although ``query`` and upsert matching do not see it (see
``retention``): the harsher of the choices Salesforce leaves undocumented.

The product's key is a custom field of Activity, which Task and Event share ("Activity
custom fields are shared by tasks and events":
https://help.salesforce.com/s/articleView?id=sf.customize_activities.htm), so one unique
index spans both: a value a Task holds is refused to an Event, and the other way round,
although an upsert on Event matches Events only. Salesforce documents no example of this
clash; the refusal is what one index over both does, and the harsher choice.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from salesforce_emulator.objects import ACTIVITIES, TASK_EXTERNAL_ID, Field
from salesforce_emulator.records import RowErrors
from salesforce_emulator.retention import ARCHIVED_COLUMN, archivable
from salesforce_emulator.store import quote_ident

DUPLICATE_VALUE = "DUPLICATE_VALUE"


def duplicate_message(field: Field, ids: pd.Series | str) -> pd.Series | str:
    """Salesforce's DUPLICATE_VALUE message for values held by the records ``ids``."""
    return f"duplicate value found: {field.name} duplicates value on record with id: " + ids


def normal(field: Field, values: pd.Series) -> pd.Series:
    """Values as the field compares them: as written, or lower-cased if case-insensitive."""
    text = values.astype(str)
    return text if field.case_sensitive else text.str.lower()


def index_objects(obj: str, field: Field) -> tuple[str, ...]:
    """The objects one unique index of ``field`` spans: Task and Event for the Activity key."""
    if obj in ACTIVITIES and field.name == TASK_EXTERNAL_ID:
        return (obj, *(other for other in ACTIVITIES if other != obj))
    return (obj,)


def holders(
    db: sqlite3.Connection,
    obj: str,
    field: Field,
    values: pd.Series,
    *,
    archived: bool = True,
    across: bool = False,
) -> pd.DataFrame:
    """Live records of ``obj`` whose ``field`` holds one of ``values``: columns Id, value.

    ``archived=False`` leaves out archived activities, which only ``queryAll`` returns;
    ``across`` looks in every object the field's unique index spans (``index_objects``).
    """
    wanted = pd.unique(values.dropna().astype(str))
    if len(wanted) == 0:
        return pd.DataFrame(columns=["Id", "value"])
    column = quote_ident(field.name)
    collate = "BINARY" if field.case_sensitive else "NOCASE"
    rows = []
    for table in index_objects(obj, field) if across else (obj,):
        hide = (
            f" AND {quote_ident(ARCHIVED_COLUMN)} = 0" if not archived and archivable(table) else ""
        )
        rows += db.execute(
            f"SELECT Id, {column} FROM {quote_ident(table)} WHERE IsDeleted = 0{hide} "
            f"AND {column} COLLATE {collate} IN (SELECT value FROM json_each(?)) ORDER BY rowid",
            (json.dumps(wanted.tolist()),),
        ).fetchall()
    return pd.DataFrame(rows, columns=["Id", "value"])


def check(
    db: sqlite3.Connection,
    obj: str,
    fields: dict[str, Field],
    typed: pd.DataFrame,
    errors: RowErrors,
    own_ids: pd.Series | None = None,
) -> pd.Series:
    """DUPLICATE_VALUE on rows whose Unique value another live record or an earlier row holds.

    ``own_ids`` (updates) are the rows' own records, which may keep their value. Returns,
    for each row that repeats an earlier row of the batch, the index of that earlier row:
    an insert names that row's new record once it has an Id (``name_batch_holders``).
    """
    repeats = pd.Series(dtype=object)
    for name in typed.columns:
        # Derived columns of fields hidden from the API now (Shared Activities off) are
        # not ``fields``; none is Unique.
        f = fields.get(name)
        if f is None or not f.unique:
            continue
        values = typed[name].where(errors.ok).dropna()
        if values.empty:
            continue
        key = normal(f, values)
        found = holders(db, obj, f, values, across=True)
        held = dict(zip(normal(f, found["value"]), found["Id"], strict=True))
        holder = key.map(held)
        if own_ids is not None:
            holder = holder.where(holder != own_ids.reindex(holder.index))
        taken = holder.notna()
        errors.add(taken, DUPLICATE_VALUE, duplicate_message(f, holder.astype(str)), "")
        live = key[errors.ok.reindex(key.index)]
        first = pd.Series(live.index, index=live.index).groupby(live.values).transform("first")
        again = first[first != first.index]
        if again.empty:
            continue
        earlier = own_ids.reindex(again.values).to_numpy() if own_ids is not None else None
        message = (
            duplicate_message(f, pd.Series(earlier, index=again.index).astype(str))
            if earlier is not None
            else duplicate_message(f, "")
        )
        errors.add(pd.Series(True, index=again.index), DUPLICATE_VALUE, message, "")
        repeats = pd.concat([repeats, again.astype(object)])
    return repeats


def name_batch_holders(repeats: pd.Series, ids: pd.Series, errors: RowErrors) -> None:
    """Complete the messages of rows that repeated an earlier row, now that it has an Id."""
    if repeats.empty:
        return
    first = ids.reindex(repeats.values).to_numpy()
    named = errors.message[repeats.index] + pd.Series(first, index=repeats.index).astype(str)
    errors.message[repeats.index] = named
