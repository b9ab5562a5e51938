"""Deterministic, learnable token data and configs for training tests (no files, no hub).

Samples are runs of consecutive token ids (`s, s+1, s+2, …`) drawn from a small id range, with
the first part of each sample masked (-100) like a prompt. A tiny model learns the next-id rule
and the id range within a few dozen steps, so "the loss falls" is a real signal; lengths vary so
padding and per-token loss normalisation matter.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

BOS = 1
LOW, HIGH = 10, 74


def token_rows(n: int, seed: int = 0, min_len: int = 6, max_len: int = 28) -> dict[str, list]:
    rng = random.Random(seed)
    input_ids, labels = [], []
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        start = rng.randint(LOW, HIGH - length)
        ids = [BOS] + list(range(start, start + length))
        prompt = rng.randint(1, max(1, length // 3))
        input_ids.append(ids)
        labels.append([-100] * prompt + ids[prompt:])
    return {"input_ids": input_ids, "labels": labels}


def dataset(n: int, seed: int = 0, **kwargs: Any):
    from datasets import Dataset

    return Dataset.from_dict(token_rows(n, seed, **kwargs))


def config(model_dir: Path, output_dir: Path, **overrides: Any):
    """A Config for the tiny model; `datasets` is a placeholder the trainer never reads."""
    from honer.config.load import config_from_dict

    raw: dict[str, Any] = {
        "base_model": str(model_dir),
        "datasets": [{"path": "unused.jsonl", "type": "completion"}],
        "output_dir": str(output_dir),
        "micro_batch_size": 4,
        "learning_rate": 1e-3,
        "lr_scheduler": "constant",
        "logging_steps": 1,
        "seed": 0,
    }
    raw.update(overrides)
    return config_from_dict({k: v for k, v in raw.items() if v is not None})
