"""`honer lr suggest|plot|find|tune|history|best`: the learning-rate toolkit.

Heavy libraries are imported inside each command; the database commands need none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from honer.cli.console import console
from honer.errors import HonerError

lr_app = typer.Typer(
    help="Learning-rate toolkit: the supervised-token rule, range test, schedule plots, "
    "policy search and the database of past runs.",
    no_args_is_help=True,
)

DB_OPTION = typer.Option(None, "--db", help="Policy database file (default: HONER_LR_DB or cache).")


def _model_type(base_model: str) -> str | None:
    """`model_type` of a model's config.json (local folder read directly; hub via transformers)."""
    local = Path(base_model) / "config.json"
    if local.is_file():
        return json.loads(local.read_text()).get("model_type")
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(base_model).model_type
    except (OSError, ValueError):
        return None


ADAPTERS = ("full", "lora", "qlora")


@lr_app.command()
def suggest(
    config: Path | None = typer.Argument(None, help="YAML config (figures read from its data)."),
    supervised_tokens: int | None = typer.Option(
        None, "--supervised-tokens", min=1, help="Trained (label) tokens in the whole dataset."
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Optimizer steps of the run."),
    epochs: float | None = typer.Option(
        None, "--epochs", min=0.0001, help="Epochs of the run (steps per epoch = steps / epochs)."
    ),
    base_lr: float | None = typer.Option(None, "--base-lr", help="Pre-training peak LR."),
    pretrained_batch_tokens: int | None = typer.Option(
        None, "--pretrained-batch-tokens", min=1, help="Pre-training batch size in tokens."
    ),
    adapter: str | None = typer.Option(
        None,
        "--adapter",
        help="full, lora or qlora (default: the config's `adapter`, else full); an adapter "
        "multiplies the rule by 10.",
    ),
) -> None:
    """LR from the supervised-token rule: base_lr * sqrt(tokens per step / pretrained batch),
    times 10 for LoRA/QLoRA; prints every term, the figures assumed and where they do not fit."""
    from honer.lr.suggest import pretraining_reference
    from honer.lr.suggest import suggest as apply_rule

    if adapter is not None and adapter not in ADAPTERS:
        raise HonerError(f"--adapter: `{adapter}` is not one of {', '.join(ADAPTERS)}.")
    notes: list[str] = []
    figures_note = ""
    cfg = None
    if config is not None:
        from honer.cli.loading import load_noted

        cfg = load_noted(config)
        adapter = adapter or cfg.adapter
        if supervised_tokens is None or steps is None or epochs is None:
            from honer.runs.lr import prepared

            _, data, plan = prepared(cfg)
            supervised_tokens = supervised_tokens or data.stats["train"]["trained_tokens"]
            steps = steps or plan.total_steps
            epochs = epochs or plan.epochs
            if cfg.sample_packing:
                figures_note = (
                    f"steps counted from the packed rows: {plan.micro_batches_per_epoch:,} "
                    f"micro-batches per epoch from {plan.examples:,} rows "
                    f"({len(data.train):,} samples)"
                )
        if base_lr is None or pretrained_batch_tokens is None:
            from honer.train.estimate import inspect_model

            _, tensors = inspect_model(cfg)
            from honer.model.gguf import loadable_base

            figures, why = pretraining_reference(_model_type(loadable_base(cfg)), tensors.total)
            base_lr = base_lr or figures.base_lr
            pretrained_batch_tokens = pretrained_batch_tokens or figures.batch_tokens
            console.print(f"{why}: {figures.source}", markup=False)
            if "assumed" in why:
                notes.append(why)
    missing = [
        flag
        for flag, value in (
            ("--supervised-tokens", supervised_tokens),
            ("--steps", steps),
            ("--epochs", epochs),
            ("--base-lr", base_lr),
            ("--pretrained-batch-tokens", pretrained_batch_tokens),
        )
        if value is None
    ]
    if missing:
        raise HonerError(f"give a CONFIG, or every figure: missing {', '.join(missing)}.")
    if adapter in ("lora", "qlora") and cfg is not None and cfg.peft_use_rslora:
        notes.append(
            "the adapter factor was measured with LoRA's alpha/r scaling; rsLoRA's alpha/sqrt(r) "
            "scales updates differently, so the factor may not carry over"
        )
    try:
        result = apply_rule(
            supervised_tokens,  # type: ignore[arg-type]
            steps,  # type: ignore[arg-type]
            epochs,  # type: ignore[arg-type]
            base_lr,  # type: ignore[arg-type]
            pretrained_batch_tokens,  # type: ignore[arg-type]
            adapter=None if adapter == "full" else adapter,
            notes=tuple(notes),
        )
    except ValueError as err:
        raise HonerError(str(err)) from None
    if figures_note:
        console.print(figures_note, markup=False)
    for line in result.lines():
        console.print(line, markup=False)
    for warning in result.warnings():
        console.print(f"note: {warning}", markup=False)
    if cfg is not None and "learning_rate" in cfg.model_fields_set:
        ratio = cfg.resolved_learning_rate / result.learning_rate
        console.print(
            f"the config's learning_rate {cfg.resolved_learning_rate:g} is {ratio:.3g}x this",
            markup=False,
        )
    console.print(f"suggested learning_rate: {result.learning_rate:.3g}", markup=False)


@lr_app.command()
def plot(
    config: Path = typer.Argument(..., help="YAML config."),
    out: Path = typer.Option(Path("lr_schedule.png"), "--out", help="PNG to write."),
    steps: int | None = typer.Option(
        None, "--steps", min=1, help="Total steps (default: max_steps, or computed from the data)."
    ),
) -> None:
    """Plot the learning rate at every step exactly as `honer train` would set it."""
    from honer.cli.loading import load_noted
    from honer.lr.plot import plot_schedule
    from honer.train.optim import lr_curve

    cfg = load_noted(config)
    if steps or cfg.max_steps:
        total = steps or cfg.max_steps
    else:
        from honer.runs.lr import prepared

        total = prepared(cfg)[2].total_steps
    lrs = lr_curve(cfg, total)
    plot_schedule(lrs, cfg.lr_scheduler, out)
    console.print(
        f"wrote {out}: {cfg.lr_scheduler}, {total} steps, peak {max(lrs):.3g}, final {lrs[-1]:.3g}",
        markup=False,
    )


def _runs_table(runs: list[Any]) -> None:
    from rich.table import Table

    table = Table(title_justify="left")
    for col in ("when", "model", "adapter", "batch", "lr", "policy", "steps", "train", "eval"):
        table.add_column(col)
    import datetime as dt

    def fmt(x: float | None) -> str:
        return "" if x is None else f"{x:.4g}"

    for r in runs:
        table.add_row(
            dt.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M"),
            r.model,
            r.adapter,
            str(r.batch_size),
            f"{r.learning_rate:.3g}",
            r.policy,
            str(r.steps),
            fmt(r.final_train_loss),
            fmt(r.final_eval_loss),
        )
    console.print(table)


@lr_app.command()
def history(
    model: str | None = typer.Option(None, "--model", help="Only runs whose model contains this."),
    db: Path | None = DB_OPTION,
    limit: int = typer.Option(20, "--limit", min=1),
) -> None:
    """Past runs recorded by `honer train`, newest first."""
    from honer.lr.db import PolicyDatabase

    database = PolicyDatabase(db)
    runs = database.runs(model)[:limit]
    if not runs:
        console.print(f"no recorded runs in {database.path}", markup=False)
        return
    _runs_table(runs)


@lr_app.command()
def best(
    model: str | None = typer.Option(None, "--model", help="Only runs whose model contains this."),
    adapter: str | None = typer.Option(None, "--adapter", help="lora, qlora or full."),
    db: Path | None = DB_OPTION,
) -> None:
    """The policy and LR of the comparable run with the lowest final eval (else train) loss."""
    from honer.lr.db import PolicyDatabase

    database = PolicyDatabase(db)
    run = database.best(model, adapter)
    if run is None:
        raise HonerError(
            f"no comparable runs in {database.path} (model {model!r}, adapter {adapter!r})."
        )
    _runs_table([run])
    params = json.dumps(run.policy_params) if run.policy_params else "{}"
    console.print(
        f"recommended: lr_scheduler: {run.policy}, learning_rate: {run.learning_rate:.3g} "
        f"(parameters {params})",
        markup=False,
    )


@lr_app.command()
def find(
    config: Path = typer.Argument(..., help="YAML config."),
    start: float = typer.Option(1e-7, "--start", help="First learning rate."),
    end: float = typer.Option(1.0, "--end", help="Last learning rate."),
    steps: int = typer.Option(100, "--steps", min=5, help="Steps of the range test."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for lr_find.png and lr_find.json."),
) -> None:
    """LR range test: raise the LR exponentially, watch the smoothed loss, suggest a peak LR.

    Nothing is written to output_dir; the model is restored afterwards.
    """
    from honer.cli.loading import load_noted
    from honer.runs.lr import find as run_find

    run = run_find(load_noted(config), out, start_lr=start, end_lr=end, num_steps=steps)
    result, json_path, png_path = run.result, run.json_path, run.png_path
    if result.stopped_early:
        console.print(f"stopped early: {result.reason}", markup=False)
    console.print(
        f"steepest descent: {result.steepest:.3g}   minimum / 10: {result.min_div_10:.3g}",
        markup=False,
    )
    console.print(f"wrote {png_path} and {json_path}", markup=False)


@lr_app.command()
def tune(
    config: Path = typer.Argument(..., help="YAML config (needs a validation split)."),
    policies: str = typer.Option(..., "--policies", help="Comma-separated lr_scheduler names."),
    lrs: str = typer.Option(..., "--lrs", help="Comma-separated learning rates."),
    min_steps: int = typer.Option(10, "--min-steps", min=1, help="Budget of the first round."),
    max_steps: int = typer.Option(40, "--max-steps", min=1, help="Budget of the last round."),
    eta: int = typer.Option(2, "--eta", min=2, help="Keep 1/eta of the trials each round."),
    search: str = typer.Option("grid", "--search", help="grid or random."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Random search: trials."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("lr_tune.png"), "--out", help="Comparison plot."),
    db: Path | None = DB_OPTION,
) -> None:
    """Short trials of (policy, LR) pairs with successive halving, ranked by eval loss."""
    from honer.cli.loading import load_noted
    from honer.runs.lr import tune as run_tune

    cfg = load_noted(config)
    try:
        lr_values = [float(x) for x in lrs.split(",") if x.strip()]
    except ValueError:
        raise HonerError(f"--lrs: `{lrs}` must be comma-separated numbers.") from None
    names = [p.strip() for p in policies.split(",") if p.strip()]
    results, plot = run_tune(
        cfg,
        names,
        lr_values,
        out,
        db=db,
        min_steps=min_steps,
        max_steps=max_steps,
        eta=eta,
        search=search,
        trials=trials,
        seed=seed,
    )
    for rank, r in enumerate(results, start=1):
        gone = (
            f"dropped after round {r.eliminated_in_round}" if r.eliminated_in_round else "finalist"
        )
        console.print(
            f"{rank:>2}. {r.policy:<22} lr {r.lr:<9.3g} eval loss {r.eval_loss:.4f} "
            f"({r.steps_trained} steps, {gone})",
            markup=False,
        )
    console.print(f"wrote {plot}", markup=False)
