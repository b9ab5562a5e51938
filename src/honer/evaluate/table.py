"""Eval table: at every evaluation, generate answers for N fixed validation prompts.

`eval_table_size` and `eval_max_new_tokens` (Axolotl's `eval_table_max_new_tokens`). Prompts are
cut from the prepared validation samples (tokens before the first trained label), so they are
exactly what the model saw in training. Each evaluation appends one JSON line per prompt to
`output_dir/eval_table.jsonl`: step, prompt, expected, generated — greedy, so lines repeat
across runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from honer.infer.generate import generate, split_prompt

EVAL_TABLE_FILE = "eval_table.jsonl"


class EvalTableCallback(TrainerCallback):
    def __init__(
        self, eval_dataset: Any, tokenizer: Any, size: int, max_new_tokens: int, output_dir: str
    ) -> None:
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.path = Path(output_dir) / EVAL_TABLE_FILE
        self.prompts: list[list[int]] = []
        self.expected: list[str] = []
        for row in eval_dataset.select(range(min(size, len(eval_dataset)))):
            prompt, answer = split_prompt(row["input_ids"], row["labels"])
            self.prompts.append(prompt)
            self.expected.append(tokenizer.decode(answer, skip_special_tokens=True))

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        if not state.is_world_process_zero or model is None or not self.prompts:
            return control
        outputs = generate(model, self.tokenizer, self.prompts, self.max_new_tokens)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for prompt, expected, out in zip(self.prompts, self.expected, outputs, strict=True):
                line = {
                    "step": state.global_step,
                    "prompt": self.tokenizer.decode(prompt, skip_special_tokens=True),
                    "expected": expected,
                    "generated": self.tokenizer.decode(out, skip_special_tokens=True),
                }
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        return control
