"""ORPO (`rl: orpo`) and SimPO (`rl: simpo`): preference tuning without a reference model, on
TRL's `ORPOTrainer` and `CPOTrainer` (SimPO is CPO's `simpo` loss), run the honer way.

TRL keeps both in `trl.experimental`, with their own older tokenization of prompt/chosen/rejected
text. honer feeds them its own pairs instead (the same ids as a DPO run's, see
`honer.data.preference`), laid out as those trainers' tokenized columns: `chosen_input_ids` =
prompt + chosen, `chosen_labels` = the same with the prompt masked, and so on. Their text
preprocessing then has nothing to do (`tokenize_row` passes the row through), and the loss,
metrics (rewards/margins, rewards/accuracies, log_odds_ratio, nll_loss) and padding are TRL's.

Around that, `RunMixin` gives these runs what every honer run has: atomic checkpoints, exact
resume, the console and `metrics.jsonl`, the loss watchdog, no telemetry.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# honer pins TRL and tests these trainers; the import-time "experimental" notice would only
# alarm users about an API they never call themselves.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from trl.experimental.cpo import CPOConfig, CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

from honer.config.schema import Config  # noqa: E402
from honer.train.args import StepPlan, training_arguments  # noqa: E402
from honer.train.trainer import RunMixin  # noqa: E402

if TYPE_CHECKING:
    from datasets import Dataset

IGNORE_INDEX = -100


class _TokenizedPairs(RunMixin):
    """The rows are tokenized already (see the module docstring); counts their tokens for
    `RunMixin`'s tokens/s."""

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
        return {}  # nothing to add: `trained_layout` wrote the trainer's columns

    def batch_tokens(self, inputs: dict[str, Any]) -> tuple[int, int]:
        sides = ("chosen", "rejected")
        return (
            sum(int(inputs[f"{side}_attention_mask"].sum()) for side in sides),
            sum(int((inputs[f"{side}_labels"] != IGNORE_INDEX).sum()) for side in sides),
        )


class HonerORPOTrainer(_TokenizedPairs, ORPOTrainer):
    """TRL's `ORPOTrainer` on honer's tokenized pairs, with honer's run behaviour."""


class HonerCPOTrainer(_TokenizedPairs, CPOTrainer):
    """TRL's `CPOTrainer` (here: its SimPO loss) on honer's tokenized pairs."""


def trained_layout(dataset: Dataset, max_length: int) -> Dataset:
    """honer's pairs (`prompt_ids`, `chosen_ids`, `rejected_ids`) as ORPO's/CPO's tokenized
    columns. A pair longer than `max_length` (kept only with `excess_length_strategy:
    truncate`) keeps its first `max_length` tokens, as the DPO collator does."""

    def layout(prompt: list[int], chosen: list[int], rejected: list[int]) -> dict[str, list[int]]:
        row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
        for side, answer in (("chosen", chosen), ("rejected", rejected)):
            ids = (prompt + answer)[:max_length]
            labels = ([IGNORE_INDEX] * len(prompt) + answer)[:max_length]
            row[f"{side}_input_ids"] = ids
            row[f"{side}_attention_mask"] = [1] * len(ids)
            row[f"{side}_labels"] = labels
        return row

    columns = ["prompt_ids", "chosen_ids", "rejected_ids"]
    return dataset.map(
        layout, input_columns=columns, remove_columns=dataset.column_names, desc="pair layout"
    )


def reference_free_arguments(cfg: Config, plan: StepPlan, has_eval: bool) -> Any:
    """The run's `ORPOConfig` (weight `orpo_alpha`, TRL's `beta`) or `CPOConfig` with the SimPO
    loss (`rl_beta`, `simpo_gamma`, `cpo_alpha`)."""
    if cfg.rl == "orpo":
        return training_arguments(
            cfg, plan, has_eval, ORPOConfig, beta=cfg.orpo_weight, max_length=cfg.sequence_len
        )
    gamma, nll = cfg.simpo_settings
    return training_arguments(
        cfg,
        plan,
        has_eval,
        CPOConfig,
        loss_type="simpo",
        beta=cfg.rl_beta,
        simpo_gamma=gamma,
        cpo_alpha=nll,
        label_smoothing=cfg.dpo_label_smoothing,
        max_length=cfg.sequence_len,
    )


def reference_free_trainer(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
    plan: StepPlan,
    callbacks: list[Any],
) -> Any:
    """The configured ORPO or SimPO trainer on honer's pairs (not yet trained)."""
    args = reference_free_arguments(cfg, plan, eval_dataset is not None)
    trainer_class = HonerORPOTrainer if cfg.rl == "orpo" else HonerCPOTrainer
    return trainer_class(
        model=model,
        args=args,
        train_dataset=trained_layout(train_dataset, cfg.sequence_len),
        eval_dataset=None
        if eval_dataset is None
        else trained_layout(eval_dataset, cfg.sequence_len),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
