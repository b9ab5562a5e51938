"""`evaluate(cfg, …)`: score one model on held-out rows, and write the results beside that model.

Reads like the run it is: what to evaluate → where its results go → rows → model → loss and
perplexity → greedy generations → checks → files. The CLI only parses flags and prints.

Where results go, so no run's report ever shows another model's score:
- the run's own result (default): `output_dir/evals/`;
- `checkpoint=DIR` (an adapter or a full model folder): `DIR/evals/`;
- `base_model_only=True`: `output_dir/evals/base_model/` (the base model's folder may be a
  read-only cache; the run's report shows it as the "before" figure);
- `output=DIR` overrides all three.
`results.json` records what was evaluated (kind, folder, base model, dtype, quantization, data),
and a folder that holds another model's results is never written over. When the results land in
a training run's folder, its `report.html` is rebuilt to show them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honer.config.schema import Config
from honer.errors import DataError, HonerError

RESULTS = "results.json"
FAILURES = "failures.jsonl"
CASES = "cases.jsonl"
JUDGE = "judge.jsonl"
ALIGNMENT = "alignment.json"
BASE_MODEL_DIR = "base_model"
# Prompts generated together: a larger batch means fewer decode steps, each barely slower.
GENERATION_BATCH = 32


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` measured and wrote."""

    output_dir: Path
    evaluated: dict[str, Any]
    loss: float
    perplexity: float
    samples: int
    tokens: int
    overall: float | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    # Level-2 (`type: judge`): pass / fail / unparsed counts per judge.
    judges: list[dict[str, Any]] = field(default_factory=list)


def _source(cfg: Config, checkpoint: Path | None, base_model_only: bool) -> Any:
    from honer.infer.load import Source, folder_source, run_output_source

    if base_model_only and checkpoint is not None:
        raise HonerError("--base-model-only: cannot be combined with --checkpoint.")
    if base_model_only:
        return Source("base", None)
    if checkpoint is not None:
        return folder_source(checkpoint, "--checkpoint")
    return run_output_source(cfg)


def results_dir(cfg: Config, source: Any, output: Path | None) -> Path:
    """Where this evaluation writes (module docstring)."""
    if output is not None:
        return Path(output)
    if source.kind == "base":
        return Path(cfg.output_dir) / "evals" / BASE_MODEL_DIR
    return Path(source.folder) / "evals"


def _identity(cfg: Config, source: Any, data_file: Path | None) -> dict[str, Any]:
    from honer.model.load import model_dtype

    quant = None
    if cfg.load_in_4bit and source.kind != "full":
        bnb = cfg.bnb_config_kwargs
        quant = f"4-bit {bnb.bnb_4bit_quant_type if bnb else 'nf4'}"
    elif cfg.load_in_8bit and source.kind != "full":
        quant = "8-bit"
    return {
        "kind": source.kind,
        "folder": str(Path(source.folder).resolve()) if source.folder else None,
        "base_model": cfg.base_model,
        "dtype": str(model_dtype(cfg)).removeprefix("torch."),
        "quantization": quant,
        "data": str(data_file) if data_file else "validation split",
    }


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("kind", "folder", "base_model")
    return all(a.get(k) == b.get(k) for k in keys)


def check_not_another_models(dest: Path, identity: dict[str, Any]) -> None:
    """Refuse to write over results that record a different model."""
    path = dest / RESULTS
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text()).get("evaluated")
    except (json.JSONDecodeError, AttributeError):
        return
    if isinstance(before, dict) and not _same_model(before, identity):
        what = before.get("folder") or f"base model {before.get('base_model')}"
        raise HonerError(
            f"{path}: holds the results of another model ({before.get('kind')}: {what}); pass "
            "--output DIR to write these elsewhere, or remove that file."
        )


def eval_rows(cfg: Config, tokenizer: Any, data_file: Path | None) -> Any:
    """The tokenized rows to score: the validation split, or `data_file` in datasets[0]'s format
    (tokenized by the same code and `sequence_len` rule as training); preference rows become
    their preferred answers (`honer.data.preference.preferred_answers`), GRPO prompts their
    reference answers (`honer.data.prompts.reference_samples`)."""
    if data_file is None:
        from honer.data.prepare import load_or_prepare

        data = load_or_prepare(cfg, tokenizer)
        if data.eval is None or len(data.eval) == 0:
            raise DataError(
                "no validation split: set `val_set_size` or `test_datasets`, or pass --data FILE."
            )
        rows = data.eval
    else:
        from honer.data.prepare import tokenize_entry

        if not Path(data_file).exists():
            raise DataError(f"--data: `{data_file}` does not exist.")
        entry = cfg.datasets[0].model_copy(update={"path": str(data_file)})
        rows = tokenize_entry(cfg, entry, tokenizer, "held-out")
    if "reward_columns" in rows.column_names:  # a GRPO run: its prompts and reference answers
        from honer.data.prompts import reference_samples

        rows = reference_samples(rows, tokenizer)
    elif "prompt_ids" in rows.column_names:  # a preference run: score the preferred answers
        from honer.data.preference import preferred_answers

        rows = preferred_answers(rows)
    if cfg.evals and cfg.evals.max_samples:
        rows = rows.select(range(min(cfg.evals.max_samples, len(rows))))
    return rows


def _generate_cases(cfg: Config, model: Any, tokenizer: Any, rows: Any, show: bool) -> list[dict]:
    from honer.infer.generate import generate, split_prompt
    from honer.infer.prompt import PromptFormatter
    from honer.progress import progress

    prompts, expected = [], []
    for row in rows:
        prompt, answer = split_prompt(row["input_ids"], row["labels"])
        prompts.append(prompt)
        expected.append(tokenizer.decode(answer, skip_special_tokens=True))
    max_new = (cfg.evals.max_new_tokens if cfg.evals else None) or cfg.eval_max_new_tokens
    stop = PromptFormatter(cfg, tokenizer).stop_ids
    with progress("generating", len(prompts), show) as advance:
        outputs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new,
            batch_size=GENERATION_BATCH,
            stop_ids=stop,
            on_batch=advance,
        )
    return [
        {
            "prompt": tokenizer.decode(p, skip_special_tokens=True),
            "expected": e,
            "output": tokenizer.decode(o, skip_special_tokens=True),
        }
        for p, e, o in zip(prompts, expected, outputs, strict=True)
    ]


def evaluate(
    cfg: Config,
    checkpoint: Path | None = None,
    data_file: Path | None = None,
    *,
    base_model_only: bool = False,
    output: Path | None = None,
    show_progress: bool = True,
) -> EvalResult:
    """Eval loss/perplexity and the `evals:` checks on greedy generations, for one model."""
    from honer.atomic import write_text
    from honer.evaluate.assertions import build_check, run_checks
    from honer.evaluate.metrics import eval_loss
    from honer.infer.load import load_source
    from honer.model.load import load_tokenizer
    from honer.progress import progress

    source = _source(cfg, checkpoint, base_model_only)
    identity = _identity(cfg, source, data_file)
    dest = results_dir(cfg, source, output)
    check_not_another_models(dest, identity)  # before minutes of work, not after
    specs = [
        (f"evals.checks[{i}]", spec) for i, spec in enumerate(cfg.evals.checks if cfg.evals else [])
    ]
    judges = [(where, spec) for where, spec in specs if spec.get("type") == "judge"]
    checks = [build_check(spec, where) for where, spec in specs if spec.get("type") != "judge"]
    tokenizer = load_tokenizer(cfg)
    rows = eval_rows(cfg, tokenizer, data_file)
    model = load_source(cfg, source, tokenizer)
    with progress("scoring", len(rows), show_progress) as advance:
        loss = eval_loss(
            model,
            rows,
            tokenizer.pad_token_id,
            cfg.eval_batch_size or cfg.micro_batch_size,
            on_batch=advance,
        )
    results: dict[str, Any] = {
        "evaluated": {
            **identity,
            "samples": loss.samples,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "loss": loss.loss,
        "perplexity": loss.perplexity,
        "trained_tokens": loss.tokens,
    }
    per_check: list[dict[str, Any]] = []
    overall = None
    failures: list[dict[str, Any]] = []
    if checks or judges:
        cases = _generate_cases(cfg, model, tokenizer, rows, show_progress)
        for case in cases:  # the level-1 results, for the judges' prompts
            case["checks"] = {
                c.name: c.score(case["output"], case.get("expected")) >= c.threshold for c in checks
            }
        outcome, overall = run_checks(checks, cases) if checks else ([], None)
        per_check = [
            {"name": r.name, "passed": r.passed, "failed": r.failed, "pass_rate": r.pass_rate}
            for r in outcome
        ]
        failures = [f for r in outcome for f in r.failures]
        results.update(overall=overall, checks=per_check)
        write_text(dest / CASES, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases))
        write_text(
            dest / FAILURES, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures)
        )
        if judges:
            from honer.evaluate.judge import run_judges

            del model  # the judge may be another model: free this one first
            judged, summaries = run_judges(judges, cases)
            results["judges"] = [s.as_dict() for s in summaries]
            write_text(
                dest / JUDGE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in judged)
            )
    write_text(dest / RESULTS, json.dumps(results, indent=2))
    run_dir = Path(cfg.output_dir)
    if (run_dir / "metrics.jsonl").is_file() and dest.resolve().is_relative_to(run_dir.resolve()):
        from honer.evaluate.report import build_report

        build_report(run_dir)  # the run's report shows the new figures (and the base model's)
    return EvalResult(
        output_dir=dest,
        evaluated=results["evaluated"],
        loss=loss.loss,
        perplexity=loss.perplexity,
        samples=loss.samples,
        tokens=loss.tokens,
        overall=overall,
        checks=per_check,
        failures=len(failures),
        judges=results.get("judges", []),
    )


def align_with_expert(
    cfg: Config,
    sheet: Path,
    judge: str | None = None,
    checkpoint: Path | None = None,
    base_model_only: bool = False,
    output: Path | None = None,
) -> tuple[Any, Path]:
    """Judge-vs-expert agreement of a filled critique sheet against the evaluation it was
    exported from (the same results folder `evaluate` writes to); saves `alignment.json` there."""
    from honer.atomic import write_text
    from honer.evaluate.align import align

    source = _source(cfg, checkpoint, base_model_only)
    dest = results_dir(cfg, source, output)
    agreement = align(sheet, dest, judge)
    path = dest / ALIGNMENT
    write_text(path, json.dumps(agreement.as_dict(), indent=2, ensure_ascii=False))
    run_dir = Path(cfg.output_dir)
    if (run_dir / "metrics.jsonl").is_file() and dest.resolve().is_relative_to(run_dir.resolve()):
        from honer.evaluate.report import build_report

        build_report(run_dir)  # the run's report shows the agreement figures
    return agreement, path
