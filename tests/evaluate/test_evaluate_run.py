"""`honer evaluate`: results go beside the evaluated model, record what it was, never land on
another model's results; the base model is scored exactly as training loads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.config import load_config
from honer.errors import HonerError
from tests.helpers import write_addition_run

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

runner = CliRunner()
CHECKS = "evals:\n  checks:\n    - {type: exact}\n  max_new_tokens: 4\n"


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir) -> Path:
    """A LoRA run with a checkpoint at step 2 and the final adapter at step 4."""
    tmp = tmp_path_factory.mktemp("evaluate")
    cfg = write_addition_run(
        tmp,
        tiny_model_dir,
        24,
        "adapter: lora\nmicro_batch_size: 4\nlearning_rate: 0.01\nval_set_size: 4\n"
        "max_steps: 4\nsave_steps: 2\n" + CHECKS,
    )
    _invoke("train", str(cfg))
    return cfg


def test_evaluating_another_checkpoint_leaves_the_runs_results_alone(trained: Path) -> None:
    out = trained.parent / "out"
    _invoke("evaluate", str(trained))
    own = (out / "evals" / "results.json").read_bytes()
    recorded = json.loads(own)["evaluated"]
    assert recorded["kind"] == "adapter" and recorded["folder"] == str(out.resolve())
    assert recorded["dtype"] == "float32" and recorded["data"] == "validation split"

    checkpoint = out / "checkpoint-2"
    res = _invoke("evaluate", str(trained), "--checkpoint", str(checkpoint))
    assert f"results: {checkpoint / 'evals' / 'results.json'}" in res.output
    assert (out / "evals" / "results.json").read_bytes() == own
    other = json.loads((checkpoint / "evals" / "results.json").read_text())
    assert other["evaluated"]["folder"] == str(checkpoint.resolve())
    assert other["loss"] != json.loads(own)["loss"]  # a different model was scored
    cases = (checkpoint / "evals" / "cases.jsonl").read_text().splitlines()
    assert len(cases) == other["evaluated"]["samples"] == 4


def test_results_of_another_model_are_never_written_over(trained: Path) -> None:
    out = trained.parent / "out"
    _invoke("evaluate", str(trained))
    before = (out / "evals" / "results.json").read_bytes()
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(trained),
            "--checkpoint",
            str(out / "checkpoint-2"),
            "--output",
            str(out / "evals"),
        ],
    )
    assert isinstance(res.exception, HonerError)
    message = str(res.exception)
    assert "holds the results of another model (adapter:" in message and "--output DIR" in message
    assert (out / "evals" / "results.json").read_bytes() == before


def test_base_model_scoring_loads_the_base_as_training_does(tmp_path: Path, tiny_model_dir: Path):
    """The issue's case: the only route to a "before" score was `--checkpoint <base folder>`,
    which loaded the base in its stored dtype (bf16) instead of the config's (float32), so
    28/100 greedy answers differed from `honer inference --base-model-only`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honer.evaluate.metrics import eval_loss
    from honer.infer.generate import generate, split_prompt
    from honer.infer.load import load_for_inference
    from honer.infer.prompt import PromptFormatter
    from honer.runs.evaluate import eval_rows

    base = tmp_path / "bf16-base"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(base)
    cfg_path = write_addition_run(
        tmp_path, base, 24, "adapter: lora\nmicro_batch_size: 4\nval_set_size: 6\n" + CHECKS
    )
    res = _invoke("evaluate", str(cfg_path), "--base-model-only")
    dest = tmp_path / "out" / "evals" / "base_model"
    assert f"results: {dest / 'results.json'}" in res.output
    results = json.loads((dest / "results.json").read_text())
    assert results["evaluated"]["kind"] == "base" and results["evaluated"]["dtype"] == "float32"

    cfg = load_config(cfg_path)
    model, tokenizer, what = load_for_inference(cfg, base_only=True)
    assert what == f"base model {base}" and model.dtype == torch.float32
    rows = eval_rows(cfg, tokenizer, None)
    assert results["loss"] == pytest.approx(eval_loss(model, rows, tokenizer.pad_token_id).loss)
    prompts = [split_prompt(r["input_ids"], r["labels"])[0] for r in rows]
    stop = PromptFormatter(cfg, tokenizer).stop_ids
    answers = [
        tokenizer.decode(o, skip_special_tokens=True)
        for o in generate(model, tokenizer, prompts, 4, stop_ids=stop)
    ]
    cases = [json.loads(x) for x in (dest / "cases.jsonl").read_text().splitlines()]
    assert [c["output"] for c in cases] == answers
    with pytest.raises(HonerError, match="--base-model-only: cannot be combined with --checkpoint"):
        from honer.runs.evaluate import evaluate

        evaluate(cfg, tmp_path, base_model_only=True)


def test_the_report_shows_the_base_model_beside_the_run(trained: Path) -> None:
    out = trained.parent / "out"
    _invoke("evaluate", str(trained))
    _invoke("evaluate", str(trained), "--base-model-only")
    _invoke("report", str(out))
    page = (out / "report.html").read_text()
    assert "base model (before)" in page and "this run" in page
