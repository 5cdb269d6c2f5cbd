"""SOQL for the local Salesforce: parse the subset activity-sync sends, translate it to SQLite.

The emulator must fail where Salesforce fails (an unescaped quote, AND mixed with OR
without parentheses, a date literal against a dateTime field) and answer what Salesforce
answers (case-insensitive text, ``!=`` keeping nulls, nulls sorted first). A general SQL
library would accept too much and mean something else, so this is a small hand-written
tokenizer and recursive-descent parser. This module is the public face; the layers live in
``soql_syntax`` (the tree, the error), ``soql_tokens``, ``soql_parser`` and ``soql_sqlite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from salesforce_emulator.soql_parser import MAX_NESTING, MAX_STRING_CHARS, Parser
from salesforce_emulator.soql_sqlite import Translator, resolve
from salesforce_emulator.soql_syntax import Condition, OrderItem, SoqlError
from salesforce_emulator.store import quote_ident

__all__ = [
    "MAX_NESTING",
    "MAX_QUERY_CHARS",
    "MAX_STRING_CHARS",
    "SoqlError",
    "SoqlQuery",
    "parse_soql",
    "resolve_object",
]

MAX_QUERY_CHARS = 100_000


@dataclass(frozen=True)
class SoqlQuery:
    """A parsed query; ``to_sql`` binds it to one table's columns."""

    object_name: str
    fields: tuple[str, ...]
    is_count: bool
    limit: int | None
    where: Condition | None = field(default=None, repr=False)
    order_by: tuple[OrderItem, ...] = ()
    text: str = field(default="", repr=False, compare=False)

    def canonical_fields(self, columns: Mapping[str, str]) -> list[str]:
        """The SELECT list as canonical column names (empty for COUNT())."""
        if self.is_count:
            return []
        lookup = {name.lower(): name for name in columns}
        return [resolve(name, lookup, self.object_name) for name in self.fields]

    def to_sql(
        self,
        columns: Mapping[str, str],
        *,
        include_deleted: bool = False,
        table: str | None = None,
        now: datetime | None = None,
        visible: str | None = None,
    ) -> tuple[str, list]:
        """Parameterised SQLite for this query over a table with ``columns`` (name -> type).

        ``table`` is the canonical object name (from ``resolve_object``); without it the
        name as written is used, which SQLite resolves without case anyway. ``now`` pins
        the clock for TODAY / YESTERDAY / LAST_N_DAYS (default: the current UTC time).
        ``visible`` is SQL a row must also meet unless ``include_deleted`` (``queryAll``)
        asks for every row: ``query`` leaves out archived activities, for one.
        """
        entity = table or self.object_name
        lookup = {name.lower(): name for name in columns}
        # Resolved in Salesforce's order: the SELECT list first, then WHERE, then ORDER BY.
        selected = [] if self.is_count else [resolve(f, lookup, entity) for f in self.fields]
        translator = Translator(self.text, columns, entity, now or datetime.now(UTC))
        filters = []
        if self.where is not None:
            filters.append(f"({translator.condition(self.where)})")
        if not include_deleted:
            filters.append('"IsDeleted" = 0')
            if visible:
                filters.append(f"({visible})")
        where_sql = f" WHERE {' AND '.join(filters)}" if filters else ""
        source = quote_ident(entity)
        params = translator.params
        order_sql = translator.order_by(self.order_by)  # validated for COUNT() too, not used
        if self.is_count:
            if self.limit is None:
                return f"SELECT COUNT(*) FROM {source}{where_sql}", params
            inner = f"SELECT 1 FROM {source}{where_sql} LIMIT ?"
            return f"SELECT COUNT(*) FROM ({inner})", [*params, self.limit]
        column_list = ", ".join(quote_ident(name) for name in selected)
        sql = f"SELECT {column_list} FROM {source}{where_sql}{order_sql}"
        if self.limit is None:
            return sql, params
        return f"{sql} LIMIT ?", [*params, self.limit]


def parse_soql(text: str) -> SoqlQuery:
    """Parse one SOQL statement of the supported subset, or raise MALFORMED_QUERY."""
    if len(text) > MAX_QUERY_CHARS:
        raise SoqlError(
            "MALFORMED_QUERY",
            f"SOQL statements cannot be longer than {MAX_QUERY_CHARS} characters "
            f"(this one has {len(text)})",
        )
    return SoqlQuery(*Parser(text).query(), text)


def resolve_object(name: str, known: Iterable[str]) -> str:
    """The canonical sObject name for ``name`` written in any case."""
    lookup = {candidate.lower(): candidate for candidate in known}
    try:
        return lookup[name.lower()]
    except KeyError:
        raise SoqlError(
            "INVALID_TYPE",
            f"sObject type '{name}' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
        ) from None
