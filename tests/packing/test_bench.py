"""A smoke run of bench/throughput.py: a tiny model and 40 samples, packed vs TRL padded.

The full run (2,000 samples, hidden 256, 4 layers) is the benchmark; this checks the script runs
end to end and prints one JSON line with the figures it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_bench_smoke() -> None:
    args = ["--samples", "40", "--sequence-len", "256", "--hidden", "64", "--layers", "2"]
    proc = subprocess.run(
        [sys.executable, "bench/throughput.py", *args, "--only", "honer_packed,trl_padded"],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["bench"] == "throughput"
    assert result["settings"]["precision"] == "fp32"
    assert result["settings"]["gradient_checkpointing"] is False
    packed, trl = result["runs"]["honer_packed"], result["runs"]["trl_padded"]
    assert packed["trained_tokens"] == trl["trained_tokens"] > 0
    for run in (packed, trl):
        assert run["trained_tokens_per_s"] > 0 and run["wall_s"] > 0 and run["peak_rss_mb"] > 0
    assert 0 < packed["packing_efficiency"] <= 1
    assert result["ratios"]["packed_vs_trl"] > 0
    assert result["ratios"]["packed_vs_padded"] is None  # not run here
