"""Eval loss: the mean over every trained token, whatever the batch size and order, with the
output head run only at trained positions."""

from __future__ import annotations

import pytest

from tests.train.data_util import dataset


def _reference(model, rows) -> float:
    """Each row alone, full logits, summed next-token cross-entropy / trained tokens."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in zip(rows["input_ids"], rows["labels"], strict=True):
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
            target = torch.tensor(labels[1:])
            total += float(F.cross_entropy(logits, target, ignore_index=-100, reduction="sum"))
            count += int((target != -100).sum())
    return total / count


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_eval_loss_equals_the_per_token_mean_for_any_batch(tiny_model_dir, batch_size) -> None:
    from transformers import AutoModelForCausalLM

    from honer.evaluate.metrics import eval_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    rows = dataset(11, seed=3)
    got = eval_loss(model, rows, pad_token_id=0, batch_size=batch_size)
    assert got.samples == 11
    assert got.tokens == sum(sum(x != -100 for x in r[1:]) for r in rows["labels"])
    assert got.loss == pytest.approx(_reference(model, rows.to_dict()), rel=1e-5)
