"""Which weights inference runs: base + adapter, a full fine-tune, or the base alone.

The base is loaded by `honer.model.load.load_model` as in training (same dtype, same 4-bit
quantization for QLoRA), so an adapter answers at inference as it did when trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from honer.errors import ModelError


def resolve_source(
    cfg: Any, lora_model_dir: Path | None, base_only: bool
) -> tuple[str, Path | None]:
    """("adapter" | "full" | "base", folder): what to load, decided before any heavy import."""
    if base_only and lora_model_dir is not None:
        raise ModelError("--base-model-only: cannot be combined with --lora-model-dir.")
    if base_only:
        return "base", None
    if lora_model_dir is not None:
        if not (lora_model_dir / "adapter_config.json").is_file():
            raise ModelError(f"--lora-model-dir: `{lora_model_dir}` holds no adapter_config.json.")
        return "adapter", lora_model_dir
    out = Path(cfg.output_dir)
    for candidate in (cfg.lora_model_dir, out if cfg.adapter else None):
        if candidate and (Path(candidate) / "adapter_config.json").is_file():
            return "adapter", Path(candidate)
    if cfg.adapter is None and (out / "config.json").is_file():
        return "full", out
    what = "an adapter" if cfg.adapter else "a fine-tuned model"
    raise ModelError(
        f"output_dir: `{out}` holds no {what} yet: train first (`honer train`), pass "
        "--lora-model-dir DIR, or --base-model-only to chat with the base model."
    )


def load_for_inference(
    cfg: Any, lora_model_dir: Path | None = None, base_only: bool = False
) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) ready for generation."""
    kind, folder = resolve_source(cfg, lora_model_dir, base_only)
    from honer.model.load import load_model, load_tokenizer, model_dtype

    tokenizer = load_tokenizer(cfg)
    if kind == "full":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(folder, dtype=model_dtype(cfg))
        return model.eval(), tokenizer, f"fine-tuned model in {folder}"
    model = load_model(cfg, tokenizer)
    if kind == "base":
        return model.eval(), tokenizer, f"base model {cfg.base_model}"
    from peft import PeftModel

    from honer.model.adapters import keep_dora_4bit_weights_unpacked

    try:
        model = PeftModel.from_pretrained(model, folder)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the adapter in `{folder}`: {err}") from None
    keep_dora_4bit_weights_unpacked(model)
    return model.eval(), tokenizer, f"{cfg.base_model} + adapter {folder}"
