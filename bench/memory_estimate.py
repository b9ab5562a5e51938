"""`honer estimate` against the measured peak of real CPU training runs.

For each case, a fresh child process loads the config, tokenizer and prepared data, records its
RSS, resets the peak counter (`/proc/self/clear_refs` ← 5), then loads the model, builds the
adapter and trains a few steps; the measured figure is VmHWM − that RSS: what the model,
optimizer and training needed. Every batch is padded to `sequence_len`, the batch the
estimate assumes. Prints one JSON line with, per case, the estimate, the measurement and their
ratio (the acceptance bound is ±15%).

    python bench/memory_estimate.py               # hidden 512, 4 layers, sequence 512, batch 8
    python bench/memory_estimate.py --size small  # what the test runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {
    # hidden, layers, vocab, sequence_len, micro_batch_size
    "small": (256, 4, 2048, 256, 8),
    "medium": (512, 4, 4096, 512, 8),
}

CASES = {
    "full_adamw": "",
    "full_adamw_checkpointing": "gradient_checkpointing: true\n",
    "lora_all_linear": "adapter: lora\nlora_target_linear: true\nlora_r: 16\n",
    "lora_attention_checkpointing": "adapter: lora\ngradient_checkpointing: true\n",
    "full_adamw_8bit": "optimizer: adamw_bnb_8bit\n",
}

CHILD = r"""
import json, sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from honer.config import load_config
from honer.data.prepare import load_or_prepare
from honer.model.adapters import build_adapter
from honer.model.load import load_model, load_tokenizer
from honer.train.trainer import train
import torch
torch.set_num_threads(1)
cfg = load_config(sys.argv[1])
tokenizer = load_tokenizer(cfg)
data = load_or_prepare(cfg, tokenizer)
import gc; gc.collect()
base = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
from torch.profiler import ProfilerActivity, profile
with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    train(cfg, model, tokenizer, data.train, None)
rss = status("VmHWM:") - base
# Live tensor bytes over time, from the profiler's allocation events: the CPU counterpart of
# torch.cuda.max_memory_allocated (no allocator caching or fragmentation in it).
events = sorted(
    (e.start_ns(), e.nbytes())
    for e in prof.profiler.kineto_results.events()
    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
)
live = peak = 0
for _, n in events:
    live += n
    peak = max(peak, live)
print(json.dumps({"tensor_peak": peak, "rss_peak": rss}))
"""


def _config(root: Path, model: Path, data: Path, size: str, extra: str) -> Path:
    _, _, _, seq, micro = SIZES[size]
    path = root / "c.yml"
    path.write_text(
        f"base_model: {model}\n"
        f"datasets:\n  - path: {data}\n    type: alpaca\n"
        f"dataset_prepared_path: {root / 'prepared'}\n"
        f"output_dir: {root / 'out'}\n"
        f"sequence_len: {seq}\nmicro_batch_size: {micro}\npad_to_sequence_len: true\n"
        "max_steps: 3\nlogging_steps: 1\n" + extra
    )
    return path


def measure(config: Path) -> dict[str, int]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size: str, cases: list[str]) -> dict:
    from honer.config import load_config
    from honer.testing import tiny_model
    from honer.train.estimate import estimate, inspect_model

    hidden, layers, vocab, _, _ = SIZES[size]
    work = Path(tempfile.mkdtemp(prefix="honer-mem-"))
    model = tiny_model(work / "model", hidden_size=hidden, num_layers=layers, vocab_size=vocab)
    data = work / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": f"Add {i} and 1", "output": str(i + 1)}) + "\n"
            for i in range(64)
        )
    )
    results = {}
    for name in cases:
        root = work / name
        root.mkdir()
        config = _config(root, model, data, size, CASES[name])
        cfg = load_config(config)
        est = estimate(cfg, *inspect_model(cfg)).peak
        measured = measure(config)
        results[name] = {
            "estimate_mb": round(est / 2**20, 1),
            "tensor_peak_mb": round(measured["tensor_peak"] / 2**20, 1),
            "rss_peak_mb": round(measured["rss_peak"] / 2**20, 1),
            "ratio": round(est / measured["tensor_peak"], 3),
        }
    return {
        "bench": "memory_estimate",
        "size": dict(
            zip(
                ("hidden", "layers", "vocab", "sequence_len", "micro_batch"),
                SIZES[size],
                strict=True,
            )
        ),
        "cases": results,
        "max_abs_error": max(abs(r["ratio"] - 1) for r in results.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="medium")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    print(json.dumps(run(args.size, args.cases.split(","))))


if __name__ == "__main__":
    main()
