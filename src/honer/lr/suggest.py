"""The supervised-token learning-rate rule.

    lr = base_lr * sqrt(supervised_tokens_in_batch / pretrained_batch_tokens)
    supervised_tokens_in_batch = total_supervised_tokens / (num_steps / num_epochs)

The idea: Adam's best LR scales roughly with the square root of the batch size (in tokens that
carry a loss). A model was pre-trained at `base_lr` with batches of `pretrained_batch_tokens`
tokens; a fine-tuning step that supervises far fewer tokens gets a proportionally smaller LR.

`FAMILIES` holds the published pre-training figures of a few model families, keyed by the
`model_type` of the model's config.json. Where no figure is published the entry says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    base_lr: float
    pretrained_batch_tokens: int
    source: str


FAMILIES: dict[str, Family] = {
    "llama": Family(
        3e-4,
        4_000_000,
        "Llama 2 paper (Touvron et al. 2023), Table 1: 7B/13B peak LR 3.0e-4, 4M-token batches",
    ),
    "mistral": Family(
        5e-5,
        4_000_000,
        "not published by Mistral AI; the figure used by the honer LR-rule issue (5e-5, 4M tokens)",
    ),
    "olmo": Family(
        3e-4,
        4_194_304,
        "OLMo paper (Groeneveld et al. 2024), Table 5: 7B peak LR 3.0e-4, ~4M-token batches",
    ),
    "gpt_neox": Family(
        1.2e-4,
        2_097_152,
        "Pythia paper (Biderman et al. 2023): 6.9B/12B LR 1.2e-4, 1024 x 2048-token batches",
    ),
}


@dataclass(frozen=True)
class Suggestion:
    total_supervised_tokens: int
    num_steps: int
    num_epochs: float
    base_lr: float
    pretrained_batch_tokens: int

    @property
    def steps_per_epoch(self) -> float:
        return self.num_steps / self.num_epochs

    @property
    def supervised_tokens_in_batch(self) -> float:
        return self.total_supervised_tokens / self.steps_per_epoch

    @property
    def ratio(self) -> float:
        return self.supervised_tokens_in_batch / self.pretrained_batch_tokens

    @property
    def learning_rate(self) -> float:
        return self.base_lr * math.sqrt(self.ratio)

    def lines(self) -> list[str]:
        """Every term of the formula, for printing."""
        return [
            f"total supervised tokens        {self.total_supervised_tokens:,}",
            f"steps / epochs                 {self.num_steps:,} / {self.num_epochs:g} "
            f"= {self.steps_per_epoch:,.4g} steps per epoch",
            f"supervised tokens in a batch   {self.total_supervised_tokens:,} / "
            f"{self.steps_per_epoch:,.4g} = {self.supervised_tokens_in_batch:,.6g}",
            f"pretrained batch tokens        {self.pretrained_batch_tokens:,}",
            f"ratio                          {self.ratio:.6g}",
            f"base lr                        {self.base_lr:g}",
            f"lr = {self.base_lr:g} * sqrt({self.ratio:.6g}) = {self.learning_rate:.3g}",
        ]


def suggest(
    total_supervised_tokens: int,
    num_steps: int,
    num_epochs: float,
    base_lr: float,
    pretrained_batch_tokens: int,
) -> Suggestion:
    """Apply the rule; every argument must be positive."""
    for name, value in (
        ("supervised tokens", total_supervised_tokens),
        ("steps", num_steps),
        ("epochs", num_epochs),
        ("base lr", base_lr),
        ("pretrained batch tokens", pretrained_batch_tokens),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    return Suggestion(
        total_supervised_tokens, num_steps, num_epochs, base_lr, pretrained_batch_tokens
    )
