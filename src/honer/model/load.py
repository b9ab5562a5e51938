"""Load the tokenizer (and, for training, the base model) as the config says.

Heavy imports happen inside the functions: this module is imported by CLI commands that may not
need torch at all.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from honer.config.schema import Config
from honer.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def _offline_hint(name: str) -> str:
    if os.path.isdir(name):
        return ""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return (
            f" HF_HUB_OFFLINE=1 is set and `{name}` is not in the local Hugging Face cache: "
            "point `base_model` at a local folder, or unset HF_HUB_OFFLINE to download it."
        )
    return (
        f" `{name}` is neither a local folder nor a reachable hub repository: check the name, "
        "your network, and HF_TOKEN for gated models (or set HF_HUB_OFFLINE=1 and use a local path)."
    )


def _tokenizer_class(cfg: Config) -> Any:
    import transformers

    name = cfg.tokenizer_type or "AutoTokenizer"
    cls = getattr(transformers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelError(
            f"tokenizer_type: `{name}` is not a transformers tokenizer class "
            "(e.g. AutoTokenizer, LlamaTokenizerFast)."
        )
    return cls


def load_tokenizer(cfg: Config) -> PreTrainedTokenizerBase:
    """The tokenizer with `special_tokens` / `tokens` applied and a pad token guaranteed.

    A missing pad token is set to EOS (the common choice for causal LMs); labels of padding are
    -100 anyway, so this never trains on padding.
    """
    source = cfg.tokenizer_config or cfg.base_model
    cls = _tokenizer_class(cfg)
    try:
        tok = cls.from_pretrained(
            source,
            use_fast=cfg.tokenizer_use_fast,
            trust_remote_code=cfg.trust_remote_code,
            revision=cfg.revision_of_model if source == cfg.base_model else None,
        )
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load the tokenizer from `{source}`: {err}.{_offline_hint(source)}"
        ) from None
    if cfg.special_tokens is not None:
        wanted = {k: v for k, v in cfg.special_tokens.model_dump().items() if v is not None}
        if wanted:
            tok.add_special_tokens(wanted)
    if cfg.tokens:
        tok.add_tokens(list(cfg.tokens))
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelError(
                f"the tokenizer of `{source}` has neither a pad nor an EOS token: set "
                "`special_tokens: {pad_token: ...}` in the config."
            )
        tok.pad_token = tok.eos_token
    return tok
