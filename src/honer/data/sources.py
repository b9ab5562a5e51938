"""Read raw rows from local files, folders of files, or Hugging Face dataset names.

Local files are parsed here rather than by `datasets.load_dataset("json", …)` so that a malformed
line is reported with its file and line number (or skipped and counted with `skip_bad_rows`), and
rows with different keys keep all of them (`Dataset.from_list` keeps only the first row's keys).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.config.schema import DatasetConfig
from honer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

SUFFIXES = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class RawRows:
    """Rows of one `datasets:` entry, with the malformed rows that were skipped."""

    dataset: Dataset
    skipped: list[str] = field(default_factory=list)  # "file:line: reason"


def local_files(ds: DatasetConfig) -> list[Path] | None:
    """The local files of a dataset entry, or None when `path` is not local (a hub name)."""
    p = Path(ds.path).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(
                f"{p}: folder holds no {', '.join(SUFFIXES)} files; put the data there or fix "
                "`path`."
            )
        return files
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_kind(path: Path, ds: DatasetConfig) -> str:
    if ds.ds_type:
        return "jsonl" if ds.ds_type == "json" and path.suffix == ".jsonl" else ds.ds_type
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown file type `{path.suffix}`; use .jsonl/.json/.csv/.parquet or set "
            "`ds_type`."
        )
    return kind


def _bad(path: Path, where: str, reason: str, skip: bool, skipped: list[str]) -> None:
    msg = f"{path}:{where}: {reason}"
    if not skip:
        raise DataError(msg + " (set `skip_bad_rows: true` to skip such rows and count them)")
    skipped.append(msg)


def _read_jsonl(path: Path, skip: bool, skipped: list[str]) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8", errors="strict") as f:
        try:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    _bad(path, f"{lineno}", f"invalid JSON ({err.msg})", skip, skipped)
                    continue
                if not isinstance(row, dict):
                    _bad(path, f"{lineno}", "a line must hold one JSON object", skip, skipped)
                    continue
                rows.append(row)
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    return rows


def _read_json(path: Path, ds: DatasetConfig, skip: bool, skipped: list[str]) -> list[dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if isinstance(doc, dict) and ds.field and isinstance(doc.get(ds.field), list):
        doc = doc[ds.field]
    if not isinstance(doc, list):
        raise DataError(
            f"{path}: expected a JSON list of objects (or JSON Lines, one object per line)."
        )
    rows = []
    for i, row in enumerate(doc):
        if isinstance(row, dict):
            rows.append(row)
        else:
            _bad(path, f"item {i}", "list items must be JSON objects", skip, skipped)
    return rows


def _read_csv(path: Path, skip: bool, skipped: list[str]) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise DataError(f"{path}: CSV has no header row.")
        for row in reader:
            if None in row:  # more cells than header names
                _bad(path, f"{reader.line_num}", "more cells than header columns", skip, skipped)
                continue
            rows.append(row)
    return rows


def _rows_to_dataset(rows: list[dict[str, Any]], where: str) -> Dataset:
    import pyarrow as pa
    from datasets import Dataset

    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    columns = {k: [row.get(k) for row in rows] for k in keys}
    try:
        return Dataset(pa.Table.from_pydict(columns))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError(
            f"{where}: rows disagree on a column's type ({err}); make each column one type."
        ) from None


def _read_local(files: list[Path], ds: DatasetConfig, skip: bool) -> RawRows:
    from datasets import Dataset, concatenate_datasets

    skipped: list[str] = []
    parts = []
    for path in files:
        kind = _file_kind(path, ds)
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                parts.append(Dataset(pq.read_table(path)))
            except Exception as err:  # pyarrow raises several types for a corrupt file
                raise DataError(f"{path}: cannot read parquet ({err})") from None
            continue
        if kind == "jsonl":
            rows = _read_jsonl(path, skip, skipped)
        elif kind == "json":
            rows = _read_json(path, ds, skip, skipped)
        else:
            rows = _read_csv(path, skip, skipped)
        parts.append(_rows_to_dataset(rows, str(path)))
    try:
        data = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    except ValueError as err:
        raise DataError(f"{ds.path}: files have different columns ({err})") from None
    return RawRows(data, skipped)


def _read_hub(ds: DatasetConfig) -> RawRows:
    from datasets import load_dataset

    try:
        data = load_dataset(
            ds.path, name=ds.name, split=ds.split, data_files=ds.data_files, revision=ds.revision
        )
    except FileNotFoundError as err:
        raise DataError(
            f"{ds.path}: not a local file or folder, and not found on the Hugging Face Hub "
            f"({err}). Check the path; offline, point `path` at local files."
        ) from None
    except (ConnectionError, ValueError) as err:
        raise DataError(f"{ds.path}: cannot load the hub dataset ({err}).") from None
    return RawRows(data, [])


def load_rows(ds: DatasetConfig, skip_bad_rows: bool = False) -> RawRows:
    """All rows of one `datasets:` entry as a `datasets.Dataset`."""
    files = local_files(ds)
    raw = _read_local(files, ds, skip_bad_rows) if files is not None else _read_hub(ds)
    if len(raw.dataset) == 0:
        raise DataError(f"{ds.path}: no rows to train on (the file is empty or every row was bad).")
    return raw


def content_id(ds: DatasetConfig) -> str:
    """What identifies a dataset's content for the cache fingerprint, without parsing it.

    Local data: a hash of every file's bytes. Hub data: its name, subset, split and revision
    (pin `revision` for a cache that also notices upstream changes).
    """
    files = local_files(ds)
    if files is None:
        return f"hub:{ds.path}:{ds.name}:{ds.split}:{ds.revision}:{ds.data_files}"
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{file_sha256(path)};".encode())
    return digest.hexdigest()
