"""What an `evals.checks` entry must hold, checked with the config (no user code imported).

`honer.evaluate.assertions` builds the checks from the same table.
"""

from __future__ import annotations

import re
from typing import Any

REQUIRED = {
    "regex": "pattern",
    "not_regex": "pattern",
    "json_schema": "schema",
    "callable": "function",
}
KINDS = ("regex", "not_regex", "json", "json_schema", "exact", "contains", "callable", "judge")
# Keys of a `type: judge` entry (honer.evaluate.judge).
JUDGE_KEYS = {
    "type",
    "name",
    "model",
    "base_url",
    "api_key_env",
    "prompt",
    "prompt_file",
    "few_shot",
    "max_retries",
    "max_new_tokens",
    "timeout",
}


def spec_problems(spec: Any, where: str) -> list[tuple[str, str]]:
    """Config-time checks of one entry, without importing user code (for `honer validate`)."""
    if not isinstance(spec, dict):
        return [(where, "each check must be a mapping with a `type`.")]
    kind = spec.get("type")
    if kind not in KINDS:
        return [(f"{where}.type", f"unknown check `{kind}`; allowed: {', '.join(KINDS)}.")]
    if kind == "judge":
        return judge_problems(spec, where)
    need = REQUIRED.get(kind)
    if need and need not in spec:
        return [(f"{where}.{need}", f"required for a `{kind}` check.")]
    if kind == "json_schema" and not isinstance(spec["schema"], dict):
        return [(f"{where}.schema", "must be a JSON schema object.")]
    if kind in ("regex", "not_regex"):
        try:
            re.compile(str(spec["pattern"]))
        except re.error as err:
            return [(f"{where}.pattern", f"invalid regular expression: {err}")]
    return []


def judge_problems(spec: dict[str, Any], where: str) -> list[tuple[str, str]]:
    """Config-time checks of a judge entry (no model loaded, nothing imported)."""
    problems = []
    for key in sorted(set(spec) - JUDGE_KEYS):
        problems.append(
            (f"{where}.{key}", f"unknown judge key; known: {', '.join(sorted(JUDGE_KEYS))}.")
        )
    if not spec.get("model"):
        problems.append(
            (
                f"{where}.model",
                "required: a local model (folder, hub name, .gguf) or, "
                "with `base_url`, the endpoint's model name.",
            )
        )
    if "prompt" in spec and "prompt_file" in spec:
        problems.append((f"{where}.prompt_file", "set together with `prompt`: keep one."))
    env = spec.get("api_key_env")
    if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(env)):
        problems.append(
            (
                f"{where}.api_key_env",
                "must name an environment variable (e.g. OPENAI_API_KEY), not hold the key itself.",
            )
        )
    elif env is not None and not spec.get("base_url"):
        problems.append((f"{where}.api_key_env", "applies to an endpoint judge: set `base_url`."))
    for key in ("max_retries", "max_new_tokens", "timeout"):
        value = spec.get(key)
        if value is not None and (
            not isinstance(value, int | float) or value < (0 if key == "max_retries" else 1)
        ):
            problems.append(
                (f"{where}.{key}", "must be a number (max_retries ≥ 0, the others ≥ 1).")
            )
    return problems
