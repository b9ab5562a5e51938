"""Checkpoints are atomic, and a killed run resumed from its checkpoint ends exactly as an
uninterrupted one (weights, optimizer, schedule, RNG and data position all restored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.resume_child import run

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _child(model_dir: Path, out: Path, kill: int, resume: bool) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.train.resume_child",
            str(model_dir),
            str(out),
            str(kill),
            "1" if resume else "0",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapter_model.safetensors")


def _train_lines(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def test_sigkill_mid_checkpoint_then_resume_matches_uninterrupted(tiny_model_dir, tmp_path):
    from honer.train.checkpoint import latest_checkpoint

    baseline = tmp_path / "baseline"
    run(tiny_model_dir, baseline)

    killed = tmp_path / "killed"
    proc = _child(tiny_model_dir, killed, kill=12, resume=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # Killed while writing checkpoint-12: the half-written folder is only a staging folder,
    # and checkpoint-8 (the 2nd) is intact and the latest.
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    assert (
        killed / ".staging-checkpoint-12" / "checkpoint-12" / "adapter_model.safetensors"
    ).is_file()
    assert latest_checkpoint(killed) == killed / "checkpoint-8"
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
        assert (killed / "checkpoint-8" / name).is_file()

    proc = _child(tiny_model_dir, killed, kill=0, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(killed.glob(".staging-*"))

    base_lines, resumed_lines = _train_lines(baseline), _train_lines(killed)
    assert [r["step"] for r in resumed_lines] == list(range(1, 15))  # no step logged twice
    assert resumed_lines[-1]["loss"] == pytest.approx(base_lines[-1]["loss"], abs=1e-6)
    for a, b in zip(base_lines, resumed_lines, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), a["step"]
        assert a["lr"] == pytest.approx(b["lr"], abs=1e-12)

    expected, got = _adapter(baseline), _adapter(killed)
    assert expected.keys() == got.keys()
    worst = max(float((expected[k] - got[k]).abs().max()) for k in expected)
    assert worst <= 1e-6


def test_resume_of_a_finished_run_trains_nothing(
    tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    """The latest checkpoint is the last step: --resume must not run a step 5 of 4 and write
    over the result. With the final save interrupted, the result is rewritten from it."""
    from safetensors.torch import load_file

    import honer
    from tests.helpers import write_addition_run

    cfg = honer.load_config(
        write_addition_run(
            tmp_path,
            tiny_model_dir,
            16,
            "adapter: lora\nmax_steps: 4\nsave_steps: 2\nmicro_batch_size: 2\n",
        )
    )
    honer.train_model(cfg)
    out = tmp_path / "out"
    adapter = out / "adapter_model.safetensors"
    before = adapter.read_bytes()
    metrics = (out / "metrics.jsonl").read_text()
    run = honer.train_model(cfg, resume=True)
    assert run.global_step == 4
    assert adapter.read_bytes() == before
    assert (out / "metrics.jsonl").read_text() == metrics  # no step 5 logged
    assert "already finished (step 4 of 4): nothing to train" in capsys.readouterr().out

    # A kill during the final save: the weights and config.yml are missing.
    adapter.unlink()
    (out / "config.yml").unlink()
    honer.train_model(cfg, resume=True)
    assert "final save did not complete: the result was written again" in capsys.readouterr().out
    restored = load_file(adapter)
    last = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    assert sorted(restored) == sorted(last)
    assert all(bool((restored[k] == last[k]).all()) for k in restored)
    assert (out / "config.yml").is_file()
    assert (out / "metrics.jsonl").read_text() == metrics
