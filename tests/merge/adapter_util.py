"""A tiny LoRA/QLoRA adapter with random (non-zero) B matrices, saved like `honer train` saves it.

Training is not needed to test a merge: what matters is that B @ A is not zero, so every merged
weight really changes. Random B gives that in milliseconds instead of a training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOKENS = [[1, 57, 301, 42, 999, 7, 1500, 12, 88, 64, 2000, 5]]


def make_adapter(base: Path, out: Path, **keys: Any) -> Any:
    """Build the adapter the config describes on the tiny base, randomize B, save it to `out`."""
    import torch

    from honer.config.load import config_from_dict
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer

    raw = {
        "base_model": str(base),
        "datasets": [{"path": "unused.jsonl", "type": "alpaca"}],
        "output_dir": str(out),
        "adapter": "lora",
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target_linear": True,
        "seed": 0,
    }
    raw.update(keys)
    cfg = config_from_dict(raw)
    tok = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tok), verbose=False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
            elif "lora_magnitude_vector" in name:  # DoRA: move off its initial ‖W‖
                param.mul_(1 + 0.2 * torch.randn(param.shape, generator=gen))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return cfg, model


def logits(model: Any) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(TOKENS)).logits.float()
