"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's `lr_find`).

Train for a few dozen optimizer steps while the learning rate grows exponentially from `start_lr`
to `end_lr`, and watch the loss: it stays flat while the LR is too small to matter, falls once
the LR is large enough to learn, and blows up when the LR is too large. Two points of that curve
are good peak LRs for a real run:

* `steepest`: where the smoothed loss falls fastest against log(LR). The loss is most sensitive to
  the LR there, yet still stable.
* `min_div_10`: the LR of the lowest smoothed loss divided by 10. At the minimum the LR is about
  to diverge; a tenth of it is the usual safe margin.

The test runs the same way training does, so its numbers transfer: batches of
micro_batch_size × gradient_accumulation_steps samples built by the training collator, the
optimizer the config names (built by the Trainer itself), the loss summed over the step's
micro-batches and divided by the step's trained tokens (`token_sum_loss`), gradient clipping at
`max_grad_norm`, activation checkpointing when the config asks for it. It changes the model
only while it runs: every trainable parameter and buffer is copied first and written back bit
for bit at the end, also after an error, and the throwaway Trainer writes into a temporary
folder, never into `output_dir`.

The raw loss of one batch is noisy, so the curve uses an exponential moving average with bias
correction (as Adam corrects its moments): smoothed_i = avg_i / (1 - beta^(i+1)),
avg_i = beta·avg_(i-1) + (1-beta)·loss_i. The test stops early when the smoothed loss exceeds
`diverge_factor` × its best value, or a loss is NaN/inf: beyond that point the curve says nothing
and more steps only cost time.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.atomic import write_via
from honer.config.schema import Config
from honer.errors import HonerError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

JSON_FILE = "lr_find.json"
PNG_FILE = "lr_find.png"

# Fewer recorded points than this make no curve to read a slope from.
MIN_POINTS = 5


class LrFindError(HonerError):
    """The range test cannot run with these settings, or found no usable curve."""


@dataclass
class RangeTestResult:
    """The curve of one range test and the two learning rates it suggests.

    `lrs[i]` is the LR of optimizer step i, `losses[i]` the loss of that step's batch (before the
    update), `smoothed[i]` the bias-corrected moving average. `reason` says why the test ended.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    steepest: float
    min_div_10: float
    stopped_early: bool
    reason: str


def _check_arguments(
    start_lr: float, end_lr: float, num_steps: int, smooth_beta: float, diverge_factor: float
) -> None:
    problems = []
    if not (start_lr > 0 and math.isfinite(start_lr)):
        problems.append(f"start_lr must be a positive number, got {start_lr}")
    if not (end_lr > start_lr and math.isfinite(end_lr)):
        problems.append(f"end_lr ({end_lr}) must be larger than start_lr ({start_lr})")
    if num_steps < MIN_POINTS:
        problems.append(f"num_steps must be at least {MIN_POINTS}, got {num_steps}")
    if not 0 <= smooth_beta < 1:
        problems.append(f"smooth_beta must be in [0, 1), got {smooth_beta}")
    if not diverge_factor > 1:
        problems.append(f"diverge_factor must be larger than 1, got {diverge_factor}")
    if problems:
        raise LrFindError("LR range test: " + "; ".join(problems) + ".")


def lr_at(step: int, start_lr: float, end_lr: float, num_steps: int) -> float:
    """The LR of step `step`: exponential from start_lr (step 0) to end_lr (last step)."""
    return start_lr * (end_lr / start_lr) ** (step / max(1, num_steps - 1))


def _skip(n: int) -> tuple[int, int]:
    """Points ignored at the start and the end of the curve when looking for the steepest fall.

    The first points carry the moving average's start-up and the last ones the blow-up (fastai
    skips 10 and 5 of 100); at least one of each, and at least 3 points always remain.
    """
    start, end = max(1, n // 10), max(1, n // 20)
    while n - start - end < 3 and (start > 0 or end > 0):
        if start >= end and start > 0:
            start -= 1
        else:
            end -= 1
    return start, end


def suggestions(lrs: list[float], smoothed: list[float]) -> tuple[float, float]:
    """(steepest, min_div_10) for a recorded curve; see the module docstring."""
    import numpy as np

    n = len(lrs)
    if n < MIN_POINTS:
        raise LrFindError(
            f"the LR range test recorded only {n} step(s) before the loss diverged, too few to "
            f"read a curve from (at least {MIN_POINTS}): lower start_lr or raise num_steps."
        )
    log_lrs = np.log10(np.asarray(lrs, dtype=float))
    loss = np.asarray(smoothed, dtype=float)
    first, last = _skip(n)
    slopes = np.gradient(loss, log_lrs)[first : n - last]
    steepest = float(lrs[first + int(np.argmin(slopes))])
    min_div_10 = float(lrs[int(np.argmin(loss))]) / 10
    return steepest, min_div_10


def _snapshot(model: Any) -> dict[str, Any]:
    """CPU copies of every trainable parameter and every buffer: what the test may change.

    Frozen parameters (a LoRA base, quantized weights) are not in the optimizer and are never
    changed, so they are not copied; for full fine-tuning the copy is the size of the model.
    """
    state: dict[str, Any] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            state["p:" + name] = param.detach().to("cpu", copy=True)
    for name, buf in model.named_buffers():
        state["b:" + name] = buf.detach().to("cpu", copy=True)
    return state


def _restore(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            saved = state.get("p:" + name)
            if saved is not None:
                param.copy_(saved)
            param.grad = None
        for name, buf in model.named_buffers():
            saved = state.get("b:" + name)
            if saved is not None:
                buf.copy_(saved)


def _is_checkpointing(model: Any) -> bool:
    """Whether activation checkpointing is on (5.23 deprecated `is_gradient_checkpointing`)."""
    name = "is_activation_checkpointing"
    if not hasattr(model, name):
        name = "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


def _set_checkpointing(model: Any, on: bool) -> None:
    """Switch activation checkpointing on/off as training would (non-reentrant), so the test
    needs no more memory than the run it is for. transformers 5.23 renamed the methods."""
    if on:
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
    else:
        disable = getattr(model, "activation_checkpointing_disable", None)
        (disable or model.gradient_checkpointing_disable)()


def _batches(trainer: Any) -> Any:
    """Training micro-batches without end: the dataloader again whenever an epoch runs out."""
    while True:
        empty = True
        for batch in trainer.get_train_dataloader():
            empty = False
            yield batch
        if empty:
            return


def _run(
    trainer: Any,
    model: Any,
    cfg: Config,
    start_lr: float,
    end_lr: float,
    num_steps: int,
    smooth_beta: float,
    diverge_factor: float,
    on_step: Callable[..., None],
) -> tuple[list[float], list[float], list[float], bool, str]:
    """The training loop of the test; returns (lrs, losses, smoothed, stopped_early, reason)."""
    import torch

    from honer.train.collate import IGNORE_INDEX
    from honer.train.trainer import token_sum_loss

    optimizer = trainer.create_optimizer()
    device = trainer.args.device
    ga = cfg.gradient_accumulation_steps
    batches = _batches(trainer)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    model.train()
    for step in range(num_steps):
        lr = lr_at(step, start_lr, end_lr, num_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        on_step()
        micro = list(itertools.islice(batches, ga))
        trained = sum(int((b["labels"][..., 1:] != IGNORE_INDEX).sum()) for b in micro)
        if trained == 0:
            continue  # nothing to learn from (training takes a zero step here): no point
        count = torch.tensor(trained, device=device)
        total = 0.0
        for batch in micro:
            inputs = {k: v.to(device) for k, v in batch.items()}
            with trainer.autocast_smart_context_manager():
                outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
                loss = token_sum_loss(outputs, inputs["labels"], count)
            loss.backward()
            total += float(loss.detach())
        if not math.isfinite(total):
            optimizer.zero_grad(set_to_none=True)
            return lrs, losses, smoothed, True, f"the loss became {total} at lr {lr:.3g}"
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        avg = smooth_beta * avg + (1 - smooth_beta) * total
        smooth = avg / (1 - smooth_beta ** (step + 1))
        lrs.append(lr)
        losses.append(total)
        smoothed.append(smooth)
        best = min(best, smooth)
        if smooth > diverge_factor * best:
            return (
                lrs,
                losses,
                smoothed,
                True,
                f"the smoothed loss {smooth:.4g} exceeded {diverge_factor:g} × its best "
                f"{best:.4g} at lr {lr:.3g}",
            )
    if not lrs:
        raise LrFindError(
            "no batch of the LR range test had a trained token (every label is -100): check "
            "the format's masking with `honer preprocess --debug`."
        )
    return lrs, losses, smoothed, False, f"reached num_steps ({num_steps}) at lr {lrs[-1]:.3g}"


def range_test(
    cfg: Config,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_steps: int = 100,
    smooth_beta: float = 0.98,
    diverge_factor: float = 4.0,
    on_step: Callable[..., None] | None = None,
) -> RangeTestResult:
    """Run the LR range test on `model` (already with its adapter) and suggest two peak LRs.

    `on_step()` is called at each step (a progress bar); the test may end early on divergence.

    The model's weights, buffers, train/eval mode and checkpointing switch are exactly as before
    when this returns or raises; `cfg.output_dir` is not touched. Raises `LrFindError` for bad
    arguments or when the loss diverges before enough steps were recorded.
    """
    import torch
    from rich.console import Console
    from transformers import set_seed

    from honer.train.trainer import build_trainer

    _check_arguments(start_lr, end_lr, num_steps, smooth_beta, diverge_factor)
    was_training = model.training
    checkpointing = cfg.gradient_checkpointing and not _is_checkpointing(model)
    rng = torch.random.get_rng_state()
    state = _snapshot(model)
    scratch = Path(tempfile.mkdtemp(prefix="honer-lr-find-"))
    try:
        run_cfg = cfg.model_copy(
            update={
                "output_dir": str(scratch),
                "max_steps": num_steps,
                "save_steps": None,
                "saves_per_epoch": None,
                "eval_steps": None,
                "evals_per_epoch": None,
                "report_to": ["none"],
                "wandb_project": None,
            }
        )
        set_seed(cfg.seed)
        quiet = Console(file=io.StringIO())
        trainer, _ = build_trainer(run_cfg, model, tokenizer, train_dataset, None, quiet)
        if checkpointing:
            _set_checkpointing(model, True)
        lrs, losses, smoothed, stopped_early, reason = _run(
            trainer,
            model,
            cfg,
            start_lr,
            end_lr,
            num_steps,
            smooth_beta,
            diverge_factor,
            on_step or (lambda: None),
        )
    finally:
        if checkpointing:
            _set_checkpointing(model, False)
        _restore(model, state)
        model.train(was_training)
        torch.random.set_rng_state(rng)
        shutil.rmtree(scratch, ignore_errors=True)
    steepest, min_div_10 = suggestions(lrs, smoothed)
    return RangeTestResult(lrs, losses, smoothed, steepest, min_div_10, stopped_early, reason)


def loss_axis_range(result: RangeTestResult) -> tuple[float, float]:
    """The loss axis of the plot: from just below the smoothed minimum to just above the start.

    The last steps of a range test diverge by design; scaled to them, the useful part of the
    curve (where the loss falls) would be a flat line at the bottom of the plot.
    """
    low = min(result.smoothed)
    high = max(result.smoothed[: max(1, len(result.smoothed) // 10)])
    high = max(high, result.smoothed[0])
    span = (high - low) or abs(high) or 1.0
    return low - 0.1 * span, high + 0.25 * span


def _plot(result: RangeTestResult, tmp: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    try:
        ax.plot(result.lrs, result.losses, color="#bbbbbb", linewidth=1, label="loss")
        ax.plot(result.lrs, result.smoothed, color="#1f77b4", label="smoothed loss")
        for lr, color, name in (
            (result.steepest, "#d62728", "steepest"),
            (result.min_div_10, "#2ca02c", "min / 10"),
        ):
            ax.axvline(lr, color=color, linestyle="--", label=f"{name}: {lr:.2e}")
        ax.set_xscale("log")
        ax.set_ylim(*loss_axis_range(result))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("LR range test")
        ax.legend()
        fig.tight_layout()
        fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def write_outputs(result: RangeTestResult, out_dir: Path) -> tuple[Path, Path]:
    """Write `lr_find.json` (the curve and suggestions) and `lr_find.png`, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / JSON_FILE, out_dir / PNG_FILE
    text = json.dumps(asdict(result), indent=2) + "\n"
    write_via(json_path, lambda tmp: Path(tmp).write_text(text))
    write_via(png_path, lambda tmp: _plot(result, tmp))
    return json_path, png_path
