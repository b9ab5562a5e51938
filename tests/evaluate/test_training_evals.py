"""During training: the loss watchdog stops bad runs, eval tables record generations, and the
run ends with report.html and curves.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.train.watchdog import LossWatchdogCallback
from tests.helpers import write_addition_run

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

runner = CliRunner()


def control() -> SimpleNamespace:
    return SimpleNamespace(should_training_stop=False, should_save=False)


@pytest.mark.parametrize(
    ("losses", "stops_at"),
    [
        ([9.0, 9.0, 9.0], 3),  # above the threshold for `patience` logged steps
        ([9.0, 1.0, 9.0, 9.0, 9.0], 5),  # a good step resets the count
        ([1.0, math.nan, math.inf, math.nan], 4),  # NaN/inf count as bad
        ([1.0, 2.0, 1.5], None),
    ],
)
def test_watchdog_counts_bad_logged_steps(losses: list[float], stops_at: int | None) -> None:
    dog = LossWatchdogCallback(threshold=5.0, patience=3)
    stopped = None
    for step, loss in enumerate(losses, start=1):
        c = dog.on_log(None, SimpleNamespace(global_step=step), control(), logs={"loss": loss})
        if c.should_training_stop:
            assert c.should_save  # a checkpoint is kept
            stopped = step
            break
    assert stopped == stops_at
    if stops_at:
        assert f"at step {stops_at}" in dog.tripped and "learning_rate" in dog.tripped


def write_run(tmp_path: Path, tiny_model_dir: Path, extra: str) -> Path:
    """The addition run with these defaults; a key in `extra` replaces its default (a key
    written twice is a config error)."""
    defaults = {
        "adapter": "lora",
        "micro_batch_size": "4",
        "learning_rate": "0.001",
        "logging_steps": "1",
        "val_set_size": "4",
    }
    given = {line.split(":", 1)[0] for line in extra.splitlines() if ":" in line}
    base = "".join(f"{k}: {v}\n" for k, v in defaults.items() if k not in given)
    return write_addition_run(tmp_path, tiny_model_dir, 24, base + extra)


def test_watchdog_stops_a_run_forced_to_nan(tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from honer.model.adapters import build_adapter
    from honer.train.trainer import train
    from tests.train.data_util import config, dataset

    class PoisonAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step == 3:
                with torch.no_grad():
                    next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))

    cfg = config(tiny_model_dir, tmp_path / "out", max_steps=20, logging_steps=1, save_steps=100)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = build_adapter(cfg, AutoModelForCausalLM.from_pretrained(tiny_model_dir), verbose=False)
    dog = LossWatchdogCallback(threshold=50.0, patience=2)
    result = train(cfg, model, tokenizer, dataset(64), callbacks=[PoisonAtStep3(), dog])
    assert result.global_step == 5  # NaN logged at steps 4 and 5: patience 2
    assert "the loss was nan for 2 logged steps" in dog.tripped
    assert (tmp_path / "out" / "checkpoint-5").is_dir()  # the stop keeps a checkpoint


def test_watchdog_threshold_through_the_cli(tmp_path: Path, tiny_model_dir: Path) -> None:
    # An absurd learning rate kills the network: the loss sticks far above the threshold.
    cfg = write_run(
        tmp_path,
        tiny_model_dir,
        "learning_rate: 1.0e+6\nmax_steps: 30\nloss_watchdog_threshold: 5\n"
        "loss_watchdog_patience: 2\nmax_grad_norm: 0\n",
    )
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "training stopped by the loss watchdog at step" in message
    assert "above loss_watchdog_threshold 5" in message
    lines = (tmp_path / "out/metrics.jsonl").read_text().splitlines()
    assert max(json.loads(x)["step"] for x in lines) < 30  # stopped early
    assert list((tmp_path / "out").glob("checkpoint-*"))  # the checkpoint is kept


def test_eval_table_and_report(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = write_run(
        tmp_path,
        tiny_model_dir,
        "num_epochs: 2\nevals_per_epoch: 1\neval_table_size: 2\neval_table_max_new_tokens: 4\n",
    )
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = tmp_path / "out"
    lines = [json.loads(x) for x in (out / "eval_table.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [5, 5, 10, 10]  # 2 prompts at each of 2 evaluations
    assert all(x["prompt"].endswith("### Response:\n") for x in lines)
    assert lines[0]["expected"].isdigit()
    page = (out / "report.html").read_text()
    assert (out / "curves.png").is_file() and "Generations at evaluation" in page
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["train"]["samples"] == 20 and sum(stats["train_lengths"]["counts"]) == 20
    assert "alt='length histogram'" in page
    evals = [
        json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "eval_loss" in x
    ]
    assert all(e["eval_perplexity"] == pytest.approx(math.exp(e["eval_loss"])) for e in evals)


def test_eval_table_without_validation_data_is_a_note(tmp_path: Path, tiny_model_dir: Path) -> None:
    # As in Axolotl: nothing to evaluate on, so no evaluation runs; honer says so.
    from honer.config import load_config

    cfg = write_run(tmp_path, tiny_model_dir, "eval_table_size: 2\nmax_steps: 2\n")
    cfg.write_text(cfg.read_text().replace("val_set_size: 4\n", ""))
    notes = dict(load_config(cfg).notes)
    assert notes["eval_table_size"].startswith("set, but there is no validation set")
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert not (tmp_path / "out" / "eval_table.jsonl").exists()


def test_early_stopping_keeps_the_best_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    # A huge constant LR makes eval loss worse after the first evaluation: patience 2 stops the
    # run two evaluations later, and the final model is the best (first) checkpoint.
    cfg = write_run(
        tmp_path,
        tiny_model_dir,
        "num_epochs: 10\nevals_per_epoch: 1\nsaves_per_epoch: 1\nsave_total_limit: 1\n"
        "early_stopping_patience: 2\nlr_scheduler: constant\nlearning_rate: 0.3\n",
    )
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = tmp_path / "out"
    evals = [
        json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "eval_loss" in x
    ]
    losses = [e["eval_loss"] for e in evals]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert len(evals) == best + 3  # stopped after 2 evaluations without improvement
    assert len(evals) < 10
    kept = sorted(p.name for p in out.glob("checkpoint-*"))
    assert f"checkpoint-{evals[best]['step']}" in kept  # best kept despite save_total_limit 1
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from honer.config import load_config
    from honer.data.prepare import load_or_prepare
    from honer.evaluate.metrics import eval_loss
    from honer.model.load import load_tokenizer

    conf = load_config(cfg)
    tokenizer = load_tokenizer(conf)
    data = load_or_prepare(conf, tokenizer)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    saved = eval_loss(model.eval(), data.eval, tokenizer.pad_token_id).loss
    # The saved adapter scores the best evaluation's loss, not the last one's.
    assert abs(losses[-1] - losses[best]) > 1e-3  # 10× the tolerance below
    assert saved == pytest.approx(losses[best], abs=1e-4)


def test_keep_best_needs_aligned_saves(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = write_run(
        tmp_path,
        tiny_model_dir,
        "evals_per_epoch: 2\nsaves_per_epoch: 1\nload_best_model_at_end: true\n",
    )
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code != 0
    assert "checkpoints must be saved at evaluations" in str(result.exception)


def test_evaluate_command_scores_checks(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = write_run(
        tmp_path,
        tiny_model_dir,
        "max_steps: 2\n"
        "evals:\n  checks:\n"
        "    - {type: regex, pattern: '^\\\\d*$', name: digits_only}\n"
        "    - {type: exact}\n"
        "    - {type: not_regex, pattern: 'zzz'}\n"
        "  max_new_tokens: 3\n",
    )
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["evaluate", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output
    assert "eval loss" in out and "(4 samples," in out
    assert "not_regex" in out and "4/4 passed (100.0%)" in out  # nothing produces 'zzz'
    results = json.loads((tmp_path / "out/evals/results.json").read_text())
    assert [c["name"] for c in results["checks"]] == ["digits_only", "exact", "not_regex"]
    assert all(c["passed"] + c["failed"] == 4 for c in results["checks"])
    failures = (tmp_path / "out/evals/failures.jsonl").read_text().splitlines()
    assert len(failures) == sum(c["failed"] for c in results["checks"])
    assert results["perplexity"] == pytest.approx(math.exp(results["loss"]))


def test_tensorboard_and_mlflow_receive_the_metrics(tmp_path: Path, tiny_model_dir: Path) -> None:
    store = (tmp_path / "mlruns").as_uri()
    cfg = write_run(
        tmp_path,
        tiny_model_dir,
        f"max_steps: 4\nuse_tensorboard: true\nmlflow_tracking_uri: {store}\n"
        "mlflow_experiment_name: honer-test\neval_steps: 4\neval_table_size: 2\n"
        "eval_table_max_new_tokens: 2\n",
    )
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = list((tmp_path / "out/runs").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("honer-test")
    [run] = client.search_runs([experiment.experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "eval_table")]
    assert artifacts == ["eval_table/step_0000004.json"]  # the eval table, as an MLflow table


def test_train_writes_a_model_card(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = write_run(tmp_path, tiny_model_dir, "max_steps: 2\n")
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"base_model: {tiny_model_dir}" in card and "library_name: peft" in card
    assert "d.jsonl" in card  # the datasets are named
    (tmp_path / "full").mkdir()
    full = write_addition_run(tmp_path / "full", tiny_model_dir, 8, "max_steps: 1\n")
    assert runner.invoke(app, ["train", str(full)]).exit_code == 0
    assert "library_name: transformers" in (tmp_path / "full" / "out" / "README.md").read_text()
