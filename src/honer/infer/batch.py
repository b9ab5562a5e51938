"""`honer inference --file`: a JSONL file of prompts, or of rows in the training format, answered
in batches.

Each line may be
- a prompt: `{"prompt": …}`, `{"messages": [… ending with a user turn]}`, or an alpaca
  `instruction` (+ `input`) without an answer;
- a row in the config's first dataset format (a held-out file written like the training data):
  it is tokenized by the training code, the prompt is every token before the first trained turn,
  and that turn's text is kept as `reference` beside the answer.
Every line is checked (file:line) before the model loads, so a bad line costs seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honer.errors import DataError
from honer.infer.prompt import PromptFormatter


@dataclass(frozen=True)
class BatchPrompt:
    ids: list[int]
    reference: str | None = None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a bad line is an error naming file:line."""
    if not path.is_file():
        raise DataError(f"--file: `{path}` does not exist.")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not JSON ({err.msg}).") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: each line must be a JSON object.")
        rows.append({"__line__": n, **row})
    if not rows:
        raise DataError(f"--file: `{path}` holds no rows.")
    return rows


def _from_training_format(fmt: PromptFormatter, row: dict[str, Any], where: str) -> BatchPrompt:
    """Prompt = tokens before the first trained turn; reference = that turn (training's own code)."""
    from honer.data.formats import FORMATS
    from honer.data.tokenize import FormatError
    from honer.infer.generate import split_prompt

    try:
        samples = FORMATS[fmt.kind].tokenize_row(row, fmt.view, fmt.context)
    except FormatError as err:
        raise DataError(f"{where}: {err}") from None
    if not samples:
        raise DataError(f"{where}: the row produced no sample.")
    prompt, answer = split_prompt(samples[0].input_ids, samples[0].labels)
    if not answer:
        raise DataError(f"{where}: the row has no trained turn to answer (no assistant turn?).")
    if not prompt:
        raise DataError(f"{where}: nothing comes before the first trained turn to prompt with.")
    reference = fmt.tokenizer.decode(answer, skip_special_tokens=True).strip()
    return BatchPrompt(prompt, reference)


def row_prompt(fmt: PromptFormatter, row: dict[str, Any], where: str) -> BatchPrompt:
    """The prompt ids (and reference answer, when the row carries one) of one row."""
    ds = fmt.dataset
    body = {k: v for k, v in row.items() if k != "__line__"}
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if isinstance(last, dict) and last.get("role") == "user":
        try:
            return BatchPrompt(fmt.ids(messages))
        except DataError as err:
            raise DataError(f"{where}: {err}") from None
    if isinstance(body.get("prompt"), str) and not _is_training_row(fmt, body):
        return BatchPrompt(fmt.ids([{"role": "user", "content": body["prompt"]}]))
    if (
        fmt.kind == "alpaca"
        and isinstance(body.get(ds.field_instruction), str)
        and not body.get(ds.field_output)
    ):
        return BatchPrompt(
            fmt.alpaca_ids(body[ds.field_instruction], body.get(ds.field_input) or "")
        )
    if _is_training_row(fmt, body):
        return _from_training_format(fmt, body, where)
    keys = "`prompt`, `messages` (ending with a user turn)"
    raise DataError(
        f"{where}: a row needs {keys}, or the fields of the training format `{fmt.kind}` "
        f"({', '.join(_training_fields(fmt))})."
    )


def _training_fields(fmt: PromptFormatter) -> list[str]:
    ds = fmt.dataset
    if fmt.kind == "alpaca":
        return [ds.field_instruction, ds.field_output]
    if fmt.kind == "sharegpt":
        return [ds.field_messages or "conversations"]
    if fmt.kind == "chat_template":
        return [ds.field_messages or "messages"]
    if fmt.kind == "input_output":
        return [ds.field or "segments"]
    return [ds.field or "text"]


def _is_training_row(fmt: PromptFormatter, row: dict[str, Any]) -> bool:
    return all(f in row for f in _training_fields(fmt)) and fmt.kind != "completion"


def batch_prompts(
    fmt: PromptFormatter, rows: list[dict[str, Any]], source: Path
) -> list[BatchPrompt]:
    """Every row's prompt, each checked (file:line) before any generation."""
    return [row_prompt(fmt, row, f"{source}:{row['__line__']}") for row in rows]


def run_batch(
    model: Any,
    fmt: PromptFormatter,
    prompts: list[BatchPrompt],
    generation: dict[str, Any],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """One answer per prompt, generated `batch_size` at a time (greedy unless `generation` samples)."""
    from honer.infer.generate import generate

    outputs = generate(
        model,
        fmt.tokenizer,
        [p.ids for p in prompts],
        batch_size=batch_size,
        stop_ids=fmt.stop_ids,
        on_batch=on_batch,
        generation=generation,
    )
    return [fmt.tokenizer.decode(o, skip_special_tokens=True).strip() for o in outputs]


def batch_jsonl(
    rows: list[dict[str, Any]], prompts: list[BatchPrompt], responses: list[str]
) -> str:
    """Each input row with its `response` (and `reference`, when taken from the row) added."""
    lines = []
    for row, prompt, response in zip(rows, prompts, responses, strict=True):
        out = {k: v for k, v in row.items() if k != "__line__"}
        if prompt.reference is not None:
            out["reference"] = prompt.reference
        out["response"] = response
        lines.append(json.dumps(out, ensure_ascii=False) + "\n")
    return "".join(lines)
