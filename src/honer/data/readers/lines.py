"""Numbered lines of a file, read as bytes and decoded one line at a time, with byte progress.

Decoding per line means an undecodable byte spoils only the record it sits in (reported with its
line) instead of stopping the file; a line longer than `MAX_LINE_BYTES` is skipped without ever
being held whole in memory. Memory stays flat however large the file is.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from honer.errors import DataError

MAX_LINE_BYTES = 64 * 2**20
Meter = Callable[[int], None]  # told how many more bytes were read, for progress bars


def check_encoding(encoding: str) -> str:
    """The codec's name; line splitting on b"\\n" needs an ASCII-compatible encoding."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"--encoding: unknown encoding `{encoding}`") from None
    if "\n".encode(name) != b"\n":
        raise DataError(
            f"--encoding: `{encoding}` is not ASCII-compatible (e.g. UTF-16); convert the file "
            "to UTF-8 first (iconv -f UTF-16 -t UTF-8)."
        )
    return name


class _Counted(io.RawIOBase):
    """A raw file that reports every read to a meter."""

    def __init__(self, raw: io.RawIOBase, meter: Meter) -> None:
        self._raw = raw
        self._meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int | None:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        if n:
            self._meter(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_bytes(path: Path, meter: Meter | None = None) -> io.BufferedReader:
    """A buffered binary reader of `path` that tells `meter` how many bytes it read."""
    if meter is None:
        return open(path, "rb", buffering=1 << 20)  # noqa: SIM115 (the caller closes it)
    return io.BufferedReader(_Counted(open(path, "rb", buffering=0), meter), 1 << 20)


@dataclass(frozen=True, slots=True)
class Line:
    """One line with its terminator; `problem` is set when the line cannot be used as it is."""

    number: int
    text: str
    problem: str | None = None


def read_lines(path: Path, encoding: str = "utf-8", meter: Meter | None = None) -> Iterator[Line]:
    """Every line of `path`, numbered from 1, with a leading byte-order mark removed."""
    with open_bytes(path, meter) as f:
        number = 0
        while raw := f.readline(MAX_LINE_BYTES):
            number += 1
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield Line(number, "\n", f"line longer than {MAX_LINE_BYTES >> 20} MiB")
                continue
            if number == 1 and raw.startswith(codecs.BOM_UTF8) and encoding == "utf-8":
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield Line(number, raw.decode(encoding))
            except UnicodeDecodeError as err:
                problem = (
                    f"not valid {encoding} (byte {raw[err.start]:#04x} at column {err.start + 1})"
                )
                yield Line(number, raw.decode(encoding, "replace"), problem)
