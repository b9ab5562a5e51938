"""Preprocessing: counts, splits, loud mask failures, and a cache that notices every change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honer.config import config_from_dict
from honer.data.prepare import fingerprint, load_or_prepare
from honer.errors import DataError


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [{"instruction": f"Add {i} and {i + 1}", "output": str(2 * i + 1)} for i in range(20)]


@pytest.fixture
def make_cfg(tmp_path: Path, tiny_model_dir: Path):
    def make(**overrides):
        data = overrides.pop("data", None) or write_rows(tmp_path / "d.jsonl", ROWS)
        raw = {
            "base_model": str(tiny_model_dir),
            "datasets": [{"path": str(data), "type": "alpaca"}],
            "dataset_prepared_path": str(tmp_path / "prepared"),
            "sequence_len": 256,
            **overrides,
        }
        return config_from_dict(raw)

    return make


def test_prepare_counts_and_caches(make_cfg, tokenizer) -> None:
    cfg = make_cfg(val_set_size=0.25)
    first = load_or_prepare(cfg, tokenizer)
    assert not first.from_cache
    assert (len(first.train), len(first.eval)) == (15, 5)
    assert first.train.column_names == ["input_ids", "labels"]
    [entry] = first.stats["datasets"]
    assert (entry["rows_in"], entry["samples_out"], entry["truncated"]) == (20, 20, 0)
    trained = sum(sum(1 for t in lab if t != -100) for lab in first.train["labels"])
    assert first.stats["train"]["trained_tokens"] == trained
    assert first.stats["train"]["tokens"] == sum(len(x) for x in first.train["input_ids"])
    assert set(first.stats["train"]["length"]) == {"min", "p50", "p90", "p99", "max"}
    second = load_or_prepare(cfg, tokenizer)
    assert second.from_cache and second.path == first.path
    assert second.train["input_ids"] == first.train["input_ids"]
    assert second.eval["labels"] == first.eval["labels"]


def test_val_set_size_as_row_count(make_cfg, tokenizer) -> None:
    data = load_or_prepare(make_cfg(val_set_size=3), tokenizer)
    assert (len(data.train), len(data.eval)) == (17, 3)


def test_every_relevant_change_rebuilds(make_cfg, tokenizer, tmp_path: Path) -> None:
    base = fingerprint(make_cfg(), tokenizer)
    assert fingerprint(make_cfg(), tokenizer) == base
    assert fingerprint(make_cfg(sequence_len=128), tokenizer) != base
    assert fingerprint(make_cfg(train_on_inputs=True), tokenizer) != base
    assert fingerprint(make_cfg(val_set_size=0.1), tokenizer) != base
    other = write_rows(tmp_path / "other.jsonl", ROWS[:-1])
    assert fingerprint(make_cfg(data=other), tokenizer) != base
    tok2 = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok2.add_tokens(["<new>"])
    assert fingerprint(make_cfg(), tok2) != base
    tok3 = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok3.chat_template = "{{ messages }}"
    assert fingerprint(make_cfg(), tok3) != base
    # Keys that do not touch the data leave the cache alone.
    assert fingerprint(make_cfg(learning_rate=1e-3, micro_batch_size=4), tokenizer) == base


def test_changed_data_file_is_rebuilt(make_cfg, tokenizer, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "mine.jsonl", ROWS)
    first = load_or_prepare(make_cfg(data=data), tokenizer)
    write_rows(data, ROWS[:5])
    again = load_or_prepare(make_cfg(data=data), tokenizer)
    assert not again.from_cache and len(again.train) == 5 and again.path != first.path


def test_long_samples_dropped_or_truncated(make_cfg, tokenizer, tmp_path: Path) -> None:
    rows = [*ROWS[:3], {"instruction": "long " * 200, "output": "x"}]
    data_path = write_rows(tmp_path / "long.jsonl", rows)
    dropped = load_or_prepare(make_cfg(data=data_path, sequence_len=64), tokenizer)
    assert len(dropped.train) == 3
    assert dropped.stats["datasets"][0]["dropped"] == {"longer than sequence_len": 1}
    rows2 = [*ROWS[:3], {"instruction": "Say it", "output": "word " * 200}]
    data2 = write_rows(tmp_path / "long2.jsonl", rows2)
    cut = load_or_prepare(
        make_cfg(data=data2, sequence_len=64, excess_length_strategy="truncate"), tokenizer
    )
    assert cut.stats["datasets"][0]["truncated"] == 1
    assert max(len(x) for x in cut.train["input_ids"]) == 64


def test_prompt_longer_than_sequence_len_drops_with_reason(make_cfg, tokenizer, tmp_path) -> None:
    rows = [*ROWS[:2], {"instruction": "long " * 200, "output": "x"}]
    data = write_rows(tmp_path / "p.jsonl", rows)
    out = load_or_prepare(
        make_cfg(data=data, sequence_len=64, excess_length_strategy="truncate"), tokenizer
    )
    assert out.stats["datasets"][0]["dropped"] == {"trained part beyond sequence_len": 1}


def test_bad_row_fails_loudly_with_dataset_and_row(make_cfg, tokenizer, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "bad.jsonl", [ROWS[0], {"instruction": "no answer"}])
    with pytest.raises(DataError) as info:
        load_or_prepare(make_cfg(data=data), tokenizer)
    msg = str(info.value)
    assert f"datasets[0] ({data}) row 1: column `output` is missing" in msg


def test_zero_trained_tokens_fails_loudly(make_cfg, tokenizer, tmp_path: Path) -> None:
    rows = [{"segments": [{"text": "all prompt", "label": False}]}]
    data = write_rows(tmp_path / "io.jsonl", rows)
    cfg = config_from_dict(
        {
            "base_model": "m",
            "datasets": [{"path": str(data), "type": "input_output"}],
            "dataset_prepared_path": str(tmp_path / "p"),
        }
    )
    with pytest.raises(DataError, match=r"row 0: no trained tokens"):
        load_or_prepare(cfg, tokenizer)


def test_skip_bad_rows_counts_format_failures(make_cfg, tokenizer, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "bad.jsonl", [ROWS[0], {"instruction": "no answer"}])
    out = load_or_prepare(make_cfg(data=data, skip_bad_rows=True), tokenizer)
    assert len(out.train) == 1
    assert out.stats["datasets"][0]["dropped"] == {
        "column `output` is missing (row has: instruction)": 1
    }


def test_everything_dropped_is_an_error(make_cfg, tokenizer, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "long.jsonl", [{"instruction": "long " * 200, "output": "x"}])
    with pytest.raises(DataError, match="no training samples left"):
        load_or_prepare(make_cfg(data=data, sequence_len=32), tokenizer)


def test_chat_eos_mismatch_is_a_warning_or_strict_error(make_cfg, tokenizer, tmp_path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    ]
    data = write_rows(tmp_path / "chat.jsonl", rows)
    cfg = make_cfg()
    raw = cfg.model_dump(exclude_unset=True)
    raw["datasets"] = [{"path": str(data), "type": "chat_template"}]
    out = load_or_prepare(config_from_dict(raw), tokenizer)
    assert len(out.warnings) == 1 and "<|im_end|>" in out.warnings[0]
    with pytest.raises(DataError, match="strict: the chat template ends assistant turns"):
        load_or_prepare(config_from_dict({**raw, "strict": True}), tokenizer, force=True)


@pytest.mark.slow  # starts processes
def test_multiprocess_tokenization_gives_same_tokens(make_cfg, tokenizer) -> None:
    one = load_or_prepare(make_cfg(), tokenizer)
    two = load_or_prepare(make_cfg(dataset_processes=2), tokenizer, force=True)
    assert one.train["input_ids"] == two.train["input_ids"]
    assert one.train["labels"] == two.train["labels"]


def test_val_set_size_leaving_no_training_rows_is_explained(make_cfg, tokenizer) -> None:
    with pytest.raises(DataError, match=r"val_set_size: 20.0 gives 20 validation rows out of 20"):
        load_or_prepare(make_cfg(val_set_size=20), tokenizer)


# SmolLM2-135M-Instruct's own template (from its GGUF): it writes a default system prompt into
# every conversation that does not start with one.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA31_LIKE = (
    "{{ '<|start_header_id|>system<|end_header_id|>\\n\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% endif %}"
    "{{ '<|eot_id|>' }}{% for m in messages %}{% if m['role'] != 'system' %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + "
    "'<|eot_id|>' }}{% endif %}{% endfor %}"
)


def test_default_system_prompt_is_found_in_the_template(tokenizer) -> None:
    from honer.data.formats.chat_template import default_system_prompt
    from honer.data.tokenize import TokenizerView

    view = TokenizerView(tokenizer)
    found = default_system_prompt(view, SMOLLM2_TEMPLATE)
    assert found == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert default_system_prompt(view, None) is None  # the tiny tokenizer's plain ChatML
    assert default_system_prompt(view, LLAMA31_LIKE) is None  # fixed headers are not a prompt


def _chat_cfg(make_cfg, tmp_path: Path, own_system: int = 0, without: int = 4, **entry):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    system = {"role": "system", "content": "Be brief."}
    rows = [{"messages": chat}] * without + [{"messages": [system, *chat]}] * own_system
    data = write_rows(tmp_path / "chat.jsonl", rows)
    raw = make_cfg().model_dump(exclude_unset=True)
    raw.update(chat_template="jinja", chat_template_jinja=SMOLLM2_TEMPLATE)
    raw["datasets"] = [{"path": str(data), "type": "chat_template", **entry}]
    return config_from_dict(raw)


def test_a_template_default_system_prompt_is_reported(make_cfg, tokenizer, tmp_path) -> None:
    out = load_or_prepare(_chat_cfg(make_cfg, tmp_path, own_system=2), tokenizer)
    assert len(out.notes) == 1
    note = out.notes[0]
    assert note.startswith(
        'the chat template adds a default system prompt to rows without one ("You are a helpful'
    )
    tokens = len(
        tokenizer.encode(
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
            add_special_tokens=False,
        )
    )
    share = tokens * 4 / out.stats["train"]["tokens"]
    assert note.endswith(
        f"(4 of 6 samples carry it, {tokens} tokens each: {share:.0%} of the training tokens)."
    )
    cached = load_or_prepare(_chat_cfg(make_cfg, tmp_path, own_system=2), tokenizer)
    assert cached.from_cache and cached.notes == out.notes


def test_no_note_when_every_row_has_its_own_system_message(make_cfg, tokenizer, tmp_path):
    cfg = _chat_cfg(make_cfg, tmp_path, own_system=3, without=0)
    assert load_or_prepare(cfg, tokenizer).notes == []


def test_drop_system_message_undone_by_the_template_is_a_warning(make_cfg, tokenizer, tmp_path):
    cfg = _chat_cfg(make_cfg, tmp_path, drop_system_message=True)
    out = load_or_prepare(cfg, tokenizer)
    mine = [w for w in out.warnings if "drop_system_message" in w]
    assert len(mine) == 1 and not out.notes
    assert mine[0].startswith("datasets[0].drop_system_message: true, but the chat template")
    assert "`chat_template: chatml`" in mine[0]
    with pytest.raises(DataError, match=r"strict: .*datasets\[0\].drop_system_message"):
        load_or_prepare(cfg.model_copy(update={"strict": True}), tokenizer, force=True)


def test_data_seed_zero_means_zero_for_the_split(make_cfg, tokenizer) -> None:
    """`data_seed: 0` once meant `seed` for the split and shuffle but 0 for packing."""
    zero = load_or_prepare(make_cfg(val_set_size=5, seed=7, data_seed=0), tokenizer)
    seed0 = load_or_prepare(make_cfg(val_set_size=5, seed=0), tokenizer)
    seed7 = load_or_prepare(make_cfg(val_set_size=5, seed=7), tokenizer)
    assert zero.eval["input_ids"] == seed0.eval["input_ids"]
    assert zero.eval["input_ids"] != seed7.eval["input_ids"]


CHAT_ROWS = [
    {"messages": [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Yo"}]}
    for i in range(4)
]


def _chat(make_cfg, tmp_path: Path, entry: dict | None = None, **top):
    data = write_rows(tmp_path / "chat.jsonl", CHAT_ROWS)
    raw = make_cfg().model_dump(exclude_unset=True)
    raw["datasets"] = [{"path": str(data), "type": "chat_template", **(entry or {})}]
    return config_from_dict({**raw, **top})


@pytest.mark.parametrize(
    ("entry", "top"),
    [
        ({}, {"chat_template": "chatml"}),
        ({}, {"chat_template": "qwen_25"}),
        ({"chat_template": "llama3"}, {}),
        ({}, {"eot_tokens": ["<|im_end|>"]}),
        ({}, {"eot_tokens": []}),
        ({"train_on_eot": "last"}, {}),
        ({}, {"default_system_message": "Be brief."}),
        ({}, {"chat_template_kwargs": {"enable_thinking": False}}),
        ({}, {"shuffle_before_merging_datasets": True}),
        ({"field_system": "sys"}, {}),
    ],
)
def test_every_chat_option_is_in_the_fingerprint(make_cfg, tokenizer, tmp_path, entry, top):
    base = fingerprint(_chat(make_cfg, tmp_path), tokenizer)
    assert fingerprint(_chat(make_cfg, tmp_path), tokenizer) == base
    assert fingerprint(_chat(make_cfg, tmp_path, entry, **top), tokenizer) != base


def test_a_changed_template_file_is_in_the_fingerprint(make_cfg, tokenizer, tmp_path) -> None:
    """`chat_template_jinja` may name a file: its text, not its name, decides the tokens."""
    path = tmp_path / "t.jinja"
    path.write_text(SMOLLM2_TEMPLATE)
    top = {"chat_template": "jinja", "chat_template_jinja": str(path)}
    first = fingerprint(_chat(make_cfg, tmp_path, **top), tokenizer)
    path.write_text(SMOLLM2_TEMPLATE.replace("SmolLM", "TinyLM"))
    assert fingerprint(_chat(make_cfg, tmp_path, **top), tokenizer) != first


def test_default_system_message_silences_the_template_default_note(make_cfg, tokenizer, tmp_path):
    cfg = _chat_cfg(make_cfg, tmp_path, drop_system_message=True)
    cfg = cfg.model_copy(update={"default_system_message": "Be brief."})
    out = load_or_prepare(cfg, tokenizer)
    assert out.notes == [] and not [w for w in out.warnings if "drop_system_message" in w]
    assert all("SmolLM" not in tokenizer.decode(ids) for ids in out.train["input_ids"])


def test_eot_token_warning_reaches_prepare(make_cfg, tokenizer, tmp_path) -> None:
    cfg = _chat(make_cfg, tmp_path, chat_template="chatml", eot_tokens=["<|im_end|>", "<|eot|>"])
    out = load_or_prepare(cfg, tokenizer)
    assert any(w.startswith("eot_tokens: `<|eot|>` does not occur") for w in out.warnings)


def _two_datasets(make_cfg, tmp_path: Path, **top):
    first = write_rows(tmp_path / "a.jsonl", ROWS[:8])
    second = write_rows(tmp_path / "b.jsonl", ROWS[8:20])
    raw = make_cfg().model_dump(exclude_unset=True)
    raw["datasets"] = [{"path": str(p), "type": "alpaca"} for p in (first, second)]
    return config_from_dict({**raw, "shuffle_merged_datasets": False, **top})


def _permutation(n: int, seed: int) -> list[int]:
    """The order `datasets` shuffles n rows into with this seed (what Axolotl calls)."""
    from datasets import Dataset

    return Dataset.from_dict({"i": list(range(n))}).shuffle(seed=seed)["i"]


def test_shuffle_before_merging_shuffles_each_dataset_on_its_own(make_cfg, tokenizer, tmp_path):
    plain = load_or_prepare(_two_datasets(make_cfg, tmp_path), tokenizer).train["input_ids"]
    a, b = plain[:8], plain[8:]
    cfg = _two_datasets(make_cfg, tmp_path, shuffle_before_merging_datasets=True, seed=7)
    shuffled = load_or_prepare(cfg, tokenizer).train["input_ids"]
    expected = [a[i] for i in _permutation(8, 7)] + [b[i] for i in _permutation(12, 7)]
    assert shuffled == expected and shuffled != plain
    # seeded: the same seed gives the same order, another seed another one
    again = load_or_prepare(cfg, tokenizer, force=True).train["input_ids"]
    other = _two_datasets(make_cfg, tmp_path, shuffle_before_merging_datasets=True, seed=8)
    assert again == shuffled and load_or_prepare(other, tokenizer).train["input_ids"] != shuffled


def test_shuffle_before_and_after_merging(make_cfg, tokenizer, tmp_path) -> None:
    """Both set: each dataset shuffled, concatenated, then the whole shuffled (Axolotl's order)."""
    plain = load_or_prepare(_two_datasets(make_cfg, tmp_path), tokenizer).train["input_ids"]
    a, b = plain[:8], plain[8:]
    before = [a[i] for i in _permutation(8, 3)] + [b[i] for i in _permutation(12, 3)]
    cfg = _two_datasets(
        make_cfg,
        tmp_path,
        shuffle_before_merging_datasets=True,
        shuffle_merged_datasets=True,
        seed=3,
    )
    both = load_or_prepare(cfg, tokenizer).train["input_ids"]
    assert both == [before[i] for i in _permutation(20, 3)]


def test_min_sample_len_drops_short_samples(make_cfg, tokenizer, tmp_path) -> None:
    rows = [{"instruction": "Hi", "output": "x"}, *ROWS[:3]]
    data = write_rows(tmp_path / "short.jsonl", rows)
    lengths = [len(x) for x in load_or_prepare(make_cfg(data=data), tokenizer).train["input_ids"]]
    cut = sorted(lengths)[1]  # the "Hi" sample is the shortest; the others are at least this
    kept = load_or_prepare(make_cfg(data=data, min_sample_len=cut), tokenizer)
    assert len(kept.train) == 3 and min(len(x) for x in kept.train["input_ids"]) >= cut
    assert kept.stats["datasets"][0]["dropped"] == {"shorter than min_sample_len": 1}


def test_exact_deduplication_drops_repeated_samples(make_cfg, tokenizer, tmp_path) -> None:
    rows = [*ROWS[:6], ROWS[0], ROWS[2], ROWS[2]]
    data = write_rows(tmp_path / "dup.jsonl", rows)
    plain = load_or_prepare(make_cfg(data=data, shuffle_merged_datasets=False), tokenizer)
    assert len(plain.train) == 9 and "duplicates_dropped" not in plain.stats
    cfg = make_cfg(data=data, shuffle_merged_datasets=False, dataset_exact_deduplication=True)
    dedup = load_or_prepare(cfg, tokenizer)
    assert dedup.train["input_ids"] == plain.train["input_ids"][:6]  # first occurrences, in order
    assert dedup.stats["duplicates_dropped"] == {"train": 3}
    # Validation rows never repeat training rows (dedup before the split, as Axolotl).
    cfg = make_cfg(data=data, val_set_size=2, dataset_exact_deduplication=True)
    split = load_or_prepare(cfg, tokenizer)
    assert (len(split.train), len(split.eval)) == (4, 2)
    assert not {tuple(x) for x in split.eval["input_ids"]} & {
        tuple(x) for x in split.train["input_ids"]
    }
    # test_datasets: duplicates of training samples (and of each other) are dropped from them.
    test = write_rows(tmp_path / "test.jsonl", [ROWS[1], ROWS[10], ROWS[10]])
    cfg = make_cfg(
        data=data,
        dataset_exact_deduplication=True,
        test_datasets=[{"path": str(test), "type": "alpaca"}],
    )
    both = load_or_prepare(cfg, tokenizer)
    assert len(both.eval) == 1 and both.stats["duplicates_dropped"] == {"train": 3, "eval": 2}


def test_preference_rows_follow_the_length_rules(make_cfg, tokenizer, tmp_path) -> None:
    """`min_sample_len` and `sequence_len` bound a pair's prompt + longer answer."""
    rows = [
        {"question": "Hi", "chosen": "a", "rejected": "b"},
        {"question": "Add 2 and 3 " * 3, "chosen": "5", "rejected": "zebra"},
        {"question": "Add 2 and 3", "chosen": "five " * 60, "rejected": "zebra"},
    ]
    data = write_rows(tmp_path / "pairs.jsonl", rows)
    pairs = {
        "datasets": [{"path": str(data), "type": "chatml.intel"}],
        "rl": "dpo",
        "sequence_len": 64,
    }
    every = load_or_prepare(make_cfg(**pairs), tokenizer)
    assert len(every.train) == 2
    assert every.stats["datasets"][0]["dropped"] == {"longer than sequence_len": 1}
    lengths = [
        len(p) + max(len(c), len(r))
        for p, c, r in zip(
            every.train["prompt_ids"],
            every.train["chosen_ids"],
            every.train["rejected_ids"],
            strict=True,
        )
    ]
    cut = load_or_prepare(make_cfg(**pairs, min_sample_len=max(lengths)), tokenizer)
    assert len(cut.train) == 1
    assert cut.stats["datasets"][0]["dropped"] == {
        "longer than sequence_len": 1,
        "shorter than min_sample_len": 1,
    }
