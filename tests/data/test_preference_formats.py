"""Preference pairs: each Axolotl DPO type's exact text, and ids equal to TRL's tokenization.

The expected strings are written out by reading Axolotl's strategies (axolotl/
prompt_strategies/dpo/chat_template.py, chatml.py, llama3.py), not by calling honer. The
expected ids are the tiny tokenizer's ids of those literal texts, split as TRL's
`DPOTrainer._prepare_dataset` splits them (checked against TRL's own code below): the prompt's
ids (with the tokenizer's BOS), then each answer + `</s>`.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from honer.config.load import config_from_dict
from honer.config.schema import PREFERENCE_TYPES
from honer.data.formats.context import format_context
from honer.data.preference import preference_texts, tokenize_pair, tokenize_row
from honer.data.tokenize import FormatError, TokenizerView

BOS, EOS = 1, 2

CONVO_5 = [{"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "5"}]
CONVO_ZEBRA = [
    {"role": "user", "content": "Add 2 and 3"},
    {"role": "assistant", "content": "zebra"},
]

# The answers' tokens in the tiny tokenizer. ChatML markers are special tokens; the Llama 3
# markers are not in its vocabulary, so they are spelled out byte by byte.
EOT = ["<", "|", "e", "o", "t", "_", "i", "d", "|", ">"]
CHATML_5 = ["5", "<|im_end|>", "</s>"]
CHATML_ZEBRA = ["z", "e", "b", "r", "a", "<|im_end|>", "</s>"]
# The Llama 3 prompt alone ends in the token "ĊĊ" ("\n\n"); followed by the answer, the same
# text becomes "Ċ", "Ċ". TRL cuts where the ids first differ, so the prompt loses its last token
# and both answers start with the two newlines.
LLAMA3_5 = ["Ċ", "Ċ", "5", *EOT, "</s>"]
LLAMA3_ZEBRA = ["Ċ", "Ċ", "z", "e", "b", "r", "a", *EOT, "</s>"]


# type → (row, prompt, chosen, rejected, prompt tokens TRL gives to the answers, chosen tokens,
# rejected tokens)
CASES: dict[str, tuple[dict[str, Any], str, str, str, int, list[str], list[str]]] = {
    # chat_template.*: the tiny tokenizer's own ChatML template (`tokenizer_default`).
    "chat_template.default": (
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Add 2 and 3"},
            ],
            "chosen": "5",  # text: an assistant message
            "rejected": CONVO_ZEBRA,  # a conversation: its last message
        },
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",  # Axolotl's .rstrip() removes the template's final "\n"
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    # ORPO's `chat_template.argilla` (Axolotl's orpo strategy): argilla_chat's conversations
    # after the row's `system` turn.
    "chat_template.argilla": (
        {
            "system": "Be brief.",
            "prompt": "Add 2 and 3",
            "chosen": CONVO_5,
            "rejected": CONVO_ZEBRA,
        },
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    "chat_template.argilla_chat": (
        {"chosen": CONVO_5, "rejected": CONVO_ZEBRA},
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    # chatml.*: literal markers.
    "chatml.default": (
        {
            "question": "Add 2 and 3",
            "system": "Be brief.",
            "chosen_response": "5",
            "rejected_response": "zebra",
        },
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    "chatml.argilla_chat": (
        {"chosen": CONVO_5, "rejected": CONVO_ZEBRA},
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    "chatml.icr": (
        {"input": "Add 2 and 3", "chosen": "5", "rejected": "zebra"},
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    "chatml.intel": (
        {"system": "Be brief.", "question": "Add 2 and 3", "chosen": "5", "rejected": "zebra"},
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    "chatml.prompt_pairs": (
        {"prompt": "Add 2 and 3", "chosen": "5", "rejected": "zebra", "system": ""},
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",  # "" → no system
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    "chatml.ultra": (
        {"prompt": "Add 2 and 3", "chosen": CONVO_5, "rejected": CONVO_ZEBRA},
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
        0,
        CHATML_5,
        CHATML_ZEBRA,
    ),
    # llama3.*: literal markers, no <|begin_of_text|> (the tokenizer adds its BOS).
    "llama3.default": (
        {"instruction": "Add 2 and 3", "chosen": "5", "rejected_response": "zebra"},
        "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
        1,
        LLAMA3_5,
        LLAMA3_ZEBRA,
    ),
    "llama3.argilla_chat": (
        {"chosen": CONVO_5, "rejected": CONVO_ZEBRA},
        "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
        1,
        LLAMA3_5,
        LLAMA3_ZEBRA,
    ),
    "llama3.icr": (
        {"system": "Be brief.", "input": "Add 2 and 3", "chosen": "5", "rejected": "zebra"},
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
        1,
        LLAMA3_5,
        LLAMA3_ZEBRA,
    ),
    "llama3.intel": (
        {"question": "Add 2 and 3", "chosen": "5", "rejected": "zebra", "system": None},
        "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
        1,
        LLAMA3_5,
        LLAMA3_ZEBRA,
    ),
    "llama3.prompt_pairs": (
        {"system": "Be brief.", "prompt": "Add 2 and 3", "chosen": "5", "rejected": "zebra"},
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
        1,
        LLAMA3_5,
        LLAMA3_ZEBRA,
    ),
    "llama3.ultra": (
        {
            "system": "Be brief.",
            "prompt": "Add 2 and 3",
            "chosen": CONVO_5,
            "rejected": CONVO_ZEBRA,
        },
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
        1,
        LLAMA3_5,
        LLAMA3_ZEBRA,
    ),
}


def _context(tiny_model_dir, tokenizer, ds_type: str, top: dict | None = None, **keys):
    cfg = config_from_dict(
        {
            "base_model": str(tiny_model_dir),
            "rl": "dpo",
            "datasets": [{"path": "x.jsonl", "type": ds_type, **keys}],
            **(top or {}),
        }
    )
    ds = cfg.datasets[0]
    return ds, format_context(cfg, ds, tokenizer)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text=text)["input_ids"]


def _tokens(tokenizer, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


def test_every_preference_type_has_a_case() -> None:
    assert sorted(CASES) == sorted(PREFERENCE_TYPES)


@pytest.mark.parametrize("ds_type", sorted(CASES))
def test_preference_type_text_and_ids(ds_type, tiny_model_dir, tokenizer) -> None:
    row, prompt, chosen, rejected, moved, chosen_tokens, rejected_tokens = CASES[ds_type]
    ds, ctx = _context(tiny_model_dir, tokenizer, ds_type)
    view = TokenizerView(tokenizer)
    assert preference_texts(row, ds, ctx, view) == (prompt, chosen, rejected)

    pair = tokenize_row(row, ds, ctx, view, tokenizer)
    prompt_ids = _ids(tokenizer, prompt)
    assert prompt_ids[0] == BOS
    assert pair["prompt_ids"] == prompt_ids[: len(prompt_ids) - moved]
    assert _tokens(tokenizer, pair["chosen_ids"]) == chosen_tokens
    assert _tokens(tokenizer, pair["rejected_ids"]) == rejected_tokens
    # Prompt + answer ids are the literal text's ids, EOS appended.
    assert pair["prompt_ids"] + pair["chosen_ids"] == _ids(tokenizer, prompt + chosen + "</s>")
    assert pair["prompt_ids"] + pair["rejected_ids"] == _ids(tokenizer, prompt + rejected + "</s>")
    assert pair["chosen_ids"][-1] == EOS and pair["rejected_ids"][-1] == EOS


def test_chat_template_text_is_apply_chat_template(tiny_model_dir, tokenizer) -> None:
    """What Axolotl calls: apply_chat_template(..., tokenize=False) on the prompt, and on a dummy
    user turn + the answer, cut from the answer's content on and right-stripped."""
    row, *_ = CASES["chat_template.default"]
    ds, ctx = _context(tiny_model_dir, tokenizer, "chat_template.default")
    texts = preference_texts(row, ds, ctx, TokenizerView(tokenizer))
    prompt = tokenizer.apply_chat_template(
        row["messages"], add_generation_prompt=True, tokenize=False
    )
    dummy = {"role": "user", "content": "[[dummy_message]]"}
    answer = tokenizer.apply_chat_template(
        [dummy, {"role": "assistant", "content": "5"}], add_generation_prompt=False, tokenize=False
    )
    assert (
        answer
        == "<|im_start|>user\n[[dummy_message]]<|im_end|>\n<|im_start|>assistant\n5<|im_end|>\n"
    )
    assert texts[:2] == (prompt, answer[answer.find("5") :].rstrip())


def test_named_template_and_its_bos(tiny_model_dir, tokenizer) -> None:
    """`chat_template: llama3` writes `bos_token` itself, and TRL's tokenization adds the
    tokenizer's BOS again: the prompt starts with two BOS, as in Axolotl + TRL."""
    row, *_ = CASES["chat_template.argilla_chat"]
    ds, ctx = _context(
        tiny_model_dir, tokenizer, "chat_template.argilla_chat", chat_template="llama3"
    )
    view = TokenizerView(tokenizer)
    assert preference_texts(row, ds, ctx, view) == (
        "<s><|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "5<|eot_id|>",
        "zebra<|eot_id|>",
    )
    pair = tokenize_row(row, ds, ctx, view, tokenizer)
    assert pair["prompt_ids"][:2] == [BOS, BOS]
    assert _tokens(tokenizer, pair["chosen_ids"]) == LLAMA3_5


def test_ids_equal_trls_own_tokenization(tokenizer, tmp_path) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    texts = [(p, c, r) for _, p, c, r, *_ in CASES.values()]
    texts += [
        ("Q: what is 2+3?\nA:", " 5", " five"),  # plain text: BOS from the tokenizer
        ("Q: 2+3?\nA:", " 5</s>", " five"),  # an answer already ending in EOS gets no second
        ("Say hel", "lo", "p"),  # "Ġhello" merges across the boundary: prompt loses "Ġhel"
    ]
    data = Dataset.from_dict(
        {
            "prompt": [t[0] for t in texts],
            "chosen": [t[1] for t in texts],
            "rejected": [t[2] for t in texts],
        }
    )
    args = DPOConfig(
        output_dir=str(tmp_path), max_length=None, report_to="none", bf16=False, use_cpu=True
    )
    theirs = DPOTrainer._prepare_dataset(
        types.SimpleNamespace(_tokenizer=tokenizer), data, tokenizer, args, "train"
    )
    for i, (prompt, chosen, rejected) in enumerate(texts):
        ours = tokenize_pair(prompt, chosen, rejected, tokenizer)
        assert ours == {k: theirs[i][k] for k in ours}, texts[i]
    merged = tokenize_pair("Say hel", "lo", "p", tokenizer)
    assert _tokens(tokenizer, merged["chosen_ids"]) == ["Ġhello", "</s>"]
    assert len(merged["prompt_ids"]) < len(_ids(tokenizer, "Say hel"))


def test_field_names_and_role_mapping(tiny_model_dir, tokenizer) -> None:
    row = {
        "conversation": [{"from": "human", "value": "Add 2 and 3"}],
        "good": {"from": "gpt", "value": "5"},
        "bad": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "zebra"}],
    }
    ds, ctx = _context(
        tiny_model_dir,
        tokenizer,
        "chat_template.default",
        field_messages="conversation",
        field_chosen="good",
        field_rejected="bad",
        message_property_mappings={"role": "from", "content": "value"},
        roles={"user": ["human"], "assistant": ["gpt"]},
    )
    assert preference_texts(row, ds, ctx, TokenizerView(tokenizer)) == (
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
    )


def test_legacy_message_fields_and_text_columns(tiny_model_dir, tokenizer) -> None:
    """`message_field_role`/`_content` (Axolotl's older keys); a prompt given as text is one user
    message, and answers given as text are assistant messages, even under a `roles` map that
    does not list `user`/`assistant` (where Axolotl itself would fail on a KeyError)."""
    row = {"messages": "Add 2 and 3", "chosen": "5", "rejected": "zebra"}
    ds, ctx = _context(
        tiny_model_dir,
        tokenizer,
        "chat_template.default",
        message_field_role="from",
        message_field_content="value",
        roles={"user": ["human"], "assistant": ["gpt"]},
    )
    assert preference_texts(row, ds, ctx, TokenizerView(tokenizer)) == (
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
    )


def test_default_takes_the_first_column_present(tiny_model_dir, tokenizer) -> None:
    """chatml/llama3 `default` pick `prompt`, then `input`, `question`, `instruction` by column
    presence, as Axolotl's `key in sample.keys()`; a dataset gives every row every column, so a
    None `prompt` is still picked, and is then a missing value (Axolotl writes "None")."""
    ds, ctx = _context(tiny_model_dir, tokenizer, "chatml.default")
    view = TokenizerView(tokenizer)
    row = {"input": "I", "question": "Q", "chosen": "5", "rejected_response": "zebra"}
    assert preference_texts(row, ds, ctx, view)[0] == (
        "<|im_start|>user\nI<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(FormatError, match="column `prompt` is missing"):
        preference_texts({"prompt": None, **row}, ds, ctx, view)


@pytest.mark.parametrize(
    ("ds_type", "row", "message"),
    [
        ("chatml.intel", {"question": "q", "chosen": "a"}, "column `rejected` is missing"),
        (
            "chatml.intel",
            {"question": "q", "chosen": "a", "rejected": None},
            "`rejected` is missing",
        ),
        ("chatml.intel", {"question": "q", "chosen": "a", "rejected": "a"}, "are the same"),
        (
            "chatml.intel",
            {"question": "q", "chosen": " ", "rejected": "b"},
            "`chosen` answer is empty",
        ),
        (
            "llama3.icr",
            {"input": "", "chosen": "a", "rejected": "b"},
            r"prompt \(`input`\) is empty",
        ),
        (
            "chatml.prompt_pairs",
            {"prompt": 3, "chosen": "a", "rejected": "b"},
            "`prompt` must be text",
        ),
        (
            "llama3.ultra",
            {"prompt": "q", "chosen": "a", "rejected": "b"},
            "`chosen` must be a list",
        ),
        (
            "chatml.argilla_chat",
            {"chosen": CONVO_5, "rejected": [{"role": "user", "content": "q"}]},
            r"`rejected\[1\].content`",
        ),
        (
            "chat_template.default",
            {"messages": [{"role": "bot", "content": "hi"}], "chosen": "a", "rejected": "b"},
            "unknown role `bot`",
        ),
        (
            "chat_template.default",
            {"messages": [{"role": "user", "content": "hi"}], "chosen": "", "rejected": "b"},
            "`chosen` answer is empty",
        ),
        (
            "chat_template.default",
            {"messages": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": ["b"]},
            r"`rejected\[0\]` must be a message",
        ),
        (
            "chat_template.default",
            {"messages": [], "chosen": "a", "rejected": "b"},
            r"prompt \(`messages`\) is empty",
        ),
        ("chat_template.default", {"chosen": "a", "rejected": "b"}, "column `messages` is missing"),
        (
            "chat_template.argilla_chat",
            {"chosen": CONVO_5, "rejected": CONVO_5},
            "chosen and rejected answers are the same",
        ),
        (
            "chat_template.argilla_chat",
            {"chosen": "5", "rejected": CONVO_ZEBRA},
            "`chosen` must be a list of messages",
        ),
    ],
)
def test_bad_rows_are_format_errors(ds_type, row, message, tiny_model_dir, tokenizer) -> None:
    ds, ctx = _context(tiny_model_dir, tokenizer, ds_type)
    with pytest.raises(FormatError, match=message):
        tokenize_row(row, ds, ctx, TokenizerView(tokenizer), tokenizer)


def test_answer_the_template_rewrites_is_an_error(tiny_model_dir, tokenizer) -> None:
    """Axolotl's llama3 template trims each message: " 5 " is not in its rendering, and
    Axolotl's find() → -1 would keep only the rendering's last character (">")."""
    row = {"messages": [{"role": "user", "content": "q"}], "chosen": " 5 ", "rejected": "zebra"}
    ds, ctx = _context(tiny_model_dir, tokenizer, "chat_template.default", chat_template="llama3")
    with pytest.raises(FormatError, match="changes the `chosen` answer's text"):
        preference_texts(row, ds, ctx, TokenizerView(tokenizer))


def test_template_refusal_is_a_format_error(tiny_model_dir, tokenizer) -> None:
    row = {"chosen": [{"role": "system", "content": "s"}, *CONVO_5], "rejected": CONVO_ZEBRA}
    ds, ctx = _context(
        tiny_model_dir, tokenizer, "chat_template.argilla_chat", chat_template="gemma"
    )
    with pytest.raises(FormatError, match="cannot render this row: System role not supported"):
        preference_texts(row, ds, ctx, TokenizerView(tokenizer))


class _NoEosTokenizer:
    """A tokenizer without an EOS: one id per character, no special tokens."""

    eos_token = None

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


def test_tokenize_pair_refuses_an_empty_or_equal_side() -> None:
    assert tokenize_pair("ab", "c", "d", _NoEosTokenizer()) == {
        "prompt_ids": [97, 98],
        "chosen_ids": [99],
        "rejected_ids": [100],
    }
    with pytest.raises(FormatError, match="the chosen answer has no tokens"):
        tokenize_pair("ab", "", "d", _NoEosTokenizer())
    with pytest.raises(FormatError, match="same tokens"):
        tokenize_pair("ab", "c", "c", _NoEosTokenizer())


# --- KTO: one labelled answer (Axolotl's prompt_strategies/kto/{chatml,llama3}.py) -----------

IM_USER = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
IM_SYSTEM = "<|im_start|>system\n{}<|im_end|>\n"
L3_USER = (
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
L3_SYSTEM = "<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>"

KTO_CASES: dict[str, tuple[dict, str, str]] = {}
for _family, _user, _system, _end in (
    ("chatml", IM_USER, IM_SYSTEM, "<|im_end|>"),
    ("llama3", L3_USER, L3_SYSTEM, "<|eot_id|>"),
):
    _prefix = _system.format("Be brief.")
    KTO_CASES[f"{_family}.argilla"] = (
        {"instruction": "Add 2 and 3", "system": "Be brief.", "completion": "5", "label": True},
        _prefix + _user.format("Add 2 and 3"),
        "5" + _end,
    )
    KTO_CASES[f"{_family}.argilla_chat"] = (
        {"completion": CONVO_5, "label": True},
        _user.format("Add 2 and 3"),
        "5" + _end,
    )
    KTO_CASES[f"{_family}.intel"] = (
        {"question": "Add 2 and 3", "completion": "5", "label": 1},
        _user.format("Add 2 and 3"),
        "5" + _end,
    )
    KTO_CASES[f"{_family}.prompt_pairs"] = (
        {"prompt": "Add 2 and 3", "system": "Be brief.", "completion": "5", "label": False},
        _prefix + _user.format("Add 2 and 3"),
        "5" + _end,
    )
    KTO_CASES[f"{_family}.ultra"] = (
        {"prompt": "Add 2 and 3", "completion": "5", "label": False},
        _user.format("Add 2 and 3"),
        "5" + _end,
    )


def test_every_kto_type_has_a_case() -> None:
    from honer.config.schema import KTO_TYPES

    assert sorted(KTO_CASES) == sorted(KTO_TYPES)


@pytest.mark.parametrize("ds_type", sorted(KTO_CASES))
def test_kto_type_text_ids_and_label(ds_type, tokenizer) -> None:
    from honer.config.schema import DatasetConfig
    from honer.data.preference import kto_texts, tokenize_kto_row

    row, prompt, completion = KTO_CASES[ds_type]
    ds = DatasetConfig(path="k.jsonl", type=ds_type)
    assert kto_texts(row, ds) == (prompt, completion)
    out = tokenize_kto_row(row, ds, tokenizer)
    full = _ids(tokenizer, prompt + completion + "</s>")
    cut = len(out["prompt_ids"])
    assert out["prompt_ids"] == full[:cut] and out["completion_ids"] == full[cut:]
    assert out["prompt_ids"][0] == BOS and out["completion_ids"][-1] == EOS
    assert out["label"] is bool(row["label"])


def test_kto_ids_equal_trls_own_tokenization(tokenizer, tmp_path) -> None:
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from honer.data.preference import tokenize_completion

    texts = [(p, c) for _, p, c in KTO_CASES.values()] + [("Q: 2+3?\nA:", " 5")]
    data = Dataset.from_dict(
        {
            "prompt": [t[0] for t in texts],
            "completion": [t[1] for t in texts],
            "label": [True] * len(texts),
        }
    )
    args = KTOConfig(
        output_dir=str(tmp_path), max_length=None, report_to="none", bf16=False, use_cpu=True
    )
    fake = types.SimpleNamespace(
        _tokenizer=tokenizer, calculate_KL=False, desirable_weight=1.0, undesirable_weight=1.0
    )
    theirs = KTOTrainer._prepare_dataset(fake, data, tokenizer, args, "eval")
    for i, (prompt, completion) in enumerate(texts):
        ours = tokenize_completion(prompt, completion, tokenizer)
        assert ours == {k: theirs[i][k] for k in ours}, texts[i]


def test_kto_label_must_be_a_truth_value(tokenizer) -> None:
    from honer.config.schema import DatasetConfig
    from honer.data.preference import tokenize_kto_row

    ds = DatasetConfig(path="k.jsonl", type="chatml.prompt_pairs")
    with pytest.raises(FormatError, match="`label` must be true or false, got 'yes'"):
        tokenize_kto_row({"prompt": "p", "completion": "c", "label": "yes"}, ds, tokenizer)
    with pytest.raises(FormatError, match="column `label` is missing"):
        tokenize_kto_row({"prompt": "p", "completion": "c"}, ds, tokenizer)
