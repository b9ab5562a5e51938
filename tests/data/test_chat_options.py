"""Chat options Axolotl configs use: `eot_tokens`/`train_on_eot`, `default_system_message`, the
`field_system` column, `chat_template_kwargs` (training and inference). Exact ids and labels.

The tiny tokenizer's EOS is `</s>` (id 2); its ChatML end-of-turn `<|im_end|>` (id 5) is another
token, which is what lets EOS and end-of-turn rules be told apart.
"""

from __future__ import annotations

import pytest

from honer.config import config_from_dict
from honer.data.formats import FORMATS
from honer.data.formats.context import format_context
from honer.data.formats.templates import CHATML, MISTRAL
from honer.data.tokenize import TokenizerView
from honer.errors import DataError
from tests.data.test_formats import (
    MESSAGES_ROW,
    SHAREGPT_ROW,
    M,
    chatml_parts,
    expect,
    ids,
)

IM_END, EOS = 5, 2


@pytest.fixture(scope="module")
def view(tokenizer) -> TokenizerView:
    return TokenizerView(tokenizer)


def cfg_for(entry: dict | None = None, **top):
    """A config with one chat_template entry (ChatML unless `chat_template` says otherwise)."""
    raw = {
        "base_model": "m",
        "chat_template": "chatml",
        "datasets": [{"path": "x.jsonl", "type": "chat_template", **(entry or {})}],
        **top,
    }
    return config_from_dict(raw)


def tokenize(row: dict, tokenizer, entry: dict | None = None, **top):
    cfg = cfg_for(entry, **top)
    ds = cfg.datasets[0]
    ctx = format_context(cfg, ds, tokenizer)
    [sample] = FORMATS[ds.type].tokenize_row(row, TokenizerView(tokenizer), ctx)
    return sample


def trained_text(tokenizer, sample) -> str:
    return tokenizer.decode([t for t in sample.labels if t != M])


# --- eot_tokens / train_on_eot ---------------------------------------------------------------


def test_eot_tokens_with_default_modes_train_what_the_template_marker_trained(tokenizer) -> None:
    s = tokenize(MESSAGES_ROW, tokenizer, eot_tokens=["<|im_end|>"])
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(system=False), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def _eot_parts(first_eot: bool, last_eot: bool, user_eot: bool = False) -> list:
    return [
        ("<|im_start|>user\nHi", False),
        ("<|im_end|>", user_eot),
        ("\n<|im_start|>assistant\n", False),
        ("Hello!", True),
        ("<|im_end|>", first_eot),
        ("\n<|im_start|>user\n2+2?", False),
        ("<|im_end|>", user_eot),
        ("\n<|im_start|>assistant\n", False),
        ("4", True),
        ("<|im_end|>", last_eot),
        ("\n", False),
    ]


@pytest.mark.parametrize(
    ("train_on_eot", "marks"),
    [
        ("turn", (True, True, False)),
        ("last", (False, True, False)),
        ("none", (False, False, False)),
        ("all", (True, True, True)),  # every turn's end, the user turns' too (Axolotl)
    ],
)
def test_train_on_eot_modes(tokenizer, train_on_eot: str, marks: tuple) -> None:
    entry = {"train_on_eot": train_on_eot}
    s = tokenize(MESSAGES_ROW, tokenizer, entry, eot_tokens=["<|im_end|>"])
    exp_ids, exp_labels = expect(tokenizer, _eot_parts(*marks), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_train_on_eot_defaults_to_train_on_eos(tokenizer) -> None:
    s = tokenize(MESSAGES_ROW, tokenizer, {"train_on_eos": "last"}, eot_tokens=["<|im_end|>"])
    exp_ids, exp_labels = expect(tokenizer, _eot_parts(False, True), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_empty_eot_tokens_leave_only_the_eos_rule(tokenizer) -> None:
    """`eot_tokens: []`: no end-of-turn tokens; ChatML turns end with `<|im_end|>`, not the
    EOS `</s>`, so only the contents train (Axolotl's meaning of an empty list)."""
    s = tokenize(MESSAGES_ROW, tokenizer, eot_tokens=[])
    exp_ids, exp_labels = expect(tokenizer, _eot_parts(False, False), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


# ChatML whose assistant turns end with `<|im_end|>` then the EOS, to tell the two rules apart.
CHATML_WITH_EOS = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.mark.parametrize(
    ("eos_mode", "eot_mode", "trained"),
    [
        ("none", "turn", "Hello!<|im_end|>4<|im_end|>"),
        ("turn", "none", "Hello!</s>4</s>"),
        ("turn", "turn", "Hello!<|im_end|></s>4<|im_end|></s>"),
        ("last", "turn", "Hello!<|im_end|>4<|im_end|></s>"),
    ],
)
def test_eos_and_eot_are_marked_by_their_own_options(tokenizer, eos_mode, eot_mode, trained):
    entry = {"train_on_eos": eos_mode, "train_on_eot": eot_mode}
    top = {"chat_template": "jinja", "chat_template_jinja": CHATML_WITH_EOS}
    s = tokenize(MESSAGES_ROW, tokenizer, entry, eot_tokens=["<|im_end|>"], **top)
    assert s.input_ids == ids(
        tokenizer,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|></s>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|></s>\n",
    )
    assert trained_text(tokenizer, s) == trained


@pytest.mark.parametrize(("padding", "found"), [(" a b", True), (" a b c d", False)])
def test_an_eot_token_counts_within_three_tokens_of_the_content(tokenizer, padding, found):
    """Axolotl looks for the end-of-turn token at most 3 tokens after the content's end."""
    template = CHATML.replace(
        "message['content'] + '<|im_end|>'", f"message['content'] + '{padding}<|im_end|>'"
    )
    top = {"chat_template": "jinja", "chat_template_jinja": template}
    row = {"messages": MESSAGES_ROW["messages"][:2]}
    s = tokenize(row, tokenizer, eot_tokens=["<|im_end|>"], **top)
    pad_tokens = len(ids(tokenizer, padding))
    assert pad_tokens == (2 if found else 4)
    end = s.input_ids.index(IM_END, s.labels.index(next(t for t in s.labels if t != M)))
    assert s.labels[end] == (IM_END if found else M)
    assert trained_text(tokenizer, s) == ("Hello!<|im_end|>" if found else "Hello!")


def test_eot_token_missing_from_the_template_is_ignored_with_a_warning(tokenizer) -> None:
    cfg = cfg_for(eot_tokens=["<|im_end|>", "<|eot_id|>"])
    ctx = format_context(cfg, cfg.datasets[0], tokenizer)
    assert ctx.eot_token_ids == (IM_END,)
    assert ctx.warnings == (
        "eot_tokens: `<|eot_id|>` does not occur in the chat template's text, so it is ignored "
        "(as Axolotl ignores it); list the tokens the template writes.",
    )


def test_eot_token_of_several_tokens_is_an_error_naming_it(tokenizer) -> None:
    cfg = cfg_for(chat_template="mistral", eot_tokens=["[/INST]"])
    with pytest.raises(DataError, match=r"eot_tokens: `\[/INST\]` is 4 tokens in this tokenizer"):
        format_context(cfg, cfg.datasets[0], tokenizer)
    assert "[/INST]" in MISTRAL


def test_eos_in_eot_tokens_needs_agreeing_options(tokenizer) -> None:
    template = CHATML_WITH_EOS.replace("{{ eos_token }}", "{{ '</s>' }}")
    top = {"chat_template": "jinja", "chat_template_jinja": template}
    entry = {"train_on_eos": "turn", "train_on_eot": "last"}
    cfg = cfg_for(entry, eot_tokens=["<|im_end|>", "</s>"], **top)
    with pytest.raises(DataError, match=r"holds the EOS `</s>`, but train_on_eos \(turn\) and"):
        format_context(cfg, cfg.datasets[0], tokenizer)
    # The EOS alone is Axolotl's default list: taken as it is, no conflict check.
    alone = cfg_for(entry, eot_tokens=["</s>"], **top)
    assert format_context(alone, alone.datasets[0], tokenizer).eot_token_ids == (EOS,)


def test_without_eot_tokens_train_on_eot_also_marks_the_template_marker(tokenizer) -> None:
    """Unset `eot_tokens` is Axolotl's `[eos]`: one marker under both options, trained when
    either says so. honer's marker is the template's (`<|im_end|>`)."""
    entry = {"train_on_eos": "none", "train_on_eot": "last"}
    s = tokenize(MESSAGES_ROW, tokenizer, entry)
    assert trained_text(tokenizer, s) == "Hello!4<|im_end|>"


# --- default_system_message, field_system, drop_system_message --------------------------------


def test_default_system_message_opens_a_conversation_without_one(tokenizer) -> None:
    s = tokenize(MESSAGES_ROW, tokenizer, default_system_message="Be brief.")
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(system=True), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_default_system_message_leaves_a_conversation_with_one(tokenizer) -> None:
    row = {"messages": [{"role": "system", "content": "Be brief."}, *MESSAGES_ROW["messages"]]}
    s = tokenize(row, tokenizer, default_system_message="Answer in French.")
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(system=True), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_drop_system_message_with_default_replaces_every_system_message(tokenizer) -> None:
    entry = {"type": "sharegpt", "drop_system_message": True}
    s = tokenize(SHAREGPT_ROW, tokenizer, entry, default_system_message="Answer in French.")
    parts = [("<|im_start|>system\nAnswer in French.<|im_end|>\n", False)]
    exp_ids, exp_labels = expect(tokenizer, parts + chatml_parts(system=False), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_the_system_column_is_the_system_message(tokenizer) -> None:
    """Axolotl's `field_system` (default `system`): used when the messages hold none; it wins
    over `default_system_message`, and `drop_system_message` drops it."""
    with_system = expect(tokenizer, chatml_parts(system=True), False)
    without_system = expect(tokenizer, chatml_parts(system=False), False)
    row = {**MESSAGES_ROW, "system": "Be brief."}
    s = tokenize(row, tokenizer, default_system_message="Answer in French.")
    assert (s.input_ids, s.labels) == with_system
    s = tokenize(row, tokenizer, {"drop_system_message": True})
    assert (s.input_ids, s.labels) == without_system
    own = {"messages": [{"role": "system", "content": "Be brief."}, *MESSAGES_ROW["messages"]]}
    s = tokenize({**own, "system": "ignored"}, tokenizer)
    assert (s.input_ids, s.labels) == with_system
    s = tokenize(
        {**MESSAGES_ROW, "prompt_system": "Be brief."}, tokenizer, {"field_system": "prompt_system"}
    )
    assert (s.input_ids, s.labels) == with_system


# SmolLM2's template writes its own default system prompt into conversations without one.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_default_system_message_replaces_a_template_default(tokenizer) -> None:
    top = {"chat_template": "jinja", "chat_template_jinja": SMOLLM2_TEMPLATE}
    s = tokenize(MESSAGES_ROW, tokenizer, default_system_message="Be brief.", **top)
    exp_ids, exp_labels = expect(tokenizer, chatml_parts(system=True), False)
    assert s.input_ids == exp_ids and s.labels == exp_labels
    without = tokenize(MESSAGES_ROW, tokenizer, **top)
    assert "SmolLM" in tokenizer.decode(without.input_ids)


# --- chat_template_kwargs ----------------------------------------------------------------------

GREETING_TEMPLATE = CHATML.replace(
    "{% for message in messages %}",
    "{% if greeting is defined %}{{ greeting + '\\n' }}{% endif %}{% for message in messages %}",
)


def test_chat_template_kwargs_reach_every_render(tokenizer) -> None:
    top = {"chat_template": "jinja", "chat_template_jinja": GREETING_TEMPLATE}
    s = tokenize(MESSAGES_ROW, tokenizer, chat_template_kwargs={"greeting": "Hello there"}, **top)
    parts = [("Hello there\n", False), *chatml_parts(system=False)]
    exp_ids, exp_labels = expect(tokenizer, parts, False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


def test_chat_template_kwargs_enable_thinking_for_qwen3(tokenizer) -> None:
    """With `enable_thinking: false` the generation prompt already holds the empty think block,
    so the prompt of every answer matches what inference renders."""
    kwargs = {"enable_thinking": False}
    s = tokenize(MESSAGES_ROW, tokenizer, chat_template="qwen3", chat_template_kwargs=kwargs)
    pieces = tokenizer.convert_ids_to_tokens(s.input_ids)
    assert [p for p, lab in zip(pieces, s.labels, strict=True) if lab != M] == [
        "H", "ello", "!", "<|im_end|>", "4", "<|im_end|>",
    ]  # fmt: skip


def test_reserved_chat_template_kwargs_are_refused(tokenizer) -> None:
    cfg = cfg_for(chat_template_kwargs={"tokenize": True, "enable_thinking": False})
    with pytest.raises(DataError, match="chat_template_kwargs: tokenize is set by honer itself"):
        format_context(cfg, cfg.datasets[0], tokenizer)


# --- inference renders as training did -----------------------------------------------------------


def test_inference_prompt_uses_kwargs_default_system_and_eot_tokens(tokenizer) -> None:
    from honer.infer.prompt import PromptFormatter

    cfg = cfg_for(
        chat_template="qwen3",
        chat_template_kwargs={"enable_thinking": False},
        default_system_message="Be brief.",
        eot_tokens=["<|im_end|>"],
    )
    fmt = PromptFormatter(cfg, tokenizer)
    assert fmt.text([{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert fmt.stop_ids == {EOS, IM_END}
    # The prompt is the training sample's text before its first trained token. (Compared as
    # text: the tiny tokenizer merges a trailing "\n\n" it splits before "4".)
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "4"}]}
    [sample] = FORMATS["chat_template"].tokenize_row(row, fmt.view, fmt.context)
    first = next(i for i, lab in enumerate(sample.labels) if lab != M)
    prompt = fmt.text(row["messages"][:1])
    assert tokenizer.decode(sample.input_ids[:first]) == prompt
    # --system still wins over the default.
    other = PromptFormatter(cfg, tokenizer, system="Answer in French.")
    assert other.text([{"role": "user", "content": "Hi"}]).startswith(
        "<|im_start|>system\nAnswer in French.<|im_end|>"
    )
