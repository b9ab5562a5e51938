"""Run one benchmark way in a fresh Python process and read back its figures and peak RSS.

Shared by `throughput.py` and `gpu_lora.py`. Each way runs in its own process so that its peak
RSS is its own: the `ru_maxrss` that `os.wait4` returns for that child. The child's output goes
to temporary files rather than pipes, so nothing reaps the child before `wait4` does (with
`subprocess.run`/`communicate` the rusage would be lost).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

RESULT_PREFIX = "RESULT "


def print_result(figures: dict[str, Any]) -> None:
    """The child's last word: one `RESULT {...}` line that `run_child` picks out of stdout."""
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def run_child(script: str, opts: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run `python script --child <opts as JSON>`; return its RESULT figures and its peak RSS
    in KiB (Linux `ru_maxrss`). A failed child stops the benchmark with its stderr's tail."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, script, "--child", json.dumps(opts)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it has been reaped
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{opts.get('way', script)} failed:\n{stderr[-3000:]}")
    lines = [x for x in stdout.splitlines() if x.startswith(RESULT_PREFIX)]
    if not lines:
        raise SystemExit(f"{opts.get('way', script)} printed no result:\n{stdout[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :]), usage.ru_maxrss


def trl_padded_config(opts: dict[str, Any], **overrides: Any) -> Any:
    """TRL `SFTConfig` for the "TRL with its default per-batch padding" way of both benches:
    one epoch, constant LR 1e-4, no packing and no padding-free batches, no saving, no
    reporting; precision from `opts["bf16"]`. `overrides` holds what a bench sets differently
    (batch size, gradient checkpointing, logging interval, optimizer)."""
    from trl import SFTConfig

    settings: dict[str, Any] = {
        "output_dir": opts["out"],
        "num_train_epochs": 1,
        "learning_rate": 1e-4,
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "report_to": "none",
        "seed": opts["seed"],
        "max_length": opts["sequence_len"],
        "packing": False,
        "padding_free": False,
        "bf16": opts["bf16"],
        "fp16": False,
        "disable_tqdm": True,
        "use_cpu": opts["device"] == "cpu",
    }
    return SFTConfig(**{**settings, **overrides})
