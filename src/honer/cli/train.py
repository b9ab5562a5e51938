"""`honer train CONFIG [--resume]`: prepare data (or load its cache), load the model, train.

Checks that need no model run first (unsupported keys, precision on this hardware, schedule
and optimizer, trackers, resume target; then the step plan once the data is known), so a config
mistake costs seconds, not a model load. Heavy libraries are imported
inside the command. Errors are not caught here: the CLI entry point prints `HonerError`s as one
short message.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

from honer.errors import ConfigError, HonerError


def train(
    config: Path = typer.Argument(..., help="YAML config file."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the latest checkpoint in output_dir."
    ),
    num_processes: int = 1,
) -> None:
    """Train as the config says (preprocesses first when no cache exists).

    With `num_processes` > 1 (and not already inside a launched process) this process only
    validates the config and starts torchrun, which runs `honer train` once per rank.
    """
    from honer.config import load_config
    from honer.train import parallel

    cfg = load_config(config)

    from rich.text import Text

    from honer.cli.console import console, err_console
    from honer.data.prepare import load_or_prepare
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train import checkpoint
    from honer.train.args import plan_steps, preflight

    preflight(cfg)
    parallel.check_engine(cfg, max(num_processes, parallel.world_size()))
    checkpoint.resolve_resume(cfg, resume)
    if num_processes > 1 and "LOCAL_RANK" not in os.environ:
        _launch(config, resume, num_processes)  # the checks above ran once, here
        return

    from honer.train.trainer import train as run_training

    main = parallel.is_main_process()
    tokenizer = load_tokenizer(cfg)
    with parallel.main_process_first(cfg):  # rank 0 tokenizes; the others load its cache
        data = load_or_prepare(cfg, tokenizer)
    for warning in data.warnings if main else []:
        err_console.print(Text("warning: ", style="yellow") + Text(warning))
    for note in data.notes if main else []:
        err_console.print(Text(f"note: {note}"))
    has_eval = data.eval is not None and len(data.eval) > 0
    plan_steps(cfg, len(data.train), has_eval)  # e.g. evals_per_epoch without a validation set
    model = load_model(cfg, tokenizer)
    model = build_adapter(cfg, model)
    callbacks: list[Any] = []
    watchdog = None
    if cfg.loss_watchdog_threshold is not None:
        from honer.train.watchdog import LossWatchdogCallback

        watchdog = LossWatchdogCallback(cfg.loss_watchdog_threshold, cfg.loss_watchdog_patience)
        callbacks.append(watchdog)
    if cfg.eval_table_size:
        if not has_eval:
            raise ConfigError(
                [
                    (
                        "eval_table_size",
                        "needs a validation set: set `val_set_size` or `test_datasets`.",
                    )
                ]
            )
        from honer.evaluate.table import EvalTableCallback

        callbacks.append(
            EvalTableCallback(
                data.eval, tokenizer, cfg.eval_table_size, cfg.eval_max_new_tokens, cfg.output_dir
            )
        )
    if cfg.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience))
    started = time.perf_counter()
    result = run_training(
        cfg,
        model,
        tokenizer,
        data.train,
        data.eval,
        resume=resume,
        console=console,
        callbacks=callbacks,
    )
    if main:
        console.print(
            f"finished at step {result.global_step}; final loss {result.final_loss}",
            markup=False,
        )
        record_run(cfg, result, data.path.name, time.perf_counter() - started)
        stats = {**data.stats, "train_lengths": length_histogram(data.train)}
        write_report(result.output_dir, stats)
        write_model_card(cfg, result.output_dir)
    if watchdog is not None and watchdog.tripped:
        raise HonerError(f"{watchdog.tripped} The last checkpoint is in {result.output_dir}.")


def _launch(config: Path, resume: bool, num_processes: int) -> None:
    """Run `honer train CONFIG` in `num_processes` ranks under torchrun; its exit code is ours."""
    import subprocess
    import sys

    from honer.cli.console import console
    from honer.train.parallel import launch_command

    command = launch_command(
        ["train", str(config), *(["--resume"] if resume else [])], num_processes
    )
    console.print(f"launching {num_processes} processes: {' '.join(command)}", markup=False)
    code = subprocess.call(command)
    if code:
        sys.exit(code)


def length_histogram(dataset: Any, bins: int = 20) -> dict[str, list[int]]:
    """Sample lengths in `bins` equal-width bins (for the report's histogram)."""
    lengths = [len(x) for x in dataset["input_ids"]]
    top = max(lengths) + 1
    width = max(1, -(-top // bins))
    counts = [0] * (-(-top // width))
    for n in lengths:
        counts[n // width] += 1
    return {"edges": [i * width for i in range(len(counts) + 1)], "counts": counts}


def write_model_card(cfg: Any, output_dir: Path) -> None:
    """README.md beside the adapter/model: base model, datasets, config and final metrics
    (replaces peft's generic card)."""
    from honer.model.merge import model_card
    from honer.train.checkpoint import atomic_write_text
    from honer.train.trainer import resolved_config_yaml

    card = model_card(cfg, output_dir, resolved_config_yaml(cfg), [], merged=False)
    atomic_write_text(output_dir / "README.md", card)


def write_report(output_dir: Path, stats: dict[str, Any]) -> None:
    """Data stats beside the run, then report.html and curves.png (rebuild: `honer report`)."""
    import json

    from honer.cli.console import console
    from honer.evaluate.report import build_report
    from honer.train.checkpoint import atomic_write_text

    atomic_write_text(output_dir / "data_stats.json", json.dumps(stats, indent=2))
    console.print(f"report: {build_report(output_dir)}", markup=False)


def record_run(cfg: Any, result: Any, dataset_fingerprint: str, wall_time_s: float) -> None:
    """Add the finished run to the LR policy database; a database problem is only a warning."""
    import json

    from rich.text import Text

    from honer.cli.console import err_console
    from honer.lr.db import PolicyDatabase, PolicyDatabaseError, RunRecord
    from honer.train.callbacks import METRICS_FILE

    evals = [
        json.loads(line)
        for line in (result.output_dir / METRICS_FILE).read_text().splitlines()
        if '"eval_loss"' in line
    ]
    params: dict[str, Any] = {"warmup_steps": result.plan.warmup_steps}
    if cfg.lr_scheduler_kwargs:
        params["lr_scheduler_kwargs"] = cfg.lr_scheduler_kwargs
    if cfg.lr_phases:
        params["lr_phases"] = [p.model_dump(exclude_none=True) for p in cfg.lr_phases]
    record = RunRecord(
        model=cfg.base_model,
        dataset_fingerprint=dataset_fingerprint,
        adapter=cfg.adapter or "full",
        batch_size=cfg.effective_batch_size * result.plan.world_size,
        learning_rate=cfg.resolved_learning_rate,
        policy=cfg.lr_scheduler,
        steps=result.global_step,
        final_train_loss=result.final_loss,
        final_eval_loss=evals[-1]["eval_loss"] if evals else None,
        wall_time_s=round(wall_time_s, 2),
        output_dir=str(result.output_dir),
        policy_params=params,
    )
    try:
        PolicyDatabase().record(record)
    except PolicyDatabaseError as err:
        err_console.print(Text("warning: run not recorded: ", style="yellow") + Text(str(err)))
