"""Checks that relate several config keys.

Each check returns (key_path, message) problems; `load_config` collects all of them before raising,
so a user fixes a config in one pass. Checks never change the config: defaults live in the schema.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator
from typing import Any

from honer.config.evals import spec_problems
from honer.config.schema import (
    GRPO_TYPES,
    KTO_TYPES,
    ONLINE_RL,
    PREFERENCE_TYPES,
    PRM_TYPES,
    REFERENCE_FREE,
    REWARD_TYPES,
    Config,
)

Problem = tuple[str, str]

LORA_KEYS = (
    "lora_model_dir",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_target_linear",
    "lora_modules_to_save",
    "lora_fan_in_fan_out",
    "peft_use_dora",
    "peft_use_rslora",
)


def _precision(cfg: Config) -> Iterator[Problem]:
    if cfg.fp16 and cfg.bf16 is True:
        yield "fp16", "`fp16` and `bf16` are both true: choose one precision."


def _gguf(cfg: Config) -> Iterator[Problem]:
    if cfg.gguf_file is not None and cfg.base_model.lower().endswith(".gguf"):
        yield (
            "gguf_file",
            "set, but `base_model` already names a .gguf file: keep one of the two (`base_model: "
            "FOLDER` + `gguf_file: NAME`, or `base_model: FILE.gguf`).",
        )
    if cfg.gguf_file is not None and not cfg.gguf_file.lower().endswith(".gguf"):
        yield "gguf_file", f"`{cfg.gguf_file}` is not a .gguf file name."
    gguf = cfg.gguf_file is not None or cfg.base_model.lower().endswith(".gguf")
    if gguf and cfg.base_model_config is not None:
        yield (
            "base_model_config",
            "cannot be combined with a GGUF base: the GGUF file carries the model config.",
        )


def _quantization(cfg: Config) -> Iterator[Problem]:
    if cfg.load_in_4bit and cfg.load_in_8bit:
        yield "load_in_4bit", "`load_in_4bit` and `load_in_8bit` are both true: choose one."
    if cfg.adapter == "qlora" and not cfg.load_in_4bit:
        yield (
            "adapter",
            "`adapter: qlora` needs `load_in_4bit: true` (QLoRA is LoRA on a 4-bit base).",
        )
    if cfg.adapter == "lora" and cfg.load_in_4bit:
        yield "adapter", "`load_in_4bit: true` with `adapter: lora`: use `adapter: qlora`."
    if cfg.adapter is None and (cfg.load_in_4bit or cfg.load_in_8bit):
        key = "load_in_4bit" if cfg.load_in_4bit else "load_in_8bit"
        yield (
            key,
            (
                f"`{key}: true` without an adapter: a quantized model cannot be fully fine-tuned; "
                "set `adapter: qlora` (4-bit) or `adapter: lora` (8-bit)."
            ),
        )
    if cfg.bnb_config_kwargs is not None and not (cfg.load_in_4bit or cfg.load_in_8bit):
        yield "bnb_config_kwargs", "set, but neither `load_in_4bit` nor `load_in_8bit` is true."


def _adapter_keys(cfg: Config) -> Iterator[Problem]:
    if cfg.adapter is not None:
        return
    for key in LORA_KEYS:
        value = getattr(cfg, key)
        if key in cfg.model_fields_set and value not in (None, False):
            yield (
                key,
                (
                    f"`{key}` is set but `adapter` is empty (full fine-tuning): set `adapter: lora` "
                    f"or remove `{key}`."
                ),
            )


def _either_or(cfg: Config) -> Iterator[Problem]:
    pairs = [
        ("warmup_steps", "warmup_ratio"),
        ("evals_per_epoch", "eval_steps"),
        ("saves_per_epoch", "save_steps"),
    ]
    for a, b in pairs:
        if getattr(cfg, a) is not None and getattr(cfg, b) is not None:
            yield b, f"`{a}` and `{b}` are both set: keep one."
    kernels = [k for k in ("flash_attention", "sdp_attention") if getattr(cfg, k)]
    if len(kernels) == 2:
        yield "sdp_attention", "`flash_attention` and `sdp_attention` are both true: keep one."
    if kernels and cfg.attn_implementation is not None:
        yield "attn_implementation", f"set together with `{kernels[0]}`: keep one."


def _data(cfg: Config) -> Iterator[Problem]:
    v = cfg.val_set_size
    if v < 0:
        yield "val_set_size", f"{v} is negative: use a fraction in [0, 1) or a row count >= 1."
    elif v >= 1 and v != int(v):
        yield (
            "val_set_size",
            (f"{v} is neither a fraction in [0, 1) nor a whole row count: use e.g. 0.05 or 200."),
        )
    if cfg.test_datasets and v > 0:
        yield "val_set_size", "set together with `test_datasets`: keep one way of validating."
    if cfg.chat_template == "jinja" and not cfg.chat_template_jinja:
        yield "chat_template_jinja", "`chat_template: jinja` needs the template text here."
    if cfg.chat_template_jinja and cfg.chat_template != "jinja":
        yield "chat_template", "`chat_template_jinja` is set: also set `chat_template: jinja`."
    for group, entries in (("datasets", cfg.datasets), ("test_datasets", cfg.test_datasets or [])):
        for i, ds in enumerate(entries):
            where = f"{group}[{i}]"
            chat_only = ("conversation", "roles", "roles_to_train", "field_messages")
            if ds.type not in ("sharegpt", "chat_template") and not ds.type.startswith(
                "chat_template."
            ):
                for key in chat_only:
                    if getattr(ds, key) is not None:
                        yield f"{where}.{key}", f"only applies to chat formats, not `{ds.type}`."
            if ds.type != "alpaca" and ds.prompt_style != "instruct":
                yield f"{where}.prompt_style", f"only applies to `alpaca`, not `{ds.type}`."
            if ds.type == "chat_template" and ds.conversation is not None:
                yield (
                    f"{where}.conversation",
                    ("is a sharegpt key; for chat_template use `chat_template:`."),
                )
            if ds.chat_template == "jinja" and not cfg.chat_template_jinja:
                yield f"{where}.chat_template", "`jinja` needs top-level `chat_template_jinja`."


def _schedule(cfg: Config) -> Iterator[Problem]:
    """Every rule about `lr_scheduler` and its arguments (`honer.schedules` knows the names)."""
    from honer.schedules import TRANSFORMERS_SCHEDULES, make_policy

    name = cfg.lr_scheduler
    if name == "composite" and not cfg.lr_phases:
        yield "lr_phases", "`lr_scheduler: composite` needs `lr_phases: [{policy, steps}, …]`."
    if cfg.lr_phases and name != "composite":
        yield "lr_phases", "only applies to `lr_scheduler: composite`."
    if name == "composite" and cfg.lr_scheduler_kwargs:
        yield (
            "lr_scheduler_kwargs",
            "composite takes its parameters per phase (`lr_phases[].kwargs`).",
        )
    ratio = cfg.cosine_min_lr_ratio
    if ratio is not None and name not in ("cosine", "cosine_with_min_lr"):
        yield (
            "cosine_min_lr_ratio",
            f"only applies to cosine schedules, not `lr_scheduler: {name}`.",
        )
    if name not in TRANSFORMERS_SCHEDULES:
        yield from _policy_problems(cfg, make_policy)
        return
    kwargs = dict(cfg.lr_scheduler_kwargs or {})
    warm = (cfg.warmup_steps or 0) > 0 or (cfg.warmup_ratio or 0) > 0
    if name == "constant" and warm:
        key = "warmup_steps" if cfg.warmup_steps else "warmup_ratio"
        yield (
            key,
            "`lr_scheduler: constant` has no warm-up: use `lr_scheduler: constant_with_warmup`, "
            f"or remove `{key}`.",
        )
    has_min = "min_lr" in kwargs or "min_lr_rate" in kwargs
    if ratio is not None and has_min:
        yield (
            "cosine_min_lr_ratio",
            "set together with `lr_scheduler_kwargs.min_lr`/`min_lr_rate`: keep one.",
        )
    if name == "cosine_with_min_lr" and ratio is None and not has_min:
        yield (
            "cosine_min_lr_ratio",
            "`lr_scheduler: cosine_with_min_lr` needs the final LR as a fraction of the peak, "
            "e.g. `cosine_min_lr_ratio: 0.1`.",
        )
    accepted = TRANSFORMERS_SCHEDULES["cosine_with_min_lr" if ratio is not None else name]
    for key in kwargs:
        if key not in accepted:
            takes = ", ".join(accepted) if accepted else "no extra arguments"
            yield (
                f"lr_scheduler_kwargs.{key}",
                f"not an argument of the `{name}` schedule (it takes: {takes}).",
            )
    lr_end = kwargs.get("lr_end")
    lr = cfg.resolved_learning_rate
    if name == "polynomial" and isinstance(lr_end, int | float) and lr_end >= lr:
        yield "lr_scheduler_kwargs.lr_end", f"{lr_end} must be below the learning rate ({lr})."


def _policy_problems(cfg: Config, make_policy: Callable[..., Any]) -> Iterator[Problem]:
    """honer's own policies: parameters named and shaped as the policy takes them."""
    if cfg.lr_scheduler == "composite":
        entries = [
            (f"lr_phases[{i}].kwargs", p.policy, p.kwargs)
            for i, p in enumerate(cfg.lr_phases or [])
        ]
    else:
        entries = [("lr_scheduler_kwargs", cfg.lr_scheduler, cfg.lr_scheduler_kwargs)]
    for key, name, params in entries:
        try:
            make_policy(name, params)(0, 10)  # modes and shapes are checked when it first runs
        except (ValueError, TypeError) as err:
            yield key, str(err)


def _validation(cfg: Config) -> Iterator[Problem]:
    """Keys that need a validation set, and checkpoints that must fall on evaluations."""
    has_eval = cfg.val_set_size > 0 or bool(cfg.test_datasets)
    needs = [
        ("early_stopping_patience", cfg.early_stopping_patience),
        ("load_best_model_at_end", cfg.load_best_model_at_end),
    ]
    if not has_eval:
        for key, value in needs:
            if value:
                yield (
                    key,
                    "set, but there is no validation set: set `val_set_size` or "
                    f"`test_datasets`, or remove `{key}`.",
                )
        return
    if not (cfg.early_stopping_patience or cfg.load_best_model_at_end):
        return
    key = "early_stopping_patience" if cfg.early_stopping_patience else "load_best_model_at_end"
    evals, saves = (cfg.evals_per_epoch, cfg.eval_steps), (cfg.saves_per_epoch, cfg.save_steps)
    aligned = (
        evals == saves  # both once per epoch, or the same per-epoch count / step interval
        or (cfg.evals_per_epoch is not None and cfg.evals_per_epoch == cfg.saves_per_epoch)
        or (bool(cfg.save_steps and cfg.eval_steps) and cfg.save_steps % cfg.eval_steps == 0)
    )
    if not aligned:
        yield (
            key,
            "checkpoints must be saved at evaluations: use the same `saves_per_epoch` and "
            "`evals_per_epoch` (or `save_steps` a multiple of `eval_steps`).",
        )


def _supported(cfg: Config) -> Iterator[Problem]:
    """Keys honer parses but cannot honour yet: refused, never silently ignored."""
    if not cfg.save_safetensors:
        yield (
            "save_safetensors",
            "`false` is not supported: transformers 5 writes only safetensors; remove the key.",
        )


# Optimizers that need a package beyond torch: (module to find, what to install). transformers
# imports these only when it builds the optimizer, so a missing one would fail after the data and
# the model are loaded; the config check says it first.
_BNB = ("bitsandbytes", "pip install 'bitsandbytes>=0.45' (or `pip install 'honer[quant]'`)")
OPTIMIZER_PACKAGES: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        (
            "adamw_bnb_8bit",
            "adamw_8bit",
            "ademamix",
            "ademamix_8bit",
            "lion_8bit",
            "lion_32bit",
            "paged_adamw_32bit",
            "paged_adamw_8bit",
            "paged_ademamix_32bit",
            "paged_ademamix_8bit",
            "paged_lion_32bit",
            "paged_lion_8bit",
            "rmsprop_bnb",
            "rmsprop_bnb_8bit",
            "rmsprop_bnb_32bit",
        ),
        _BNB,
    ),
    "adamw_torch_4bit": ("torchao", "pip install torchao"),
    "adamw_torch_8bit": ("torchao", "pip install torchao"),
    **dict.fromkeys(
        (
            "galore_adamw",
            "galore_adamw_8bit",
            "galore_adafactor",
            "galore_adamw_layerwise",
            "galore_adamw_8bit_layerwise",
            "galore_adafactor_layerwise",
        ),
        ("galore_torch", "pip install galore-torch"),
    ),
    **dict.fromkeys(
        ("apollo_adamw", "apollo_adamw_layerwise"), ("apollo_torch", "pip install apollo-torch")
    ),
    "lomo": ("lomo_optim", "pip install lomo-optim"),
    "adalomo": ("lomo_optim", "pip install lomo-optim"),
    "grokadamw": ("grokadamw", "pip install grokadamw"),
    **dict.fromkeys(
        ("schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd"),
        ("schedulefree", "pip install schedulefree"),
    ),
    "stable_adamw": ("optimi", "pip install torch-optimi"),
    "adamw_anyprecision": ("torchdistx", "pip install torchdistx"),
    "adamw_torch_xla": ("torch_xla", "a TPU machine with torch_xla"),
    "adamw_torch_npu_fused": ("torch_npu", "an Ascend NPU machine with torch_npu"),
}


def _optimizer(cfg: Config) -> Iterator[Problem]:
    import importlib.util

    need = OPTIMIZER_PACKAGES.get(cfg.optimizer)
    if need is not None and importlib.util.find_spec(need[0]) is None:
        module, install = need
        yield (
            "optimizer",
            f"`{cfg.optimizer}` needs the {module} package, which is not installed: {install} "
            "(or choose `adamw_torch`).",
        )


def _evals(cfg: Config) -> Iterator[Problem]:
    from honer.config.evals import spec_problems

    for i, spec in enumerate(cfg.evals.checks if cfg.evals else []):
        yield from spec_problems(spec, f"evals.checks[{i}]")


def _tracking(cfg: Config) -> Iterator[Problem]:
    wandb_keys = (
        "wandb_entity",
        "wandb_name",
        "wandb_run_id",
        "wandb_watch",
        "wandb_log_model",
        "wandb_mode",
    )
    for key in wandb_keys:
        if getattr(cfg, key) is not None and not cfg.wandb_project:
            yield key, "is set but `wandb_project` is not: W&B logging needs a project."
    if cfg.report_to and "none" in cfg.report_to and len(cfg.report_to) > 1:
        yield "report_to", "`none` cannot be combined with other integrations."
    if cfg.mlflow_experiment_name and not cfg.mlflow_tracking_uri:
        yield "mlflow_experiment_name", "is set but `mlflow_tracking_uri` is not."
    if cfg.hub_strategy and not cfg.hub_model_id:
        yield "hub_strategy", "is set but `hub_model_id` is not."


def _parallel(cfg: Config) -> Iterator[Problem]:
    from honer.config.engines import DEEPSPEED_PRESETS, fsdp_version

    fsdp = cfg.fsdp_words
    if cfg.deepspeed and fsdp:
        yield "fsdp", "set together with `deepspeed`: choose one sharding engine."
    if cfg.deepspeed and cfg.deepspeed not in DEEPSPEED_PRESETS:
        from pathlib import Path

        if not Path(cfg.deepspeed).is_file():
            yield (
                "deepspeed",
                f"`{cfg.deepspeed}` is neither a shipped config ({', '.join(DEEPSPEED_PRESETS)}) "
                "nor an existing JSON file.",
            )
    fsdp1 = [w for w in fsdp if w in ("hybrid_shard", "hybrid_shard_zero2", "no_shard")]
    if fsdp1:
        yield (
            "fsdp",
            f"`{fsdp1[0]}` is an FSDP1 strategy (transformers 5.20 removed FSDP1): use "
            "`full_shard` or `shard_grad_op`; across nodes, plain DDP or `deepspeed: zero2`.",
        )
    if "full_shard" in fsdp and "shard_grad_op" in fsdp:
        yield "fsdp", "`full_shard` and `shard_grad_op` are both set: choose one."
    if cfg.fsdp_version is not None and not fsdp:
        yield "fsdp_version", "is set but neither `fsdp` nor `fsdp_config` is: FSDP is off."
    version = fsdp_version(cfg)
    if version != 2:
        key = "fsdp_version" if cfg.fsdp_version is not None else "fsdp_config.version"
        yield key, f"FSDP{version} is not supported: use 2 (FSDP2, `fully_shard`)."
    if fsdp and cfg.load_in_8bit:
        yield "fsdp", "FSDP with an 8-bit base is not supported: use DDP, or a 4-bit base (QLoRA)."
    bnb = cfg.bnb_config_kwargs
    if fsdp and cfg.load_in_4bit and bnb is not None and bnb.bnb_4bit_quant_storage == "uint8":
        yield (
            "bnb_config_kwargs.bnb_4bit_quant_storage",
            "`uint8` cannot be sharded evenly with FSDP: leave it unset (the compute dtype).",
        )
    if cfg.dp_shard_size is not None and not fsdp:
        yield "dp_shard_size", "is set but FSDP is off (`fsdp` / `fsdp_config`)."
    if cfg.ddp_find_unused_parameters is not None and (cfg.deepspeed or fsdp):
        yield "ddp_find_unused_parameters", "applies to DDP only, not to DeepSpeed or FSDP."


def _axolotl_features(cfg: Config) -> Iterator[Problem]:
    """Keys added for Axolotl configs that only mean something together with another."""
    sharded = bool(cfg.fsdp_words or cfg.deepspeed)
    if cfg.gradient_checkpointing_kwargs is not None and not cfg.gradient_checkpointing:
        yield (
            "gradient_checkpointing_kwargs",
            "set, but `gradient_checkpointing` is off: set `gradient_checkpointing: true` or "
            "remove the key.",
        )
    offload = cfg.activation_offloading or cfg.gradient_checkpointing in ("offload", "offload_disk")
    if offload and sharded:
        key = "activation_offloading" if cfg.activation_offloading else "gradient_checkpointing"
        yield key, "activation offloading runs on one process without FSDP/DeepSpeed: keep one."
    if cfg.optimizer == "muon" and sharded:
        yield "optimizer", "`muon` cannot run with FSDP or DeepSpeed (unsharded matrices): use DDP."
    for key in ("torch_compile_backend", "torch_compile_mode"):
        if getattr(cfg, key) is not None and not cfg.torch_compile:
            yield key, "set, but `torch_compile` is off: set `torch_compile: true` or remove it."
    if cfg.cosine_constant_lr_ratio is not None and cfg.lr_scheduler not in (
        "cosine",
        "cosine_with_min_lr",
    ):
        yield (
            "cosine_constant_lr_ratio",
            f"only applies to cosine schedules, not `lr_scheduler: {cfg.lr_scheduler}`.",
        )
    for key in ("hub_private_repo", "hub_revision"):
        if getattr(cfg, key) is not None and not cfg.hub_model_id:
            yield key, "is set but `hub_model_id` is not."
    if cfg.liger_cross_entropy and cfg.liger_fused_linear_cross_entropy:
        yield (
            "liger_cross_entropy",
            "set together with `liger_fused_linear_cross_entropy`: keep one loss.",
        )


# TRL 1.16's DPO loss names (`DPOConfig.loss_type`).
DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


def _preference(cfg: Config) -> Iterator[Problem]:
    """`rl:` runs and their data: preference formats only with `rl`, and only what runs."""
    entries = [("datasets", cfg.datasets), ("test_datasets", cfg.test_datasets or [])]
    for group, items in entries:
        for i, ds in enumerate(items):
            where = f"{group}[{i}]"
            if ds.type not in PRM_TYPES:
                for key in ("max_completion_length", "train_on_last_step_only"):
                    if getattr(ds, key):
                        yield f"{where}.{key}", "applies to `type: stepwise_supervised` rows."
                if ds.step_separator != "\n":
                    yield f"{where}.step_separator", "applies to `type: stepwise_supervised` rows."
            elif not cfg.process_reward_model:
                yield (
                    f"{where}.type",
                    "`stepwise_supervised` rows train a process reward model: set "
                    "`process_reward_model: true`.",
                )
    if cfg.process_reward_model:
        yield from _process_reward_model(cfg, entries)
        return
    if cfg.reward_model:
        yield from _reward_model(cfg, entries)
        return
    for key in ("num_labels", "center_rewards_coefficient"):
        if getattr(cfg, key) is not None:
            yield key, "applies to reward models (`reward_model: true`) only."
    for group, items in entries:
        for i, ds in enumerate(items):
            if ds.type in REWARD_TYPES:
                yield (
                    f"{group}[{i}].type",
                    f"`{ds.type}` is reward-model data: set `reward_model: true` to train on it.",
                )
    if cfg.rl is None:
        for group, items in entries:
            for i, ds in enumerate(items):
                if ds.type in PREFERENCE_TYPES or ds.type in KTO_TYPES:
                    yield (
                        f"{group}[{i}].type",
                        f"`{ds.type}` is a preference format: set `rl: dpo` (pairs) or `rl: kto` "
                        "(labelled answers) to train on it.",
                    )
        for key in ("dpo_loss_type", "dpo_loss_weights"):
            if getattr(cfg, key) is not None:
                yield key, "applies to `rl: dpo` / `rl: ipo` runs only."
        for key, method in (
            ("orpo_alpha", "orpo"),
            ("simpo_gamma", "simpo"),
            ("cpo_alpha", "simpo"),
        ):
            if getattr(cfg, key) is not None:
                yield key, f"applies to `rl: {method}` runs only."
        if cfg.trl is not None:
            yield "trl", "holds GRPO's settings: set `rl: grpo` to use them."
        if cfg.rl_reference_model is not None:
            yield "rl_reference_model", "applies to `rl` runs (DPO, IPO, KTO, GRPO) only."
        for group, items in entries:
            for i, ds in enumerate(items):
                if ds.transform is not None:
                    yield f"{group}[{i}].transform", "prompt transforms are for `rl: grpo` data."
        return
    if cfg.rl in ONLINE_RL:
        yield from _grpo(cfg, entries)
        return
    if cfg.trl is not None:
        yield "trl", f"holds GRPO's settings; `rl: {cfg.rl}` does not use them: remove it."
    kto = cfg.rl == "kto"
    wanted, what = (
        (KTO_TYPES, "labelled answers") if kto else (PREFERENCE_TYPES, "preference pairs")
    )
    for group, items in entries:
        for i, ds in enumerate(items):
            if ds.type not in wanted:
                yield (
                    f"{group}[{i}].type",
                    f"`rl: {cfg.rl}` trains on {what}; `{ds.type}` is not such a format: use one "
                    "of " + ", ".join(wanted) + ".",
                )
    yield from _method_keys(cfg)
    if kto:
        if cfg.micro_batch_size < 2:
            yield (
                "micro_batch_size",
                "KTO estimates its KL term from the other answers of the micro-batch: use 2 or more.",
            )
    elif cfg.kto_desirable_weight != 1.0 or cfg.kto_undesirable_weight != 1.0:
        yield "kto_desirable_weight", "applies to `rl: kto` only."
    losses = cfg.dpo_loss_type or []
    for name in losses:
        if name not in DPO_LOSSES:
            yield "dpo_loss_type", f"`{name}` is not a DPO loss: use " + ", ".join(DPO_LOSSES) + "."
    if cfg.rl == "ipo" and losses and losses != ["ipo"]:
        yield (
            "dpo_loss_type",
            "`rl: ipo` is the `ipo` loss: remove `dpo_loss_type` or use `rl: dpo`.",
        )
    weights = cfg.dpo_loss_weights
    if weights is not None and len(weights) != len(losses):
        yield (
            "dpo_loss_weights",
            f"{len(weights)} weight(s) for {len(losses)} `dpo_loss_type` entr(ies): give one each.",
        )
    unsupported = {
        "sample_packing": "packs SFT samples; preference pairs are padded per batch",
        "eval_table_size": "(generations during training) is not supported with `rl` yet",
        "use_cut_cross_entropy": "is an SFT loss; DPO computes its own log-probabilities",
    }
    for key, why in unsupported.items():
        if getattr(cfg, key, None):
            yield key, f"`{key}` {why}."


# A Python reward: `module.function` (Axolotl) or `module:function` (honer's `callable` checks).
_PYTHON_NAME = re.compile(r"^[A-Za-z_][\w.]*[.:][A-Za-z_]\w*$")


def _grpo(cfg: Config, entries: list[tuple[str, list[Any]]]) -> Iterator[Problem]:
    """`rl: grpo` / `rl: gdpo`: prompt data, the `trl:` section, rewards that resolve, and
    batch sizes that hold whole groups of `num_generations` completions."""
    for group, items in entries:
        for i, ds in enumerate(items):
            if ds.type not in GRPO_TYPES:
                yield (
                    f"{group}[{i}].type",
                    f"`rl: {cfg.rl}` trains on prompts; `{ds.type}` is not a prompt format: use "
                    "`prompt` (a `prompt` column: text or messages), `chat_template` (a "
                    "conversation; its last answer is the reference `answer`), or a Python "
                    "transform (`type: module.function`).",
                )
            elif ds.transform is not None and ds.type != "prompt":
                yield f"{group}[{i}].transform", "applies to `type: prompt` rows."
    yield from _method_keys(cfg)
    trl = cfg.trl
    if trl is None:
        yield (
            "trl",
            f"`rl: {cfg.rl}` needs a `trl:` section with `reward_funcs` (e.g. `- {{type: regex, "
            "pattern: ...}`) and `num_generations`.",
        )
        return
    rewards = 0
    for i, spec in enumerate(trl.reward_funcs):
        where = f"trl.reward_funcs[{i}]"
        if spec == "evals":
            if cfg.evals is None:
                yield where, "`evals` means the `evals.checks` entries, but `evals:` is not set."
            else:
                rewards += len(cfg.evals.checks)
                if any(c.get("type") == "judge" for c in cfg.evals.checks):
                    yield (
                        where,
                        "`evals` includes a `judge` check, which asks a model and is not a reward: "
                        "list the other checks as rewards instead.",
                    )
            continue
        rewards += 1
        if isinstance(spec, dict) and spec.get("type") == "judge":
            yield where, "a `judge` check asks a model per completion: it is not a reward."
        elif isinstance(spec, dict):
            yield from spec_problems(spec, where)
        elif not _PYTHON_NAME.match(spec):
            yield (
                where,
                f"`{spec}` is neither `evals`, a check mapping, nor a Python `module.function` / "
                "`module:function`.",
            )
    if trl.reward_weights is not None and rewards and len(trl.reward_weights) != rewards:
        yield (
            "trl.reward_weights",
            f"{len(trl.reward_weights)} weight(s) for {rewards} reward(s): give one each.",
        )
    g = trl.num_generations
    if trl.generation_batch_size is not None and trl.steps_per_generation is not None:
        yield "trl.generation_batch_size", "set together with `steps_per_generation`: keep one."
    per_generation = trl.generation_batch_size or cfg.micro_batch_size * (
        trl.steps_per_generation or cfg.gradient_accumulation_steps
    )
    if trl.generation_batch_size is not None and trl.generation_batch_size % cfg.micro_batch_size:
        yield "trl.generation_batch_size", "must be a multiple of `micro_batch_size`."
    elif per_generation % g:
        yield (
            "trl.num_generations",
            f"{g} completions per prompt do not fill whole batches of {per_generation} "
            "completions (micro_batch_size × gradient_accumulation_steps, or "
            "generation_batch_size): make that a multiple of num_generations.",
        )
    has_eval = bool(cfg.val_set_size) or bool(cfg.test_datasets)
    if has_eval and (cfg.eval_batch_size or cfg.micro_batch_size) % g:
        yield (
            "eval_batch_size",
            f"GRPO evaluates whole groups: use a multiple of num_generations ({g}).",
        )
    if trl.max_completion_length >= cfg.sequence_len:
        yield (
            "trl.max_completion_length",
            f"leaves no room for the prompt in sequence_len {cfg.sequence_len}: raise "
            "sequence_len (prompt + completion) or lower it.",
        )
    if trl.use_vllm and importlib.util.find_spec("vllm") is None:
        yield (
            "trl.use_vllm",
            "needs vLLM on a CUDA machine (`pip install vllm`); set `use_vllm: false` to "
            "generate with transformers (slower, works everywhere).",
        )
    unsupported = {
        "sample_packing": "packs SFT samples; GRPO pads each batch of completions",
        "eval_table_size": "(generations during training) is not supported with GRPO: its "
        "logged completions (`trl.log_completions`) show the samples",
        "use_cut_cross_entropy": "is an SFT loss; GRPO computes its own log-probabilities",
    }
    for key, why in unsupported.items():
        if getattr(cfg, key, None):
            yield key, f"`{key}` {why}."
    if cfg.rl == "gdpo" and trl.multi_objective_aggregation == "sum_then_normalize":
        yield (
            "trl.multi_objective_aggregation",
            "`rl: gdpo` normalizes each reward before summing: use `rl: grpo` for "
            "`sum_then_normalize`.",
        )


def _process_reward_model(cfg: Config, entries: list[tuple[str, list[Any]]]) -> Iterator[Problem]:
    """`process_reward_model: true`: stepwise rows, a two-class token classifier, nothing else."""
    for key, value in (("rl", cfg.rl), ("reward_model", cfg.reward_model)):
        if value:
            yield (
                "process_reward_model",
                f"set together with `{key}`: a process reward model is its own training run; "
                "keep one.",
            )
    for group, items in entries:
        for i, ds in enumerate(items):
            if ds.type not in PRM_TYPES:
                yield (
                    f"{group}[{i}].type",
                    f"a process reward model trains on `stepwise_supervised` rows (prompt, "
                    f"completions, labels); `{ds.type}` is not one.",
                )
    if cfg.num_labels not in (None, 2):
        yield "num_labels", "a process reward model tells right steps from wrong ones: use 2."
    if cfg.model_type and "TokenClassification" not in cfg.model_type:
        yield (
            "model_type",
            f"`{cfg.model_type}` is not a token classifier: a process reward model loads with "
            "`AutoModelForTokenClassification` (the default when `process_reward_model` is set).",
        )
    unsupported = {
        "sample_packing": "packs causal-LM samples; stepwise rows are padded per batch",
        "eval_table_size": "(generations during training) does not apply to a reward model",
        "use_cut_cross_entropy": "is a language-model loss; a token classifier has two classes",
        "evals": "checks generations; a process reward model scores steps, it does not generate",
    }
    for key, why in unsupported.items():
        if getattr(cfg, key, None):
            yield key, f"`{key}` {why}."


def _reward_model(cfg: Config, entries: list[tuple[str, list[Any]]]) -> Iterator[Problem]:
    """`reward_model: true`: pairs, a one-output classifier, and none of the `rl` settings."""
    if cfg.rl is not None:
        yield (
            "reward_model",
            f"a reward model trains on pairs without `rl`; `rl: {cfg.rl}` trains the policy: "
            "keep one (train the reward model first, then use it).",
        )
    for group, items in entries:
        for i, ds in enumerate(items):
            if ds.type not in PREFERENCE_TYPES and ds.type not in REWARD_TYPES:
                yield (
                    f"{group}[{i}].type",
                    f"a reward model trains on preference pairs; `{ds.type}` is not such a "
                    "format: use `bradley_terry.chat_template` or a pair type ("
                    + ", ".join(PREFERENCE_TYPES)
                    + ").",
                )
    if cfg.num_labels not in (None, 1):
        yield "num_labels", "a reward model has one output (the reward): use 1."
    if cfg.model_type and "SequenceClassification" not in cfg.model_type:
        yield (
            "model_type",
            f"`{cfg.model_type}` is not a sequence classifier: a reward model loads with "
            "`AutoModelForSequenceClassification` (the default when `reward_model` is set).",
        )
    unsupported = {
        "sample_packing": "packs SFT samples; reward pairs are padded per batch",
        "eval_table_size": "(generations during training) does not apply to a reward model",
        "use_cut_cross_entropy": "is a language-model loss; a reward model has no vocabulary head",
        "evals": "checks generations; a reward model scores, it does not generate",
    }
    for key, why in unsupported.items():
        if getattr(cfg, key, None):
            yield key, f"`{key}` {why}."


def _method_keys(cfg: Config) -> Iterator[Problem]:
    """Each preference method's own keys are refused under another method: they would parse and
    change nothing."""
    dpo_keys = ("dpo_loss_type", "dpo_loss_weights", "dpo_use_weighting")
    if cfg.rl not in ("dpo", "ipo"):
        for key in dpo_keys:
            if getattr(cfg, key):
                yield key, f"applies to `rl: dpo` / `rl: ipo`, not `{cfg.rl}`."
    if cfg.rl != "orpo" and cfg.orpo_alpha is not None:
        yield "orpo_alpha", f"applies to `rl: orpo` only, not `{cfg.rl}`."
    if cfg.rl != "simpo":
        for key in ("simpo_gamma", "cpo_alpha"):
            if getattr(cfg, key) is not None:
                yield key, f"applies to `rl: simpo` only, not `{cfg.rl}`."
    if cfg.rl_reference_model is not None:
        if cfg.rl in REFERENCE_FREE:
            yield "rl_reference_model", f"`rl: {cfg.rl}` has no reference model: remove it."
        elif cfg.rl in ONLINE_RL and (cfg.trl is None or cfg.trl.beta == 0):
            yield (
                "rl_reference_model",
                "is used only with a KL term: set `trl.beta` above 0 (GRPO's default is 0).",
            )
    if cfg.rl in REFERENCE_FREE and cfg.precompute_ref_log_probs:
        yield (
            "precompute_ref_log_probs",
            f"`rl: {cfg.rl}` has no reference model, so there is nothing to precompute: remove it.",
        )
    if cfg.rl in ONLINE_RL and cfg.precompute_ref_log_probs:
        yield (
            "precompute_ref_log_probs",
            f"`rl: {cfg.rl}` generates its answers while training: there are no reference "
            "log-probs to compute beforehand; remove it.",
        )


def _model_class(cfg: Config) -> Iterator[Problem]:
    """`model_type` names a class whose loss honer trains: a causal LM (a reward model's and a
    process reward model's classifiers are checked with them)."""
    name = cfg.model_type
    generative = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")
    if (
        name
        and not (cfg.reward_model or cfg.process_reward_model)
        and not name.endswith(generative)
    ):
        yield (
            "model_type",
            f"`{name}` is not a language model class with an output head: use "
            "`AutoModelForCausalLM` (the default) or the architecture's `…ForCausalLM` / "
            "`…ForConditionalGeneration` / `…LMHeadModel` class.",
        )


CHECKS: list[Callable[[Config], Iterator[Problem]]] = [
    _model_class,
    _precision,
    _gguf,
    _quantization,
    _adapter_keys,
    _either_or,
    _data,
    _schedule,
    _optimizer,
    _validation,
    _supported,
    _evals,
    _tracking,
    _parallel,
    _axolotl_features,
    _preference,
]


def cross_field_problems(cfg: Config) -> list[Problem]:
    """Every contradiction between keys, in a stable order."""
    return [p for check in CHECKS for p in check(cfg)]


def _evaluation_without_validation_set(cfg: Config) -> Iterator[Problem]:
    """Axolotl runs no evaluation when there is nothing to evaluate on; so does honer, and says so.
    (Keys that change what is kept, `early_stopping_patience` and `load_best_model_at_end`, are
    errors in `_validation`.)"""
    if cfg.val_set_size > 0 or cfg.test_datasets:
        return
    for key in ("evals_per_epoch", "eval_steps", "eval_table_size"):
        if getattr(cfg, key):
            yield (
                key,
                "set, but there is no validation set (`val_set_size` / `test_datasets`): no "
                "evaluation runs during training.",
            )


NOTES: list[Callable[[Config], Iterator[Problem]]] = [_evaluation_without_validation_set]


def cross_field_notes(cfg: Config) -> list[Problem]:
    """Combinations that are fine but do less than the keys suggest, in a stable order."""
    return [p for check in NOTES for p in check(cfg)]
