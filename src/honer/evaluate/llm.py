"""A text model to ask: a local causal LM run by honer, or an OpenAI-compatible endpoint.

Shared by the LLM judge (`honer.evaluate.judge`) and synthetic data (`honer data synth`). The
spec keys: `model` (a folder, hub name or .gguf file; with `base_url`, the endpoint's model
name), `base_url`, `api_key_env` (the environment variable holding the key: the key is sent in
the request header and never written anywhere), `max_new_tokens` (default 256), `timeout`
(seconds per request, default 60). A local model answers greedily with its own chat template; an
endpoint is asked at temperature 0 unless `temperature` is given.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from honer.errors import ConfigError, HonerError


class TextModel:
    """`ask(prompts) -> answers`, one user message per prompt."""

    def __init__(self, spec: dict[str, Any], where: str, temperature: float = 0.0) -> None:
        self.spec = spec
        self.where = where
        self.temperature = temperature
        self.max_new_tokens = int(spec.get("max_new_tokens", 256))
        self._loaded: tuple[Any, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.spec["model"])

    def ask(self, prompts: list[str]) -> list[str]:
        if not prompts:
            return []
        return self._endpoint(prompts) if self.spec.get("base_url") else self._local(prompts)

    def _endpoint(self, prompts: list[str]) -> list[str]:
        url = str(self.spec["base_url"]).rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        env = self.spec.get("api_key_env")
        if env:
            key = os.environ.get(str(env))
            if not key:
                raise HonerError(
                    f"{self.where}.api_key_env: the environment variable {env} is not set."
                )
            headers["Authorization"] = f"Bearer {key}"
        answers = []
        for prompt in prompts:
            body = json.dumps(
                {
                    "model": self.spec["model"],
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": self.temperature,
                    "max_tokens": self.max_new_tokens,
                }
            ).encode()
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(
                    request, timeout=float(self.spec.get("timeout", 60))
                ) as r:
                    reply = json.loads(r.read().decode("utf-8"))
                answers.append(str(reply["choices"][0]["message"]["content"] or ""))
            except urllib.error.HTTPError as err:
                raise HonerError(
                    f"{self.where}: the judge endpoint {url} answered HTTP {err.code} "
                    f"({err.reason}); check `base_url`, `model` and the key in ${env or '…'}."
                ) from None
            except (urllib.error.URLError, TimeoutError, OSError) as err:
                raise HonerError(
                    f"{self.where}: cannot reach the judge endpoint {url}: {err}."
                ) from None
            except (KeyError, IndexError, TypeError, json.JSONDecodeError):
                raise HonerError(
                    f"{self.where}: the judge endpoint {url} did not answer in the OpenAI chat "
                    "format (choices[0].message.content)."
                ) from None
        return answers

    def _load_local(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            source = str(self.spec["model"])
            if source.lower().endswith(".gguf"):
                from honer.config.schema import Config
                from honer.model.gguf import converted_base

                source = str(
                    converted_base(
                        Config.model_validate(
                            {"base_model": source, "datasets": [{"path": "x", "type": "alpaca"}]}
                        )
                    )
                )
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForCausalLM.from_pretrained(source).eval()
            except (OSError, ValueError) as err:
                raise ConfigError(
                    [(f"{self.where}.model", f"cannot load the judge model `{source}`: {err}")]
                ) from None
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._loaded = (model, tokenizer)
        return self._loaded

    def _local(self, prompts: list[str]) -> list[str]:
        from honer.infer.generate import generate

        model, tokenizer = self._load_local()
        ids = []
        for prompt in prompts:
            if tokenizer.chat_template:
                ids.append(
                    list(
                        tokenizer.apply_chat_template(
                            [{"role": "user", "content": prompt}],
                            add_generation_prompt=True,
                            tokenize=True,
                            return_dict=True,
                        )["input_ids"]
                    )
                )
            else:
                ids.append(list(tokenizer(prompt)["input_ids"]))
        sampling = (
            {
                "max_new_tokens": self.max_new_tokens,
                "do_sample": True,
                "temperature": self.temperature,
            }
            if self.temperature > 0
            else None
        )
        outputs = generate(
            model,
            tokenizer,
            ids,
            max_new_tokens=self.max_new_tokens,
            batch_size=8,
            generation=sampling,
        )
        return [tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
