"""Checkpoint folder handling: atomic publication, rotation by step, metrics truncation."""

from __future__ import annotations

import json
import os

from honer.train import checkpoint as ckpt


def _make_checkpoint(root, step, marker="x"):
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (path / "weights").write_text(marker)
    return path


def test_list_checkpoints_sorts_by_step_and_skips_incomplete(tmp_path):
    for step in (10, 2, 100):
        _make_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-200").mkdir()  # no trainer_state.json: a non-atomic writer's debris
    (tmp_path / ".staging-checkpoint-300" / "checkpoint-300").mkdir(parents=True)
    (tmp_path / "checkpoint-final").mkdir()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [
        "checkpoint-2",
        "checkpoint-10",
        "checkpoint-100",
    ]
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
    assert ckpt.latest_checkpoint(tmp_path / "missing") is None
    assert ckpt.read_step(tmp_path / "checkpoint-10") == 10


def test_rotate_keeps_the_newest_steps_whatever_their_mtime(tmp_path):
    paths = [_make_checkpoint(tmp_path, step) for step in (1, 2, 3, 4)]
    os.utime(paths[-1], (1, 1))  # the newest step has the oldest mtime
    deleted = ckpt.rotate(tmp_path, 2)
    assert [p.name for p in deleted] == ["checkpoint-1", "checkpoint-2"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4"]
    assert ckpt.rotate(tmp_path, None) == []


def test_publish_replaces_an_existing_checkpoint_whole(tmp_path):
    final = _make_checkpoint(tmp_path, 5, marker="old")
    staged = _make_checkpoint(tmp_path / ".staging-checkpoint-5", 5, marker="new")
    ckpt.publish(staged, final)
    assert (final / "weights").read_text() == "new"
    assert not staged.exists()
    # The old copy was renamed aside and deleted once the new one was in place.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging-checkpoint-5", "checkpoint-5"]
    assert list((tmp_path / ".staging-checkpoint-5").iterdir()) == []


def test_clean_staging_removes_only_staging_folders(tmp_path):
    _make_checkpoint(tmp_path, 1)
    (tmp_path / ".staging-checkpoint-2" / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "metrics.jsonl").write_text("")
    ckpt.clean_staging(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "metrics.jsonl"]


def test_truncate_metrics_drops_later_steps_and_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"kind": "train", "step": s, "loss": 1.0}) for s in (1, 2, 3, 4)]
    path.write_text("\n".join(lines) + '\n{"kind": "train", "st')
    ckpt.truncate_metrics(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_atomic_write_text_leaves_no_temp_files_and_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "config.yml"
    ckpt.atomic_write_text(target, "a: 1\n")
    ckpt.atomic_write_text(target, "a: 2\n")
    assert target.read_text() == "a: 2\n"
    assert [p.name for p in target.parent.iterdir()] == ["config.yml"]
    assert target.stat().st_mode & 0o044  # group/other may read, like any other output file


def test_publish_files_moves_each_file(tmp_path):
    staged = tmp_path / "out" / ".staging-final"
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_text("new")
    (tmp_path / "out" / "model.safetensors").write_text("old")
    names = ckpt.publish_files(staged, tmp_path / "out")
    assert names == ["model.safetensors"]
    assert (tmp_path / "out" / "model.safetensors").read_text() == "new"
