"""The Activity key is one field of Activity: a value a Task holds, no Event may take.

Task and Event share Activity's custom fields, so the product's Unique external-ID field
is one field on both, and its unique index spans both ("Activity custom fields are shared
by tasks and events": https://help.salesforce.com/s/articleView?id=sf.customize_activities.htm).
An upsert on Event matches Events only (as one on Task matches Tasks), so an Event row
whose key a Task holds is an insert that the index refuses: ``DUPLICATE_VALUE`` naming
the Task, and the other way round. Salesforce documents no example of this cross-object
clash; the refusal is what a unique index over both does, and the harsher choice.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from salesforce_emulator.objects import ACTIVITIES, TASK_EXTERNAL_ID
from salesforce_emulator.records import RowErrors
from salesforce_emulator.store import quote_ident


def check(
    db: sqlite3.Connection,
    obj: str,
    typed: pd.DataFrame,
    errors: RowErrors,
) -> None:
    """DUPLICATE_VALUE on rows of ``obj`` whose key an activity of the other kind holds."""
    if TASK_EXTERNAL_ID not in typed:
        return
    keys = typed[TASK_EXTERNAL_ID].where(errors.ok).dropna()
    if keys.empty:
        return
    column = quote_ident(TASK_EXTERNAL_ID)
    for other in ACTIVITIES:
        if other == obj:
            continue
        held = dict(
            (value.lower(), record)
            for record, value in db.execute(
                f"SELECT Id, {column} FROM {quote_ident(other)} WHERE IsDeleted = 0 "
                f"AND {column} IN (SELECT value FROM json_each(?))",
                (json.dumps(pd.unique(keys).tolist()),),
            ).fetchall()
        )
        holder = keys.str.lower().map(held)
        errors.add(
            holder.notna(),
            "DUPLICATE_VALUE",
            f"duplicate value found: {TASK_EXTERNAL_ID} duplicates value on record with id: "
            + holder.astype(str),
            "",
        )
