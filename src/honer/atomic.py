"""Whole files or nothing: every output honer writes goes to a temp file in the same folder,
is flushed to disk, and is renamed onto its name (one atomic `os.replace`), so a crash or Ctrl-C
never leaves a half-written file where a finished one is expected.

Folders the same way (`staged_folder`): a converted model, a prepared-data cache, a merged
model, a checkpoint is written into a temporary sibling and renamed into place; an old folder of
the same name is set aside and deleted only once the new one is there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` to disk, so a power cut cannot publish holes."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_folder(staged: Path, final: Path, old_name: str | None = None) -> None:
    """Move the complete folder `staged` to `final` in one rename; an existing `final` is
    renamed aside (to `old_name`, default a hidden sibling) and deleted only afterwards."""
    fsync_tree(staged)
    old = None
    if final.exists():
        old = final.with_name(old_name or f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(staged, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(dest: str | Path, label: str = "staging") -> Iterator[Path]:
    """An empty temporary sibling of `dest` to write into; published as `dest` when the block
    ends normally, removed when it raises. `dest` is always the whole old or the whole new one."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{label}-", dir=dest.parent))
    try:
        yield staging
        publish_folder(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
