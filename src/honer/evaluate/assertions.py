"""Level-1 assertion evals: cheap, deterministic checks of generated text.

Each check is a small pure function `(output, expected) -> float` returning a score in [0, 1]
(1 = pass); a case passes when the score is at least the check's `threshold` (default 1.0).
The YAML `evals:` section names checks by `type`:

    evals:
      checks:
        - {type: regex, pattern: "^SELECT "}          # must match (re.search)
        - {type: not_regex, pattern: "As an AI"}       # must not match
        - {type: json}                                 # output parses as JSON
        - {type: json_schema, schema: {type: object, required: [name]}}
        - {type: exact}                                # equals the expected answer (stripped)
        - {type: contains}                             # contains the expected answer (or `value`)
        - {type: callable, function: "mypkg.checks:score", threshold: 0.5}
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from honer.config.evals import KINDS, spec_problems
from honer.errors import ConfigError

__all__ = ["KINDS", "build_check", "run_checks", "spec_problems"]

CheckFn = Callable[[str, str | None], float]


@dataclass(frozen=True)
class Check:
    """A configured check: its display name, scoring function and pass threshold."""

    name: str
    score: CheckFn
    threshold: float = 1.0


@dataclass
class CheckResult:
    name: str
    passed: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        total = self.passed + self.failed
        return self.passed / total if total else 0.0


def _regex(pattern: str, negate: bool) -> CheckFn:
    compiled = re.compile(pattern)

    def score(output: str, expected: str | None) -> float:
        return float((compiled.search(output) is None) == negate)

    return score


def _parse_json(output: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(output)
    except (json.JSONDecodeError, ValueError):
        return False, None


def _json(output: str, expected: str | None) -> float:
    return float(_parse_json(output)[0])


def _json_schema(schema: dict[str, Any]) -> CheckFn:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)

    def score(output: str, expected: str | None) -> float:
        ok, value = _parse_json(output)
        return float(ok and validator.is_valid(value))

    return score


def _exact(output: str, expected: str | None) -> float:
    return float(expected is not None and output.strip() == expected.strip())


def _contains(value: str | None) -> CheckFn:
    def score(output: str, expected: str | None) -> float:
        needle = value if value is not None else expected
        return float(needle is not None and needle.strip() in output)

    return score


def _callable(spec: str, where: str) -> CheckFn:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError([(f"{where}.function", f"`{spec}` must look like `module:function`.")])
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError([(f"{where}.function", f"cannot import `{spec}`: {err}")]) from None

    def score(output: str, expected: str | None) -> float:
        result = fn(output, expected)
        if isinstance(result, bool):
            return float(result)
        if isinstance(result, int | float):
            return float(result)
        raise TypeError(f"{spec} returned {type(result).__name__}; return a bool or a number")

    return score


def build_check(spec: dict[str, Any], where: str) -> Check:
    """A `Check` from one YAML entry; a bad entry is a `ConfigError` naming its key path (the
    same problems `honer validate` reports, plus a `callable` that does not import)."""
    problems = spec_problems(spec, where)
    if problems:
        raise ConfigError(problems)
    kind = spec.get("type")
    if kind == "judge":
        raise ConfigError(
            [
                (
                    f"{where}.type",
                    "a `judge` check asks a model: it runs in `honer evaluate`, and in `honer "
                    "data filter/synth --judge NAME`, not as a level-1 check or a reward.",
                )
            ]
        )
    threshold = float(spec.get("threshold", 1.0))
    name = str(spec.get("name") or kind)

    if kind in ("regex", "not_regex"):
        fn = _regex(str(spec["pattern"]), negate=kind == "not_regex")
    elif kind == "json":
        fn = _json
    elif kind == "json_schema":
        fn = _json_schema(spec["schema"])
    elif kind == "exact":
        fn = _exact
    elif kind == "contains":
        fn = _contains(spec.get("value"))
    else:  # callable (spec_problems admits no other kind)
        fn = _callable(str(spec["function"]), where)
    return Check(name=name, score=fn, threshold=threshold)


def run_checks(checks: list[Check], cases: list[dict[str, Any]]) -> tuple[list[CheckResult], float]:
    """Score every case (`prompt`, `output`, `expected`) with every check.

    Returns per-check results and the overall pass rate (a case passes when all checks pass).
    """
    results = [CheckResult(c.name) for c in checks]
    all_passed = 0
    for case in cases:
        ok_all = True
        for check, result in zip(checks, results, strict=True):
            value = check.score(case["output"], case.get("expected"))
            if value >= check.threshold:
                result.passed += 1
            else:
                ok_all = False
                result.failed += 1
                result.failures.append({**case, "check": check.name, "score": value})
        all_passed += ok_all
    return results, all_passed / len(cases) if cases else 0.0
