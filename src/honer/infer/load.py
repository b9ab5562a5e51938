"""Which weights inference and evaluation run: base + adapter, a full fine-tune, or the base alone.

Everything is loaded through `honer.model.load.load_model` as in training (same dtype, same
attention kernel, same 4-bit quantization for QLoRA), so an adapter answers at inference as it
did when trained, and a base model is scored exactly as training saw it, not in the dtype its
checkpoint happens to be stored in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honer.config.schema import Config
from honer.errors import ModelError


@dataclass(frozen=True)
class Source:
    """What to load: `kind` is "adapter", "full" or "base"; `folder` is None for the base."""

    kind: str
    folder: Path | None

    def describe(self, cfg: Config) -> str:
        if self.kind == "base":
            return f"base model {cfg.base_model}"
        if self.kind == "full":
            return f"fine-tuned model in {self.folder}"
        return f"{cfg.base_model} + adapter {self.folder}"


def folder_source(folder: Path, flag: str) -> Source:
    """A folder holding an adapter (adapter_config.json) or a full model (config.json)."""
    if (folder / "adapter_config.json").is_file():
        return Source("adapter", folder)
    if (folder / "config.json").is_file():
        return Source("full", folder)
    raise ModelError(f"{flag}: `{folder}` holds no model or adapter (no config.json).")


def resolve_source(cfg: Config, lora_model_dir: Path | None, base_only: bool) -> Source:
    """What `honer inference` loads, decided before any heavy import."""
    if base_only and lora_model_dir is not None:
        raise ModelError("--base-model-only: cannot be combined with --lora-model-dir.")
    if base_only:
        return Source("base", None)
    if lora_model_dir is not None:
        if not (lora_model_dir / "adapter_config.json").is_file():
            raise ModelError(f"--lora-model-dir: `{lora_model_dir}` holds no adapter_config.json.")
        return Source("adapter", lora_model_dir)
    return run_output_source(cfg)


def run_output_source(cfg: Config) -> Source:
    """The run's own result: the adapter in `lora_model_dir` / output_dir, or the fine-tune."""
    out = Path(cfg.output_dir)
    for candidate in (cfg.lora_model_dir, out if cfg.adapter else None):
        if candidate and (Path(candidate) / "adapter_config.json").is_file():
            return Source("adapter", Path(candidate))
    if cfg.adapter is None and (out / "config.json").is_file():
        return Source("full", out)
    what = "adapter" if cfg.adapter else "fine-tuned model"
    raise ModelError(
        f"output_dir: `{out}` holds no {what} yet: train first (`honer train`), pass "
        "--lora-model-dir DIR, or --base-model-only to use the base model."
    )


def load_source(cfg: Config, source: Source, tokenizer: Any) -> Any:
    """The model of `source` in eval mode, loaded as training loads (dtype, kernel, quantization)."""
    from honer.model.load import load_model

    if source.kind == "full":
        # The fine-tune in place of the base: same dtype and attention kernel as training.
        as_base = cfg.model_copy(
            update={
                "base_model": str(source.folder),
                "base_model_config": None,
                "revision_of_model": None,
            }
        )
        return load_model(as_base, tokenizer).eval()
    model = load_model(cfg, tokenizer)
    if source.kind == "base":
        return model.eval()
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(model, source.folder)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the adapter in `{source.folder}`: {err}") from None
    return model.eval()


def load_for_inference(
    cfg: Config, lora_model_dir: Path | None = None, base_only: bool = False
) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) ready for generation."""
    from honer.model.load import load_tokenizer

    source = resolve_source(cfg, lora_model_dir, base_only)
    tokenizer = load_tokenizer(cfg)
    return load_source(cfg, source, tokenizer), tokenizer, source.describe(cfg)
