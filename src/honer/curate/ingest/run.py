"""`honer data ingest`: raw sources (HTML, CSV/TSV/Parquet, SQL dumps, text, Markdown, JSON)
to one JSON Lines file of rows, streamed record by record.

Each source kind has a reader that yields `Record`s; rows pass through the `--column` /
`--template` mapping and are written as they come, so memory does not grow with the input.
Unreadable records are counted by reason and skipped (optionally written to `--rejects`),
never fatal. HTML, text and Markdown give `{"text": …}` rows (HTML adds `title`): one per
document, or one per paragraph with `--unit paragraph`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from honer.curate.ingest.html import HtmlText
from honer.curate.ingest.mapping import Mapping
from honer.curate.ingest.output import JsonlWriter
from honer.curate.ingest.sql_rows import SqlEscapes, SqlRows
from honer.curate.ingest.text import text_paragraphs
from honer.data.readers.lines import Meter, check_encoding
from honer.data.readers.records import Record, Tally
from honer.data.readers.rowfiles import iter_row_file
from honer.errors import DataError

SOURCE_KINDS = {
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".sql": "sql",
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
DOCUMENT_KINDS = frozenset({"html", "text", "markdown"})
MAX_DOCUMENT_CHARS = 32 * 2**20
Unit = Literal["document", "paragraph"]


@dataclass(frozen=True)
class IngestOptions:
    """What `honer data ingest` was asked to do beyond reading its sources."""

    columns: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    table: str | None = None
    sql_columns: tuple[str, ...] | None = None
    sql_escapes: SqlEscapes | None = None  # None: detect per dump
    unit: Unit | None = None  # None: one record per document
    add_source: bool = False
    encoding: str | None = None  # None: UTF-8 (HTML: unless the page declares its own)


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str


def find_sources(paths: list[Path]) -> list[Source]:
    """Files to read: the files named, and the known files inside named folders (sorted)."""
    found: dict[Path, Source] = {}
    for path in paths:
        if path.is_dir():
            inside = sorted(
                f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in SOURCE_KINDS
            )
            if not inside:
                raise DataError(f"{path}: folder holds no {', '.join(SOURCE_KINDS)} files.")
            for f in inside:
                found.setdefault(f.resolve(), Source(f, SOURCE_KINDS[f.suffix.lower()]))
        elif path.is_file():
            kind = SOURCE_KINDS.get(path.suffix.lower())
            if kind is None:
                raise DataError(
                    f"{path}: cannot ingest `{path.suffix or 'extension-less'}` files; known: "
                    f"{', '.join(SOURCE_KINDS)}."
                )
            found.setdefault(path.resolve(), Source(path, kind))
        else:
            raise DataError(f"{path}: no such file or folder.")
    return list(found.values())


def _check_options(sources: list[Source], options: IngestOptions, out: Path) -> None:
    kinds = {s.kind for s in sources}
    sql_flags = [
        name
        for name, value in (
            ("--table", options.table),
            ("--columns", options.sql_columns),
            ("--sql-escapes", options.sql_escapes),
        )
        if value is not None
    ]
    if sql_flags and "sql" not in kinds:
        raise DataError(f"{', '.join(sql_flags)}: only apply to SQL dumps, and no source is .sql.")
    if options.encoding is not None and kinds <= {"parquet"}:
        raise DataError("--encoding: Parquet files carry their own encoding; no source is text.")
    if options.unit is not None and not kinds & DOCUMENT_KINDS:
        raise DataError("--unit: only applies to HTML, text and Markdown sources, and none is.")
    if out.suffix.lower() != ".jsonl":
        raise DataError(f"--out {out}: honer data writes JSON Lines; name the file *.jsonl.")
    if out.resolve() in {s.path.resolve() for s in sources}:
        raise DataError(f"--out {out}: is also a source; write to another file.")


def ingest(
    paths: list[Path],
    out: Path,
    options: IngestOptions,
    rejects: Path | None = None,
    meter: Meter | None = None,
) -> Tally:
    """Read every source, write the kept rows to `out` (and bad records to `rejects`)."""
    sources = find_sources(paths)
    _check_options(sources, options, out)
    encoding = check_encoding(options.encoding or "utf-8")
    mapping = Mapping.from_options(list(options.columns), list(options.templates))
    sql = SqlRows(
        options.table,
        list(options.sql_columns) if options.sql_columns is not None else None,
        options.sql_escapes or "auto",
        encoding,
    )
    tally = Tally()
    with JsonlWriter(out) as writer, JsonlWriter(rejects) if rejects else nullcontext() as bad:
        for source in sources:
            for record in _records(source, options, encoding, sql, meter):
                row = record.row
                problem, reason = record.problem, record.reason
                if row is not None:
                    row, problem = mapping.apply(row)
                    reason = "missing column"
                if row is None:
                    tally.reject(reason, record.where, problem or "")
                    if bad is not None:
                        bad.write({"source": record.where, "reason": reason, "detail": problem})
                    continue
                if options.add_source:
                    row["source"] = record.where
                writer.write(row)
                tally.keep()
        _check_sql_use(sql, options, sources, tally)
    return tally


def _check_sql_use(
    sql: SqlRows, options: IngestOptions, sources: list[Source], tally: Tally
) -> None:
    if not any(s.kind == "sql" for s in sources):
        return
    if options.table and not sql.rows_from_table:
        seen = ", ".join(sql.tables_seen) or "none"
        raise DataError(
            f"--table {options.table}: no rows for it in the dump (tables with rows: {seen})."
        )
    if options.sql_columns is not None and not sql.columns_used:
        tally.notes.append("--columns was not needed: every INSERT/COPY names its columns.")


def _records(
    source: Source, options: IngestOptions, encoding: str, sql: SqlRows, meter: Meter | None
) -> Iterator[Record]:
    path, kind = source.path, source.kind
    if kind == "sql":
        return sql.records(path, meter)
    if kind in DOCUMENT_KINDS:
        paragraph = options.unit == "paragraph"
        if kind == "html":
            return _html(path, paragraph, encoding, meter)
        return _text(path, kind == "markdown", paragraph, encoding, meter)
    return iter_row_file(path, encoding, meter)


def _html(path: Path, paragraph: bool, encoding: str, meter: Meter | None) -> Iterator[Record]:
    doc = HtmlText(path, encoding, meter)
    if paragraph:
        for n, text in enumerate(doc.paragraphs(), start=1):
            yield Record(f"{path} paragraph {n}", {"text": text})
        return
    collected = _Document(str(path))
    for text in doc.paragraphs():
        collected.add(text)
    yield collected.record({"title": doc.title} if doc.title else {})


def _text(
    path: Path, markdown: bool, paragraph: bool, encoding: str, meter: Meter | None
) -> Iterator[Record]:
    paragraphs = text_paragraphs(path, markdown, encoding, meter)
    if paragraph:
        for p in paragraphs:
            where = f"{path}:{p.first_line}"
            yield Record(where, problem=p.problem) if p.problem else Record(where, {"text": p.text})
        return
    collected = _Document(str(path))
    for p in paragraphs:
        collected.add(p.text, p.problem)
    yield collected.record({})


class _Document:
    """Paragraphs of one document, joined by blank lines, within `MAX_DOCUMENT_CHARS`."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.parts: list[str] = []
        self.size = 0
        self.problem: str | None = None
        self.reason = "malformed"

    def add(self, text: str, problem: str | None = None) -> None:
        if self.problem:
            return  # already rejected: read on without keeping the text
        if problem:
            self.problem, self.parts = problem, []
            return
        self.size += len(text) + 2
        if self.size > MAX_DOCUMENT_CHARS:
            self.problem = (
                f"over {MAX_DOCUMENT_CHARS >> 20} Mi characters of text; use --unit paragraph"
            )
            self.reason, self.parts = "too large", []
            return
        self.parts.append(text)

    def record(self, extra: dict[str, str]) -> Record:
        if self.problem:
            return Record(self.where, problem=self.problem, reason=self.reason)
        if not self.parts:
            return Record(self.where, problem="no text in the document", reason="empty")
        return Record(self.where, {"text": "\n\n".join(self.parts), **extra})
