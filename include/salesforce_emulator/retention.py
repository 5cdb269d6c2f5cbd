"""Time in the org: its settable clock, activity archiving, and the 15-day Recycle Bin.

The clock is real UTC time shifted by whole days (admin setting ``today``), so that tests
can make a Task a year old or a deletion 16 days old without waiting; every stamp the org
writes and every SOQL date literal (TODAY, LAST_N_DAYS) use it.

Archiving, as "Archived Activities" documents it
(https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_guidelines_archive.htm):
"Tasks with an IsClosed value of true and an ActivityDate value greater than or equal to 365
days old", closed Tasks without ActivityDate by their create date, and "Events with an
ActivityDateTime or ActivityDate value greater than or equal to 365 days old" are archived;
"You cannot use query() as it automatically filters out all records where isArchived is set
to true"; "You can update or delete archived records, though you cannot update the
isArchived field". Harsher than documented, where Salesforce leaves it open:

- Salesforce archives "during the next run of the archival background process"; here a
  write archives its rows at once, and a clock change or the periodic run the rest.
- Archiving is one way: an archived activity stays archived whatever is written to it.
- Upsert matching does not find an archived Task, whose key still holds the Unique index:
  the upsert fails with DUPLICATE_VALUE naming the archived Task (update it by Id).
- ``query`` leaves out the TaskRelation / EventRelation rows of archived activities too;
  ``queryAll`` returns them.

The Recycle Bin: "After you have deleted records, the records are placed in the Recycle
Bin for 15 days, after which they are permanently deleted"
(https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_undelete.htm);
``queryAll`` sees deleted rows only until then. Here a row deleted more than 15 days
before the clock's now (by its SystemModstamp, stamped at deletion) is removed for good.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from salesforce_emulator.objects import ALL_OBJECTS, ARCHIVED_COLUMN, RELATION_OBJECTS
from salesforce_emulator.store import quote_ident, timestamp

ARCHIVE_AFTER_DAYS = 365
RECYCLE_BIN_DAYS = 15

# Which rows of an activity object are old enough to archive, given the cutoff date (?).
_ARCHIVE_WHEN = {
    "Task": '"IsClosed" = 1 AND COALESCE("ActivityDate", substr("CreatedDate", 1, 10)) <= ?',
    "Event": 'substr("StartDateTime", 1, 10) <= ?',
}


class Clock:
    """The org's now: the real UTC time moved by ``offset_days`` whole days."""

    def __init__(self, offset_days: int = 0) -> None:
        self.offset_days = offset_days

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.offset_days)

    def today(self) -> date:
        return self.now().date()

    def stamp(self) -> str:
        """Now in the stored datetime form."""
        return timestamp(self.now())


def offset_for(today: date) -> int:
    """The offset in days that makes the clock's date ``today``."""
    return (today - datetime.now(UTC).date()).days


def archivable(obj: str) -> bool:
    """Whether ``obj`` is an activity that Salesforce archives."""
    return obj in _ARCHIVE_WHEN


def _cutoff(now_stamp: str) -> str:
    """The newest activity date that is archived on the day of ``now_stamp``."""
    return (date.fromisoformat(now_stamp[:10]) - timedelta(days=ARCHIVE_AFTER_DAYS)).isoformat()


def archive(db: sqlite3.Connection, obj: str, now_stamp: str, ids: pd.Series | None = None) -> int:
    """Archive the rows of ``obj`` (only ``ids``, if given) old enough at ``now_stamp``."""
    if not archivable(obj):
        return 0
    sql = (
        f"UPDATE {quote_ident(obj)} SET {quote_ident(ARCHIVED_COLUMN)} = 1 "
        f"WHERE {quote_ident(ARCHIVED_COLUMN)} = 0 AND IsDeleted = 0 AND {_ARCHIVE_WHEN[obj]}"
    )
    params: list = [_cutoff(now_stamp)]
    if ids is not None:
        sql += " AND Id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(pd.Series(ids, dtype=object).dropna().tolist()))
    return db.execute(sql, params).rowcount


def purge(db: sqlite3.Connection, now_stamp: str) -> int:
    """Empty the Recycle Bin of rows deleted more than 15 days before ``now_stamp``."""
    moment = datetime.strptime(now_stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    cutoff = timestamp(moment - timedelta(days=RECYCLE_BIN_DAYS))
    removed = 0
    for obj in ALL_OBJECTS:
        removed += db.execute(
            f"DELETE FROM {quote_ident(obj)} WHERE IsDeleted = 1 AND SystemModstamp < ?",
            (cutoff,),
        ).rowcount
    return removed


def run(db: sqlite3.Connection, now_stamp: str) -> dict[str, int]:
    """The background processes: archive what is old enough, empty the Recycle Bin."""
    archived = sum(archive(db, obj, now_stamp) for obj in _ARCHIVE_WHEN)
    return {"archived": archived, "purged": purge(db, now_stamp)}


def query_visible(obj: str) -> str | None:
    """SQL a live row of ``obj`` must meet for ``query`` (not ``queryAll``) to return it."""
    if archivable(obj):
        return f"{quote_ident(ARCHIVED_COLUMN)} = 0"
    if obj in RELATION_OBJECTS:
        activity, parent = RELATION_OBJECTS[obj]
        return (
            f"NOT EXISTS (SELECT 1 FROM {quote_ident(activity)} AS archived_parent "
            f"WHERE archived_parent.Id = {quote_ident(obj)}.{quote_ident(parent)} "
            f"AND archived_parent.{quote_ident(ARCHIVED_COLUMN)} = 1)"
        )
    return None
