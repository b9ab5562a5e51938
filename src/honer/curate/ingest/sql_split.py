"""Split SQL dumps into statements one line at a time, never loading the whole file.

A small state machine walks each line with regular expressions, jumping from one special
character to the next: quotes (`'…'`, `"…"`, backticks), comments (`--`, `/* */`, and `#` in
MySQL dumps) and the `;` that ends a statement outside them. Comments are left out of the
statement text. How a backslash inside a quote behaves depends on the dump:

- MySQL/MariaDB escape with backslashes (`'it\\'s'`, `'C:\\\\dir'`) as well as doubled quotes;
- PostgreSQL and SQLite (standard SQL) only double quotes (`'it''s'`); a backslash is a plain
  character, except inside PostgreSQL's `E'…'` strings.

After `COPY … FROM stdin;` (pg_dump's default) the following lines up to `\\.` are data rows, not
SQL, and come out as `CopyData`. A statement growing past `MAX_STATEMENT_CHARS` (a quote that
never closes) is reported and dropped, which keeps memory bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from honer.data.readers.lines import Line

MAX_STATEMENT_CHARS = 64 * 2**20
_COPY_FROM_STDIN = re.compile(r"\s*COPY\b.*\bFROM\s+STDIN\b", re.I | re.S)
_NORMAL_MYSQL = re.compile(r"['\"`;#]|--|/\*")
_NORMAL_STANDARD = re.compile(r"['\"`;]|--|/\*")
_CLOSE_BACKSLASH = {"'": re.compile(r"\\.|'", re.S), '"': re.compile(r'\\.|"', re.S)}
_CLOSE_STANDARD = {"'": re.compile("'"), '"': re.compile('"')}
_CLOSE_BACKTICK = re.compile("`")


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement's text (comments removed) and the line it starts on."""

    text: str
    line: int
    bad_lines: tuple[tuple[int, str], ...] = ()  # (line, problem) of undecodable lines in it
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class CopyData:
    """One data line of a `COPY … FROM stdin` block, without its line ending."""

    text: str
    line: int
    problem: str | None = None


def is_copy_from_stdin(text: str) -> bool:
    return _COPY_FROM_STDIN.match(text) is not None


def _is_escape_string(text: str, quote_at: int) -> bool:
    """A PostgreSQL E'…' string: the quote follows a lone E."""
    if quote_at == 0 or text[quote_at - 1] not in "eE":
        return False
    return quote_at == 1 or not (text[quote_at - 2].isalnum() or text[quote_at - 2] == "_")


class _Splitter:
    def __init__(self, backslash_escapes: bool) -> None:
        self.backslash = backslash_escapes
        self.normal = _NORMAL_MYSQL if backslash_escapes else _NORMAL_STANDARD
        self.state: str | None = None  # None, a quote character, or "/*"
        self.closer: re.Pattern[str] | None = None
        self.quote = ""
        self.parts: list[str] = []
        self.size = 0
        self.start: int | None = None
        self.bad: list[tuple[int, str]] = []

    def add(self, piece: str, line: int) -> None:
        if not piece:
            return
        if self.start is None:
            if not piece.strip():
                return
            self.start = line
        self.parts.append(piece)
        self.size += len(piece)

    def take(self, line: int, problem: str | None = None) -> Statement:
        stmt = Statement("".join(self.parts), self.start or line, tuple(self.bad), problem)
        self.parts, self.size, self.start, self.bad = [], 0, None, []
        self.state = None
        return stmt

    def open_quote(self, text: str, at: int, quote: str) -> None:
        self.state = self.quote = quote
        if quote == "`":
            self.closer = _CLOSE_BACKTICK
        elif self.backslash or (quote == "'" and _is_escape_string(text, at)):
            self.closer = _CLOSE_BACKSLASH[quote]
        else:
            self.closer = _CLOSE_STANDARD[quote]

    def feed(self, line: Line) -> Iterator[Statement]:
        """Statements completed on this line."""
        text, number = line.text, line.number
        if line.problem:
            self.bad.append((number, line.problem))
        pos = 0
        while pos < len(text):
            if self.state is None:
                m = self.normal.search(text, pos)
                if m is None:
                    self.add(text[pos:], number)
                    break
                self.add(text[pos : m.start()], number)
                token, pos = m.group(), m.end()
                if token == ";":
                    if self.start is not None:
                        yield self.take(number)
                    else:
                        self.bad = []
                elif token in ("--", "#"):
                    self.add("\n", number)
                    break
                elif token == "/*":
                    self.state = "/*"
                    self.add(" ", number)
                else:
                    self.open_quote(text, m.start(), token)
                    self.add(token, number)
            elif self.state == "/*":
                end = text.find("*/", pos)
                if end < 0:
                    break
                self.state, pos = None, end + 2
            else:
                assert self.closer is not None
                m = self.closer.search(text, pos)
                if m is None:
                    self.add(text[pos:], number)
                    break
                end = m.end()
                if m.group()[0] == "\\":
                    self.add(text[pos:end], number)
                elif end < len(text) and text[end] == self.quote:  # a doubled quote
                    end += 1
                    self.add(text[pos:end], number)
                else:
                    self.add(text[pos:end], number)
                    self.state = None
                pos = end
        if self.size > MAX_STATEMENT_CHARS:
            yield self.take(
                number,
                f"statement longer than {MAX_STATEMENT_CHARS >> 20} MiB characters (a quote "
                "that never closes?); skipped up to here",
            )

    def finish(self, last_line: int) -> Iterator[Statement]:
        if self.start is None:
            return
        if self.state in ("'", '"', "`"):
            yield self.take(last_line, f"quote {self.quote} opened in this statement never closes")
        else:
            yield self.take(last_line)


def split_statements(
    lines: Iterable[Line], backslash_escapes: bool
) -> Iterator[Statement | CopyData]:
    """Statements (and COPY data lines) of a dump, in order."""
    splitter = _Splitter(backslash_escapes)
    in_copy = False
    last = 0
    for line in lines:
        last = line.number
        if in_copy:
            data = line.text.rstrip("\r\n")
            if data == "\\.":
                in_copy = False
            else:
                yield CopyData(data, line.number, line.problem)
            continue
        for stmt in splitter.feed(line):
            yield stmt
            if stmt.problem is None and is_copy_from_stdin(stmt.text):
                in_copy = True
        # The rest of a line after `COPY … FROM stdin;` is its line ending: nothing is lost.
    yield from splitter.finish(last)
