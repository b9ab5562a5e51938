"""What a format may know besides the row: its dataset entry and a few run-wide settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from honer.config.schema import Config, DatasetConfig
from honer.data.formats.templates import resolve_template
from honer.data.tokenize import FormatError

CHAT_TYPES = ("sharegpt", "chat_template")


@dataclass(frozen=True)
class FormatContext:
    dataset: DatasetConfig
    train_on_inputs: bool = False
    sequence_len: int = 2048
    chat_template: str | None = None  # resolved Jinja text for chat formats


def text_field(row: dict[str, Any], key: str, required: bool = True) -> str:
    """A text column of the row; a missing or non-text value is a `FormatError` naming the key."""
    value = row.get(key)
    if value is None:
        if required:
            present = ", ".join(k for k, v in row.items() if v is not None)
            raise FormatError(f"column `{key}` is missing (row has: {present})")
        return ""
    if not isinstance(value, str):
        raise FormatError(f"column `{key}` must be text, got {type(value).__name__}")
    return value


def format_context(cfg: Config, ds: DatasetConfig, tokenizer: Any) -> FormatContext:
    """The context of one dataset entry: run-wide settings and its resolved chat template."""
    template = None
    if ds.type in CHAT_TYPES:
        name = ds.conversation or ds.chat_template or cfg.chat_template
        template = resolve_template(name, cfg.chat_template_jinja, tokenizer.chat_template)
    return FormatContext(
        dataset=ds,
        train_on_inputs=cfg.train_on_inputs,
        sequence_len=cfg.sequence_len,
        chat_template=template,
    )
