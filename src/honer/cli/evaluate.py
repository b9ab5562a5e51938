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
    export_critiques: Path | None = typer.Option(
        None,
        "--export-critiques",
        help="After evaluating, write a CSV for an expert: each case, its checks, the judges' "
        "verdicts and critiques, and empty expert_verdict / expert_critique columns.",
    ),
    bom: bool = typer.Option(False, "--bom", help="Start the CSV with a UTF-8 BOM (for Excel)."),
    align: Path | None = typer.Option(
        None,
        "--align",
        help="Read a filled --export-critiques sheet and report judge-vs-expert agreement "
        "(no model is run).",
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="With --align: the judge to compare (default: the sheet's first)."
    ),
) -> None:
    """Eval loss/perplexity and the config's `evals:` checks on greedy generations."""
    from honer.cli.loading import load_noted, refuse_reward_model
    from honer.runs.evaluate import FAILURES, JUDGE, RESULTS
    from honer.runs.evaluate import evaluate as run_evaluation

    cfg = load_noted(config)
    refuse_reward_model(cfg, "honer evaluate")
    if align is not None:
        from honer.runs.evaluate import align_with_expert

        _print_agreement(align_with_expert(cfg, align, judge, checkpoint, base_model_only, output))
        return
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
    if export_critiques is not None:
        from honer.evaluate.align import export_sheet

        rows = export_sheet(result.output_dir, export_critiques, bom=bom)
        console.print(
            f"critique sheet: {export_critiques} ({rows} cases); fill expert_verdict (pass/fail) "
            f"and expert_critique, then: honer evaluate {config}{_selection(checkpoint, base_model_only, output)} "
            f"--align {export_critiques}",
            markup=False,
        )


def _selection(checkpoint: Path | None, base_model_only: bool, output: Path | None) -> str:
    """The flags that chose the evaluated model and results folder (for the --align hint)."""
    flags = f" --checkpoint {checkpoint}" if checkpoint else ""
    flags += " --base-model-only" if base_model_only else ""
    return flags + (f" --output {output}" if output else "")


def _print_agreement(result: tuple) -> None:
    from rich.table import Table

    agreement, path = result
    a = agreement
    console.print(
        f"judge {a.judge} vs expert on {a.reviewed} reviewed cases ({a.not_reviewed} not "
        f"reviewed): accuracy {a.accuracy:.1%}, precision on failures {a.precision:.1%}, "
        f"recall on failures {a.recall:.1%}, Cohen's kappa {a.kappa:.2f}",
        markup=False,
    )
    c = a.confusion
    table = Table(title="confusion (rows: judge, columns: expert)", title_justify="left")
    table.add_column("")
    table.add_column("expert fail", justify="right")
    table.add_column("expert pass", justify="right")
    table.add_row("judge fail", str(c["judge_fail_expert_fail"]), str(c["judge_fail_expert_pass"]))
    table.add_row("judge pass", str(c["judge_pass_expert_fail"]), str(c["judge_pass_expert_pass"]))
    console.print(table)
    for d in a.disagreements[:10]:
        console.print(
            f"  case {d['case']}: judge {d['judge']}, expert {d['expert']}: "
            f"{d['expert_critique'] or d['judge_critique']}",
            markup=False,
        )
    console.print(f"agreement: {path}", markup=False)
