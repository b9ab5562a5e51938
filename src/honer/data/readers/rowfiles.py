"""Stream the rows of the files training datasets accept: JSON Lines, JSON lists, CSV/TSV, Parquet.

Training datasets (`honer.data.sources`) and `honer data clean|dedup|stats|ingest` read here,
so every command accepts what `datasets: [{path}]` accepts and the commands chain. Rows are
yielded one at a time (Parquet in record batches), never collected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from honer.data.readers.csvrows import iter_csv
from honer.data.readers.jsonarray import iter_json_array
from honer.data.readers.lines import Meter, read_lines
from honer.data.readers.records import Record
from honer.errors import DataError

ROW_FILE_KINDS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
PARQUET_BATCH_ROWS = 1024


def row_file_kind(path: Path) -> str:
    kind = ROW_FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: cannot read `{path.suffix}` files as rows; use "
            f"{', '.join(ROW_FILE_KINDS)} (or `honer data ingest` for HTML, SQL and text)."
        )
    return kind


def iter_row_file(
    path: Path, encoding: str = "utf-8", meter: Meter | None = None, kind: str | None = None
) -> Iterator[Record]:
    """Every row of a data file, in order; unreadable rows come back as problems. `kind`
    (jsonl, json, csv, tsv, parquet) overrides what the file's suffix says."""
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    kind = kind or row_file_kind(path)
    if kind == "jsonl":
        return _jsonl(path, encoding, meter)
    if kind == "json":
        return _json(path, encoding, meter)
    if kind == "parquet":
        return _parquet(path, meter)
    return iter_csv(path, "\t" if kind == "tsv" else ",", encoding, meter)


def _jsonl(path: Path, encoding: str, meter: Meter | None) -> Iterator[Record]:
    for line in read_lines(path, encoding, meter):
        where = f"{path}:{line.number}"
        if line.problem:
            yield Record(where, problem=line.problem)
            continue
        if not line.text.strip():
            continue
        try:
            row = json.loads(line.text)
        except json.JSONDecodeError as err:
            yield Record(where, problem=f"invalid JSON: {err.msg} (column {err.colno})")
            continue
        if isinstance(row, dict):
            yield Record(where, row)
        else:
            yield Record(where, problem="a line must hold one JSON object")


def _json(path: Path, encoding: str, meter: Meter | None) -> Iterator[Record]:
    for line, item in iter_json_array(path, encoding, meter):
        where = f"{path}:{line}"
        if isinstance(item, dict):
            yield Record(where, item)
        else:
            yield Record(where, problem="list items must be JSON objects")


def _parquet(path: Path, meter: Meter | None) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        total = max(pf.metadata.num_rows, 1)
        size = path.stat().st_size
        index = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                index += 1
                yield Record(f"{path} row {index}", row)
            if meter:
                meter(size * batch.num_rows // total)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot read parquet ({err})") from None
