"""Loss normalisation: the gradient of an optimizer step does not depend on the micro-batch split."""

from __future__ import annotations

import pytest

from tests.train.data_util import config

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


def _step_gradient(model_dir, out, micro_batch_size: int, accumulation: int, data):
    """Gradients of the first optimizer step (captured before the optimizer moves anything)."""
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback

    from honer.train.trainer import build_trainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    grads: dict[str, torch.Tensor] = {}
    losses: list[float] = []

    class Capture(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            for name, param in model.named_parameters():
                grads[name] = param.grad.detach().clone()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    cfg = config(
        model_dir,
        out,
        micro_batch_size=micro_batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        max_grad_norm=0,  # no clipping: compare raw gradients
        optimizer="sgd",
        save_steps=1000,
    )
    from transformers import AutoTokenizer

    trainer, _ = build_trainer(
        cfg, model, AutoTokenizer.from_pretrained(model_dir), data, callbacks=[Capture()]
    )
    trainer.train()
    return grads, losses[0]


def test_accumulated_gradient_equals_one_big_batch(tiny_model_dir, tmp_path):
    from datasets import Dataset

    # Lengths 5..31 and 1..25 trained tokens: a mean of per-micro-batch means would weight the
    # short sample's tokens 25 times more than the long one's.
    rows = {"input_ids": [], "labels": []}
    for length, prompt in ((5, 3), (12, 2), (20, 10), (31, 5)):
        ids = [1, *range(20, 20 + length - 1)]
        rows["input_ids"].append(ids)
        rows["labels"].append([-100] * prompt + ids[prompt:])
    data = Dataset.from_dict(rows)
    g_acc, loss_acc = _step_gradient(tiny_model_dir, tmp_path / "a", 1, 4, data)
    g_big, loss_big = _step_gradient(tiny_model_dir, tmp_path / "b", 4, 1, data)
    assert g_acc.keys() == g_big.keys()
    worst = max(float((g_acc[k] - g_big[k]).abs().max()) for k in g_acc)
    assert worst <= 1e-5
    assert loss_acc == pytest.approx(loss_big, abs=1e-5)


def test_loss_is_mean_over_trained_tokens(tiny_model_dir):
    """`token_sum_loss` with the step's count equals a cross-entropy mean over trained tokens."""
    import torch
    import torch.nn.functional as F

    from honer.train.trainer import token_sum_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, 3, 4, -100, -100], [-100, -100, 1, 2, 3]])
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert float(token_sum_loss({"logits": logits}, labels)) == pytest.approx(
        float(expected), abs=1e-6
    )
    # With the whole step's count (e.g. 10 trained tokens over all micro-batches) it is a share.
    share = token_sum_loss({"logits": logits}, labels, num_items_in_batch=torch.tensor(10))
    assert float(share) == pytest.approx(float(expected) * 5 / 10, abs=1e-6)
    # Nothing trained: zero loss, not NaN.
    none = torch.full_like(labels, -100)
    assert float(token_sum_loss({"logits": logits}, none)) == 0.0
