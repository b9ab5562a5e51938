"""The policy database: records, queries, concurrent writers, and clear errors."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from honer.lr.db import PolicyDatabase, PolicyDatabaseError, RunRecord


def record(**kw) -> RunRecord:
    base = dict(
        model="org/llama-7b",
        dataset_fingerprint="abc",
        adapter="lora",
        batch_size=8,
        learning_rate=2e-4,
        policy="cosine",
        steps=100,
        final_train_loss=1.0,
        final_eval_loss=1.2,
        wall_time_s=10.0,
        policy_params={"warmup_steps": 10},
    )
    return RunRecord(**{**base, **kw})


def test_record_and_query(tmp_path: Path) -> None:
    db = PolicyDatabase(tmp_path / "runs.sqlite")
    db.record(record(created=1.0))
    db.record(record(model="org/mistral-7b", learning_rate=1e-4, final_eval_loss=0.9, created=2.0))
    db.record(record(learning_rate=5e-4, final_eval_loss=1.1, created=3.0))
    runs = db.runs()
    assert [r.learning_rate for r in runs] == [5e-4, 1e-4, 2e-4]  # newest first
    assert runs[0].policy_params == {"warmup_steps": 10}
    assert [r.learning_rate for r in db.runs(model="llama")] == [5e-4, 2e-4]
    assert db.best(model="llama").learning_rate == 5e-4
    assert db.best().model == "org/mistral-7b"
    assert db.best(model="nothing-like-this") is None


def _writer(path: str, n: int, tag: str) -> None:
    db = PolicyDatabase(path)
    for i in range(n):
        db.record(record(dataset_fingerprint=f"{tag}{i}"))


@pytest.mark.slow  # starts processes
def test_concurrent_writes_from_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "runs.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 40, tag)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    fingerprints = {r.dataset_fingerprint for r in PolicyDatabase(path).runs()}
    assert fingerprints == {f"{t}{i}" for t in "ab" for i in range(40)}


def test_corrupt_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        PolicyDatabaseError, match=r"runs.sqlite: cannot open the LR policy database"
    ):
        PolicyDatabase(path).record(record())


def test_locked_file_gives_clear_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "runs.sqlite"
    PolicyDatabase(path).record(record())
    holder = sqlite3.connect(path)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(PolicyDatabaseError, match="runs.sqlite"):
            PolicyDatabase(path, timeout_s=0.2).record(record())
    finally:
        holder.rollback()
        holder.close()


def test_default_path_honours_env(tmp_path: Path, monkeypatch) -> None:
    from honer.lr.db import default_path

    monkeypatch.setenv("HONER_LR_DB", str(tmp_path / "x.sqlite"))
    assert default_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("HONER_LR_DB")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_path() == tmp_path / "honer" / "lr_runs.sqlite"
