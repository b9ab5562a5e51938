"""The literal rows of `VALUES (…), (…)` in an INSERT statement, dialect-aware.

sqlparse identifies the statement and its target (see `sql_rows`), but its lexer cannot be
trusted with the values themselves: it always treats `\\'` as an escaped quote, so the MySQL
string `'a\\\\'` (the text `a\\`) runs on past its end, and standard SQL's `'C:\\'` likewise.
The scanner here follows the dump's own escaping and turns each literal into a Python value:

- strings (also `N'…'`, `_utf8mb4'…'`, `_binary'…'`, PostgreSQL `E'…'`) → str, unescaped;
- numbers → int or float; NULL → None; TRUE/FALSE → bool;
- `X'…'` / `0x…` hex → str when the bytes are UTF-8 text; `B'0101'` → int;
- a PostgreSQL cast after a literal (`'2024-01-01'::date`) is dropped, the literal kept.

Anything else (function calls such as `NOW()`, arithmetic, sub-queries) is not data: that row
is reported and skipped, and scanning goes on with the next row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<punct>[(),])
    | (?P<hex>0[xX][0-9A-Fa-f]+)\b
    | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<prefix>_[A-Za-z0-9]+\s*|[NnEeXxBb](?='))?(?P<quote>['"])
    | (?P<word>[A-Za-z_][\w$]*)
    | (?P<end>;?\s*$)
    )""",
    re.X,
)
_CAST = re.compile(
    r"""\s*::\s*(?:"[^"]*"|[A-Za-z_][\w.]*)(?:\s+varying)?(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])*"""
)
_TRAILER = re.compile(r"\s*(?:ON\s|RETURNING\s)", re.I)
_BODY_BACKSLASH = {
    "'": re.compile(r"((?:[^'\\]|\\.|'')*)'", re.S),
    '"': re.compile(r'((?:[^"\\]|\\.|"")*)"', re.S),
}
_BODY_STANDARD = {"'": re.compile(r"((?:[^']|'')*)'"), '"': re.compile(r'((?:[^"]|"")*)"')}
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
_PG_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MYSQL_ESCAPE = re.compile(r"\\(.)|''|\"\"", re.S)
_PG_ESCAPE = re.compile(
    r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)|''", re.S
)
_WORDS = {"NULL": None, "TRUE": True, "FALSE": False}
_SNIPPET = re.compile(r"\s*([^,()]*(?:\([^()]*\))?)")


def unescape_mysql(body: str) -> str:
    """MySQL string escapes; `\\%` and `\\_` keep their backslash, as MySQL does."""

    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c is None:
            return m.group()[0]
        if c in "%_":
            return "\\" + c
        return _MYSQL_ESCAPES.get(c, c)

    return _MYSQL_ESCAPE.sub(one, body)


def unescape_postgres_e(body: str) -> str:
    """PostgreSQL E'…' escapes (C-style, octal, hex and Unicode)."""

    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c is None:
            return "'"
        if c[0] in "xuU" and len(c) > 1:
            return chr(int(c[1:], 16))
        if c[0] in "01234567":
            return chr(int(c, 8))
        return _PG_ESCAPES.get(c, c)

    return _PG_ESCAPE.sub(one, body)


class Unsupported(ValueError):
    """A value that is not a literal (an expression or a function call)."""


@dataclass(frozen=True, slots=True)
class ValuesRow:
    """One parenthesised row: its values, or why it cannot be read; lines it spans."""

    first_line: int
    last_line: int
    values: list[Any] | None
    problem: str | None = None


class ValuesScanner:
    """Scan `text` (what follows VALUES) row by row; `line` is the line `text` starts on."""

    def __init__(self, text: str, line: int, backslash_escapes: bool) -> None:
        self.text = text
        self.pos = 0
        self.line = line
        self._line_pos = 0
        self.backslash = backslash_escapes

    def _line_at(self, pos: int) -> int:
        self.line += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self.line

    def rows(self) -> Iterator[ValuesRow]:
        while True:
            m = _TOKEN.match(self.text, self.pos)
            if m is None or m.group("punct") != "(":
                if m is not None and m.group("end") is not None:
                    return
                if _TRAILER.match(self.text, self.pos):  # ON DUPLICATE KEY …, RETURNING …
                    return
                near = self.text[self.pos : self.pos + 40].strip()
                yield ValuesRow(
                    self._line_at(self.pos), self.line, None, f"cannot read VALUES near `{near}`"
                )
                return
            first = self._line_at(m.start("punct"))
            self.pos = m.end()
            yield self._row(first)
            m = _TOKEN.match(self.text, self.pos)
            if m is not None and m.group("punct") == ",":
                self.pos = m.end()

    def _row(self, first: int) -> ValuesRow:
        values: list[Any] = []
        while True:
            start = self.pos
            try:
                values.append(self._value())
            except Unsupported as err:
                self._skip_to_row_end()
                return ValuesRow(first, self._line_at(self.pos), None, str(err))
            m = _TOKEN.match(self.text, self.pos)
            if m is None or m.group("punct") not in (",", ")"):
                self.pos = start
                problem = self._not_literal()
                self._skip_to_row_end()
                return ValuesRow(first, self._line_at(self.pos), None, problem)
            self.pos = m.end()
            if m.group("punct") == ")":
                return ValuesRow(first, self._line_at(self.pos), values)

    def _not_literal(self) -> str:
        m = _SNIPPET.match(self.text, self.pos)
        snippet = m.group(1).strip()[:40] if m else ""
        return f"not a literal value: `{snippet}`" if snippet else "an empty value"

    def _value(self) -> Any:
        start = self.pos
        m = _TOKEN.match(self.text, self.pos)
        if m is None or m.group("end") is not None or m.group("punct"):
            raise Unsupported(self._not_literal())
        self.pos = m.end()
        if m.group("quote"):
            value: Any = self._string(m.group("quote"), (m.group("prefix") or "").strip())
        elif m.group("num"):
            text = m.group("num")
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif m.group("hex"):
            value = _hex_text(m.group("hex")[2:])
        else:
            word = m.group("word")
            if word.upper() not in _WORDS or self.text.startswith("(", self.pos):
                self.pos = start
                raise Unsupported(self._not_literal())
            value = _WORDS[word.upper()]
        cast = _CAST.match(self.text, self.pos)
        if cast:
            self.pos = cast.end()
        return value

    def _string(self, quote: str, prefix: str) -> Any:
        kind = prefix.upper()
        escape_string = kind == "E" or self.backslash
        if quote == '"' and not self.backslash:
            raise Unsupported('a "quoted" name where a value belongs')
        bodies = _BODY_BACKSLASH if escape_string else _BODY_STANDARD
        m = bodies[quote].match(self.text, self.pos)
        if m is None:
            raise Unsupported(f"string opened with {quote} never closes")
        self.pos = m.end()
        body = m.group(1)
        if kind == "X":
            return _hex_text(body)
        if kind == "B":
            return int(body or "0", 2)
        if self.backslash:
            return unescape_mysql(body)
        if kind == "E":
            return unescape_postgres_e(body)
        return body.replace(quote * 2, quote)

    def _skip_to_row_end(self) -> None:
        """Move past the `)` that closes the current row, stepping over strings and nesting."""
        depth = 0
        bodies = _BODY_BACKSLASH if self.backslash else _BODY_STANDARD
        special = re.compile(r"['\"()]")
        while m := special.search(self.text, self.pos):
            c = m.group()
            self.pos = m.end()
            if c in "'\"":
                body = bodies[c].match(self.text, self.pos)
                if body is None:
                    self.pos = len(self.text)
                    return
                self.pos = body.end()
            elif c == "(":
                depth += 1
            elif depth == 0:
                return
            else:
                depth -= 1
        self.pos = len(self.text)


def _hex_text(digits: str) -> str:
    try:
        return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise Unsupported("a binary value that is not UTF-8 text") from None
