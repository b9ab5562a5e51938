"""What a format may know besides the row: its dataset entry and a few run-wide settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from honer.config.schema import Config, DatasetConfig
from honer.data.formats.templates import BUILTIN_TEMPLATES, resolve_template
from honer.data.tokenize import FormatError
from honer.errors import DataError

CHAT_TYPES = ("sharegpt", "chat_template")


def renders_chat(ds_type: str) -> bool:
    """Whether rows of this type are rendered with a chat template (SFT chats, the
    `chat_template.*` preference formats, GRPO prompts and Bradley-Terry reward pairs)."""
    return (
        ds_type in CHAT_TYPES
        or ds_type.startswith("chat_template.")
        or ds_type in ("prompt", "bradley_terry.chat_template")
    )


# Names `chat_template_kwargs` may not use: apply_chat_template's own arguments (a `tokenize`
# there would turn the rendered text into ids) and the variables honer itself passes. `tools`
# and `documents` stay allowed: transformers hands them to the template, as Axolotl does.
RESERVED_TEMPLATE_KWARGS = frozenset(
    {
        "conversation",
        "messages",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
        "sanitize_control_tokens",
        "real_last_index",
    }
)


@dataclass(frozen=True)
class FormatContext:
    dataset: DatasetConfig
    train_on_inputs: bool = False
    sequence_len: int = 2048
    chat_template: str | None = None  # resolved Jinja text for chat formats
    # Extra template variables (`chat_template_kwargs`), passed to every render.
    chat_template_kwargs: Mapping[str, Any] | None = None
    # `eot_tokens` as ids (checked: one token each, in the template). None: not set, and the
    # template's own end-of-turn marker is trained as `train_on_eos` says.
    eot_token_ids: tuple[int, ...] | None = None
    # `default_system_message`: the system message of conversations that have none.
    default_system_message: str | None = None
    # What resolving the context found worth a warning (an `eot_tokens` entry ignored).
    warnings: tuple[str, ...] = ()


def text_field(row: dict[str, Any], key: str, required: bool = True) -> str:
    """A text column of the row; a missing or non-text value is a `FormatError` naming the key."""
    value = row.get(key)
    if value is None:
        if required:
            present = ", ".join(k for k, v in row.items() if v is not None)
            raise FormatError(f"column `{key}` is missing (row has: {present})")
        return ""
    if not isinstance(value, str):
        raise FormatError(f"column `{key}` must be text, got {type(value).__name__}")
    return value


def entry_template(cfg: Config, ds: DatasetConfig, tokenizer: Any) -> str:
    """The Jinja text a chat entry renders with: `conversation:` (sharegpt, honer's built-in
    role formats), else the entry's `chat_template`, else the top-level one."""
    if ds.conversation:
        return BUILTIN_TEMPLATES[ds.conversation]
    name = ds.chat_template or cfg.chat_template
    return resolve_template(name, cfg.chat_template_jinja, tokenizer.chat_template)


def eot_token_ids(
    tokenizer: Any, eot_tokens: list[str], template: str, ds: DatasetConfig
) -> tuple[tuple[int, ...], list[str]]:
    """`eot_tokens` as ids, checked as Axolotl checks them, and the warnings that gives.

    Axolotl (prompt_strategies/chat_template.py, `_validate_eot_and_eos_tokens`): the list
    `[eos_token]` alone is taken as it is. Otherwise a token that does not occur in the template's
    text is dropped with a warning; each kept one must be a single token of the vocabulary; and
    when the EOS is among them, `train_on_eos` and `train_on_eot` must agree (both would mark
    the same token).
    """
    eos = tokenizer.eos_token
    if list(eot_tokens) == [eos]:
        return (tokenizer.eos_token_id,), []
    warnings: list[str] = []
    ids: list[int] = []
    kept: list[str] = []
    for token in eot_tokens:
        if token not in template:
            warnings.append(
                f"eot_tokens: `{token}` does not occur in the chat template's text, so it is "
                "ignored (as Axolotl ignores it); list the tokens the template writes."
            )
            continue
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise DataError(
                f"eot_tokens: `{token}` is {len(encoded)} tokens in this tokenizer "
                f'({encoded}), not one; add it to the vocabulary with `tokens: ["{token}"]` '
                "(or `special_tokens:`), or list the template's real end-of-turn token."
            )
        kept.append(token)
        ids.append(encoded[0])
    train_on_eot = ds.train_on_eot or ds.train_on_eos
    if eos in kept and ds.train_on_eos != train_on_eot:
        raise DataError(
            f"eot_tokens holds the EOS `{eos}`, but train_on_eos ({ds.train_on_eos}) and "
            f"train_on_eot ({train_on_eot}) disagree about training it; make them equal or "
            "leave the EOS out of eot_tokens."
        )
    return tuple(ids), warnings


def format_context(cfg: Config, ds: DatasetConfig, tokenizer: Any) -> FormatContext:
    """The context of one dataset entry: run-wide settings and its resolved chat template."""
    template = None
    eot_ids: tuple[int, ...] | None = None
    warnings: list[str] = []
    kwargs = cfg.chat_template_kwargs
    if renders_chat(ds.type):
        template = entry_template(cfg, ds, tokenizer)
        if kwargs:
            reserved = sorted(RESERVED_TEMPLATE_KWARGS.intersection(kwargs))
            if reserved:
                raise DataError(
                    f"chat_template_kwargs: {', '.join(reserved)} "
                    f"{'is' if len(reserved) == 1 else 'are'} set by honer itself, not a "
                    "template variable; remove it."
                )
        if cfg.eot_tokens is not None:
            eot_ids, warnings = eot_token_ids(tokenizer, cfg.eot_tokens, template, ds)
    return FormatContext(
        dataset=ds,
        train_on_inputs=cfg.train_on_inputs,
        sequence_len=cfg.sequence_len,
        chat_template=template,
        chat_template_kwargs=dict(kwargs) if kwargs and template is not None else None,
        eot_token_ids=eot_ids,
        default_system_message=cfg.default_system_message if template is not None else None,
        warnings=tuple(warnings),
    )
