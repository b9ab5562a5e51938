"""Alpaca: instruction, optional input, output — the Stanford Alpaca prompt text.

<bos>{preamble}### Instruction:\n{instruction}\n\n[### Input:\n{input}\n\n]### Response:\n
{output}<eos>          ← trained (the prompt too when `train_on_inputs`)
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.context import FormatContext, text_field
from honer.data.tokenize import Segment, TokenizedSample, TokenizerView

VERSION = 1

PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
PREAMBLE_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
)


def build_prompt(instruction: str, input_text: str = "", system: str | None = None) -> str:
    """The prompt text up to and including `### Response:\\n` (used by inference too)."""
    if system is None:
        system = PREAMBLE_WITH_INPUT if input_text else PREAMBLE
    elif system and not system.endswith("\n\n"):
        system = system.rstrip("\n") + "\n\n"
    body = f"### Instruction:\n{instruction}\n\n"
    if input_text:
        body += f"### Input:\n{input_text}\n\n"
    return f"{system}{body}### Response:\n"


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    ds = ctx.dataset
    instruction = text_field(row, ds.field_instruction)
    input_text = text_field(row, ds.field_input, required=False)
    output = text_field(row, ds.field_output)
    system = ds.system_prompt
    if system is None and row.get(ds.field_system):
        system = text_field(row, ds.field_system)
    prompt = build_prompt(instruction, input_text, system)
    answer = output + (tok.eos_token or "")
    sample = tok.encode_segments(
        [Segment(prompt, ctx.train_on_inputs), Segment(answer, True)], add_special_tokens=True
    )
    return [sample]
