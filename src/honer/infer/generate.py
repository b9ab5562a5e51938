"""Batched greedy generation from token prompts, and prompts cut from training samples.

A prompt taken from a tokenized sample (the tokens before its first trained label) is exactly
what the model saw during training, whatever the format or chat template; that is how eval tables
and held-out checks build their prompts, so inference never re-implements a template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from honer.data.tokenize import IGNORE_INDEX


def split_prompt(input_ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """(prompt, answer): tokens before the first trained label, and the first trained run."""
    first = next((i for i, lab in enumerate(labels) if lab != IGNORE_INDEX), len(labels))
    end = next((i for i in range(first, len(labels)) if labels[i] == IGNORE_INDEX), len(labels))
    return list(input_ids[:first]), list(input_ids[first:end])


def strip_stop(ids: list[int], stop_ids: set[int]) -> list[int]:
    """Tokens up to (not including) the first stop token."""
    for i, t in enumerate(ids):
        if t in stop_ids:
            return ids[:i]
    return ids


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    stop_ids: set[int] | None = None,
    on_batch: Callable[[int], None] | None = None,
    generation: dict[str, Any] | None = None,
) -> list[list[int]]:
    """Greedy continuations of each prompt (stop tokens removed), in input order.

    Prompts are sorted by length into batches and left-padded with an attention mask, so batching
    does not change what any prompt produces (answers come back in input order). `on_batch(n)` is called after each batch of n prompts (progress bars).
    `generation` replaces the greedy settings with other `model.generate` arguments (sampling;
    it must include `max_new_tokens`).
    """
    import torch

    stop = set(stop_ids or {tokenizer.eos_token_id}) - {None}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(stop))
    device = next(model.parameters()).device
    settings = generation or {"max_new_tokens": max_new_tokens, "do_sample": False}
    outputs: list[list[int] | None] = [None] * len(prompts)
    # Prompts of similar length share a batch (less left padding); answers return in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            batch = [prompts[i] for i in positions]
            width = max(len(p) for p in batch)
            ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in batch], device=device)
            mask = torch.tensor(
                [[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device
            )
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    eos_token_id=sorted(stop),
                    pad_token_id=pad_id,
                    **settings,
                )
            for i, row in zip(positions, out[:, width:].tolist(), strict=True):
                outputs[i] = strip_stop(row, stop)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        model.train(was_training)
    return [o if o is not None else [] for o in outputs]
