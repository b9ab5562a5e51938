"""Fixtures for training tests. `tiny_model_dir` comes from tests/conftest.py (built once)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def train_rows():
    from tests.train.data_util import dataset

    return dataset(64, seed=0)
