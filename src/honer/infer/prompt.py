"""Prompts at inference, built exactly as training built them for the config's first dataset.

A model fine-tuned on one prompt layout answers well only in that layout, so inference reuses the
training code's own pieces rather than a second copy of each template:

- `alpaca`: `honer.data.formats.alpaca.build_prompt` (same preamble / `system_prompt`), tokenized
  with `add_special_tokens=True` as training does (BOS first). Later turns of a chat append
  `{answer}{eos}\\n\\n### Instruction:\\n…### Response:\\n`, the multi-turn Alpaca layout.
- `chat_template` / `sharegpt`: the chat template `format_context` resolves for training, rendered
  with `add_generation_prompt=True` and the config's `chat_template_kwargs` (e.g.
  `enable_thinking: false`), tokenized with `add_special_tokens=False` (the template writes its
  own BOS); `default_system_message` opens conversations without a system message, as in
  training. tests/infer/test_prompt.py checks the tokens equal the training prompt.
- `completion` / `input_output`: the text itself (the conversation so far, joined).
- preference formats (`rl:`): `chat_template.*` as `chat_template`; `chatml.*` / `llama3.*` with
  their literal markers (`honer.data.preference.MARKERS`), tokenized with special tokens as
  TRL tokenized the training prompts; generation also stops at the family's end-of-turn marker.

Generation stops at EOS, at the template's end-of-turn token (`<|im_end|>` for ChatML), which
is often not the EOS: without it a chat model talks on into an invented next turn, and at
every `eot_tokens` token.
"""

from __future__ import annotations

from typing import Any

from honer.config.schema import Config
from honer.data.formats.alpaca import build_prompt, next_turn
from honer.data.formats.chat_template import stop_token_ids
from honer.data.formats.context import CHAT_TYPES, format_context, renders_chat
from honer.data.tokenize import TokenizerView
from honer.errors import DataError

Message = dict[str, str]


def _markers(family: str) -> tuple[str, str, str] | None:
    from honer.data.preference import MARKERS

    return MARKERS.get(family)


class PromptFormatter:
    """Turns a conversation (`[{role, content}]`, last one from the user) into prompt token ids."""

    def __init__(self, cfg: Config, tokenizer: Any, system: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.dataset = cfg.datasets[0]
        self.kind = self.dataset.type
        # Preference formats with literal markers (chatml.* / llama3.*): their family's markers.
        family = self.kind.split(".", 1)[0]
        self.markers = _markers(family) if "." in self.kind and not self.is_chat else None
        if (
            system is not None
            and self.kind not in (*CHAT_TYPES, "alpaca")
            and not (self.is_chat or self.markers)
        ):
            raise DataError(
                f"--system: the `{self.kind}` format has no system prompt; give the whole "
                "prompt text instead."
            )
        self.context = format_context(cfg, self.dataset, tokenizer)
        # A system message for conversations that have none (training rows usually carry one);
        # `--system` wins over `default_system_message`, which training inserts the same way.
        if system is None and self.is_chat:
            system = self.context.default_system_message
        self.system = system
        self.view = TokenizerView(tokenizer)
        self.stop_ids = self._stop_ids()

    @property
    def is_chat(self) -> bool:
        return renders_chat(self.kind)

    def text(self, messages: list[Message]) -> str:
        """The prompt text (what the model reads before it answers)."""
        if not messages or messages[-1]["role"] != "user":
            raise DataError("a prompt needs a conversation that ends with a user message.")
        if self.system is not None and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system}, *messages]
        if self.is_chat:
            return self.view.render_chat(
                messages,
                self.context.chat_template,
                add_generation_prompt=True,
                template_kwargs=self.context.chat_template_kwargs,
            )
        if self.kind == "alpaca":
            return self._alpaca(messages)
        if self.markers is not None:
            return self._literal(messages)
        return "".join(m["content"] for m in messages if m["role"] != "system")

    def _literal(self, messages: list[Message]) -> str:
        """ChatML / Llama-3 markers written out, as the preference formats wrote the prompts."""
        assert self.markers is not None
        system_turn, user_turn, end = self.markers
        text = ""
        for m in messages:
            if m["role"] == "system":
                text += system_turn.format(m["content"])
            elif m["role"] == "user":
                text += user_turn.format(m["content"])
            else:
                text += m["content"] + end
        return text

    def ids(self, messages: list[Message]) -> list[int]:
        """Prompt token ids, with special tokens added exactly where training added them."""
        add_special = self.kind in ("alpaca", "completion") or self.markers is not None
        return self.view.encode(self.text(messages), add_special_tokens=add_special)

    def alpaca_ids(self, instruction: str, input_text: str = "") -> list[int]:
        """An Alpaca prompt with an `input` field (a batch row's `instruction` + `input`)."""
        prompt = build_prompt(instruction, input_text, self._system(), self.dataset.prompt_style)
        return self.view.encode(prompt, add_special_tokens=True)

    def _system(self) -> str | None:
        return self.system if self.system is not None else self.dataset.system_prompt

    def _alpaca(self, messages: list[Message]) -> str:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        system = self._system() if system is None else system
        turns = [m for m in messages if m["role"] != "system"]
        style = self.dataset.prompt_style
        text = build_prompt(turns[0]["content"], "", system, style)
        eos = self.tokenizer.eos_token or ""
        gap = "\n\n" if style == "instruct" else "\n"
        for msg in turns[1:]:
            if msg["role"] == "assistant":
                text += f"{msg['content']}{eos}{gap}"
            else:
                text += next_turn(msg["content"], style)
        return text

    def _stop_ids(self) -> set[int]:
        ctx = self.context
        template = ctx.chat_template if self.is_chat else None
        stop = stop_token_ids(
            self.view, template, self.is_chat, ctx.chat_template_kwargs, ctx.eot_token_ids
        )
        if self.markers is not None:  # the family's end-of-turn marker, when it is one token
            ids = self.view.encode(self.markers[2], add_special_tokens=False)
            if len(ids) == 1:
                stop.add(ids[0])
        return stop
