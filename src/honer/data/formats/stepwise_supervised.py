"""Stepwise-supervised rows for process reward models (`process_reward_model: true`).

A row holds a `prompt`, its reasoning `completions` (a list of steps) and one `labels` entry per
step (true: the step is right). The tokens are Axolotl's `stepwise_supervised` strategy's, which
copies TRL's former `PRMTrainer`:

    <bos> prompt | step 1 <sep> | step 2 <sep> | …
    labels: -100 over the prompt and every step token but the last of each step (its separator),
    which carries the step's label (1 right, 0 wrong); `train_on_last_step_only` keeps only the
    last step's label.

The prompt and steps are tokenized without special tokens, the separator (`step_separator`,
default a newline) is appended to every step, the completion is cut at `max_completion_length`
tokens, and a BOS is put before the prompt when the tokenizer has one. Labels here are classes
(0/1), not token ids: the model is a token classifier.
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.context import FormatContext, text_field
from honer.data.tokenize import IGNORE_INDEX, FormatError, TokenizedSample, TokenizerView

VERSION = 1


def _steps(row: dict[str, Any]) -> tuple[list[str], list[bool]]:
    steps, labels = row.get("completions"), row.get("labels")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise FormatError("`completions` must be a non-empty list of step texts")
    if not isinstance(labels, list) or len(labels) != len(steps):
        raise FormatError(
            f"`labels` must hold one true/false per step ({len(steps)} steps, got "
            f"{len(labels) if isinstance(labels, list) else type(labels).__name__})"
        )
    for label in labels:
        if not isinstance(label, bool) and label not in (0, 1):
            raise FormatError(f"`labels` must be true or false, got {label!r}")
    return steps, [bool(label) for label in labels]


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    ds = ctx.dataset
    prompt = tok.encode(text_field(row, "prompt"), add_special_tokens=False)
    steps, labels = _steps(row)
    separator = tok.encode(ds.step_separator, add_special_tokens=False)
    step_labels: list[int] = [int(label) for label in labels]
    if ds.train_on_last_step_only:
        step_labels = [IGNORE_INDEX] * (len(steps) - 1) + step_labels[-1:]
    completion: list[int] = []
    completion_labels: list[int] = []
    for text, label in zip(steps, step_labels, strict=True):
        ids = tok.encode(text, add_special_tokens=False) + separator
        if not ids:
            raise FormatError("a step has no tokens (empty text and separator)")
        completion += ids
        completion_labels += [IGNORE_INDEX] * (len(ids) - 1) + [label]
    if ds.max_completion_length:
        completion = completion[: ds.max_completion_length]
        completion_labels = completion_labels[: ds.max_completion_length]
    bos = tok.tokenizer.bos_token_id
    if bos is not None:
        prompt = [bos, *prompt]
    return [TokenizedSample(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion_labels)]
