"""`unfrozen_parameters`: train the parameters whose names match, freeze every other one.

Each entry is a Python regular expression matched from the start of a parameter name
(`re.match`, as Axolotl does; `^`/`$` as usual), optionally followed by a row range in
brackets: `[start:end]`, `[:end]`, `[start:]` or `[index]`. With a range only those rows (the
first dimension: vocabulary rows of an embedding or head) get gradients; a gradient hook zeroes
the others, which then never change (Adam, Lion, SGD and Muon all leave a parameter alone whose
gradient has always been zero). Axolotl's example: `^model.embed_tokens.weight$[32000:]` trains
only the embeddings of tokens added after the first 32000.

Full fine-tuning: a parameter matching any entry is trained, every other one frozen.

With an adapter (`lora`/`qlora`) the entries choose among the adapter's own trainable weights
(LoRA A/B matrices, `lora_modules_to_save` copies), matched against names without peft's
`base_model.model.` prefix, so `^model.language_model.*` keeps only the language model's LoRA
weights trainable (Axolotl's multimodal examples freeze a vision tower this way). Base weights
stay frozen: an adapter saves only its own weights, so a trained base weight would be lost.

Where honer differs from Axolotl (`axolotl.utils.freeze.freeze_layers_except`):
* `.` is any character, as in any regex (Axolotl escapes a dot not followed by `+`); for the
  patterns Axolotl's examples use, the same names match.
* Under an adapter Axolotl matches peft's full names (`base_model.model.…`), where its `^model.…`
  examples match nothing and freeze the whole adapter; honer strips the prefix.
* An entry that matches no (trainable) parameter is an error, not a silent no-op.
* A row range together with `weight_decay > 0` is refused: decoupled weight decay would still
  shrink the "frozen" rows every step (Axolotl documents this as a caveat).
* An entry without a range that matches a parameter trains all of it, even when another entry
  gives that parameter a range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honer.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

KEY = "unfrozen_parameters"
PEFT_PREFIX = "base_model.model."
_RANGE = re.compile(r"^(.+)\[([0-9]*)(?::([0-9]*))?\]$")


@dataclass(frozen=True)
class Pattern:
    """One `unfrozen_parameters` entry: a name regex and an optional [start, end) row range
    (end None: to the last row)."""

    text: str
    regex: re.Pattern[str]
    rows: tuple[int, int | None] | None

    def matches(self, name: str) -> bool:
        return self.regex.match(name) is not None


def parse(text: str) -> Pattern:
    """An entry as a `Pattern`; a `ValueError` says what is wrong with it."""
    rows: tuple[int, int | None] | None = None
    name_pattern = text
    found = _RANGE.match(text)
    if found:
        name_pattern, start, end = found.groups()
        if end is None and start.isdecimal():  # `[index]`: that one row
            rows = (int(start), int(start) + 1)
        else:
            first = int(start) if start else 0
            last = int(end) if end else None
            if last is not None and first >= last:
                raise ValueError(f"the row range of `{text}` is empty (start must be below end)")
            rows = (first, last)
    try:
        regex = re.compile(name_pattern)
    except re.error as err:
        raise ValueError(f"`{name_pattern}` is not a regular expression: {err}") from None
    return Pattern(text, regex, rows)


def _problem(index: int, message: str) -> ConfigError:
    return ConfigError([(f"{KEY}[{index}]", message)])


def _kept_rows(ranges: list[tuple[int, int | None]], rows: int) -> list[tuple[int, int]]:
    """The union of `ranges` over a first dimension of `rows`, as sorted [start, end) pairs."""
    spans = sorted((start, rows if end is None else end) for start, end in ranges)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _row_gradient_hook(kept: list[tuple[int, int]]) -> Any:
    """A gradient hook that keeps the gradient of the `kept` rows and zeroes every other row."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        import torch

        out = torch.zeros_like(grad)
        for start, end in kept:
            out[start:end] = grad[start:end]
        return out

    return hook


def apply(
    model: nn.Module, entries: list[str], adapter: bool, weight_decay: float = 0.0
) -> list[str]:
    """Freeze every parameter of `model` no entry matches; returns the names left trainable.

    `adapter`: the model is a peft model, whose trainable weights the entries choose among.
    """
    patterns = []
    for i, text in enumerate(entries):
        try:
            patterns.append(parse(text))
        except ValueError as err:
            raise _problem(i, str(err)) from None
    ranged = [i for i, p in enumerate(patterns) if p.rows is not None]
    if ranged and weight_decay > 0:
        raise _problem(
            ranged[0],
            f"a row range trains only some rows, but `weight_decay: {weight_decay}` would still "
            "shrink the other rows every step: set `weight_decay: 0`, or drop the range.",
        )

    # Tied weights (embeddings and head) are one parameter under several names: all count.
    names: dict[int, list[str]] = {}
    params: dict[int, torch.nn.Parameter] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
        params[id(param)] = param
    hits = [0] * len(patterns)
    base_only: list[list[str]] = [[] for _ in patterns]
    trained: list[str] = []
    for key, param in params.items():
        candidate = param.requires_grad or not adapter
        shown = [n.removeprefix(PEFT_PREFIX) if adapter else n for n in names[key]]
        matching = [i for i, p in enumerate(patterns) if any(p.matches(n) for n in shown)]
        for i in matching:
            if candidate:
                hits[i] += 1
            else:
                base_only[i].append(shown[0])
        train = candidate and bool(matching)
        param.requires_grad_(train)
        if not train:
            continue
        trained.append(names[key][0])
        ranges = [patterns[i].rows for i in matching]
        if any(r is None for r in ranges):
            continue  # an entry without a range trains the whole parameter
        rows = param.shape[0] if param.ndim else 0
        for i in matching:
            start, end = patterns[i].rows  # type: ignore[misc]
            if start >= rows or (end is not None and end > rows):
                raise _problem(
                    i,
                    f"the rows of `{patterns[i].text}` are outside `{shown[0]}`, which has {rows}.",
                )
        kept = _kept_rows([r for r in ranges if r is not None], rows)
        param.register_hook(_row_gradient_hook(kept))

    for i, pattern in enumerate(patterns):
        if hits[i]:
            continue
        if base_only[i]:
            raise _problem(
                i,
                f"`{pattern.text}` matches only base weights ({', '.join(base_only[i][:3])}), "
                "which an adapter does not train: list the module in `lora_modules_to_save` "
                "to train it in full with the adapter, or remove the entry.",
            )
        example = next(iter(names.values()))[0]
        if adapter:
            example = example.removeprefix(PEFT_PREFIX)
        raise _problem(
            i,
            f"`{pattern.text}` matches no parameter name from its start (names look like "
            f"`{example}`): entries are regular expressions matched at the start of the name, "
            f"e.g. `.*{pattern.text.lstrip('^')}`.",
        )
    return trained
