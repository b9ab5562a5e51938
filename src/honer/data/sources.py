"""Read raw rows from local files, folders of files, or Hugging Face dataset names.

Local files are parsed here rather than by `datasets.load_dataset("json", …)` so that a malformed
line is reported with its file and line number (or skipped and counted with `skip_bad_rows`), and
rows with different keys keep all of them (`Dataset.from_list` keeps only the first row's keys).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.config.schema import DatasetConfig
from honer.data.readers.rowfiles import ROW_FILE_KINDS, iter_row_file, row_file_kind
from honer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

SUFFIXES = ROW_FILE_KINDS  # .jsonl .ndjson .json .csv .tsv .parquet


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
    try:
        return row_file_kind(path)
    except DataError as err:
        raise DataError(f"{err} Or set the entry's `ds_type`.") from None


def _read_rows(path: Path, kind: str, skip: bool, skipped: list[str]) -> list[dict[str, Any]]:
    """Every row of one file through the shared reader; a bad row stops with its file:line, or
    is skipped and counted with `skip_bad_rows`."""
    rows = []
    for record in iter_row_file(path, kind=kind):
        if record.problem is not None:
            msg = f"{record.where}: {record.problem}"
            if not skip:
                raise DataError(
                    msg + " (set `skip_bad_rows: true` to skip such rows and count them)"
                )
            skipped.append(msg)
            continue
        rows.append(record.row)
    return rows


def _read_json_field(path: Path, ds: DatasetConfig) -> list[dict[str, Any]] | None:
    """A JSON object whose `field` key holds the list of rows (`field:` in the entry), or None
    when the file is a plain list (the shared reader streams those)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get(ds.field), list):
        bad = next((i for i, row in enumerate(doc[ds.field]) if not isinstance(row, dict)), None)
        if bad is not None:
            raise DataError(f"{path}: `{ds.field}` item {bad}: list items must be JSON objects.")
        return doc[ds.field]
    return None


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
        nested = _read_json_field(path, ds) if kind == "json" and ds.field else None
        rows = nested if nested is not None else _read_rows(path, kind, skip, skipped)
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
