"""Optimizer and learning-rate schedule: our config keys → the names transformers builds from.

The Trainer builds both (an optimizer built outside it, e.g. by DeepSpeed from its JSON, compiles
for ~90 s), so this module only resolves names and arguments; every rule about them is checked
with the config (`honer.config.checks`), so `honer validate` reports it.

Schedules (t = step after warm-up, T = steps after warm-up, lr = peak):
  linear                lr · (1 - t/T)
  cosine                lr · ½(1 + cos(π t/T))
  cosine_with_min_lr    cosine that ends at lr · cosine_min_lr_ratio instead of 0 (Axolotl also
                        reads `cosine_min_lr_ratio` with `lr_scheduler: cosine`, and so do we)
  constant              lr (no warm-up: it is refused together with warmup_steps/warmup_ratio)
  constant_with_warmup  lr after the warm-up
  polynomial            (lr - lr_end) · (1 - t/T)^power + lr_end   (`lr_scheduler_kwargs`)
  cosine + cosine_constant_lr_ratio   Axolotl's cosine that reaches lr · cosine_min_lr_ratio at
                        that fraction of the run and stays there: honer's `cosine_decay_constant`
                        policy (`honer.schedules`), the same LR at every step as Axolotl's.
Warm-up is linear from 0 to lr over `warmup_steps` (or ceil(warmup_ratio · total steps)).

Optimizers: every transformers `optim` name is passed through (Axolotl's `adamw_8bit`,
`adamw_torch_8bit` and `adamw_torch_4bit` are transformers names too: bitsandbytes' and
torchao's). `muon` is honer's (`honer.train.muon`): the Trainer gets it through
`optimizer_cls_and_kwargs`, and `optim` holds a placeholder transformers never builds.
"""

from __future__ import annotations

import math
from typing import Any

from honer.config.schema import Config
from honer.schedules import TRANSFORMERS_SCHEDULES, Policy

# Optimizers honer builds itself; TrainingArguments gets a valid placeholder `optim` for them.
HONER_OPTIMIZERS = ("muon",)


def optimizer_name(cfg: Config) -> str:
    """The transformers `optim` value: the config's name, or for an optimizer honer builds
    (`optimizer_cls_and_kwargs`) a placeholder the Trainer never uses."""
    if cfg.optimizer in HONER_OPTIMIZERS:
        return "adamw_torch"
    return cfg.optimizer


def optimizer_cls_and_kwargs(cfg: Config) -> tuple[Any, dict[str, Any]] | None:
    """The Trainer's `optimizer_cls_and_kwargs` for an optimizer honer builds, else None.

    `muon`: a factory transformers calls with the model, so that parameters are split by name
    and shape (Muon for 2-D hidden weights, AdamW for embeddings, head, norms and biases).
    """
    if cfg.optimizer != "muon":
        return None
    from honer.train import muon

    muon.check_available()
    adam = {
        "betas": (cfg.adam_beta1, cfg.adam_beta2),
        "eps": cfg.adam_epsilon,
    }
    return muon.MuonFactory, {
        "lr": cfg.resolved_learning_rate,
        "weight_decay": cfg.weight_decay,
        **adam,
    }


def warmup_steps(cfg: Config, total_steps: int) -> int:
    """Warm-up in optimizer steps: `warmup_steps`, or `warmup_ratio` of the run rounded up."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    if cfg.warmup_ratio is not None:
        return math.ceil(cfg.warmup_ratio * total_steps)
    return 0


def _decay_constant(cfg: Config) -> bool:
    """Axolotl's cosine with a constant tail: `cosine` + `cosine_constant_lr_ratio`."""
    return cfg.cosine_constant_lr_ratio is not None and cfg.lr_scheduler in (
        "cosine",
        "cosine_with_min_lr",
    )


def lr_policy(cfg: Config) -> Policy | None:
    """honer's own schedule as a pure function of the step (warm-up not included), or None
    when transformers builds the schedule. The config's checks have validated its parameters."""
    from honer.schedules import composite, make_policy

    if _decay_constant(cfg):
        return make_policy(
            "cosine_decay_constant",
            {
                "constant_ratio": cfg.cosine_constant_lr_ratio,
                "min_lr_ratio": cfg.cosine_min_lr_ratio or 0.0,
            },
        )
    if cfg.lr_scheduler in TRANSFORMERS_SCHEDULES:
        return None
    if cfg.lr_scheduler == "composite":
        return composite([(make_policy(p.policy, p.kwargs), p.steps) for p in cfg.lr_phases or []])
    return make_policy(cfg.lr_scheduler, cfg.lr_scheduler_kwargs)


def schedule(cfg: Config) -> tuple[str, dict[str, Any]]:
    """(transformers `lr_scheduler_type`, `lr_scheduler_kwargs`) for the config.

    `cosine_min_lr_ratio` turns a cosine schedule into `cosine_with_min_lr` (Axolotl reads it
    with `lr_scheduler: cosine` too). For honer's own policies, `cosine_constant_lr_ratio`
    included, the transformers schedule is a placeholder (`constant`): the trainer replaces it
    with `lr_policy(cfg)`.
    """
    name = cfg.lr_scheduler
    if name not in TRANSFORMERS_SCHEDULES or _decay_constant(cfg):
        return "constant", {}
    kwargs = dict(cfg.lr_scheduler_kwargs or {})
    if cfg.cosine_min_lr_ratio is not None:
        name = "cosine_with_min_lr"
        kwargs["min_lr_rate"] = cfg.cosine_min_lr_ratio
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

    from honer.schedules import with_warmup

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
