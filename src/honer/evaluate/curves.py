"""Learning-curve diagnosis: is a run underfit, overfit or well fit, and why.

Input is the run's `metrics.jsonl` (training lines carry `loss`, evaluation lines `eval_loss`).
Training loss is noisy from step to step, so every decision uses a smoothed curve (a centred
running median, robust to spikes) and relative changes, never single points.

Thresholds (module constants, relative to the loss level so they hold for any loss scale):

- `FLAT_DROP = 0.05`: a training curve whose smoothed loss fell by less than 5 % from its start
  did not learn → **underfit** ("flat").
- `TAIL_FRACTION = 0.2`, `STEEP_TAIL_SHARE = 0.1`: if the last 20 % of the steps still brought
  more than 10 % of the run's whole improvement, training stopped while it was still learning →
  **underfit** ("still falling"). A share of the total drop, not a drop relative to the current
  loss: near zero loss, tiny wiggles are large relative changes.
- `EVAL_RISE = 0.03`: validation loss that rose more than 3 % above its minimum while the training
  loss kept falling (by more than `TRAIN_STILL_FALLING = 0.02` after that minimum) → **overfit**;
  the step of the minimum is the suggested stopping point.
- `GAP_LIMIT = 0.25`: otherwise the run is **well fit** when the final gap (validation minus
  training loss) is under 25 % of the validation loss; a larger gap without a rise is reported as
  overfit ("large gap": the model fits its training set much better than new data).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

FLAT_DROP = 0.05
TAIL_FRACTION = 0.2
STEEP_TAIL_SHARE = 0.1
EVAL_RISE = 0.03
TRAIN_STILL_FALLING = 0.02
GAP_LIMIT = 0.25
MIN_TRAIN_POINTS = 8
MIN_EVAL_POINTS = 3


@dataclass(frozen=True)
class Diagnosis:
    verdict: str  # "underfit" | "overfit" | "well-fit" | "unknown"
    reason: str
    best_step: int | None = None  # overfit: the step of minimum validation loss
    gap: float | None = None  # final validation minus training loss (smoothed)


def read_metrics(path: str | Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train, eval) points as (step, loss) from a metrics.jsonl file; bad lines are skipped."""
    train, evals = [], []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = rec.get("step")
        if not isinstance(step, int):
            continue
        if isinstance(rec.get("loss"), int | float):
            train.append((step, float(rec["loss"])))
        if isinstance(rec.get("eval_loss"), int | float):
            evals.append((step, float(rec["eval_loss"])))
    return train, evals


def smooth(values: list[float], window: int | None = None) -> list[float]:
    """Centred running median; the window grows with the curve (about 1/10 of it, odd, >= 3)."""
    n = len(values)
    if window is None:
        window = max(3, (n // 10) | 1)
    half = window // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(n)]


def _rel_drop(a: float, b: float) -> float:
    """How much `b` is below `a`, relative to `a` (negative when it rose)."""
    return (a - b) / abs(a) if a else 0.0


def diagnose(train: list[tuple[int, float]], evals: list[tuple[int, float]]) -> Diagnosis:
    """Classify a run from its training and validation loss points."""
    if len(train) < MIN_TRAIN_POINTS:
        return Diagnosis("unknown", f"only {len(train)} training points; log more often")
    steps = [s for s, _ in train]
    loss = smooth([v for _, v in train])
    total_drop = _rel_drop(loss[0], loss[-1])
    if total_drop < FLAT_DROP:
        return Diagnosis(
            "underfit",
            f"training loss barely moved ({total_drop:.1%} from {loss[0]:.3g} to {loss[-1]:.3g}): "
            "raise the learning rate, check the label mask, or train longer",
        )
    if len(evals) >= MIN_EVAL_POINTS:
        ev_steps = [s for s, _ in evals]
        ev = smooth([v for _, v in evals], window=3)
        k = min(range(len(ev)), key=ev.__getitem__)
        rise = -_rel_drop(ev[k], ev[-1])
        train_at_k = loss[min(range(len(steps)), key=lambda i: abs(steps[i] - ev_steps[k]))]
        train_fall_after = _rel_drop(train_at_k, loss[-1])
        if k < len(ev) - 1 and rise > EVAL_RISE and train_fall_after > TRAIN_STILL_FALLING:
            return Diagnosis(
                "overfit",
                f"validation loss reached its minimum {ev[k]:.3g} at step {ev_steps[k]} and rose "
                f"{rise:.1%} while training loss fell {train_fall_after:.1%}: stop at step "
                f"{ev_steps[k]}, or add data / regularisation",
                best_step=ev_steps[k],
                gap=ev[-1] - loss[-1],
            )
    tail_start = int(len(loss) * (1 - TAIL_FRACTION))
    tail_share = (loss[tail_start] - loss[-1]) / (loss[0] - loss[-1])
    if tail_share > STEEP_TAIL_SHARE:
        return Diagnosis(
            "underfit",
            f"training loss was still falling steeply at the end (the last {TAIL_FRACTION:.0%} of "
            f"steps brought {tail_share:.0%} of the whole improvement): train longer or raise "
            "the learning rate",
        )
    if not evals:
        return Diagnosis(
            "well-fit",
            "training loss flattened; no validation loss was logged, so generalisation is "
            "unchecked: set `val_set_size` or `test_datasets`, with `eval_steps` or "
            "`evals_per_epoch`",
        )
    if len(evals) < MIN_EVAL_POINTS:
        return _few_evals(steps, loss, evals)
    gap = ev[-1] - loss[-1]
    rel_gap = gap / abs(ev[-1]) if ev[-1] else 0.0
    if rel_gap > GAP_LIMIT:
        return Diagnosis(
            "overfit",
            f"validation loss ends at {ev[-1]:.3g} and training loss at {loss[-1]:.3g}: the gap is "
            f"{rel_gap:.0%} of the validation loss, so the model fits its training set much better "
            "than new data; more data, fewer epochs or regularisation help",
            gap=gap,
        )
    return Diagnosis(
        "well-fit",
        f"training and validation loss flattened with a small gap ({gap:+.3g}, {rel_gap:+.0%})",
        gap=gap,
    )


def _few_evals(steps: list[int], loss: list[float], evals: list[tuple[int, float]]) -> Diagnosis:
    """One or two validation points: no trend to read, but the gap at the last one is real."""
    last_step, last = evals[-1]
    train_there = loss[min(range(len(steps)), key=lambda i: abs(steps[i] - last_step))]
    gap = last - train_there
    rel_gap = gap / abs(last) if last else 0.0
    if len(evals) == 1:
        seen = f"validation loss {last:.3g} at step {last_step}"
    else:
        first_step, first = evals[0]
        seen = f"validation loss {first:.3g} at step {first_step} → {last:.3g} at step {last_step}"
    few = (
        f"{len(evals)} evaluation(s) are too few to see a trend ({MIN_EVAL_POINTS}+ needed): "
        "evaluate more often with `eval_steps` or `evals_per_epoch`"
    )
    if rel_gap > GAP_LIMIT:
        return Diagnosis(
            "overfit",
            f"{seen}, training loss {train_there:.3g} there: the gap is {rel_gap:.0%} of the "
            f"validation loss, so the model fits its training set much better than new data; {few}",
            gap=gap,
        )
    return Diagnosis(
        "well-fit",
        f"training loss flattened; {seen}, a small gap to training ({gap:+.3g}, {rel_gap:+.0%}); "
        f"{few}",
        gap=gap,
    )
