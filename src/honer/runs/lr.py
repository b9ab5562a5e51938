"""The learning-rate runs: `find(cfg)` (range test, plot and JSON written) and `tune(cfg, …)`
(successive halving over policies and LRs, trials recorded). Data and model are prepared as
`honer train` prepares them; the CLI only parses flags and prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honer.config.schema import Config
from honer.errors import HonerError


@dataclass(frozen=True)
class FindRun:
    result: Any  # honer.lr.finder.RangeTestResult
    json_path: Path
    png_path: Path


def prepared(cfg: Config) -> tuple[Any, Any, Any]:
    """Tokenizer, prepared data and step plan of a config, as `honer train` computes them
    (with sample packing, the steps come from the packed rows)."""
    from honer.data.prepare import load_or_prepare
    from honer.model.load import load_tokenizer
    from honer.train.args import plan_for_dataset

    tokenizer = load_tokenizer(cfg)
    data = load_or_prepare(cfg, tokenizer)
    has_eval = data.eval is not None and len(data.eval) > 0
    return tokenizer, data, plan_for_dataset(cfg, data.train, has_eval)


def _model(cfg: Config, tokenizer: Any) -> Any:
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model

    return build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)


def find(
    cfg: Config,
    out: Path,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_steps: int = 100,
    show_progress: bool = True,
) -> FindRun:
    """LR range test on the config's model and data; `lr_find.json` and `lr_find.png` in `out`.
    Nothing is written to output_dir; the model is restored afterwards."""
    from honer.lr.finder import range_test, write_outputs
    from honer.progress import progress

    tokenizer, data, _ = prepared(cfg)
    model = _model(cfg, tokenizer)
    with progress("LR range test", num_steps, show_progress) as advance:
        result = range_test(
            cfg,
            model,
            tokenizer,
            data.train,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            on_step=advance,
        )
    json_path, png_path = write_outputs(result, out)
    return FindRun(result, json_path, png_path)


def tune(
    cfg: Config,
    policies: list[str],
    lrs: list[float],
    plot: Path,
    *,
    db: Path | None = None,
    **search: Any,
) -> tuple[list[Any], Path]:
    """Short trials of (policy, LR) pairs ranked by eval loss; every trial is recorded in the
    policy database and the comparison plotted to `plot`. `search`: min_steps, max_steps, eta,
    search ("grid" / "random"), trials, seed."""
    from honer.lr.db import PolicyDatabase
    from honer.lr.tune import plot_trials, record_trials
    from honer.lr.tune import tune as run_tune

    tokenizer, data, _ = prepared(cfg)
    if data.eval is None or len(data.eval) == 0:
        raise HonerError("tune ranks trials by eval loss: set `val_set_size` or `test_datasets`.")
    factory: Callable[[], Any] = lambda: _model(cfg, tokenizer)  # noqa: E731
    results = run_tune(
        cfg, factory, tokenizer, data.train, data.eval, policies=policies, lrs=lrs, **search
    )
    record_trials(results, cfg, PolicyDatabase(db), data.path.name)
    return results, plot_trials(results, plot)
