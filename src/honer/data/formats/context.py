"""What a format may know besides the row: its dataset entry and a few run-wide settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from honer.config.schema import DatasetConfig
from honer.data.tokenize import FormatError


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
