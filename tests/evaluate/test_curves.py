"""Each curve class is recognised on clean synthetic curves and on noisy variants."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from honer.evaluate.curves import diagnose, read_metrics

STEPS = list(range(1, 201))


def curve(fn, noise: float = 0.0, seed: int = 0, steps=STEPS) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(s, fn(s) * (1 + rng.gauss(0, noise))) for s in steps]


def evals(fn, every: int = 20, noise: float = 0.0, seed: int = 1):
    return curve(fn, noise, seed, steps=list(range(every, 201, every)))


def decaying(s: float) -> float:  # flattens by the end
    return 0.8 + 2.0 * math.exp(-s / 25)


def still_falling(s: float) -> float:  # steep until the last step
    return 3.0 - 2.0 * s / 200


def overfit_eval(s: float) -> float:  # minimum near step 80, then rises
    return 1.0 + 1.5 * math.exp(-s / 20) + 0.004 * max(0, s - 80)


def falling_to_low(s: float) -> float:  # keeps falling slowly (memorising)
    return 0.3 + 2.5 * math.exp(-s / 30) - 0.001 * s


@pytest.mark.parametrize("noise", [0.0, 0.03, 0.08])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_well_fit(noise: float, seed: int) -> None:
    d = diagnose(
        curve(decaying, noise, seed),
        evals(lambda s: decaying(s) + 0.05, noise=noise / 3, seed=seed),
    )
    assert d.verdict == "well-fit", d.reason
    assert d.gap == pytest.approx(0.05, abs=0.06)


@pytest.mark.parametrize("noise", [0.0, 0.03, 0.08])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_is_underfit(noise: float, seed: int) -> None:
    d = diagnose(curve(lambda s: 2.5, noise, seed), evals(lambda s: 2.6))
    assert d.verdict == "underfit" and "barely moved" in d.reason


@pytest.mark.parametrize("noise", [0.0, 0.03, 0.08])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_still_falling_is_underfit(noise: float, seed: int) -> None:
    d = diagnose(curve(still_falling, noise, seed), evals(lambda s: still_falling(s) + 0.1))
    assert d.verdict == "underfit" and "still falling" in d.reason


@pytest.mark.parametrize("noise", [0.0, 0.03, 0.08])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overfit_reports_best_step(noise: float, seed: int) -> None:
    d = diagnose(
        curve(falling_to_low, noise, seed), evals(overfit_eval, noise=noise / 4, seed=seed)
    )
    assert d.verdict == "overfit", d.reason
    assert d.best_step in (60, 80, 100)


def test_large_gap_without_rise_is_overfit() -> None:
    d = diagnose(curve(decaying), evals(lambda s: decaying(s) * 1.6))
    assert d.verdict == "overfit" and "fits its training set much better" in d.reason


def test_too_few_points_is_unknown() -> None:
    assert diagnose(curve(decaying, steps=[1, 2, 3]), []).verdict == "unknown"


def test_no_eval_curve_says_so() -> None:
    d = diagnose(curve(decaying), [])
    assert d.verdict == "well-fit" and "no validation loss was logged" in d.reason
    assert "`test_datasets`" in d.reason and "`eval_steps`" in d.reason


def test_two_eval_points_say_what_they_can() -> None:
    """The issue's case: `test_datasets` + `eval_steps` gave two validation points, and the
    diagnosis said there was no validation curve above a plot that showed one."""
    d = diagnose(curve(decaying), [(100, decaying(100) * 1.05), (200, decaying(200) * 1.05)])
    assert d.verdict == "well-fit"
    assert "validation loss 0.878 at step 100 → 0.841 at step 200" in d.reason
    assert "2 evaluation(s) are too few to see a trend (3+ needed)" in d.reason
    assert "no validation" not in d.reason
    assert d.gap == pytest.approx(decaying(200) * 0.05, rel=0.05)


def test_two_eval_points_with_a_large_gap_are_overfit() -> None:
    d = diagnose(curve(decaying), [(100, 1.6), (200, 1.7)])
    assert d.verdict == "overfit" and "fits its training set much better" in d.reason


def test_read_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [
        {"step": 1, "loss": 2.0, "lr": 1e-3},
        {"step": 2, "loss": 1.5},
        {"step": 2, "eval_loss": 1.7},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    assert read_metrics(path) == ([(1, 2.0), (2, 1.5)], [(2, 1.7)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plateau_near_zero_is_not_underfit(seed: int) -> None:
    # Loss falls from 7 to ~0.002 and wiggles there (the quickstart's shape): tiny wiggles are
    # large *relative* changes, but a negligible share of the whole improvement.
    d = diagnose(
        curve(lambda s: 0.0015 + 7 * math.exp(-s / 8), 0.3, seed),
        evals(lambda s: 0.11 + 0.6 * math.exp(-s / 40)),
    )
    assert d.verdict == "overfit" and "fits its training set much better" in d.reason
