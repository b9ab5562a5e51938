"""Shared fixtures. Tests never download: the tiny model is built locally once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Without this, a missing hub model hangs ~50 s on retries before failing (measured).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `honer train` records every run in the LR policy database: keep test runs out of the user's.
os.environ["HONER_LR_DB"] = str(Path(tempfile.mkdtemp(prefix="honer-test-db-")) / "runs.sqlite")
# One intra-op thread: the tiny model's matrices are far too small to gain from two, and on a
# 2-core machine shared with other work, OpenMP threads spinning against each other made a
# 24-step run take 25 s instead of 0.6 s. Child processes (resume test, CLI runs) inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer + tiny Llama (hidden 64, 2 layers), built offline once per test session."""
    from honer.testing import tiny_model

    cache = os.environ.get("HONER_TEST_CACHE")
    root = Path(cache) if cache else tmp_path_factory.mktemp("models")
    return tiny_model(root / "tiny-llama")


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
