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

from honer.errors import ConfigError

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


_REQUIRED = {
    "regex": "pattern",
    "not_regex": "pattern",
    "json_schema": "schema",
    "callable": "function",
}
KINDS = ("regex", "not_regex", "json", "json_schema", "exact", "contains", "callable")


def spec_problems(spec: Any, where: str) -> list[tuple[str, str]]:
    """Config-time checks of one entry, without importing user code (for `honer validate`)."""
    if not isinstance(spec, dict):
        return [(where, "each check must be a mapping with a `type`.")]
    kind = spec.get("type")
    if kind not in KINDS:
        return [(f"{where}.type", f"unknown check `{kind}`; allowed: {', '.join(KINDS)}.")]
    need = _REQUIRED.get(kind)
    if need and need not in spec:
        return [(f"{where}.{need}", f"required for a `{kind}` check.")]
    if kind in ("regex", "not_regex"):
        try:
            re.compile(str(spec["pattern"]))
        except re.error as err:
            return [(f"{where}.pattern", f"invalid regular expression: {err}")]
    return []


def build_check(spec: dict[str, Any], where: str) -> Check:
    """A `Check` from one YAML entry; a bad entry is a `ConfigError` naming its key path."""
    kind = spec.get("type")
    threshold = float(spec.get("threshold", 1.0))
    name = str(spec.get("name") or kind)

    def need(key: str) -> Any:
        if key not in spec:
            raise ConfigError([(f"{where}.{key}", f"required for a `{kind}` check.")])
        return spec[key]

    if kind in ("regex", "not_regex"):
        try:
            fn = _regex(str(need("pattern")), negate=kind == "not_regex")
        except re.error as err:
            raise ConfigError(
                [(f"{where}.pattern", f"invalid regular expression: {err}")]
            ) from None
    elif kind == "json":
        fn = _json
    elif kind == "json_schema":
        schema = need("schema")
        if not isinstance(schema, dict):
            raise ConfigError([(f"{where}.schema", "must be a JSON schema object.")])
        fn = _json_schema(schema)
    elif kind == "exact":
        fn = _exact
    elif kind == "contains":
        fn = _contains(spec.get("value"))
    elif kind == "callable":
        fn = _callable(str(need("function")), where)
    else:
        allowed = "regex, not_regex, json, json_schema, exact, contains, callable"
        raise ConfigError([(f"{where}.type", f"unknown check `{kind}`; allowed: {allowed}.")])
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
