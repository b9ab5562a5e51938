"""Process reward models (`process_reward_model: true`): a token classifier that judges each
reasoning step right or wrong, trained on `stepwise_supervised` rows.

TRL dropped its `PRMTrainer` (1.16 has none), and what it did is a plain token-classification
run: the model is `AutoModelForTokenClassification` with two classes, each step's last token
(its separator) carries the step's label and every other token is -100 (see
`honer.data.formats.stepwise_supervised`), and the loss is the model's own cross-entropy over the
labelled positions. So this is transformers' `Trainer` with `DataCollatorForTokenClassification`
(pads ids with the pad token and labels with -100), plus honer's `RunMixin` for checkpoints,
exact resume, `metrics.jsonl`, the watchdog and tokens/s. Evaluation adds `eval_step_accuracy`:
the share of labelled held-out steps classified right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from transformers import DataCollatorForTokenClassification, Trainer

from honer.config.schema import Config
from honer.data.tokenize import IGNORE_INDEX
from honer.errors import DataError
from honer.train.args import StepPlan, plan_steps, training_arguments
from honer.train.callbacks import MetricsJsonlCallback
from honer.train.trainer import RunMixin, TrainResult, run_built, set_up_run

if TYPE_CHECKING:
    from datasets import Dataset


class HonerProcessRewardTrainer(RunMixin, Trainer):
    """`Trainer` for a token classifier, with honer's run behaviour. Tokens/s counts every
    token read, and the labelled step ends as the trained ones."""

    def batch_tokens(self, inputs: dict[str, Any]) -> tuple[int, int]:
        return (
            int(inputs["attention_mask"].sum()),
            int((inputs["labels"] != IGNORE_INDEX).sum()),
        )


def _predicted_class(logits: Any, labels: Any) -> Any:
    """Keep only each token's predicted class for the metric (not the logits)."""
    return logits.argmax(dim=-1)


def step_accuracy(prediction: Any) -> dict[str, float]:
    """The share of labelled steps whose class was predicted right."""
    predicted, labels = prediction.predictions, prediction.label_ids
    labelled = labels != IGNORE_INDEX
    total = int(labelled.sum())
    right = int(((predicted == labels) & labelled).sum())
    return {"step_accuracy": right / total if total else 0.0}


def build_process_reward_trainer(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[HonerProcessRewardTrainer, StepPlan]:
    """The configured process-reward-model trainer and its step plan, without training."""
    if len(train_dataset) == 0:
        raise DataError(
            "the training set has no stepwise rows: check `datasets` and the rows dropped for "
            "`sequence_len`; `honer preprocess` shows the counts."
        )
    if tokenizer.pad_token_id is None:
        raise DataError("the tokenizer has no pad token; set `special_tokens: {pad_token: ...}`.")
    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    plan = plan_steps(cfg, len(train_dataset), has_eval)
    args = training_arguments(cfg, plan, has_eval)
    args.prediction_loss_only = False  # evaluation also scores the steps (`step_accuracy`)
    trainer = HonerProcessRewardTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if has_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(
            tokenizer, label_pad_token_id=IGNORE_INDEX
        ),
        compute_metrics=step_accuracy,
        preprocess_logits_for_metrics=_predicted_class,
        callbacks=[MetricsJsonlCallback(cfg.output_dir)],
    )
    set_up_run(trainer, cfg, console, callbacks)
    return trainer, plan


def train_process_reward_model(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    resume: bool = False,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train the process reward model on the prepared rows and save it in output_dir (the
    classifier, or the adapter with its score head), resumable like every honer run."""
    console = console or Console(highlight=False, soft_wrap=True)
    trainer, plan = build_process_reward_trainer(
        cfg, model, tokenizer, train_dataset, eval_dataset, console, callbacks
    )
    steps = sum(sum(1 for x in labels if x != IGNORE_INDEX) for labels in train_dataset["labels"])
    summary = (
        f"rows {len(train_dataset):,} | labelled steps {steps:,} | loss token classification | "
        f"total steps {plan.total_steps:,} ({plan.epochs:.2f} epochs) | effective batch size "
        f"{cfg.effective_batch_size * plan.world_size} | warm-up {plan.warmup_steps} steps"
    )
    return run_built(cfg, trainer, plan, summary, resume, console)
