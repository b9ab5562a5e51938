"""ShareGPT: `conversations` of `{from, value}` turns (`system`/`human`/`gpt`), gpt turns trained.

The turns are mapped to OpenAI-style messages and rendered like `chat_template`, with the
template named by `conversation:` (Axolotl's option) or the top-level `chat_template`.
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.chat_template import tokenize_conversation
from honer.data.formats.context import FormatContext
from honer.data.tokenize import TokenizedSample, TokenizerView

VERSION = 1


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    return tokenize_conversation(row, tok, ctx, "conversations", "from", "value")
