"""The supervised-token learning-rate rule, with the adapter factor and its assumptions stated.

    lr_full = base_lr * sqrt(supervised_tokens_in_batch / pretrained_batch_tokens)
    lr      = lr_full * adapter_factor          (1 for full fine-tuning, 10 for LoRA / QLoRA)
    supervised_tokens_in_batch = total_supervised_tokens / (num_steps / num_epochs)

The idea: Adam's best LR scales roughly with the square root of the batch size (in tokens that
carry a loss). A model was pre-trained at `base_lr` with batches of `pretrained_batch_tokens`
tokens; a fine-tuning step that supervises far fewer tokens gets a proportionally smaller LR.
`num_steps` must be the steps training really takes: with sample packing, the packed rows
(`honer.train.args.plan_for_dataset`), not the samples.

The rule is for full fine-tuning. A LoRA's best LR is about ten times higher: `ADAPTER_FACTOR`,
from Schulman et al., "LoRA Without Regret" (Thinking Machines Lab, 2025), who found LoRA's
optimal LR consistently ~10x full fine-tuning's across their supervised runs (~15x in short ones),
with the usual alpha/r scaling.

Pre-training figures depend on the model's size as much as on its family: `FAMILY_FIGURES`
holds the published per-size figures of a few families (`model_type` of config.json), used when
one of them is within a factor of two of the model's parameter count; otherwise the nearest
`SIZE_CLASSES` entry (GPT-3's size ladder) is assumed, and the suggestion says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ADAPTER_FACTOR = 10.0
ADAPTER_SOURCE = (
    "Schulman et al., 'LoRA Without Regret' (Thinking Machines Lab, 2025): LoRA's optimal LR "
    "was ~10x full fine-tuning's across their supervised runs"
)
# Square-root scaling is measured over batch sizes within a few powers of two of each other;
# this far below the pre-training batch the rule is an extrapolation.
FAR_BELOW_PRETRAINING = 1 / 1024


@dataclass(frozen=True)
class Pretraining:
    """Published pre-training figures of one model size."""

    name: str
    params: float
    base_lr: float
    batch_tokens: int
    source: str


_LLAMA2 = "Llama 2 paper (Touvron et al. 2023), Table 1"
_PYTHIA = "Pythia paper (Biderman et al. 2023): 1024 x 2048-token batches"
_GPT3 = "GPT-3 paper (Brown et al. 2020), Table 2.1"

FAMILY_FIGURES: dict[str, tuple[Pretraining, ...]] = {
    "llama": (
        Pretraining("Llama 2 7B", 7e9, 3e-4, 4_000_000, f"{_LLAMA2}: 7B peak LR 3.0e-4, 4M tokens"),
        Pretraining("Llama 2 13B", 13e9, 3e-4, 4_000_000, f"{_LLAMA2}: 13B 3.0e-4, 4M tokens"),
        Pretraining("Llama 2 34B", 34e9, 1.5e-4, 4_000_000, f"{_LLAMA2}: 34B 1.5e-4, 4M tokens"),
        Pretraining("Llama 2 70B", 70e9, 1.5e-4, 4_000_000, f"{_LLAMA2}: 70B 1.5e-4, 4M tokens"),
    ),
    "olmo": (
        Pretraining(
            "OLMo 7B",
            7e9,
            3e-4,
            4_194_304,
            "OLMo paper (Groeneveld et al. 2024): 7B peak LR 3.0e-4, ~4M-token batches",
        ),
    ),
    "gpt_neox": tuple(
        Pretraining(f"Pythia {name}", params, lr, 2_097_152, f"{_PYTHIA}, {name} LR {lr:.1e}")
        for name, params, lr in (
            ("70M", 70e6, 1e-3),
            ("160M", 160e6, 6e-4),
            ("410M", 410e6, 3e-4),
            ("1B", 1.0e9, 3e-4),
            ("1.4B", 1.4e9, 2e-4),
            ("2.8B", 2.8e9, 1.6e-4),
            ("6.9B", 6.9e9, 1.2e-4),
            ("12B", 12e9, 1.2e-4),
        )
    ),
}

SIZE_CLASSES: tuple[Pretraining, ...] = tuple(
    Pretraining(
        f"GPT-3 {name}", params, lr, batch, f"{_GPT3}: {name}, LR {lr:.1e}, {batch:,}-token batches"
    )
    for name, params, lr, batch in (
        ("Small (125M)", 125e6, 6e-4, 500_000),
        ("Medium (350M)", 350e6, 3e-4, 500_000),
        ("Large (760M)", 760e6, 2.5e-4, 500_000),
        ("XL (1.3B)", 1.3e9, 2e-4, 1_000_000),
        ("2.7B", 2.7e9, 1.6e-4, 1_000_000),
        ("6.7B", 6.7e9, 1.2e-4, 2_000_000),
        ("13B", 13e9, 1e-4, 2_000_000),
        ("175B", 175e9, 0.6e-4, 3_200_000),
    )
)


def _size_gap(a: float, b: float) -> float:
    return max(a / b, b / a)


def pretraining_reference(model_type: str | None, params: float) -> tuple[Pretraining, str]:
    """The figures to use for a `model_type` model of `params` parameters, and why these."""
    size = f"{params / 1e6:,.0f}M" if params < 1e9 else f"{params / 1e9:,.1f}B"
    family = FAMILY_FIGURES.get(model_type or "", ())
    if family:
        nearest = min(family, key=lambda f: _size_gap(f.params, params))
        if _size_gap(nearest.params, params) <= 2:
            return nearest, f"pre-training figures of {nearest.name} for this {size} model"
        published = ", ".join(f.name for f in family)
        why = f"`{model_type}` figures are published for {published} only"
    else:
        why = f"no published pre-training figures for model type `{model_type}` in honer"
    nearest = min(SIZE_CLASSES, key=lambda f: abs(math.log(f.params / params)))
    return nearest, (
        f"assumed the nearest size class, {nearest.name}, for this {size} model ({why}); pass "
        "--base-lr and --pretrained-batch-tokens if the model's own figures are known"
    )


@dataclass(frozen=True)
class Suggestion:
    total_supervised_tokens: int
    num_steps: int
    num_epochs: float
    base_lr: float
    pretrained_batch_tokens: int
    adapter_factor: float = 1.0
    notes: tuple[str, ...] = field(default=())

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
    def full_finetune_learning_rate(self) -> float:
        return self.base_lr * math.sqrt(self.ratio)

    @property
    def learning_rate(self) -> float:
        return self.full_finetune_learning_rate * self.adapter_factor

    def warnings(self) -> list[str]:
        """Where the rule's assumptions do not fit these figures (printed with the result)."""
        found = list(self.notes)
        if self.ratio < FAR_BELOW_PRETRAINING:
            found.append(
                f"a step supervises {self.supervised_tokens_in_batch:,.0f} tokens, "
                f"{1 / self.ratio:,.0f}x fewer than a pre-training batch: square-root scaling "
                "was measured over far smaller ratios, so take this as a starting point and "
                "check it with `honer lr find`"
            )
        return found

    def lines(self) -> list[str]:
        """Every term of the formula, for printing."""
        rule = f"lr = {self.base_lr:g} * sqrt({self.ratio:.6g})"
        lines = [
            f"total supervised tokens        {self.total_supervised_tokens:,}",
            f"steps / epochs                 {self.num_steps:,} / {self.num_epochs:g} "
            f"= {self.steps_per_epoch:,.4g} steps per epoch",
            f"supervised tokens in a batch   {self.total_supervised_tokens:,} / "
            f"{self.steps_per_epoch:,.4g} = {self.supervised_tokens_in_batch:,.6g}",
            f"pretrained batch tokens        {self.pretrained_batch_tokens:,}",
            f"ratio                          {self.ratio:.6g}",
            f"base lr                        {self.base_lr:g}",
        ]
        if self.adapter_factor == 1.0:
            return [*lines, f"{rule} = {self.learning_rate:.3g}"]
        return [
            *lines,
            f"adapter factor                 {self.adapter_factor:g} ({ADAPTER_SOURCE})",
            f"{rule} * {self.adapter_factor:g} = {self.full_finetune_learning_rate:.3g} * "
            f"{self.adapter_factor:g} = {self.learning_rate:.3g}",
        ]


def suggest(
    total_supervised_tokens: int,
    num_steps: int,
    num_epochs: float,
    base_lr: float,
    pretrained_batch_tokens: int,
    adapter: str | None = None,
    notes: tuple[str, ...] = (),
) -> Suggestion:
    """Apply the rule (`adapter`: None for full fine-tuning, `lora` / `qlora` for an adapter);
    every figure must be positive."""
    for name, value in (
        ("supervised tokens", total_supervised_tokens),
        ("steps", num_steps),
        ("epochs", num_epochs),
        ("base lr", base_lr),
        ("pretrained batch tokens", pretrained_batch_tokens),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    factor = ADAPTER_FACTOR if adapter in ("lora", "qlora") else 1.0
    return Suggestion(
        total_supervised_tokens,
        num_steps,
        num_epochs,
        base_lr,
        pretrained_batch_tokens,
        factor,
        tuple(notes),
    )
