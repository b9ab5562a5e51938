"""`honer data filter CONFIG`: the config's level-1 checks applied to the training answers.

The same `evals.checks` that `honer evaluate` runs on a model's generations (and GRPO uses as
rewards) are run here on the answers the model would be *trained* on, with no generation: a
training row whose answer is not valid JSON, does not start with `SELECT`, or fails the user's
`callable` check teaches the failure the evals will later count. Each row's answers (every
assistant turn, found by the row's shape as `honer data clean` finds them) must pass every
selected check; answer-length bounds (characters, or tokens with the config's tokenizer) can be
added.

Rows stream from the file to two JSON Lines outputs: the kept rows unchanged, and the dropped
ones with their place (`file:line`) and every reason (each failed check, a length bound, or an
unreadable line). Nothing is lost: kept + dropped = rows in. The summary counts failures per
check, so a check that drops half the data is visible before anyone trains on the rest.

`exact` and a `contains` without `value` compare with a reference answer, and a training answer
is its own reference: they are refused here with a message rather than passing every row.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honer.config.schema import Config
from honer.curate.ingest.fields import answer_texts
from honer.curate.ingest.output import JsonlWriter
from honer.data.readers.lines import Meter
from honer.data.readers.records import Tally
from honer.data.readers.rowfiles import iter_row_file
from honer.errors import ConfigError, DataError

TokenCounter = Any  # Callable[[str], int]


@dataclass
class LengthBounds:
    """Answer-length bounds (None: no bound). Tokens are counted with the config's tokenizer."""

    min_chars: int | None = None
    max_chars: int | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None

    @property
    def uses_tokens(self) -> bool:
        return self.min_tokens is not None or self.max_tokens is not None

    def problems(self, answer: str, count_tokens: TokenCounter | None) -> list[str]:
        found = []
        chars = len(answer)
        if self.min_chars is not None and chars < self.min_chars:
            found.append(f"too short: {chars} characters < {self.min_chars}")
        if self.max_chars is not None and chars > self.max_chars:
            found.append(f"too long: {chars} characters > {self.max_chars}")
        if self.uses_tokens and count_tokens is not None:
            tokens = count_tokens(answer)
            if self.min_tokens is not None and tokens < self.min_tokens:
                found.append(f"too short: {tokens} tokens < {self.min_tokens}")
            if self.max_tokens is not None and tokens > self.max_tokens:
                found.append(f"too long: {tokens} tokens > {self.max_tokens}")
        return found


@dataclass
class FilterResult:
    """Rows in / kept / dropped (by first reason), and failures per check."""

    tally: Tally
    check_failures: Counter[str] = field(default_factory=Counter)
    checks: list[str] = field(default_factory=list)


def selected_checks(cfg: Config, names: list[str]) -> list[Any]:
    """The config's `evals.checks` (or those named), built as `honer evaluate` builds them."""
    from honer.evaluate.assertions import build_check

    if cfg.evals is None:
        raise ConfigError(
            [
                (
                    "evals",
                    "`honer data filter` runs the config's `evals.checks`; the config has none.",
                )
            ]
        )
    specs = [
        (f"evals.checks[{i}]", spec)
        for i, spec in enumerate(cfg.evals.checks)
        # A judge reads generations with a model: run by `honer evaluate`, not here (a judge
        # named with --check is refused by build_check).
        if spec.get("type") != "judge" or spec.get("name", "judge") in names
    ]
    checks = [(where, spec, build_check(spec, where)) for where, spec in specs]
    if names:
        known = [c.name for _, _, c in checks]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                [
                    (
                        "--check",
                        f"no check named {', '.join(unknown)}; the config has: {', '.join(known)}.",
                    )
                ]
            )
        checks = [item for item in checks if item[2].name in names]
    for where, spec, _ in checks:
        kind = spec.get("type")
        if kind == "exact" or (kind == "contains" and spec.get("value") is None):
            raise ConfigError(
                [
                    (
                        f"{where}.type",
                        f"`{kind}` compares an answer with its reference, and a training answer "
                        "is its own reference: leave it out with --check NAME (or give "
                        "`contains` a `value`).",
                    )
                ]
            )
    return [check for _, _, check in checks]


def filter_rows(
    source: Path,
    out: Path,
    dropped: Path,
    checks: list[Any],
    bounds: LengthBounds | None = None,
    count_tokens: TokenCounter | None = None,
    answer_fields: list[str] | None = None,
    meter: Meter | None = None,
    judge: Any = None,
) -> FilterResult:
    """Stream `source` and write the rows whose answers pass every check to `out`, the others
    (with `source` place and `reasons`) to `dropped`."""
    if out.resolve() == dropped.resolve():
        raise DataError(f"--dropped {dropped}: must differ from --out.")
    bounds = bounds or LengthBounds()
    if not checks and bounds == LengthBounds() and judge is None:
        raise DataError("nothing to filter by: select a check, or set an answer-length bound.")
    result = FilterResult(
        Tally(), checks=[c.name for c in checks] + ([f"judge {judge.name}"] if judge else [])
    )
    with ExitStack() as stack:
        kept = stack.enter_context(JsonlWriter(out))
        bad = stack.enter_context(JsonlWriter(dropped))
        for record in iter_row_file(source, meter=meter):
            if record.row is None:
                result.tally.reject(record.reason, record.where, record.problem or "")
                bad.write(
                    {"source": record.where, "reasons": [f"{record.reason}: {record.problem}"]}
                )
                continue
            answers = answer_texts(record.row, answer_fields)
            if answers is None:
                raise DataError(
                    f"{record.where}: cannot tell which field holds the answer (row has: "
                    f"{', '.join(record.row)}); name it with --answer-field FIELD."
                )
            reasons = _row_reasons(answers, checks, bounds, count_tokens, result.check_failures)
            if not reasons and judge is not None:
                reasons = _judge_reasons(judge, record.row, answers, result.check_failures)
            if not reasons:
                kept.write(record.row)
                result.tally.keep()
                continue
            first = reasons[0].split(":", 1)[0]
            result.tally.reject(first, record.where, reasons[0])
            bad.write({"source": record.where, "reasons": reasons, "row": record.row})
    return result


def _row_reasons(
    answers: list[str],
    checks: list[Any],
    bounds: LengthBounds,
    count_tokens: TokenCounter | None,
    failures: Counter[str],
) -> list[str]:
    """Every reason to drop the row: each failed check (counted once per row), length bounds."""
    if not answers:
        return ["no answer: the row has no assistant turn"]
    reasons = []
    for check in checks:
        failed = [i for i, answer in enumerate(answers) if not _passes(check, answer)]
        if failed:
            failures[check.name] += 1
            which = (
                "" if len(answers) == 1 else f" (answer {', '.join(str(i + 1) for i in failed)})"
            )
            reasons.append(f"check {check.name}: failed{which}")
    for answer in answers:
        reasons += bounds.problems(answer, count_tokens)
    return reasons


def _judge_reasons(
    judge: Any, row: dict[str, Any], answers: list[str], failures: Counter[str]
) -> list[str]:
    """The judge's verdict on a row that passed the checks (asked only then: it costs a model
    call). The request shown to it is the row's last user turn or instruction, when it has one."""
    from honer.curate.synth import row_pair

    pair = row_pair(row)
    case = {"prompt": pair.question if pair else "", "output": answers[-1]}
    [verdict] = judge.judge([case])
    if verdict.verdict == "pass":
        return []
    failures[f"judge {judge.name}"] += 1
    critique = f": {verdict.critique}" if verdict.critique else ""
    return [f"judge {judge.name}: {verdict.verdict}{critique}"]


def _passes(check: Any, answer: str) -> bool:
    try:
        return check.score(answer, None) >= check.threshold
    except Exception as err:
        raise DataError(
            f"the check `{check.name}` failed on an answer: {type(err).__name__}: {err}"
        ) from None
