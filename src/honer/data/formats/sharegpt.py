"""ShareGPT: `conversations` of `{from, value}` turns (`system`/`human`/`gpt`), gpt turns trained.

The turns are mapped to OpenAI-style messages and rendered like `chat_template`, with the
template named by `conversation:` (Axolotl's option) or the top-level `chat_template`.
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.chat_template import normalise_messages, tokenize_messages
from honer.data.formats.context import FormatContext
from honer.data.tokenize import TokenizedSample, TokenizerView

VERSION = 1


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    ds = ctx.dataset
    field = ds.field_messages or "conversations"
    mapping = ds.message_property_mappings
    role_key = ds.message_field_role or (mapping.role if mapping else "from")
    content_key = ds.message_field_content or (mapping.content if mapping else "value")
    messages = normalise_messages(
        row.get(field), field, role_key, content_key, ds.roles, ds.drop_system_message
    )
    return [tokenize_messages(messages, tok, ctx)]
