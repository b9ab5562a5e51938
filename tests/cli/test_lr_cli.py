"""`honer lr …` end to end on the tiny model: the rule from real data, plots, the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.config import load_config
from honer.lr.db import PolicyDatabase
from tests.helpers import write_addition_run

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def cfg_path(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return write_addition_run(
        tmp_path,
        tiny_model_dir,
        40,
        "adapter: lora\nmicro_batch_size: 4\nnum_epochs: 2\nlearning_rate: 0.001\n"
        "lr_scheduler: warmup_stable_decay\nlr_scheduler_kwargs: {decay_ratio: 0.5}\n"
        "logging_steps: 1\n",
    )


def test_suggest_from_figures() -> None:
    out = invoke(
        "lr",
        "suggest",
        "--supervised-tokens",
        "2000000",
        "--steps",
        "350",
        "--epochs",
        "1",
        "--base-lr",
        "5e-5",
        "--pretrained-batch-tokens",
        "4000000",
    )
    assert "lr = 5e-05 * sqrt(0.00142857) = 1.89e-06" in out
    assert out.strip().endswith("suggested learning_rate: 1.89e-06")


def test_suggest_reads_a_real_prepared_dataset(cfg_path: Path) -> None:
    from honer.data.prepare import load_or_prepare
    from honer.model.load import load_tokenizer

    out = invoke("lr", "suggest", str(cfg_path))
    cfg = load_config(cfg_path)
    trained = load_or_prepare(cfg, load_tokenizer(cfg)).stats["train"]["trained_tokens"]
    assert f"total supervised tokens        {trained:,}" in out
    assert "steps / epochs                 20 / 2 = 10 steps per epoch" in out  # 40 rows / 4
    # A ~0.2M-parameter llama: not Llama 2's figures, the nearest size class, and it says so.
    assert "assumed the nearest size class, GPT-3 Small (125M)" in out
    assert "adapter factor                 10 (Schulman et al., 'LoRA Without Regret'" in out
    expected = 10 * 6e-4 * (trained / 10 / 500_000) ** 0.5
    assert f"suggested learning_rate: {expected:.3g}" in out
    assert "note: a step supervises" in out and "check it with `honer lr find`" in out
    assert f"the config's learning_rate 0.001 is {0.001 / expected:.3g}x this" in out


def test_suggest_counts_packed_steps_like_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The issue's case: with sample packing training takes one step per packed row, not per
    sample (165 vs 600 steps on SmolLM2), so tokens per step were 4x too few."""
    from honer.data.prepare import load_or_prepare
    from honer.model.load import load_tokenizer
    from honer.train.trainer import build_trainer

    cfg_path = write_addition_run(
        tmp_path,
        tiny_model_dir,
        60,
        "adapter: lora\nsample_packing: true\nsequence_len: 512\nmicro_batch_size: 1\n",
    )
    cfg = load_config(cfg_path)
    tokenizer = load_tokenizer(cfg)
    data = load_or_prepare(cfg, tokenizer)
    from transformers import AutoModelForCausalLM

    _, plan = build_trainer(
        cfg, AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, data.train
    )
    assert plan.total_steps < len(data.train) // 3  # several samples per packed row
    out = invoke("lr", "suggest", str(cfg_path))
    trained = data.stats["train"]["trained_tokens"]
    assert (
        f"steps / epochs                 {plan.total_steps} / 1 = {plan.total_steps} steps" in out
    )
    assert f"({len(data.train)} samples)" in out
    expected = 10 * 6e-4 * (trained / plan.total_steps / 500_000) ** 0.5
    assert f"suggested learning_rate: {expected:.3g}" in out


def test_suggest_for_full_finetuning_has_no_adapter_factor(cfg_path: Path) -> None:
    out = invoke("lr", "suggest", str(cfg_path), "--adapter", "full")
    assert "adapter factor" not in out
    bad = runner.invoke(app, ["lr", "suggest", str(cfg_path), "--adapter", "dora"])
    assert bad.exit_code != 0 and "--adapter: `dora` is not one of full, lora, qlora" in str(
        bad.exception
    )


def test_suggest_without_enough_figures_says_which(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lr", "suggest", "--steps", "10"])
    assert result.exit_code != 0
    assert "missing --supervised-tokens, --epochs, --base-lr, --pretrained-batch-tokens" in str(
        result.exception
    )


def test_plot_writes_the_schedule_training_uses(cfg_path: Path, tmp_path: Path) -> None:
    from honer.train.optim import lr_curve

    out = invoke("lr", "plot", str(cfg_path), "--out", str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert "warmup_stable_decay, 20 steps, peak 0.001, final 0" in out
    lrs = lr_curve(load_config(cfg_path), 20)
    assert lrs[:10] == [0.001] * 10 and lrs[15] == pytest.approx(0.0005) and lrs[20] == 0.0


def test_train_records_the_run_and_history_lists_it(
    cfg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.sqlite"
    monkeypatch.setenv("HONER_LR_DB", str(db))
    invoke("train", str(cfg_path))
    [run] = PolicyDatabase(db).runs()
    assert (run.adapter, run.batch_size, run.steps, run.policy) == (
        "lora",
        4,
        20,
        "warmup_stable_decay",
    )
    assert run.policy_params == {"warmup_steps": 0, "lr_scheduler_kwargs": {"decay_ratio": 0.5}}
    assert run.final_train_loss is not None
    out = invoke("lr", "history", "--db", str(db))
    assert "lora" in out and "0.001" in out and "│ 20 " in out  # one row: adapter, lr, steps
    best = invoke("lr", "best", "--db", str(db), "--adapter", "lora")
    assert "recommended: lr_scheduler: warmup_stable_decay, learning_rate: 0.001" in best


def test_best_without_runs_is_explained(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lr", "best", "--db", str(tmp_path / "empty.sqlite")])
    assert result.exit_code != 0 and "no comparable runs" in str(result.exception)


def test_find_writes_plot_and_json_and_leaves_output_dir_alone(
    cfg_path: Path, tmp_path: Path
) -> None:
    out = invoke(
        "lr",
        "find",
        str(cfg_path),
        "--steps",
        "20",
        "--start",
        "1e-5",
        "--end",
        "10",
        "--out",
        str(tmp_path / "f"),
    )
    assert "steepest descent:" in out and "minimum / 10:" in out
    doc = json.loads((tmp_path / "f/lr_find.json").read_text())
    assert doc["steepest"] > 0 and len(doc["lrs"]) == len(doc["losses"]) <= 20
    assert (tmp_path / "f/lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "out").exists()


def test_tune_ranks_and_records(cfg_path: Path, tmp_path: Path) -> None:
    cfg_path.write_text(cfg_path.read_text() + "val_set_size: 8\n")
    db = tmp_path / "t.sqlite"
    out = invoke(
        "lr",
        "tune",
        str(cfg_path),
        "--policies",
        "cosine,linear",
        "--lrs",
        "0.003,10",
        "--min-steps",
        "2",
        "--max-steps",
        "4",
        "--db",
        str(db),
        "--out",
        str(tmp_path / "t.png"),
    )
    import re

    lines = re.findall(r"\d\. (?:cosine|linear) .*", out)
    assert len(lines) == 4 and all("lr 10 " in x for x in lines[2:])  # the absurd LR ranks last
    assert len(PolicyDatabase(db).runs()) == 4
    assert (tmp_path / "t.png").is_file()


def test_corrupt_database_does_not_fail_training(
    cfg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    monkeypatch.setenv("HONER_LR_DB", str(bad))
    result = runner.invoke(app, ["train", str(cfg_path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "warning: run not recorded:" in result.output and "bad.sqlite" in result.output
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
