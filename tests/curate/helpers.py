"""Shared helpers of the data-tool tests: fixture paths and reading JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic writer would leave behind after a crash."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
