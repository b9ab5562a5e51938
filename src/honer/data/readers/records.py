"""What readers yield (`Record`) and how a data command counts what it did (`Tally`).

Every reader streams `Record`s: a row with the place it came from (`file:line`, `file row N`),
or, for a record that cannot be read, the place and the reason. Bad records are never fatal:
the command skips them, counts them by reason and keeps a few examples for its summary table,
so one broken line in a gigabyte of data costs one row, not the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

EXAMPLES_PER_REASON = 3


@dataclass(frozen=True, slots=True)
class Record:
    """One input record: `row` when it could be read, else `problem` says why not."""

    where: str
    row: dict[str, Any] | None = None
    problem: str | None = None
    reason: str = "malformed"  # the summary-table category of `problem`


@dataclass
class Tally:
    """Rows in, kept, and rejected by reason, with the first few places of each reason."""

    rows_in: int = 0
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def keep(self) -> None:
        self.rows_in += 1
        self.kept += 1

    def reject(self, reason: str, where: str, detail: str = "") -> None:
        self.rows_in += 1
        self.rejected[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(f"{where}: {detail}" if detail else where)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())
