"""Process reward models (`process_reward_model: true`): stepwise rows' exact tokens and labels,
and a tiny token classifier that learns to tell right steps from wrong ones."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

IGNORE = -100


def test_stepwise_row_tokens_and_labels(tiny_model_dir: Path, tokenizer) -> None:
    """Axolotl's (and TRL's former PRMTrainer's) layout: BOS + prompt, then each step and its
    separator, the step's label on the separator's (last) token."""
    from honer.config.schema import DatasetConfig
    from honer.data.formats import FormatContext, stepwise_supervised
    from honer.data.tokenize import TokenizerView

    row = {"prompt": "Add 2 and 3", "completions": ["2 + 3", "= 6"], "labels": [True, False]}
    view = TokenizerView(tokenizer)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    ds = DatasetConfig(path="s.jsonl", type="stepwise_supervised")
    [sample] = stepwise_supervised.tokenize_row(row, view, FormatContext(dataset=ds))
    prompt, step1, step2, sep = ids("Add 2 and 3"), ids("2 + 3"), ids("= 6"), ids("\n")
    assert sample.input_ids == [tokenizer.bos_token_id, *prompt, *step1, *sep, *step2, *sep]
    assert sample.labels == (
        [IGNORE] * (1 + len(prompt))
        + [IGNORE] * (len(step1) + len(sep) - 1)
        + [1]
        + [IGNORE] * (len(step2) + len(sep) - 1)
        + [0]
    )
    last_only = ds.model_copy(update={"train_on_last_step_only": True, "max_completion_length": 4})
    [cut] = stepwise_supervised.tokenize_row(row, view, FormatContext(dataset=last_only))
    assert cut.input_ids == [tokenizer.bos_token_id, *prompt, *([*step1, *sep, *step2, *sep][:4])]
    assert all(x == IGNORE for x in cut.labels)  # step 1's label dropped, step 2 cut off


@pytest.mark.slow
def test_process_reward_model_learns_step_labels(tiny_model_dir: Path, tmp_path: Path) -> None:
    import honer

    rng = random.Random(0)
    rows = []
    for i in range(64):
        labels = [rng.random() < 0.5 for _ in range(3)]
        steps = [f"step {j} is {'fine' if ok else 'zebra'}" for j, ok in enumerate(labels)]
        rows.append({"prompt": f"Add {i} and 1", "completions": steps, "labels": labels})
    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg_path = tmp_path / "prm.yml"
    cfg_path.write_text(
        f"base_model: {tiny_model_dir}\nprocess_reward_model: true\n"
        f"datasets:\n  - path: {data}\n    type: stepwise_supervised\n"
        f"dataset_prepared_path: {tmp_path / 'prepared'}\noutput_dir: {tmp_path / 'out'}\n"
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 30\n"
        "micro_batch_size: 4\nsequence_len: 64\nval_set_size: 16\neval_steps: 30\n"
        "logging_steps: 1\nseed: 3\n"
    )
    run = honer.train_model(honer.load_config(cfg_path))
    assert run.global_step == 30
    records = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    (evaluation,) = [r for r in records if r["kind"] == "eval"]
    assert train[-1]["loss"] < train[0]["loss"] * 0.5  # from ln 2 toward 0
    assert evaluation["eval_step_accuracy"] >= 0.9
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "adapter_model.safetensors"), "pt") as f:
        assert any(".score." in k for k in f.keys())  # noqa: SIM118 (safe_open has no __iter__)
