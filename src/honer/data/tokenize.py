"""The tokenizer view that prompt formats use, and the samples they return.

Formats describe a sample as text segments, each trained or not. The view tokenizes the *joined*
text once, with offsets, and labels each token by the characters it covers. So the ids always
equal what the tokenizer gives for the whole text (what the model sees at inference), and no
boundary token is lost between a prompt and its answer: a token that covers any trained character
is trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


class FormatError(ValueError):
    """A row cannot be turned into a sample; the message says why (prepare adds dataset/row)."""


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool


@dataclass
class TokenizedSample:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


class TokenizerView:
    """The few tokenizer operations formats need, over a Hugging Face (fast) tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                "honer needs a fast tokenizer (offset mappings): set `tokenizer_use_fast: true`."
            )
        self.tokenizer = tokenizer

    @property
    def eos_token(self) -> str | None:
        return self.tokenizer.eos_token

    @property
    def eos_token_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]

    def encode_segments(self, segments: list[Segment], add_special_tokens: bool) -> TokenizedSample:
        """Tokenize the joined text once; a token is trained if it covers a trained character."""
        return self.encode_segments_with_offsets(segments, add_special_tokens)[0]

    def encode_segments_with_offsets(
        self, segments: list[Segment], add_special_tokens: bool
    ) -> tuple[TokenizedSample, list[tuple[int, int]]]:
        """`encode_segments`, plus each token's (start, end) characters in the joined text, for
        formats that mark single tokens after tokenizing (`eot_tokens`)."""
        text = "".join(s.text for s in segments)
        # trained_upto[i] = number of trained characters in text[:i]
        trained_upto = [0]
        for seg in segments:
            base = trained_upto[-1]
            trained_upto.extend(base + (k + 1) * seg.trained for k in range(len(seg.text)))
        enc = self.tokenizer(
            text, add_special_tokens=add_special_tokens, return_offsets_mapping=True
        )
        labels = [
            tid if end > start and trained_upto[end] > trained_upto[start] else IGNORE_INDEX
            for tid, (start, end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
        offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
        return TokenizedSample(list(enc["input_ids"]), labels), offsets

    def render_chat(
        self,
        messages: list[dict[str, str]],
        template: str | None,
        add_generation_prompt: bool,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> str:
        """The chat template's text for `messages`, exactly as transformers renders it.

        `template_kwargs` are extra template variables (`chat_template_kwargs`, e.g.
        `enable_thinking`); they override the tokenizer's special tokens of the same name, as in
        transformers.
        """
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **dict(template_kwargs or {}),
        )


OK, TRUNCATED = "ok", "truncated"
TOO_LONG = "dropped: longer than sequence_len"
TRAINED_BEYOND = "dropped: trained part beyond sequence_len"


def fit_to_length(
    input_ids: list[int], labels: list[int], limit: int, truncate: bool
) -> tuple[list[int], list[int], str]:
    """The one rule for samples longer than `sequence_len` (`excess_length_strategy`).

    Returns (ids, labels, status): a sample that fits is kept ("ok"); a longer one is dropped,
    or with `truncate` cut to `limit` tokens ("truncated") unless no trained token would be left
    (then dropped: a sample that trains nothing would only cost compute). Dropped: empty lists.
    """
    if len(input_ids) <= limit:
        return input_ids, labels, OK
    if not truncate:
        return [], [], TOO_LONG
    if all(x == IGNORE_INDEX for x in labels[:limit]):
        return [], [], TRAINED_BEYOND
    return input_ids[:limit], labels[:limit], TRUNCATED
