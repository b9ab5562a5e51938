"""Held-out accuracy of a model on the quickstart task: greedy answers, exact match.

    python examples/quickstart/evaluate.py CONFIG MODEL_DIR [--data heldout.jsonl]

Prompts are built by the same format code as training (tokens before the first trained label),
so the model sees at evaluation exactly the prompt tokens it was trained on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from honer.config import load_config
from honer.data.formats import FORMATS, FormatContext
from honer.data.tokenize import TokenizerView
from honer.infer.generate import generate, split_prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data/heldout.jsonl")
    parser.add_argument("--show", type=int, default=3, help="examples to print")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = load_config(args.config)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir)
    ds = cfg.datasets[0]
    ctx = FormatContext(ds, cfg.train_on_inputs, cfg.sequence_len)
    view = TokenizerView(tokenizer)
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    prompts, answers = [], []
    for row in rows:
        [sample] = FORMATS[ds.type].tokenize_row(row, view, ctx)
        prompt, answer = split_prompt(sample.input_ids, sample.labels)
        prompts.append(prompt)
        answers.append(tokenizer.decode(answer, skip_special_tokens=True).strip())
    outputs = generate(model, tokenizer, prompts, max_new_tokens=32)
    got = [tokenizer.decode(o, skip_special_tokens=True).strip() for o in outputs]
    correct = sum(g == a for g, a in zip(got, answers, strict=True))
    for row, g, a in list(zip(rows, got, answers, strict=True))[: args.show]:
        print(f"  {row['instruction']!r}\n    expected {a!r}\n    got      {g!r}")
    print(
        json.dumps({"model": str(args.model_dir), "accuracy": correct / len(rows), "n": len(rows)})
    )


if __name__ == "__main__":
    main()
