"""The quickstart's files stay in step with honer: its config validates, its data is what the
config expects, and its held-out requests never occur in training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from honer.config import load_config

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_the_quickstart_config_validates_and_names_no_machine_path() -> None:
    cfg = load_config(QUICKSTART / "config.yml")
    assert cfg.base_model == "examples/quickstart/base/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert cfg.adapter == "lora" and cfg.datasets[0].type == "chat_template"
    assert [c["type"] for c in cfg.evals.checks] == ["exact", "regex"]
    text = (QUICKSTART / "config.yml").read_text()
    assert "/root" not in text and "site-packages" not in text and "/home" not in text


def test_the_quickstart_data_is_chat_rows_with_unseen_held_out_requests(tmp_path) -> None:
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_data.py"), "--out", str(tmp_path)], check=True
    )
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    heldout = [json.loads(x) for x in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    assert (len(train), len(heldout)) == (300, 100)
    for row in train + heldout:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert row["messages"][2]["content"].startswith("SELECT ")

    def request(row):
        return row["messages"][1]["content"].lower().rstrip("?.")

    assert not {request(r) for r in heldout} & {request(r) for r in train}
    again = tmp_path / "again"
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_data.py"), "--out", str(again)], check=True
    )
    assert (again / "heldout.jsonl").read_bytes() == (tmp_path / "heldout.jsonl").read_bytes()
