"""Level-2 evals: an LLM judge (`type: judge` in `evals.checks`).

When the level-1 assertions pass and the answers are still poor, a judge model reads each case
(the prompt, the answer, the reference answer, the level-1 results, and few-shot critiques from
a domain expert) and gives a verdict, pass or fail, with a critique. The judge is either

* a local causal LM run by honer (`model:` a folder, a hub name or a .gguf file), greedy, with
  its own chat template, or
* an OpenAI-compatible endpoint (`base_url:` + `model:`), its API key read from the environment
  variable `api_key_env` names: the key is sent in the request header and never written to a
  file, a log or an error message.

The judge's answer is parsed into `{verdict, critique}`: a JSON object (`{"verdict": "pass",
"critique": "..."}`, also inside a ```json fence or surrounded by text), or lines `verdict: pass`
/ `critique: ...`. `pass`/`fail` (and yes/no, good/bad, correct/incorrect) are understood; any
other output is asked again up to `max_retries` times and then counted as `unparsed`, never as a
pass. Per-case results go to `evals/judge.jsonl`, the counts to `results.json` and the report.

Config keys of a judge entry: `model` (required), `base_url`, `api_key_env`, `prompt` (a Jinja
template) or `prompt_file`, `few_shot` (a JSONL or CSV file of cases with `verdict` and
`critique`, e.g. an expert-filled export), `max_retries` (default 2), `max_new_tokens` (default
256), `timeout` (seconds per request, default 60), `name`.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honer.config.evals import judge_problems
from honer.errors import ConfigError
from honer.evaluate.llm import TextModel

DEFAULT_PROMPT = """You are a strict reviewer of a model's answers. Judge whether the answer \
fully and correctly does what the request asks.
{% if few_shot %}
Examples of an expert's judgements:
{% for ex in few_shot %}
Request: {{ ex.prompt }}
Answer: {{ ex.answer }}
Verdict: {{ ex.verdict }}
Critique: {{ ex.critique }}
{% endfor %}{% endif %}
Now judge this case.
Request: {{ prompt }}
Answer: {{ answer }}
{% if reference %}Reference answer: {{ reference }}
{% endif %}{% if checks %}Automatic checks: {% for name, ok in checks.items() %}{{ name }} \
{{ "passed" if ok else "failed" }}{% if not loop.last %}, {% endif %}{% endfor %}
{% endif %}
Reply with JSON only: {"verdict": "pass" or "fail", "critique": "one or two sentences"}"""

PASS_WORDS = {"pass", "passed", "yes", "good", "correct", "acceptable", "true"}
FAIL_WORDS = {"fail", "failed", "no", "bad", "incorrect", "wrong", "unacceptable", "false"}


@dataclass
class Verdict:
    verdict: str  # pass | fail | unparsed
    critique: str
    raw: str
    attempts: int


@dataclass
class JudgeSummary:
    name: str
    counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.counts.values())
        return {
            "name": self.name,
            "pass": self.counts["pass"],
            "fail": self.counts["fail"],
            "unparsed": self.counts["unparsed"],
            "pass_rate": self.counts["pass"] / total if total else 0.0,
        }


# --- parsing ----------------------------------------------------------------------------------


def _word(value: Any) -> str | None:
    text = str(value).strip().strip(".\"'*").lower()
    if text in PASS_WORDS:
        return "pass"
    if text in FAIL_WORDS:
        return "fail"
    return None


def parse_verdict(text: str) -> tuple[str, str] | None:
    """(`pass`|`fail`, critique) from a judge's output, or None when it says neither clearly."""
    for match in re.finditer(r"\{.*?\}", text, re.S):
        try:
            obj = json.loads(match.group())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "verdict" in obj:
            word = _word(obj["verdict"])
            if word is not None:
                return word, str(obj.get("critique") or "").strip()
    line = re.search(r"^\W*verdict\W*:\s*(\S+)", text, re.I | re.M)
    if line:
        word = _word(line.group(1))
        if word is not None:
            critique = re.search(r"^\W*critique\W*:\s*(.+)$", text, re.I | re.M)
            return word, critique.group(1).strip() if critique else ""
    return None


# --- the spec ---------------------------------------------------------------------------------


def read_few_shot(path: Path, where: str) -> list[dict[str, str]]:
    """Few-shot critiques: JSONL or CSV rows with the case and its verdict and critique; an
    export filled by an expert is read from its `expert_verdict` / `expert_critique` columns."""
    if not path.is_file():
        raise ConfigError([(f"{where}.few_shot", f"`{path}` does not exist.")])
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    examples = []
    for row in rows:
        verdict = row.get("expert_verdict") or row.get("verdict")
        critique = row.get("expert_critique") or row.get("critique") or ""
        if not verdict:
            continue
        examples.append(
            {
                "prompt": str(row.get("prompt", "")),
                "answer": str(row.get("answer", row.get("output", ""))),
                "verdict": str(verdict),
                "critique": str(critique),
            }
        )
    return examples


# --- the judge --------------------------------------------------------------------------------


class Judge:
    """One configured judge: renders the prompt, asks the model, parses, retries."""

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        problems = judge_problems(spec, where)
        if problems:
            raise ConfigError(problems)
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.name = str(spec.get("name") or "judge")
        self.spec = spec
        self.where = where
        self.max_retries = int(spec.get("max_retries", 2))
        self.max_new_tokens = int(spec.get("max_new_tokens", 256))
        text = DEFAULT_PROMPT
        if spec.get("prompt_file"):
            prompt_path = Path(spec["prompt_file"])
            if not prompt_path.is_file():
                raise ConfigError([(f"{where}.prompt_file", f"`{prompt_path}` does not exist.")])
            text = prompt_path.read_text(encoding="utf-8")
        elif spec.get("prompt"):
            text = str(spec["prompt"])
        try:
            self.template = ImmutableSandboxedEnvironment().from_string(text)
        except Exception as err:
            raise ConfigError([(f"{where}.prompt", f"not a valid Jinja template: {err}")]) from None
        self.few_shot = read_few_shot(Path(spec["few_shot"]), where) if spec.get("few_shot") else []
        self.model = TextModel(spec, where)

    def render(self, case: dict[str, Any]) -> str:
        try:
            return self.template.render(
                prompt=case.get("prompt", ""),
                answer=case.get("output", ""),
                reference=case.get("expected"),
                checks=case.get("checks", {}),
                few_shot=self.few_shot,
            )
        except Exception as err:
            raise ConfigError([(f"{self.where}.prompt", f"the template fails: {err}")]) from None

    def judge(self, cases: list[dict[str, Any]]) -> list[Verdict]:
        """A verdict per case, in order (all asked together, then the unparsed ones again)."""
        prompts = [self.render(c) for c in cases]
        verdicts: list[Verdict | None] = [None] * len(cases)
        raw = [""] * len(cases)
        pending = list(range(len(cases)))
        for attempt in range(1, self.max_retries + 2):
            answers = self.model.ask([prompts[i] for i in pending])
            still = []
            for i, text in zip(pending, answers, strict=True):
                raw[i] = text
                parsed = parse_verdict(text)
                if parsed is None:
                    still.append(i)
                else:
                    verdicts[i] = Verdict(parsed[0], parsed[1], text, attempt)
            pending = still
            if not pending:
                break
        for i in pending:
            verdicts[i] = Verdict("unparsed", "", raw[i], self.max_retries + 1)
        return [v for v in verdicts if v is not None]


def run_judges(
    specs: list[tuple[str, dict[str, Any]]], cases: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[JudgeSummary]]:
    """Every judge on every case: per-case records (for judge.jsonl) and a summary per judge."""
    records: list[dict[str, Any]] = [
        {"case": i, "prompt": c.get("prompt"), "output": c.get("output")}
        for i, c in enumerate(cases)
    ]
    summaries = []
    for where, spec in specs:
        judge = Judge(spec, where)
        summary = JudgeSummary(judge.name)
        for record, verdict in zip(records, judge.judge(cases), strict=True):
            summary.counts[verdict.verdict] += 1
            record[judge.name] = {
                "verdict": verdict.verdict,
                "critique": verdict.critique,
                "attempts": verdict.attempts,
                "raw": verdict.raw,
            }
        summaries.append(summary)
    return records, summaries
