"""Two CPU processes (gloo) under each engine train exactly like one process with the same global
batch, and the engine really ran: these tests catch the silent fallbacks (one process instead of
two, DDP instead of FSDP, every rank on the same batches) that a config alone would hide.

Each run is `honer train CONFIG --num-processes 2` (torchrun underneath), against a single
process with micro-batch 4 × accumulation 2; the two-process runs use micro-batch 2 × 2 × 2
ranks. LoRA dropout is 0: dropout masks come from per-rank RNG streams, so with dropout the
runs would differ by design, not by a bug.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_addition_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LORA = "adapter: lora\nlora_target_linear: true\nlora_dropout: 0.0\n"
COMMON = "gradient_accumulation_steps: 2\nmax_steps: 6\nlearning_rate: 0.001\nseed: 1\n"


def _honer(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "honer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _run(tmp: Path, model: Path, extra: str, processes: int) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    micro = 4 // processes  # the same global batch of 8 samples per optimizer step
    cfg = write_addition_run(tmp, model, 64, f"micro_batch_size: {micro}\n{COMMON}{extra}")
    args = ["train", str(cfg)] + (["--num-processes", str(processes)] if processes > 1 else [])
    proc = _honer(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "out"


def _losses(out: Path) -> list[tuple[int, float]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["kind"] == "train"]


def _logits(model_dir: Path, out: Path, adapter: bool):
    import torch
    from transformers import AutoModelForCausalLM

    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), out)
    else:
        model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        return model(torch.tensor([[1, 40, 41, 42, 43, 44]])).logits


@pytest.fixture(scope="module")
def single_lora(tiny_model_dir, tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("single"), tiny_model_dir, LORA, processes=1)


ENGINES = {
    # engine name in parallel.json, extra config, does rank 0 hold only half of the parameters?
    "ddp": ("ddp", "ddp_find_unused_parameters: true\n", False),
    "fsdp2": ("fsdp2", "fsdp: [full_shard, auto_wrap]\n", True),
    "zero2": ("deepspeed_zero2", "deepspeed: zero2\n", True),
    "zero3": ("deepspeed_zero3", "deepspeed: zero3\n", True),
}


@pytest.mark.parametrize("name", list(ENGINES))
def test_two_processes_train_like_one(name, single_lora, tiny_model_dir, tmp_path):
    engine, extra, sharded = ENGINES[name]
    out = _run(tmp_path, tiny_model_dir, LORA + extra, processes=2)

    report = json.loads((out / "parallel.json").read_text())
    assert report["engine"] == engine
    assert report["world_size"] == 2
    full = report["trainable_params"]
    assert full == json.loads((single_lora / "parallel.json").read_text())["trainable_params"]
    assert report["trainable_params_on_rank0"] == (full // 2 if sharded else full)
    if name == "ddp":  # the option reached the DDP wrapper
        assert report["find_unused_parameters"] is True

    # Same global batch and seed: the same loss at every step, each step logged once.
    ours, single = _losses(out), _losses(single_lora)
    assert [s for s, _ in ours] == list(range(1, 7))
    for (_, a), (_, b) in zip(ours, single, strict=True):
        assert abs(a - b) <= 1e-4
    # Written once, by rank 0: the same files as the single-process run, and they reload.
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single_lora.iterdir())
    diff = (_logits(tiny_model_dir, out, True) - _logits(tiny_model_dir, single_lora, True)).abs()
    assert diff.max().item() <= 1e-4


def test_zero3_full_fine_tune_saves_the_whole_model(tiny_model_dir, tmp_path):
    """ZeRO-3 holds each weight in shards; the saved model must be whole and loadable."""
    from safetensors.torch import load_file

    single = _run(tmp_path / "one", tiny_model_dir, "", processes=1)
    zero3 = _run(tmp_path / "two", tiny_model_dir, "deepspeed: zero3\n", processes=2)
    assert json.loads((zero3 / "parallel.json").read_text())["engine"] == "deepspeed_zero3"
    a, b = load_file(single / "model.safetensors"), load_file(zero3 / "model.safetensors")
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    for (_, x), (_, y) in zip(_losses(zero3), _losses(single), strict=True):
        assert abs(x - y) <= 1e-4
    diff = (_logits(tiny_model_dir, zero3, False) - _logits(tiny_model_dir, single, False)).abs()
    assert diff.max().item() <= 1e-4


def test_fsdp_sharded_checkpoints_merge_into_the_final_adapter(tiny_model_dir, tmp_path):
    """SHARDED_STATE_DICT checkpoints hold one shard per rank; the run's final output is whole
    anyway, and `honer merge-sharded-fsdp-weights` turns a checkpoint into the same adapter."""
    from safetensors.torch import load_file

    extra = "fsdp: full_shard auto_wrap\nfsdp_config:\n  fsdp_state_dict_type: SHARDED_STATE_DICT\n"
    out = _run(tmp_path, tiny_model_dir, LORA + extra, processes=2)
    shards = sorted(p.name for p in (out / "checkpoint-6" / "pytorch_model_fsdp_0").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    proc = _honer("merge-sharded-fsdp-weights", str(out / "checkpoint-6"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = out / "checkpoint-6" / "merged"
    assert sorted(p.name for p in merged.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    a, b = (
        load_file(merged / "adapter_model.safetensors"),
        load_file(out / "adapter_model.safetensors"),
    )
    assert sorted(a) == sorted(b)
    assert all((a[k] == b[k]).all() for k in a)
    bad = _honer("merge-sharded-fsdp-weights", str(tmp_path))
    assert bad.returncode == 2
    assert "no FSDP sharded checkpoint here" in bad.stderr


BARRIER_CHILD = """
import os, sys, time
from pathlib import Path
from honer.config import config_from_dict
from honer.train import parallel
cfg = config_from_dict({"base_model": "m", "datasets": [{"path": "d.jsonl", "type": "alpaca"}]})
marker = Path(sys.argv[1])
with parallel.main_process_first(cfg):
    if parallel.is_main_process():
        time.sleep(3)  # rank 0 "tokenizes" slowly
        marker.write_text("cache")
    else:
        print("rank1 saw", marker.read_text() if marker.exists() else "nothing")
"""


def test_other_ranks_wait_for_rank_0_to_prepare_the_data(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(BARRIER_CHILD)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(script),
            str(tmp_path / "marker"),
        ],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank1 saw cache" in proc.stdout


def test_packed_ddp_run_resumes_exactly(tiny_model_dir, tmp_path):
    """Two ranks, packed rows, a checkpoint every 2 steps: resuming from checkpoint-4 (its
    optimizer, schedule, RNG and data position) ends with the uninterrupted run's adapter."""
    import shutil

    from safetensors.torch import load_file

    extra = LORA + "sample_packing: true\nsequence_len: 64\nsave_steps: 2\n"
    out = _run(tmp_path, tiny_model_dir, extra, processes=2)
    whole = load_file(out / "adapter_model.safetensors")
    whole_losses = _losses(out)
    shutil.rmtree(out / "checkpoint-6")
    proc = _honer("train", str(tmp_path / "c.yml"), "--num-processes", "2", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout and "checkpoint-4" in proc.stdout
    resumed = load_file(out / "adapter_model.safetensors")
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) <= 1e-6
    assert _losses(out) == whole_losses  # steps 5 and 6 logged again, identically
