"""Prompts cut from samples, and batched greedy generation equal to one-by-one generation."""

from __future__ import annotations

from honer.infer.generate import generate, split_prompt, strip_stop

M = -100


def test_split_prompt_takes_first_trained_run() -> None:
    ids = [1, 10, 11, 20, 21, 2, 12, 30, 2]
    labels = [M, M, M, 20, 21, 2, M, 30, 2]
    assert split_prompt(ids, labels) == ([1, 10, 11], [20, 21, 2])
    assert split_prompt([1, 2], [M, M]) == ([1, 2], [])


def test_strip_stop() -> None:
    assert strip_stop([5, 6, 2, 7], {2}) == [5, 6]
    assert strip_stop([5, 6], {2}) == [5, 6]


def test_batched_generation_matches_single(tiny_model_dir, tokenizer) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.train()
    prompts = [
        tokenizer("hello world")["input_ids"],
        tokenizer("a much longer prompt here")["input_ids"],
    ]
    batched = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=2, stop_ids={-1})
    single = [generate(model, tokenizer, [p], max_new_tokens=6, stop_ids={-1})[0] for p in prompts]
    assert batched == single
    assert all(len(x) == 6 for x in batched)
    assert model.training  # generate() restores the mode it found
