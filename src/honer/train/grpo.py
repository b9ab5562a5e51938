"""GRPO (`rl: grpo`, and GDPO, `rl: gdpo`): TRL's `GRPOTrainer`, run the honer way, with the
config's checks as rewards.

Each optimizer step samples `trl.num_generations` completions per prompt (transformers'
`generate` by default, on any device; vLLM on CUDA with `use_vllm`), scores them with the
rewards of `honer.evaluate.rewards`, and moves the policy toward the completions that scored above
their group's mean. TRL does the sampling, advantages and loss; honer brings its prepared
prompts (`honer.data.prompts`, cached and counted like any data), the config's chat template,
and, through `RunMixin`, the run behaviour every honer run has: atomic checkpoints, exact resume,
`metrics.jsonl` (reward, reward_std, `rewards/<check>/mean`, completion lengths, KL when
`trl.beta` > 0), the loss watchdog, no telemetry.

The reference model exists only when `trl.beta` > 0 (TRL's default is 0): for an adapter it is
the base with the adapter disabled, for full fine-tuning a frozen copy loaded as the policy was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head

from honer.config.schema import Config
from honer.errors import DataError
from honer.train.args import StepPlan, plan_steps, training_arguments
from honer.train.callbacks import MetricsJsonlCallback
from honer.train.preference import REF_ADAPTER, drop_reference_adapter
from honer.train.trainer import RunMixin, TrainResult, run_built, set_up_run

if TYPE_CHECKING:
    from datasets import Dataset


class HonerGRPOTrainer(RunMixin, GRPOTrainer):
    """TRL's `GRPOTrainer` with honer's run behaviour; counts prompt + completion tokens (all)
    and completion tokens (trained) for the tokens/s in the log."""

    def batch_tokens(self, inputs: dict[str, Any]) -> tuple[int, int]:
        completion = int(inputs["completion_mask"].sum())
        return int(inputs["prompt_mask"].sum()) + completion, completion


def grpo_template_kwargs(cfg: Config) -> dict[str, Any] | None:
    """The template variables GRPO renders prompts with: the config's, then `trl:`'s."""
    merged = {
        **(cfg.chat_template_kwargs or {}),
        **((cfg.trl and cfg.trl.chat_template_kwargs) or {}),
    }
    return merged or None


def grpo_arguments(cfg: Config, plan: StepPlan, has_eval: bool) -> GRPOConfig:
    """The run's `GRPOConfig`: honer's training arguments plus the `trl:` section."""
    t = cfg.trl
    assert t is not None  # validate requires it
    aggregation = t.multi_objective_aggregation or (
        "normalize_then_sum" if cfg.rl == "gdpo" else "sum_then_normalize"
    )
    vllm = {}
    if t.use_vllm:
        vllm = {
            "use_vllm": True,
            "vllm_mode": t.vllm_mode,
            "vllm_server_host": t.vllm_server_host,
            "vllm_server_port": t.vllm_server_port,
            "vllm_server_timeout": t.vllm_server_timeout,
            "vllm_gpu_memory_utilization": t.vllm_gpu_memory_utilization,
        }
    return training_arguments(
        cfg,
        plan,
        has_eval,
        GRPOConfig,
        num_generations=t.num_generations,
        max_completion_length=t.max_completion_length,
        beta=t.beta,
        temperature=t.temperature,
        top_p=t.top_p,
        top_k=t.top_k,
        min_p=t.min_p,
        repetition_penalty=t.repetition_penalty,
        scale_rewards=t.scale_rewards,
        loss_type=t.loss_type,
        epsilon=t.epsilon,
        epsilon_high=t.epsilon_high,
        num_iterations=t.num_iterations,
        mask_truncated_completions=t.mask_truncated_completions,
        reward_weights=t.reward_weights,
        multi_objective_aggregation=aggregation,
        generation_batch_size=t.generation_batch_size,
        steps_per_generation=t.steps_per_generation,
        log_completions=t.log_completions,
        num_completions_to_print=t.num_completions_to_print,
        chat_template_kwargs=grpo_template_kwargs(cfg),
        generation_kwargs=t.generation_kwargs,
        **vllm,
    )


def trl_rows(dataset: Dataset, name: str) -> Dataset:
    """honer's prepared prompts as TRL reads them (`prompt` + one column per reward input)."""
    from datasets import Dataset as HFDataset

    from honer.data.prompts import decode_rows

    try:
        return HFDataset.from_list(decode_rows(dataset))
    except Exception as err:  # Arrow cannot hold one column with two types
        raise DataError(
            f"the {name} prompts cannot form one table ({err}): each column the rewards read "
            "must hold the same kind of value in every row (e.g. `answer` always text)."
        ) from None


def build_grpo_trainer(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
    reward_funcs: list[Any] | None = None,
) -> tuple[HonerGRPOTrainer, StepPlan]:
    """The configured GRPO trainer and its step plan, without training. `reward_funcs` are the
    run's rewards in `reward_weights` order (`honer.evaluate.rewards.reward_functions(cfg)`
    builds them from the config)."""
    from honer.data.formats.context import format_context

    assert cfg.trl is not None
    if not reward_funcs:
        raise ValueError("GRPO needs its reward functions (honer.evaluate.rewards)")
    if len(train_dataset) == 0:
        raise DataError(
            "the training set has no prompts: check `datasets` and the prompts dropped for "
            "length (`sequence_len` − `trl.max_completion_length`); `honer preprocess` shows "
            "the counts."
        )
    if tokenizer.pad_token_id is None:
        raise DataError("the tokenizer has no pad token; set `special_tokens: {pad_token: ...}`.")
    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    # Every prompt is sampled num_generations times, and each generated batch is trained on
    # num_iterations times: that many completions per prompt and epoch.
    per_prompt = cfg.trl.num_generations * cfg.trl.num_iterations
    plan = plan_steps(cfg, len(train_dataset) * per_prompt, has_eval)
    args = grpo_arguments(cfg, plan, has_eval)
    adapter = bool(getattr(model, "peft_config", None))
    own_reference = args.beta != 0.0 and (not adapter or cfg.rl_reference_model is not None)
    if own_reference:
        # TRL would reload the base from its name with plain `from_pretrained`, missing what
        # honer's loader did (added tokens, quantization): honer gives it its own reference.
        args.beta = 0.0
    trainer = HonerGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=trl_rows(train_dataset, "training"),
        eval_dataset=trl_rows(eval_dataset, "validation") if has_eval else None,
        processing_class=tokenizer,
        callbacks=[MetricsJsonlCallback(cfg.output_dir)],
    )
    if own_reference:
        from honer.train.preference import reference_model

        trainer.args.beta = trainer.beta = cfg.trl.beta
        reference = reference_model(cfg, model, tokenizer)
        # As TRL prepares its own reference: the chunked log-prob head at the sampling
        # temperature (the model then returns `log_probs` instead of full logits).
        add_fused_lm_head(
            reference,
            temperature=trainer.temperature,
            cast_lm_head_to_fp32=trainer.args.cast_lm_head_to_fp32,
        )
        trainer.ref_model = trainer.accelerator.prepare_model(reference, evaluation_mode=True)
    peft_config = getattr(trainer.model, "peft_config", {})
    if REF_ADAPTER in peft_config and cfg.lora_model_dir is None:
        # A fresh adapter is zero at the start: the base with adapters disabled is the same
        # reference, without TRL's copy of the adapter.
        trainer.model.delete_adapter(REF_ADAPTER)
    # Prompts given as messages are rendered with the template the data was prepared with
    # (the config's `chat_template`), not only the tokenizer's own.
    trainer.chat_template = format_context(cfg, cfg.datasets[0], tokenizer).chat_template
    set_up_run(trainer, cfg, console, callbacks)
    return trainer, plan


def grpo_summary(cfg: Config, plan: StepPlan, dataset: Dataset, names: list[str]) -> str:
    """The line printed before training."""
    t = cfg.trl
    assert t is not None
    weights = t.reward_weights or [1.0] * len(names)
    rewards = ", ".join(f"{n}×{w:g}" for n, w in zip(names, weights, strict=False))
    return (
        f"prompts {len(dataset):,} × {t.num_generations} completions (≤ "
        f"{t.max_completion_length} tokens) | rewards {rewards} | beta {t.beta:g} | total steps "
        f"{plan.total_steps:,} ({plan.epochs:.2f} epochs) | warm-up {plan.warmup_steps} steps"
    )


def train_grpo(
    cfg: Config,
    model: Any,
    tokenizer: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    resume: bool = False,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
    reward_funcs: list[Any] | None = None,
) -> TrainResult:
    """Train `model` on the prepared prompts with GRPO, scored by `reward_funcs`, and save the
    result in output_dir, as every honer run does."""
    console = console or Console(highlight=False, soft_wrap=True)
    trainer, plan = build_grpo_trainer(
        cfg, model, tokenizer, train_dataset, eval_dataset, console, callbacks, reward_funcs
    )
    summary = grpo_summary(cfg, plan, train_dataset, list(trainer.reward_func_names))
    return run_built(
        cfg,
        trainer,
        plan,
        summary,
        resume,
        console,
        before_save=lambda t: drop_reference_adapter(t.model),
    )
