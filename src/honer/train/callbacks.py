"""Trainer callbacks: `metrics.jsonl` and the console (rich progress on a TTY, plain lines else).

`metrics.jsonl` holds one JSON object per line, each with a `kind`:
  train      step, epoch, loss, lr, grad_norm, tokens_per_s, trained_tokens_per_s, time
             (preference runs add rewards/chosen, rewards/rejected, rewards/margins,
             rewards/accuracies, logps/chosen, logps/rejected, logits/...)
  eval       step, epoch, eval_loss, eval_runtime, … (every `eval_*` value transformers reports)
  train_end  step, epoch, train_loss, train_runtime, train_samples_per_second, …
Lines are appended and flushed as they are logged, so a crashed run keeps what it logged; the
resumed run first drops lines logged after its checkpoint (see `checkpoint.truncate_metrics`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

METRICS_FILE = "metrics.jsonl"

_TRAIN_KEYS = {
    "loss": "loss",
    "learning_rate": "lr",
    "grad_norm": "grad_norm",
    "tokens_per_s": "tokens_per_s",
    "trained_tokens_per_s": "trained_tokens_per_s",
}


# Preference and RL runs' own metrics: DPO/KTO/ORPO/SimPO (rewards/…, logps/…, logits/…,
# nll_loss, log_odds_ratio, kl), GRPO (reward, reward_std, rewards/<check>/mean,
# completions/…, entropy, frac_reward_zero_std, clip_ratio/…), reward models (accuracy,
# margin, min/mean/max_reward).
_PAIR_PREFIXES = (
    "reward",
    "logps/",
    "logits/",
    "nll_loss",
    "log_odds_",
    "kl",
    "completions/",
    "entropy",
    "frac_reward",
    "clip_ratio",
    "accuracy",
    "margin",
    "min_reward",
    "mean_reward",
    "max_reward",
)


def _number(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than produce an unparsable line."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_record(logs: dict[str, Any], step: int, epoch: float | None) -> dict[str, Any] | None:
    """The metrics.jsonl object for one `Trainer.log` call, or None for logs we do not record."""
    base = {"step": step, "epoch": round(epoch, 6) if epoch is not None else None}
    if "loss" in logs:
        record = {"kind": "train", **base}
        record.update(
            {ours: _number(logs[theirs]) for theirs, ours in _TRAIN_KEYS.items() if theirs in logs}
        )
        record.update({k: _number(v) for k, v in logs.items() if k.startswith(_PAIR_PREFIXES)})
    elif any(k.startswith("eval_") for k in logs):
        record = {"kind": "eval", **base}
        record.update({k: _number(v) for k, v in logs.items() if k.startswith("eval_")})
    elif "train_runtime" in logs:
        record = {"kind": "train_end", **base}
        record.update({k: _number(v) for k, v in logs.items() if k.startswith("train_")})
    else:
        return None
    record["time"] = round(time.time(), 3)
    return record


class MetricsJsonlCallback(TrainerCallback):
    """Append every logged step, evaluation and the run summary to `output_dir/metrics.jsonl`."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / METRICS_FILE

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = metrics_record(logs, state.global_step, state.epoch)
        if record is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def format_log_line(record: dict[str, Any], total_steps: int) -> str:
    """A compact, greppable line for one metrics record."""
    parts = [f"step {record['step']}/{total_steps}"]
    if record.get("epoch") is not None:
        parts.append(f"epoch {record['epoch']:.2f}")
    if record["kind"] == "train":
        for key, fmt in (
            ("loss", "loss {:.4f}"),
            ("lr", "lr {:.2e}"),
            ("grad_norm", "grad_norm {:.3f}"),
            ("rewards/margins", "margin {:.3f}"),
            ("rewards/accuracies", "acc {:.2f}"),
            ("tokens_per_s", "{:,.0f} tok/s"),
        ):
            if record.get(key) is not None:
                parts.append(fmt.format(record[key]))
    elif record["kind"] == "eval":
        parts.insert(0, "eval")
        for key, fmt in (
            ("eval_loss", "eval_loss {:.4f}"),
            ("eval_rewards/margins", "eval_margin {:.3f}"),
            ("eval_rewards/accuracies", "eval_acc {:.2f}"),
        ):
            if record.get(key) is not None:
                parts.append(fmt.format(record[key]))
    else:
        parts = ["done", *parts[:1]]
        for key, fmt in (("train_loss", "train_loss {:.4f}"), ("train_runtime", "{:.1f} s")):
            if record.get(key) is not None:
                parts.append(fmt.format(record[key]))
    return "  ".join(parts)


class ConsoleCallback(TrainerCallback):
    """Progress for people: a rich bar on a terminal, one plain line per log otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Any = None
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self.console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss=""
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = metrics_record(logs, state.global_step, state.epoch)
        if record is None:
            return
        line = format_log_line(record, state.max_steps)
        if (
            self.progress is not None
            and record["kind"] == "train"
            and record.get("loss") is not None
        ):
            self.progress.update(self.task, loss=f"loss {record['loss']:.4f}")
        self.console.print(line, markup=False, highlight=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class EngineReportCallback(TrainerCallback):
    """At the start of training, record what engine really runs (`parallel.json`, rank 0)."""

    def __init__(self, trainer: Any, console: Console) -> None:
        self.trainer = trainer
        self.console = console

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from honer import atomic
        from honer.train import parallel

        report = parallel.engine_report(self.trainer)
        if state.is_world_process_zero:
            path = Path(args.output_dir) / parallel.PARALLEL_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, json.dumps(report, indent=2) + "\n")
            if report["world_size"] > 1:
                self.console.print(parallel.describe(report), markup=False)
