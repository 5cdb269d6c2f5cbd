"""The SOQL syntax tree, and the error every SOQL layer raises in Salesforce's words.

A leaf module: the tokenizer, the parser and the SQLite translator all build, read or
reject these, so each can import them without importing another layer.
"""

from __future__ import annotations

from dataclasses import dataclass

EMULATOR = "the local Salesforce emulator"


class SoqlError(Exception):
    """A query Salesforce would refuse, with the errorCode and message it would send."""

    def __init__(self, error_code: str, message: str):
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def malformed(text: str, pos: int, detail: str) -> SoqlError:
    """Salesforce's shape: the offending line, a caret under the spot, Row and Column, why."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line_end = len(text) if line_end < 0 else line_end
    low, high = max(line_start, pos - 60), min(line_end, pos + 60)
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    caret = " " * (pos - low) + "^"
    return SoqlError(
        "MALFORMED_QUERY",
        f"\n{text[low:high]}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}",
    )


@dataclass(frozen=True)
class Text:
    """A decoded string literal, both as a value and as a SQLite LIKE pattern (ESCAPE '\\')."""

    plain: str
    like: str
    like_escape: str | None  # the first \\% or \\_ seen: only legal in LIKE


@dataclass(frozen=True)
class Value:
    kind: str  # string | number | boolean | null | date | datetime | date_range
    value: object
    pos: int


@dataclass(frozen=True)
class Compare:
    field: str
    pos: int
    op: str  # = != < <= > >= LIKE IN NOT IN
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class Junction:
    op: str  # AND | OR
    operands: tuple[Condition, ...]


Condition = Compare | Not | Junction


@dataclass(frozen=True)
class OrderItem:
    field: str
    descending: bool
    nulls_last: bool
