"""SOQL's tokenizer: tokens scanned on demand, literals decoded the way Salesforce reads them.

Strings take Salesforce's escapes and nothing else; date and dateTime literals become the
text the store keeps (UTC, milliseconds, ``+0000``), so SQLite compares them as instants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from salesforce_emulator.soql_syntax import EMULATOR, Text, malformed

_DIGITS = frozenset("0123456789")

_SPACE = re.compile(r"\s*")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]*)+")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
_DATETIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:?[0-9]{2})",
    re.I,
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_DAYS = re.compile(r":([0-9]+)")
_PUNCT = re.compile(r"!=|<>|<=|>=|[=<>(),]")
# A quoted string: any run of non-quote, non-backslash characters or backslash pairs.
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'", re.S)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.S)
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


@dataclass(frozen=True)
class Token:
    kind: str  # ident | string | number | date | datetime | last_n_days | punct | eof
    text: str
    pos: int
    value: object = None

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.upper() in words

    def is_punct(self, *marks: str) -> bool:
        return self.kind == "punct" and self.text in marks


class Scanner:
    """Produces tokens on demand, so an error points at the first bad token, not a later one."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def next(self) -> Token:
        text = self.text
        pos = _SPACE.match(text, self.pos).end()
        if pos >= len(text):
            token = Token("eof", "", pos)
        elif text[pos] == "'":
            token = self._string(pos)
        elif text[pos] in _DIGITS or (text[pos] in "+-" and text[pos + 1 : pos + 2] in _DIGITS):
            token = self._number_or_date(pos)
        elif match := _IDENT.match(text, pos):
            token = self._word(match)
        elif match := _PUNCT.match(text, pos):
            token = Token("punct", match.group(), pos)
        elif text[pos] == ":":
            raise malformed(text, pos, "Bind variables only allowed in Apex code")
        else:
            raise malformed(text, pos, f"no viable alternative at character '{text[pos]}'")
        self.pos = pos + len(token.text)
        return token

    def _word(self, match: re.Match[str]) -> Token:
        text, pos, end = self.text, match.start(), match.end()
        word = match.group()
        if text.startswith(".", end):
            path = _PATH.match(text, pos).group()
            raise malformed(
                text, pos, f"relationship paths such as '{path}' are not supported by {EMULATOR}"
            )
        if text.startswith(":", end) and word.upper() == "LAST_N_DAYS":
            days = _DAYS.match(text, end)
            if days is None:
                raise malformed(text, end + 1, "expecting a number of days after LAST_N_DAYS:")
            self._expect_boundary(days.end())
            return Token("last_n_days", text[pos : days.end()], pos, int(days.group(1)))
        return Token("ident", word, pos)

    def _number_or_date(self, pos: int) -> Token:
        text = self.text
        if match := _DATETIME.match(text, pos):
            token = Token("datetime", match.group(), pos, _datetime_value(text, pos, match))
        elif match := _DATE.match(text, pos):
            try:
                value = date.fromisoformat(match.group()).isoformat()
            except ValueError:
                raise malformed(text, pos, f"invalid date: {match.group()}") from None
            token = Token("date", match.group(), pos, value)
        else:
            match = _NUMBER.match(text, pos)
            number = match.group()
            value = float(number) if "." in number else int(number)
            token = Token("number", number, pos, value)
        self._expect_boundary(match.end())
        return token

    def _expect_boundary(self, end: int) -> None:
        """A literal must not run straight into a word (``5abc``, ``2026-01-01T10``)."""
        if _WORD_CHAR.match(self.text, end):
            raise malformed(
                self.text, end, f"no viable alternative at character '{self.text[end]}'"
            )

    def _string(self, pos: int) -> Token:
        match = _STRING.match(self.text, pos)
        if match is None:
            raise malformed(
                self.text,
                pos,
                "mismatched character '<EOF>' expecting ''' (this string literal is never closed)",
            )
        return Token("string", match.group(), pos, _decode(match, self.text))


def _decode(match: re.Match[str], text: str) -> Text:
    """Apply Salesforce's escapes; any other backslash sequence is an error, as in Salesforce."""
    body, start = match.group(1), match.start(1)
    plain: list[str] = []
    like: list[str] = []
    like_escape = None
    unicode_escape = False
    last = 0
    for escape in _ESCAPE.finditer(body):
        chunk = body[last : escape.start()]
        plain.append(chunk)
        like.append(chunk)  # unescaped % and _ stay wildcards
        code = escape.group(1)
        if code in ("%", "_"):
            like_escape = like_escape or escape.group()
            plain.append(code)
            like.append("\\" + code)
        else:
            if len(code) == 5:
                char = chr(int(code[1:], 16))
                unicode_escape = True
            elif code.lower() in _ESCAPES:
                char = _ESCAPES[code.lower()]
            else:
                raise malformed(
                    text,
                    start + escape.start(),
                    f"Invalid string literal {match.group()}. Illegal character sequence "
                    f"'{escape.group()}' in string literal.",
                )
            plain.append(char)
            like.append("\\" + char if char in "\\%_" else char)
        last = escape.end()
    plain.append(body[last:])
    like.append(body[last:])
    value, pattern = "".join(plain), "".join(like)
    if unicode_escape:
        # \uD83D\uDE00 is one character; a lone surrogate is no character at all.
        try:
            value, pattern = (_join_surrogates(s) for s in (value, pattern))
        except UnicodeError:
            raise malformed(
                text, match.start(), f"Invalid string literal {match.group()}: lone surrogate"
            ) from None
    return Text(value, pattern, like_escape)


def _join_surrogates(value: str) -> str:
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _datetime_value(text: str, pos: int, match: re.Match[str]) -> str:
    """The literal as stored: UTC, milliseconds, ``+0000``, so TEXT comparison is correct."""
    day, hour, minute, second, fraction, zone = match.groups()
    try:
        if zone.upper() == "Z":
            offset = timedelta(0)
        else:
            digits = zone[1:].replace(":", "")
            if int(digits[2:]) > 59:
                raise ValueError(zone)
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            offset = -offset if zone[0] == "-" else offset
        millis = int((fraction or "0")[:3].ljust(3, "0"))
        day_ = date.fromisoformat(day)
        moment = datetime(
            day_.year,
            day_.month,
            day_.day,
            int(hour),
            int(minute),
            int(second),
            millis * 1000,
            tzinfo=timezone(offset),
        ).astimezone(UTC)
    except (ValueError, OverflowError):
        raise malformed(text, pos, f"invalid dateTime: {match.group()}") from None
    return stored_datetime(moment)


def stored_datetime(moment: datetime) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}+0000"
    )
