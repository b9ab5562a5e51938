"""clean: each filter with exact kept rows and rejects; options from YAML and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from honer.curate.clean import (
    CleanOptions,
    charset_problem,
    clean,
    language_problem,
    load_clean_options,
    token_counter,
)
from honer.errors import ConfigError, DataError
from tests.curate.helpers import FIXTURES, read_jsonl

MIXED = FIXTURES / "mixed.jsonl"


def run(tmp_path: Path, source: Path, **options: object) -> tuple[list, list, object]:
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    tally = clean(source, out, rejects, CleanOptions(**options))
    return read_jsonl(out), read_jsonl(rejects), tally


def test_default_filters_on_mixed_shapes(tmp_path: Path) -> None:
    kept, rejects, tally = run(tmp_path, MIXED, min_chars=3)
    assert kept == [
        {"instruction": "Name a primary colour.", "output": "Red is a primary colour."},
        {
            "messages": [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
    ]
    assert [(r["source"].rsplit(":", 1)[1], r["reason"], r["detail"]) for r in rejects] == [
        ("2", "slop", '"as an ai language model"'),
        ("3", "empty answer", "the answer is empty or whitespace"),
        ("4", "slop", "\"i'm sorry, but i can't\""),  # curly quotes and double space normalised
        ("6", "charset", "1 mojibake sequences (UTF-8 read as Latin-1)"),
        ("7", "malformed", "invalid JSON: Invalid control character at (column 30)"),
        ("8", "too short", "2 characters < 3"),
        ("9", "empty answer", "no answer (no assistant turn)"),
        ("10", "charset", "2 replacement characters (U+FFFD)"),
        ("11", "slop", '"trained by openai"'),
    ]
    assert rejects[0]["row"] == {
        "instruction": "Tell me a joke.",
        "output": "As an AI language model, I do not tell jokes.",
    }
    assert "row" not in rejects[4]  # an unreadable line has no row to keep
    assert (tally.rows_in, tally.kept, tally.rejected_total) == (11, 2, 9)


def test_slop_list_is_extendable_and_replaceable(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"instruction": "a", "output": "Let us delve into it."}\n'
        '{"instruction": "b", "output": "As an AI language model, no."}\n'
    )
    phrases = tmp_path / "extra.txt"
    phrases.write_text("# mine\n\nDELVE  into\n")
    kept, rejects, _ = run(tmp_path, src, slop_phrases_file=str(phrases))
    assert kept == [] and [r["detail"] for r in rejects] == [
        '"delve into"',
        '"as an ai language model"',
    ]
    kept, rejects, _ = run(tmp_path, src, slop_phrases=["delve into"], default_slop_phrases=False)
    assert [r["output"] for r in kept] == ["As an AI language model, no."]
    kept, _, _ = run(tmp_path, src, slop=False)
    assert len(kept) == 2


def test_json_answers(tmp_path: Path) -> None:
    kept, rejects, _ = run(tmp_path, FIXTURES / "json_answers.jsonl", json_answers=True)
    assert [r["output"] for r in kept] == ['{"name": "Ada"}', '```json\n{"name": "Bob"}\n```']
    assert [(r["reason"], r["detail"]) for r in rejects] == [
        ("broken JSON", "Expecting property name enclosed in double quotes at line 1 column 15"),
        ("broken JSON", "Expecting value at line 1 column 1"),
    ]


def test_language_checks_script_and_common_words(tmp_path: Path) -> None:
    kept, rejects, _ = run(tmp_path, FIXTURES / "languages.jsonl", lang="en")
    assert [r["text"] for r in kept] == [
        read_jsonl(FIXTURES / "languages.jsonl")[0]["text"],
        "OK 42",
    ]
    assert [r["detail"] for r in rejects] == [
        "reads as `de` (15 common words) rather than `en` (2)",
        "0% of letters in LATIN script (mostly CYRILLIC)",
    ]
    assert language_problem("Привет, как дела? OK", "ru", 0.8) is None  # 13 of 15 letters
    assert language_problem("東京は日本の首都です", "ja", 0.8) is None
    assert language_problem("Short German: der die das", "en", 0.8) is None  # too few words


def test_charset_counts_every_kind_of_broken_character() -> None:
    assert charset_problem("fine text\twith tab\n", 0) is None
    assert charset_problem("a\x00b\ud800 Ã© â€™", 0) == (
        "1 control characters, 1 lone surrogates, 2 mojibake sequences (UTF-8 read as Latin-1)"
    )
    assert charset_problem("one \ufffd", 1) is None


def test_length_of_answers_and_tokens(tmp_path: Path, tiny_model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"instruction": "A long question about many things", "output": "ok"}\n'
        '{"instruction": "Q", "output": "A fine and long enough answer"}\n'
    )
    kept, rejects, _ = run(tmp_path, src, min_chars=5, length_of="answer")
    assert [r["instruction"] for r in kept] == ["Q"]
    assert rejects[0]["detail"] == "2 characters < 5"
    count = token_counter(None, tiny_model_dir)
    assert count is not None
    out, rej = tmp_path / "o.jsonl", tmp_path / "r.jsonl"
    clean(
        src,
        out,
        rej,
        CleanOptions(max_tokens=count("A long question about many things\nok") - 1),
        count,
    )
    assert [r["instruction"] for r in read_jsonl(out)] == ["Q"]
    assert read_jsonl(rej)[0]["reason"] == "too long"


def test_token_bounds_need_a_tokenizer_and_vice_versa(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match="need a tokenizer: pass --config CONFIG or --tokenizer DIR"
    ):
        run(tmp_path, MIXED, min_tokens=3)
    with pytest.raises(DataError, match="only serve --min-tokens/--max-tokens"):
        clean(MIXED, tmp_path / "o.jsonl", tmp_path / "r.jsonl", CleanOptions(), lambda t: 1)
    with pytest.raises(DataError, match="not a folder; give a local tokenizer folder"):
        token_counter(None, tmp_path / "missing")


def test_unknown_shape_asks_for_the_answer_field(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"question": "q", "reply": "As an AI language model, no."}\n')
    with pytest.raises(DataError) as err:
        run(tmp_path, src)
    assert str(err.value) == (
        f"{src}:1: cannot tell which field holds the answer (row has: question, reply); name it "
        "with --answer-field FIELD (answer_fields: in a filters file)."
    )
    assert not (tmp_path / "out.jsonl").exists()
    kept, rejects, _ = run(tmp_path, src, answer_fields=["reply"])
    assert kept == [] and rejects[0]["reason"] == "slop"


def test_filters_file_and_flags(tmp_path: Path) -> None:
    filters = tmp_path / "filters.yml"
    filters.write_text("min_chars: 10\nslop_phrases: [delve]\nlang: en\n")
    options = load_clean_options(
        filters, {"min_chars": 3, "slop_phrases": ["tapestry"], "lang": None}
    )
    assert (options.min_chars, options.slop_phrases, options.lang) == (
        3,
        ["delve", "tapestry"],
        "en",
    )
    filters.write_text("min_char: 10\nmax_chars: 5\n")
    with pytest.raises(ConfigError) as err:
        load_clean_options(filters, {})
    assert str(err.value) == f"{filters}: min_char: unknown key. Did you mean `min_chars`?"
    with pytest.raises(ConfigError) as err:
        load_clean_options(
            None, {"min_chars": 9, "max_chars": 5, "slop": False, "slop_phrases": ["x"]}
        )
    assert str(err.value) == (
        "flags: min_chars: 9 is larger than max_chars (5)\n"
        "flags: slop_phrases: applies to the slop check, which is off"
    )
    with pytest.raises(ConfigError, match="flags: lang: `xx` is not known; known: ar, be"):
        load_clean_options(None, {"lang": "xx"})


def test_options_that_would_do_nothing_are_errors() -> None:
    flags = {"min_lang_share": 0.5, "charset": False, "max_bad_chars": 2, "length_of": "answer"}
    with pytest.raises(ConfigError) as err:
        load_clean_options(None, flags)
    assert str(err.value).splitlines() == [
        "flags: min_lang_share: only applies with lang, which is off",
        "flags: max_bad_chars: only applies with charset, which is off",
        "flags: length_of: only applies with min/max chars or tokens, which is off",
    ]
    options = {"slop": False, "empty_answers": False, "answer_fields": ["reply"]}
    with pytest.raises(ConfigError, match="answer_fields: only applies with an answer check"):
        load_clean_options(None, options)
