"""Axolotl's loader keys: `model_config` overrides and `resize_token_embeddings_to_32x` are applied."""

from __future__ import annotations

from pathlib import Path

from honer.config.load import config_from_dict


def _cfg(tiny_model_dir: Path, **extra):
    return config_from_dict(
        {"base_model": str(tiny_model_dir), "datasets": [{"path": "d.jsonl", "type": "alpaca"}]}
        | extra
    )


def test_model_config_overrides_reach_the_model(tiny_model_dir: Path) -> None:
    from honer.model.load import load_model, load_tokenizer

    cfg = _cfg(tiny_model_dir, model_config={"max_position_embeddings": 777})
    model = load_model(cfg, load_tokenizer(cfg))
    assert model.config.max_position_embeddings == 777


def test_embeddings_padded_to_a_multiple_of_32(tiny_model_dir: Path) -> None:
    from honer.model.load import load_model, load_tokenizer

    cfg = _cfg(tiny_model_dir, resize_token_embeddings_to_32x=True, tokens=["<x_new>"])
    tok = load_tokenizer(cfg)
    rows = load_model(cfg, tok).get_input_embeddings().weight.shape[0]
    assert rows % 32 == 0 and rows >= len(tok)
