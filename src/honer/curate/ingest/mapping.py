"""Turn source rows into output rows: `--column` keeps columns, `--template` builds fields.

`--template FIELD=TEXT` sets FIELD to TEXT with `{column}` replaced by the row's value, e.g.
`--template "instruction={question}" --template "output={answer}"` maps a Q&A table to Alpaca
fields; `{{` and `}}` are literal braces. Templates are checked once, before any row is read,
and a row lacking a column a template or `--column` needs is reported and skipped.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from honer.errors import DataError

_Piece = tuple[str, str | None]  # (literal text, column name or None)


def parse_template(spec: str) -> tuple[str, list[_Piece]]:
    """`FIELD=TEXT` → (FIELD, pieces); a malformed spec is an error naming the option."""
    field, sep, text = spec.partition("=")
    field = field.strip()
    if not sep or not field:
        raise DataError(f'--template `{spec}`: write FIELD=TEXT, e.g. "output={{answer}}".')
    pieces: list[_Piece] = []
    try:
        for literal, name, fmt, conversion in string.Formatter().parse(text):
            if name is not None and (fmt or conversion or not name or not name.isprintable()):
                raise DataError(
                    f"--template `{spec}`: use plain `{{column}}` placeholders (no format "
                    "specs, conversions or empty braces)."
                )
            pieces.append((literal, name))
    except ValueError as err:
        raise DataError(
            f"--template `{spec}`: {err} (write literal braces as {{{{ and }}}})."
        ) from None
    return field, pieces


@dataclass(frozen=True)
class Mapping:
    """Which columns to keep and which fields to build; empty means rows pass unchanged."""

    columns: tuple[str, ...] = ()
    templates: tuple[tuple[str, tuple[_Piece, ...]], ...] = ()

    @classmethod
    def from_options(cls, columns: list[str], templates: list[str]) -> Mapping:
        parsed = []
        for spec in templates:
            field, pieces = parse_template(spec)
            parsed.append((field, tuple(pieces)))
        return cls(tuple(columns), tuple(parsed))

    def apply(self, row: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """(output row, None), or (None, why the row cannot be mapped)."""
        if not self.columns and not self.templates:
            return row, None
        out: dict[str, Any] = {}
        for name in self.columns:
            if name not in row:
                return None, _missing(name, row)
            out[name] = row[name]
        for field, pieces in self.templates:
            parts = []
            for literal, name in pieces:
                parts.append(literal)
                if name is None:
                    continue
                if name not in row:
                    return None, _missing(name, row)
                value = row[name]
                if value is None:
                    return None, f"column `{name}` is NULL"
                parts.append(value if isinstance(value, str) else str(value))
            out[field] = "".join(parts)
        return out, None


def _missing(name: str, row: dict[str, Any]) -> str:
    return f"column `{name}` is missing (row has: {', '.join(row) or 'nothing'})"
