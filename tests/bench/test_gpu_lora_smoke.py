"""A CPU smoke run of bench/gpu_lora.py at its toy shape: the script runs end to end (honer's
QLoRA path with packing, TRL's LoRA path) and prints the figures it promises. The real run
(Llama-3-8B shapes, 4k packed rows, bf16) needs a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_gpu_lora_bench_runs_at_toy_size(tmp_path):
    args = ["--shape", "toy", "--samples", "8", "--sequence-len", "512"]
    proc = subprocess.run(
        [sys.executable, "bench/gpu_lora.py", *args, "--ways", "honer_qlora,trl_lora"],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads([x for x in proc.stdout.splitlines() if x.startswith("{")][-1])
    assert result["bench"] == "gpu_lora" and result["device"] == "cpu"
    assert result["params"] == 819_840  # the toy shape: hidden 128, 2 layers, vocab 2048
    assert result["settings"]["gradient_checkpointing"] is True
    qlora, trl = result["runs"]["honer_qlora"], result["runs"]["trl_lora"]
    for run in (qlora, trl):
        assert run["tokens_per_s"] > 0 and run["peak_memory_gb"] > 0 and run["mfu"] > 0
    assert 0 < qlora["packing_efficiency"] <= 1
    assert qlora["steps"] == qlora["rows"] < trl["steps"] == 8  # packed rows vs one per sample
