"""Reading local data: every file type, folders, and malformed rows named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honer.config.schema import DatasetConfig
from honer.data.sources import content_id, load_rows
from honer.errors import DataError

ROWS = [
    {"instruction": "a", "output": "1"},
    {"instruction": "b", "input": "x", "output": "2"},
]


def entry(path: Path, **kw) -> DatasetConfig:
    return DatasetConfig(path=str(path), type="alpaca", **kw)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_keeps_keys_of_every_row(tmp_path: Path) -> None:
    raw = load_rows(entry(write_jsonl(tmp_path / "d.jsonl", ROWS)))
    assert raw.dataset.to_list() == [
        {"instruction": "a", "output": "1", "input": None},
        {"instruction": "b", "output": "2", "input": "x"},
    ]


def test_json_list_and_field(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "b.json").write_text(json.dumps({"data": ROWS}))
    assert len(load_rows(entry(tmp_path / "a.json")).dataset) == 2
    assert len(load_rows(entry(tmp_path / "b.json", field="data")).dataset) == 2


def test_csv_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame(ROWS).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(ROWS).to_parquet(tmp_path / "d.parquet")
    csv_rows = load_rows(entry(tmp_path / "d.csv")).dataset.to_list()
    assert [r["instruction"] for r in csv_rows] == ["a", "b"]
    assert load_rows(entry(tmp_path / "d.parquet")).dataset["output"] == ["1", "2"]


def test_folder_of_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "part1.jsonl", ROWS)
    write_jsonl(folder / "part2.jsonl", ROWS[:1])
    (folder / "notes.txt").write_text("not data")
    assert load_rows(entry(folder)).dataset["instruction"] == ["a", "b", "a"]


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder holds no"):
        load_rows(entry(tmp_path / "empty"))


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "1"}\n\n{"instruction": "b", oops}\n')
    with pytest.raises(DataError) as info:
        load_rows(entry(path))
    assert str(info.value).startswith(f"{path}:3: invalid JSON")
    assert "skip_bad_rows: true" in str(info.value)


def test_skip_bad_rows_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "1"}\n[1, 2]\nnot json\n')
    raw = load_rows(entry(path), skip_bad_rows=True)
    assert len(raw.dataset) == 1
    assert raw.skipped == [
        f"{path}:2: a line must hold one JSON object",
        f"{path}:3: invalid JSON: Expecting value (column 1)",
    ]


def test_csv_row_with_extra_cells(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("instruction,output\na,1\nb,2,extra\n")
    with pytest.raises(DataError, match=r"d.csv:3: 3 cells, the header has 2"):
        load_rows(entry(path))


def test_column_with_mixed_types_is_explained(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"output": "1"}, {"output": {"a": 1}}])
    with pytest.raises(DataError, match="rows disagree on a column's type"):
        load_rows(entry(path))


def test_unknown_extension_needs_ds_type(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    path = write_jsonl(folder / "rows.txt", ROWS)
    with pytest.raises(
        DataError, match="cannot read `.txt` files as rows; .* Or set the entry's `ds_type`"
    ):
        load_rows(entry(path))
    assert len(load_rows(entry(path, ds_type="jsonl")).dataset) == 2


def test_content_id_follows_bytes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    before = content_id(entry(path))
    assert content_id(entry(path)) == before
    write_jsonl(path, ROWS[:1])
    assert content_id(entry(path)) != before


def test_missing_hub_dataset_offline_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no-such-user/no-such-dataset"):
        load_rows(DatasetConfig(path="no-such-user/no-such-dataset", type="alpaca"))


def test_training_reads_every_file_kind_the_data_tools_read(tmp_path: Path) -> None:
    """One row reader: .ndjson and .tsv (which `honer data` always read) train too, and a UTF-8
    byte-order mark is read, not refused."""
    (tmp_path / "a.ndjson").write_text(json.dumps({"text": "one"}) + "\n")
    (tmp_path / "b.tsv").write_text("text\tlabel\ntwo\tx\n")
    (tmp_path / "c.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "three"}).encode())
    for name, want in (("a.ndjson", "one"), ("b.tsv", "two"), ("c.jsonl", "three")):
        raw = load_rows(DatasetConfig(path=str(tmp_path / name), type="completion"))
        assert raw.dataset["text"] == [want]
