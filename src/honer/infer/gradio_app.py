"""A local web chat (Gradio) over the same `Assistant` as the terminal chat.

Gradio is an optional extra (`pip install 'honer[gradio]'`) imported only here, only when
`--gradio` is given. The app binds 127.0.0.1 unless `--host` says otherwise, and shares a public
link only with `--share`: a fine-tuned model may hold private data. Analytics and server-side
rendering are off, so the app runs offline with no Node.js process.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Iterator
from typing import Any

from honer.errors import HonerError
from honer.infer.chat import Assistant
from honer.infer.prompt import Message


def _text(content: Any) -> str:
    """Gradio message content as text (a string, or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    return str(content or "")


def to_messages(history: list[Any], message: Any) -> list[Message]:
    """The browser's history plus the new message, as our messages.

    Gradio sends role/content dicts (`type="messages"`, the only form since Gradio 6) or, in
    older releases, [user, assistant] pairs.
    """
    messages: list[Message] = []
    for turn in history:
        if isinstance(turn, dict) and turn.get("role") in ("user", "assistant", "system"):
            messages.append({"role": str(turn["role"]), "content": _text(turn["content"])})
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            messages.append({"role": "user", "content": _text(turn[0])})
            if turn[1] is not None:
                messages.append({"role": "assistant", "content": _text(turn[1])})
    messages.append({"role": "user", "content": _text(message)})
    return messages


def build_app(assistant: Assistant, title: str) -> Any:
    """A `gr.ChatInterface` that streams each answer into the page as it is generated."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if importlib.util.find_spec("gradio") is None:
        raise HonerError("--gradio: needs the gradio package: pip install 'honer[gradio]'.")
    import gradio as gr

    def respond(message: Any, history: list[Any]) -> Iterator[str]:
        answer = ""
        for piece in assistant.reply(to_messages(history, message)):
            answer += piece
            yield answer

    kwargs: dict[str, Any] = {}
    if "type" in inspect.signature(gr.ChatInterface).parameters:  # Gradio 4-5: ask for dicts
        kwargs["type"] = "messages"
    return gr.ChatInterface(
        respond,
        title=title,
        analytics_enabled=False,
        concurrency_limit=1,  # one generation at a time: the model is not thread-safe to share
        fill_height=True,
        **kwargs,
    )


def launch(app: Any, host: str, port: int, share: bool, block: bool = True) -> Any:
    """Serve the app; with `block=False` return at once (tests drive it from a browser)."""
    return app.queue().launch(
        server_name=host,
        server_port=port,
        share=share,
        ssr_mode=False,
        prevent_thread_lock=not block,
        quiet=not block,
    )
