"""SOQL's SQLite translator: a syntax tree into parameterised SQL with Salesforce's semantics.

Case-insensitive text, ``!=`` keeping nulls, nulls sorted first, a literal of the field's
type or Salesforce's error. Literals only ever travel as SQLite parameters.

Storage this translates to (owned by the server): one table per sObject, columns named
as the canonical fields, dateTime as TEXT ``YYYY-MM-DDTHH:MM:SS.000+0000`` in UTC, date as
``YYYY-MM-DD``, boolean as INTEGER 0/1, an ``IsDeleted`` column in every table, Ids
stored in their 18-character form.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

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

# Salesforce field types grouped by how they compare; unknown types compare as text.
_ID_TYPES = frozenset({"id", "reference"})
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})

_ID18_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class Translator:
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
        column = resolve(node.field, self.lookup, self.entity)
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
            column = resolve(item.field, self.lookup, self.entity)
            kind = _kind(self.columns[column].lower())
            collate = " COLLATE NOCASE" if kind in ("text", "id") else ""
            direction = "DESC" if item.descending else "ASC"
            # Salesforce sorts nulls first unless told otherwise, in either direction.
            nulls = "LAST" if item.nulls_last else "FIRST"
            terms.append(f"{quote_ident(column)}{collate} {direction} NULLS {nulls}")
        return " ORDER BY " + ", ".join(terms)


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


def resolve(name: str, lookup: Mapping[str, str], entity: str) -> str:
    try:
        return lookup[name.lower()]
    except KeyError:
        raise SoqlError(
            "INVALID_FIELD",
            f"No such column '{name}' on entity '{entity}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        ) from None
