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
KINDS = ("regex", "not_regex", "json", "json_schema", "exact", "contains", "callable")


def spec_problems(spec: Any, where: str) -> list[tuple[str, str]]:
    """Config-time checks of one entry, without importing user code (for `honer validate`)."""
    if not isinstance(spec, dict):
        return [(where, "each check must be a mapping with a `type`.")]
    kind = spec.get("type")
    if kind not in KINDS:
        return [(f"{where}.type", f"unknown check `{kind}`; allowed: {', '.join(KINDS)}.")]
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
