"""Assertion evals count passes and failures exactly on a fixture of generations."""

from __future__ import annotations

import pytest

from honer.errors import ConfigError
from honer.evaluate.assertions import build_check, run_checks

CASES = [
    {
        "prompt": "p1",
        "output": '{"name": "Ann", "age": 3}',
        "expected": '{"name": "Ann", "age": 3}',
    },
    {"prompt": "p2", "output": '{"age": 3}', "expected": '{"name": "Bob"}'},
    {"prompt": "p3", "output": "As an AI language model I cannot", "expected": "SELECT 1 cannot"},
    {"prompt": "p4", "output": "SELECT * FROM t", "expected": "SELECT * FROM t"},
]


def rates(spec: dict) -> tuple[int, int]:
    [result], _ = run_checks([build_check(spec, "evals.checks[0]")], CASES)
    return result.passed, result.failed


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "regex", "pattern": "^SELECT "}, (1, 3)),
        ({"type": "not_regex", "pattern": "As an AI"}, (3, 1)),
        ({"type": "json"}, (2, 2)),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["name"]}}, (1, 3)),
        ({"type": "exact"}, (2, 2)),
        ({"type": "contains", "value": '"age"'}, (2, 2)),
        ({"type": "contains"}, (2, 2)),
        ({"type": "callable", "function": "tests.evaluate.checks_fixture:word_overlap"}, (2, 2)),
        (
            {
                "type": "callable",
                "function": "tests.evaluate.checks_fixture:word_overlap",
                "threshold": 0.3,
            },
            (3, 1),
        ),
    ],
)
def test_each_check_counts_passes_and_fails(spec: dict, expected: tuple[int, int]) -> None:
    assert rates(spec) == expected


def test_overall_pass_rate_needs_every_check() -> None:
    checks = [
        build_check({"type": "json"}, "c[0]"),
        build_check({"type": "exact"}, "c[1]"),
    ]
    results, overall = run_checks(checks, CASES)
    assert overall == 0.25  # only p1 passes both
    assert [f["prompt"] for f in results[1].failures] == ["p2", "p3"]
    assert results[0].pass_rate == 0.5


@pytest.mark.parametrize(
    ("spec", "path", "needle"),
    [
        ({"type": "regex"}, "evals.checks[0].pattern", "required for a `regex` check"),
        (
            {"type": "regex", "pattern": "("},
            "evals.checks[0].pattern",
            "invalid regular expression",
        ),
        ({"type": "bleu"}, "evals.checks[0].type", "unknown check `bleu`"),
        (
            {"type": "callable", "function": "nomodule"},
            "evals.checks[0].function",
            "module:function",
        ),
        (
            {"type": "callable", "function": "no_such_mod:f"},
            "evals.checks[0].function",
            "cannot import",
        ),
        ({"type": "json_schema", "schema": "x"}, "evals.checks[0].schema", "JSON schema object"),
    ],
)
def test_bad_check_specs_name_the_key(spec: dict, path: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_check(spec, "evals.checks[0]")
    [(where, msg)] = info.value.problems
    assert where == path and needle in msg
