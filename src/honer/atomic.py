"""Whole files or nothing: every output honer writes goes to a temp file in the same folder,
is flushed to disk, and is renamed onto its name (one atomic `os.replace`), so a crash or Ctrl-C
never leaves a half-written file where a finished one is expected.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_via(dest: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(temp_path)`, fsync the result, then rename it onto `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def write_bytes(dest: str | Path, data: bytes) -> Path:
    return write_via(dest, lambda tmp: Path(tmp).write_bytes(data))


def write_text(dest: str | Path, text: str) -> Path:
    return write_via(dest, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_figure(fig: Any, dest: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        return write_via(dest, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
