"""Chat over a loaded model: one reply, a multi-turn terminal session, and JSONL batch mode.

`Assistant` holds model, tokenizer, prompt formatter and sampling settings and answers a whole
conversation; `ChatSession` adds the history of a terminal chat (`/reset`, `/exit`); the Gradio
app calls `Assistant.reply` with the history the browser sends, so the three share one path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honer.errors import DataError
from honer.infer.prompt import Message, PromptFormatter
from honer.infer.stream import Sampling, stream

EXIT, RESET = "/exit", "/reset"


@dataclass
class Assistant:
    model: Any
    tokenizer: Any
    formatter: PromptFormatter
    sampling: Sampling

    def reply(self, messages: list[Message]) -> Iterator[str]:
        """Stream the answer to a conversation that ends with a user message."""
        return self.reply_to_ids(self.formatter.ids(messages))

    def reply_to_ids(self, prompt_ids: list[int]) -> Iterator[str]:
        return stream(
            self.model, self.tokenizer, prompt_ids, self.sampling, self.formatter.stop_ids
        )


@dataclass
class ChatSession:
    """A conversation whose history grows with each exchange."""

    assistant: Assistant
    history: list[Message] = field(default_factory=list)

    def send(self, text: str) -> Iterator[str]:
        self.history.append({"role": "user", "content": text})
        pieces: list[str] = []
        try:
            for piece in self.assistant.reply(self.history):
                pieces.append(piece)
                yield piece
        except BaseException:
            self.history.pop()  # a failed or interrupted turn is not part of the chat
            raise
        self.history.append({"role": "assistant", "content": "".join(pieces).strip()})

    def reset(self) -> None:
        self.history.clear()


def interactive(
    session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]
) -> None:
    """Read a line, stream the answer, repeat; `/reset` clears the history, `/exit` or EOF ends."""
    write(f"chat: {RESET} clears the history, {EXIT} (or Ctrl-D) quits.\n")
    while True:
        try:
            line = read(">>> ")
        except EOFError:
            write("\n")
            return
        text = line.strip()
        if text == EXIT:
            return
        if text == RESET:
            session.reset()
            write("(history cleared)\n")
            continue
        if not text:
            continue
        for piece in session.send(text):
            write(piece)
        write("\n")


def _row_prompt(assistant: Assistant, row: dict[str, Any], where: str) -> list[int]:
    """Prompt ids of one batch row: `messages`, `instruction` (+ `input`) or `prompt`."""
    fmt = assistant.formatter
    ds = fmt.dataset
    if isinstance(row.get("messages"), list):
        return fmt.ids(row["messages"])
    if fmt.kind == "alpaca" and isinstance(row.get(ds.field_instruction), str):
        return fmt.alpaca_ids(row[ds.field_instruction], row.get(ds.field_input) or "")
    if isinstance(row.get("prompt"), str):
        return fmt.ids([{"role": "user", "content": row["prompt"]}])
    keys = "`messages`, `prompt`" + (f", `{ds.field_instruction}`" if fmt.kind == "alpaca" else "")
    raise DataError(f"{where}: a row needs one of {keys}.")


def read_prompts(path: Path) -> list[dict[str, Any]]:
    """Rows of a prompts JSONL file; a bad line is an error naming file:line."""
    if not path.is_file():
        raise DataError(f"--file: `{path}` does not exist.")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not JSON ({err.msg}).") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: each line must be a JSON object.")
        rows.append(row)
    return rows


def run_batch(assistant: Assistant, rows: list[dict[str, Any]], source: Path) -> list[str]:
    """One answer per row (each row its own conversation), with the rows checked first."""
    prompts = [_row_prompt(assistant, row, f"{source}:{i + 1}") for i, row in enumerate(rows)]
    return ["".join(assistant.reply_to_ids(ids)).strip() for ids in prompts]


def batch_jsonl(rows: list[dict[str, Any]], responses: list[str]) -> str:
    """Each input row with its `response` added, one JSON object per line."""
    return "".join(
        json.dumps({**row, "response": resp}, ensure_ascii=False) + "\n"
        for row, resp in zip(rows, responses, strict=True)
    )
