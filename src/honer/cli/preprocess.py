"""`honer preprocess CONFIG [--debug]`: tokenize, split and cache the datasets; show samples."""

from __future__ import annotations

from pathlib import Path

import typer

from honer.cli.console import console, err_console


def _print_stats(stats: dict) -> None:
    from rich.table import Table

    table = Table(title="Datasets", title_justify="left")
    for col in ("entry", "type", "rows in", "malformed", "samples", "truncated", "dropped"):
        table.add_column(col)
    for d in stats["datasets"]:
        dropped = ", ".join(f"{n} {why}" for why, n in d["dropped"].items()) or "0"
        table.add_row(
            f"{d['entry']} {d['path']}",
            d["type"],
            str(d["rows_in"]),
            str(d["malformed_skipped"]),
            str(d["samples_out"]),
            str(d["truncated"]),
            dropped,
        )
    console.print(table)
    for row in stats.get("skipped_rows", []):
        console.print(f"  skipped {row}", markup=False)
    duplicates = stats.get("duplicates_dropped")
    if duplicates is not None:
        where = ", ".join(f"{n} from {split}" for split, n in duplicates.items())
        console.print(f"dataset_exact_deduplication: dropped {where}")
    for split in ("train", "eval"):
        s = stats.get(split)
        if not s:
            continue
        lengths = "  ".join(f"{k} {v}" for k, v in s["length"].items())
        console.print(
            f"{split}: {s['samples']} samples, {s['tokens']} tokens, "
            f"{s['trained_tokens']} trained tokens; lengths: {lengths}"
        )


def preprocess(
    config: Path = typer.Argument(..., help="YAML config file."),
    debug: bool = typer.Option(False, "--debug", help="Print samples token by token."),
    debug_samples: int = typer.Option(3, "--debug-samples", min=1, help="Samples --debug shows."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when a cache exists."),
) -> None:
    """Tokenize the datasets, split validation and cache the result (reused by `train`)."""
    from honer.cli.loading import load_noted

    cfg = load_noted(config)
    from honer.data.inspect import sample_view
    from honer.data.prepare import load_or_prepare
    from honer.model.load import load_tokenizer

    tokenizer = load_tokenizer(cfg)
    data = load_or_prepare(cfg, tokenizer, force=force)
    from rich.text import Text

    for warning in data.warnings:
        err_console.print(Text("warning: ", style="yellow") + Text(warning))
    for note in data.notes:
        err_console.print(Text(f"note: {note}"))
    _print_stats(data.stats)
    state = "loaded from cache" if data.from_cache else "written"
    console.print(f"prepared data {state}: {data.path}", markup=False)
    if debug:
        for i in range(min(debug_samples, len(data.train))):
            row = data.train[i]
            if "prompt_ids" in row:  # a preference pair: each answer after the masked prompt
                for side in ("chosen", "rejected"):
                    console.rule(f"train pair {i}: prompt + {side}")
                    ids = row["prompt_ids"] + row[f"{side}_ids"]
                    labels = [-100] * len(row["prompt_ids"]) + row[f"{side}_ids"]
                    console.print(sample_view(ids, labels, tokenizer))
                continue
            console.rule(f"train sample {i}")
            console.print(sample_view(row["input_ids"], row["labels"], tokenizer))
