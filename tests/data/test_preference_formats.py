"""Preference pairs: each Axolotl DPO type's exact text, and ids equal to TRL's tokenization.

Expected strings are written out from Axolotl's strategies (axolotl/prompt_strategies/dpo/
chat_template.py, chatml.py, llama3.py); expected ids are the tiny tokenizer's ids of them, as
TRL's `DPOTrainer._prepare_dataset` computes them (checked against TRL's own code below).
"""

from __future__ import annotations

import types

import pytest

from honer.config.load import config_from_dict
from honer.config.schema import PREFERENCE_TYPES
from honer.data.formats.context import format_context
from honer.data.preference import preference_texts, tokenize_pair, tokenize_row
from honer.data.tokenize import FormatError, TokenizerView

BOS, EOS, IM_END = 1, 2, 5

IM = "<|im_start|>{}\n{}<|im_end|>\n"
L3_USER = (
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
L3_SYSTEM = "<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>"
CONVO = [{"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "5"}]
BAD = [{"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": "zebra"}]

# type → (row, expected prompt, chosen, rejected)
CASES: dict[str, tuple[dict, str, str, str]] = {
    "chat_template.default": (
        {
            "messages": [{"role": "user", "content": "Add 2 and 3"}],
            "chosen": "5",
            "rejected": "zebra",
        },
        IM.format("user", "Add 2 and 3") + "<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
    ),
    "chat_template.argilla_chat": (
        {"chosen": CONVO, "rejected": BAD},
        IM.format("user", "Add 2 and 3") + "<|im_start|>assistant\n",
        "5<|im_end|>",
        "zebra<|im_end|>",
    ),
}
for family, user, system, end in (
    (
        "chatml",
        IM.format("user", "{}") + "<|im_start|>assistant\n",
        IM.format("system", "{}"),
        "<|im_end|>",
    ),
    ("llama3", L3_USER, L3_SYSTEM, "<|eot_id|>"),
):
    sys_prefix = system.format("Be brief.")
    CASES[f"{family}.default"] = (
        {
            "question": "Add 2 and 3",
            "system": "Be brief.",
            "chosen_response": "5",
            "rejected_response": "zebra",
        },
        sys_prefix + user.format("Add 2 and 3"),
        "5" + end,
        "zebra" + end,
    )
    CASES[f"{family}.argilla_chat"] = (
        {"chosen": CONVO, "rejected": BAD},
        user.format("Add 2 and 3"),
        "5" + end,
        "zebra" + end,
    )
    CASES[f"{family}.icr"] = (
        {"input": "Add 2 and 3", "chosen": "5", "rejected": "zebra"},
        user.format("Add 2 and 3"),
        "5" + end,
        "zebra" + end,
    )
    CASES[f"{family}.intel"] = (
        {"system": "Be brief.", "question": "Add 2 and 3", "chosen": "5", "rejected": "zebra"},
        sys_prefix + user.format("Add 2 and 3"),
        "5" + end,
        "zebra" + end,
    )
    CASES[f"{family}.prompt_pairs"] = (
        {"prompt": "Add 2 and 3", "chosen": "5", "rejected": "zebra", "system": ""},
        user.format("Add 2 and 3"),
        "5" + end,
        "zebra" + end,
    )
    CASES[f"{family}.ultra"] = (
        {"prompt": "Add 2 and 3", "chosen": CONVO, "rejected": BAD},
        user.format("Add 2 and 3"),
        "5" + end,
        "zebra" + end,
    )


def _context(tiny_model_dir, tokenizer, ds_type: str, **keys):
    cfg = config_from_dict(
        {
            "base_model": str(tiny_model_dir),
            "rl": "dpo",
            "datasets": [{"path": "p.jsonl", "type": ds_type, **keys}],
        }
    )
    ds = cfg.datasets[0]
    return ds, format_context(cfg, ds, tokenizer)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text=text)["input_ids"]


def test_every_preference_type_has_a_case() -> None:
    assert sorted(CASES) == sorted(PREFERENCE_TYPES)


@pytest.mark.parametrize("ds_type", sorted(CASES))
def test_preference_type_text_and_ids(ds_type, tiny_model_dir, tokenizer) -> None:
    row, prompt, chosen, rejected = CASES[ds_type]
    ds, ctx = _context(tiny_model_dir, tokenizer, ds_type)
    view = TokenizerView(tokenizer)
    assert preference_texts(row, ds, ctx, view) == (prompt, chosen, rejected)
    pair = tokenize_row(row, ds, ctx, view, tokenizer)
    full_chosen = _ids(tokenizer, prompt + chosen + "</s>")
    full_rejected = _ids(tokenizer, prompt + rejected + "</s>")
    cut = len(pair["prompt_ids"])
    assert pair["prompt_ids"][0] == BOS and pair["prompt_ids"] == full_chosen[:cut]
    assert pair["prompt_ids"] == full_rejected[:cut]
    assert pair["chosen_ids"] == full_chosen[cut:] and pair["rejected_ids"] == full_rejected[cut:]
    assert pair["chosen_ids"][-1] == EOS and pair["rejected_ids"][-1] == EOS
    alone = _ids(tokenizer, prompt)
    if ds_type.startswith("llama3."):
        # The tiny tokenizer has no Llama-3 special tokens: the header's "\n\n" merges with the
        # answer's first character, so (as in TRL) that token belongs to the answer.
        assert pair["prompt_ids"] == alone[:-1]
    else:  # ChatML markers are special tokens: the prompt's ids end where its text ends
        assert pair["prompt_ids"] == alone


def test_chatml_answers_end_with_im_end_then_eos(tiny_model_dir, tokenizer) -> None:
    row, *_ = CASES["chat_template.default"]
    ds, ctx = _context(tiny_model_dir, tokenizer, "chat_template.default")
    pair = tokenize_row(row, ds, ctx, TokenizerView(tokenizer), tokenizer)
    assert pair["chosen_ids"][-2:] == [IM_END, EOS]
    assert tokenizer.decode(pair["chosen_ids"]) == "5<|im_end|></s>"


def test_ids_equal_trls_own_tokenization(tokenizer, tmp_path) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    texts = [(p, c, r) for _, p, c, r in CASES.values()]
    texts.append(("Q: what is 2+3?\nA:", " 5", " five"))  # plain text, BOS added by the tokenizer
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
    _, prompt, chosen, rejected = CASES["chat_template.default"]
    assert preference_texts(row, ds, ctx, TokenizerView(tokenizer)) == (prompt, chosen, rejected)


@pytest.mark.parametrize(
    ("ds_type", "row", "message"),
    [
        ("chatml.intel", {"question": "q", "chosen": "a"}, "column `rejected` is missing"),
        ("chatml.intel", {"question": "q", "chosen": "a", "rejected": "a"}, "are the same"),
        (
            "chatml.intel",
            {"question": "q", "chosen": " ", "rejected": "b"},
            "`chosen` answer is empty",
        ),
        ("chatml.prompt_pairs", {"prompt": 3, "chosen": "a", "rejected": "b"}, "must be text"),
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
    ],
)
def test_bad_rows_are_format_errors(ds_type, row, message, tiny_model_dir, tokenizer) -> None:
    ds, ctx = _context(tiny_model_dir, tokenizer, ds_type)
    with pytest.raises(FormatError, match=message):
        tokenize_row(row, ds, ctx, TokenizerView(tokenizer), tokenizer)
