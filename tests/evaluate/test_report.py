"""The report is rebuilt from the files of a run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from honer.errors import HonerError
from honer.evaluate.report import build_report


def test_report_from_metrics(tmp_path: Path) -> None:
    lines = [{"step": s, "loss": 0.8 + 2 * math.exp(-s / 25), "lr": 1e-3} for s in range(1, 201)]
    lines += [{"step": s, "eval_loss": 0.85 + 2 * math.exp(-s / 25)} for s in range(20, 201, 20)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    (tmp_path / "data_stats.json").write_text(
        json.dumps(
            {"train": {"samples": 9, "tokens": 90, "trained_tokens": 30, "length": {"p50": 10}}}
        )
    )
    (tmp_path / "eval_table.jsonl").write_text(
        json.dumps({"step": 20, "prompt": "<2+2>", "expected": "4", "generated": "4"}) + "\n"
    )
    page = build_report(tmp_path).read_text()
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<b>well-fit</b>" in page
    assert "data:image/png;base64," in page  # self-contained: the plot is inlined
    assert "&lt;2+2&gt;" in page  # generations are escaped
    assert "<td>30</td>" in page  # trained tokens
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch


def test_report_of_missing_folder_is_explained(tmp_path: Path) -> None:
    with pytest.raises(HonerError, match="no such run folder"):
        build_report(tmp_path / "nope")
