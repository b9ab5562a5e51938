"""stats: exact counts and histograms; trained tokens equal what preprocessing trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honer.curate.stats import Lengths, dataset_stats, write_histogram_png
from honer.errors import DataError
from tests.curate.helpers import FIXTURES


def test_rows_fields_lengths_and_duplicates(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"text": "abcd", "n": 1}\n{"text": "ABCD ", "n": 1}\n{"text": "xy", "n": null}\nbad\n'
    )
    stats = dataset_stats(src)
    assert (stats.rows, stats.malformed, stats.duplicates) == (3, 1, 1)
    assert stats.malformed_examples == [f"{src}:4: invalid JSON: Expecting value (column 1)"]
    assert {k: dict(v) for k, v in stats.fields.items()} == {
        "text": {"str": 3},
        "n": {"int": 2, "NoneType": 1},
    }
    assert stats.chars.summary() == {
        "count": 3,
        "min": 2,
        "mean": 3.7,
        "p50": 4,
        "p90": 5,
        "p99": 5,
        "max": 5,
    }
    assert stats.format is None


def test_histogram_bins() -> None:
    lengths = Lengths()
    lengths.values.extend([1, 2, 2, 10, 25])
    assert lengths.histogram(bins=5) == [
        (1, 5, 3),
        (6, 10, 1),
        (11, 15, 0),
        (16, 20, 0),
        (21, 25, 1),
    ]
    assert Lengths().histogram() == []


def test_trained_tokens_match_preprocessing(tmp_path: Path, tiny_model_dir: Path) -> None:
    from honer.config import load_config
    from honer.data.prepare import prepare
    from honer.model.load import load_tokenizer

    data = tmp_path / "alpaca.jsonl"
    rows = [
        {"instruction": f"Add {i} and {i}", "output": str(2 * i) * (1 + i % 7)} for i in range(40)
    ]
    rows.append({"instruction": "no output"})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg_path = tmp_path / "c.yml"
    cfg_path.write_text(
        f"base_model: {tiny_model_dir}\ndatasets:\n  - path: {data}\n    type: alpaca\n"
        f"sequence_len: 42\nskip_bad_rows: true\ndataset_prepared_path: {tmp_path / 'prep'}\n"
    )
    stats = dataset_stats(data, cfg_path)
    f = stats.format
    assert f is not None and (f.entry, f.type, f.samples) == ("datasets[0]", "alpaca", 40)
    assert dict(f.rejected) == {"column `output` is missing": 1}
    prepared = prepare(load_config(cfg_path), load_tokenizer(load_config(cfg_path)))
    train = prepared.stats["train"]
    assert f.trained_tokens == train["trained_tokens"]
    assert f.samples - f.dropped == train["samples"]
    assert f.dropped > 0  # some samples are longer than 42 tokens

    png = tmp_path / "h.png"
    write_histogram_png(stats, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_entry_choice(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "base_model: m\ndatasets:\n  - path: a.jsonl\n    type: alpaca\n"
        "  - path: b.jsonl\n    type: completion\n"
    )
    with pytest.raises(
        DataError, match="not one of the config's datasets; .* --entry N \\(0..1\\)"
    ):
        dataset_stats(FIXTURES / "mixed.jsonl", cfg)
    with pytest.raises(DataError, match="--entry 5: the config has datasets\\[0..1\\]"):
        dataset_stats(FIXTURES / "mixed.jsonl", cfg, entry=5)
    with pytest.raises(DataError, match="give --config too"):
        dataset_stats(FIXTURES / "mixed.jsonl", None, entry=0)
