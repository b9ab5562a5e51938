"""`honer evaluate CONFIG [--checkpoint DIR | --base-model-only] [--data FILE] [--output DIR]`.

Parses flags, calls `honer.runs.evaluate.evaluate` and prints what it measured; where results go
and what is recorded is described there.
"""

from __future__ import annotations

from pathlib import Path

import typer

from honer.cli.console import console


def evaluate(
    config: Path = typer.Argument(..., help="YAML config."),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Model or adapter folder to evaluate (default: the run's output_dir); results go "
        "to DIR/evals.",
    ),
    base_model_only: bool = typer.Option(
        False,
        "--base-model-only",
        help="Score the base model, loaded exactly as training loads it (dtype, quantization); "
        "results go to output_dir/evals/base_model.",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Evaluate this file (format of datasets[0]) instead of validation."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Folder for results.json, cases.jsonl and failures.jsonl."
    ),
) -> None:
    """Eval loss/perplexity and the config's `evals:` checks on greedy generations."""
    from honer.cli.loading import load_noted, refuse_reward_model
    from honer.runs.evaluate import FAILURES, JUDGE, RESULTS
    from honer.runs.evaluate import evaluate as run_evaluation

    cfg = load_noted(config)
    refuse_reward_model(cfg, "honer evaluate")
    result = run_evaluation(cfg, checkpoint, data, base_model_only=base_model_only, output=output)
    what = result.evaluated
    console.print(
        f"evaluated {what['kind']} {what['folder'] or what['base_model']} "
        f"({what['dtype']}{', ' + what['quantization'] if what['quantization'] else ''}) "
        f"on {what['data']}",
        markup=False,
    )
    console.print(
        f"eval loss {result.loss:.4f}  perplexity {result.perplexity:.3f}  "
        f"({result.samples} samples, {result.tokens} trained tokens)",
        markup=False,
    )
    for check in result.checks:
        console.print(
            f"  {check['name']:<20} {check['passed']}/{check['passed'] + check['failed']} "
            f"passed ({check['pass_rate']:.1%})",
            markup=False,
        )
    for judge in result.judges:
        total = judge["pass"] + judge["fail"] + judge["unparsed"]
        console.print(
            f"  judge {judge['name']:<14} {judge['pass']}/{total} passed ({judge['pass_rate']:.1%})"
            f", {judge['fail']} failed, {judge['unparsed']} unparsed",
            markup=False,
        )
    if result.judges:
        console.print(f"judge verdicts: {result.output_dir / JUDGE}", markup=False)
    if result.overall is not None:
        console.print(
            f"overall pass rate {result.overall:.1%} ({result.samples} cases)", markup=False
        )
        console.print(
            f"failing cases: {result.output_dir / FAILURES} ({result.failures})", markup=False
        )
    console.print(f"results: {result.output_dir / RESULTS}", markup=False)
