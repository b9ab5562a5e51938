"""Completion: raw text, every token trained, long texts split into `sequence_len` chunks.

<bos>{text}<eos> → [chunk 1: sequence_len tokens][chunk 2]…[last chunk]
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.context import FormatContext, text_field
from honer.data.tokenize import TokenizedSample, TokenizerView

VERSION = 1


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    text = text_field(row, ctx.dataset.field or "text")
    ids = tok.encode(text, add_special_tokens=True)
    if tok.eos_token_id is not None:
        ids.append(tok.eos_token_id)
    n = ctx.sequence_len
    # A last chunk of one token trains nothing (there is no next token to predict): drop it.
    return [
        TokenizedSample(ids[i : i + n], list(ids[i : i + n]))
        for i in range(0, len(ids), n)
        if len(ids[i : i + n]) > 1
    ]
