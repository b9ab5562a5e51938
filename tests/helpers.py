"""Small builders shared by tests that run whole commands on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path


def write_addition_run(tmp_path: Path, base_model: object, rows: int, extra: str = "") -> Path:
    """`d.jsonl` with `rows` alpaca rows ("Add i and 1" → "i+1") and `c.yml` training on it.

    The config sets only paths (data, `prepared/`, `out/`); `extra` adds the YAML lines a test
    needs. Returns the config path.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": f"Add {i} and 1", "output": str(i + 1)}) + "\n"
            for i in range(rows)
        )
    )
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"base_model: {base_model}\n"
        f"datasets:\n  - path: {data}\n    type: alpaca\n"
        f"dataset_prepared_path: {tmp_path / 'prepared'}\n"
        f"output_dir: {tmp_path / 'out'}\n" + extra
    )
    return cfg
