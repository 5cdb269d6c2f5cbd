"""SQLite storage of the org: one table per object, one column per field, plus bookkeeping.

The layout is a contract with ``soql_sqlite.py``, which turns SOQL into SQL over these tables:
tables and columns carry the canonical Salesforce names, datetimes are TEXT
``YYYY-MM-DDTHH:MM:SS.mmm+0000`` in UTC (so text order is time order), dates
``YYYY-MM-DD``, booleans INTEGER 0/1, empty strings are NULL, and deleted rows stay with
``IsDeleted = 1`` so that ``queryAll`` can see them.

One connection serves every thread behind one lock: the request threads and the Bulk
workers take turns per statement group, which keeps transactions simple; a Bulk chunk (200
rows) is one transaction, so overlapping jobs interleave as they do in Salesforce.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from salesforce_emulator.ids import make_ids
from salesforce_emulator.objects import ALL_OBJECTS, ARCHIVED_COLUMN, TASK_EXTERNAL_ID, Field

DB_FILE = "org.sqlite"

_SQL_TYPES = {"boolean": "INTEGER", "int": "INTEGER", "double": "REAL"}

# Lookups the API and the product's queries lean on: emails, external keys, relation pairs,
# parent links and the CRM mirror's incremental-refresh stamp. Activities carry only what
# upserts need, because every index slows the 100,000-row Bulk loads.
_INDEXES = {
    "User": ["Email", "SystemModstamp"],
    "Account": ["SystemModstamp"],
    "Contact": ["Email", "AccountId", "SystemModstamp"],
    "Lead": ["Email", "SystemModstamp"],
    "Opportunity": ["AccountId", "SystemModstamp"],
    "OpportunityContactRole": ["ContactId", "OpportunityId", "SystemModstamp"],
    "Task": [TASK_EXTERNAL_ID],
    "TaskRelation": ["TaskId, RelationId"],
    "Event": [TASK_EXTERNAL_ID],
    "EventRelation": ["EventId, RelationId"],
}


def timestamp(moment: datetime | None = None) -> str:
    """A datetime in the stored form, to the millisecond."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def quote_ident(name: str) -> str:
    """A table or column name as an SQLite identifier (names never travel as parameters)."""
    return '"' + name.replace('"', '""') + '"'


def _column_sql(f: Field) -> str:
    sql_type = _SQL_TYPES.get(f.type, "TEXT")
    # Salesforce compares text and Ids without case; declaring it on the column makes the
    # indexes serve SOQL's case-insensitive comparisons.
    if sql_type == "TEXT":
        sql_type = "TEXT COLLATE NOCASE"
    if f.formula:
        return f"{quote_ident(f.name)} {sql_type} GENERATED ALWAYS AS ({f.formula}) VIRTUAL"
    extra = " PRIMARY KEY" if f.name == "Id" else ""
    if f.name in ("IsDeleted", ARCHIVED_COLUMN):
        extra = " NOT NULL DEFAULT 0"
    return f"{quote_ident(f.name)} {sql_type}{extra}"


class Store:
    """The org's database file and the lock that serialises access to it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_FILE
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA cache_size=-65536")
        self._create_schema()

    def _create_schema(self) -> None:
        with self.transaction() as db:
            for obj in ALL_OBJECTS.values():
                columns = ", ".join(_column_sql(f) for f in obj.stored_fields)
                db.execute(f"CREATE TABLE IF NOT EXISTS {quote_ident(obj.name)} ({columns})")
                # A data directory from an older emulator lacks the fields added since.
                held = {
                    row[1] for row in db.execute(f"PRAGMA table_xinfo({quote_ident(obj.name)})")
                }
                for f in obj.stored_fields:
                    if f.name not in held:
                        db.execute(
                            f"ALTER TABLE {quote_ident(obj.name)} ADD COLUMN {_column_sql(f)}"
                        )
                for i, cols in enumerate(_INDEXES.get(obj.name, [])):
                    db.execute(
                        f'CREATE INDEX IF NOT EXISTS "ix_{obj.name}_{i}" '
                        f"ON {quote_ident(obj.name)} ({cols})"
                    )
                for f in obj.stored_fields:
                    if f.unique:
                        self._unique_index(db, obj.name, f)
            db.execute("CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS _sequence (prefix TEXT PRIMARY KEY, next INTEGER)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS _tokens (token TEXT PRIMARY KEY, issued TEXT, kind TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS _jobs (id TEXT PRIMARY KEY, info TEXT)")

    @staticmethod
    def _unique_index(db: sqlite3.Connection, table: str, f: Field) -> None:
        """An index over the live values of a Unique field, compared as the field compares.

        Not a UNIQUE index: the writes check (``unique``), and an org may have the field
        without *Unique* (``task_external_id_unique``), where duplicates are legal.
        """
        collate = "BINARY" if f.case_sensitive else "NOCASE"
        db.execute(
            f'CREATE INDEX IF NOT EXISTS "ix_{table}_{f.name}_live" ON {quote_ident(table)} '
            f"({quote_ident(f.name)} COLLATE {collate}) WHERE IsDeleted = 0"
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one write transaction; roll back on any exception."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def read(self, sql: str, params: Any = ()) -> list[tuple]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def next_ids(self, db: sqlite3.Connection, prefix: str, count: int) -> list[str]:
        """Reserve ``count`` new Ids; call inside a transaction."""
        row = db.execute("SELECT next FROM _sequence WHERE prefix = ?", (prefix,)).fetchone()
        first = row[0] if row else 1
        db.execute(
            "INSERT INTO _sequence (prefix, next) VALUES (?, ?) "
            "ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
            (prefix, first + count),
        )
        return make_ids(prefix, first, count)

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.read("SELECT value FROM _meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.lock:
            self.conn.execute(
                "INSERT INTO _meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def row_counts(self) -> dict[str, dict[str, int]]:
        counts = {}
        with self.lock:
            for name in ALL_OBJECTS:
                live, deleted = self.conn.execute(
                    f"SELECT COUNT(*) - COALESCE(SUM(IsDeleted), 0), COALESCE(SUM(IsDeleted), 0) "
                    f"FROM {quote_ident(name)}"
                ).fetchone()
                counts[name] = {"live": live, "deleted": deleted}
        return counts

    def snapshot(self, target: Path) -> None:
        """Copy the whole database to ``target`` (the seed state that reset returns to)."""
        target.unlink(missing_ok=True)
        with self.lock:
            dest = sqlite3.connect(target)
            try:
                self.conn.backup(dest)
            finally:
                dest.close()

    def restore(self, source: Path) -> None:
        """Replace the whole database by the copy in ``source``."""
        with self.lock:
            src = sqlite3.connect(source)
            try:
                src.backup(self.conn)
            finally:
                src.close()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def sql_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as lists of plain Python values (None for missing) for ``executemany``."""
    values = frame.to_numpy(dtype=object)
    values[pd.isna(values)] = None
    return values.tolist()
