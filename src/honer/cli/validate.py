"""`honer validate CONFIG`: check a config and print what the run will do. Never imports torch."""

from __future__ import annotations

from pathlib import Path

import typer

from honer.cli.console import console
from honer.cli.loading import load_noted
from honer.config import Config
from honer.config.schema import ONLINE_RL
from honer.data.sources import local_files


def summary_lines(cfg: Config) -> list[str]:
    """What a person wants to see before starting a run."""
    if cfg.adapter:
        quant = (
            " on a 4-bit base"
            if cfg.load_in_4bit
            else " on an 8-bit base"
            if cfg.load_in_8bit
            else ""
        )
        adapter = f"{cfg.adapter} (r={cfg.lora_r}, alpha={cfg.lora_alpha:g}){quant}"
    else:
        adapter = "none (full fine-tuning)"
    lines = [
        f"model:            {cfg.base_model}",
        f"adapter:          {adapter}",
    ]
    if cfg.rl is not None:
        lines.append(
            f"training:         {'RL' if cfg.rl in ONLINE_RL else 'preference tuning'}, "
            f"{cfg.rl.upper()} "
            f"(loss {'+'.join(cfg.rl_losses)}, {cfg.rl_strength})"
        )
    lines.append("datasets:")
    for i, ds in enumerate(cfg.datasets):
        try:
            if local_files(ds) is not None:
                where = "local"
            elif _looks_local(ds.path):
                where = "local file not found: create it before training, or fix `path`"
            else:
                where = "Hugging Face Hub"
        except Exception as err:  # a folder without data files: say so, validation goes on
            where = f"problem: {err}"
        lines.append(f"  [{i}] {ds.path}  type={ds.type}  ({where})")
    if cfg.test_datasets:
        lines.append(f"validation:       {len(cfg.test_datasets)} test dataset(s)")
    elif cfg.val_set_size:
        lines.append(f"validation:       val_set_size={cfg.val_set_size:g} of the training rows")
    length = (
        "max_steps=" + str(cfg.max_steps) if cfg.max_steps else f"num_epochs={cfg.num_epochs:g}"
    )
    lines += [
        f"sequence_len:     {cfg.sequence_len}  (packing: {'on' if cfg.sample_packing else 'off'})",
        f"effective batch:  {cfg.effective_batch_size} per process "
        f"(micro_batch_size {cfg.micro_batch_size} × gradient_accumulation_steps "
        f"{cfg.gradient_accumulation_steps})",
        f"optimizer:        {cfg.optimizer}, lr {cfg.resolved_learning_rate:g}, "
        f"{cfg.lr_scheduler} schedule, {length}",
        f"output_dir:       {cfg.output_dir}",
    ]
    return lines


def validate(config: Path = typer.Argument(..., help="YAML config file.")) -> None:
    """Check a config file and print a short summary of the run it describes."""
    cfg = load_noted(config)
    console.print(f"[green]✓[/] {config} is valid")
    for line in summary_lines(cfg):
        console.print(line, markup=False)


def _looks_local(path: str) -> bool:
    """A path that can only mean a local file: a data-file suffix, or written as a path
    (absolute, `./`, `../`, `~`, or more than one folder deep); a hub name is `owner/name`."""
    from honer.data.sources import SUFFIXES

    p = Path(path)
    return (
        p.suffix.lower() in SUFFIXES
        or path.startswith(("/", "./", "../", "~"))
        or path.count("/") > 1
    )
