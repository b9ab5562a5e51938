"""Token streaming with the sampling settings shared by the terminal chat, batch mode and Gradio.

Greedy by default (temperature 0): a fine-tuned model is usually judged on its most likely
answer, and greedy output repeats run to run. Sampling flags apply only with a temperature > 0;
asking for top-p/top-k under greedy is an error rather than a flag that silently does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from honer.errors import HonerError


class GenerationError(HonerError):
    """Inconsistent generation settings (names the flag)."""


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None

    def check(self) -> Sampling:
        if self.max_new_tokens < 1:
            raise GenerationError("--max-new-tokens: must be at least 1.")
        if self.temperature < 0:
            raise GenerationError("--temperature: must be >= 0 (0 is greedy).")
        if self.temperature == 0:
            for flag, value in (("--top-p", self.top_p), ("--top-k", self.top_k)):
                if value is not None:
                    raise GenerationError(
                        f"{flag}: applies only when sampling; set --temperature > 0 as well "
                        "(the default, 0, is greedy decoding)."
                    )
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise GenerationError("--top-p: must be in (0, 1].")
        if self.top_k is not None and self.top_k < 1:
            raise GenerationError("--top-k: must be at least 1.")
        return self

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        kwargs: dict[str, Any] = {
            "do_sample": True,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "top_k": 0 if self.top_k is None else self.top_k,
        }
        return kwargs


def stream(
    model: Any, tokenizer: Any, prompt_ids: list[int], sampling: Sampling, stop_ids: set[int]
) -> Iterator[str]:
    """Yield the answer's text piece by piece as tokens are generated (stop tokens not shown).

    `generate` runs in a worker thread feeding a `TextIteratorStreamer`; an error there is
    re-raised here once the stream ends, so it is never swallowed.
    """
    import torch
    from transformers import TextIteratorStreamer, set_seed

    if sampling.seed is not None:
        set_seed(sampling.seed)
    streamer = TextIteratorStreamer(
        tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
    )
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_ids)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.no_grad():
                model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    eos_token_id=sorted(stop_ids),
                    pad_token_id=pad,
                    streamer=streamer,
                    **sampling.generate_kwargs(),
                )
        except BaseException as err:  # re-raised in the caller's thread
            failure.append(err)
            streamer.end()

    model.eval()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if failure:
        raise failure[0]
