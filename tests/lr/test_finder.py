"""The LR range test on the tiny model: the suggestion it finds really trains best, the model and
output_dir are left exactly as they were, and a diverging loss ends the test early."""

from __future__ import annotations

import io
import json
import math

import pytest

from honer.lr.finder import (
    LrFindError,
    RangeTestResult,
    _is_checkpointing,
    loss_axis_range,
    lr_at,
    range_test,
    suggestions,
    write_outputs,
)
from tests.train.data_util import config, dataset

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

SHORT_RUN_STEPS = 15


@pytest.fixture(scope="module")
def train_data():
    return dataset(64, seed=0)


def _model(cfg):
    from transformers import set_seed

    from honer.model.load import load_model, load_tokenizer

    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg)
    return load_model(cfg, tokenizer), tokenizer


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_lr_grows_exponentially_from_start_to_end() -> None:
    lrs = [lr_at(i, 1e-6, 1e-2, 5) for i in range(5)]
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1e-2)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(r == pytest.approx(10.0) for r in ratios)


def test_suggestions_read_the_curve() -> None:
    lrs = [10.0 ** (-6 + i * 0.25) for i in range(21)]
    # Flat, a fall steepest at index 10 (central differences), minimum at index 15, a rise.
    loss = [5.0] * 6 + [4.9, 4.7, 4.3, 4.0, 3.0, 2.0, 1.8, 1.6, 1.4, 1.3, 1.5, 2.0, 3.0, 4.0, 5.0]
    steepest, min_div_10 = suggestions(lrs, loss)
    assert steepest == pytest.approx(lrs[10])
    assert min_div_10 == pytest.approx(lrs[15] / 10)


def test_too_few_points_and_bad_arguments_are_clear_errors(tmp_path) -> None:
    with pytest.raises(LrFindError, match="only 2 step"):
        suggestions([1e-5, 1e-4], [1.0, 2.0])
    cfg = config(tmp_path, tmp_path / "out")
    with pytest.raises(LrFindError, match="end_lr"):
        range_test(cfg, None, None, None, start_lr=1e-2, end_lr=1e-3)


@pytest.mark.parametrize(
    "adapter",
    [{}, {"adapter": "lora", "lora_target_linear": True, "lora_r": 4, "lora_alpha": 8}],
    ids=["full", "lora"],
)
def test_range_test_restores_weights_and_leaves_output_dir_alone(
    tiny_model_dir, train_data, tmp_path, adapter
) -> None:
    import torch

    from honer.model.adapters import build_adapter

    out = tmp_path / "out"
    cfg = config(tiny_model_dir, out, gradient_checkpointing=True, **adapter)
    model, tokenizer = _model(cfg)
    model = build_adapter(cfg, model, verbose=False)
    model.eval()
    before = _state(model)
    result = range_test(cfg, model, tokenizer, train_data, start_lr=1e-4, end_lr=10.0, num_steps=20)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    assert all(p.grad is None for p in model.parameters())
    assert not model.training  # the mode it was in
    assert not _is_checkpointing(model)
    assert not out.exists()
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) > 0


def test_range_test_without_trained_tokens_is_a_clear_error(tiny_model_dir, tmp_path) -> None:
    from datasets import Dataset

    cfg = config(tiny_model_dir, tmp_path / "out")
    model, tokenizer = _model(cfg)
    masked = Dataset.from_dict({"input_ids": [[1, 10, 11, 12]] * 8, "labels": [[-100] * 4] * 8})
    with pytest.raises(LrFindError, match="trained token"):
        range_test(cfg, model, tokenizer, masked, num_steps=5)


def test_range_test_stops_early_when_the_loss_diverges(
    tiny_model_dir, train_data, tmp_path
) -> None:
    cfg = config(tiny_model_dir, tmp_path / "out")
    model, tokenizer = _model(cfg)
    result = range_test(
        cfg,
        model,
        tokenizer,
        train_data,
        start_lr=1e-3,
        end_lr=1e3,
        num_steps=60,
        smooth_beta=0.5,
        diverge_factor=1.5,
    )
    assert result.stopped_early
    assert len(result.lrs) < 60
    assert "exceeded" in result.reason or "loss became" in result.reason
    assert result.lrs[-1] < 1e3


def test_write_outputs_writes_json_and_png_atomically(tmp_path) -> None:
    result = RangeTestResult(
        lrs=[1e-5, 1e-4, 1e-3],
        losses=[3.0, 2.0, 4.0],
        smoothed=[3.0, 2.5, 3.0],
        steepest=1e-4,
        min_div_10=1e-5,
        stopped_early=False,
        reason="reached num_steps (3) at lr 0.001",
    )
    json_path, png_path = write_outputs(result, tmp_path / "find")
    assert json.loads(json_path.read_text())["steepest"] == 1e-4
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "find").iterdir()) == ["lr_find.json", "lr_find.png"]


def test_the_plot_is_scaled_to_the_useful_range_not_the_divergence() -> None:
    """A range test ends by diverging; scaled to a 40x loss spike, the falling part was a flat
    line at the bottom of lr_find.png."""
    smoothed = [3.0, 2.9, 2.6, 2.2, 1.9, 1.8, 1.85, 2.5, 8.0, 40.0]
    result = RangeTestResult(
        lrs=[10**-k for k in range(10, 0, -1)],
        losses=smoothed,
        smoothed=smoothed,
        steepest=1e-7,
        min_div_10=1e-6,
        stopped_early=True,
        reason="diverged",
    )
    low, high = loss_axis_range(result)
    assert low == pytest.approx(1.8 - 0.12) and high == pytest.approx(3.0 + 0.3)
    assert high < 8.0


def _short_run_loss(tiny_model_dir, train_data, eval_data, tmp_path, lr: float) -> float:
    """Eval loss after a short constant-LR run from the same initial weights and data order."""
    from rich.console import Console

    from honer.train.trainer import build_trainer

    cfg = config(
        tiny_model_dir,
        tmp_path / f"run-{lr:g}",
        learning_rate=lr,
        max_steps=SHORT_RUN_STEPS,
        save_steps=SHORT_RUN_STEPS + 1,
    )
    model, tokenizer = _model(cfg)
    trainer, _ = build_trainer(cfg, model, tokenizer, train_data, None, Console(file=io.StringIO()))
    trainer.train()
    loss = trainer.evaluate(eval_dataset=eval_data)["eval_loss"]
    return loss if math.isfinite(loss) else math.inf


def test_suggestion_trains_better_than_100x_larger_or_smaller(
    tiny_model_dir, train_data, tmp_path
) -> None:
    """Acceptance: the suggested LR lies where a short run really lowers the loss."""
    cfg = config(tiny_model_dir, tmp_path / "out")
    model, tokenizer = _model(cfg)
    result = range_test(cfg, model, tokenizer, train_data, start_lr=1e-6, end_lr=10.0, num_steps=60)
    eval_data = dataset(32, seed=1)
    for suggested in (result.steepest, result.min_div_10):
        at = _short_run_loss(tiny_model_dir, train_data, eval_data, tmp_path, suggested)
        high = _short_run_loss(tiny_model_dir, train_data, eval_data, tmp_path, suggested * 100)
        low = _short_run_loss(tiny_model_dir, train_data, eval_data, tmp_path, suggested / 100)
        assert at < high and at < low, (suggested, at, high, low, result.reason)
