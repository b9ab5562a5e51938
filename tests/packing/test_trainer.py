"""Packing through `honer.train`: same step gradient as unpacked, exact step counts, resume."""

from __future__ import annotations

import io
import json
import math

import pytest

from tests.train.data_util import config, dataset

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


def _first_step(model_dir, out, data, **overrides):
    """Gradients and logged loss of the first optimizer step, plus the trainer and its plan."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from honer.train.trainer import build_trainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    grads: dict[str, torch.Tensor] = {}
    losses: list[float] = []

    class Capture(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            if not grads:
                grads.update({n: p.grad.detach().clone() for n, p in model.named_parameters()})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    cfg = config(
        model_dir,
        out,
        max_steps=1,
        max_grad_norm=0,
        optimizer="sgd",
        save_steps=1000,
        sequence_len=64,
        **overrides,
    )
    trainer, plan = build_trainer(
        cfg, model, AutoTokenizer.from_pretrained(model_dir), data, callbacks=[Capture()]
    )
    trainer.train()
    return grads, losses[0], trainer, plan


@pytest.mark.parametrize(("micro_batch_size", "accumulate_all"), [(64, False), (1, True)])
def test_packed_step_gradient_equals_unpacked(
    tiny_model_dir, tmp_path, micro_batch_size, accumulate_all
):
    """All 24 samples in one optimizer step, packed (one micro-batch of every row, or one row
    per micro-batch accumulated) or padded in one batch: the same loss and gradient."""
    from honer.data.packing import pack

    data = dataset(24, seed=3)
    rows = len(pack([len(x) for x in data["input_ids"]], 64, seed=0))
    assert rows < 24  # samples really share rows
    ref_grads, ref_loss, _, _ = _first_step(
        tiny_model_dir, tmp_path / "ref", data, micro_batch_size=24
    )
    grads, loss, trainer, plan = _first_step(
        tiny_model_dir,
        tmp_path / "packed",
        data,
        micro_batch_size=micro_batch_size,
        gradient_accumulation_steps=rows if accumulate_all else 1,
        sample_packing=True,
    )
    assert trainer.packing_stats.rows == rows == plan.examples
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    worst = max(float((grads[n] - ref_grads[n]).abs().max()) for n in ref_grads)
    assert worst <= 1e-5


def test_steps_per_epoch_are_exact_and_printed(tiny_model_dir, tmp_path):
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honer.train.trainer import train

    data = dataset(50, seed=4)
    cfg = config(
        tiny_model_dir,
        tmp_path / "out",
        sample_packing=True,
        sequence_len=64,
        micro_batch_size=2,
        gradient_accumulation_steps=2,
        num_epochs=2,
        val_set_size=0.1,
        evals_per_epoch=1,
        save_steps=1000,
    )
    out = io.StringIO()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    result = train(cfg, model, tokenizer, data, dataset(8, seed=5), console=Console(file=out))
    stats_line = next(line for line in out.getvalue().splitlines() if "sample packing" in line)
    rows = result.plan.examples
    assert f"50 samples → {rows} rows of ≤ 64 tokens" in stats_line
    tokens = sum(len(x) for x in data["input_ids"])
    assert f"packing efficiency {100 * tokens / (rows * 64):.2f}%" in stats_line
    assert result.plan.steps_per_epoch == math.ceil(math.ceil(rows / 2) / 2)
    assert result.global_step == result.plan.total_steps == 2 * result.plan.steps_per_epoch
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if m["kind"] == "train"] == list(
        range(1, result.global_step + 1)
    )
    evals = [m for m in metrics if m["kind"] == "eval"]
    assert len(evals) == 2 and all(math.isfinite(m["eval_loss"]) for m in evals)


def test_unpacked_validation_next_to_packed_training(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honer.train.trainer import build_trainer

    cfg = config(
        tiny_model_dir,
        tmp_path / "out",
        sample_packing=True,
        eval_sample_packing=False,
        sequence_len=64,
        val_set_size=0.1,
    )
    trainer, _ = build_trainer(
        cfg,
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
        dataset(20, seed=1),
        dataset(6, seed=2),
    )
    assert "position_ids" in trainer.train_dataset.column_names
    assert "position_ids" not in trainer.eval_dataset.column_names
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])
