"""GRPO prompt rows (honer.data.prompts) and the rewards built from checks (honer.evaluate.
rewards): what TRL samples from, what the rewards receive, and the errors for bad rows."""

from __future__ import annotations

import json

import pytest

from honer.config.schema import DatasetConfig
from honer.data.prompts import decode_rows, encode_row, prompt_ids, read_prompt
from honer.data.tokenize import FormatError, TokenizerView

CHAT = [
    {"role": "system", "content": "Reply with SQL."},
    {"role": "user", "content": "count the products"},
    {"role": "assistant", "content": "SELECT COUNT(*) FROM products"},
]


def test_chat_rows_give_the_conversation_before_its_answer() -> None:
    ds = DatasetConfig(path="d.jsonl", type="chat_template")
    prompt, extras = read_prompt({"messages": CHAT, "id": 7}, ds)
    assert prompt == CHAT[:2]
    assert extras == {"id": 7, "answer": "SELECT COUNT(*) FROM products"}


def test_prompt_rows_keep_text_or_messages_and_pass_the_other_columns() -> None:
    ds = DatasetConfig(path="d.jsonl", type="prompt")
    assert read_prompt({"prompt": "2+2=", "answer": "4"}, ds) == ("2+2=", {"answer": "4"})
    mapped = DatasetConfig(path="d.jsonl", type="prompt", roles={"user": ["human"]})
    prompt, _ = read_prompt({"prompt": [{"role": "human", "content": "hi"}]}, mapped)
    assert prompt == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "  "}, "the prompt (`prompt`) is empty"),
        (
            {"question": "x"},
            "column `prompt` must be text or a list of messages (row has: question)",
        ),
        ({"prompt": [{"role": "robot", "content": "x"}]}, "has unknown role `robot`"),
    ],
)
def test_bad_prompt_rows_say_what_is_wrong(row: dict, message: str) -> None:
    with pytest.raises(FormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_prompt(row, DatasetConfig(path="d.jsonl", type="prompt"))


def test_prompt_ids_are_what_trl_tokenizes(tokenizer) -> None:
    """Messages: the chat template with its generation prompt, no special tokens added (TRL's
    `apply_chat_template(tokenize=True)`); text: the tokenizer with its special tokens."""
    view = TokenizerView(tokenizer)
    template = tokenizer.chat_template
    expected = tokenizer.apply_chat_template(
        CHAT[:2], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert prompt_ids(CHAT[:2], tokenizer, view, template, None) == expected
    assert prompt_ids("2+2=", tokenizer, view, template, None) == tokenizer("2+2=")["input_ids"]


def test_rows_round_trip_through_the_cache_format() -> None:
    stored = encode_row(CHAT[:2], {"answer": "SELECT 1", "n": 3}, [1, 2, 3])
    assert json.loads(stored["prompt"]) == CHAT[:2]
    assert stored["prompt_ids"] == [1, 2, 3]

    class Table(dict):
        pass

    table = Table(prompt=[stored["prompt"]], reward_columns=[stored["reward_columns"]])
    assert decode_rows(table) == [{"prompt": CHAT[:2], "answer": "SELECT 1", "n": 3}]


def test_check_rewards_score_completions_against_the_answer_column() -> None:
    from honer.config.load import config_from_dict
    from honer.evaluate.rewards import reward_functions

    cfg = config_from_dict(
        {
            "base_model": "m",
            "output_dir": "o",
            "rl": "grpo",
            "micro_batch_size": 2,
            "datasets": [{"path": "p.jsonl", "type": "prompt"}],
            "evals": {"checks": [{"type": "exact"}, {"type": "regex", "pattern": "^SELECT"}]},
            "trl": {
                "num_generations": 2,
                "reward_funcs": ["evals", {"type": "regex", "pattern": "FROM"}],
            },
        }
    )
    exact, select, has_from = reward_functions(cfg)
    assert [f.__name__ for f in (exact, select, has_from)] == ["exact", "regex", "regex_2"]
    completions = [[{"role": "assistant", "content": "SELECT 1"}], "SELECT x FROM t"]
    answers = ["SELECT 1", "SELECT y FROM t"]
    assert exact(prompts=["p", "p"], completions=completions, answer=answers) == [1.0, 0.0]
    assert select(prompts=["p", "p"], completions=completions) == [1.0, 1.0]
    assert has_from(prompts=["p", "p"], completions=completions) == [0.0, 1.0]
