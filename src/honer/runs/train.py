"""`train(cfg)`: one whole training run, artefacts included, as `honer train` does it.

Reads like the run: checks that need no model (the Hub included, with `hub_model_id`) →
tokenizer → data (rank 0 first) → model and adapter → callbacks → the trainer → (rank 0)
LR-database record, report, model card, final push to the Hub. A library user calling this gets
exactly what the command gets; the CLI only parses flags, launches ranks and prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from honer.config.schema import Config
from honer.errors import HonerError
from honer.ranks import is_main_process, world_size

if TYPE_CHECKING:
    from honer.runs.hub import HubTarget


@dataclass(frozen=True)
class TrainRun:
    """What a finished run produced."""

    output_dir: Path
    global_step: int
    final_loss: float | None
    report: Path | None
    prepared_data: Path
    resumed_from: Path | None
    hub_commit: str | None = None  # URL of the final commit on the Hub (`hub_model_id`)


def preflight(cfg: Config, resume: bool = False, processes: int | None = None) -> HubTarget | None:
    """Every check that needs neither data nor model (precision on this hardware, trackers,
    sharding engine for the process count, resume target, and on the main process the Hub
    repository `hub_model_id` pushes to): a mistake costs seconds. Returns the Hub target."""
    from honer.train import checkpoint, parallel
    from honer.train.args import preflight as check_arguments

    check_arguments(cfg)
    parallel.check_engine(cfg, processes or world_size())
    checkpoint.resolve_resume(cfg, resume)
    if cfg.hub_model_id and is_main_process():
        from honer.runs import hub

        return hub.preflight(cfg)
    return None


def train(cfg: Config, *, resume: bool = False, console: Console | None = None) -> TrainRun:
    """Prepare (or load) the data, build the model, train, and write every artefact."""
    from honer.data.prepare import load_or_prepare
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train import parallel
    from honer.train.trainer import train as run_trainer

    console = console or Console(highlight=False, soft_wrap=True)
    target = preflight(cfg, resume)
    main = is_main_process()
    if target is not None:
        console.print(target.describe(), markup=False)
    tokenizer = load_tokenizer(cfg)
    with parallel.main_process_first(cfg):  # rank 0 tokenizes; the others load its cache
        data = load_or_prepare(cfg, tokenizer)
    if main:
        _print_data_notes(data, console)
    model = build_adapter(cfg, load_model(cfg, tokenizer))
    callbacks, watchdog = _callbacks(cfg, data, tokenizer)
    pusher = None
    if target is not None:
        from honer.runs.hub import HubPusher

        pusher = HubPusher(cfg, target, console)
        callbacks.append(pusher.callback())
    started = time.perf_counter()
    trainer_fn = run_trainer
    if cfg.process_reward_model:
        from honer.train.process_reward import train_process_reward_model as trainer_fn
    elif cfg.reward_model:
        from honer.train.reward import train_reward_model as trainer_fn
    elif cfg.rl in ("grpo", "gdpo"):
        import functools

        from honer.evaluate.rewards import reward_functions
        from honer.train.grpo import train_grpo

        trainer_fn = functools.partial(train_grpo, reward_funcs=reward_functions(cfg))
    elif cfg.rl is not None:
        from honer.train.preference import train_preference as trainer_fn
    result = trainer_fn(
        cfg,
        model,
        tokenizer,
        data.train,
        data.eval,
        resume=resume,
        console=console,
        callbacks=callbacks,
    )
    report = hub_commit = None
    if main:
        loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
        console.print(f"finished at step {result.global_step}; final loss {loss}", markup=False)
        if not result.already_finished:  # a finished run is recorded once, when it trained
            record_run(cfg, result, data.path.name, time.perf_counter() - started, console)
        stats = {**data.stats, "train_lengths": length_histogram(data.train)}
        report = write_report(result.output_dir, stats, console)
        write_model_card(cfg, result.output_dir)
    tripped = watchdog is not None and watchdog.tripped
    if pusher is not None:
        if tripped:  # a diverged result is not published; checkpoints already pushed stay
            pusher.wait()
        else:
            hub_commit = pusher.finish(result.output_dir)
    if tripped:
        unpushed = " The final result was not pushed to the Hub." if pusher is not None else ""
        raise HonerError(
            f"{watchdog.tripped} The last checkpoint is in {result.output_dir}.{unpushed}"
        )
    return TrainRun(
        output_dir=result.output_dir,
        global_step=result.global_step,
        final_loss=result.final_loss,
        report=report,
        prepared_data=data.path,
        resumed_from=result.resumed_from,
        hub_commit=hub_commit,
    )


def _print_data_notes(data: Any, console: Console) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True, width=console.width)
    for warning in data.warnings:
        err.print(Text("warning: ", style="yellow") + Text(warning))
    for note in data.notes:
        err.print(Text(f"note: {note}"))


def _callbacks(cfg: Config, data: Any, tokenizer: Any) -> tuple[list[Any], Any]:
    """The run's callbacks (watchdog, eval table, early stopping) and the watchdog itself."""
    callbacks: list[Any] = []
    watchdog = None
    if cfg.loss_watchdog_threshold is not None:
        from honer.train.watchdog import LossWatchdogCallback

        watchdog = LossWatchdogCallback(cfg.loss_watchdog_threshold, cfg.loss_watchdog_patience)
        callbacks.append(watchdog)
    if cfg.eval_table_size and data.eval is not None and len(data.eval):
        from honer.evaluate.table import EvalTableCallback

        callbacks.append(
            EvalTableCallback(
                data.eval, tokenizer, cfg.eval_table_size, cfg.eval_max_new_tokens, cfg.output_dir
            )
        )
    if cfg.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience))
    return callbacks, watchdog


def length_histogram(dataset: Any, bins: int = 20) -> dict[str, list[int]]:
    """Sample lengths in `bins` equal-width bins (for the report's histogram); a preference
    pair counts as its prompt and longer answer."""
    if "completion_ids" in dataset.column_names:  # KTO: a prompt and its one answer
        rows = zip(dataset["prompt_ids"], dataset["completion_ids"], strict=True)
        lengths = [len(p) + len(c) for p, c in rows]
    elif "prompt_ids" not in dataset.column_names and "chosen_ids" in dataset.column_names:
        pairs = zip(dataset["chosen_ids"], dataset["rejected_ids"], strict=True)  # reward model
        lengths = [max(len(c), len(r)) for c, r in pairs]
    elif "reward_columns" in dataset.column_names:  # GRPO: the prompts (completions come later)
        lengths = [len(p) for p in dataset["prompt_ids"]]
    elif "prompt_ids" in dataset.column_names:
        pairs = zip(
            dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True
        )
        lengths = [len(p) + max(len(c), len(r)) for p, c, r in pairs]
    else:
        lengths = [len(x) for x in dataset["input_ids"]]
    top = max(lengths) + 1
    width = max(1, -(-top // bins))
    counts = [0] * (-(-top // width))
    for n in lengths:
        counts[n // width] += 1
    return {"edges": [i * width for i in range(len(counts) + 1)], "counts": counts}


def write_model_card(cfg: Config, output_dir: Path) -> None:
    """README.md beside the adapter/model: base model, datasets, config and final metrics
    (replaces peft's generic card)."""
    from honer.atomic import write_text
    from honer.config.dump import resolved_config_yaml
    from honer.runs.card import model_card

    card = model_card(cfg, output_dir, resolved_config_yaml(cfg), [], merged=False)
    write_text(output_dir / "README.md", card)


def write_report(output_dir: Path, stats: dict[str, Any], console: Console) -> Path:
    """Data stats beside the run, then report.html and curves.png (rebuild: `honer report`)."""
    from honer.atomic import write_text
    from honer.evaluate.report import build_report

    write_text(output_dir / "data_stats.json", json.dumps(stats, indent=2))
    report = build_report(output_dir)
    console.print(f"report: {report}", markup=False)
    return report


def record_run(
    cfg: Config, result: Any, dataset_fingerprint: str, wall_time_s: float, console: Console
) -> None:
    """Add the finished run to the LR policy database; a database problem is only a warning."""
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
        warn = Console(stderr=True, highlight=False, soft_wrap=True)
        warn.print(Text("warning: run not recorded: ", style="yellow") + Text(str(err)))
