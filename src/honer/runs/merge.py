"""`merge(cfg, …)`: fold the config's adapter into its base as a standalone model, with its
tokenizer, generation config (stopping where `honer inference` stops), config.yml and model card.
The shard-by-shard merge itself is `honer.model.merge.merge_lora`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from honer.config.schema import Config
from honer.errors import ModelError, NotSupportedError
from honer.model.lora_weights import ADAPTER_CONFIG
from honer.model.merge import (
    DEFAULT_MAX_SHARD,
    QLORA_BASES,
    MergeResult,
    Quantization,
    check_output,
    merge_lora,
    resolve_base_dir,
)
from honer.runs.card import model_card

if TYPE_CHECKING:
    import torch


QLORA_NOTE = {
    "dequantized": "QLoRA: the adapter was merged into the base weights rounded through the same "
    "4-bit quantization it was trained against, so this model reproduces the trained QLoRA model "
    "(up to float rounding), including the quantization error of the frozen weights.",
    "original": "QLoRA: the adapter was merged into the original full-precision weights, which it "
    "was not trained against; expect logits to differ slightly from the trained QLoRA model "
    "(the 4-bit quantization error of the base, measured in docs/inference.md).",
}


DORA_NOTE = (
    "DoRA: each adapted weight is `W + scale · B @ A` rescaled, row by row, to the trained "
    "magnitude vector (as peft's `merge_and_unload` does), so the merged model reproduces the "
    "trained DoRA model."
)


def training_dtype(cfg: Config) -> torch.dtype:
    """The dtype the adapter was trained against (the merged model's default): float32 unless
    the config trains in bf16/fp16. A bf16/fp16 config merged on a machine without that
    precision was trained elsewhere, in that precision."""
    import torch

    from honer.model.load import model_dtype

    try:
        return model_dtype(cfg)
    except Exception:
        return torch.bfloat16 if cfg.bf16 is True else torch.float16


def merge(
    cfg: Config,
    lora_model_dir: Path | None,
    output: Path | None,
    *,
    qlora_base: str = "dequantized",
    dtype: torch.dtype | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD,
    force: bool = False,
) -> MergeResult:
    """Merge the config's adapter (`--lora-model-dir`, `lora_model_dir`, or output_dir) into its base.

    The output (default `output_dir/merged`) holds safetensors shards, config, generation config,
    tokenizer, the run's config.yml and a model card.
    """
    from honer.model.load import load_tokenizer

    if qlora_base not in QLORA_BASES:
        raise ModelError(f"--qlora-base: `{qlora_base}` is not one of {', '.join(QLORA_BASES)}.")
    adapter_dir = Path(lora_model_dir or cfg.lora_model_dir or cfg.output_dir)
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        flag = "--lora-model-dir" if lora_model_dir else "output_dir"
        raise ModelError(
            f"{flag}: `{adapter_dir}` holds no {ADAPTER_CONFIG}: nothing to merge (a full "
            "fine-tune is already a standalone model)."
        )
    output = Path(output or Path(cfg.output_dir) / "merged")
    check_output(output, force)
    from honer.model.gguf import is_gguf, loadable_base

    base_dir = (
        Path(loadable_base(cfg))
        if is_gguf(cfg)
        else resolve_base_dir(cfg.base_model, cfg.revision_of_model)
    )
    quantized = bool(cfg.load_in_4bit or cfg.adapter == "qlora")
    if cfg.load_in_8bit and not quantized:
        raise NotSupportedError(
            "load_in_8bit: merging an adapter trained on an 8-bit base is not supported; merge "
            "into the original weights by loading the config without `load_in_8bit`."
        )
    notes = []
    if json.loads((adapter_dir / ADAPTER_CONFIG).read_text()).get("use_dora"):
        notes.append(DORA_NOTE)
    quantization = None
    if quantized:
        from honer.config.schema import BnbConfig

        bnb = cfg.bnb_config_kwargs or BnbConfig()
        notes.append(QLORA_NOTE[qlora_base])
        if qlora_base == "dequantized":
            quantization = Quantization(
                quant_type=bnb.bnb_4bit_quant_type,
                double_quant=bnb.bnb_4bit_use_double_quant,
                load_dtype=training_dtype(cfg),
            )
    config_file = adapter_dir / "config.yml"
    if config_file.is_file():
        config_yaml = config_file.read_text()
    else:
        from honer.config.dump import resolved_config_yaml

        config_yaml = resolved_config_yaml(cfg)
    card = model_card(cfg, adapter_dir, config_yaml, notes, merged=True)
    from honer.infer.prompt import PromptFormatter  # the one definition of where answers stop

    tokenizer = load_tokenizer(cfg)
    return merge_lora(
        base_dir,
        adapter_dir,
        output,
        dtype=dtype or training_dtype(cfg),
        quantization=quantization,
        max_shard_size=max_shard_size,
        force=force,
        extra_files={"README.md": card, "config.yml": config_yaml},
        save_tokenizer=tokenizer,
        stop_ids=PromptFormatter(cfg, tokenizer).stop_ids,
    )
