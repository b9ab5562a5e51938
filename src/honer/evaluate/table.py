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
        rows = [
            {
                "step": state.global_step,
                "prompt": self.tokenizer.decode(prompt, skip_special_tokens=True),
                "expected": expected,
                "generated": self.tokenizer.decode(out, skip_special_tokens=True),
            }
            for prompt, expected, out in zip(self.prompts, self.expected, outputs, strict=True)
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        _to_trackers(rows, state.global_step, args.report_to or [])
        return control


def _to_trackers(rows: list[dict[str, Any]], step: int, report_to: list[str]) -> None:
    """The same table in MLflow (a JSON artifact) and W&B (a `wandb.Table`) when enabled."""
    columns = ["step", "prompt", "expected", "generated"]
    if "mlflow" in report_to:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_table(
                {c: [r[c] for r in rows] for c in columns},
                artifact_file=f"eval_table/step_{step:07d}.json",
            )
    if "wandb" in report_to:
        import wandb

        if wandb.run is not None:
            table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
            wandb.log({"eval_table": table}, step=step)
