"""The merge's peak memory stays below one extra copy of the model (bench/merge_memory.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


def test_shard_by_shard_merge_needs_less_than_one_model_copy() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "merge_memory.py"),
            "--size",
            "medium",
            "--max-shard-size",
            "4MB",
            "--methods",
            "honer",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures))
    assert figures["base_shards"] > 1
    assert figures["honer"]["extra_over_model"] < 1.0
