"""Shared fixtures. Tests never download: the tiny model is built locally once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Without this, a missing hub model hangs ~50 s before failing (DESIGN.md trap).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


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
