"""`honer train CONFIG [--resume]`: prepare data (or load its cache), load the model, train.

Checks that need no model run first (unsupported keys, precision on this hardware, schedule
and optimizer, trackers, resume target; then the step plan once the data is known), so a config
mistake costs seconds, not a model load. Heavy libraries are imported
inside the command. Errors are not caught here: the CLI entry point prints `HonerError`s as one
short message.
"""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Argument(..., help="YAML config file."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the latest checkpoint in output_dir."
    ),
) -> None:
    """Train as the config says (preprocesses first when no cache exists)."""
    from honer.config import load_config

    cfg = load_config(config)

    from rich.text import Text

    from honer.cli.console import console, err_console
    from honer.data.prepare import load_or_prepare
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train import checkpoint
    from honer.train.args import plan_steps, preflight

    preflight(cfg)
    checkpoint.resolve_resume(cfg, resume)

    from honer.train.trainer import train as run_training

    tokenizer = load_tokenizer(cfg)
    data = load_or_prepare(cfg, tokenizer)
    for warning in data.warnings:
        err_console.print(Text("warning: ", style="yellow") + Text(warning))
    has_eval = data.eval is not None and len(data.eval) > 0
    plan_steps(cfg, len(data.train), has_eval)  # e.g. evals_per_epoch without a validation set
    model = load_model(cfg, tokenizer)
    model = build_adapter(cfg, model)
    result = run_training(
        cfg, model, tokenizer, data.train, data.eval, resume=resume, console=console
    )
    console.print(
        f"finished at step {result.global_step}; final loss {result.final_loss}", markup=False
    )
