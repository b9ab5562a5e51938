"""A packed run killed mid-checkpoint and resumed ends exactly as an uninterrupted one: the
packed rows are the same for the seed, so skipping the trained batches restores the data position."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packing.resume_child import run

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _child(model_dir: Path, out: Path, kill: int, resume: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = [str(model_dir), str(out), str(kill), "1" if resume else "0"]
    return subprocess.run(
        [sys.executable, "-m", "tests.packing.resume_child", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _train_lines(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def test_packed_run_resumes_exactly(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    baseline = tmp_path / "baseline"
    _, result = run(tiny_model_dir, baseline)
    assert result.plan.steps_per_epoch < 14  # the run crosses epoch boundaries

    killed = tmp_path / "killed"
    proc = _child(tiny_model_dir, killed, kill=12, resume=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    proc = _child(tiny_model_dir, killed, kill=0, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    base_lines, resumed_lines = _train_lines(baseline), _train_lines(killed)
    assert [r["step"] for r in resumed_lines] == list(range(1, 15))
    for a, b in zip(base_lines, resumed_lines, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), a["step"]
    expected = load_file(baseline / "adapter_model.safetensors")
    got = load_file(killed / "adapter_model.safetensors")
    assert max(float((expected[k] - got[k]).abs().max()) for k in expected) <= 1e-6
