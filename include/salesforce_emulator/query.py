"""Running SOQL: REST ``query``/``queryAll`` pages with ``nextRecordsUrl``, and CSV for Bulk.

``soql.py`` turns the statement into SQL over the store; here the SQL is wrapped in an
outer SELECT that lets SQLite itself render each row (JSON objects for REST, text cells for
CSV), so a 2,000-row page costs one statement and no Python loop over rows. Pages beyond
the first are kept in memory under a query locator, as Salesforce keeps a server-side
cursor, and expire after 15 minutes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from salesforce_emulator.ids import QUERY_LOCATOR_PREFIX
from salesforce_emulator.objects import OrgShape
from salesforce_emulator.retention import query_visible
from salesforce_emulator.soql import parse_soql, resolve_object
from salesforce_emulator.store import Store, quote_ident

PAGE_SIZE = 2000
MIN_PAGE_SIZE = 200
CURSOR_TTL_SECONDS = 15 * 60
MAX_CURSORS = 64


class QueryLocatorError(Exception):
    """A ``nextRecordsUrl`` that names no live cursor: Salesforce's INVALID_QUERY_LOCATOR."""


@dataclass
class Compiled:
    object_name: str
    fields: list[str]
    types: dict[str, str]
    sql: str
    params: list
    is_count: bool


@dataclass
class _Cursor:
    rows: list[str]
    version: str
    created: float = field(default_factory=time.monotonic)


def compile_soql(
    shape: OrgShape, text: str, *, include_deleted: bool, now: datetime | None = None
) -> Compiled:
    """Parse and bind a statement to the org as it looks ``now``; raises SoqlError.

    ``include_deleted`` is ``queryAll``: deleted rows (in the Recycle Bin) and archived
    activities too.
    """
    query = parse_soql(text)
    obj = resolve_object(query.object_name, shape.objects())
    columns = shape.column_types(obj)
    sql, params = query.to_sql(
        columns,
        include_deleted=include_deleted,
        table=obj,
        now=now,
        visible=query_visible(obj),
    )
    fields = query.canonical_fields(columns)
    return Compiled(obj, fields, {f: columns[f] for f in fields}, sql, params, query.is_count)


def json_row_sql(c: Compiled, version: str) -> str:
    attributes = f"'type', '{c.object_name}'"
    if "Id" in c.fields:
        attributes += f", 'url', '/services/data/v{version}/sobjects/{c.object_name}/' || \"Id\""
    parts = [f"'attributes', json_object({attributes})"]
    for name in c.fields:
        col = quote_ident(name)
        if c.types[name] == "boolean":
            value = (
                f"json(CASE WHEN {col} IS NULL THEN 'null' WHEN {col} THEN 'true' ELSE 'false' END)"
            )
        else:
            value = col
        parts.append(f"'{name}', {value}")
    return f"SELECT json_object({', '.join(parts)}) FROM ({c.sql})"


def csv_select_sql(c: Compiled) -> str:
    """Cells as Bulk API 2.0 writes them: true/false, ``…Z`` datetimes, empty for null."""
    cells = []
    for name in c.fields:
        col = quote_ident(name)
        kind = c.types[name]
        if kind == "boolean":
            cells.append(f"CASE WHEN {col} THEN 'true' ELSE 'false' END")
        elif kind == "datetime":
            cells.append(f"replace({col}, '+0000', 'Z')")
        else:
            cells.append(col)
    return f"SELECT {', '.join(cells)} FROM ({c.sql})"


class QueryService:
    """REST queries and their cursors."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def first_page(
        self,
        shape: OrgShape,
        text: str,
        *,
        include_deleted: bool,
        version: str,
        page_size: int = PAGE_SIZE,
        now: datetime | None = None,
    ) -> str:
        """The first page as JSON text; ``now`` is the org's clock for date literals."""
        compiled = compile_soql(shape, text, include_deleted=include_deleted, now=now)
        if compiled.is_count:
            total = self.store.read(compiled.sql, compiled.params)[0][0]
            return f'{{"totalSize":{total},"done":true,"records":[]}}'
        rows = [r[0] for r in self.store.read(json_row_sql(compiled, version), compiled.params)]
        locator = None
        if len(rows) > page_size:
            locator = f"{QUERY_LOCATOR_PREFIX}{secrets.token_hex(6)}"
            with self._lock:
                self._expire()
                self._cursors[locator] = _Cursor(rows, version)
        return _page(rows, 0, page_size, locator, version)

    def next_page(self, locator_path: str, page_size: int = PAGE_SIZE) -> str:
        base, _, offset = locator_path.rpartition("-")
        with self._lock:
            self._expire()
            cursor = self._cursors.get(base)
        if cursor is None or not offset.isdigit() or int(offset) > len(cursor.rows):
            raise QueryLocatorError(locator_path)
        return _page(cursor.rows, int(offset), page_size, base, cursor.version)

    def clear(self) -> None:
        """Forget every cursor (a reset): their locators become invalid."""
        with self._lock:
            self._cursors.clear()

    def _expire(self) -> None:
        deadline = time.monotonic() - CURSOR_TTL_SECONDS
        for key in [k for k, c in self._cursors.items() if c.created < deadline]:
            del self._cursors[key]
        while len(self._cursors) > MAX_CURSORS:
            self._cursors.popitem(last=False)

    def csv_rows(self, compiled: Compiled) -> list[tuple]:
        return self.store.read(csv_select_sql(compiled), compiled.params)


def _page(rows: list[str], start: int, size: int, locator: str | None, version: str) -> str:
    """One page as JSON text spliced from the rows SQLite rendered."""
    end = min(start + size, len(rows))
    done = end >= len(rows)
    head = f'{{"totalSize":{len(rows)},"done":{"true" if done else "false"},'
    if not done:
        head += f'"nextRecordsUrl":"/services/data/v{version}/query/{locator}-{end}",'
    return head + '"records":[' + ",".join(rows[start:end]) + "]}"


def page_size_from(header: str | None) -> int:
    """``Sforce-Query-Options: batchSize=N`` (200..2000; Salesforce treats it as a hint)."""
    if not header:
        return PAGE_SIZE
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_PAGE_SIZE, min(PAGE_SIZE, int(value)))
    return PAGE_SIZE
