"""`honer data ingest|clean|dedup|stats`: prepare raw data for training, one command each.

The commands read what training datasets accept (JSON Lines, JSON, CSV/TSV, Parquet), write
JSON Lines atomically, and chain: ingest → clean → dedup → stats. Each ends with a summary table
(in → kept → rejected by reason). Only argument handling and printing live here; heavy imports
(pyarrow, sqlparse, datasketch, matplotlib, transformers) happen inside commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from honer.cli.console import console, err_console

if TYPE_CHECKING:
    from honer.curate.stats import DatasetStats, Lengths
    from honer.data.readers.lines import Meter
    from honer.data.readers.records import Tally

data_app = typer.Typer(
    help="Prepare training data: ingest raw files, clean, filter by the evals' checks, "
    "synthesize checked rows, deduplicate, and inspect statistics.",
    no_args_is_help=True,
)


@contextmanager
def _progress(paths: list[Path], what: str) -> Iterator[Meter]:
    """A byte-progress bar over `paths` on a terminal (nothing when output is piped)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    total = 0
    for p in paths:
        files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
        total += sum(f.stat().st_size for f in files if f.exists())
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(what, total=total or None)
        yield lambda n: progress.advance(task, n)


def _default_rejects(out: Path) -> Path:
    return out.with_name(f"{out.stem}.rejects.jsonl")


def _print_summary(title: str, tally: Tally) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("rows", justify="right")
    table.add_row("in", str(tally.rows_in))
    table.add_row("kept", str(tally.kept))
    table.add_row("rejected", str(tally.rejected_total))
    for reason, n in tally.rejected.most_common():
        table.add_row(f"  {reason}", str(n))
    console.print(table)
    for reason, _ in tally.rejected.most_common():
        for example in tally.examples.get(reason, []):
            console.print(f"  {reason}: {example}", markup=False)
    for note in tally.notes:
        err_console.print(f"[yellow]warning:[/] {note}")


@data_app.command()
def ingest(
    sources: list[Path] = typer.Argument(
        ...,
        help="Files or folders: .html/.htm, .csv/.tsv/.parquet, .sql dumps, .txt/.md, "
        ".jsonl/.json.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output JSON Lines file."),
    column: list[str] = typer.Option(
        [], "--column", help="Keep only this column (repeat for several)."
    ),
    template: list[str] = typer.Option(
        [],
        "--template",
        help='Build a field from columns: FIELD=TEXT with {column} placeholders, e.g. "output='
        '{answer}" (repeat for several fields).',
    ),
    table: str | None = typer.Option(
        None, "--table", help="SQL: read the rows of this table (needed when a dump has several)."
    ),
    columns: str | None = typer.Option(
        None,
        "--columns",
        help="SQL: column names (a,b,c) for INSERTs that list none (default: the dump's "
        "CREATE TABLE).",
    ),
    sql_escapes: Literal["backslash", "standard"] | None = typer.Option(
        None,
        "--sql-escapes",
        help="SQL: how strings escape quotes: backslash (MySQL) or standard (PostgreSQL, "
        "SQLite). Default: detected per dump from its header.",
    ),
    unit: Literal["document", "paragraph"] | None = typer.Option(
        None,
        "--unit",
        help="HTML/text/Markdown: one row per document (default) or per paragraph.",
    ),
    add_source: bool = typer.Option(
        False, "--add-source", help="Add a `source` field (file:line) to every row."
    ),
    encoding: str | None = typer.Option(
        None,
        "--encoding",
        help="Encoding of text sources (default UTF-8; HTML: when the page declares none).",
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Also write every skipped record (place and reason) here."
    ),
) -> None:
    """Turn raw HTML, CSV/TSV/Parquet, SQL dumps, text and Markdown into JSON Lines rows."""
    from honer.curate.ingest import IngestOptions
    from honer.curate.ingest import ingest as run_ingest

    options = IngestOptions(
        columns=tuple(column),
        templates=tuple(template),
        table=table,
        sql_columns=tuple(c.strip() for c in columns.split(",")) if columns else None,
        sql_escapes=sql_escapes,
        unit=unit,
        add_source=add_source,
        encoding=encoding,
    )
    with _progress(sources, "ingest") as meter:
        tally = run_ingest(sources, out, options, rejects, meter)
    _print_summary("ingest", tally)
    console.print(f"wrote {out} ({tally.kept} rows)", markup=False)
    if rejects is not None:
        console.print(f"rejects: {rejects} ({tally.rejected_total} records)", markup=False)


@data_app.command()
def clean(
    source: Path = typer.Argument(..., help="Rows to clean (.jsonl/.json/.csv/.tsv/.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Kept rows (JSON Lines)."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Rejected rows with reasons (default: OUT-stem.rejects.jsonl)."
    ),
    filters: Path | None = typer.Option(
        None, "--filters", help="YAML file of filter options (flags override it)."
    ),
    answer_field: list[str] = typer.Option(
        [], "--answer-field", help="Field holding the answer, when the row shape does not tell."
    ),
    slop: bool | None = typer.Option(
        None, "--slop/--no-slop", help="Reject answers with refusal/slop phrases (default on)."
    ),
    default_slop: bool | None = typer.Option(
        None, "--default-slop/--no-default-slop", help="Use the shipped phrase list (default on)."
    ),
    slop_phrase: list[str] = typer.Option([], "--slop-phrase", help="One more phrase (repeat)."),
    slop_file: Path | None = typer.Option(
        None, "--slop-file", help="File of more phrases, one a line."
    ),
    empty_answers: bool | None = typer.Option(
        None, "--empty-answers/--allow-empty-answers", help="Reject empty answers (default on)."
    ),
    charset: bool | None = typer.Option(
        None,
        "--charset/--no-charset",
        help="Reject rows with replacement/control characters or mojibake (default on).",
    ),
    max_bad_chars: int | None = typer.Option(
        None, "--max-bad-chars", min=0, help="Broken characters a row may have (default 0)."
    ),
    json_answers: bool | None = typer.Option(
        None, "--json-answers", help="Answers must be valid JSON (a ```json fence is allowed)."
    ),
    min_chars: int | None = typer.Option(None, "--min-chars", min=0, help="Fewest characters."),
    max_chars: int | None = typer.Option(None, "--max-chars", min=1, help="Most characters."),
    min_tokens: int | None = typer.Option(None, "--min-tokens", min=0, help="Fewest tokens."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="Most tokens."),
    length_of: Literal["row", "answer"] | None = typer.Option(
        None, "--length-of", help="Measure lengths over the whole row (default) or its answers."
    ),
    lang: str | None = typer.Option(
        None,
        "--lang",
        help="Expected language (en, de, ru, zh, …): writing-system share, plus a common-word "
        "vote for en/de/fr/es/it/pt/nl. Not a language model.",
    ),
    min_lang_share: float | None = typer.Option(
        None, "--min-lang-share", help="Share of letters in the language's script (default 0.8)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Count tokens with this config's tokenizer."
    ),
    tokenizer: Path | None = typer.Option(
        None, "--tokenizer", help="Count tokens with this local tokenizer folder."
    ),
) -> None:
    """Drop refusals/slop, broken text, empty or broken-JSON answers, and rows out of bounds."""
    from honer.curate.clean import clean as run_clean
    from honer.curate.clean import load_clean_options, token_counter

    flags = {
        "answer_fields": answer_field or None,
        "slop": slop,
        "default_slop_phrases": default_slop,
        "slop_phrases": slop_phrase or None,
        "slop_phrases_file": str(slop_file) if slop_file else None,
        "empty_answers": empty_answers,
        "charset": charset,
        "max_bad_chars": max_bad_chars,
        "json_answers": json_answers,
        "min_chars": min_chars,
        "max_chars": max_chars,
        "min_tokens": min_tokens,
        "max_tokens": max_tokens,
        "length_of": length_of,
        "lang": lang,
        "min_lang_share": min_lang_share,
    }
    options = load_clean_options(filters, flags)
    counter = token_counter(config, tokenizer)
    rejects = rejects or _default_rejects(out)
    with _progress([source], "clean") as meter:
        tally = run_clean(source, out, rejects, options, counter, meter)
    _print_summary("clean", tally)
    console.print(f"wrote {out} ({tally.kept} rows)", markup=False)
    console.print(f"rejects: {rejects} ({tally.rejected_total} rows)", markup=False)


def _with_evals_file(cfg: Any, path: Path) -> Any:
    """`cfg` with its `evals:` section read from `path` (a YAML mapping with `checks:`),
    validated like the config's own."""
    import yaml

    from honer.config.schema import EvalsConfig
    from honer.errors import ConfigError

    if not path.is_file():
        raise ConfigError([("--evals", f"`{path}` does not exist.")])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        section = EvalsConfig.model_validate(raw)
    except Exception as err:
        raise ConfigError(
            [("--evals", f"{path}: not an evals section (a mapping with `checks:`): {err}")]
        ) from None
    from honer.config.evals import spec_problems

    problems = [
        p
        for i, spec in enumerate(section.checks)
        for p in spec_problems(spec, f"--evals checks[{i}]")
    ]
    if problems:
        raise ConfigError(problems)
    return cfg.model_copy(update={"evals": section})


def _config_judge(cfg: Any, name: str) -> Any:
    """The config's `type: judge` check named `name` (for --judge)."""
    from honer.errors import ConfigError
    from honer.evaluate.judge import Judge

    entries = [
        (f"evals.checks[{i}]", c)
        for i, c in enumerate(cfg.evals.checks if cfg.evals else [])
        if c.get("type") == "judge" and c.get("name", "judge") == name
    ]
    if not entries:
        raise ConfigError([("--judge", f"the config has no judge check named `{name}`.")])
    return Judge(entries[0][1], entries[0][0])


@data_app.command("filter")
def filter_command(
    config: Path = typer.Argument(..., help="Config whose `evals.checks` judge the answers."),
    out: Path = typer.Option(..., "--out", "-o", help="Kept rows (JSON Lines)."),
    data: Path | None = typer.Option(
        None, "--data", help="Rows to filter (default: the config's first dataset, a local file)."
    ),
    dropped: Path | None = typer.Option(
        None, "--dropped", help="Dropped rows with reasons (default: OUT-stem.dropped.jsonl)."
    ),
    check: list[str] = typer.Option(
        [], "--check", help="Run only the check with this name (repeat; default: all)."
    ),
    evals: Path | None = typer.Option(
        None,
        "--evals",
        help="A YAML file with a `checks:` list (as under `evals:`) to use instead of the config's.",
    ),
    answer_field: list[str] = typer.Option(
        [], "--answer-field", help="Field holding the answer, when the row shape does not tell."
    ),
    min_chars: int | None = typer.Option(None, "--min-chars", min=0, help="Shortest answer."),
    max_chars: int | None = typer.Option(None, "--max-chars", min=1, help="Longest answer."),
    min_tokens: int | None = typer.Option(
        None, "--min-tokens", min=0, help="Fewest answer tokens (the config's tokenizer)."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="Most answer tokens (the config's tokenizer)."
    ),
    judge: str | None = typer.Option(
        None,
        "--judge",
        help="Also ask the config's judge with this name about the rows that pass the checks.",
    ),
) -> None:
    """Run the config's level-1 checks on the training answers; keep the rows that pass."""
    from honer.cli.loading import load_noted
    from honer.curate.filter import LengthBounds, filter_rows, selected_checks
    from honer.errors import DataError

    cfg = load_noted(config)
    if data is None:
        first = Path(cfg.datasets[0].path)
        if not first.is_file():
            raise DataError(
                f"datasets[0].path `{first}` is not a local file: pass the rows with --data FILE."
            )
        data = first
    if evals is not None:
        cfg = _with_evals_file(cfg, evals)
    checks = selected_checks(cfg, check)
    the_judge = _config_judge(cfg, judge) if judge else None
    bounds = LengthBounds(min_chars, max_chars, min_tokens, max_tokens)
    counter = None
    if bounds.uses_tokens:
        from honer.curate.clean import token_counter

        counter = token_counter(config, None)
    dropped = dropped or out.with_name(f"{out.stem}.dropped.jsonl")
    with _progress([data], "filter") as meter:
        result = filter_rows(
            data, out, dropped, checks, bounds, counter, answer_field or None, meter, the_judge
        )
    _print_summary("filter", result.tally)
    if result.checks:
        from rich.table import Table

        table = Table(title="checks", title_justify="left")
        table.add_column("check")
        table.add_column("rows failing", justify="right")
        for name in result.checks:
            table.add_row(name, str(result.check_failures[name]))
        console.print(table)
    console.print(f"wrote {out} ({result.tally.kept} rows)", markup=False)
    console.print(f"dropped: {dropped} ({result.tally.rejected_total} rows)", markup=False)


@data_app.command()
def synth(
    config: Path = typer.Argument(..., help="Config whose `evals.checks` judge the new rows."),
    out: Path = typer.Option(..., "--out", "-o", help="New rows (JSON Lines, with provenance)."),
    model: str = typer.Option(
        ..., "--model", help="Local model (folder, hub name, .gguf), or the endpoint's model name."
    ),
    seed: Path | None = typer.Option(
        None, "--seed", help="Seed rows (default: the config's first dataset, a local file)."
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Environment variable holding the endpoint's API key."
    ),
    per_row: int = typer.Option(1, "--per-row", min=1, help="New rows asked for per seed row."),
    temperature: float = typer.Option(0.8, "--temperature", min=0.0, help="Sampling temperature."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest reply."),
    prompt_file: Path | None = typer.Option(
        None,
        "--prompt-file",
        help="The request to the model, with {question} and {answer} (literal braces doubled).",
    ),
    check: list[str] = typer.Option(
        [], "--check", help="Keep rows passing only these checks (repeat; default: all)."
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="Also require a pass from the config's judge with this name."
    ),
    dropped: Path | None = typer.Option(
        None, "--dropped", help="Dropped candidates with reasons (default: OUT-stem.dropped.jsonl)."
    ),
) -> None:
    """Rewrite seed rows with a model; keep the new rows that pass the checks (and the judge)."""
    from rich.progress import Progress

    from honer.cli.loading import load_noted
    from honer.config.evals import judge_problems
    from honer.curate.filter import selected_checks
    from honer.curate.synth import DEFAULT_PROMPT, synthesize
    from honer.errors import ConfigError, DataError
    from honer.evaluate.llm import TextModel

    cfg = load_noted(config)
    if seed is None:
        seed = Path(cfg.datasets[0].path)
        if not seed.is_file():
            raise DataError(f"datasets[0].path `{seed}` is not a local file: pass --seed FILE.")
    spec = {"model": model, "max_new_tokens": max_new_tokens}
    if base_url:
        spec["base_url"] = base_url
    if api_key_env:
        spec["api_key_env"] = api_key_env
    problems = judge_problems({"type": "judge", **spec}, "--model")
    if problems:
        raise ConfigError(problems)
    checks = selected_checks(cfg, check) if cfg.evals is not None else []
    the_judge = _config_judge(cfg, judge) if judge else None
    prompt = prompt_file.read_text(encoding="utf-8") if prompt_file else DEFAULT_PROMPT
    dropped = dropped or out.with_name(f"{out.stem}.dropped.jsonl")
    text_model = TextModel(spec, "--model", temperature=temperature)
    rows = sum(1 for line in seed.read_text(encoding="utf-8").splitlines() if line.strip())
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("synth", total=rows)
        result = synthesize(
            seed,
            out,
            dropped,
            text_model,
            checks,
            the_judge,
            per_row,
            prompt,
            on_seed=lambda: bar.advance(task),
        )
    _print_summary("synth", result.tally)
    console.print(
        f"wrote {out} ({result.tally.kept} new rows from {result.seeds} seeds)", markup=False
    )
    console.print(f"dropped: {dropped} ({result.tally.rejected_total} candidates)", markup=False)


@data_app.command()
def dedup(
    source: Path = typer.Argument(..., help="Rows to deduplicate (.jsonl/.json/.csv/.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Kept rows (JSON Lines)."),
    rejects: Path | None = typer.Option(
        None,
        "--rejects",
        help="Removed rows with the row they repeat (default: OUT-stem.rejects.jsonl).",
    ),
    field: list[str] = typer.Option(
        [], "--field", help="Compare these fields (repeat); default: all but `source`."
    ),
    near: bool = typer.Option(
        True, "--near/--exact-only", help="Also remove near duplicates (MinHash LSH)."
    ),
    threshold: float = typer.Option(
        0.8, "--threshold", help="Near duplicates: estimated Jaccard similarity of word 5-grams."
    ),
    semantic_model: Path | None = typer.Option(
        None,
        "--semantic-model",
        help="Also remove semantic duplicates with this local embedding model folder.",
    ),
    semantic_threshold: float = typer.Option(
        0.95, "--semantic-threshold", help="Semantic duplicates: cosine similarity."
    ),
) -> None:
    """Remove exact and near duplicates (and, with a local model, semantic ones); keep the first."""
    from honer.curate.dedup import dedup as run_dedup
    from honer.curate.dedup import load_embedder
    from honer.errors import DataError

    if semantic_model is None and semantic_threshold != 0.95:
        raise DataError("--semantic-threshold applies with --semantic-model, which is not given.")
    if not near and threshold != 0.8:
        raise DataError("--threshold applies to near duplicates, which --exact-only turns off.")
    embed = load_embedder(semantic_model) if semantic_model is not None else None
    rejects = rejects or _default_rejects(out)
    with _progress([source], "dedup") as meter:
        result = run_dedup(
            source, out, rejects, field or None, near, threshold, embed, semantic_threshold, meter
        )
    _print_summary("dedup", result.tally)
    if result.clusters:
        console.print(f"{len(result.clusters)} clusters had duplicates removed; largest:")
        for where, n in result.clusters.most_common(5):
            console.print(f"  {where}: {n} removed", markup=False)
    console.print(f"wrote {out} ({result.tally.kept} rows)", markup=False)
    console.print(f"rejects: {rejects} ({result.tally.rejected_total} rows)", markup=False)


def _bars(lengths: Lengths) -> None:
    """The histogram as text bars, one line per bin."""
    bins = lengths.histogram()
    if not bins:
        return
    peak = max(n for _, _, n in bins) or 1
    width = len(str(bins[-1][1]))
    count_width = len(str(peak))
    for lo, hi, n in bins:
        bar = "█" * round(30 * n / peak)
        console.print(f"  {lo:>{width}}–{hi:<{width}}  {n:>{count_width}}  {bar}", markup=False)


def _print_stats(stats: DatasetStats) -> None:
    from rich.table import Table

    overview = Table(title=f"stats: {stats.source}", title_justify="left")
    overview.add_column("")
    overview.add_column("value", justify="right")
    overview.add_row("rows", str(stats.rows))
    overview.add_row("malformed rows", str(stats.malformed))
    overview.add_row("exact duplicates", str(stats.duplicates))
    for key, value in stats.chars.summary().items():
        if key != "count":
            overview.add_row(f"characters {key}", str(value))
    f = stats.format
    if f is not None:
        overview.add_row("format", f"{f.type} ({f.entry})")
        overview.add_row("samples", str(f.samples))
        overview.add_row("tokens", str(f.tokens))
        overview.add_row("trained tokens", str(f.trained_tokens))
        overview.add_row(f"over sequence_len {f.sequence_len}", str(f.over_length))
        overview.add_row("  truncated", str(f.truncated))
        overview.add_row("  dropped", str(f.dropped))
        for reason, n in f.rejected.most_common():
            overview.add_row(f"rejected by format: {reason}", str(n))
        for key, value in f.lengths.summary().items():
            if key != "count":
                overview.add_row(f"tokens/sample {key}", str(value))
    console.print(overview)
    fields = Table(title="fields", title_justify="left")
    fields.add_column("field")
    fields.add_column("rows", justify="right")
    fields.add_column("types")
    for name, types in stats.fields.items():
        kinds = ", ".join(f"{t} {n}" for t, n in types.most_common())
        fields.add_row(name, str(sum(types.values())), kinds)
    console.print(fields)
    console.print("characters per row:")
    _bars(stats.chars)
    if f is not None:
        console.print("tokens per sample:")
        _bars(f.lengths)
    for line in stats.malformed_examples + (f.examples if f else []):
        console.print(f"  skipped {line}", markup=False)
    for note in stats.notes:
        console.print(f"note: {note}", markup=False)


@data_app.command()
def stats(
    source: Path = typer.Argument(..., help="Rows (.jsonl/.json/.csv/.tsv/.parquet)."),
    config: Path | None = typer.Option(
        None, "--config", help="Also count tokens and trained tokens under this config's format."
    ),
    entry: int | None = typer.Option(
        None,
        "--entry",
        help="Which `datasets:` entry's format to use (default: the one reading SOURCE).",
    ),
    png: Path | None = typer.Option(
        None, "--png", help="Histogram image (default: SOURCE-stem.stats.png beside SOURCE)."
    ),
    no_png: bool = typer.Option(False, "--no-png", help="Do not write the histogram image."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers as JSON."),
) -> None:
    """Rows, fields, length histograms, duplicates, and tokens/trained tokens under a config."""

    from honer.curate.stats import dataset_stats, write_histogram_png
    from honer.errors import DataError

    if no_png and png is not None:
        raise DataError("--png and --no-png contradict each other; give one.")
    with _progress([source], "stats") as meter:
        result = dataset_stats(source, config, entry, meter)
    _print_stats(result)
    if not no_png:
        png = png or source.with_name(f"{source.stem}.stats.png")
        write_histogram_png(result, png)
        console.print(f"histogram: {png}", markup=False)
    if json_out is not None:
        from honer.curate.ingest.output import JsonlWriter

        with JsonlWriter(json_out) as writer:
            writer.write(result.to_dict())
        console.print(f"numbers: {json_out}", markup=False)
