"""Preference pairs (`rl: dpo` / `rl: ipo`): one row → prompt, chosen and rejected token ids.

Two steps, each copied from the tool users come from, so that honer's pairs equal theirs token
for token:

1. The text. Each `type` is one of Axolotl's DPO prompt strategies (axolotl/prompt_strategies/
   dpo/{chat_template,chatml,llama3}.py), with the same column names and the same strings, quirks
   included: `chat_template.*` renders each answer after a dummy user turn and keeps the text
   from the answer's first occurrence on, right-stripped (so a ChatML answer ends `<|im_end|>`,
   without the template's newline); `chatml.*` / `llama3.*` write their markers literally (no
   BOS: the tokenizer adds its own, as TRL tokenizes with special tokens).
2. The ids. TRL's `DPOTrainer` (1.16, `_prepare_dataset`) tokenizes such text: the EOS is
   appended to each answer unless it already ends with it, the prompt and prompt + answer are
   tokenized with the tokenizer's special tokens (BOS for Llama-like tokenizers), and the answer
   starts where the prompt's ids and the prompt + answer ids first differ (a token merged
   across the boundary belongs to the answer). `tests/data/test_preference_formats.py` checks
   the result against TRL's own code.

Where Axolotl would silently train on garbage or crash, honer raises `FormatError` instead
(prepare adds the file and row, and `skip_bad_rows` can drop such rows): a missing or non-text
column (Axolotl writes `None` into the prompt), an empty prompt or answer, identical answers,
and an answer that its chat template rewrites (e.g. trims), which Axolotl cuts down to the
rendering's last character.
"""

from __future__ import annotations

from typing import Any

from honer.config.schema import PREFERENCE_TYPES, DatasetConfig
from honer.data.formats.context import FormatContext
from honer.data.tokenize import FormatError, TokenizerView

VERSION = 2  # 2: stricter rows (None, empty prompts, rewritten answers are errors)

# Axolotl renders each answer after this user turn, then cuts the text before the answer off.
DUMMY_USER = {"role": "user", "content": "[[dummy_message]]"}
# Axolotl's `roles` default for its DPO chat templates (no aliases such as `human`/`gpt`,
# unlike its SFT `chat_template`).
DEFAULT_ROLES: dict[str, list[str]] = {
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
# Prompt column of each fixed-text kind (`default` picks the first one the row has, see below).
PROMPT_COLUMN = {"icr": "input", "intel": "question", "prompt_pairs": "prompt", "ultra": "prompt"}

Texts = tuple[str, str, str]


# --- reading the row ------------------------------------------------------------------------


def _field(row: dict[str, Any], name: str) -> Any:
    """A column's value. A Hugging Face dataset gives every row every column of the file, so a
    value of None is a column this row lacks."""
    value = row.get(name)
    if value is None:
        present = ", ".join(k for k, v in row.items() if v is not None and not k.startswith("__"))
        raise FormatError(f"column `{name}` is missing (row has: {present or 'nothing'})")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"`{where}` must be text, got {type(value).__name__}")
    return value


def _filled(text: str, what: str) -> str:
    """`text`, unless it is blank: a pair with an empty prompt or answer teaches nothing."""
    if not text.strip():
        raise FormatError(f"the {what} is empty")
    return text


def _turn_content(value: Any, where: str, index: int) -> str:
    """The content of message `index` of a conversation column (Axolotl's `[i]['content']`)."""
    if (
        not isinstance(value, list)
        or len(value) <= index
        or not isinstance(value[index], dict)
        or value[index].get("content") is None
    ):
        raise FormatError(f"`{where}` must be a list of messages with a `{where}[{index}].content`")
    return _text(value[index]["content"], f"{where}[{index}].content")


# --- chatml.* / llama3.*: literal markers ---------------------------------------------------


def _literal_keys(kind: str, row: dict[str, Any]) -> tuple[str, str, str]:
    """Prompt, chosen and rejected columns. `default` takes the first of Axolotl's names that
    the row has as a column (as Axolotl tests `key in sample.keys()`, even when the value is
    None); the other kinds have fixed names."""
    if kind == "default":
        prompt = next((k for k in ("prompt", "input", "question") if k in row), "instruction")
        chosen = "chosen" if "chosen" in row else "chosen_response"
        rejected = "rejected" if "rejected" in row else "rejected_response"
        return prompt, chosen, rejected
    return PROMPT_COLUMN[kind], "chosen", "rejected"


def _answer(text: str, column: str, end: str) -> str:
    """A fixed-text answer: its text, then the family's end-of-turn marker."""
    return _filled(text, f"`{column}` answer") + end


def _literal(family: str, kind: str, row: dict[str, Any]) -> Texts:
    """Axolotl's `chatml.<kind>` / `llama3.<kind>` strings."""
    system_turn, user_turn, end = MARKERS[family]
    if kind == "argilla_chat":  # both sides are conversations: [user, assistant]
        chosen_turns, rejected_turns = _field(row, "chosen"), _field(row, "rejected")
        question = _filled(_turn_content(chosen_turns, "chosen", 0), "prompt (`chosen[0].content`)")
        chosen = _turn_content(chosen_turns, "chosen", 1)
        rejected = _turn_content(rejected_turns, "rejected", 1)
        return (
            user_turn.format(question),
            _answer(chosen, "chosen", end),
            _answer(rejected, "rejected", end),
        )
    prompt_key, chosen_key, rejected_key = _literal_keys(kind, row)
    question = _filled(_text(_field(row, prompt_key), prompt_key), f"prompt (`{prompt_key}`)")
    system = row.get("system")  # Axolotl: a system turn only when `system` is set and not empty
    prefix = system_turn.format(_text(system, "system")) if system else ""
    if kind == "ultra":  # answers are conversations: [user, assistant]
        chosen = _turn_content(_field(row, "chosen"), "chosen", 1)
        rejected = _turn_content(_field(row, "rejected"), "rejected", 1)
    else:
        chosen = _text(_field(row, chosen_key), chosen_key)
        rejected = _text(_field(row, rejected_key), rejected_key)
    prompt = prefix + user_turn.format(question)
    return prompt, _answer(chosen, chosen_key, end), _answer(rejected, rejected_key, end)


# --- chat_template.*: the config's chat template ---------------------------------------------


class _Messages:
    """Axolotl's message reading for one dataset entry: which keys hold role and content, and
    the data's role names → ours (`roles` replaces the default map, it does not extend it)."""

    def __init__(self, ds: DatasetConfig) -> None:
        mapping = ds.message_property_mappings
        self.role_key = ds.message_field_role or (mapping.role if mapping else "role")
        self.content_key = ds.message_field_content or (mapping.content if mapping else "content")
        self.roles = {
            source: ours for ours, names in (ds.roles or DEFAULT_ROLES).items() for source in names
        }

    def message(self, raw: Any, where: str) -> dict[str, str]:
        """One message of the data as {role, content} with our role name."""
        if not isinstance(raw, dict):
            raise FormatError(
                f"`{where}` must be a message with `{self.role_key}` and `{self.content_key}`"
            )
        role = raw.get(self.role_key)
        if role not in self.roles:
            raise FormatError(
                f"`{where}` has unknown role `{role}`; map it, e.g. `roles: {{assistant: [{role}]}}`"
                f" (or set `message_property_mappings` if the role is under another key)"
            )
        content = _text(raw.get(self.content_key), f"{where}.{self.content_key}")
        return {"role": self.roles[role], "content": content}

    def plain(self, text: str, role: str) -> dict[str, str]:
        """A column given as text: Axolotl makes it one message of `role`. (Axolotl looks `role`
        up in `roles` and fails when a custom `roles` lacks it; honer then keeps `role`.)"""
        return {"role": self.roles.get(role, role), "content": text}

    def answer(self, raw: Any, where: str) -> dict[str, str]:
        """An answer given as text, one message, or a conversation (its last message)."""
        if isinstance(raw, str):
            message = self.plain(raw, "assistant")
        elif isinstance(raw, list):
            if not raw:
                raise FormatError(f"`{where}` is an empty list of messages")
            message = self.message(raw[-1], f"{where}[{len(raw) - 1}]")
        else:
            message = self.message(raw, where)
        _filled(message["content"], f"`{where}` answer")
        return message

    def prompt(self, raw: Any, where: str) -> list[dict[str, str]]:
        """The prompt's messages, from text (one user message) or a list of messages."""
        if isinstance(raw, str):
            messages = [self.plain(raw, "user")]
        elif isinstance(raw, list):
            messages = [self.message(m, f"{where}[{i}]") for i, m in enumerate(raw)]
        else:
            raise FormatError(f"`{where}` must be text or a list of messages")
        if not any(m["content"].strip() for m in messages):
            raise FormatError(f"the prompt (`{where}`) is empty")
        return messages


def _render(
    view: TokenizerView, ctx: FormatContext, messages: list[dict[str, str]], generation: bool
) -> str:
    """`tokenizer.apply_chat_template(messages, chat_template=..., tokenize=False)`, as Axolotl
    calls it (plus `chat_template_kwargs`, which Axolotl's DPO strategies do not pass)."""
    try:
        return view.render_chat(messages, ctx.chat_template, generation, ctx.chat_template_kwargs)
    except Exception as err:  # Jinja templates raise anything (e.g. "roles must alternate")
        raise FormatError(f"the chat template cannot render this row: {err}") from None


def _answer_text(
    view: TokenizerView, ctx: FormatContext, answer: dict[str, str], where: str
) -> str:
    """Axolotl's answer text: the answer rendered after a dummy user turn, from the first
    occurrence of its content on, right-stripped."""
    full = _render(view, ctx, [DUMMY_USER, answer], False)
    start = full.find(answer["content"])
    if start < 0:  # Axolotl's find() gives -1 here and keeps only the last character
        raise FormatError(
            f"the chat template changes the `{where}` answer's text (e.g. trims its spaces or "
            "newlines), so it cannot be cut out of its rendering; strip the answers in the data"
        )
    return full[start:].rstrip()


def _templated(
    kind: str, row: dict[str, Any], ds: DatasetConfig, ctx: FormatContext, view: TokenizerView
) -> Texts:
    """Axolotl's `chat_template.default` / `chat_template.argilla_chat` strings, and its ORPO
    `chat_template.argilla` (argilla_chat's conversations, after the `system` column's turn
    when the row has one)."""
    read = _Messages(ds)
    chosen_field, rejected_field = ds.field_chosen or "chosen", ds.field_rejected or "rejected"
    chosen_raw, rejected_raw = _field(row, chosen_field), _field(row, rejected_field)
    if kind in ("argilla", "argilla_chat"):  # the prompt: the chosen conversation less its end
        for raw, field in ((chosen_raw, chosen_field), (rejected_raw, rejected_field)):
            if not isinstance(raw, list):
                raise FormatError(f"`{field}` must be a list of messages (a conversation)")
        messages = read.prompt(chosen_raw[:-1], chosen_field)
        system = row.get("system") if kind == "argilla" else None
        if system:
            messages = [{"role": "system", "content": _text(system, "system")}, *messages]
    else:
        field = ds.field_messages or "messages"
        messages = read.prompt(_field(row, field), field)
    chosen = read.answer(chosen_raw, chosen_field)
    rejected = read.answer(rejected_raw, rejected_field)
    return (
        _render(view, ctx, messages, True),
        _answer_text(view, ctx, chosen, chosen_field),
        _answer_text(view, ctx, rejected, rejected_field),
    )


# --- the row --------------------------------------------------------------------------------


def preference_texts(
    row: dict[str, Any], ds: DatasetConfig, ctx: FormatContext, view: TokenizerView
) -> Texts:
    """The (prompt, chosen, rejected) text of one row, as Axolotl's strategy `ds.type` makes it."""
    if ds.type not in PREFERENCE_TYPES:
        raise ValueError(f"`{ds.type}` is not a preference format ({', '.join(PREFERENCE_TYPES)})")
    family, kind = ds.type.split(".", 1)
    if family == "chat_template":
        prompt, chosen, rejected = _templated(kind, row, ds, ctx, view)
    else:
        prompt, chosen, rejected = _literal(family, kind, row)
    if chosen == rejected:
        raise FormatError("the chosen and rejected answers are the same")
    return prompt, chosen, rejected


def _common_prefix(a: list[int], b: list[int]) -> int:
    """TRL's `common_prefix_length`: how many leading ids the two lists share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(prompt: str, chosen: str, rejected: str, tokenizer: Any) -> dict[str, list[int]]:
    """Prompt / chosen / rejected ids exactly as TRL's `DPOTrainer` tokenizes the texts."""
    eos = tokenizer.eos_token or ""  # TRL needs an EOS; without one, nothing is appended
    chosen = chosen if chosen.endswith(eos) else chosen + eos
    rejected = rejected if rejected.endswith(eos) else rejected + eos

    def encode(text: str) -> list[int]:
        return list(tokenizer(text=text)["input_ids"])

    prompt_ids = encode(prompt)
    with_chosen, with_rejected = encode(prompt + chosen), encode(prompt + rejected)
    cut = min(_common_prefix(prompt_ids, with_chosen), _common_prefix(prompt_ids, with_rejected))
    pair = {
        "prompt_ids": prompt_ids[:cut],
        "chosen_ids": with_chosen[cut:],
        "rejected_ids": with_rejected[cut:],
    }
    for side in ("chosen", "rejected"):
        if not pair[f"{side}_ids"]:
            raise FormatError(f"the {side} answer has no tokens after the prompt")
    if pair["chosen_ids"] == pair["rejected_ids"]:  # e.g. texts that differ only in case
        raise FormatError("the chosen and rejected answers are the same tokens")
    return pair


def tokenize_row(
    row: dict[str, Any], ds: DatasetConfig, ctx: FormatContext, view: TokenizerView, tokenizer: Any
) -> dict[str, list[int]]:
    """One preference row → `prompt_ids`, `chosen_ids`, `rejected_ids` (errors name the column)."""
    return tokenize_pair(*preference_texts(row, ds, ctx, view), tokenizer)


# --- KTO: one answer, labelled (Axolotl's prompt_strategies/kto/{chatml,llama3}.py) ----------

# Prompt column of each KTO kind; `argilla_chat` reads its prompt from `completion[0]`.
KTO_PROMPT_COLUMN = {"argilla": "instruction", "intel": "question"}


def kto_texts(row: dict[str, Any], ds: DatasetConfig) -> tuple[str, str]:
    """The (prompt, completion) text of one KTO row, as Axolotl's kto strategy `ds.type`: the
    same markers as the DPO strategies, the answer in `completion`."""
    family, kind = ds.type.split(".", 1)
    system_turn, user_turn, end = MARKERS[family]
    if kind == "argilla_chat":  # `completion` is a conversation: [user, assistant]
        turns = _field(row, "completion")
        question = _filled(_turn_content(turns, "completion", 0), "prompt (`completion[0]`)")
        return user_turn.format(question), _answer(
            _turn_content(turns, "completion", 1), "completion", end
        )
    key = KTO_PROMPT_COLUMN.get(kind, "prompt")
    question = _filled(_text(_field(row, key), key), f"prompt (`{key}`)")
    system = row.get("system")
    prefix = system_turn.format(_text(system, "system")) if system else ""
    completion = _text(_field(row, "completion"), "completion")
    return prefix + user_turn.format(question), _answer(completion, "completion", end)


def kto_label(row: dict[str, Any]) -> bool:
    """The row's `label`: true (desirable) or false; 1/0 are read as such, anything else is an
    error rather than a guess."""
    label = row.get("label")
    if label is None:
        raise FormatError("column `label` is missing (KTO rows need true or false)")
    if isinstance(label, bool):
        return label
    if isinstance(label, int) and label in (0, 1):
        return bool(label)
    raise FormatError(f"`label` must be true or false, got {label!r}")


def tokenize_completion(prompt: str, completion: str, tokenizer: Any) -> dict[str, list[int]]:
    """Prompt / completion ids exactly as TRL's `KTOTrainer` tokenizes the texts (EOS appended
    unless present; the answer starts where the prompt's ids and the whole's first differ)."""
    eos = tokenizer.eos_token or ""
    completion = completion if completion.endswith(eos) else completion + eos
    prompt_ids = list(tokenizer(text=prompt)["input_ids"])
    full = list(tokenizer(text=prompt + completion)["input_ids"])
    cut = _common_prefix(prompt_ids, full)
    if cut == len(full):
        raise FormatError("the completion has no tokens after the prompt")
    return {"prompt_ids": prompt_ids[:cut], "completion_ids": full[cut:]}


def tokenize_kto_row(row: dict[str, Any], ds: DatasetConfig, tokenizer: Any) -> dict[str, Any]:
    """One KTO row → `prompt_ids`, `completion_ids`, `label`."""
    prompt, completion = kto_texts(row, ds)
    return {**tokenize_completion(prompt, completion, tokenizer), "label": kto_label(row)}


# --- scoring a preference-tuned model ----------------------------------------------------------


def preferred_answers(data: Any) -> Any:
    """Preference rows as SFT samples (`input_ids`, `labels`) of the answer that should win:
    the chosen one of a pair, a KTO row's answer when it is desirable. `honer evaluate` scores
    these (loss of the preferred answers, and the `evals:` checks on generations from their
    prompts), so a preference run is evaluated with the same machinery as an SFT run."""
    if "completion_ids" in data.column_names:
        data = data.filter(lambda label: bool(label), input_columns="label")
        answer = "completion_ids"
    else:
        answer = "chosen_ids"

    def to_sample(prompt: list[int], ids: list[int]) -> dict[str, list[int]]:
        return {"input_ids": prompt + ids, "labels": [-100] * len(prompt) + ids}

    return data.map(
        to_sample, input_columns=["prompt_ids", answer], remove_columns=data.column_names
    )
