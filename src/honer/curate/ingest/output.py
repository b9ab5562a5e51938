"""Write rows as JSON Lines atomically: to a temporary sibling, renamed into place at the end.

A crash, an interrupt or a data error midway leaves the previous file (or none), never half a
file that a later step would trust. Writing is incremental, so memory does not grow with output.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any


def _plain(value: Any) -> Any:
    """JSON for the values Parquet and SQL readers can produce beyond JSON's own types."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def to_json_line(row: Any) -> str:
    """One JSON line; lone surrogates (legal in JSON escapes, not in UTF-8) stay escaped."""
    line = json.dumps(row, ensure_ascii=False, default=_plain)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row, ensure_ascii=True, default=_plain)
    return line + "\n"


class JsonlWriter:
    """Rows to `path` as JSON Lines; `commit()` (or leaving the `with` block) renames into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self._file = open(self._tmp, "x", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115

    def write(self, row: Any) -> None:
        self._file.write(to_json_line(row))
        self.rows += 1

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
