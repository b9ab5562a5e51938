"""YAML → `Config`: aliases, unknown and unsupported keys, pydantic errors as key paths.

Every problem found is collected and raised together as one `ConfigError`, each with its key path
(`datasets[1].type`). An empty YAML value (`lora_r:`) means "not set", as in Axolotl.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from honer.config.checks import cross_field_problems
from honer.config.schema import Config, DatasetConfig, EvalsConfig, FsdpConfig, SpecialTokens
from honer.errors import ConfigError

Problem = tuple[str, str]

# Axolotl spellings that mean the same as one of our keys.
ALIASES: dict[str, str] = {
    "eval_table_max_new_tokens": "eval_max_new_tokens",
    "dataset_num_proc": "dataset_processes",
}

# Axolotl keys we know but do not implement yet: a clear error, never silently ignored.
NOT_SUPPORTED: dict[str, str] = {
    "rl": "preference training (DPO/ORPO/KTO/GRPO)",
    "dpo_beta": "preference training",
    "reward_model": "reward-model training",
    "process_reward_model": "reward-model training",
    "relora_steps": "ReLoRA",
    "relora_warmup_steps": "ReLoRA",
    "relora_cpu_offload": "ReLoRA",
    "unfrozen_parameters": "partial full fine-tuning",
    "lora_on_cpu": "LoRA on CPU offload",
    "gptq": "GPTQ models",
    "gptq_groupsize": "GPTQ models",
    "gptq_model_v1": "GPTQ models",
    "rope_scaling": "RoPE scaling",
    "noisy_embedding_alpha": "NEFTune",
    "neftune_noise_alpha": "NEFTune",
    "plugins": "Axolotl plugins (liger, cut cross-entropy, …)",
    "liger_rope": "liger kernels",
    "liger_rms_norm": "liger kernels",
    "liger_glu_activation": "liger kernels",
    "liger_fused_linear_cross_entropy": "liger kernels",
    "xformers_attention": "xformers attention (use flash_attention or sdp_attention)",
    "s2_attention": "shifted-sparse attention",
    "lisa_n_layers": "LISA",
    "lisa_step_interval": "LISA",
    "lisa_layers_attribute": "LISA",
    "torch_compile": "torch.compile",
    "torch_compile_backend": "torch.compile",
    "max_memory": "per-device memory maps",
    "gpu_memory_limit": "per-device memory maps",
    "pretraining_dataset": "streaming pre-training datasets",
    "peft_layers_to_transform": "LoRA on selected layers",
    "unsloth_cross_entropy_loss": "Unsloth kernels",
    "unsloth_lora_mlp": "Unsloth kernels",
    "unsloth_lora_qkv": "Unsloth kernels",
    "unsloth_lora_o": "Unsloth kernels",
    "lora_mlp_kernel": "LoRA kernels",
    "lora_qkv_kernel": "LoRA kernels",
    "lora_o_kernel": "LoRA kernels",
    "curriculum_sampling": "curriculum sampling",
    "multipack_real_batches": "multipack real batches",
    "auto_resume_from_checkpoints": "automatic resume (use `resume_from_checkpoint: true`)",
    "chat_template_kwargs": "extra chat-template arguments",
    "default_system_message": "a default system message",
    "is_llama_derived_model": "model-family flags (not needed: the model config tells)",
    "is_mistral_derived_model": "model-family flags (not needed: the model config tells)",
    "is_falcon_derived_model": "model-family flags (not needed: the model config tells)",
    "is_qwen_derived_model": "model-family flags (not needed: the model config tells)",
    "local_rank": "setting the rank in the config (the launcher sets it)",
    "debug": "the `debug` key (use `honer preprocess --debug`)",
    "batch_size": "`batch_size` (use micro_batch_size × gradient_accumulation_steps)",
}

_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "special_tokens": SpecialTokens,
    "evals": EvalsConfig,
    "fsdp_config": FsdpConfig,
}

# `fsdp_config` keys of FSDP1 that FSDP2 has no use for (it keeps original parameters, syncs
# module states through `cpu_ram_efficient_loading` and prefetches on its own).
FSDP1_KEYS = {
    "use_orig_params",
    "sync_module_states",
    "forward_prefetch",
    "backward_prefetch",
    "limit_all_gathers",
    "sharding_strategy",
    "min_num_params",
}


def _fmt_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:  # `eos` → `eos_token`: a known key that contains the typed one
        close = [k for k in known if len(key) >= 3 and key.lower() in k]
    return f" Did you mean `{close[0]}`?" if close else ""


def _drop_empty(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """Axolotl semantics: `key:` with no value means the key is not set."""
    return {k: v for k, v in mapping.items() if v is not None}


def _clean_mapping(
    raw: Mapping[Any, Any], model: type[BaseModel], prefix: str, problems: list[Problem]
) -> dict[str, Any]:
    """Apply aliases, report unknown/unsupported keys, and recurse into known sub-sections."""
    known = list(model.model_fields)
    out: dict[str, Any] = {}
    for key, value in _drop_empty(raw).items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(key, str):
            problems.append((path, f"config keys must be text, got {type(key).__name__}."))
            continue
        name = ALIASES.get(key, key) if model is Config else key
        if (
            model is FsdpConfig
        ):  # Axolotl writes `fsdp_offload_params`, transformers `offload_params`
            name = key.removeprefix("fsdp_")
            if name in FSDP1_KEYS:
                problems.append(
                    (path, "an FSDP1 setting; honer runs FSDP2, which needs none: remove it.")
                )
                continue
        if name != key and name in raw and raw[name] is not None:
            problems.append((path, f"`{key}` is another name for `{name}`: set only one."))
            continue
        if name not in model.model_fields:
            if model is Config and key in NOT_SUPPORTED:
                problems.append(
                    (path, f"not supported yet ({NOT_SUPPORTED[key]}); remove the key to continue.")
                )
            else:
                problems.append((path, "unknown key." + _suggest(key, known)))
            continue
        out[name] = _clean_value(name, value, model, path, problems)
    return out


def _clean_value(
    name: str, value: Any, model: type[BaseModel], path: str, problems: list[Problem]
) -> Any:
    if model is Config and name in ("datasets", "test_datasets") and isinstance(value, list):
        return [
            _clean_mapping(item, DatasetConfig, f"{path}[{i}]", problems)
            if isinstance(item, Mapping)
            else item
            for i, item in enumerate(value)
        ]
    if model is Config and name in _SECTION_MODELS and isinstance(value, Mapping):
        return _clean_mapping(value, _SECTION_MODELS[name], path, problems)
    return value


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # Union members add their type name to the location; keep only real keys.
        loc = tuple(
            p
            for p in loc
            if isinstance(p, int)
            or p.isidentifier()
            and p not in ("str", "int", "float", "bool", "list", "dict", "literal")
        )
        msg = e["msg"]
        if e["type"] == "missing":
            msg = "required key is missing."
        elif e["type"] == "extra_forbidden":
            msg = "unknown key."
        problems.append((_fmt_path(loc), msg))
    # A union reports once per member: merge them into one line per key path.
    merged: dict[str, list[str]] = {}
    for path, msg in problems:
        msgs = merged.setdefault(path, [])
        if msg not in msgs:
            msgs.append(msg)
    return [(path, "; or ".join(msgs)) for path, msgs in merged.items()]


def config_from_dict(raw: Any, source: str | None = None) -> Config:
    """Validate an already-parsed YAML document; raises `ConfigError` with every problem."""
    if not isinstance(raw, Mapping):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(
            [("", f"the config must be a mapping of keys to values, got {kind}.")], source
        )
    problems: list[Problem] = []
    cleaned = _clean_mapping(raw, Config, "", problems)
    try:
        cfg = Config.model_validate(cleaned)
    except ValidationError as err:
        problems.extend(_pydantic_problems(err))
        raise ConfigError(problems, source) from None
    problems.extend(cross_field_problems(cfg))
    if problems:
        raise ConfigError(problems, source)
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([("", "file not found; pass the path of a YAML config.")], str(p))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([("", f"invalid YAML at {where}{problem}")], str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError([("", "not UTF-8 text.")], str(p)) from None
    return config_from_dict(raw, str(p))
