"""QLoRA + FSDP2: a bitsandbytes 4-bit base sharded across two CPU processes (gloo).

The packed 4-bit weights are stored in the compute dtype (`bnb_4bit_quant_storage`, float32 on
CPU), so `fully_shard` shards them like any weight. What these tests pin down, on the tiny model:

* sharding really happened: every 4-bit weight and every LoRA weight is a DTensor of which
  rank 0 holds half (`parallel.json`, written from the prepared model);
* two ranks with micro-batch 2 train like one process with micro-batch 4 (same losses, same
  adapter), with evaluations mid-run: on a CPU with AVX512-BF16 an evaluation is where
  bitsandbytes would repack the weights into its gradient-less layout (`honer.model.kbit`);
* a run resumed from a checkpoint ends with the uninterrupted run's adapter, exactly;
* the adapter is a plain QLoRA adapter: one process loads it on a uint8-stored 4-bit base and
  answers as the single-process run's adapter does;
* Axolotl's FSDP2 spelling (`fsdp_version: 2` + `fsdp_config`, no `fsdp` words) really shards,
  and its sharded checkpoints merge into the final adapter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from honer.config.load import config_from_dict
from tests.helpers import write_addition_run
from tests.train.test_distributed import _honer, _losses

QLORA = "adapter: qlora\nload_in_4bit: true\nlora_target_linear: true\nlora_dropout: 0.0\n"
# Evaluation every 2 steps (8 held-out rows): the eval-mode forwards that would repack the
# 4-bit weights come before steps 3 and 5, so training after them is compared too.
COMMON = (
    "gradient_accumulation_steps: 2\nmax_steps: 6\nlearning_rate: 0.001\nseed: 1\n"
    "val_set_size: 0.125\neval_steps: 2\nsave_steps: 2\n"
)
FSDP = "fsdp: [full_shard, auto_wrap]\n"
AXOLOTL_FSDP2 = (
    "fsdp_version: 2\nfsdp_config:\n  fsdp_state_dict_type: SHARDED_STATE_DICT\n"
    "  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer\n"
)
PROMPT = [[1, 40, 41, 42, 43, 44]]


def _run(tmp: Path, model: Path, extra: str, processes: int) -> Path:
    micro = 4 // processes  # the same global batch of 8 samples per optimizer step
    cfg = write_addition_run(tmp, model, 64, f"micro_batch_size: {micro}\n{COMMON}{QLORA}{extra}")
    args = ["train", str(cfg)] + (["--num-processes", str(processes)] if processes > 1 else [])
    proc = _honer(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "out"


def _adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapter_model.safetensors")


def _max_gap(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _evals(out: Path) -> list[int]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["kind"] == "eval"]


def _logits(config: Path, adapter: Path):
    """The logits of `adapter` on the 4-bit base, loaded in this one process as `honer
    inference` loads it (`config` decides the quantization, storage dtype included)."""
    import torch

    from honer.config.load import load_config
    from honer.infer.load import Source, load_source
    from honer.model.load import load_tokenizer

    cfg = load_config(config)
    model = load_source(cfg, Source("adapter", adapter), load_tokenizer(cfg))
    with torch.no_grad():
        return model(torch.tensor(PROMPT)).logits


@pytest.fixture(scope="module")
def single_qlora(tiny_model_dir, tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("single_qlora"), tiny_model_dir, "", processes=1)


@pytest.mark.slow
def test_qlora_fsdp2_shards_the_4bit_base_trains_like_one_process_and_resumes(
    single_qlora, tiny_model_dir, tmp_path
):
    out = _run(tmp_path, tiny_model_dir, FSDP, processes=2)

    # Really sharded: the LoRA weights and the frozen 4-bit weights alike, half on rank 0.
    report = json.loads((out / "parallel.json").read_text())
    assert report["engine"] == "fsdp2" and report["world_size"] == 2
    full = report["trainable_params"]
    assert full == json.loads((single_qlora / "parallel.json").read_text())["trainable_params"]
    assert report["trainable_params_on_rank0"] == full // 2
    quant = report["quantized_weights"]
    assert quant["storage_dtype"] == "float32"  # the compute dtype on CPU
    assert quant["layers"] == 14 and quant["sharded_layers"] == 14  # 2 layers × 7 linears
    assert quant["elements_on_rank0"] == quant["elements"] // 2
    single_quant = json.loads((single_qlora / "parallel.json").read_text())["quantized_weights"]
    assert single_quant["storage_dtype"] == "uint8" and single_quant["sharded_layers"] == 0
    # float32 storage holds 8 packed 4-bit values per element, uint8 two: the same bytes.
    assert quant["elements"] * 4 == single_quant["elements"]

    # The same global batch and seed: the same loss at every step, evaluations included.
    ours, single = _losses(out), _losses(single_qlora)
    assert [s for s, _ in ours] == list(range(1, 7))
    for (_, a), (_, b) in zip(ours, single, strict=True):
        assert abs(a - b) <= 1e-4
    assert _evals(out) == [2, 4, 6]
    whole = _adapter(out)
    assert _max_gap(whole, _adapter(single_qlora)) <= 1e-5  # measured 3.6e-7
    a, b = (json.loads((o / "adapter_config.json").read_text()) for o in (out, single_qlora))
    a["target_modules"], b["target_modules"] = (
        sorted(a["target_modules"]),
        sorted(b["target_modules"]),
    )
    assert a == b

    # Resumed from checkpoint-4 (adapter, optimizer, schedule, RNG, data position): the
    # uninterrupted run's adapter, exactly, and steps 5 and 6 logged again identically.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    shutil.rmtree(out / "checkpoint-6")
    proc = _honer("train", str(tmp_path / "c.yml"), "--num-processes", "2", "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming from" in proc.stdout and "checkpoint-4" in proc.stdout
    assert _max_gap(whole, _adapter(out)) <= 1e-6  # measured 0.0
    assert _losses(out) == ours

    # A plain QLoRA adapter: one process loads it on the usual uint8-stored base and answers as
    # the single-process run's adapter does; the float32-stored base gives the same logits.
    mine = _logits(single_qlora.parent / "c.yml", out)
    theirs = _logits(single_qlora.parent / "c.yml", single_qlora)
    assert (mine - theirs).abs().max().item() <= 1e-4
    same_bytes = _logits(tmp_path / "c.yml", out)
    assert (same_bytes - mine).abs().max().item() == 0.0


@pytest.mark.slow
def test_axolotl_fsdp2_spelling_shards_qlora_and_its_checkpoints_merge(
    single_qlora, tiny_model_dir, tmp_path
):
    """`fsdp_version: 2` + `fsdp_config` alone (no `fsdp` words) is FSDP too; with
    SHARDED_STATE_DICT each checkpoint holds the adapter's shards only (no 4-bit weights)."""
    import torch.distributed.checkpoint as dcp

    out = _run(tmp_path, tiny_model_dir, AXOLOTL_FSDP2, processes=2)
    report = json.loads((out / "parallel.json").read_text())
    assert report["engine"] == "fsdp2" and report["world_size"] == 2
    quant = report["quantized_weights"]
    assert quant["sharded_layers"] == quant["layers"] == 14
    assert quant["elements_on_rank0"] == quant["elements"] // 2
    assert _max_gap(_adapter(out), _adapter(single_qlora)) <= 1e-5

    shards = out / "checkpoint-6" / "pytorch_model_fsdp_0"
    saved = dcp.FileSystemReader(str(shards)).read_metadata().state_dict_metadata
    assert saved and all("lora_" in key for key in saved)
    proc = _honer("merge-sharded-fsdp-weights", str(out / "checkpoint-6"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _max_gap(_adapter(out / "checkpoint-6" / "merged"), _adapter(out)) == 0.0


def _cfg(**extra):
    return config_from_dict(
        {"base_model": "m", "datasets": [{"path": "d.jsonl", "type": "alpaca"}], **extra}
    )


def test_quant_storage_is_the_compute_dtype_under_fsdp_and_uint8_otherwise():
    import torch

    from honer.model.load import quant_storage_dtype

    qlora = {"adapter": "qlora", "load_in_4bit": True}
    assert quant_storage_dtype(_cfg(**qlora), torch.float32) == torch.uint8
    fsdp = _cfg(**qlora, fsdp=["full_shard", "auto_wrap"])
    assert quant_storage_dtype(fsdp, torch.float32) == torch.float32
    assert quant_storage_dtype(fsdp, torch.bfloat16) == torch.bfloat16
    axolotl = _cfg(**qlora, fsdp_version=2, fsdp_config={"fsdp_reshard_after_forward": True})
    assert quant_storage_dtype(axolotl, torch.bfloat16) == torch.bfloat16
    chosen = _cfg(
        **qlora, fsdp=["full_shard"], bnb_config_kwargs={"bnb_4bit_quant_storage": "float32"}
    )
    assert quant_storage_dtype(chosen, torch.bfloat16) == torch.float32


def test_estimate_splits_the_packed_4bit_weights_and_keeps_the_loading_peak():
    from honer.train.estimate import estimate, weight_parts
    from tests.train.test_estimate import BERT_PARAMS, SHAPE, _tensors

    lora = [8 * 768] * 24
    qlora = {"adapter": "qlora", "load_in_4bit": True}
    one = dict(estimate(_cfg(**qlora), SHAPE, _tensors(lora)).rows)
    cfg = _cfg(**qlora, fsdp=["full_shard", "auto_wrap"])
    parts = weight_parts(cfg, _tensors(lora), sum(lora))
    assert parts.packed == 84_934_656 / 2  # half a byte per weight
    assert parts.dense == (BERT_PARAMS - 84_934_656) * 4  # peft upcasts the rest to float32
    two = estimate(cfg, SHAPE, _tensors(lora), processes=2)
    rows = dict(two.rows)
    # The packed data and the rest are split; the absmax constants stay whole on each device;
    # one layer is gathered at a time.
    sharded = (parts.total - parts.scales) / 2 + parts.scales + parts.total / SHAPE.layers
    assert rows["weights"] == pytest.approx(sharded)
    assert rows["weights"] < one["weights"]
    assert rows["loading (whole 4-bit base)"] == parts.total - parts.lora
    assert two.peak >= rows["loading (whole 4-bit base)"]
    assert any("whole 4-bit base" in n for n in two.notes)
    # Axolotl's FSDP2 spelling is read the same way.
    axolotl = _cfg(**qlora, fsdp_version=2, fsdp_config={"fsdp_reshard_after_forward": True})
    assert dict(estimate(axolotl, SHAPE, _tensors(lora), processes=2).rows) == rows


@pytest.mark.slow
def test_unpacking_keeps_the_layer_quant_state_fsdp_rebuilds_from(tiny_model_dir, tmp_path):
    """FSDP2 gathers a 4-bit weight as a plain tensor and bitsandbytes rebuilds it from the
    layer's `quant_state`: after an unpack that copy must be the unpacked weight's own."""
    import torch
    from bitsandbytes.functional import has_avx512bf16

    from honer.model.kbit import four_bit_layers, keep_4bit_weights_unpacked
    from honer.model.load import load_model, load_tokenizer

    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks here")
    cfg = config_from_dict(
        {
            "base_model": str(tiny_model_dir),
            "datasets": [{"path": "d.jsonl", "type": "alpaca"}],
            "adapter": "qlora",
            "load_in_4bit": True,
            "fsdp": ["full_shard", "auto_wrap"],
        }
    )
    model = load_model(cfg, load_tokenizer(cfg))
    layers = four_bit_layers(model)
    assert len(layers) == 14 and all(layer.weight.dtype == torch.float32 for layer in layers)
    for layer in layers:  # as bitsandbytes leaves them: repack at the first eval forward
        layer.support_avx512bf16_for_cpu = True
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor(PROMPT))
    assert all(layer.weight.quant_state.packing_format_for_cpu for layer in layers)
    assert keep_4bit_weights_unpacked(model) == 14
    for layer in layers:
        assert layer.quant_state is layer.weight.quant_state
        assert not getattr(layer.quant_state, "packing_format_for_cpu", False)
        assert layer.weight.dtype == torch.float32  # the FSDP storage dtype, restored
