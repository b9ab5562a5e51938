"""CSV/TSV rows, streamed, that survive broken quotes.

Python's `csv` reader in strict mode raises on a stray quote, and an unterminated quote makes it
swallow the rest of the file into one field. We feed it our own numbered lines and remember the
lines of the record being read: when a record fails, its first line is reported (and skipped),
and the lines after it are fed again, so parsing resumes on the next line. A field larger than
`FIELD_LIMIT` characters stops a runaway quote, which keeps memory bounded.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from honer.data.readers.lines import Line, Meter, read_lines
from honer.data.readers.records import Record
from honer.errors import DataError

FIELD_LIMIT = 16 * 2**20

_MESSAGES = {
    "unexpected end of data": "unterminated quoted field (a quote opened on this line never "
    "closes)",
    "',' expected after '\"'": "stray quote inside a quoted field (write a quote inside quotes "
    'as "")',
    "'\\t' expected after '\"'": "stray quote inside a quoted field (write a quote inside quotes "
    'as "")',
}


class _Feeder:
    """Lines for `csv.reader`, remembering which ones the current record took."""

    def __init__(self, lines: Iterator[Line]) -> None:
        self._lines = lines
        self._pending: deque[Line] = deque()
        self.taken: list[Line] = []

    def __iter__(self) -> _Feeder:
        return self

    def __next__(self) -> str:
        line = self._pending.popleft() if self._pending else next(self._lines)
        self.taken.append(line)
        return line.text

    def start_record(self) -> None:
        self.taken = []

    def retry_after_first(self) -> Line:
        """Give back every line of the failed record but its first, which is returned."""
        first, *rest = self.taken
        self._pending.extendleft(reversed(rest))
        self.taken = []
        return first


def _problem(err: csv.Error) -> str:
    text = str(err)
    if text.startswith("field larger than field limit"):
        return f"field longer than {FIELD_LIMIT >> 20} MiB characters (an unterminated quote?)"
    return _MESSAGES.get(text, text)


def iter_csv(
    path: Path, delimiter: str = ",", encoding: str = "utf-8", meter: Meter | None = None
) -> Iterator[Record]:
    """Rows as dicts keyed by the header; bad records come back as problems with their line."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    feeder = _Feeder(read_lines(path, encoding, meter))
    reader = csv.reader(feeder, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        feeder.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            last = feeder.taken[-1] if feeder.taken else None
            first = feeder.retry_after_first()
            problem = _problem(err)
            if last is not None and last.number != first.number and problem.startswith("stray"):
                problem = f"unterminated quoted field (the quote opened here breaks on line {last.number})"
            if header is None:
                raise DataError(
                    f"{path}:{first.number}: cannot read the header ({problem})"
                ) from None
            yield Record(f"{path}:{first.number}", problem=problem)
            continue
        first = feeder.taken[0]
        where = f"{path}:{first.number}"
        bad = next((line for line in feeder.taken if line.problem), None)
        if header is None:
            if bad:
                raise DataError(f"{path}:{bad.number}: {bad.problem}")
            header = _check_header(cells, where)
            continue
        if bad:
            yield Record(where, problem=f"line {bad.number}: {bad.problem}")
        elif not cells:
            continue  # a blank line
        elif len(cells) != len(header):
            yield Record(where, problem=f"{len(cells)} cells, the header has {len(header)}")
        else:
            yield Record(where, dict(zip(header, cells, strict=True)))
    if header is None:
        raise DataError(f"{path}: empty file (a CSV needs a header row).")


def _check_header(cells: list[str], where: str) -> list[str]:
    if not cells or not any(c.strip() for c in cells):
        raise DataError(f"{where}: the first line must be a header row naming the columns.")
    seen: set[str] = set()
    for name in cells:
        if name in seen:
            raise DataError(f"{where}: column `{name}` appears twice in the header.")
        seen.add(name)
    return cells
