"""Preference tuning (`rl: dpo` / `rl: ipo` / `rl: kto`): TRL's `DPOTrainer` and
`KTOTrainer`, run the honer way (`rl: orpo` / `rl: simpo`, which need no reference model, are
built by `honer.train.reference_free` and run by the same `train_preference`).

Composition, not a copy: TRL computes the DPO losses and metrics; honer brings what a run needs
around them, through `RunMixin` and the same helpers the SFT trainer uses:

* the pairs, tokenized by `honer.data.preference` exactly as TRL would tokenize Axolotl's
  prompt/chosen/rejected text, cached under the data fingerprint (TRL's own preprocessing is
  skipped for them);
* `TrainingArguments` from the same config keys as SFT (`training_arguments` builds TRL's
  `DPOConfig` with the DPO fields added), so schedules, checkpoints, evaluation and trackers
  behave the same;
* atomic checkpoints, exact resume, the console and `metrics.jsonl` (with rewards/margins,
  rewards/accuracies, logps/…), the loss watchdog, and no telemetry.

The reference model. With a fresh LoRA adapter, the reference is the base model with the
adapter disabled: no second copy of any weight (TRL's `ref` adapter copy is removed, since a
fresh adapter changes nothing). Continuing a saved adapter (`lora_model_dir`), the reference is
that starting adapter, kept as TRL's frozen `ref` copy. Full fine-tuning loads the base a second
time, frozen, exactly as `honer.model.load` loaded the policy (unless
`precompute_ref_log_probs`, where the log-probs are computed once before training).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

from honer.config.schema import REFERENCE_FREE, Config
from honer.errors import DataError
from honer.train.args import StepPlan, plan_steps, training_arguments
from honer.train.callbacks import MetricsJsonlCallback
from honer.train.trainer import RunMixin, TrainResult, run_built, set_up_run

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
KTO_COLUMNS = ("prompt_ids", "completion_ids", "label")
REF_ADAPTER = "ref"


class _PreferenceRun(RunMixin):
    """Counts the tokens of TRL's preference batches for `RunMixin`'s tokens/s (their batches
    carry `completion_mask`: every sequence's tokens, and the trained answers')."""

    def batch_tokens(self, inputs: dict[str, Any]) -> tuple[int, int]:
        return int(inputs["attention_mask"].sum()), int(inputs["completion_mask"].sum())


class HonerDPOTrainer(_PreferenceRun, DPOTrainer):
    """TRL's `DPOTrainer` on honer's tokenized pairs, with honer's run behaviour."""

    def _prepare_dataset(
        self, dataset: Any, processing_class: Any, args: Any, dataset_name: str
    ) -> Any:
        """honer's pairs are tokenized already (as TRL would tokenize them): pass them on."""
        if set(PAIR_COLUMNS) <= set(dataset.column_names):
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)


class HonerKTOTrainer(_PreferenceRun, KTOTrainer):
    """TRL's `KTOTrainer` on honer's tokenized, labelled answers, with honer's run behaviour."""

    def _prepare_dataset(
        self, dataset: Any, processing_class: Any, args: Any, dataset_name: str
    ) -> Any:
        """honer's rows are tokenized already; only TRL's KL completions are added, as TRL adds
        them: each micro-batch's answers rotated by one, so every prompt gets another
        prompt's answer (the data order is fixed: `train_sampling_strategy: sequential`)."""
        if not set(KTO_COLUMNS) <= set(dataset.column_names):
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if not self.calculate_KL:
            return dataset

        def rotate(batch: dict[str, list]) -> dict[str, list]:
            answers = batch["completion_ids"]
            batch["KL_completion_ids"] = [answers[-1], *answers[:-1]]
            return batch

        return dataset.map(rotate, batched=True, batch_size=args.per_device_train_batch_size)


def dpo_arguments(cfg: Config, plan: StepPlan, has_eval: bool) -> DPOConfig:
    """The run's `DPOConfig`: honer's training arguments plus the DPO keys."""
    return training_arguments(
        cfg,
        plan,
        has_eval,
        DPOConfig,
        beta=cfg.rl_beta,
        loss_type=cfg.rl_losses,
        loss_weights=cfg.dpo_loss_weights,
        label_smoothing=cfg.dpo_label_smoothing,
        use_weighting=cfg.dpo_use_weighting,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        # Pairs longer than sequence_len were dropped while preparing, unless
        # `excess_length_strategy: truncate`: then the collator keeps the first tokens.
        max_length=cfg.sequence_len,
        truncation_mode="keep_start",
    )


def kto_arguments(cfg: Config, plan: StepPlan, has_eval: bool) -> KTOConfig:
    """The run's `KTOConfig`: honer's training arguments plus the KTO keys. The data order is
    sequential: KTO's KL term pairs each prompt with its micro-batch neighbour's answer."""
    return training_arguments(
        cfg,
        plan,
        has_eval,
        KTOConfig,
        beta=cfg.rl_beta,
        desirable_weight=cfg.kto_desirable_weight,
        undesirable_weight=cfg.kto_undesirable_weight,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        max_length=cfg.sequence_len,
        train_sampling_strategy="sequential",
    )


def _check_rows(dataset: Dataset | None, name: str, columns: tuple[str, ...]) -> None:
    if dataset is None or len(dataset) == 0:
        raise DataError(
            f"the {name} set has no preference rows: check `datasets` (paths, `type`) and the "
            "filters that drop rows (`sequence_len`); `honer preprocess` shows the counts."
        )
    missing = set(columns) - set(dataset.column_names)
    if missing:
        raise DataError(f"the {name} set lacks the column(s) {sorted(missing)}.")


def build_preference_trainer(
    cfg: Config,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
    ref_model: Any = None,
) -> tuple[Any, StepPlan]:
    """The configured DPO, KTO, ORPO or SimPO trainer and its step plan, without training.

    `ref_model` is needed only for full fine-tuning without `precompute_ref_log_probs` (see the
    module docstring); an adapter run uses its own base.
    """
    kto = cfg.rl == "kto"
    columns = KTO_COLUMNS if kto else PAIR_COLUMNS
    _check_rows(train_dataset, "training", columns)
    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    if has_eval:
        _check_rows(eval_dataset, "validation", columns)
    if tokenizer.pad_token_id is None:
        raise DataError("the tokenizer has no pad token; set `special_tokens: {pad_token: ...}`.")
    plan = plan_steps(cfg, len(train_dataset), has_eval)
    if cfg.rl in REFERENCE_FREE:
        from honer.train.reference_free import reference_free_trainer

        trainer = reference_free_trainer(
            cfg,
            model,
            tokenizer,
            train_dataset,
            eval_dataset if has_eval else None,
            plan,
            callbacks=[MetricsJsonlCallback(cfg.output_dir)],
        )
    else:
        args = (kto_arguments if kto else dpo_arguments)(cfg, plan, has_eval)
        trainer_class = HonerKTOTrainer if kto else HonerDPOTrainer
        trainer = trainer_class(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset if has_eval else None,
            processing_class=tokenizer,
            callbacks=[MetricsJsonlCallback(cfg.output_dir)],
        )
    peft_config = getattr(trainer.model, "peft_config", {})
    if REF_ADAPTER in peft_config and cfg.lora_model_dir is None:
        # A fresh adapter is zero at the start: the base with adapters disabled is the same
        # reference, without TRL's second copy of the adapter.
        trainer.model.delete_adapter(REF_ADAPTER)
    set_up_run(trainer, cfg, console, callbacks)
    return trainer, plan


def drop_reference_adapter(model: Any) -> None:
    """TRL's frozen `ref` adapter copy is not a result: never saved beside the trained one."""
    if REF_ADAPTER in getattr(model, "peft_config", {}):
        model.delete_adapter(REF_ADAPTER)


def pair_summary(plan: StepPlan, dataset: Dataset, cfg: Config) -> str:
    """The line printed before training: rows, answer tokens, loss, steps, batch."""
    eff = cfg.effective_batch_size * plan.world_size
    if cfg.rl == "kto":
        answers = sum(len(c) for c in dataset["completion_ids"])
        rows = f"answers {plan.examples:,} ({sum(dataset['label']):,} desirable)"
        loss = "kto"
    else:
        pairs = zip(dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
        answers = sum(len(c) + len(r) for c, r in pairs)
        rows, loss = f"pairs {plan.examples:,}", "+".join(cfg.rl_losses)
    return (
        f"{rows} | answer tokens {answers:,} | loss {loss} ({cfg.rl_strength}) | total steps "
        f"{plan.total_steps:,} ({plan.epochs:.2f} epochs) | effective batch size {eff} | "
        f"warm-up {plan.warmup_steps} steps"
    )


def reference_model(cfg: Config, model: Any, tokenizer: Any) -> Any:
    """The frozen reference model, loaded exactly as the policy was (dtype, quantization,
    resized embeddings): `rl_reference_model` when set, else the base for a full fine-tune.
    None when the run needs none: ORPO/SimPO, an adapter's own base (adapter disabled), or a
    full fine-tune with precomputed log-probs."""
    if cfg.rl in REFERENCE_FREE:  # ORPO and SimPO compare the policy's own log-probs
        return None
    if cfg.rl_reference_model is None and (
        getattr(model, "peft_config", None) or cfg.precompute_ref_log_probs
    ):
        return None
    from honer.errors import ConfigError
    from honer.model.load import load_model

    source = cfg.rl_reference_model
    ref = load_model(
        cfg if source is None else cfg.model_copy(update={"base_model": source}), tokenizer
    )
    rows, policy_rows = (
        ref.get_input_embeddings().weight.shape[0],
        model.get_input_embeddings().weight.shape[0],
    )
    if rows != policy_rows:
        raise ConfigError(
            [
                (
                    "rl_reference_model",
                    f"`{source}` has {rows:,} token embeddings and the policy {policy_rows:,}: the "
                    "reference must share the base model's tokenizer.",
                )
            ]
        )
    ref.requires_grad_(False)
    return ref.eval()


def train_preference(
    cfg: Config,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    resume: bool = False,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train `model` on the prepared pairs as `cfg` says, and save the result in output_dir
    (the adapter or model, tokenizer, `config.yml`, `metrics.jsonl`), resumable like SFT."""
    console = console or Console(highlight=False, soft_wrap=True)
    ref = reference_model(cfg, model, tokenizer)
    trainer, plan = build_preference_trainer(
        cfg, model, tokenizer, train_dataset, eval_dataset, console, callbacks, ref_model=ref
    )
    summary = pair_summary(plan, train_dataset, cfg)
    return run_built(
        cfg,
        trainer,
        plan,
        summary,
        resume,
        console,
        before_save=lambda t: drop_reference_adapter(t.model),
    )
