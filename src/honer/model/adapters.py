"""Turn a loaded base model into what gets trained: a peft LoRA/QLoRA adapter, or the full model.

`build_adapter` is the one entry point. It seeds the RNG first (torch 2.13 seeds every new process
randomly, so without it two LoRA runs of one config start from different adapter weights), then
prepares a quantized base for k-bit training, then wraps the model with peft. Last, what the
config says about which weights train (`unfrozen_parameters`, `honer.model.freeze`) and where the
saved activations live (`activation_offloading`, `honer.model.offload`) is applied to the result.

Target modules, when the config names none, are the attention projections found in the model
itself (`q_proj`/`k_proj`/`v_proj`/`o_proj` for Llama-like models), not a per-architecture table.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honer.config.schema import Config
from honer.errors import ConfigError, ModelError
from honer.model import freeze, kbit, offload

if TYPE_CHECKING:
    from torch import nn

# Path segments that mark a module as part of an attention block, across common architectures.
_ATTENTION_PARENTS = ("self_attn", "attn", "attention", "self_attention")


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameters (4-bit packed weights counted as their real element count)."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(1, self.total)

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} / {self.total:,} ({self.percent:.4f}%)"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count parameters; bitsandbytes packs two 4-bit values per byte, so those count double."""
    trainable = total = 0
    seen: set[int] = set()
    for param in model.parameters():
        if id(param) in seen:  # tied weights are one parameter
            continue
        seen.add(id(param))
        n = param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= 2 * getattr(getattr(param, "quant_storage", None), "itemsize", 1)
        total += n
        if param.requires_grad:
            trainable += n
    return ParameterCount(trainable, total)


def _is_linear(module: nn.Module) -> bool:
    import torch
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, (torch.nn.Linear, Conv1D))


# The classifier heads of (process) reward models: new, trained in full (peft's
# modules_to_save), never adapted.
CLASSIFIER_HEADS = ("score", "classifier")


def linear_module_names(model: nn.Module) -> list[str]:
    """Full names of every linear layer except the output head (what `all-linear` adapts): the
    language-model head, or a classifier's `score` / `classifier` head."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        name
        for name, module in model.named_modules()
        if _is_linear(module)
        and module is not head
        and name
        and name.rsplit(".", 1)[-1] not in CLASSIFIER_HEADS
    ]


def default_target_modules(model: nn.Module) -> list[str] | str:
    """The attention projections of `model`, by leaf name (`q_proj`, …).

    When a leaf name also occurs outside attention blocks (GPT-2's `c_proj` is both an attention
    and an MLP projection), a leaf name would adapt both, so a regex over the attention blocks'
    full paths is returned instead.
    """
    inside: set[str] = set()
    outside: set[str] = set()
    parents: set[str] = set()
    for name in linear_module_names(model):
        parts = name.split(".")
        leaf, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
        if parent in _ATTENTION_PARENTS:
            inside.add(leaf)
            parents.add(parent)
        else:
            outside.add(leaf)
    if not inside:
        raise ConfigError(
            [
                (
                    "lora_target_modules",
                    "no attention projections found in this model to adapt by default: name the "
                    "modules (e.g. `[q_proj, v_proj]`) or set `lora_target_linear: true`.",
                )
            ]
        )
    if inside & outside:
        alternation = "|".join(sorted(inside))
        parent_alt = "|".join(sorted(parents))
        return rf".*\.(?:{parent_alt})\.(?:{alternation})"
    return sorted(inside)


def resolve_target_modules(cfg: Config, model: nn.Module) -> list[str] | str:
    """What LoRA adapts: `lora_target_linear` (+ any named modules), the named ones, or the default."""
    named = cfg.lora_target_modules
    if cfg.lora_target_linear:
        if named is None:
            return "all-linear"
        if isinstance(named, str):
            raise ConfigError(
                [
                    (
                        "lora_target_modules",
                        "a regex cannot be combined with `lora_target_linear: true`: use a list "
                        "of module names, or one of the two keys.",
                    )
                ]
            )
        leaves = {name.rsplit(".", 1)[-1] for name in linear_module_names(model)}
        return sorted(leaves | set(named))
    if named is not None:
        return named
    return default_target_modules(model)


def _check_targets_exist(targets: list[str] | str, model: nn.Module) -> None:
    """Fail naming the layers that do exist, rather than with peft's error after a model walk."""
    if targets == "all-linear":
        return
    names = [name for name, _ in model.named_modules() if name]
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, name) for name in names):
            raise ConfigError(
                [("lora_target_modules", f"the regex `{targets}` matches no module of the model.")]
            )
        return
    # peft matches a listed name against the end of each module path, as these do.
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        available = sorted({n.rsplit(".", 1)[-1] for n in linear_module_names(model)})
        raise ConfigError(
            [
                (
                    "lora_target_modules",
                    f"{missing} not found in the model; its linear layers are named {available}.",
                )
            ]
        )


def _embedding_names(model: nn.Module) -> tuple[str, str | None]:
    """Leaf names of the input embedding and output head modules (`embed_tokens`, `lm_head`)."""
    inp = model.get_input_embeddings()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inp_name = out_name = None
    for name, module in model.named_modules():
        if module is inp and inp_name is None:
            inp_name = name.rsplit(".", 1)[-1]
        if out is not None and module is out and out_name is None:
            out_name = name.rsplit(".", 1)[-1]
    return inp_name or "embed_tokens", out_name


def check_new_tokens(cfg: Config, model: nn.Module) -> None:
    """New vocabulary rows are random: a LoRA must train them in full, or they stay noise."""
    new_tokens = getattr(model, "honer_new_tokens", 0)
    if not new_tokens or cfg.adapter is None:
        return
    wanted = [n for n in _embedding_names(model) if n]
    saved = set(cfg.lora_modules_to_save or [])
    missing = [n for n in wanted if n not in saved]
    if missing:
        raise ConfigError(
            [
                (
                    "lora_modules_to_save",
                    f"{new_tokens} new token(s) were added to the vocabulary (`tokens` / "
                    "`special_tokens`), and their embeddings only learn when trained in full: "
                    f"set `lora_modules_to_save: [{', '.join(wanted)}]`.",
                )
            ]
        )


def lora_config(cfg: Config, model: nn.Module) -> Any:
    """The peft `LoraConfig` the config describes (targets resolved against `model`)."""
    from peft import LoraConfig, TaskType

    targets = resolve_target_modules(cfg, model)
    if targets == "all-linear" and (cfg.reward_model or cfg.process_reward_model):
        # peft's `all-linear` would adapt a token classifier's head, which its task also
        # trains in full: name the layers instead.
        targets = sorted({name.rsplit(".", 1)[-1] for name in linear_module_names(model)})
    _check_targets_exist(targets, model)
    return LoraConfig(
        # A (process) reward model's new score head is trained in full beside the adapter
        # (peft's SEQ_CLS / TOKEN_CLS tasks save it with the adapter).
        task_type=TaskType.SEQ_CLS
        if cfg.reward_model
        else TaskType.TOKEN_CLS
        if cfg.process_reward_model
        else TaskType.CAUSAL_LM,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=list(cfg.lora_modules_to_save) if cfg.lora_modules_to_save else None,
        fan_in_fan_out=cfg.lora_fan_in_fan_out,
        use_dora=cfg.peft_use_dora,
        use_rslora=cfg.peft_use_rslora,
        bias="none",
    )


def _check_loaded_adapter(cfg: Config, peft_config: Any) -> None:
    """Keys the user set explicitly must agree with the adapter being continued."""
    pairs = {
        "lora_r": ("r", cfg.lora_r),
        "lora_alpha": ("lora_alpha", cfg.lora_alpha),
        "lora_dropout": ("lora_dropout", cfg.lora_dropout),
        "peft_use_dora": ("use_dora", cfg.peft_use_dora),
        "peft_use_rslora": ("use_rslora", cfg.peft_use_rslora),
    }
    problems = []
    for key, (attr, wanted) in pairs.items():
        have = getattr(peft_config, attr, None)
        if key in cfg.model_fields_set and have is not None and have != wanted:
            problems.append(
                (
                    key,
                    f"{wanted}, but the adapter in `lora_model_dir` was trained with {have}: "
                    "remove the key (the adapter's own value is used) or start a new adapter.",
                )
            )
    if problems:
        raise ConfigError(problems)


def build_adapter(cfg: Config, model: nn.Module, verbose: bool = True) -> nn.Module:
    """Return the model to train: a peft model for `adapter: lora|qlora`, else `model` in full.

    Quantized bases go through peft's `prepare_model_for_kbit_training` (norms in float32,
    input gradients on) with gradient checkpointing as configured, and their 4-bit layers are
    kept in the layout that passes gradients (checked on one layer before returning). With
    `lora_model_dir` the existing adapter is loaded trainable instead of a new one being created.
    `unfrozen_parameters` then freezes what no entry names, and activation offloading hooks
    into the returned model's forward.
    """
    from transformers import set_seed

    set_seed(cfg.seed)
    quantized = kbit.is_quantized(model)
    if cfg.adapter is None:
        if quantized:
            raise ModelError(
                "a quantized base cannot be fully fine-tuned: set `adapter: qlora` (4-bit) or "
                "`adapter: lora` (8-bit)."
            )
        for param in model.parameters():
            param.requires_grad_(True)
        trained = model
    else:
        check_new_tokens(cfg, model)
        from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

        if quantized:
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=offload.checkpointing(cfg),
                gradient_checkpointing_kwargs={"use_reentrant": offload.use_reentrant(cfg)},
            )
        if cfg.lora_model_dir is not None:
            try:
                trained = PeftModel.from_pretrained(model, cfg.lora_model_dir, is_trainable=True)
            except (OSError, ValueError) as err:
                raise ModelError(
                    f"lora_model_dir: cannot load the adapter from `{cfg.lora_model_dir}`: {err}"
                ) from None
            _check_loaded_adapter(cfg, trained.peft_config["default"])
        else:
            trained = get_peft_model(model, lora_config(cfg, model))
    if quantized:
        # Before any evaluation can repack the 4-bit weights into a layout without gradients
        # (see honer.model.kbit); then prove that gradients still flow after an eval forward.
        kbit.keep_4bit_weights_unpacked(trained)
        kbit.check_gradients_flow(trained)
    if cfg.unfrozen_parameters:
        freeze.apply(
            trained, list(cfg.unfrozen_parameters), cfg.adapter is not None, cfg.weight_decay
        )
    offload.install(cfg, trained)
    if verbose:
        print(count_parameters(trained), file=sys.stderr)
    return trained
