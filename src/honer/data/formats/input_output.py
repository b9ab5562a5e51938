"""Input/output: segments with a per-segment `label`, for exact control of what is trained.

    {"segments": [{"text": "<s>Q: 2+2?\n", "label": false}, {"text": "A: 4</s>", "label": true}]}

Nothing is added: no BOS, no EOS. Write special tokens into the text where you want them.
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.context import FormatContext
from honer.data.tokenize import FormatError, Segment, TokenizedSample, TokenizerView

VERSION = 1


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    key = ctx.dataset.field or "segments"
    raw = row.get(key)
    if not isinstance(raw, list) or not raw:
        raise FormatError(f"column `{key}` must be a non-empty list of {{text, label}} segments")
    segments = []
    for i, seg in enumerate(raw):
        if not isinstance(seg, dict) or not isinstance(seg.get("text"), str):
            raise FormatError(f"{key}[{i}] must be an object with a `text` string")
        label = seg.get("label", True)
        if not isinstance(label, bool):
            raise FormatError(f"{key}[{i}].label must be true or false, got {label!r}")
        segments.append(Segment(seg["text"], label or ctx.train_on_inputs))
    return [tok.encode_segments(segments, add_special_tokens=False)]
