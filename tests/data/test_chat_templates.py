"""Axolotl's named chat templates: shipped, named as the schema names them, rendered as each model
family documents its format.

Every expected string is written out here from the family's published format (special tokens
passed as the family's own: the tiny tokenizer's `<s>` is not Llama 3's `<|begin_of_text|>`), so
a change in a shipped template fails a test.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from honer.config.schema import AXOLOTL_CHAT_TEMPLATES, CHAT_TEMPLATE_NAMES
from honer.data.formats.templates import (
    BUILTIN_TEMPLATES,
    CHATML,
    LLAMA3,
    named_template,
    resolve_template,
    shipped_template_names,
)
from honer.data.tokenize import FormatError, TokenizerView
from honer.errors import DataError
from tests.data.test_formats import M, expect, ids, run

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
]
LLAMA_TOKENS = {"bos_token": "<|begin_of_text|>"}

# (name, the family's special tokens, whole chat, prompt for the last answer)
REFERENCES = [
    (
        "llama3",
        LLAMA_TOKENS,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    (
        "llama4",
        LLAMA_TOKENS,
        "<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
        "<|header_start|>user<|header_end|>\n\nHi<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nHello!<|eot|>"
        "<|header_start|>user<|header_end|>\n\n2+2?<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n4<|eot|>",
        "<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
        "<|header_start|>user<|header_end|>\n\nHi<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nHello!<|eot|>"
        "<|header_start|>user<|header_end|>\n\n2+2?<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n",
    ),
    (  # Gemma has no system role: the system text opens the first user turn.
        "gemma3",
        {"bos_token": "<bos>"},
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n4<end_of_turn>\n",
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n",
    ),
    (  # The answer after the last user turn carries an (empty) think block; earlier ones do not.
        "qwen3",
        {},
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n",
    ),
    (
        "qwen_25",
        {},
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    (
        "chatml",
        {},
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    (  # Phi-3: the assistant tag follows each user turn.
        "phi_3",
        {"bos_token": "<s>"},
        "<s><|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
        "<|user|>\n2+2?<|end|>\n<|assistant|>\n4<|end|>\n",
        "<s><|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
        "<|user|>\n2+2?<|end|>\n<|assistant|>\n",
    ),
    (  # Mistral Small 3 (V7-Tekken): no spaces around [INST]; system prompt in its own block.
        "mistral_v7_tekken",
        {"bos_token": "<s>", "eos_token": "</s>"},
        "<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]Hello!</s>"
        "[INST]2+2?[/INST]4</s>",
        "<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]Hello!</s>[INST]2+2?[/INST]",
    ),
]


@pytest.fixture(scope="module")
def view(tokenizer) -> TokenizerView:
    return TokenizerView(tokenizer)


def test_shipped_templates_are_the_schema_names() -> None:
    """One list of names: the files shipped and the schema's tuple (which validation reads
    without touching the package data) must agree."""
    assert set(shipped_template_names()) == set(AXOLOTL_CHAT_TEMPLATES)


def test_every_schema_name_resolves(tokenizer) -> None:
    for name in CHAT_TEMPLATE_NAMES:
        if name in ("tokenizer_default", "jinja"):
            continue
        text = resolve_template(name, None, None)
        assert "messages" in text, name


@pytest.mark.parametrize(("name", "tokens", "whole", "prompt"), REFERENCES)
def test_named_template_renders_the_family_format(view, name, tokens, whole, prompt) -> None:
    template = resolve_template(name, None, None)
    assert view.render_chat(CONVERSATION, template, False, tokens) == whole
    assert view.render_chat(CONVERSATION[:4], template, True, tokens) == prompt


def test_templates_with_a_default_system_prompt_write_it_when_there_is_none(view) -> None:
    chat = CONVERSATION[1:3]
    assert view.render_chat(chat, named_template("qwen_25"), False) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        "Hello!<|im_end|>\n"
    )


def test_template_variables_reach_the_template(view) -> None:
    """qwen3 reads `enable_thinking`; llama3_2_vision reads `date_string` (else today's date,
    through transformers' `strftime_now`)."""
    qwen3 = named_template("qwen3")
    assert view.render_chat(CONVERSATION[1:2], qwen3, True, {"enable_thinking": False}) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    vision = named_template("llama3_2_vision")
    fixed = view.render_chat(CONVERSATION[1:2], vision, False, {"date_string": "26 Jul 2024"})
    assert fixed == (
        "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "Hi<|eot_id|>"
    )
    today = datetime.datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {today}\n" in view.render_chat(CONVERSATION[1:2], vision, False)


def test_a_template_refusing_system_messages_names_the_reason(view, tokenizer) -> None:
    row = {"messages": CONVERSATION}
    gemma = named_template("gemma")
    with pytest.raises(FormatError, match="cannot render this conversation: System role not"):
        run("chat_template", row, view, chat_template=gemma)
    [s] = run("chat_template", {"messages": CONVERSATION[1:]}, view, chat_template=gemma)
    assert tokenizer.decode([t for t in s.labels if t != M]) == (
        "Hello!<end_of_turn>4<end_of_turn>"
    )


@pytest.mark.parametrize("name", shipped_template_names())
def test_every_shipped_template_renders_and_trains_the_answers(view, tokenizer, name) -> None:
    chat = CONVERSATION if name != "gemma" else CONVERSATION[1:]
    [s] = run("chat_template", {"messages": chat}, view, chat_template=named_template(name))
    trained = tokenizer.decode([t for t in s.labels if t != M])
    assert "Hello!" in trained and "4" in trained and "Hi" not in trained


@pytest.mark.parametrize(
    "chat",
    [CONVERSATION, CONVERSATION[1:], CONVERSATION[:2], CONVERSATION[1:4]],
    ids=["system", "no-system", "one-turn", "ends-with-user"],
)
def test_axolotl_chatml_and_llama3_render_as_the_old_builtins(view, chat) -> None:
    """`chat_template: chatml|llama3` now name Axolotl's files; for text messages they render
    what honer's built-in texts rendered, so configs using them keep their tokens."""
    for old, name in ((CHATML, "chatml"), (LLAMA3, "llama3")):
        for gen in (False, True):
            assert view.render_chat(chat, named_template(name), gen) == view.render_chat(
                chat, old, gen
            )


def test_axolotl_alpaca_is_not_the_fastchat_alpaca_of_sharegpt(view, tokenizer) -> None:
    """`chat_template: alpaca` is Axolotl's (no preamble, BOS, turns joined by a blank line);
    sharegpt's `conversation: alpaca` keeps FastChat's (see test_formats)."""
    [s] = run(
        "chat_template",
        {"messages": CONVERSATION},
        view,
        chat_template=resolve_template("alpaca", None, None),
    )
    parts = [
        ("<s>Be brief.\n\n### Instruction:\nHi\n\n### Response:\n", False),
        ("Hello!</s>", True),
        ("\n\n### Instruction:\n2+2?\n\n### Response:\n", False),
        ("4</s>", True),
    ]
    exp_ids, exp_labels = expect(tokenizer, parts, False)
    assert s.input_ids == exp_ids and s.labels == exp_labels
    assert resolve_template("alpaca", None, None) != BUILTIN_TEMPLATES["alpaca"]


def test_tokenizer_default_fallback(tokenizer) -> None:
    own = tokenizer.chat_template
    assert resolve_template("tokenizer_default_fallback_llama3", None, own) == own
    assert resolve_template("tokenizer_default_fallback_llama3", None, None) == named_template(
        "llama3"
    )
    with pytest.raises(DataError, match="no template named `nope`"):
        resolve_template("tokenizer_default_fallback_nope", None, None)
    with pytest.raises(DataError, match="tokenizer has no chat template"):
        resolve_template("tokenizer_default", None, None)


def test_chat_template_jinja_may_name_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text("{{ messages[0]['content'] }}")
    assert resolve_template("jinja", str(path), None) == "{{ messages[0]['content'] }}"
    assert resolve_template("jinja", "{{ x }}", None) == "{{ x }}"
    with pytest.raises(DataError, match="neither a Jinja template nor a file"):
        resolve_template("jinja", str(tmp_path / "missing.jinja"), None)


def test_qwen3_think_block_before_the_last_answer_is_prompt(view, tokenizer) -> None:
    """As in Axolotl: the empty think block the template writes before the last answer is
    masked; earlier answers (rendered without one) train from their first character."""
    qwen3 = named_template("qwen3")
    [s] = run("chat_template", {"messages": CONVERSATION}, view, chat_template=qwen3)
    text = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n"
    )
    assert s.input_ids == ids(tokenizer, text)
    pieces = tokenizer.convert_ids_to_tokens(s.input_ids)
    trained = [p for p, label in zip(pieces, s.labels, strict=True) if label != M]
    assert trained == ["H", "ello", "!", "<|im_end|>", "4", "<|im_end|>"]
    # the tokens before "4": ...'>', '\n', '\n' of "</think>\n\n", all masked
    four = len(s.input_ids) - 3
    assert pieces[four - 3 : four + 1] == [">", "Ċ", "Ċ", "4"]
    assert s.labels[four - 3 : four] == [M, M, M]


def test_template_ending_only_the_last_turn(view, tokenizer) -> None:
    """metharme writes the EOS after the last message only: earlier answers end where the next
    turn's tag starts, and that tag is not trained (as in Axolotl)."""
    metharme = named_template("metharme")
    [s] = run("chat_template", {"messages": CONVERSATION}, view, chat_template=metharme)
    parts = [
        ("<s><|system|>Be brief.<|user|>Hi<|model|>", False),
        ("Hello!", True),
        ("<|user|>2+2?<|model|>", False),
        ("4</s>", True),
    ]
    exp_ids, exp_labels = expect(tokenizer, parts, False)
    assert s.input_ids == exp_ids and s.labels == exp_labels


@pytest.fixture(scope="module")
def cohere_tokenizer(tokenizer):
    """The tiny tokenizer with Command A's turn tokens, EOS `<|END_OF_TURN_TOKEN|>`."""
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    names = ["START_OF_TURN", "USER", "CHATBOT", "SYSTEM", "START_RESPONSE", "END_RESPONSE"]
    tok.add_special_tokens(
        {
            "eos_token": "<|END_OF_TURN_TOKEN|>",
            "additional_special_tokens": [
                f"<|{n}_TOKEN|>" if "RESPONSE" not in n else f"<|{n}|>" for n in names
            ],
        }
    )
    return tok


def test_template_that_always_appends_a_generation_prompt(cohere_tokenizer) -> None:
    """command_a ends every render with the next assistant header: a turn ends at its EOS, and
    neither the next header nor that trailing prompt is trained."""
    from honer.data.formats.chat_template import eos_mismatch

    tok = cohere_tokenizer
    view = TokenizerView(tok)
    template = named_template("command_a")
    [s] = run("chat_template", {"messages": CONVERSATION[1:]}, view, chat_template=template)
    trained = [tok.decode([t]) for t in s.labels if t != M]
    end = ["<|END_RESPONSE|>", "<|END_OF_TURN_TOKEN|>"]
    assert trained == ["H", "ello", "!", *end, "4", *end]
    assert tok.decode(s.input_ids).endswith("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")
    assert eos_mismatch(view, template) is None  # the turn's marker ends with the EOS
