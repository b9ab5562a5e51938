"""The `preprocess --debug` view: samples token by token, trained and masked tokens told apart.

Each token is printed as `text(label, id)` like Axolotl's debug view; on a terminal trained tokens
are green and masked ones red, and without a terminal the label (-100 = masked) still tells.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from honer.data.tokenize import IGNORE_INDEX


def sample_view(input_ids: list[int], labels: list[int], tokenizer: Any) -> Text:
    """One sample as coloured `text(label, id)` tokens, then its counts and its trained text."""
    out = Text()
    for tid, label in zip(input_ids, labels, strict=True):
        piece = tokenizer.decode([tid]).replace("\n", "\\n")
        style = "red" if label == IGNORE_INDEX else "green"
        out.append(f"{piece}({label}, {tid})", style=style)
        out.append(" ")
    trained = [t for t, lab in zip(input_ids, labels, strict=True) if lab != IGNORE_INDEX]
    out.append(f"\n  tokens: {len(input_ids)}  trained: {len(trained)}  masked: ")
    out.append(f"{len(input_ids) - len(trained)}\n  trained text: ")
    out.append(repr(tokenizer.decode(trained)), style="green")
    return out
