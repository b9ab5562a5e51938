"""Reward models (`reward_model: true`): TRL's `RewardTrainer`, run the honer way.

A reward model is the base model with a one-output classifier head (`AutoModelForSequenceClassification`,
`num_labels: 1`) that scores a whole conversation. It learns from preference pairs with the
Bradley-Terry loss, -log σ(r(chosen) − r(rejected)) (plus `center_rewards_coefficient` × the
squared mean reward, when set), so that a better answer scores higher; that score can then rank
samples, filter data, or serve as a reward.

TRL computes the loss and the metrics (accuracy, margin, min/mean/max reward); honer brings the
pairs (`chosen_ids` / `rejected_ids`, tokenized and cached by `honer.data.prepare` exactly as the
same rows would be for DPO, or as Axolotl's `bradley_terry.chat_template` renders them), and,
through `RunMixin`, the run behaviour of every honer run: atomic checkpoints, exact resume,
`metrics.jsonl`, the loss watchdog, no telemetry. With LoRA, the new score head is trained in
full and saved with the adapter (peft's sequence-classification task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from trl import RewardConfig, RewardTrainer

from honer.config.schema import Config
from honer.errors import DataError
from honer.train.args import StepPlan, plan_steps, training_arguments
from honer.train.callbacks import MetricsJsonlCallback
from honer.train.trainer import RunMixin, TrainResult, run_built, set_up_run

if TYPE_CHECKING:
    from datasets import Dataset

REWARD_COLUMNS = ("chosen_ids", "rejected_ids")


class HonerRewardTrainer(RunMixin, RewardTrainer):
    """TRL's `RewardTrainer` on honer's tokenized pairs, with honer's run behaviour. Every
    token of both sequences is read (and none generated): all count as trained for tokens/s."""

    def batch_tokens(self, inputs: dict[str, Any]) -> tuple[int, int]:
        tokens = int(inputs["attention_mask"].sum())
        return tokens, tokens


def reward_arguments(cfg: Config, plan: StepPlan, has_eval: bool) -> RewardConfig:
    """The run's `RewardConfig`: honer's training arguments plus the reward-model keys. Pairs
    were bounded by `sequence_len` when prepared, so TRL's length filter has nothing to do."""
    return training_arguments(
        cfg,
        plan,
        has_eval,
        RewardConfig,
        center_rewards_coefficient=cfg.center_rewards_coefficient,
        max_length=None,
    )


def build_reward_trainer(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[HonerRewardTrainer, StepPlan]:
    """The configured reward-model trainer and its step plan, without training."""
    for name, data in (("training", train_dataset), ("validation", eval_dataset)):
        if data is None:
            continue
        if name == "training" and len(data) == 0:
            raise DataError(
                "the training set has no pairs: check `datasets` and the pairs dropped for "
                "`sequence_len`; `honer preprocess` shows the counts."
            )
        missing = set(REWARD_COLUMNS) - set(data.column_names)
        if missing:
            raise DataError(f"the {name} set lacks the column(s) {sorted(missing)}.")
    if tokenizer.pad_token_id is None:
        raise DataError("the tokenizer has no pad token; set `special_tokens: {pad_token: ...}`.")
    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    plan = plan_steps(cfg, len(train_dataset), has_eval)
    trainer = HonerRewardTrainer(
        model=model,
        args=reward_arguments(cfg, plan, has_eval),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if has_eval else None,
        processing_class=tokenizer,
        callbacks=[MetricsJsonlCallback(cfg.output_dir)],
    )
    set_up_run(trainer, cfg, console, callbacks)
    return trainer, plan


def train_reward_model(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    resume: bool = False,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train the reward model on the prepared pairs and save it in output_dir (the classifier,
    or the adapter with its score head), resumable like every honer run."""
    console = console or Console(highlight=False, soft_wrap=True)
    trainer, plan = build_reward_trainer(
        cfg, model, tokenizer, train_dataset, eval_dataset, console, callbacks
    )
    tokens = sum(len(ids) for column in REWARD_COLUMNS for ids in train_dataset[column])
    summary = (
        f"pairs {len(train_dataset):,} | tokens {tokens:,} | loss bradley-terry"
        + (
            f" + {cfg.center_rewards_coefficient:g} × centring"
            if cfg.center_rewards_coefficient
            else ""
        )
        + f" | total steps {plan.total_steps:,} ({plan.epochs:.2f} epochs) | effective batch "
        f"size {cfg.effective_batch_size * plan.world_size} | warm-up {plan.warmup_steps} steps"
    )
    return run_built(cfg, trainer, plan, summary, resume, console)
