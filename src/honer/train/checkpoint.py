"""Checkpoint folders: atomic publication, rotation, and finding the one to resume from.

transformers' Trainer writes `checkpoint-N` in place, file by file: a kill during the write leaves
a folder that looks like the newest checkpoint but lacks the optimizer or the RNG state, and
`resume_from_checkpoint: true` would pick it. Here every checkpoint is written into a hidden
staging folder (`.staging-checkpoint-N`), its files are fsynced, and the folder is renamed into
place in one `os.replace`. A kill at any moment therefore leaves either the complete new
checkpoint or none at all, and every earlier checkpoint untouched.

Rotation (`save_total_limit`) orders checkpoints by step number, never by mtime (copied or synced
folders keep their step in the name, not in their timestamps).

A checkpoint written with `save_only_model: true` holds weights but no optimizer, scheduler or
RNG state; transformers would "resume" from it with a fresh optimizer and schedule without a
word, so resuming from one is refused (`resolve_resume`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from honer.atomic import fsync_dir, fsync_tree, publish_folder
from honer.config.schema import Config
from honer.errors import ConfigError, HonerError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STAGING_PREFIX = ".staging-"
TRAINER_STATE = "trainer_state.json"
# What a checkpoint holds when the optimizer was saved: transformers' `optimizer.pt` (or
# accelerate's `optimizer.bin`), FSDP's sharded `optimizer_0/` folder, DeepSpeed's `global_stepN/`.
_OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
_OPTIMIZER_FOLDERS = ("optimizer", "global_step")


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_RE.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [
        (step, p)
        for p in root.iterdir()
        if p.is_dir() and (step := checkpoint_step(p)) is not None and (p / TRAINER_STATE).is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def has_training_state(checkpoint: Path) -> bool:
    """Whether `checkpoint` holds optimizer state (not a `save_only_model` checkpoint)."""
    if any((checkpoint / name).is_file() for name in _OPTIMIZER_FILES):
        return True
    return any(p.is_dir() and p.name.startswith(_OPTIMIZER_FOLDERS) for p in checkpoint.iterdir())


def _resumable(checkpoint: Path, key: str | None) -> Path:
    """`checkpoint`, unless it has no optimizer state: resuming it would silently restart the
    optimizer and the schedule, so it is refused, saying what to do instead."""
    if has_training_state(checkpoint):
        return checkpoint
    message = (
        f"`{checkpoint}` holds the model only, no optimizer or scheduler state (it was saved "
        "with `save_only_model: true`), so training cannot resume from it. Start a new run from "
        "its weights instead (`base_model` for a full model, `lora_model_dir` for an adapter), "
        "and leave `save_only_model` off to write resumable checkpoints."
    )
    if key is not None:
        raise ConfigError([(key, message)])
    raise HonerError(message)


def resolve_resume(cfg: Config, resume: bool) -> Path | None:
    """The checkpoint to resume from: `resume` / `resume_from_checkpoint: true` → the latest one;
    `auto_resume_from_checkpoints` → the latest one if there is one, else a fresh start.

    Starting fresh over an output_dir that already holds checkpoints is refused: the new run's
    `checkpoint-N` folders would mix with the old run's, and a later resume could pick up a
    checkpoint of the wrong run. A checkpoint without optimizer state (`save_only_model`) is
    refused: transformers would restart the optimizer and schedule without saying so.
    """
    setting = cfg.resume_from_checkpoint
    if isinstance(setting, str):
        path = Path(setting)
        if not (path / TRAINER_STATE).is_file():
            raise ConfigError(
                [
                    (
                        "resume_from_checkpoint",
                        f"`{setting}` is not a checkpoint folder (no {TRAINER_STATE} in it).",
                    )
                ]
            )
        return _resumable(path, "resume_from_checkpoint")
    if resume or setting is True:
        latest = latest_checkpoint(cfg.output_dir)
        if latest is None:
            raise HonerError(
                f"nothing to resume: `{cfg.output_dir}` holds no checkpoint-N folder; start "
                "without --resume / `resume_from_checkpoint`."
            )
        return _resumable(latest, None)
    if cfg.auto_resume_from_checkpoints:
        # Axolotl's meaning: pick up where a restarted job left off, or start when there is
        # nothing to pick up.
        latest = latest_checkpoint(cfg.output_dir)
        return None if latest is None else _resumable(latest, None)
    existing = list_checkpoints(cfg.output_dir)
    if existing:
        raise HonerError(
            f"`{cfg.output_dir}` already holds checkpoints of an earlier run ({existing[-1].name}): "
            "resume it with `honer train CONFIG --resume`, or choose another `output_dir` "
            "(or delete the old one)."
        )
    return None


def staging_dir(output_dir: str | Path, step: int) -> Path:
    """Where checkpoint `step` is written before it is published (same name on every rank)."""
    return Path(output_dir) / f"{STAGING_PREFIX}checkpoint-{step}"


def clean_staging(output_dir: str | Path) -> None:
    """Remove what a killed run left half-written; it was never a checkpoint."""
    root = Path(output_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(STAGING_PREFIX) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Move the complete folder `staged` to `final` in one rename (`honer.atomic`); a resumed
    run saving the same step again replaces the old folder only once the new one is in place."""
    publish_folder(staged, final, old_name=f"{STAGING_PREFIX}old-{final.name}")


def rotate(output_dir: str | Path, limit: int | None, keep: Path | None = None) -> list[Path]:
    """Delete the oldest checkpoints beyond `limit`, never `keep` (the best one, for
    `load_best_model_at_end`); returns the deleted folders."""
    if not limit:
        return []
    checkpoints = [c for c in list_checkpoints(output_dir) if keep is None or c != Path(keep)]
    others = max(1, limit - (keep is not None))  # the newest is always kept, as is `keep`
    doomed = checkpoints[: max(0, len(checkpoints) - others)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing (see `honer.atomic`)."""
    from honer.atomic import write_text

    write_text(path, text)


def publish_files(staged: Path, dest: Path) -> list[str]:
    """Move every file of `staged` into `dest`, each with one atomic rename; returns their names.

    The final model shares `output_dir` with the checkpoints, so the folder itself cannot be
    swapped; each file is replaced whole instead (a reader sees the old or the new file).
    """
    fsync_tree(staged)
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for src in sorted(staged.iterdir()):
        target = dest / src.name
        if src.is_dir():
            if target.exists():
                shutil.rmtree(target)
            os.replace(src, target)
        else:
            os.replace(src, target)
        names.append(src.name)
    fsync_dir(dest)
    return names


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics lines of steps up to `step` (the checkpoint a run resumes from).

    Lines the killed run logged after its last checkpoint are re-logged by the resumed run;
    keeping them would record those steps twice. A torn last line (kill mid-write) is dropped.
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def read_step(checkpoint: Path) -> int:
    """The global step a checkpoint was saved at (from its trainer_state.json)."""
    state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    return int(state["global_step"])
