"""Exact input_ids and labels for every prompt format, on fixed rows.

Expected ids are the tokenizer's ids of the literal expected text; expected labels mask exactly
the literal prompt part. Both are written out here, independently of the format code.
"""

from __future__ import annotations

import pytest

from honer.config.schema import DatasetConfig
from honer.data.formats import FORMATS, FormatContext
from honer.data.formats.chat_template import eos_mismatch
from honer.data.formats.templates import ALPACA, CHATML, MISTRAL
from honer.data.tokenize import FormatError, TokenizerView

M = -100
BOS, EOS = 1, 2  # the tiny tokenizer's special-token ids (fixed order)


@pytest.fixture(scope="module")
def view(tokenizer) -> TokenizerView:
    return TokenizerView(tokenizer)


def ids(tokenizer, text: str, special: bool = False) -> list[int]:
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def run(fmt: str, row: dict, view: TokenizerView, **ctx) -> list:
    context_keys = ("train_on_inputs", "sequence_len", "chat_template")  # the rest: dataset keys
    ds_keys = {k: ctx.pop(k) for k in list(ctx) if k not in context_keys}
    ds = DatasetConfig(path="x.jsonl", type=fmt, **ds_keys)
    return FORMATS[fmt].tokenize_row(row, view, FormatContext(ds, **ctx))


def expect(tokenizer, parts: list[tuple[str, bool]], special: bool) -> tuple[list, list]:
    """Ids of the joined text; labels = ids where the part is trained. Asserts clean boundaries."""
    text = "".join(t for t, _ in parts)
    all_ids = ids(tokenizer, text, special)
    labels: list[int] = []
    done = 0
    consumed = ""
    for i, (t, trained) in enumerate(parts):
        consumed += t
        upto = (
            len(ids(tokenizer, consumed, special and True)) if i < len(parts) - 1 else len(all_ids)
        )
        assert all_ids[:upto] == ids(tokenizer, consumed, special)[:upto]
        labels += all_ids[done:upto] if trained else [M] * (upto - done)
        done = upto
    return all_ids, labels


ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\nAdd 2 and 3\n\n### Response:\n"
)
ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nAdd the numbers\n\n### Input:\n4 and 5\n\n### Response:\n"
)


def test_alpaca_without_input(tokenizer, view) -> None:
    [s] = run("alpaca", {"instruction": "Add 2 and 3", "output": "5"}, view)
    exp_ids, exp_labels = expect(tokenizer, [(ALPACA_NO_INPUT, False), ("5</s>", True)], True)
    assert s.input_ids == exp_ids and s.labels == exp_labels
    assert s.input_ids[0] == BOS and s.input_ids[-1] == EOS and s.labels[-1] == EOS
    assert tokenizer.decode([t for t in s.labels if t != M]) == "5</s>"


def test_alpaca_with_input(tokenizer, view) -> None:
    row = {"instruction": "Add the numbers", "input": "4 and 5", "output": "9"}
    [s] = run("alpaca", row, view)
    exp_ids, exp_labels = expect(tokenizer, [(ALPACA_INPUT, False), ("9</s>", True)], True)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_alpaca_train_on_inputs_and_field_mapping(tokenizer, view) -> None:
    row = {"q": "Add 2 and 3", "a": "5"}
    [s] = run("alpaca", row, view, field_instruction="q", field_output="a", train_on_inputs=True)
    assert s.input_ids == ids(tokenizer, ALPACA_NO_INPUT + "5</s>", True)
    # BOS comes from the tokenizer, not the text: masked (its label is never predicted anyway)
    assert s.labels == [M, *s.input_ids[1:]]


PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request."
)
PREAMBLE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request."
)
# Axolotl's `type: alpaca:<style>` prompts (its AlpacaPrompter styles), written out literally.
ALPACA_STYLES = {
    "chat": (
        f"SYSTEM: {PREAMBLE}\nUSER: Add 2 and 3\nASSISTANT:",
        f"SYSTEM: {PREAMBLE_INPUT}\nUSER: Add the numbers\n4 and 5\nASSISTANT:",
    ),
    "chatml": (
        f"<|im_start|>system\n{PREAMBLE}<|im_end|>\n<|im_start|>user\nAdd 2 and 3<|im_end|>\n"
        "<|im_start|>assistant\n",
        f"<|im_start|>system\n{PREAMBLE_INPUT}<|im_end|>\n<|im_start|>user\nAdd the numbers\n"
        "4 and 5<|im_end|>\n<|im_start|>assistant\n",
    ),
    "phi": (
        f"<|system|>\n{PREAMBLE}<|end|>\n<|user|>\nAdd 2 and 3<|end|>\n<|assistant|>\n",
        f"<|system|>\n{PREAMBLE_INPUT}<|end|>\n<|user|>\nAdd the numbers<|end|>4 and 5"
        "<|assistant|>",
    ),
}


@pytest.mark.parametrize("style", sorted(ALPACA_STYLES))
def test_alpaca_prompt_styles(tokenizer, view, style: str) -> None:
    no_input, with_input = ALPACA_STYLES[style]
    [s] = run("alpaca", {"instruction": "Add 2 and 3", "output": "5"}, view, prompt_style=style)
    exp_ids, exp_labels = expect(tokenizer, [(no_input, False), ("5</s>", True)], True)
    assert s.input_ids == exp_ids and s.labels == exp_labels
    row = {"instruction": "Add the numbers", "input": "4 and 5", "output": "9"}
    [s] = run("alpaca", row, view, prompt_style=style)
    exp_ids, exp_labels = expect(tokenizer, [(with_input, False), ("9</s>", True)], True)
    assert s.input_ids == exp_ids and s.labels == exp_labels
    # `system_prompt` replaces the preamble inside the style's system wrapper.
    [s] = run(
        "alpaca",
        {"instruction": "Add 2 and 3", "output": "5"},
        view,
        prompt_style=style,
        system_prompt="Be terse.",
    )
    assert tokenizer.decode(s.input_ids[1:]).startswith(no_input.split(PREAMBLE)[0] + "Be terse.")


def test_axolotl_alpaca_type_with_style_is_read() -> None:
    from honer.config.load import config_from_dict

    cfg = config_from_dict(
        {"base_model": "m", "datasets": [{"path": "d.jsonl", "type": "alpaca:phi"}]}
    )
    assert (cfg.datasets[0].type, cfg.datasets[0].prompt_style) == ("alpaca", "phi")


def test_alpaca_missing_column_is_named(view) -> None:
    with pytest.raises(FormatError, match=r"column `output` is missing \(row has: instruction\)"):
        run("alpaca", {"instruction": "x"}, view)


SHAREGPT_ROW = {
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
        {"from": "human", "value": "2+2?"},
        {"from": "gpt", "value": "4"},
    ]
}


def chatml_parts(system: bool = True) -> list[tuple[str, bool]]:
    parts = [("<|im_start|>system\nBe brief.<|im_end|>\n", False)] if system else []
    return parts + [
        ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False),
        ("Hello!<|im_end|>", True),
        ("\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", False),
        ("4<|im_end|>", True),
        ("\n", False),
    ]


def test_sharegpt_three_turns_with_system_trains_only_gpt_turns(tokenizer, view) -> None:
    [s] = run("sharegpt", SHAREGPT_ROW, view, chat_template=CHATML)
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels
    trained = tokenizer.decode([t for t in s.labels if t != M])
    assert trained == "Hello!<|im_end|>4<|im_end|>"


def test_sharegpt_conversation_alpaca_style(tokenizer, view) -> None:
    [s] = run("sharegpt", SHAREGPT_ROW, view, chat_template=ALPACA)
    parts = [
        ("Be brief.\n\n### Instruction:\nHi\n\n### Response:\n", False),
        ("Hello!</s>", True),
        ("\n\n### Instruction:\n2+2?\n\n### Response:\n", False),
        ("4</s>", True),
        ("\n\n", False),
    ]
    exp_ids, exp_labels = expect(tokenizer, parts, False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_template_that_merges_system_into_first_user_turn(tokenizer, view) -> None:
    [s] = run("sharegpt", SHAREGPT_ROW, view, chat_template=MISTRAL)
    parts = [
        ("<s>[INST] Be brief.\n\nHi [/INST]", False),
        (" Hello!</s>", True),
        ("[INST] 2+2? [/INST]", False),
        (" 4</s>", True),
    ]
    exp_ids, exp_labels = expect(tokenizer, parts, False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


DROPS_SYSTEM = (
    "{% for m in messages %}{% if m['role'] != 'system' %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_template_that_drops_the_system_turn(tokenizer, view) -> None:
    [s] = run("sharegpt", SHAREGPT_ROW, view, chat_template=DROPS_SYSTEM)
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(system=False), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


MESSAGES_ROW = {
    "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
}


def test_chat_template_roles_to_train_assistant(tokenizer, view) -> None:
    [s] = run(
        "chat_template", MESSAGES_ROW, view, chat_template=CHATML, roles_to_train=["assistant"]
    )
    rendered = tokenizer.apply_chat_template(MESSAGES_ROW["messages"], tokenize=False)
    assert s.input_ids == ids(tokenizer, rendered)  # tokens equal the whole rendered chat
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(system=False), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_chat_template_train_on_inputs_trains_every_token(tokenizer, view) -> None:
    [s] = run("chat_template", MESSAGES_ROW, view, chat_template=CHATML, train_on_inputs=True)
    assert s.labels == s.input_ids == ids(tokenizer, "".join(t for t, _ in chatml_parts(False)))


def test_chat_template_user_turns_trained_when_asked(tokenizer, view) -> None:
    [s] = run("chat_template", MESSAGES_ROW, view, chat_template=CHATML, roles_to_train=["user"])
    assert tokenizer.decode([t for t in s.labels if t != M]) == "Hi<|im_end|>2+2?<|im_end|>"


@pytest.mark.parametrize(
    ("mode", "trained"),
    [
        ("turn", "Hello!<|im_end|>4<|im_end|>"),
        ("last", "Hello!4<|im_end|>"),
        ("none", "Hello!4"),
        ("all", "<|im_end|>Hello!<|im_end|><|im_end|>4<|im_end|>"),
    ],
)
def test_train_on_eos(tokenizer, view, mode: str, trained: str) -> None:
    [s] = run("chat_template", MESSAGES_ROW, view, chat_template=CHATML, train_on_eos=mode)
    assert tokenizer.decode([t for t in s.labels if t != M]) == trained


def test_message_property_mappings_and_roles(tokenizer, view) -> None:
    row = {"chat": [{"who": "customer", "text": "Hi"}, {"who": "agent", "text": "Hello!"}]}
    [s] = run(
        "chat_template",
        row,
        view,
        chat_template=CHATML,
        field_messages="chat",
        message_property_mappings={"role": "who", "content": "text"},
        roles={"user": ["customer"], "assistant": ["agent"]},
    )
    assert tokenizer.decode([t for t in s.labels if t != M]) == "Hello!<|im_end|>"


def test_unknown_role_error_suggests_mapping(view) -> None:
    row = {"messages": [{"role": "customer", "content": "Hi"}]}
    with pytest.raises(
        FormatError, match=r"unknown role `customer`.*roles: \{assistant: \[customer\]\}"
    ):
        run("chat_template", row, view, chat_template=CHATML)


def test_conversation_without_trained_turn_fails_loudly(view) -> None:
    row = {"messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(FormatError, match="would train nothing"):
        run("chat_template", row, view, chat_template=CHATML)


def test_eos_mismatch_warning_names_the_fix(view) -> None:
    warning = eos_mismatch(view, CHATML)
    assert warning is not None
    assert "ends assistant turns with `<|im_end|>`" in warning and "EOS is `</s>`" in warning
    assert 'special_tokens: {eos_token: "<|im_end|>"}' in warning
    assert eos_mismatch(view, ALPACA) is None  # alpaca style ends turns with EOS


def test_eos_warning_for_template_without_end_token(view) -> None:
    bare = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    assert "adds no end-of-turn token" in eos_mismatch(view, bare)


def test_completion_chunks_long_text(tokenizer, view) -> None:
    text = "one two three four five six seven eight nine ten"
    full = ids(tokenizer, text, True) + [EOS]
    samples = run("completion", {"text": text}, view, sequence_len=4)
    expected = [full[i : i + 4] for i in range(0, len(full), 4) if len(full[i : i + 4]) > 1]
    assert [s.input_ids for s in samples] == expected
    assert all(s.labels == s.input_ids for s in samples)
    assert samples[0].input_ids[0] == BOS
    assert len(samples) == len(full) // 4 + (len(full) % 4 > 1)


def test_completion_custom_field(tokenizer, view) -> None:
    [s] = run("completion", {"body": "hello world"}, view, field="body", sequence_len=64)
    assert s.input_ids == [*ids(tokenizer, "hello world", True), EOS]


def test_input_output_segments(tokenizer, view) -> None:
    row = {
        "segments": [
            {"text": "<s>Q: 2+2?\n", "label": False},
            {"text": "A: 4</s>", "label": True},
            {"text": "\nignored tail", "label": False},
        ]
    }
    [s] = run("input_output", row, view)
    parts = [("<s>Q: 2+2?\n", False), ("A: 4</s>", True), ("\nignored tail", False)]
    exp_ids, exp_labels = expect(tokenizer, parts, False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_input_output_rejects_bad_label(view) -> None:
    with pytest.raises(FormatError, match=r"segments\[0\].label must be true or false"):
        run("input_output", {"segments": [{"text": "x", "label": "yes"}]}, view)


def test_inference_prompt_follows_the_alpaca_prompt_style(tokenizer) -> None:
    from honer.config.load import config_from_dict
    from honer.infer.prompt import PromptFormatter

    cfg = config_from_dict(
        {"base_model": "m", "datasets": [{"path": "d.jsonl", "type": "alpaca:chat"}]}
    )
    fmt = PromptFormatter(cfg, tokenizer)
    no_input, with_input = ALPACA_STYLES["chat"]
    assert fmt.text([{"role": "user", "content": "Add 2 and 3"}]) == no_input
    assert tokenizer.decode(fmt.alpaca_ids("Add the numbers", "4 and 5")[1:]) == with_input
    turns = [
        {"role": "user", "content": "Add 2 and 3"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "And 4?"},
    ]
    assert fmt.text(turns) == no_input + "5</s>\nUSER: And 4?\nASSISTANT:"
