"""SOQL for the local Salesforce: parse the subset activity-sync sends, translate it to SQLite.

The emulator must fail where Salesforce fails (an unescaped quote, AND mixed with OR
without parentheses, a date literal against a dateTime field) and answer what Salesforce
answers (case-insensitive text, ``!=`` keeping nulls, nulls sorted first). A general SQL
library would accept too much and mean something else, so this is a small hand-written
tokenizer and recursive-descent parser. Literals only ever travel as SQLite parameters.

Storage this translates to (owned by the server): one table per sObject, columns named
as the canonical fields, dateTime as TEXT ``YYYY-MM-DDTHH:MM:SS.000+0000`` in UTC, date as
``YYYY-MM-DD``, boolean as INTEGER 0/1, an ``IsDeleted`` column in every table, Ids
stored in their 18-character form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from salesforce_emulator.soql_parser import MAX_NESTING, MAX_STRING_CHARS, Parser
from salesforce_emulator.soql_syntax import (
    Compare,
    Condition,
    Junction,
    Not,
    OrderItem,
    SoqlError,
    Value,
    malformed,
)
from salesforce_emulator.soql_tokens import stored_datetime
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

# Salesforce field types grouped by how they compare; unknown types compare as text.
_ID_TYPES = frozenset({"id", "reference"})
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})
_ID18_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


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
        return [_resolve(name, lookup, self.object_name) for name in self.fields]

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
        selected = [] if self.is_count else [_resolve(f, lookup, entity) for f in self.fields]
        translator = _Translator(self.text, columns, entity, now or datetime.now(UTC))
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


# ----------------------------------------------------------------------------- translator


class _Translator:
    """Turns the condition tree into SQLite, collecting literals as parameters."""

    def __init__(self, text: str, columns: Mapping[str, str], entity: str, now: datetime):
        self.text = text
        self.columns = columns
        self.lookup = {name.lower(): name for name in columns}
        self.entity = entity
        self.today = now.astimezone(UTC).date()
        self.params: list = []

    def bind(self, value: object) -> str:
        self.params.append(value)
        return "?"

    def condition(self, node: Condition) -> str:
        if isinstance(node, Junction):
            return "(" + f" {node.op} ".join(self.condition(n) for n in node.operands) + ")"
        if isinstance(node, Not):
            # Salesforce filters are two-valued: NOT (x = 'a') keeps the rows where x is null.
            return f"NOT IFNULL({self.condition(node.operand)}, 0)"
        return self.compare(node)

    def compare(self, node: Compare) -> str:
        column = _resolve(node.field, self.lookup, self.entity)
        sf_type = self.columns[column].lower()
        kind = _kind(sf_type)
        for value in node.values:
            self.check(node, column, sf_type, value)
        col = quote_ident(column)
        collate = " COLLATE NOCASE" if kind in ("text", "id") else ""
        op = node.op
        if op == "LIKE":
            if kind != "text":
                raise malformed(
                    self.text, node.pos, f"invalid operator on {sf_type} field: LIKE on {column}"
                )
            return f"{col} LIKE {self.bind(node.values[0].value.like)} ESCAPE '\\'"
        if op in ("IN", "NOT IN"):
            return self.membership(col, collate, kind, op, node.values)
        value = node.values[0]
        if value.kind == "null":
            return f"{col} IS NULL" if op == "=" else f"{col} IS NOT NULL"
        if kind == "boolean" and op not in ("=", "!="):
            raise malformed(
                self.text, node.pos, f"invalid operator on boolean field: {op} on {column}"
            )
        if value.kind == "date_range":
            return self.date_range(col, kind, op, value.value)
        mark = self.bind(_sql_value(kind, value))
        if op == "!=":
            # Salesforce counts a null as different from every value.
            return f"({col} IS NULL OR {col} != {mark}{collate})"
        return f"{col} {op} {mark}{collate}"

    def membership(
        self, col: str, collate: str, kind: str, op: str, values: tuple[Value, ...]
    ) -> str:
        present = [v for v in values if v.kind != "null"]
        with_null = len(present) < len(values)
        if not present:
            return f"{col} IS NULL" if op == "IN" else f"{col} IS NOT NULL"
        marks = ", ".join(self.bind(_sql_value(kind, v)) for v in present)
        test = f"{col}{collate} {op} ({marks})"
        if op == "IN":
            return f"({col} IS NULL OR {test})" if with_null else test
        return f"({col} IS NOT NULL AND {test})" if with_null else f"({col} IS NULL OR {test})"

    def date_range(self, col: str, kind: str, op: str, literal: tuple[str, int]) -> str:
        """TODAY & co. are day ranges [start, end) in UTC; = means inside, < before, > after."""
        name, days = literal
        first = {"TODAY": 0, "YESTERDAY": 1, "LAST_N_DAYS": days}[name]
        after = 0 if name == "YESTERDAY" else 1
        start, end = self.today - timedelta(days=first), self.today + timedelta(days=after)
        if kind == "date":
            low, high = start.isoformat(), end.isoformat()
        else:
            low = stored_datetime(datetime.combine(start, datetime.min.time()))
            high = stored_datetime(datetime.combine(end, datetime.min.time()))
        if op == "=":
            return f"({col} >= {self.bind(low)} AND {col} < {self.bind(high)})"
        if op == "!=":
            return f"({col} IS NULL OR {col} < {self.bind(low)} OR {col} >= {self.bind(high)})"
        bound = {"<": ("<", low), "<=": ("<", high), ">": (">=", high), ">=": (">=", low)}
        sql_op, edge = bound[op]
        return f"{col} {sql_op} {self.bind(edge)}"

    def check(self, node: Compare, column: str, sf_type: str, value: Value) -> None:
        """The literal must have the field's type, with Salesforce's wording when it doesn't."""
        if value.kind == "null":
            return
        kind = _kind(sf_type)
        accepted = {
            "text": ("string",),
            "id": ("string",),
            "boolean": ("boolean",),
            "number": ("number",),
            "date": ("date", "date_range"),
            "datetime": ("datetime", "date_range"),
        }[kind]
        if value.kind in accepted:
            return
        if kind in ("text", "id"):
            wanted = "id" if kind == "id" else "string"
            detail = f"must be of type {wanted} and should be enclosed in quotes"
        else:
            wanted = {"int": "integer", "datetime": "dateTime"}.get(sf_type, sf_type)
            wanted = "double" if kind == "number" and wanted != "integer" else wanted
            detail = f"must be of type {wanted} and should not be enclosed in quotes"
        raise malformed(
            self.text, value.pos, f"value of filter criterion for field '{column}' {detail}"
        )

    def order_by(self, items: tuple[OrderItem, ...]) -> str:
        if not items:
            return ""
        terms = []
        for item in items:
            column = _resolve(item.field, self.lookup, self.entity)
            kind = _kind(self.columns[column].lower())
            collate = " COLLATE NOCASE" if kind in ("text", "id") else ""
            direction = "DESC" if item.descending else "ASC"
            # Salesforce sorts nulls first unless told otherwise, in either direction.
            nulls = "LAST" if item.nulls_last else "FIRST"
            terms.append(f"{quote_ident(column)}{collate} {direction} NULLS {nulls}")
        return " ORDER BY " + ", ".join(terms)


# -------------------------------------------------------------------------------- helpers


def _kind(sf_type: str) -> str:
    sf_type = sf_type.lower()
    if sf_type in _ID_TYPES:
        return "id"
    if sf_type in _NUMBER_TYPES:
        return "number"
    if sf_type in ("boolean", "date", "datetime"):
        return sf_type
    return "text"


def _sql_value(kind: str, value: Value) -> object:
    if value.kind == "string":
        text = value.value.plain
        return _id18(text) if kind == "id" else text
    if value.kind == "boolean":
        return int(value.value)
    return value.value


def _id18(value: str) -> str:
    """Salesforce matches a 15-character Id to its 18-character form: add the checksum."""
    if len(value) != 15 or not (value.isascii() and value.isalnum()):
        return value
    suffix = ""
    for chunk in range(3):
        part = value[chunk * 5 : chunk * 5 + 5]
        bits = sum(1 << i for i, char in enumerate(part) if "A" <= char <= "Z")
        suffix += _ID18_ALPHABET[bits]
    return value + suffix


def _resolve(name: str, lookup: Mapping[str, str], entity: str) -> str:
    try:
        return lookup[name.lower()]
    except KeyError:
        raise SoqlError(
            "INVALID_FIELD",
            f"No such column '{name}' on entity '{entity}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        ) from None
