"""GRPO prompt rows (`rl: grpo`): one row → the prompt completions are sampled from, and the
columns the reward functions read.

TRL's `GRPOTrainer` samples from a `prompt` that is text (used as written) or a list of messages
(rendered with the chat template, generation prompt added), and passes every other column of the
row to each reward function as a keyword argument. honer reads its rows into that shape:

* `type: prompt` — the row's `prompt` column, text or messages (`roles` /
  `message_property_mappings` map the data's names, as for preference data); other columns
  (e.g. `answer`) go to the rewards.
* `type: chat_template` — an SFT conversation (`field_messages`, default `messages`): the prompt
  is the conversation up to its last assistant message, and that message's text becomes the
  row's `answer`, the reference the `exact` / `contains` checks compare with. The same data
  trains SFT and then GRPO.
* `transform: module.function` (Axolotl's `type: module.function`) — the user's function of the
  config returns `transform_fn` (or `(transform_fn, map kwargs)`), mapped over the rows first, as
  Axolotl does; its rows are then read as `type: prompt`.

The prompt and the reward columns are stored as JSON text (their types may differ between
datasets, which Arrow columns cannot hold), beside `prompt_ids`: the prompt's tokens as TRL will
tokenize it, used for the length bound and the statistics.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

from honer.config.schema import DatasetConfig
from honer.data.preference import _Messages
from honer.data.tokenize import FormatError, TokenizerView
from honer.errors import ConfigError

VERSION = 1
PROMPT_COLUMNS = ("prompt", "prompt_ids", "reward_columns")


def read_prompt(row: dict[str, Any], ds: DatasetConfig) -> tuple[str | list[dict], dict]:
    """The row's prompt (text or messages) and its reward columns."""
    read = _Messages(ds)
    if ds.type == "chat_template":
        field = ds.field_messages or "messages"
        raw = row.get(field)
        if not isinstance(raw, list) or not raw:
            raise FormatError(f"`{field}` must be a non-empty list of messages")
        messages = [read.message(m, f"{field}[{i}]") for i, m in enumerate(raw)]
        extras = {k: v for k, v in row.items() if k != field and not k.startswith("__")}
        if messages[-1]["role"] == "assistant":
            extras["answer"] = messages.pop()["content"]
        if not messages or not any(m["content"].strip() for m in messages):
            raise FormatError(f"`{field}` has no prompt before its last answer")
        return messages, extras
    raw = row.get("prompt")
    extras = {k: v for k, v in row.items() if k != "prompt" and not k.startswith("__")}
    if isinstance(raw, str):
        if not raw.strip():
            raise FormatError("the prompt (`prompt`) is empty")
        return raw, extras
    if isinstance(raw, list):
        return read.prompt(raw, "prompt"), extras
    present = ", ".join(k for k, v in row.items() if v is not None and not k.startswith("__"))
    raise FormatError(
        f"column `prompt` must be text or a list of messages (row has: {present or 'nothing'})"
    )


def prompt_ids(
    prompt: str | list[dict], tokenizer: Any, view: TokenizerView, template: str | None, kwargs: Any
) -> list[int]:
    """The prompt's ids as TRL's `GRPOTrainer` makes them: messages through the chat template
    with the generation prompt (no special tokens added: the template writes them), text with
    the tokenizer's special tokens."""
    if isinstance(prompt, str):
        return list(tokenizer(text=prompt)["input_ids"])
    try:
        text = view.render_chat(prompt, template, True, kwargs)
    except Exception as err:  # Jinja templates raise anything (e.g. "roles must alternate")
        raise FormatError(f"the chat template cannot render this prompt: {err}") from None
    return list(tokenizer(text=text, add_special_tokens=False)["input_ids"])


def encode_row(prompt: str | list[dict], extras: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    """The stored row (see the module docstring)."""
    try:
        columns = json.dumps(extras, ensure_ascii=False)
    except TypeError as err:
        raise FormatError(f"a column the rewards would read is not JSON data: {err}") from None
    return {
        "prompt": json.dumps(prompt, ensure_ascii=False),
        "prompt_ids": ids,
        "reward_columns": columns,
    }


def decode_rows(dataset: Any) -> list[dict[str, Any]]:
    """The stored rows as TRL reads them: `prompt` and one key per reward column."""
    return [
        {"prompt": json.loads(p), **json.loads(c)}
        for p, c in zip(dataset["prompt"], dataset["reward_columns"], strict=True)
    ]


def _working_directory_on_path() -> str:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return cwd


def module_file(name: str) -> Path | None:
    """The source file of `module.function`'s module, if it is a file (for the cache key)."""
    _working_directory_on_path()
    module_name = name.rpartition(":")[0] if ":" in name else name.rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def import_python(name: str, where: str) -> Any:
    """`module.function` or `module:function`, imported with the working directory on the
    path (where Axolotl users keep their reward and transform modules)."""
    module_name, sep, attr = name.rpartition(":") if ":" in name else name.rpartition(".")
    if not module_name or not sep:
        raise ConfigError([(where, f"`{name}` must look like `module.function`.")])
    cwd = _working_directory_on_path()
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            [(where, f"cannot import `{name}` (from {cwd} or the installed packages): {err}")]
        ) from None


def apply_transform(raw: Any, ds: DatasetConfig, cfg: Any, tokenizer: Any, where: str) -> Any:
    """Axolotl's prompt transform: `module.function(cfg)` gives `transform_fn` or
    `(transform_fn, map kwargs)`; `remove_columns: "__all__"` drops every original column, and
    a list keeps only names the data has (as Axolotl does)."""
    factory = import_python(ds.transform or "", f"{where}.transform")
    made = factory(cfg)
    fn, kwargs = made if isinstance(made, tuple) else (made, {})
    kwargs = dict(kwargs or {})
    remove = kwargs.get("remove_columns")
    if remove == "__all__":
        kwargs["remove_columns"] = list(raw.column_names)
    elif isinstance(remove, list):
        kwargs["remove_columns"] = [c for c in remove if c in raw.column_names]
    if "tokenizer" in inspect.signature(fn).parameters:
        kwargs.setdefault("fn_kwargs", {})["tokenizer"] = tokenizer
    try:
        return raw.map(fn, desc=f"Transforming {where} ({ds.transform})", **kwargs)
    except Exception as err:
        raise ConfigError(
            [(f"{where}.transform", f"`{ds.transform}` failed on the data: {err}")]
        ) from None


def reference_samples(data: Any, tokenizer: Any) -> Any:
    """GRPO prompts as SFT samples (`input_ids`, `labels`) for `honer evaluate`: the prompt's
    ids, then the row's reference `answer` (if it has one) and the EOS as the scored answer. The
    `evals:` checks then run on generations from exactly the prompts GRPO sampled from, and
    compare with that answer."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def to_sample(prompt: list[int], columns: str) -> dict[str, list[int]]:
        answer = json.loads(columns).get("answer")
        ids = (
            list(tokenizer(text=str(answer), add_special_tokens=False)["input_ids"])
            if answer
            else []
        )
        ids += eos
        return {"input_ids": prompt + ids, "labels": [-100] * len(prompt) + ids}

    return data.map(
        to_sample, input_columns=["prompt_ids", "reward_columns"], remove_columns=data.column_names
    )
