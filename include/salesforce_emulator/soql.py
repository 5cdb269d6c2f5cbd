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

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from salesforce_emulator.soql_syntax import (
    EMULATOR,
    Compare,
    Condition,
    Junction,
    Not,
    OrderItem,
    SoqlError,
    Text,
    Value,
    malformed,
)
from salesforce_emulator.soql_tokens import Scanner, Token, stored_datetime
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
MAX_STRING_CHARS = 4_000
# Deep enough for any real filter, shallow enough that recursion can't blow the stack.
MAX_NESTING = 100


# Salesforce field types grouped by how they compare; unknown types compare as text.
_ID_TYPES = frozenset({"id", "reference"})
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})

# Salesforce's reserved words: never a field or object name.
_RESERVED = frozenset(
    [
        "AND",
        "ASC",
        "DESC",
        "EXCLUDES",
        "FIRST",
        "FROM",
        "GROUP",
        "HAVING",
        "IN",
        "INCLUDES",
        "LAST",
        "LIKE",
        "LIMIT",
        "NOT",
        "NULL",
        "NULLS",
        "OR",
        "SELECT",
        "WHERE",
        "WITH",
        "TRUE",
        "FALSE",
    ]
)
# Valid SOQL outside the subset: named as such so the error says what to change.
_UNSUPPORTED = frozenset(
    [
        "GROUP",
        "HAVING",
        "OFFSET",
        "WITH",
        "FOR",
        "USING",
        "TYPEOF",
        "INCLUDES",
        "EXCLUDES",
    ]
)
_OTHER_DATE_LITERAL = re.compile(r"TOMORROW|(?:LAST|THIS|NEXT)_\w+", re.I)
_COMPARATORS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})

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
    return _Parser(text).query()


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


# --------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.scanner = Scanner(text)
        self.tok = self.scanner.next()
        self.prev: Token | None = None
        self.depth = 0

    def advance(self) -> Token:
        self.prev, self.tok = self.tok, self.scanner.next()
        return self.prev

    def expect_word(self, word: str) -> Token:
        if not self.tok.is_word(word):
            raise self.unexpected(f"expecting {word}")
        return self.advance()

    def expect_punct(self, mark: str) -> Token:
        if not self.tok.is_punct(mark):
            raise self.unexpected(f"expecting '{mark}'")
        return self.advance()

    def unexpected(self, hint: str) -> SoqlError:
        token = self.tok
        if token.kind == "ident" and token.text.upper() in _UNSUPPORTED:
            detail = f"'{token.text}' is valid SOQL but not supported by {EMULATOR}"
        elif self.prev is not None and self.prev.kind == "string" and token.kind == "ident":
            detail = (
                f"unexpected token: '{token.text}' (a quote inside a string literal must be "
                "escaped as \\')"
            )
        else:
            detail = f"unexpected token: '{token.text or '<EOF>'}' ({hint})"
        return malformed(self.text, token.pos, detail)

    def query(self) -> SoqlQuery:
        self.expect_word("SELECT")
        fields, is_count = self.select_list()
        self.expect_word("FROM")
        object_name = self.name("an object name").text
        where = order_by = None
        if self.tok.is_word("WHERE"):
            self.advance()
            where = self.condition()
        if self.tok.is_word("ORDER"):
            self.advance()
            self.expect_word("BY")
            order_by = self.order_by()
        limit = None
        if self.tok.is_word("LIMIT"):
            self.advance()
            limit = self.limit()
        if self.tok.kind != "eof":
            raise self.unexpected("expecting a clause such as ORDER BY or LIMIT, or the end")
        return SoqlQuery(object_name, fields, is_count, limit, where, order_by or (), self.text)

    def name(self, what: str) -> Token:
        """A field or object name: an identifier that is not a reserved word."""
        token = self.tok
        if token.is_punct("("):
            raise malformed(self.text, token.pos, f"subqueries are not supported by {EMULATOR}")
        if token.kind != "ident" or token.text.upper() in _RESERVED | _UNSUPPORTED:
            raise self.unexpected(f"expecting {what}")
        self.advance()
        if self.tok.is_punct("("):
            raise malformed(
                self.text,
                token.pos,
                f"functions such as {token.text}() are not supported by {EMULATOR}",
            )
        return token

    def select_list(self) -> tuple[tuple[str, ...], bool]:
        if self.tok.is_word("COUNT"):
            count = self.advance()
            if self.tok.is_punct("("):
                self.advance()
                if not self.tok.is_punct(")"):
                    raise malformed(
                        self.text,
                        count.pos,
                        f"aggregate functions such as COUNT(field) are not supported by "
                        f"{EMULATOR}; use COUNT()",
                    )
                self.advance()
                if not self.tok.is_word("FROM"):
                    raise self.unexpected("COUNT() must be the only item selected")
                return ("COUNT()",), True
            fields, seen = [count.text], {count.text.lower()}
        else:
            fields, seen = [], set()
        while not fields or self.tok.is_punct(","):
            if fields:
                self.advance()
            token = self.name("a field name")
            if token.text.lower() in seen:
                raise malformed(self.text, token.pos, f"duplicate field selected: {token.text}")
            seen.add(token.text.lower())
            fields.append(token.text)
        return tuple(fields), False

    def condition(self) -> Condition:
        """Terms joined by one connective: Salesforce wants parentheses to mix AND with OR."""
        operands = [self.term()]
        joiner = None
        while self.tok.is_word("AND", "OR"):
            word = self.tok.text.upper()
            if joiner is not None and word != joiner:
                raise self.unexpected("use parentheses when mixing AND and OR")
            joiner = word
            self.advance()
            operands.append(self.term())
        return operands[0] if joiner is None else Junction(joiner, tuple(operands))

    def term(self) -> Condition:
        if self.depth >= MAX_NESTING:
            raise malformed(
                self.text, self.tok.pos, f"conditions nest deeper than {MAX_NESTING} levels"
            )
        self.depth += 1
        if self.tok.is_word("NOT"):
            self.advance()
            result: Condition = Not(self.term())
        elif self.tok.is_punct("("):
            self.advance()
            result = self.condition()
            self.expect_punct(")")
        else:
            result = self.comparison()
        self.depth -= 1
        return result

    def comparison(self) -> Compare:
        name = self.name("a field name")
        if self.tok.is_word("NOT"):
            self.advance()
            if not self.tok.is_word("IN"):
                raise self.unexpected("only IN may follow NOT here; write NOT field LIKE '…'")
            op = "NOT IN"
        elif self.tok.is_word("IN", "LIKE"):
            op = self.tok.text.upper()
        elif self.tok.kind == "punct" and self.tok.text in _COMPARATORS:
            op = "!=" if self.tok.text == "<>" else self.tok.text
        else:
            raise self.unexpected("expecting a comparison operator")
        self.advance()
        values = self.value_list(op) if op in ("IN", "NOT IN") else (self.value(op),)
        return Compare(name.text, name.pos, op, values)

    def value_list(self, op: str) -> tuple[Value, ...]:
        self.expect_punct("(")
        if self.tok.is_word("SELECT"):
            raise malformed(
                self.text, self.tok.pos, f"semi-join subqueries are not supported by {EMULATOR}"
            )
        values = [self.value(op)]
        while self.tok.is_punct(","):
            self.advance()
            values.append(self.value(op))
        self.expect_punct(")")
        for value in values:
            if value.kind == "date_range":
                raise malformed(
                    self.text, value.pos, "date literals such as TODAY cannot be used in IN"
                )
        return tuple(values)

    def value(self, op: str) -> Value:
        token = self.tok
        kind, value = token.kind, token.value
        if kind == "string":
            self.check_string(token, op)
        elif kind == "last_n_days":
            kind, value = "date_range", ("LAST_N_DAYS", token.value)
        elif token.is_word("TRUE", "FALSE"):
            kind, value = "boolean", token.is_word("TRUE")
        elif token.is_word("NULL"):
            kind = "null"
        elif token.is_word("TODAY", "YESTERDAY"):
            kind, value = "date_range", (token.text.upper(), 0)
        elif token.kind == "ident" and _OTHER_DATE_LITERAL.fullmatch(token.text):
            raise malformed(
                self.text,
                token.pos,
                f"date literal {token.text} is not supported by {EMULATOR} "
                "(TODAY, YESTERDAY and LAST_N_DAYS:n are)",
            )
        elif kind not in ("number", "date", "datetime"):
            raise self.unexpected("expecting a value")
        if op == "LIKE" and kind != "string":
            raise malformed(self.text, token.pos, "LIKE needs a quoted string pattern")
        if kind == "null" and op not in ("=", "!=", "IN", "NOT IN"):
            raise malformed(self.text, token.pos, f"null cannot be compared with {op}")
        self.advance()
        return Value(kind, value, token.pos)

    def check_string(self, token: Token, op: str) -> None:
        text: Text = token.value
        if len(text.plain) > MAX_STRING_CHARS:
            raise malformed(
                self.text,
                token.pos,
                f"a string in a WHERE clause may have at most {MAX_STRING_CHARS} characters "
                f"(this one has {len(text.plain)})",
            )
        if text.like_escape and op != "LIKE":
            raise malformed(
                self.text,
                token.pos,
                f"Invalid string literal {token.text}. Illegal character sequence "
                f"'{text.like_escape}' in string literal (only LIKE patterns take it).",
            )

    def order_by(self) -> tuple[OrderItem, ...]:
        items = []
        while not items or self.tok.is_punct(","):
            if items:
                self.advance()
            name = self.name("a field name")
            descending = self.tok.is_word("DESC")
            if self.tok.is_word("ASC", "DESC"):
                self.advance()
            nulls_last = False
            if self.tok.is_word("NULLS"):
                self.advance()
                if not self.tok.is_word("FIRST", "LAST"):
                    raise self.unexpected("expecting FIRST or LAST")
                nulls_last = self.advance().is_word("LAST")
            items.append(OrderItem(name.text, descending, nulls_last))
        return tuple(items)

    def limit(self) -> int:
        token = self.tok
        if token.kind != "number" or not isinstance(token.value, int) or token.text[0] in "+-":
            raise self.unexpected("LIMIT takes a whole number of rows")
        self.advance()
        return token.value


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
