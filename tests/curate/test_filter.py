"""`honer data filter`: the config's level-1 checks on the training answers, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.config.load import config_from_dict
from honer.curate.filter import LengthBounds, filter_rows, selected_checks
from honer.errors import ConfigError, DataError
from tests.curate.helpers import read_jsonl
from tests.evaluate.test_judge import _Stub, stub_server  # noqa: F401 (the fixture)

runner = CliRunner()


def chat(question: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


ROWS = [
    chat("count products", "SELECT COUNT(*) FROM products"),
    chat("drop it", "DROP TABLE products"),  # fails both checks
    chat("say hi", "Hello!"),  # fails select
    chat("all cities", "SELECT * FROM cities; DROP TABLE x"),  # fails no_drop
]
CHECKS = [
    {"type": "regex", "pattern": "^SELECT ", "name": "select"},
    {"type": "not_regex", "pattern": "DROP", "name": "no_drop"},
    {"type": "exact", "name": "exact_match"},
]


def _files(tmp_path: Path, rows: list[dict], extra_lines: str = "") -> tuple[Path, Path]:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra_lines)
    cfg = tmp_path / "run.yml"
    cfg.write_text(
        "base_model: some/model\noutput_dir: out\n"
        f"datasets:\n  - path: {data}\n    type: chat_template\n"
        f"evals:\n  checks: {json.dumps(CHECKS)}\n"
    )
    return data, cfg


def test_filter_keeps_passing_rows_and_counts_each_check(tmp_path: Path) -> None:
    data, cfg = _files(tmp_path, ROWS, "{not json\n")
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(
        app, ["data", "filter", str(cfg), "-o", str(out), "--check", "select", "--check", "no_drop"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert read_jsonl(out) == [ROWS[0]]
    dropped = read_jsonl(tmp_path / "kept.dropped.jsonl")
    assert [(d["source"], d["reasons"]) for d in dropped] == [
        (f"{data}:2", ["check select: failed", "check no_drop: failed"]),
        (f"{data}:3", ["check select: failed"]),
        (f"{data}:4", ["check no_drop: failed"]),
        (f"{data}:5", [dropped[3]["reasons"][0]]),
    ]
    assert dropped[3]["reasons"][0].startswith("malformed: invalid JSON")
    assert [d.get("row") for d in dropped[:3]] == ROWS[1:]
    # Nothing lost: 5 lines in, 1 kept + 4 dropped; failures counted per check, once per row.
    assert "wrote " + str(out) + " (1 rows)" in result.output
    assert "(4 rows)" in result.output
    cells = [
        [c.strip() for c in line.strip("│┃ ").split("│")] for line in result.output.splitlines()
    ]
    counts = {c[0]: c[1] for c in cells if len(c) == 2 and c[1].isdigit()}
    assert (counts["in"], counts["kept"], counts["rejected"]) == ("5", "1", "4")
    assert (counts["select"], counts["no_drop"]) == ("2", "2")


def test_checks_that_need_a_reference_are_refused(tmp_path: Path) -> None:
    _, cfg = _files(tmp_path, ROWS)
    from honer.config import load_config

    with pytest.raises(ConfigError) as err:
        selected_checks(load_config(cfg), [])
    [(where, message)] = err.value.problems
    assert where == "evals.checks[2].type"
    assert message.startswith("`exact` compares an answer with its reference")
    with pytest.raises(ConfigError, match="no check named nope; the config has: select, no_drop"):
        selected_checks(load_config(cfg), ["nope"])


def test_length_bounds_and_every_answer_of_a_conversation(tmp_path: Path) -> None:
    two_turns = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "SELECT 1"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "no"},
        ]
    }
    data, cfg = _files(tmp_path, [ROWS[0], two_turns])
    checks = selected_checks(
        config_from_dict(
            {
                "base_model": "m",
                "output_dir": "o",
                "datasets": [{"path": str(data), "type": "chat_template"}],
                "evals": {"checks": CHECKS[:1]},
            }
        ),
        [],
    )
    out, dropped = tmp_path / "k.jsonl", tmp_path / "d.jsonl"
    result = filter_rows(data, out, dropped, checks, LengthBounds(max_chars=20))
    assert read_jsonl(out) == []
    assert [d["reasons"] for d in read_jsonl(dropped)] == [
        ["too long: 29 characters > 20"],
        ["check select: failed (answer 2)"],
    ]
    assert (result.tally.rows_in, result.tally.kept, result.check_failures["select"]) == (2, 0, 1)
    with pytest.raises(DataError, match="must differ from --out"):
        filter_rows(data, out, out, checks)


def test_a_raising_callable_check_is_named(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_checks.py").write_text("def boom(output, expected):\n    raise KeyError('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data, _ = _files(tmp_path, ROWS[:1])
    cfg = config_from_dict(
        {
            "base_model": "m",
            "output_dir": "o",
            "datasets": [{"path": str(data), "type": "chat_template"}],
            "evals": {"checks": [{"type": "callable", "function": "my_checks:boom", "name": "b"}]},
        }
    )
    with pytest.raises(DataError, match=r"the check `b` failed on an answer: KeyError: 'x'"):
        filter_rows(data, tmp_path / "k.jsonl", tmp_path / "d.jsonl", selected_checks(cfg, []))


def test_the_judge_is_asked_about_rows_that_pass_the_checks(stub_server, tmp_path: Path) -> None:  # noqa: F811
    rows = [ROWS[0], ROWS[1], chat("all cities", "SELECT * FROM cities")]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "run.yml"
    cfg.write_text(
        f"base_model: m\noutput_dir: out\ndatasets:\n  - path: {data}\n    type: chat_template\n"
        "evals:\n  checks:\n    - {type: regex, pattern: '^SELECT ', name: select}\n"
        f"    - {{type: judge, name: grader, model: stub, base_url: '{stub_server}', max_retries: 0}}\n"
    )
    _Stub.replies = ['{"verdict": "pass"}', '{"verdict": "fail", "critique": "no LIMIT"}']
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(app, ["data", "filter", str(cfg), "-o", str(out), "--judge", "grader"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert read_jsonl(out) == [ROWS[0]]
    reasons = [d["reasons"] for d in read_jsonl(tmp_path / "kept.dropped.jsonl")]
    assert reasons == [["check select: failed"], ["judge grader: fail: no LIMIT"]]
    # Only the 2 rows that passed the checks were sent to the judge, with their request.
    assert len(_Stub.seen) == 2
    assert "Request: all cities" in _Stub.seen[1]["body"]["messages"][0]["content"]


def test_checks_can_come_from_an_evals_file(tmp_path: Path) -> None:
    data, cfg = _files(tmp_path, ROWS)
    evals = tmp_path / "evals.yml"
    evals.write_text("checks:\n  - {type: not_regex, pattern: DROP, name: no_drop}\n")
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(app, ["data", "filter", str(cfg), "-o", str(out), "--evals", str(evals)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert read_jsonl(out) == [ROWS[0], ROWS[2]]
    evals.write_text("checks:\n  - {type: regex}\n")
    bad = runner.invoke(app, ["data", "filter", str(cfg), "-o", str(out), "--evals", str(evals)])
    assert isinstance(bad.exception, ConfigError)
    assert bad.exception.problems == [
        ("--evals checks[0].pattern", "required for a `regex` check.")
    ]
