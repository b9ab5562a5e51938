"""Alpaca: instruction, optional input, output — the Stanford Alpaca prompt text.

<bos>{preamble}### Instruction:\n{instruction}\n\n[### Input:\n{input}\n\n]### Response:\n
{output}<eos>          ← trained (the prompt too when `train_on_inputs`)

`prompt_style` swaps the turn markers, as Axolotl's `type: alpaca:<style>` does (its
`AlpacaPrompter` styles, copied exactly, quirks included: Phi's with-input turn has no newlines).
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.context import FormatContext, text_field
from honer.data.tokenize import Segment, TokenizedSample, TokenizerView

VERSION = 2

# style: (turn with input, turn without input, system wrapper) — Axolotl's PromptStyle formats.
STYLES: dict[str, tuple[str, str, str]] = {
    "instruct": (
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        "### Instruction:\n{instruction}\n\n### Response:\n",
        "{system}\n\n",
    ),
    "chat": (
        "USER: {instruction}\n{input}\nASSISTANT:",
        "USER: {instruction}\nASSISTANT:",
        "SYSTEM: {system}\n",
    ),
    "chatml": (
        "<|im_start|>user\n{instruction}\n{input}<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\n{system}<|im_end|>\n",
    ),
    "phi": (
        "<|user|>\n{instruction}<|end|>{input}<|assistant|>",
        "<|user|>\n{instruction}<|end|>\n<|assistant|>\n",
        "<|system|>\n{system}<|end|>\n",
    ),
}

PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
PREAMBLE_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
)


def build_prompt(
    instruction: str, input_text: str = "", system: str | None = None, style: str = "instruct"
) -> str:
    """The prompt text up to where the answer starts (used by inference too)."""
    turn, turn_no_input, system_format = STYLES[style]
    if system is None:
        system = (PREAMBLE_WITH_INPUT if input_text else PREAMBLE).removesuffix("\n\n")
    if style == "instruct" and system.endswith("\n\n"):
        head = system  # already separated from the instruction as the format wants
    else:
        head = system_format.format(system=system.rstrip("\n")) if system else ""
    body = (turn if input_text else turn_no_input).format(instruction=instruction, input=input_text)
    return head + body


def next_turn(instruction: str, style: str = "instruct") -> str:
    """A later user turn of a multi-turn Alpaca-style prompt (inference)."""
    return STYLES[style][1].format(instruction=instruction)


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
    prompt = build_prompt(instruction, input_text, system, ds.prompt_style)
    answer = output + (tok.eos_token or "")
    sample = tok.encode_segments(
        [Segment(prompt, ctx.train_on_inputs), Segment(answer, True)], add_special_tokens=True
    )
    return [sample]
