"""Successive-halving policy tuning: the schedule as a pure function, candidate selection, and a
tiny end-to-end tune that ranks an absurd LR last and records every trial."""

from __future__ import annotations

import math

import pytest

from honer.errors import ConfigError
from honer.lr.db import PolicyDatabase
from honer.lr.tune import (
    TrialResult,
    TuneError,
    candidates,
    halving_rounds,
    plot_trials,
    record_trials,
    trial_config,
    tune,
)
from tests.train.data_util import config, dataset

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("n", "min_steps", "max_steps", "eta", "expected"),
    [
        (8, 10, 80, 2, [(8, 10), (4, 20), (2, 40)]),  # stops before one trial is left
        (8, 10, 40, 2, [(8, 10), (4, 20), (2, 40)]),
        (8, 10, 20, 2, [(8, 10), (4, 20)]),  # stops at max_steps
        (16, 5, 100, 2, [(16, 5), (8, 10), (4, 20), (2, 40)]),
        (9, 10, 100, 3, [(9, 10), (3, 30)]),  # 3 // 3 = 1: only one would go on
        (27, 1, 100, 3, [(27, 1), (9, 3), (3, 9)]),
        (10, 10, 25, 2, [(10, 10), (5, 20), (2, 25)]),  # the last budget is capped
        (1, 10, 40, 2, [(1, 10)]),
        (4, 40, 40, 2, [(4, 40)]),
    ],
)
def test_halving_rounds(n, min_steps, max_steps, eta, expected) -> None:
    rounds = halving_rounds(n, min_steps, max_steps, eta)
    assert rounds == expected
    for (n_a, b_a), (n_b, b_b) in zip(rounds, rounds[1:], strict=False):
        assert n_b == n_a // eta
        assert b_b == min(b_a * eta, max_steps)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 10, 40, 2), "at least one trial"),
        ((4, 50, 40, 2), "min_steps"),
        ((4, 10, 40, 1), "eta"),
    ],
)
def test_halving_rounds_rejects_bad_budgets(args, match) -> None:
    with pytest.raises(TuneError, match=match):
        halving_rounds(*args)


def test_candidates_grid_and_random() -> None:
    grid = candidates(["cosine", "linear"], [1e-3, 1e-2])
    assert grid == [("cosine", 1e-3), ("cosine", 1e-2), ("linear", 1e-3), ("linear", 1e-2)]
    picked = candidates(["cosine", "linear"], [1e-3, 1e-2], "random", trials=3, seed=7)
    assert len(set(picked)) == 3 and set(picked) <= set(grid)
    assert picked == candidates(["cosine", "linear"], [1e-3, 1e-2], "random", trials=3, seed=7)
    with pytest.raises(TuneError, match="unknown policy 'cosin'"):
        candidates(["cosin"], [1e-3])
    with pytest.raises(TuneError, match="positive"):
        candidates(["cosine"], [0.0])
    with pytest.raises(TuneError, match="between 1 and 4"):
        candidates(["cosine", "linear"], [1e-3, 1e-2], "random", trials=5)
    with pytest.raises(TuneError, match="search must be"):
        candidates(["cosine"], [1e-3], "bayes")


def test_trial_config_switches_off_saving_and_keeps_kwargs_of_its_own_policy(tmp_path) -> None:
    cfg = config(
        tmp_path,
        tmp_path / "out",
        lr_scheduler="cosine",
        cosine_min_lr_ratio=0.1,
        saves_per_epoch=2,
        evals_per_epoch=2,
        val_set_size=4,
    )
    own = trial_config(cfg, "cosine", 1e-3, 20, str(tmp_path / "t"))
    assert (own.learning_rate, own.max_steps, own.cosine_min_lr_ratio) == (1e-3, 20, 0.1)
    assert own.saves_per_epoch is None and own.evals_per_epoch is None
    other = trial_config(cfg, "linear", 1e-3, 20, str(tmp_path / "t"))
    assert other.lr_scheduler == "linear" and other.cosine_min_lr_ratio is None


def test_record_and_plot_trials(tmp_path) -> None:
    cfg = config(tmp_path, tmp_path / "out", micro_batch_size=2, gradient_accumulation_steps=3)
    results = [
        TrialResult("cosine", 1e-3, 20, 1.5, 1.4, None, 2.0),
        TrialResult("linear", 10.0, 10, math.nan, None, 1, 1.0),
    ]
    db = PolicyDatabase(tmp_path / "runs.sqlite")
    record_trials(results, cfg, db, "fp123")
    runs = sorted(db.runs(), key=lambda r: r.learning_rate)
    assert [(r.policy, r.learning_rate, r.steps) for r in runs] == [
        ("cosine", 1e-3, 20),
        ("linear", 10.0, 10),
    ]
    assert runs[0].final_eval_loss == 1.5 and runs[1].final_eval_loss is None
    assert all(r.dataset_fingerprint == "fp123" and r.batch_size == 6 for r in runs)
    assert runs[1].policy_params == {"source": "tune", "eliminated_in_round": 1}
    png = plot_trials(results, tmp_path / "plots" / "tune.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["tune.png"]


def _factory(cfg):
    from honer.model.load import load_model, load_tokenizer

    tokenizer = load_tokenizer(cfg)
    return (lambda: load_model(cfg, tokenizer)), tokenizer


def test_a_policy_that_does_not_fit_the_config_fails_before_training(
    tiny_model_dir, tmp_path
) -> None:
    cfg = config(tiny_model_dir, tmp_path / "out", lr_scheduler="cosine", warmup_steps=2)
    calls = []
    with pytest.raises(ConfigError, match="constant"):
        tune(
            cfg,
            lambda: calls.append(1),
            None,
            dataset(8),
            dataset(4, seed=1),
            policies=["cosine", "constant"],
            lrs=[1e-3],
        )
    assert calls == []


def test_tiny_tune_ranks_an_absurd_lr_last_and_records_it(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "out"
    cfg = config(tiny_model_dir, out, lr_scheduler="cosine")
    model_factory, tokenizer = _factory(cfg)
    results = tune(
        cfg,
        model_factory,
        tokenizer,
        dataset(48, seed=0),
        dataset(16, seed=1),
        policies=["cosine", "linear"],
        lrs=[3e-3, 10.0],
        min_steps=4,
        max_steps=8,
        eta=2,
    )
    assert len(results) == 4
    assert [r.lr for r in results[2:]] == [10.0, 10.0]
    assert [r.eliminated_in_round for r in results[2:]] == [1, 1]
    assert all(r.eliminated_in_round is None and r.steps_trained == 8 for r in results[:2])
    assert all(r.lr == 3e-3 for r in results[:2])
    assert results[0].eval_loss <= results[1].eval_loss
    assert all(r.steps_trained == 4 for r in results[2:])
    assert not out.exists()  # trials never write into output_dir

    db = PolicyDatabase(tmp_path / "runs.sqlite")
    record_trials(results, cfg, db, "fp")
    assert sorted((r.policy, r.learning_rate) for r in db.runs()) == sorted(
        (r.policy, r.lr) for r in results
    )
