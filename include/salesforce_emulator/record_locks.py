"""Record locks held by Bulk chunk transactions, so that overlapping jobs contend as in Salesforce.

"Organize Data to Minimize Lock Contention"
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_organize_data.htm):
"The Salesforce Platform uses locks to ensure referential integrity of its data"; when a
child record "is created or updated, the corresponding Account for this record is locked
during the transaction", and jobs that "all try to lock the same account" get "a lock
timeout". A writer that cannot get a lock waits: "If other batches containing child
records for that same parent can't acquire the lock within 10 seconds, the batch fails"
(Salesforce Help, "Use Related Record Writeback in Data Processing Engine (DPE) to reduce
row lock errors", https://help.salesforce.com/s/articleView?id=ind.dpe_configure_rowlock.htm).

So a 200-row chunk locks the records it writes and their parents (an activity's Who, What
and Account; a relation row's activity and RelationId) for its transaction, and a chunk
of another job that needs one of them waits up to ``lock_wait_seconds`` (org setting,
default 10). Undocumented, so the harsher choices: a chunk takes all its locks at once or
none (no deadlock between two chunks, but no partial progress either); a chunk that times
out fails as a whole — every row without an error of its own gets ``UNABLE_TO_LOCK_ROW``,
as the observed message "unable to obtain exclusive access to this record or 200 records"
names the whole chunk — and Bulk API 2.0 does not retry those rows itself: the automatic
retry of lock failures is a pilot ("Bulk API 2.0 Automatic Record Lock Handling (PILOT)",
same page), so the client must send them again.

Locks are 15-character Ids (the case-sensitive part of an 18-character Id), kept in one
set behind one condition: taking or releasing a chunk's few hundred locks is a set
operation, cheap next to the chunk's SQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from salesforce_emulator.objects import ACTIVITIES, RELATION_OBJECTS
from salesforce_emulator.relation_rows import account_of

# The 15 leading characters of an Id name the record whatever the Id's length or suffix.
ID_CORE = 15
# Salesforce's wait for a record lock, before the writer fails (DPE page above).
DEFAULT_LOCK_WAIT_SECONDS = 10.0
LOCK_CODE = "UNABLE_TO_LOCK_ROW"


def lock_message(rows: int) -> str:
    """The error Salesforce gives the rows of a chunk that could not get its locks."""
    return f"unable to obtain exclusive access to this record or {rows} records"


def lock_keys(db, obj: str, values: pd.DataFrame, records: pd.Series) -> set[str]:
    """The records a chunk of ``obj`` locks: ``records`` it writes (existing Ids) and parents.

    ``values`` are the chunk's field values by canonical name; ``db`` answers the
    Account of an activity's Who or What (read under the store's lock by the caller).
    """
    parts = [records]
    if obj in ACTIVITIES:
        who = column_or_null(values, "WhoId")
        what = column_or_null(values, "WhatId")
        parts += [who, what, account_of(db, who, what)]
    elif obj in RELATION_OBJECTS:
        parts += [
            column_or_null(values, RELATION_OBJECTS[obj][1]),
            column_or_null(values, "RelationId"),
        ]
    ids = pd.concat(parts, ignore_index=True).dropna().astype(str)
    ids = ids[ids.str.len() >= ID_CORE].str.slice(0, ID_CORE)
    return set(ids.unique())


def column_or_null(values: pd.DataFrame, name: str) -> pd.Series:
    """The column ``name`` of ``values``, or nulls when the rows do not set it."""
    if name in values:
        return values[name]
    return pd.Series(None, index=values.index, dtype=object)


class RecordLocks:
    """The record locks held right now, and counts of how often a chunk waited or gave up."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._changed = threading.Condition()
        self.waits = 0
        self.timeouts = 0

    @contextmanager
    def holding(self, keys: set[str], wait_seconds: float) -> Iterator[bool]:
        """Hold every lock in ``keys`` for the block, or none: yields False after the wait."""
        got = self._acquire(keys, wait_seconds)
        try:
            yield got
        finally:
            if got:
                self._release(keys)

    def _acquire(self, keys: set[str], wait_seconds: float) -> bool:
        if not keys:
            return True
        with self._changed:
            if not self._held.isdisjoint(keys):
                self.waits += 1
                deadline = time.monotonic() + wait_seconds
                if not self._changed.wait_for(
                    lambda: self._held.isdisjoint(keys), max(deadline - time.monotonic(), 0)
                ):
                    self.timeouts += 1
                    return False
            self._held |= keys
            return True

    def _release(self, keys: set[str]) -> None:
        with self._changed:
            self._held -= keys
            self._changed.notify_all()

    def reset_counts(self) -> None:
        with self._changed:
            self.waits = self.timeouts = 0

    def counts(self) -> dict[str, int]:
        with self._changed:
            return {"held": len(self._held), "waits": self.waits, "timeouts": self.timeouts}
