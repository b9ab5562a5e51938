"""Pick an LR policy and peak LR by successive halving (Jamieson & Talwalkar 2016).

Training every (policy, LR) candidate to the end is what a user cannot afford; a short run tells
the hopeless ones apart (an LR that diverges, a schedule that never learns) for a fraction of the
cost. Successive halving spends the budget where it matters:

    round 1: every trial trains min_steps steps        → keep the best 1/eta by eval loss
    round 2: the survivors train min_steps·eta steps  → keep the best 1/eta
    …        until the budget reaches max_steps or one trial is left.

Each round trains every survivor *from scratch* (a fresh model from `model_factory`) with
`max_steps` set to the round's budget, because a schedule's shape depends on the run length: a
cosine over 40 steps is not the first 40 steps of a cosine over 80. Trials are ranked by eval
loss on `eval_dataset` (training loss rewards memorising), NaN counting as worst.

Every trial is an ordinary honer training run (`build_trainer`, same collator, loss and
optimizer), with the candidate's `lr_scheduler` and `learning_rate`, evaluation only at the end,
and no checkpoint: it writes into a temporary folder that is deleted afterwards, never into
`output_dir`. `lr_scheduler_kwargs`, `cosine_min_lr_ratio` and `lr_phases` of the config were
written for the config's own `lr_scheduler`, so they apply to trials of that policy only; other
policies run with their defaults.
"""

from __future__ import annotations

import io
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from honer.atomic import save_figure
from honer.config.schema import Config, LrScheduler
from honer.errors import ConfigError, HonerError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from honer.lr.db import PolicyDatabase

SEARCHES = ("grid", "random")


class TuneError(HonerError):
    """The tuning request cannot run (bad candidates, budgets or search settings)."""


@dataclass
class TrialResult:
    """One (policy, LR) candidate: how far it got and how well it did at its last budget.

    `eliminated_in_round` is the 1-based round after which it was dropped, or None when it was
    still in the race at the end (the finalists). `wall_time_s` sums all its rounds.
    """

    policy: str
    lr: float
    steps_trained: int
    eval_loss: float
    train_loss: float | None
    eliminated_in_round: int | None
    wall_time_s: float = 0.0


def halving_rounds(
    n_trials: int, min_steps: int, max_steps: int, eta: int
) -> list[tuple[int, int]]:
    """The schedule of successive halving as (trials in the round, steps per trial) per round.

    A pure function, so the schedule can be shown (and tested) before anything trains. After each
    round the best max(1, n // eta) go on with eta times the budget, capped at max_steps; it ends
    after a round at max_steps, or when only one trial would go on.
    """
    if n_trials < 1:
        raise TuneError("successive halving needs at least one trial.")
    if min_steps < 1 or max_steps < min_steps:
        raise TuneError(
            f"need 1 <= min_steps <= max_steps, got min_steps {min_steps}, max_steps {max_steps}."
        )
    if eta < 2:
        raise TuneError(f"eta must be at least 2 (the fraction kept is 1/eta), got {eta}.")
    rounds = [(n_trials, min_steps)]
    n, budget = n_trials, min_steps
    while budget < max_steps and n // eta >= 2:
        n, budget = n // eta, min(budget * eta, max_steps)
        rounds.append((n, budget))
    return rounds


def candidates(
    policies: list[str],
    lrs: list[float],
    search: str = "grid",
    trials: int | None = None,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """The (policy, LR) pairs to try: all of them (grid) or `trials` distinct ones drawn with
    `seed` (random), in a stable order so the same request runs the same trials."""
    known = get_args(LrScheduler)
    unknown = [p for p in policies if p not in known]
    if not policies or unknown:
        shown = f"unknown policy {', '.join(map(repr, unknown))}" if unknown else "no policy"
        raise TuneError(f"{shown}; choose from: {', '.join(known)}.")
    bad = [lr for lr in lrs if not (lr > 0 and math.isfinite(lr))]
    if not lrs or bad:
        raise TuneError(f"learning rates must be positive numbers, got {lrs or 'none'}.")
    grid = [(p, lr) for p in dict.fromkeys(policies) for lr in dict.fromkeys(lrs)]
    if search == "grid":
        return grid
    if search != "random":
        raise TuneError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}.")
    if trials is None or not 1 <= trials <= len(grid):
        raise TuneError(
            f"random search needs `trials` between 1 and {len(grid)} (the number of distinct "
            f"policy × LR pairs), got {trials}."
        )
    return random.Random(seed).sample(grid, trials)


def trial_config(cfg: Config, policy: str, lr: float, steps: int, output_dir: str) -> Config:
    """The config of one trial: candidate policy and LR, `steps` steps, eval/save switched off."""
    update: dict[str, Any] = {
        "lr_scheduler": policy,
        "learning_rate": lr,
        "max_steps": steps,
        "output_dir": output_dir,
        "save_steps": None,
        "saves_per_epoch": None,
        "eval_steps": None,
        "evals_per_epoch": None,
        "resume_from_checkpoint": None,
        "report_to": ["none"],
        "wandb_project": None,
    }
    if policy != cfg.lr_scheduler:
        update.update(lr_scheduler_kwargs=None, cosine_min_lr_ratio=None, lr_phases=None)
    return cfg.model_copy(update=update)


def _check_configs(cfg: Config, pairs: list[tuple[str, float]], max_steps: int) -> None:
    """Check every trial's config before anything trains, so a bad policy costs no run."""
    from honer.config.checks import cross_field_problems

    for policy in dict.fromkeys(p for p, _ in pairs):
        lr = next(lr for p, lr in pairs if p == policy)
        problems = cross_field_problems(trial_config(cfg, policy, lr, max_steps, cfg.output_dir))
        if problems:
            raise ConfigError(problems)


def _run_trial(
    cfg: Config,
    model_factory: Callable[[], Any],
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    policy: str,
    lr: float,
    steps: int,
) -> tuple[float, float | None, float]:
    """Train one fresh model for `steps` steps; (eval loss, last train loss, seconds)."""
    from rich.console import Console
    from transformers import set_seed

    from honer.train.trainer import build_trainer

    started = time.perf_counter()
    scratch = tempfile.mkdtemp(prefix="honer-lr-tune-")
    model = trainer = None
    try:
        run_cfg = trial_config(cfg, policy, lr, steps, scratch)
        set_seed(cfg.seed)  # the same initial weights (and LoRA init) for every trial
        model = model_factory()
        trainer, _ = build_trainer(
            run_cfg, model, tokenizer, train_dataset, None, Console(file=io.StringIO())
        )
        trainer.train()
        metrics = trainer.evaluate(eval_dataset=eval_dataset)
        logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        train_loss = logged[-1] if logged else None
        eval_loss = float(metrics.get("eval_loss", math.nan))
    finally:
        del model, trainer
        _free_memory()
        shutil.rmtree(scratch, ignore_errors=True)
    return eval_loss, train_loss, time.perf_counter() - started


def _free_memory() -> None:
    """Release a finished trial's model and optimizer before the next one is built: on a GPU
    two models (plus Adam states) at once may not fit where one does."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rank_key(result: TrialResult) -> tuple[float, float]:
    """Finalists first, then by the round a trial survived (later is better), then eval loss."""
    survived = math.inf if result.eliminated_in_round is None else result.eliminated_in_round
    loss = result.eval_loss if math.isfinite(result.eval_loss) else math.inf
    return (-survived, loss)


def tune(
    cfg: Config,
    model_factory: Callable[[], Any],
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    *,
    policies: list[str],
    lrs: list[float],
    min_steps: int = 10,
    max_steps: int = 40,
    eta: int = 2,
    search: str = "grid",
    trials: int | None = None,
    seed: int = 0,
) -> list[TrialResult]:
    """Evaluate (policy, LR) candidates by successive halving; results best first.

    `model_factory` returns a fresh model (with its adapter) for each trial, so every trial
    starts from the same weights (the seed is `cfg.seed`). Raises `TuneError` for bad candidates
    or budgets, `ConfigError` when a policy does not fit the config (e.g. `constant` with
    `warmup_steps`), `DataError` for an empty validation set.
    """
    from honer.errors import DataError

    pairs = candidates(policies, lrs, search, trials, seed)
    rounds = halving_rounds(len(pairs), min_steps, max_steps, eta)
    if eval_dataset is None or len(eval_dataset) == 0:
        raise DataError(
            "tuning ranks trials by validation loss, but the validation set is empty: set "
            "`val_set_size` or `test_datasets`."
        )
    _check_configs(cfg, pairs, max_steps)
    results = {pair: TrialResult(pair[0], pair[1], 0, math.nan, None, None, 0.0) for pair in pairs}
    alive = list(pairs)
    for number, (_, budget) in enumerate(rounds, start=1):
        for pair in alive:
            eval_loss, train_loss, seconds = _run_trial(
                cfg, model_factory, tokenizer, train_dataset, eval_dataset, *pair, budget
            )
            trial = results[pair]
            trial.steps_trained, trial.eval_loss, trial.train_loss = budget, eval_loss, train_loss
            trial.wall_time_s += seconds
        if number == len(rounds):
            break
        alive.sort(key=lambda pair: _rank_key(results[pair]))
        keep = rounds[number][0]
        for pair in alive[keep:]:
            results[pair].eliminated_in_round = number
        alive = alive[:keep]
    return sorted(results.values(), key=_rank_key)


def plot_trials(results: list[TrialResult], path: Path) -> Path:
    """Bar chart of each trial's eval loss (best first), written atomically (temp + rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [f"{r.policy}\nlr {r.lr:.2g}\n{r.steps_trained} steps" for r in results]
    finite = [r.eval_loss for r in results if math.isfinite(r.eval_loss)]
    cap = max(finite) * 1.1 if finite else 1.0
    heights = [r.eval_loss if math.isfinite(r.eval_loss) else cap for r in results]
    colors = [
        "#2ca02c"
        if r.eliminated_in_round is None
        else "#1f77b4"
        if math.isfinite(r.eval_loss)
        else "#d62728"
        for r in results
    ]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(results)), 4), dpi=110)
    try:
        ax.bar(range(len(results)), heights, color=colors)
        for i, r in enumerate(results):
            shown = f"{r.eval_loss:.3g}" if math.isfinite(r.eval_loss) else "NaN"
            ax.annotate(shown, (i, heights[i]), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(results)), labels, fontsize=7)
        ax.set_ylabel("eval loss")
        ax.set_title("LR policy tuning (green: finalists, red: NaN)")
        fig.tight_layout()
    except Exception:
        plt.close(fig)
        raise
    save_figure(fig, path)
    return path


def record_trials(
    results: list[TrialResult], cfg: Config, db: PolicyDatabase, dataset_fingerprint: str
) -> None:
    """Add one run per trial to the policy database, marked as a tuning trial in its params."""
    from honer.lr.db import RunRecord

    for result in results:
        params: dict[str, Any] = {"source": "tune"}
        if result.eliminated_in_round is not None:
            params["eliminated_in_round"] = result.eliminated_in_round
        if result.policy == cfg.lr_scheduler and cfg.lr_scheduler_kwargs:
            params["lr_scheduler_kwargs"] = cfg.lr_scheduler_kwargs
        db.record(
            RunRecord(
                model=cfg.base_model,
                dataset_fingerprint=dataset_fingerprint,
                adapter=cfg.adapter or "full",
                batch_size=cfg.effective_batch_size,
                learning_rate=result.lr,
                policy=result.policy,
                steps=result.steps_trained,
                final_train_loss=result.train_loss,
                final_eval_loss=result.eval_loss if math.isfinite(result.eval_loss) else None,
                wall_time_s=round(result.wall_time_s, 2),
                policy_params=params,
            )
        )
