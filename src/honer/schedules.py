"""Learning-rate policies: each a small pure function of the step.

A policy returns the *factor* of the peak learning rate at optimizer step `step` (0-based) of a
run of `total` steps, so it plugs into `torch.optim.lr_scheduler.LambdaLR` and can be plotted
without an optimizer. Warm-up is one wrapper shared by every policy (`with_warmup`), and
`composite` chains policies phase by phase.

Formulas (t = step, T = total steps after warm-up):

| policy | factor |
|---|---|
| linear | 1 - t/T |
| cosine | ½(1 + cos(π t/T)) |
| cosine_with_min_lr | m + (1-m)·½(1 + cos(π t/T)), m = min_lr_ratio |
| constant | 1 |
| polynomial | (1-e)(1 - t/T)^power + e, e = end_factor |
| step | gamma^⌊t/step_size⌋ |
| multistep | gamma^(number of milestones ≤ t) |
| exponential | gamma^t |
| cyclic (Smith 2017) | b + (1-b)·max(0, 1-x)·s, x = abs(t/h - 2c + 1), c = ⌊1 + t/2h⌋, h = half_cycle; s = 1 (triangular), 1/2^(c-1) (triangular2), gamma^t (exp_range); b = base_factor |
| one_cycle (Smith 2018, cos) | cos-rise from 1/div_factor to 1 over pct_start·T, then cos-fall to 1/(div_factor·final_div_factor) |
| warmup_stable_decay | 1 until the last decay_ratio·T steps, then linear / cosine / 1-sqrt fall to min_lr_ratio |
| cosine_with_restarts | ½(1 + cos(π · ((cycles · t/T) mod 1))) |
| cosine_decay_constant (Axolotl's `cosine_constant_lr_ratio`) | m + (1-m)·½(1 + cos(π p)), p = (min(s, C) - w) / max(1, C - w), s = t + w, C = ⌊constant_ratio · (T + w)⌋, w = warm-up steps; m = min_lr_ratio |

`cosine_decay_constant` counts its constant point from the first step of the run, warm-up
included, as Axolotl's `get_cosine_schedule_with_warmup_decay_constant` does: it is the one
policy that takes the warm-up length (`with_warmup` passes it), so the LR matches Axolotl's
step for step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Policy = Callable[[int, int], float]

# The one list of schedule names. transformers builds these itself; each maps to the extra
# arguments its schedule function takes (`lr_scheduler_kwargs`), beyond the optimizer, warm-up
# and total steps the Trainer passes (tests/test_schedules.py checks them against transformers).
TRANSFORMERS_SCHEDULES: dict[str, tuple[str, ...]] = {
    "linear": (),
    "cosine": ("num_cycles",),
    "constant": (),
    "constant_with_warmup": (),
    "cosine_with_min_lr": ("num_cycles", "min_lr", "min_lr_rate"),
    "polynomial": ("lr_end", "power"),
}
# honer's own policies (below), run through a LambdaLR; `composite` chains them (`lr_phases`).
HONER_POLICIES = (
    "step",
    "multistep",
    "exponential",
    "cyclic",
    "one_cycle",
    "warmup_stable_decay",
    "cosine_with_restarts",
    "cosine_decay_constant",
)
SCHEDULES = (*TRANSFORMERS_SCHEDULES, *HONER_POLICIES, "composite")
# What a `lr_phases` entry may use: every policy below except the warm-up-only alias.
PHASE_POLICIES = tuple(
    n for n in (*TRANSFORMERS_SCHEDULES, *HONER_POLICIES) if n != "constant_with_warmup"
)


def _progress(step: int, total: int) -> float:
    return min(1.0, max(0.0, step / max(1, total)))


def linear(step: int, total: int) -> float:
    return 1.0 - _progress(step, total)


def cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * _progress(step, total)))


def cosine_with_min_lr(step: int, total: int, min_lr_ratio: float = 0.1) -> float:
    return min_lr_ratio + (1.0 - min_lr_ratio) * cosine(step, total)


def constant(step: int, total: int) -> float:
    return 1.0


def polynomial(step: int, total: int, power: float = 1.0, end_factor: float = 1e-3) -> float:
    return (1.0 - end_factor) * (1.0 - _progress(step, total)) ** power + end_factor


def step_decay(step: int, total: int, step_size: int = 100, gamma: float = 0.1) -> float:
    return gamma ** (step // step_size)


def multistep(
    step: int, total: int, milestones: list[int] | None = None, gamma: float = 0.1
) -> float:
    return gamma ** sum(1 for m in milestones or [] if step >= m)


def exponential(step: int, total: int, gamma: float = 0.99) -> float:
    return gamma**step


def cyclic(
    step: int,
    total: int,
    half_cycle: int = 100,
    base_factor: float = 0.1,
    mode: str = "triangular",
    gamma: float = 0.999,
) -> float:
    cycle = math.floor(1 + step / (2 * half_cycle))
    x = abs(step / half_cycle - 2 * cycle + 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1.0 / 2 ** (cycle - 1)
    elif mode == "exp_range":
        scale = gamma**step
    else:
        raise ValueError(f"cyclic mode must be triangular, triangular2 or exp_range, not {mode!r}")
    return base_factor + (1.0 - base_factor) * max(0.0, 1.0 - x) * scale


def _cos_between(start: float, end: float, frac: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))


def one_cycle(
    step: int,
    total: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    rise = max(1, round(pct_start * total))
    low = 1.0 / div_factor
    if step <= rise:
        return _cos_between(low, 1.0, step / rise)
    return _cos_between(1.0, low / final_div_factor, _progress(step - rise, total - rise))


def warmup_stable_decay(
    step: int,
    total: int,
    decay_ratio: float = 0.1,
    min_lr_ratio: float = 0.0,
    decay_shape: str = "linear",
) -> float:
    decay_steps = max(1, round(decay_ratio * total))
    start = total - decay_steps
    if step < start:
        return 1.0
    frac = _progress(step - start, decay_steps)
    if decay_shape == "linear":
        fall = frac
    elif decay_shape == "cosine":
        fall = 1.0 - 0.5 * (1.0 + math.cos(math.pi * frac))
    elif decay_shape == "sqrt":
        fall = math.sqrt(frac)
    else:
        raise ValueError(f"decay_shape must be linear, cosine or sqrt, not {decay_shape!r}")
    return 1.0 - (1.0 - min_lr_ratio) * fall


def cosine_with_restarts(step: int, total: int, cycles: int = 2) -> float:
    p = _progress(step, total)
    if p >= 1.0:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * ((cycles * p) % 1.0)))


def cosine_decay_constant(
    step: int,
    total: int,
    constant_ratio: float = 1.0,
    min_lr_ratio: float = 0.0,
    warmup: int = 0,
) -> float:
    """Cosine from 1 down to `min_lr_ratio`, reached at `constant_ratio` of the whole run, then
    held there. `step`/`total` count after the warm-up; `warmup` is the warm-up before them
    (bound by `with_warmup`, never by the user), because Axolotl places the constant point at
    `int(constant_ratio × all steps)`, warm-up included."""
    run_step, run_total = step + warmup, total + warmup
    constant_from = int(run_total * constant_ratio)
    progress = (min(run_step, constant_from) - warmup) / max(1, constant_from - warmup)
    # Axolotl's num_cycles (0.5) enters as cos(π · num_cycles · 2 · progress).
    return (
        max(0.0, (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))) + min_lr_ratio
    )


POLICIES: dict[str, Callable[..., float]] = {
    "linear": linear,
    "cosine": cosine,
    "cosine_with_min_lr": cosine_with_min_lr,
    "constant": constant,
    "constant_with_warmup": constant,
    "polynomial": polynomial,
    "step": step_decay,
    "multistep": multistep,
    "exponential": exponential,
    "cyclic": cyclic,
    "one_cycle": one_cycle,
    "warmup_stable_decay": warmup_stable_decay,
    "cosine_with_restarts": cosine_with_restarts,
    "cosine_decay_constant": cosine_decay_constant,
}
# Parameters a policy takes from the run, not from `lr_scheduler_kwargs` (see `with_warmup`).
_RUN_PARAMETERS = ("warmup",)


class BoundPolicy:
    """A policy with its parameters bound: callable as `(step, total) -> factor`.

    It keeps the function and parameters so that `with_warmup` can hand the warm-up length to
    the policies that need it (`cosine_decay_constant`)."""

    def __init__(self, fn: Callable[..., float], params: dict[str, Any]) -> None:
        self.fn = fn
        self.params = params

    def __call__(self, step: int, total: int) -> float:
        return self.fn(step, total, **self.params)

    def after_warmup(self, warmup_steps: int) -> BoundPolicy:
        """This policy told how many warm-up steps precede it (unchanged if it does not ask)."""
        import inspect

        if "warmup" not in inspect.signature(self.fn).parameters:
            return self
        return BoundPolicy(self.fn, {**self.params, "warmup": warmup_steps})


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    """`name` with its parameters bound; unknown parameters are a `ValueError` naming them."""
    import inspect

    fn = POLICIES[name]
    params = dict(params or {})
    allowed = [p for p in list(inspect.signature(fn).parameters)[2:] if p not in _RUN_PARAMETERS]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"lr policy `{name}` has no parameter {', '.join(unknown)}; it takes: "
            f"{', '.join(allowed) or 'none'}"
        )
    return BoundPolicy(fn, params)


def with_warmup(policy: Policy, warmup_steps: int) -> Policy:
    """Linear warm-up from 0 over `warmup_steps`, then `policy` over the remaining steps."""
    if isinstance(policy, BoundPolicy):
        policy = policy.after_warmup(max(0, warmup_steps))
    if warmup_steps <= 0:
        return policy

    def warmed(step: int, total: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return policy(step - warmup_steps, max(1, total - warmup_steps))

    return warmed


def composite(phases: list[tuple[Policy, int]]) -> Policy:
    """Run each (policy, length) phase in turn, each over its own steps; the last one holds."""

    def chained(step: int, total: int) -> float:
        start = 0
        for policy, length in phases:
            if step < start + length:
                return policy(step - start, length)
            start += length
        last, length = phases[-1]
        return last(length, length)

    return chained
