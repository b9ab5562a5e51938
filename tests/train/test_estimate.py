"""`honer estimate`: the Hugging Face model-memory figures, the split across processes, the
quantized and 8-bit terms, and agreement with the measured peak of real CPU training runs."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.config.load import config_from_dict
from honer.train.estimate import Shape, Tensors, estimate, human
from tests.conftest import REPO
from tests.helpers import write_addition_run

# bert-base-cased, the example of Hugging Face's model-memory table.
BERT_PARAMS = 108_310_272
SHAPE = Shape(hidden=768, intermediate=3072, layers=12, heads=12, kv_dim=768, vocab=28996)


def _cfg(**extra):
    return config_from_dict(
        {"base_model": "m", "datasets": [{"path": "d.jsonl", "type": "alpaca"}], **extra}
    )


def _tensors(trainable: list[int] | None = None) -> Tensors:
    return Tensors(
        total=BERT_PARAMS,
        trainable=trainable if trainable is not None else [BERT_PARAMS],
        trainable_2d=[],
        quantizable=84_934_656,  # 12 layers × 12 linear blocks of 768²-equivalents
        quantizable_rows=12 * (4 * 768 + 2 * 3072),
    )


def test_reproduces_the_hugging_face_model_memory_table():
    est = estimate(_cfg(), SHAPE, _tensors())
    rows = dict(est.rows)
    # The table prints 413.18 MB for bert-base-cased: it counts its few KB of buffers too.
    assert human(rows["weights"]) == "413.17 MB"
    assert human(rows["weights + gradients + optimizer state"]) == "1.61 GB"
    ref = est.hf_reference
    assert human(ref["float32 weights"]) == "413.17 MB"
    assert human(ref["float32 training with Adam"]) == "1.61 GB"
    assert human(ref["float16 weights"]) == "206.59 MB"
    assert human(ref["int4 weights"]) == "51.65 MB"


def test_sharding_divides_what_each_engine_shards(tmp_path):
    zero = {}
    for name in ("zero1", "zero2", "zero3"):
        rows = dict(estimate(_cfg(deepspeed=name), SHAPE, _tensors(), processes=4).rows)
        zero[name] = rows
    single = dict(estimate(_cfg(), SHAPE, _tensors()).rows)
    w, g, s = single["weights"], single["gradients"], single["optimizer state"]
    assert zero["zero1"]["optimizer state"] == s / 4 and zero["zero1"]["gradients"] == g
    assert zero["zero1"]["weights"] == w
    assert zero["zero2"]["gradients"] == g / 4 and zero["zero2"]["weights"] == w
    assert zero["zero3"]["weights"] == pytest.approx(w / 4 + w / SHAPE.layers)
    fsdp = dict(estimate(_cfg(fsdp=["shard_grad_op"]), SHAPE, _tensors(), processes=4).rows)
    assert fsdp["weights"] == w and fsdp["gradients"] == g / 4
    ddp = dict(estimate(_cfg(), SHAPE, _tensors(), processes=4).rows)
    assert ddp["gradients"] == 2 * g  # DDP's bucket copy
    offload = estimate(_cfg(deepspeed="zero3_offload"), SHAPE, _tensors(), processes=4)
    assert dict(offload.rows)["optimizer state"] == 0 and dict(offload.rows)["weights"] == 0
    assert any("offloaded to CPU" in n for n in offload.notes)


def test_quantized_weights_and_eight_bit_optimizer_states():
    lora = [8 * 768] * 24  # 24 LoRA matrices of 6,144 elements (≥ 4,096: 8-bit states)
    four = dict(
        estimate(
            _cfg(adapter="qlora", load_in_4bit=True, optimizer="adamw_bnb_8bit"),
            SHAPE,
            _tensors(lora),
        ).rows
    )
    quant = 84_934_656 * (0.5 + 1 / 64 + 4 / (64 * 256))
    rest = (BERT_PARAMS - 84_934_656) * 4
    assert four["weights"] == pytest.approx(quant + rest + sum(lora) * 4)
    assert four["optimizer state"] == 2 * sum(lora)  # one byte per moment
    small = dict(estimate(_cfg(optimizer="adamw_bnb_8bit"), SHAPE, _tensors([100])).rows)
    assert small["optimizer state"] == 2 * 100 * 4  # under 4,096 elements: 32-bit states


def test_dpo_counts_two_answers_and_the_reference_model():
    pairs = [{"path": "p.jsonl", "type": "chat_template.default"}]
    sft = estimate(_cfg(), SHAPE, _tensors())
    full = estimate(_cfg(rl="dpo", datasets=pairs), SHAPE, _tensors())
    rows, base = dict(full.rows), dict(sft.rows)
    assert full.tokens_per_micro_batch == 2 * sft.tokens_per_micro_batch  # chosen + rejected
    assert rows["activations"] > base["activations"]
    assert rows["reference model (frozen)"] == base["weights"]  # a second copy, no gradients
    assert full.peak > sft.peak + base["weights"]
    assert any("frozen reference model" in n for n in full.notes)
    # LoRA: the reference is the base with the adapter off; precomputed: no reference at all.
    for extra in ({"adapter": "lora"}, {"precompute_ref_log_probs": True}):
        other = estimate(_cfg(rl="dpo", datasets=pairs, **extra), SHAPE, _tensors())
        assert "reference model (frozen)" not in dict(other.rows)
        assert any("no second copy of the weights" in n for n in other.notes)


def test_estimate_command_prints_the_table_and_the_verdict(tiny_model_dir, tmp_path):
    cfg = write_addition_run(tmp_path, tiny_model_dir, 4, "adapter: lora\n")
    runner = CliRunner()
    result = runner.invoke(app, ["estimate", str(cfg), "--memory-gb", "80"])
    assert result.exit_code == 0, result.output
    for word in ("weights", "gradients", "optimizer state", "activations", "peak"):
        assert word in result.output
    assert "Hugging Face model-memory table" in result.output
    assert "fits: peak" in result.output
    tight = runner.invoke(app, ["estimate", str(cfg), "--memory-gb", "0.001"])
    assert "does NOT fit" in tight.output and "gradient_checkpointing: true" in tight.output


@pytest.mark.slow
def test_estimate_is_within_15_percent_of_measured_cpu_peaks():
    spec = importlib.util.spec_from_file_location(
        "memory_bench", REPO / "bench" / "memory_estimate.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cases = ["full_adamw", "lora_all_linear", "lora_attention_checkpointing"]
    result = bench.run("small", cases)
    for name, case in result["cases"].items():
        assert 0.85 <= case["ratio"] <= 1.15, (name, case)
