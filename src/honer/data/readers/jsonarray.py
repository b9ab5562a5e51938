"""The items of a top-level JSON array, decoded one at a time without loading the file.

Text is read in chunks; each item is decoded with `JSONDecoder.raw_decode` from the buffer, and
an item cut by the chunk edge is retried with a buffer twice as large (so a big item costs
linear, not quadratic, time). Unlike JSON Lines, a syntax error inside an array cannot be
skipped reliably (there is no line to resume at), so it stops the file with its line number.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from honer.data.readers.lines import Meter, open_bytes
from honer.errors import DataError

CHUNK_CHARS = 1 << 20
MAX_ITEM_CHARS = 64 * 2**20
_WHITESPACE = " \t\n\r"


class _Buffer:
    """Decoded text with a read position and the line number at that position."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def more(self, at_least: int = CHUNK_CHARS) -> bool:
        """Read more text (dropping what is consumed); False at end of file."""
        if self.eof:
            return False
        self.buf = self.buf[self.pos :]
        self.pos = 0
        chunk = self._text.read(max(at_least, CHUNK_CHARS))
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def skip_space(self) -> str:
        """The next non-space character ('' at end of file), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.advance(self.pos + 1)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""


def _maybe_cut(err: json.JSONDecodeError, buf: _Buffer) -> bool:
    """Whether the decode error may only mean the item continues past the buffer."""
    return not buf.eof and (
        err.pos >= len(buf.buf) - 1 or err.msg.startswith("Unterminated string")
    )


def iter_json_array(
    path: Path, encoding: str = "utf-8", meter: Meter | None = None
) -> Iterator[tuple[int, Any]]:
    """(line where the item starts, item) for each item of the file's top-level array."""
    decoder = json.JSONDecoder()
    with io.TextIOWrapper(open_bytes(path, meter), encoding=encoding) as text:
        buf = _Buffer(text)
        try:
            first = buf.skip_space()
            if first == "\ufeff":
                buf.advance(buf.pos + 1)
                first = buf.skip_space()
            if first != "[":
                raise DataError(
                    f"{path}:{buf.line}: expected a JSON list of objects (`[` …); for one object "
                    "per line, name the file .jsonl."
                )
            buf.advance(buf.pos + 1)
            if buf.skip_space() == "]":
                buf.advance(buf.pos + 1)
            else:
                yield from _items(path, buf, decoder)
            if buf.skip_space():
                raise DataError(f"{path}:{buf.line}: text after the end of the JSON list.")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}: not valid {encoding} near line {buf.line} ({err.reason}); JSON lists "
                "cannot skip a bad record, convert the file or use JSON Lines."
            ) from None


def _items(path: Path, buf: _Buffer, decoder: json.JSONDecoder) -> Iterator[tuple[int, Any]]:
    while True:
        if not buf.skip_space():
            raise DataError(f"{path}:{buf.line}: the JSON list is not closed with `]`.")
        while True:
            try:
                item, end = decoder.raw_decode(buf.buf, buf.pos)
                # A number cut by the buffer's edge decodes too early: read on and decode again.
                if end < len(buf.buf) or not buf.more(2 * (len(buf.buf) - buf.pos)):
                    break
            except json.JSONDecodeError as err:
                if len(buf.buf) - buf.pos > MAX_ITEM_CHARS:
                    raise DataError(
                        f"{path}:{buf.line}: an item larger than {MAX_ITEM_CHARS >> 20} MiB "
                        "characters, or an unterminated string."
                    ) from None
                if not (_maybe_cut(err, buf) and buf.more(2 * (len(buf.buf) - buf.pos))):
                    line = buf.line + buf.buf.count("\n", buf.pos, err.pos)
                    raise DataError(f"{path}:{line}: invalid JSON ({err.msg}).") from None
        yield buf.line, item
        buf.advance(end)
        sep = buf.skip_space()
        if sep == "]":
            buf.advance(buf.pos + 1)
            return
        if not sep:
            raise DataError(f"{path}:{buf.line}: the JSON list is not closed with `]`.")
        if sep != ",":
            raise DataError(f"{path}:{buf.line}: expected `,` or `]` after an item of the list.")
        buf.advance(buf.pos + 1)
