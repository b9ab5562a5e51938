"""Rows of SQL dumps: INSERT … VALUES statements and PostgreSQL `COPY … FROM stdin` blocks.

Statements come from `sql_split` one at a time; each INSERT's head (`INSERT INTO table (cols)`)
and each CREATE TABLE are parsed with sqlparse, the literal rows by `sql_values`. Column names
come from the INSERT's own list, else from `--columns`, else from the table's CREATE TABLE seen
earlier in the dump (mysqldump writes INSERTs without column lists). A dump with INSERTs into
several tables needs `--table`: rows of different tables do not belong in one dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from honer.curate.ingest.sql_split import CopyData, Statement, split_statements
from honer.curate.ingest.sql_values import ValuesScanner
from honer.data.readers.lines import Meter, read_lines
from honer.data.readers.records import Record
from honer.errors import DataError, HonerError

SqlEscapes = Literal["auto", "backslash", "standard"]
SNIFF_BYTES = 64 * 1024
_INSERT = re.compile(r"\s*(?:INSERT|REPLACE)\b", re.I)
_CREATE_TABLE = re.compile(
    r"\s*CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP(?:ORARY)?\s+|UNLOGGED\s+)?TABLE\b", re.I
)
_COPY = re.compile(
    r"\s*COPY\s+(?:ONLY\s+)?(?P<table>[^\s(]+)\s*(?:\((?P<cols>[^)]*)\))?\s*FROM\s+STDIN", re.I
)
_MYSQL_SIGNS = re.compile(
    rb"MySQL dump|MariaDB dump|(?:INSERT\s+(?:IGNORE\s+)?INTO|REPLACE\s+INTO|CREATE\s+TABLE"
    rb"(?:\s+IF\s+NOT\s+EXISTS)?)\s+`",
    re.I,
)
_VALUES_OR_QUOTE = re.compile(r"""[`"'\[]|\bVALUES?\b""", re.I)
_NAME_PART = re.compile(r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|[^.]+')
_CONSTRAINT_WORDS = frozenset(
    "CONSTRAINT PRIMARY KEY UNIQUE INDEX FOREIGN CHECK FULLTEXT SPATIAL EXCLUDE LIKE PERIOD".split()
)
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_COPY_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")
_INT_TYPES = frozenset(
    "INT INTEGER BIGINT SMALLINT TINYINT MEDIUMINT SERIAL BIGSERIAL SMALLSERIAL INT2 INT4 INT8".split()
)
_FLOAT_TYPES = frozenset("REAL DOUBLE FLOAT FLOAT4 FLOAT8 NUMERIC DECIMAL".split())
_BOOL_TYPES = frozenset({"BOOLEAN", "BOOL"})


def unquote(name: str) -> str:
    """An identifier without its quotes: `a``b` → a`b, "a""b" → a"b, [a] → a."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in '`"':
        return name[1:-1].replace(name[0] * 2, name[0])
    if len(name) >= 2 and name[0] == "[" and name[-1] == "]":
        return name[1:-1]
    return name


def table_names(qualified: str) -> tuple[str, str]:
    """(bare name, dotted name without quotes) of a possibly schema-qualified table."""
    parts = [unquote(p) for p in _NAME_PART.findall(qualified.strip())]
    return parts[-1], ".".join(parts)


def sniff_backslash_escapes(path: Path) -> bool:
    """Whether the dump escapes with backslashes: a MySQL/MariaDB header, or a table named
    in backticks (a backtick inside data says nothing: Markdown has them too)."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if b"PostgreSQL database dump" in head:
        return False
    return _MYSQL_SIGNS.search(head) is not None


def _leaves(sql: str) -> list[Any]:
    """sqlparse's tokens of a statement head (comments are gone already: the splitter drops them)."""
    try:
        import sqlparse
    except ImportError:
        raise HonerError(
            "reading SQL dumps needs sqlparse: pip install sqlparse (or honer[data])"
        ) from None

    return [t for t in sqlparse.parse(sql)[0].flatten() if not t.is_whitespace]


def _name_and_list(leaves: list[Any], at: int) -> tuple[str, list[list[str]] | None]:
    """From leaf `at`: the name up to `(`, and the top-level comma-separated items inside it."""
    name: list[str] = []
    while at < len(leaves) and leaves[at].value != "(":
        name.append(leaves[at].value)
        at += 1
    if at == len(leaves):
        return "".join(name), None
    items: list[list[str]] = [[]]
    depth = 0
    for leaf in leaves[at:]:
        if leaf.value == "(":
            depth += 1
            if depth == 1:
                continue
        elif leaf.value == ")":
            depth -= 1
            if depth == 0:
                break
        elif leaf.value == "," and depth == 1:
            items.append([])
            continue
        items[-1].append(leaf.value)
    return "".join(name), [item for item in items if item]


def insert_target(head: str) -> tuple[str, list[str] | None]:
    """(table, column names or None) of `INSERT [IGNORE] INTO table [(cols)]`."""
    leaves = _leaves(head)
    into = next((i for i, t in enumerate(leaves) if t.normalized == "INTO"), None)
    if into is None:
        raise ValueError("INSERT without INTO")
    name, items = _name_and_list(leaves, into + 1)
    return name, None if items is None else [unquote("".join(item)) for item in items]


def create_table_columns(sql: str) -> tuple[str, list[tuple[str, str]]] | None:
    """(table, [(column, type word)]) of a CREATE TABLE statement; None for CREATE TABLE … AS."""
    leaves = _leaves(sql)
    at = next((i for i, t in enumerate(leaves) if t.normalized == "TABLE"), None)
    if at is None:
        return None
    at += 1
    while at < len(leaves) and leaves[at].normalized in ("IF NOT EXISTS", "IF", "NOT", "EXISTS"):
        at += 1
    name, items = _name_and_list(leaves, at)
    if items is None:
        return None
    columns = [
        (unquote(item[0]), item[1].upper() if len(item) > 1 else "")
        for item in items
        if item[0].upper().split()[0] not in _CONSTRAINT_WORDS
    ]
    return name, columns


def _find_values(text: str) -> tuple[int, int] | None:
    """Where the VALUES keyword that ends the INSERT's head starts and ends."""
    quote: str | None = None
    for m in _VALUES_OR_QUOTE.finditer(text):
        token = m.group()
        if quote:
            if token == quote:
                quote = None
        elif token == "'":
            return None  # a string before VALUES: INSERT … SELECT, not literal rows
        elif token in '`"[':
            quote = "]" if token == "[" else token
        else:
            return m.start(), m.end()
    return None


def unescape_copy(field: str) -> str | None:
    """A COPY text-format field: `\\N` is NULL; backslash escapes as PostgreSQL writes them."""
    if field == "\\N":
        return None
    if "\\" not in field:
        return field

    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c[0] == "x" and len(c) > 1:
            return chr(int(c[1:], 16))
        if c[0] in "01234567":
            return chr(int(c, 8))
        return _COPY_ESCAPES.get(c, c)

    return _COPY_ESCAPE.sub(one, field)


def typed_copy_value(text: str | None, sql_type: str) -> Any:
    """A COPY field as the column's type (COPY text is untyped; INSERT literals are typed)."""
    if text is None:
        return None
    try:
        if sql_type in _INT_TYPES:
            return int(text)
        if sql_type in _FLOAT_TYPES:
            return float(text)
    except ValueError:
        return text
    if sql_type in _BOOL_TYPES and text in ("t", "f"):
        return text == "t"
    return text


class SqlRows:
    """Rows from one or more dumps, with the table/column choices of the ingest options."""

    def __init__(
        self,
        table: str | None = None,
        columns: list[str] | None = None,
        escapes: SqlEscapes = "auto",
        encoding: str = "utf-8",
    ) -> None:
        self.table = table.casefold() if table else None
        self.columns = columns
        self.escapes = escapes
        self.encoding = encoding
        self.created: dict[str, list[tuple[str, str]]] = {}  # table → [(column, type)]
        self.tables_seen: dict[str, None] = {}  # INSERT targets, in order (filtered or not)
        self.columns_used = False
        self.rows_from_table = 0

    def records(self, path: Path, meter: Meter | None = None) -> Iterator[Record]:
        backslash = (
            sniff_backslash_escapes(path) if self.escapes == "auto" else self.escapes == "backslash"
        )
        copy_columns: list[tuple[str, str]] | None = None  # inside a COPY block of the table
        lines = read_lines(path, self.encoding, meter)
        for item in split_statements(lines, backslash):
            if isinstance(item, CopyData):
                if copy_columns is not None:
                    yield self._copy_row(path, item, copy_columns)
                continue
            copy_columns = None
            where = f"{path}:{item.line}"
            if item.problem:
                yield Record(where, problem=item.problem)
            elif _INSERT.match(item.text):
                yield from self._insert(path, item, backslash)
            elif _CREATE_TABLE.match(item.text):
                created = create_table_columns(item.text)
                if created:
                    self.created[table_names(created[0])[1].casefold()] = created[1]
            elif m := _COPY.match(item.text):
                copy_columns = self._copy_columns(where, m.group("table"), m.group("cols"))

    def _wanted(self, where: str, qualified: str) -> bool:
        bare, dotted = table_names(qualified)
        self.tables_seen.setdefault(dotted, None)
        if self.table is None:
            if len(self.tables_seen) > 1:
                raise DataError(
                    f"{where}: the dump has rows for several tables "
                    f"({', '.join(self.tables_seen)}); choose one with --table."
                )
            return True
        return self.table in (bare.casefold(), dotted.casefold())

    def _columns_for(self, where: str, qualified: str, listed: list[str] | None) -> list[str]:
        if listed is not None:
            return listed
        if self.columns is not None:
            self.columns_used = True
            return self.columns
        created = self.created.get(table_names(qualified)[1].casefold())
        if created is None:
            raise DataError(
                f"{where}: INSERT into `{qualified}` names no columns and the dump has no CREATE "
                "TABLE for it before; give the names with --columns a,b,c."
            )
        return [name for name, _ in created]

    def _insert(self, path: Path, stmt: Statement, backslash: bool) -> Iterator[Record]:
        where = f"{path}:{stmt.line}"
        found = _find_values(stmt.text)
        if found is None:
            yield Record(where, problem="INSERT without literal VALUES (INSERT … SELECT or SET)")
            return
        head_end, start = found
        try:
            qualified, listed = insert_target(stmt.text[:head_end])
        except ValueError as err:
            yield Record(where, problem=str(err))
            return
        if not self._wanted(where, qualified):
            return
        columns = self._columns_for(where, qualified, listed)
        first_line = stmt.line + stmt.text.count("\n", 0, start)
        for row in ValuesScanner(stmt.text[start:], first_line, backslash).rows():
            row_where = f"{path}:{row.first_line}"
            bad = next((p for n, p in stmt.bad_lines if row.first_line <= n <= row.last_line), None)
            if bad or row.values is None:
                yield Record(row_where, problem=bad or row.problem)
            elif len(row.values) != len(columns):
                yield Record(
                    row_where,
                    problem=f"{len(row.values)} values for {len(columns)} columns "
                    f"({', '.join(columns)})",
                )
            else:
                self.rows_from_table += 1
                yield Record(row_where, dict(zip(columns, row.values, strict=True)))

    def _copy_columns(
        self, where: str, qualified: str, cols: str | None
    ) -> list[tuple[str, str]] | None:
        """(column, type) of a COPY block's table; types from its CREATE TABLE when seen."""
        if not self._wanted(where, qualified):
            return None
        listed = [unquote(c) for c in cols.split(",")] if cols else None
        names = self._columns_for(where, qualified, listed)
        types = dict(self.created.get(table_names(qualified)[1].casefold(), []))
        return [(name, types.get(name, "")) for name in names]

    def _copy_row(self, path: Path, data: CopyData, columns: list[tuple[str, str]]) -> Record:
        where = f"{path}:{data.line}"
        if data.problem:
            return Record(where, problem=data.problem)
        fields = data.text.split("\t")
        if len(fields) != len(columns):
            return Record(where, problem=f"{len(fields)} values for {len(columns)} columns")
        self.rows_from_table += 1
        row = {
            name: typed_copy_value(unescape_copy(text), sql_type)
            for (name, sql_type), text in zip(columns, fields, strict=True)
        }
        return Record(where, row)
