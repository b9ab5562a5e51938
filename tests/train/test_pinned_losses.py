"""The first 10 losses of a seeded tiny-model LoRA run equal recorded values (to 1e-4).

Any silent change to the training numerics (loss normalisation, the RNG draws of dropout or the
sampler, the optimizer's defaults, the LoRA initialisation, a library upgrade that changes one of
them) moves these numbers; torchtune's recipe tests pin losses the same way. When a change is
meant to move them, rerun with HONER_PRINT_PINNED=1, check why they moved, and record the new ones
with the reason in the commit message.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.train.data_util import config, dataset

pytestmark = pytest.mark.slow

# Recorded on torch 2.13.0 (CPU), transformers 5.24.0, peft 0.21.2; tiny Llama of honer.testing.
PINNED = [
    7.607533,
    7.606822,
    7.569313,
    7.45581,
    7.390767,
    7.412209,
    7.337555,
    7.122931,
    7.130638,
    7.172156,
]


def test_first_ten_losses_are_pinned(tiny_model_dir, tmp_path):
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train.trainer import train

    out = tmp_path / "out"
    cfg = config(
        tiny_model_dir,
        out,
        max_steps=10,
        adapter="lora",
        lora_target_linear=True,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        learning_rate=1e-2,
        lr_scheduler="cosine",
        warmup_steps=2,
        gradient_accumulation_steps=2,
    )
    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    train(cfg, model, tokenizer, dataset(48, seed=3))

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    if os.environ.get("HONER_PRINT_PINNED"):
        print("PINNED =", [round(x, 6) for x in losses])
    assert losses == pytest.approx(PINNED, abs=1e-4)
