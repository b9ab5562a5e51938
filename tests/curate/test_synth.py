"""`honer data synth`: seed rows rewritten by a model (a stub OpenAI-compatible server here),
kept only when they pass the checks and are new; every candidate kept or dropped with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from honer.cli.main import app
from honer.curate.synth import parse_pair, row_pair
from tests.curate.helpers import read_jsonl
from tests.evaluate.test_judge import _Stub, stub_server  # noqa: F401 (the fixture)

SYSTEM = {"role": "system", "content": "Reply with one SQL query."}


def chat(question: str, answer: str) -> dict:
    return {
        "messages": [
            SYSTEM,
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def test_pairs_are_read_and_written_back_in_the_seed_shape() -> None:
    seed = chat("count products", "SELECT COUNT(*) FROM products")
    pair = row_pair(seed)
    assert (pair.question, pair.answer) == ("count products", "SELECT COUNT(*) FROM products")
    assert pair.put(seed, "q", "a") == chat("q", "a")
    alpaca = {"instruction": "Add 1 and 1", "input": "", "output": "2"}
    assert row_pair(alpaca).put(alpaca, "Add 2 and 2", "4") == {
        "instruction": "Add 2 and 2",
        "input": "",
        "output": "4",
    }
    assert row_pair({"text": "plain"}) is None
    assert parse_pair('Sure: {"question": "q?", "answer": "a"} done') == ("q?", "a")
    assert parse_pair('```json\n{"question": "q", "answer": ""}\n```') is None
    assert parse_pair("no json") is None


def test_synth_keeps_new_rows_that_pass_the_checks(stub_server, tmp_path: Path) -> None:  # noqa: F811
    seeds = [
        chat("count products", "SELECT COUNT(*) FROM products"),
        chat("list cities", "SELECT * FROM cities"),
    ]
    seed_file = tmp_path / "seed.jsonl"
    seed_file.write_text("".join(json.dumps(r) + "\n" for r in seeds))
    cfg = tmp_path / "run.yml"
    cfg.write_text(
        f"base_model: m\noutput_dir: out\ndatasets:\n  - path: {seed_file}\n    type: chat_template\n"
        "evals:\n  checks:\n    - {type: regex, pattern: '^SELECT ', name: select}\n"
    )
    _Stub.replies = [
        '{"question": "count the cities", "answer": "SELECT COUNT(*) FROM cities"}',
        "I would rather not",
        '{"question": "remove it", "answer": "DROP TABLE products"}',
        '{"question": "List cities", "answer": "SELECT *  FROM cities"}',  # the seed, refolded
        '```json\n{"question": "list towns", "answer": "SELECT * FROM towns"}\n```',
        '{"question": "count the cities", "answer": "SELECT COUNT(*) FROM cities"}',
    ]
    out = tmp_path / "new.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "synth",
            str(cfg),
            "-o",
            str(out),
            "--model",
            "stub",
            "--base-url",
            stub_server,
            "--per-row",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    kept = read_jsonl(out)
    assert [({k: v for k, v in r.items() if k != "provenance"}, r["provenance"]) for r in kept] == [
        (
            chat("count the cities", "SELECT COUNT(*) FROM cities"),
            {"seed": f"{seed_file}:1", "model": "stub", "attempt": 1},
        ),
        (
            chat("list towns", "SELECT * FROM towns"),
            {"seed": f"{seed_file}:2", "model": "stub", "attempt": 2},
        ),
    ]
    dropped = read_jsonl(tmp_path / "new.dropped.jsonl")
    assert [(d["source"].rsplit(":", 1)[1], d["reason"].split(":")[0]) for d in dropped] == [
        ("1", "unparsed"),
        ("1", "check select"),
        ("2", "duplicate"),
        ("2", "duplicate"),
    ]
    assert len(kept) + len(dropped) == 6  # every candidate accounted for
    assert len(_Stub.seen) == 6
    asked = _Stub.seen[0]["body"]["messages"][0]["content"]
    assert "Request: count products" in asked and "Answer: SELECT COUNT(*) FROM products" in asked
    assert _Stub.seen[0]["body"]["temperature"] == 0.8
    assert "wrote " in result.output and "(2 new rows from 2 seeds)" in result.output


def test_a_seed_of_another_shape_names_its_line(tmp_path: Path) -> None:
    from honer.curate.synth import synthesize
    from honer.errors import DataError

    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps(chat("q", "a")) + "\n" + json.dumps({"text": "plain"}) + "\n")

    class Never:
        name = "never"

        def ask(self, prompts: list[str]) -> list[str]:
            raise AssertionError("no model call before the seeds are read")

    import pytest

    with pytest.raises(DataError, match=rf"{seed}:2: a seed must be a chat"):
        synthesize(seed, tmp_path / "o.jsonl", tmp_path / "d.jsonl", Never(), [])
