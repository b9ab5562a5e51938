"""`honer data synth CONFIG`: new training rows rewritten from seed rows, checked before kept.

For each seed row (a chat with a user request and an assistant answer, or an alpaca row), a text
model (`honer.evaluate.llm.TextModel`: a local model or an OpenAI-compatible endpoint) is asked
`--per-row` times to write a new request of the same kind and its answer: a paraphrase, or the
same task with other values (another column, number, city). Its reply must be a JSON object
`{"question": ..., "answer": ...}`; the new row keeps the seed's shape (system message, other
fields) with the two texts replaced, and records where it came from under `provenance` (the seed's
`file:line`, the model, the attempt).

A candidate is kept only when its answer passes the config's level-1 checks (the ones `honer data
filter` runs; `--check` selects), the judge named with `--judge` (when given) passes it, and it
is not a duplicate of a seed or of an earlier candidate (same request and answer after case and
whitespace folding). Every candidate ends in one of the two outputs, so kept + dropped =
candidates, and the summary table counts the drops by reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honer.curate.ingest.output import JsonlWriter
from honer.data.readers.records import Tally
from honer.data.readers.rowfiles import iter_row_file
from honer.errors import DataError

DEFAULT_PROMPT = (
    "Here is an example of a request and its correct answer.\n\nRequest: {question}\n"
    "Answer: {answer}\n\nWrite one new request of the same kind (rephrase it, or change the "
    "values it asks about) and its correct answer, in the same style. Reply with JSON only: "
    '{{"question": "...", "answer": "..."}}'
)


@dataclass
class Pair:
    """Where a row's request and answer are, so a new pair can be written back in its shape."""

    question: str
    answer: str
    put: Callable[[dict[str, Any], str, str], dict[str, Any]]


def row_pair(row: dict[str, Any]) -> Pair | None:
    """The request and answer of a chat row (`messages`: the last user turn and the assistant
    turn after it) or an alpaca row (`instruction` + `output`); None for other shapes."""
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        last = len(messages) - 1
        user = next(
            (
                i
                for i in range(last, -1, -1)
                if isinstance(messages[i], dict) and messages[i].get("role") == "user"
            ),
            None,
        )
        if user is None or user == last or messages[last].get("role") != "assistant":
            return None

        def put_chat(seed: dict[str, Any], question: str, answer: str) -> dict[str, Any]:
            new = copy.deepcopy(seed)
            new["messages"] = new["messages"][: last + 1]
            new["messages"][user]["content"] = question
            new["messages"][last]["content"] = answer
            return new

        return Pair(
            str(messages[user].get("content", "")), str(messages[last].get("content", "")), put_chat
        )
    if isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str):

        def put_alpaca(seed: dict[str, Any], question: str, answer: str) -> dict[str, Any]:
            return {**copy.deepcopy(seed), "instruction": question, "output": answer}

        return Pair(row["instruction"], row["output"], put_alpaca)
    return None


def parse_pair(text: str) -> tuple[str, str] | None:
    """`(question, answer)` from a model's reply: the first JSON object holding both as text."""
    for match in re.finditer(r"\{.*\}", text, re.S):
        candidate = match.group()
        for end in range(len(candidate), 0, -1):  # the shortest tail that parses, from the end
            if candidate[end - 1] != "}":
                continue
            try:
                obj = json.loads(candidate[:end])
            except json.JSONDecodeError:
                continue
            q, a = obj.get("question"), obj.get("answer")
            if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
                return q.strip(), a.strip()
            break
    return None


def _key(question: str, answer: str) -> str:
    return " ".join(f"{question}\n{answer}".lower().split())


@dataclass
class SynthResult:
    seeds: int = 0
    tally: Tally = field(default_factory=Tally)


def synthesize(
    seeds: Path,
    out: Path,
    dropped: Path,
    model: Any,
    checks: list[Any],
    judge: Any = None,
    per_row: int = 1,
    prompt: str = DEFAULT_PROMPT,
    on_seed: Callable[[], None] | None = None,
) -> SynthResult:
    """Ask `model` for `per_row` rewrites of each seed; keep those that pass `checks` (and
    `judge`) and are new; write the others with their reason to `dropped`."""
    if out.resolve() == dropped.resolve():
        raise DataError(f"--dropped {dropped}: must differ from --out.")
    result = SynthResult()
    records = []
    seen: set[str] = set()
    for record in iter_row_file(seeds):
        if record.row is None:
            raise DataError(f"{record.where}: {record.reason}: {record.problem}")
        pair = row_pair(record.row)
        if pair is None:
            raise DataError(
                f"{record.where}: a seed must be a chat (`messages` ending in a user turn and the "
                f"assistant's answer) or an alpaca row (instruction/output); it has: "
                f"{', '.join(record.row)}."
            )
        records.append((record.where, record.row, pair))
        seen.add(_key(pair.question, pair.answer))
    if not records:
        raise DataError(f"{seeds}: no seed rows.")
    result.seeds = len(records)
    with ExitStack() as stack:
        kept = stack.enter_context(JsonlWriter(out))
        bad = stack.enter_context(JsonlWriter(dropped))
        for where, row, pair in records:
            asks = [prompt.format(question=pair.question, answer=pair.answer)] * per_row
            for attempt, reply in enumerate(model.ask(asks), start=1):
                provenance = {"seed": where, "model": model.name, "attempt": attempt}
                reason = None
                parsed = parse_pair(reply)
                if parsed is None:
                    reason = 'unparsed: the reply holds no {"question", "answer"} JSON'
                else:
                    question, answer = parsed
                    failed = [c.name for c in checks if c.score(answer, None) < c.threshold]
                    if failed:
                        reason = f"check {failed[0]}: failed"
                    elif _key(question, answer) in seen:
                        reason = "duplicate: same as a seed or an earlier row"
                    elif judge is not None:
                        [verdict] = judge.judge([{"prompt": question, "output": answer}])
                        if verdict.verdict != "pass":
                            reason = f"judge {judge.name}: {verdict.verdict}"
                if reason is None:
                    seen.add(_key(question, answer))
                    kept.write({**pair.put(row, question, answer), "provenance": provenance})
                    result.tally.keep()
                else:
                    result.tally.reject(reason.split(":", 1)[0], where, reason)
                    bad.write(
                        {
                            "source": where,
                            "reason": reason,
                            "reply": reply,
                            "provenance": provenance,
                        }
                    )
            if on_seed is not None:
                on_seed()
    return result
