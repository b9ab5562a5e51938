"""`honer evaluate CONFIG [--checkpoint DIR] [--data FILE]`: eval loss and assertion evals.

Loss and perplexity on the validation split (or a given data file in the config's first dataset
format), then the `evals:` checks on greedy generations for the same rows. Results go to
`output_dir/evals/results.json` (the report shows them) and failing cases to
`output_dir/evals/failures.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from honer.cli.console import console
from honer.errors import DataError, HonerError


def _load_model(cfg: Any, tokenizer: Any, checkpoint: Path) -> Any:
    """A full model folder, or base model + adapter when the folder holds an adapter."""
    from honer.model.load import load_model

    if (checkpoint / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(load_model(cfg, tokenizer), checkpoint)
    if (checkpoint / "config.json").is_file():
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(checkpoint)
    raise HonerError(f"{checkpoint}: holds no model or adapter (pass --checkpoint DIR).")


def _rows(cfg: Any, tokenizer: Any, data_file: Path | None) -> Any:
    from honer.data.prepare import load_or_prepare

    if data_file is None:
        data = load_or_prepare(cfg, tokenizer)
        if data.eval is None or len(data.eval) == 0:
            raise DataError(
                "no validation split: set `val_set_size` or `test_datasets`, or pass --data FILE."
            )
        return data.eval
    from datasets import Dataset

    from honer.data import sources
    from honer.data.formats import FORMATS
    from honer.data.formats.context import format_context
    from honer.data.tokenize import TokenizerView

    entry = cfg.datasets[0].model_copy(update={"path": str(data_file)})
    raw = sources.load_rows(entry, cfg.skip_bad_rows).dataset
    ctx = format_context(cfg, entry, tokenizer)
    view = TokenizerView(tokenizer)
    ids, labels = [], []
    for row in raw:
        for sample in FORMATS[entry.type].tokenize_row(row, view, ctx):
            ids.append(sample.input_ids)
            labels.append(sample.labels)
    return Dataset.from_dict({"input_ids": ids, "labels": labels})


def evaluate(
    config: Path = typer.Argument(..., help="YAML config."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Model or adapter folder (default: the run's output_dir)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Evaluate this file (format of datasets[0]) instead of validation."
    ),
) -> None:
    """Eval loss/perplexity and the config's `evals:` checks on greedy generations."""
    from honer.config import load_config

    cfg = load_config(config)
    from honer.evaluate.assertions import build_check, run_checks
    from honer.evaluate.metrics import eval_loss
    from honer.infer.generate import generate, split_prompt
    from honer.model.load import load_tokenizer
    from honer.train.checkpoint import atomic_write_text

    tokenizer = load_tokenizer(cfg)
    rows = _rows(cfg, tokenizer, data)
    if cfg.evals and cfg.evals.max_samples:
        rows = rows.select(range(min(cfg.evals.max_samples, len(rows))))
    model = _load_model(cfg, tokenizer, checkpoint or Path(cfg.output_dir))
    loss = eval_loss(
        model, rows, tokenizer.pad_token_id, cfg.eval_batch_size or cfg.micro_batch_size
    )
    console.print(
        f"eval loss {loss.loss:.4f}  perplexity {loss.perplexity:.3f}  "
        f"({loss.samples} samples, {loss.tokens} trained tokens)",
        markup=False,
    )
    results: dict[str, Any] = {"loss": loss.loss, "perplexity": loss.perplexity}
    if cfg.evals:
        checks = [
            build_check(spec, f"evals.checks[{i}]") for i, spec in enumerate(cfg.evals.checks)
        ]
        prompts, expected = [], []
        for row in rows:
            prompt, answer = split_prompt(row["input_ids"], row["labels"])
            prompts.append(prompt)
            expected.append(tokenizer.decode(answer, skip_special_tokens=True))
        max_new = cfg.evals.max_new_tokens or cfg.eval_max_new_tokens
        outputs = generate(model, tokenizer, prompts, max_new_tokens=max_new)
        cases = [
            {
                "prompt": tokenizer.decode(p, skip_special_tokens=True),
                "expected": e,
                "output": tokenizer.decode(o, skip_special_tokens=True),
            }
            for p, e, o in zip(prompts, expected, outputs, strict=True)
        ]
        per_check, overall = run_checks(checks, cases)
        for r in per_check:
            console.print(
                f"  {r.name:<20} {r.passed}/{r.passed + r.failed} passed ({r.pass_rate:.1%})",
                markup=False,
            )
        console.print(f"overall pass rate {overall:.1%} ({len(cases)} cases)", markup=False)
        results["overall"] = overall
        results["checks"] = [
            {"name": r.name, "passed": r.passed, "failed": r.failed, "pass_rate": r.pass_rate}
            for r in per_check
        ]
        failures = [f for r in per_check for f in r.failures]
        out = Path(cfg.output_dir) / "evals"
        atomic_write_text(
            out / "failures.jsonl",
            "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures),
        )
        console.print(f"failing cases: {out / 'failures.jsonl'} ({len(failures)})", markup=False)
    atomic_write_text(
        Path(cfg.output_dir) / "evals" / "results.json", json.dumps(results, indent=2)
    )
