"""Every LR policy against hand-computed values at chosen steps."""

from __future__ import annotations

import pytest

from honer.schedules import composite, make_policy, with_warmup

T = 100


@pytest.mark.parametrize(
    ("name", "params", "points"),
    [
        ("linear", {}, {0: 1.0, 25: 0.75, 100: 0.0}),
        ("cosine", {}, {0: 1.0, 50: 0.5, 100: 0.0, 25: 0.8535533905932737}),
        ("cosine_with_min_lr", {"min_lr_ratio": 0.2}, {0: 1.0, 50: 0.6, 100: 0.2}),
        ("constant", {}, {0: 1.0, 99: 1.0}),
        ("polynomial", {"power": 2.0, "end_factor": 0.0}, {0: 1.0, 50: 0.25, 100: 0.0}),
        ("step", {"step_size": 30, "gamma": 0.5}, {0: 1.0, 29: 1.0, 30: 0.5, 65: 0.25}),
        ("multistep", {"milestones": [10, 40], "gamma": 0.1}, {9: 1.0, 10: 0.1, 40: 0.01}),
        ("exponential", {"gamma": 0.9}, {0: 1.0, 2: 0.81}),
        # cyclic triangular, half cycle 10, base 0.2: 0.2 at t=0, peak 1 at t=10, 0.2 at t=20
        ("cyclic", {"half_cycle": 10, "base_factor": 0.2}, {0: 0.2, 5: 0.6, 10: 1.0, 20: 0.2}),
        # triangular2 halves the amplitude each cycle: second peak at t=30 is 0.2 + 0.8/2
        (
            "cyclic",
            {"half_cycle": 10, "base_factor": 0.2, "mode": "triangular2"},
            {10: 1.0, 30: 0.6},
        ),
        # exp_range scales the amplitude by gamma**t: at t=10, 0.2 + 0.8 * 0.5**10
        (
            "cyclic",
            {"half_cycle": 10, "base_factor": 0.2, "mode": "exp_range", "gamma": 0.5},
            {10: 0.2 + 0.8 * 0.5**10},
        ),
        # one cycle: 1/25 at 0, peak 1 at 30 (pct 0.3), halfway down at 65, 1/25/1e4 at 100
        ("one_cycle", {}, {0: 0.04, 30: 1.0, 65: 0.5 * (1 + 0.04 / 1e4), 100: 0.04 / 1e4}),
        # warmup-stable-decay with the last 20 % decaying linearly to 0.1
        (
            "warmup_stable_decay",
            {"decay_ratio": 0.2, "min_lr_ratio": 0.1},
            {0: 1.0, 79: 1.0, 80: 1.0, 90: 0.55, 100: 0.1},
        ),
        ("warmup_stable_decay", {"decay_ratio": 0.2, "decay_shape": "sqrt"}, {85: 0.5}),
        ("warmup_stable_decay", {"decay_ratio": 0.2, "decay_shape": "cosine"}, {90: 0.5}),
        # two cosine cycles: back to 1 at the restart (t=50), 0.5 at quarter points
        ("cosine_with_restarts", {"cycles": 2}, {0: 1.0, 25: 0.5, 50: 1.0, 75: 0.5, 100: 0.0}),
    ],
)
def test_policy_values(name: str, params: dict, points: dict[int, float]) -> None:
    policy = make_policy(name, params)
    for step, want in points.items():
        assert policy(step, T) == pytest.approx(want, abs=1e-12), (name, step)


def test_warmup_then_policy_over_remaining_steps() -> None:
    policy = with_warmup(make_policy("linear"), 10)
    assert [policy(s, 110) for s in (0, 5, 10, 60, 110)] == pytest.approx([0, 0.5, 1.0, 0.5, 0.0])


def test_composite_chains_phases() -> None:
    policy = composite([(make_policy("constant"), 10), (make_policy("linear"), 20)])
    assert [policy(s, 30) for s in (0, 9, 10, 20, 30, 40)] == pytest.approx(
        [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    )


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"`step` has no parameter gama; it takes: step_size, gamma"
    ):
        make_policy("step", {"gama": 0.5})


def test_bad_modes_are_explained() -> None:
    with pytest.raises(ValueError, match="cyclic mode must be"):
        make_policy("cyclic", {"mode": "sawtooth"})(0, 10)


def test_the_schedule_table_matches_transformers() -> None:
    """`honer.schedules` is the one list of schedule names; the arguments it says transformers'
    schedules take must be what their functions take (config validation relies on it)."""
    import inspect

    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
    from transformers.trainer_utils import SchedulerType

    from honer.schedules import POLICIES, SCHEDULES, TRANSFORMERS_SCHEDULES

    fixed = {"optimizer", "num_warmup_steps", "num_training_steps", "last_epoch"}
    for name, args in TRANSFORMERS_SCHEDULES.items():
        fn = TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)]
        assert tuple(p for p in inspect.signature(fn).parameters if p not in fixed) == args
    assert set(SCHEDULES) - {"composite"} == set(POLICIES)


def _axolotl_decay_constant(step, warmup, total, constant_ratio, min_ratio):
    """Axolotl's `_get_cosine_schedule_with_warmup_decay_constant_lr_lambda` (num_cycles 0.5)."""
    import math

    if step < warmup:
        return float(step) / float(max(1, warmup))
    num_constant_steps = int(total * constant_ratio)
    step = min(step, num_constant_steps)
    progress = float(step - warmup) / float(max(1, num_constant_steps - warmup))
    return (
        max(0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))) + min_ratio
    )


@pytest.mark.parametrize(
    ("warmup", "total", "ratio", "min_ratio"),
    [
        (0, 100, 0.8, 0.1),
        (10, 100, 0.8, 0.1),
        (7, 53, 0.6, 0.0),
        (3, 20, 1.0, 0.25),
        (5, 40, 0.5, 0),
    ],
)
def test_cosine_decay_constant_is_axolotls_schedule(warmup, total, ratio, min_ratio) -> None:
    """Step for step, warm-up included: the constant point counts from the start of the run."""
    policy = with_warmup(
        make_policy("cosine_decay_constant", {"constant_ratio": ratio, "min_lr_ratio": min_ratio}),
        warmup,
    )
    for step in range(total + 1):
        want = _axolotl_decay_constant(step, warmup, total, ratio, min_ratio)
        assert policy(step, total) == pytest.approx(want, abs=1e-15), step


def test_the_warmup_of_cosine_decay_constant_is_not_a_user_parameter() -> None:
    with pytest.raises(ValueError, match="takes: constant_ratio, min_lr_ratio$"):
        make_policy("cosine_decay_constant", {"warmup": 3})
