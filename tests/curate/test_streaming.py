"""A small run of bench/ingest_memory.py: every kind streams through ingest and clean.

The full run (~500 MB per kind) is the benchmark; here 2 MB per kind checks that the script
works and that memory stays far below the 500 MB limit.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_bench_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "bench/ingest_memory.py", "--mb", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["kind"] for r in report["results"]] == ["csv", "sql", "html", "text"]
    for r in report["results"]:
        assert r["under_limit"] and r["rows_kept"] > 1000, r
        assert max(r["ingest_peak_rss_mb"], r["clean_peak_rss_mb"]) < 150, r
