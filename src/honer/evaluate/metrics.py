"""Eval loss and perplexity over a tokenized split, normalised over trained tokens.

The mean is taken over every trained token of the split (not a mean of per-batch means), so the
figure does not depend on the batch size or on how padding falls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LossResult:
    loss: float
    perplexity: float
    tokens: int
    samples: int


def eval_loss(
    model: Any,
    dataset: Any,
    pad_token_id: int,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> LossResult:
    """Mean loss over every trained token of `dataset`; `on_batch(n)` after each batch."""
    import torch

    from honer.train.collate import PaddingCollator
    from honer.train.trainer import token_sum_loss

    collate = PaddingCollator(pad_token_id=pad_token_id)
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(dataset), batch_size):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = collate([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
            labels = batch.pop("labels").to(device)
            n = int((labels[..., 1:] != -100).sum())
            with torch.no_grad():
                out = model(**{k: v.to(device) for k, v in batch.items()})
            total += float(token_sum_loss(out, labels, num_items_in_batch=1)) if n else 0.0
            tokens += n
            if on_batch is not None:
                on_batch(len(rows))
    finally:
        model.train(was_training)
    loss = total / max(tokens, 1)
    return LossResult(loss, math.exp(min(loss, 700)), tokens, len(dataset))
