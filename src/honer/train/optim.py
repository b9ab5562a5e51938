"""Optimizer and learning-rate schedule: our config keys → the names transformers builds from.

The Trainer builds both (DESIGN: an optimizer built outside it, e.g. by DeepSpeed, compiles for
~90 s), so this module only resolves and checks names and arguments, naming the config key when
something is wrong, before any model is loaded.

Schedules (t = step after warm-up, T = steps after warm-up, lr = peak):
  linear                lr · (1 - t/T)
  cosine                lr · ½(1 + cos(π t/T))
  cosine_with_min_lr    cosine that ends at lr · cosine_min_lr_ratio instead of 0 (Axolotl also
                        reads `cosine_min_lr_ratio` with `lr_scheduler: cosine`, and so do we)
  constant              lr (no warm-up: it is refused together with warmup_steps/warmup_ratio)
  constant_with_warmup  lr after the warm-up
  polynomial            (lr - lr_end) · (1 - t/T)^power + lr_end   (`lr_scheduler_kwargs`)
Warm-up is linear from 0 to lr over `warmup_steps` (or ceil(warmup_ratio · total steps)).
"""

from __future__ import annotations

import importlib.util
import inspect
import math
from typing import Any

from honer.config.schema import Config
from honer.errors import ConfigError
from honer.lr.policies import Policy

# Our optimizer names are transformers' `OptimizerNames` values; these need bitsandbytes.
BNB_OPTIMIZERS = ("adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "lion_8bit")

# transformers builds these schedules itself; every other `lr_scheduler` is one of honer's
# policies (`honer.lr.policies`), run through a LambdaLR by `HonerTrainer.create_scheduler`.
HF_SCHEDULES = (
    "linear",
    "cosine",
    "constant",
    "constant_with_warmup",
    "cosine_with_min_lr",
    "polynomial",
)

# Arguments every schedule function receives from the Trainer itself.
_SCHEDULE_FIXED_ARGS = {"optimizer", "num_warmup_steps", "num_training_steps", "last_epoch"}


def optimizer_name(cfg: Config) -> str:
    """The transformers `optim` value; bitsandbytes optimizers fail early when it is missing."""
    if cfg.optimizer in BNB_OPTIMIZERS and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            [
                (
                    "optimizer",
                    f"`{cfg.optimizer}` needs bitsandbytes, which is not installed: "
                    "pip install 'bitsandbytes>=0.45' (or choose `adamw_torch`).",
                )
            ]
        )
    return cfg.optimizer


def warmup_steps(cfg: Config, total_steps: int) -> int:
    """Warm-up in optimizer steps: `warmup_steps`, or `warmup_ratio` of the run rounded up."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    if cfg.warmup_ratio is not None:
        return math.ceil(cfg.warmup_ratio * total_steps)
    return 0


def _schedule_function(name: str) -> Any:
    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
    from transformers.trainer_utils import SchedulerType

    return TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)]


def lr_policy(cfg: Config) -> Policy | None:
    """honer's own schedule as a pure function of the step (warm-up not included), or None
    when transformers builds the schedule. Bad parameters are a `ConfigError` naming the key."""
    from honer.lr.policies import composite, make_policy

    if cfg.lr_scheduler in HF_SCHEDULES:
        return None
    try:
        if cfg.lr_scheduler == "composite":
            policy = composite(
                [(make_policy(p.policy, p.kwargs), p.steps) for p in cfg.lr_phases or []]
            )
        else:
            policy = make_policy(cfg.lr_scheduler, cfg.lr_scheduler_kwargs)
        policy(0, 10)  # modes and shapes are checked when the policy first runs
    except (ValueError, TypeError) as err:
        key = "lr_phases" if cfg.lr_scheduler == "composite" else "lr_scheduler_kwargs"
        raise ConfigError([(key, str(err))]) from None
    return policy


def schedule(cfg: Config) -> tuple[str, dict[str, Any]]:
    """(transformers `lr_scheduler_type`, `lr_scheduler_kwargs`) for the config, checked.

    For honer's own policies the transformers schedule is a placeholder (`constant`): the
    trainer replaces it with `lr_policy(cfg)`.
    """
    name = cfg.lr_scheduler
    if name not in HF_SCHEDULES:
        lr_policy(cfg)
        if cfg.cosine_min_lr_ratio is not None:
            raise ConfigError(
                [("cosine_min_lr_ratio", f"only applies to cosine schedules, not `{name}`.")]
            )
        return "constant", {}
    kwargs = dict(cfg.lr_scheduler_kwargs or {})
    warm = (cfg.warmup_steps or 0) > 0 or (cfg.warmup_ratio or 0) > 0
    if name == "constant" and warm:
        key = "warmup_steps" if cfg.warmup_steps else "warmup_ratio"
        raise ConfigError(
            [
                (
                    key,
                    "`lr_scheduler: constant` has no warm-up: use `lr_scheduler: "
                    f"constant_with_warmup`, or remove `{key}`.",
                )
            ]
        )
    if cfg.cosine_min_lr_ratio is not None:
        if name not in ("cosine", "cosine_with_min_lr"):
            raise ConfigError(
                [
                    (
                        "cosine_min_lr_ratio",
                        f"only applies to cosine schedules, not `lr_scheduler: {name}`.",
                    )
                ]
            )
        name = "cosine_with_min_lr"
        if "min_lr" in kwargs or "min_lr_rate" in kwargs:
            raise ConfigError(
                [
                    (
                        "cosine_min_lr_ratio",
                        "set together with `lr_scheduler_kwargs.min_lr`/`min_lr_rate`: keep one.",
                    )
                ]
            )
        kwargs["min_lr_rate"] = cfg.cosine_min_lr_ratio
    elif name == "cosine_with_min_lr" and "min_lr" not in kwargs and "min_lr_rate" not in kwargs:
        raise ConfigError(
            [
                (
                    "cosine_min_lr_ratio",
                    "`lr_scheduler: cosine_with_min_lr` needs the final LR as a fraction of the "
                    "peak, e.g. `cosine_min_lr_ratio: 0.1`.",
                )
            ]
        )
    accepted = [
        p
        for p in inspect.signature(_schedule_function(name)).parameters
        if p not in _SCHEDULE_FIXED_ARGS
    ]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        takes = ", ".join(accepted) if accepted else "no extra arguments"
        raise ConfigError(
            [
                (
                    f"lr_scheduler_kwargs.{k}",
                    f"not an argument of the `{name}` schedule (it takes: {takes}).",
                )
                for k in unknown
            ]
        )
    if (
        name == "polynomial"
        and "lr_end" in kwargs
        and kwargs["lr_end"] >= cfg.resolved_learning_rate
    ):
        raise ConfigError(
            [
                (
                    "lr_scheduler_kwargs.lr_end",
                    f"{kwargs['lr_end']} must be below the learning rate ({cfg.resolved_learning_rate}).",
                )
            ]
        )
    return name, kwargs


def build_scheduler(
    name: str,
    kwargs: dict[str, Any] | None,
    policy: Policy | None,
    optimizer: Any,
    total_steps: int,
    warmup: int,
) -> Any:
    """The LR scheduler the trainer runs: transformers' `name`, or honer's `policy` after a
    linear warm-up. One function for training and for `honer lr plot`, so the plot is exact."""
    if policy is None:
        from transformers import get_scheduler

        return get_scheduler(
            name,
            optimizer=optimizer,
            num_warmup_steps=warmup,
            num_training_steps=total_steps,
            scheduler_specific_kwargs=kwargs or {},
        )
    from torch.optim.lr_scheduler import LambdaLR

    from honer.lr.policies import with_warmup

    warmed = with_warmup(policy, warmup)
    return LambdaLR(optimizer, lambda step: warmed(step, total_steps))


def lr_curve(cfg: Config, total_steps: int) -> list[float]:
    """The learning rate at every optimizer step 0..total_steps, as training would set it."""
    import torch

    name, kwargs = schedule(cfg)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.resolved_learning_rate)
    scheduler = build_scheduler(
        name, kwargs, lr_policy(cfg), optimizer, total_steps, warmup_steps(cfg, total_steps)
    )
    lrs = []
    for _ in range(total_steps + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs
