"""Inference prompts are exactly the training prompt tokens for the same messages."""

from __future__ import annotations

import pytest

from honer.data.formats import FORMATS
from honer.data.formats.context import format_context
from honer.data.tokenize import IGNORE_INDEX, TokenizerView
from honer.infer.generate import split_prompt
from honer.infer.prompt import PromptFormatter

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 12 + 7?"},
    {"role": "assistant", "content": "19"},
    {"role": "user", "content": "And times two?"},
    {"role": "assistant", "content": "38"},
]


def _cfg(tiny_model_dir, dataset: dict, **keys):
    from honer.config.load import config_from_dict

    return config_from_dict(
        {"base_model": str(tiny_model_dir), "datasets": [dataset], "output_dir": "unused", **keys}
    )


def _turn_starts(labels: list[int]) -> list[int]:
    """Index of the first token of each trained run."""
    return [
        i
        for i, lab in enumerate(labels)
        if lab != IGNORE_INDEX and (i == 0 or labels[i - 1] == IGNORE_INDEX)
    ]


@pytest.mark.parametrize("template", ["tokenizer_default", "chatml", "vicuna", "mistral", "alpaca"])
def test_chat_prompt_tokens_equal_training_prompt(tiny_model_dir, tokenizer, template) -> None:
    messages = CHAT  # mistral folds the system turn into the first user turn: covered too
    cfg = _cfg(tiny_model_dir, {"path": "x.jsonl", "type": "chat_template"}, chat_template=template)
    ds = cfg.datasets[0]
    sample = FORMATS["chat_template"].tokenize_row(
        {"messages": messages}, TokenizerView(tokenizer), format_context(cfg, ds, tokenizer)
    )[0]
    fmt = PromptFormatter(cfg, tokenizer)
    first, _ = split_prompt(sample.input_ids, sample.labels)
    assert fmt.ids(messages[:2]) == first
    second = _turn_starts(sample.labels)[1]
    assert fmt.ids(messages[:4]) == sample.input_ids[:second]


def test_sharegpt_prompt_tokens_equal_training_prompt(tiny_model_dir, tokenizer) -> None:
    cfg = _cfg(tiny_model_dir, {"path": "x.jsonl", "type": "sharegpt", "conversation": "vicuna"})
    ds = cfg.datasets[0]
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    row = {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in CHAT]}
    sample = FORMATS["sharegpt"].tokenize_row(
        row, TokenizerView(tokenizer), format_context(cfg, ds, tokenizer)
    )[0]
    first, _ = split_prompt(sample.input_ids, sample.labels)
    assert PromptFormatter(cfg, tokenizer).ids(CHAT[:2]) == first


@pytest.mark.parametrize("system_prompt", [None, ""])
def test_alpaca_prompt_tokens_equal_training_prompt(tiny_model_dir, tokenizer, system_prompt):
    entry = {"path": "x.jsonl", "type": "alpaca"}
    if system_prompt is not None:
        entry["system_prompt"] = system_prompt
    cfg = _cfg(tiny_model_dir, entry)
    ds = cfg.datasets[0]
    fmt = PromptFormatter(cfg, tokenizer)
    for row in (
        {"instruction": "Add 3 and 1", "output": "4"},
        {"instruction": "Translate", "input": "hello world", "output": "bonjour"},
    ):
        sample = FORMATS["alpaca"].tokenize_row(
            row, TokenizerView(tokenizer), format_context(cfg, ds, tokenizer)
        )[0]
        first, _ = split_prompt(sample.input_ids, sample.labels)
        assert fmt.alpaca_ids(row["instruction"], row.get("input", "")) == first
        if "input" not in row:
            assert fmt.ids([{"role": "user", "content": row["instruction"]}]) == first


def test_stop_ids_hold_eos_and_end_of_turn(tiny_model_dir, tokenizer) -> None:
    cfg = _cfg(tiny_model_dir, {"path": "x.jsonl", "type": "chat_template"})
    stop = PromptFormatter(cfg, tokenizer).stop_ids
    assert stop == {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    alpaca = _cfg(tiny_model_dir, {"path": "x.jsonl", "type": "alpaca"})
    assert PromptFormatter(alpaca, tokenizer).stop_ids == {tokenizer.eos_token_id}
