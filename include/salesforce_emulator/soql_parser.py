"""SOQL's recursive-descent parser: the supported subset into a syntax tree, or Salesforce's error.

It refuses what Salesforce refuses (AND mixed with OR without parentheses, a reserved word
as a name) and names valid SOQL outside the subset as such, so the message says what to change.
"""

from __future__ import annotations

import re

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
from salesforce_emulator.soql_tokens import Scanner, Token

MAX_STRING_CHARS = 4_000
# Deep enough for any real filter, shallow enough that recursion can't blow the stack.
MAX_NESTING = 100

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


# One statement's clauses in ``SoqlQuery``'s field order: FROM, SELECT, COUNT(), LIMIT,
# WHERE, ORDER BY.
Clauses = tuple[str, tuple[str, ...], bool, int | None, Condition | None, tuple[OrderItem, ...]]


class Parser:
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

    def query(self) -> Clauses:
        """The whole statement; ``soql.parse_soql`` makes the clauses a ``SoqlQuery``."""
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
        return object_name, fields, is_count, limit, where, order_by or ()

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
