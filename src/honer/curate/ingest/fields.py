"""Where the text of a row is, for the dataset shapes honer trains on.

`clean` checks answers (refusals, empty or broken-JSON answers), `dedup` and `stats` need a
row's text. The answer of a row is found by its shape, the same shapes the formats read:

- `output` / `response` / `completion` / `answer` (Alpaca and similar): that field;
- `messages` / `conversations` (chat_template, ShareGPT): the assistant turns (role or `from`
  of assistant, gpt, bot, model or chatbot; text in content, value or text);
- `segments` (input_output): the trained segments (`label` true or absent);
- `text` (completion): the whole text.

Any other shape needs the answer fields named (`--answer-field`).
"""

from __future__ import annotations

from typing import Any

ANSWER_KEYS = ("output", "response", "completion", "answer")
MESSAGE_KEYS = ("messages", "conversations")
ROLE_KEYS = ("role", "from")
CONTENT_KEYS = ("content", "value", "text")
ASSISTANT_ROLES = frozenset({"assistant", "gpt", "bot", "model", "chatbot"})
# Keys that describe a row rather than hold its text: left out of `row_text`.
NON_TEXT_KEYS = frozenset({"source", *ROLE_KEYS})


def text_of(value: Any) -> str:
    """The text inside a value: strings as they are, lists and dicts joined by newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in map(text_of, value) if t)
    if isinstance(value, dict):
        return "\n".join(
            t for k, v in value.items() if k not in NON_TEXT_KEYS and (t := text_of(v))
        )
    return ""


def row_text(row: dict[str, Any], fields: list[str] | None = None) -> str:
    """All text of a row (or of `fields`), without roles and the `source` field."""
    if fields:
        return "\n".join(text_of(row.get(f)) for f in fields)
    return text_of(row)


def _turn_text(turn: dict[str, Any]) -> str:
    for key in CONTENT_KEYS:
        if key in turn:
            return text_of(turn[key])
    return ""


def answer_texts(row: dict[str, Any], fields: list[str] | None = None) -> list[str] | None:
    """The row's answers (one per assistant turn), or None when its shape is unknown."""
    if fields:
        return [text_of(row.get(f)) for f in fields]
    for key in ANSWER_KEYS:
        if key in row:
            return [text_of(row[key])]
    for key in MESSAGE_KEYS:
        turns = row.get(key)
        if isinstance(turns, list):
            return [
                _turn_text(t)
                for t in turns
                if isinstance(t, dict)
                and any(str(t.get(r, "")).lower() in ASSISTANT_ROLES for r in ROLE_KEYS)
            ]
    segments = row.get("segments")
    if isinstance(segments, list):
        return [
            text_of(s.get("text")) for s in segments if isinstance(s, dict) and s.get("label", True)
        ]
    if "text" in row:
        return [text_of(row["text"])]
    return None
