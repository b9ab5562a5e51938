"""metrics.jsonl records and console lines."""

from __future__ import annotations

import math

import pytest

from honer.train.callbacks import format_log_line, metrics_record


@pytest.mark.slow
def test_train_record():
    logs = {
        "loss": 2.5,
        "learning_rate": 1e-4,
        "grad_norm": 0.5,
        "tokens_per_s": 100.0,
        "epoch": 0.5,
    }
    record = metrics_record(logs, step=3, epoch=0.5)
    assert {k: v for k, v in record.items() if k != "time"} == {
        "kind": "train",
        "step": 3,
        "epoch": 0.5,
        "loss": 2.5,
        "lr": 1e-4,
        "grad_norm": 0.5,
        "tokens_per_s": 100.0,
    }
    assert format_log_line(record, 10) == (
        "step 3/10  epoch 0.50  loss 2.5000  lr 1.00e-04  grad_norm 0.500  100 tok/s"
    )


def test_preference_metrics_are_recorded_and_shown():
    logs = {"loss": 0.5, "rewards/margins": 1.25, "rewards/accuracies": 0.75, "logps/chosen": -9.0}
    record = metrics_record(logs, step=2, epoch=None)
    assert record["rewards/margins"] == 1.25 and record["logps/chosen"] == -9.0
    assert format_log_line(record, 4) == "step 2/4  loss 0.5000  margin 1.250  acc 0.75"
    ev = metrics_record(
        {"eval_loss": 0.25, "eval_rewards/margins": 2.0, "eval_rewards/accuracies": 1.0}, 4, None
    )
    assert (
        format_log_line(ev, 4)
        == "eval  step 4/4  eval_loss 0.2500  eval_margin 2.000  eval_acc 1.00"
    )


def test_eval_end_and_ignored_records():
    record = metrics_record({"eval_loss": 1.25, "eval_runtime": 0.1}, step=4, epoch=1.0)
    assert (record["kind"], record["eval_loss"], record["eval_runtime"]) == ("eval", 1.25, 0.1)
    assert format_log_line(record, 8) == "eval  step 4/8  epoch 1.00  eval_loss 1.2500"
    end = metrics_record({"train_runtime": 2.0, "train_loss": 1.5}, step=8, epoch=1.0)
    assert end["kind"] == "train_end"
    assert format_log_line(end, 8) == "done  step 8/8  train_loss 1.5000  2.0 s"
    assert metrics_record({"total_flos": 1.0}, step=8, epoch=1.0) is None


def test_non_finite_values_become_null():
    record = metrics_record({"loss": math.nan, "grad_norm": math.inf}, step=1, epoch=None)
    assert record["loss"] is None and record["grad_norm"] is None and record["epoch"] is None


def _state(step, max_steps=4):
    from types import SimpleNamespace

    return SimpleNamespace(
        is_world_process_zero=True, global_step=step, max_steps=max_steps, epoch=step / 4
    )


def test_console_on_a_terminal_shows_a_progress_bar_and_log_lines():
    import io

    from rich.console import Console

    from honer.train.callbacks import ConsoleCallback

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    callback = ConsoleCallback(console)
    callback.on_train_begin(None, _state(0), None)
    assert callback.progress is not None
    for step in (1, 2):
        callback.on_step_end(None, _state(step), None)
        callback.on_log(None, _state(step), None, logs={"loss": 3.0 - step, "learning_rate": 1e-4})
    assert callback.progress.tasks[0].completed == 2
    callback.on_train_end(None, _state(2), None)
    assert callback.progress is None
    text = console.file.getvalue()
    assert "step 1/4" in text and "loss 1.0000" in text and "training" in text


def test_console_when_piped_prints_plain_lines_only():
    import io

    from rich.console import Console

    from honer.train.callbacks import ConsoleCallback

    console = Console(file=io.StringIO(), width=120)
    callback = ConsoleCallback(console)
    callback.on_train_begin(None, _state(0), None)
    assert callback.progress is None
    callback.on_log(None, _state(1), None, logs={"loss": 2.0, "learning_rate": 1e-4})
    assert console.file.getvalue() == "step 1/4  epoch 0.25  loss 2.0000  lr 1.00e-04\n"
