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


def _trained_positions_loss(model: Any, inputs: dict[str, Any], labels: Any) -> float:
    """Summed next-token loss, with the output head run only where a label is trained.

    The head of a large vocabulary is the biggest activation of a small model (49k logits per
    token for SmolLM2); `logits_to_keep` (transformers' own argument) skips the positions no
    label reads. Models without it get the full logits.
    """
    import torch.nn.functional as F

    from honer.train.trainer import token_sum_loss

    shifted = F.pad(labels, (0, 1), value=-100)[..., 1:]
    keep = (shifted != -100).any(dim=0).nonzero().squeeze(-1)
    try:
        out = model(**inputs, logits_to_keep=keep)
    except TypeError:  # a model class without `logits_to_keep`
        return float(token_sum_loss(model(**inputs), labels, num_items_in_batch=1))
    logits = out.logits.float()
    return float(
        F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            shifted[:, keep].reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
    )


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

    collate = PaddingCollator(pad_token_id=pad_token_id)
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        # Rows of similar length batched together: less padding, the same sum (order-free).
        lengths = [len(ids) for ids in dataset["input_ids"]]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        for start in range(0, len(order), batch_size):
            rows = [dataset[i] for i in order[start : start + batch_size]]
            batch = collate([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
            labels = batch.pop("labels").to(device)
            n = int((labels[..., 1:] != -100).sum())
            if n:
                with torch.no_grad():
                    inputs = {k: v.to(device) for k, v in batch.items()}
                    total += _trained_positions_loss(model, inputs, labels)
            tokens += n
            if on_batch is not None:
                on_batch(len(rows))
    finally:
        model.train(was_training)
    loss = total / max(tokens, 1)
    return LossResult(loss, math.exp(min(loss, 700)), tokens, len(dataset))
