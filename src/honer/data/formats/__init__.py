"""Prompt formats: one small module per `datasets[].type`, each with the same shape.

A format module exposes `VERSION` (bumped when its output changes, so cached data is rebuilt) and
`tokenize_row(row, tok, ctx) -> list[TokenizedSample]`. It never reads files or global config:
everything it needs comes in `row`, the tokenizer view and the `FormatContext`.
"""

from __future__ import annotations

from types import ModuleType

from honer.data.formats import (
    alpaca,
    chat_template,
    completion,
    input_output,
    sharegpt,
    stepwise_supervised,
)
from honer.data.formats.context import FormatContext

FORMATS: dict[str, ModuleType] = {
    "alpaca": alpaca,
    "sharegpt": sharegpt,
    "chat_template": chat_template,
    "completion": completion,
    "input_output": input_output,
    # Process reward models' rows (token labels are step classes, not next tokens).
    "stepwise_supervised": stepwise_supervised,
}

__all__ = ["FORMATS", "FormatContext"]
