"""Preference pairs (`rl: dpo` / `rl: ipo`): one row → prompt, chosen and rejected token ids.

Two steps, each copied from the tool users come from, so that honer's pairs equal theirs token
for token:

1. The text. Each `type` is one of Axolotl's DPO prompt strategies (axolotl/prompt_strategies/
   dpo/{chat_template,chatml,llama3}.py), with the same column names and the same strings, quirks
   included: `chat_template.*` renders the answer after a dummy user turn and keeps the text from
   the answer's first occurrence on, right-stripped (so ChatML's answer ends `<|im_end|>`, without
   the newline); `chatml.*` / `llama3.*` write the markers literally.
2. The ids. TRL's `DPOTrainer` (1.16, `_prepare_dataset`) tokenizes such text: the EOS is
   appended to each answer unless it already ends with it, the prompt and prompt + answer are
   tokenized with the tokenizer's special tokens (BOS for Llama-like tokenizers), and the answer
   starts where the prompt's ids and the prompt + answer ids first differ (a token merged
   across the boundary belongs to the answer). `tests/data/test_preference_formats.py` checks
   the result against TRL's own code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from honer.config.schema import DatasetConfig
from honer.data.formats.context import FormatContext
from honer.data.tokenize import FormatError, TokenizerView

VERSION = 1

DUMMY_USER = {"role": "user", "content": "[[dummy_message]]"}
DEFAULT_ROLES = {
    "user": ["user"],
    "assistant": ["assistant"],
    "system": ["system"],
    "tool": ["tool"],
}

# Markers of the fixed-text families: (system turn, user turn + assistant header, end of answer).
MARKERS: dict[str, tuple[str, str, str]] = {
    "chatml": (
        "<|im_start|>system\n{}<|im_end|>\n",
        "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
        "<|im_end|>",
    ),
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
    ),
}

Texts = tuple[str, str, str]


def _field(row: dict[str, Any], name: str) -> Any:
    if name not in row:
        keys = ", ".join(k for k in row if not k.startswith("__")) or "none"
        raise FormatError(f"column `{name}` is missing (row has: {keys})")
    return row[name]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"`{where}` must be text, got {type(value).__name__}")
    return value


def _answer_content(text: str, where: str) -> str:
    if not text.strip():
        raise FormatError(f"the `{where}` answer is empty")
    return text


def _turn_content(value: Any, where: str) -> str:
    """`chosen`/`rejected` as a conversation: the second message's content (Axolotl's `[1]`)."""
    if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], dict):
        raise FormatError(f"`{where}` must be a conversation of at least two messages")
    return _answer_content(_text(value[1].get("content"), f"{where}[1].content"), where)


# --- chatml.* / llama3.*: literal markers ---------------------------------------------------


def _system_prefix(row: dict[str, Any], family: str) -> str:
    system = row.get("system")
    return MARKERS[family][0].format(system) if system else ""


def _literal(family: str, kind: str, row: dict[str, Any]) -> Texts:
    _, user, end = MARKERS[family]
    if kind == "argilla_chat":
        chosen, rejected = _field(row, "chosen"), _field(row, "rejected")
        if not isinstance(chosen, list) or not chosen or not isinstance(chosen[0], dict):
            raise FormatError("`chosen` must be a conversation of at least two messages")
        first = _text(chosen[0].get("content"), "chosen[0].content")
        return (
            user.format(first),
            _turn_content(chosen, "chosen") + end,
            _turn_content(rejected, "rejected") + end,
        )
    if kind == "default":  # the first of these columns that the row has
        prompt_key = next((k for k in ("prompt", "input", "question") if k in row), "instruction")
        chosen_key = "chosen" if "chosen" in row else "chosen_response"
        rejected_key = "rejected" if "rejected" in row else "rejected_response"
    else:
        prompt_key = {"icr": "input", "intel": "question"}.get(kind, "prompt")
        chosen_key, rejected_key = "chosen", "rejected"
    prompt = _system_prefix(row, family) + user.format(_text(_field(row, prompt_key), prompt_key))
    if kind == "ultra":
        chosen = _turn_content(_field(row, "chosen"), "chosen")
        rejected = _turn_content(_field(row, "rejected"), "rejected")
    else:
        chosen = _answer_content(_text(_field(row, chosen_key), chosen_key), chosen_key)
        rejected = _answer_content(_text(_field(row, rejected_key), rejected_key), rejected_key)
    return prompt, chosen + end, rejected + end


# --- chat_template.*: the config's chat template ---------------------------------------------


def _mapping(ds: DatasetConfig) -> tuple[str, str, dict[str, str]]:
    """Role key, content key and data-role → our-role map, with Axolotl's defaults."""
    mapping = ds.message_property_mappings
    role_key = ds.message_field_role or (mapping.role if mapping else "role")
    content_key = ds.message_field_content or (mapping.content if mapping else "content")
    roles = {
        source: ours for ours, names in (ds.roles or DEFAULT_ROLES).items() for source in names
    }
    return role_key, content_key, roles


def _message(raw: Any, where: str, ds: DatasetConfig) -> dict[str, str]:
    role_key, content_key, roles = _mapping(ds)
    if not isinstance(raw, dict):
        raise FormatError(f"`{where}` must be a message ({{{role_key}, {content_key}}})")
    role = raw.get(role_key)
    if role not in roles:
        raise FormatError(
            f"`{where}` has unknown role `{role}`; map it, e.g. `roles: {{assistant: [{role}]}}`"
        )
    return {"role": roles[role], "content": _text(raw.get(content_key), f"{where}.{content_key}")}


def _answer(raw: Any, where: str, ds: DatasetConfig) -> dict[str, str]:
    """An answer given as text, one message, or a conversation (its last message)."""
    role_key, content_key, _ = _mapping(ds)
    if isinstance(raw, str):
        raw = {role_key: "assistant", content_key: raw}
    elif isinstance(raw, list):
        if not raw:
            raise FormatError(f"`{where}` is an empty conversation")
        raw = raw[-1]
    message = _message(raw, where, ds)
    _answer_content(message["content"], where)
    return message


def _answer_text(view: TokenizerView, ctx: FormatContext, answer: dict[str, str]) -> str:
    """Axolotl's answer text: rendered after a dummy user turn, from the answer's first
    occurrence on, right-stripped."""
    full = view.render_chat(
        [DUMMY_USER, answer], ctx.chat_template, False, ctx.chat_template_kwargs
    )
    start = full.find(answer["content"])  # -1 (not found) keeps the last character, as Axolotl
    return full[start:].rstrip()


def _templated(
    kind: str, row: dict[str, Any], ds: DatasetConfig, ctx: FormatContext, view: TokenizerView
) -> Texts:
    chosen_field, rejected_field = ds.field_chosen or "chosen", ds.field_rejected or "rejected"
    chosen_raw, rejected_raw = _field(row, chosen_field), _field(row, rejected_field)
    if kind == "argilla_chat":
        if not isinstance(chosen_raw, list) or not isinstance(rejected_raw, list):
            raise FormatError(f"`{chosen_field}` and `{rejected_field}` must be conversations")
        messages = [_message(m, f"{chosen_field}[{i}]", ds) for i, m in enumerate(chosen_raw[:-1])]
    else:
        field = ds.field_messages or "messages"
        raw = _field(row, field)
        if isinstance(raw, str):
            role_key, content_key, _ = _mapping(ds)
            raw = [{role_key: "user", content_key: raw}]
        if not isinstance(raw, list):
            raise FormatError(f"`{field}` must be a list of messages")
        messages = [_message(m, f"{field}[{i}]", ds) for i, m in enumerate(raw)]
    if not messages:
        raise FormatError("the prompt has no message")
    chosen = _answer(chosen_raw, chosen_field, ds)
    rejected = _answer(rejected_raw, rejected_field, ds)
    prompt = view.render_chat(messages, ctx.chat_template, True, ctx.chat_template_kwargs)
    return prompt, _answer_text(view, ctx, chosen), _answer_text(view, ctx, rejected)


# --- the row --------------------------------------------------------------------------------


def preference_texts(
    row: dict[str, Any], ds: DatasetConfig, ctx: FormatContext, view: TokenizerView
) -> Texts:
    """The (prompt, chosen, rejected) text of one row, as Axolotl's strategy `ds.type` makes it."""
    family, kind = ds.type.split(".", 1)
    if family == "chat_template":
        prompt, chosen, rejected = _templated(kind, row, ds, ctx, view)
    else:
        prompt, chosen, rejected = _literal(family, kind, row)
    return prompt, chosen, rejected


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(prompt: str, chosen: str, rejected: str, tokenizer: Any) -> dict[str, list[int]]:
    """Prompt / chosen / rejected ids exactly as TRL's `DPOTrainer` tokenizes the texts."""
    eos = tokenizer.eos_token or ""
    chosen = chosen if chosen.endswith(eos) else chosen + eos
    rejected = rejected if rejected.endswith(eos) else rejected + eos
    encode: Callable[[str], list[int]] = lambda text: tokenizer(text=text)["input_ids"]  # noqa: E731
    prompt_ids = encode(prompt)
    with_chosen, with_rejected = encode(prompt + chosen), encode(prompt + rejected)
    cut = min(_common_prefix(prompt_ids, with_chosen), _common_prefix(prompt_ids, with_rejected))
    pair = {
        "prompt_ids": prompt_ids[:cut],
        "chosen_ids": with_chosen[cut:],
        "rejected_ids": with_rejected[cut:],
    }
    if pair["chosen_ids"] == pair["rejected_ids"]:
        raise FormatError("the chosen and rejected answers are the same")
    return pair


def tokenize_row(
    row: dict[str, Any], ds: DatasetConfig, ctx: FormatContext, view: TokenizerView, tokenizer: Any
) -> dict[str, list[int]]:
    """One preference row → `prompt_ids`, `chosen_ids`, `rejected_ids` (errors name the column)."""
    prompt, chosen, rejected = preference_texts(row, ds, ctx, view)
    if chosen == rejected:
        raise FormatError("the chosen and rejected answers are the same")
    return tokenize_pair(prompt, chosen, rejected, tokenizer)
