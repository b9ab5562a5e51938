"""`honer merge-lora CONFIG`: fold the adapter into the base weights, as a standalone model.

The work is `honer.runs.merge.merge` (shard-by-shard, atomic); this module parses flags and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer

from honer.errors import HonerError

DTYPES = ("float32", "bfloat16", "float16")


def merge_lora(
    config: Path = typer.Argument(..., help="YAML config of the run."),
    lora_model_dir: Path | None = typer.Option(
        None,
        "--lora-model-dir",
        help="Adapter folder (default: `lora_model_dir`, else the run's output_dir).",
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Folder for the merged model (default: output_dir/merged)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --output folder."),
    qlora_base: str = typer.Option(
        "dequantized",
        "--qlora-base",
        help="QLoRA only: merge into the 4-bit weights de-quantized (`dequantized`, reproduces "
        "the trained model) or into the original full-precision weights (`original`).",
    ),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        help=f"Dtype of the saved weights: {', '.join(DTYPES)} (default: the dtype training used: float32 unless the config trains in bf16/fp16).",
    ),
    max_shard_size: str = typer.Option(
        "5GB", "--max-shard-size", help="Largest safetensors file; bigger models are sharded."
    ),
) -> None:
    """Merge a LoRA/QLoRA adapter into its base model and save it (safetensors, tokenizer, card)."""
    from honer.cli.loading import load_noted, refuse_reward_model
    from honer.model.merge import QLORA_BASES, parse_size

    if qlora_base not in QLORA_BASES:
        raise HonerError(f"--qlora-base: `{qlora_base}` is not one of {', '.join(QLORA_BASES)}.")
    if dtype is not None and dtype not in DTYPES:
        raise HonerError(f"--dtype: `{dtype}` is not one of {', '.join(DTYPES)}.")
    cfg = load_noted(config)
    refuse_reward_model(cfg, "honer merge-lora")
    if qlora_base != "dequantized" and not (cfg.load_in_4bit or cfg.adapter == "qlora"):
        raise HonerError("--qlora-base: applies to QLoRA adapters only (this config is not 4-bit).")
    shard_bytes = parse_size(max_shard_size)

    import torch

    from honer.cli.console import console
    from honer.runs.merge import merge as merge_from_config

    result = merge_from_config(
        cfg,
        lora_model_dir,
        output,
        qlora_base=qlora_base,
        dtype=getattr(torch, dtype) if dtype else None,
        max_shard_size=shard_bytes,
        force=force,
    )
    console.print(
        f"merged {result.merged_tensors} weights into {result.output} "
        f"({result.shards} shard(s), {result.total_bytes / 1e6:.1f} MB)",
        markup=False,
    )
