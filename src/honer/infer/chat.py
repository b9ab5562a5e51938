"""Chat over a loaded model: one reply and a multi-turn terminal session (batch: infer.batch).

`Assistant` holds model, tokenizer, prompt formatter and sampling settings and answers a whole
conversation; `ChatSession` adds the history of a terminal chat (`/reset`, `/exit`); the Gradio
app calls `Assistant.reply` with the history the browser sends, so the three share one path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
