"""Reward models (`reward_model: true`) on the tiny model: a separable toy preference set (the
right sum beats the same wrong word) must be ranked well above chance on held-out pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PAIRS = [
    {
        "messages": [{"role": "user", "content": f"Add {i} and 1"}],
        "chosen": str(i + 1),
        "rejected": "zebra",
    }
    for i in range(48)
]


def _config(tmp: Path, base: Path, extra: str, rows: list[dict], kind: str) -> Path:
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp / "rm.yml"
    cfg.write_text(
        f"base_model: {base}\nreward_model: true\n"
        f"datasets:\n  - path: {data}\n    type: {kind}\n"
        "chat_template: tokenizer_default\n"
        f"dataset_prepared_path: {tmp / 'prepared'}\noutput_dir: {tmp / 'out'}\n"
        "sequence_len: 64\nmicro_batch_size: 4\nlogging_steps: 1\nseed: 3\n" + extra
    )
    return cfg


def _records(out: Path, kind: str) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def test_reward_model_ranks_held_out_pairs(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import honer

    extra = (
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 20\n"
        "val_set_size: 8\neval_steps: 20\nwarmup_steps: 2\n"
    )
    cfg = honer.load_config(
        _config(tmp_path, tiny_model_dir, extra, PAIRS, "chat_template.default")
    )
    run = honer.train_model(cfg)
    assert run.global_step == 20
    out = tmp_path / "out"
    train = _records(out, "train")
    assert {"accuracy", "margin", "mean_reward"} <= set(train[0])
    (evaluation,) = _records(out, "eval")
    assert evaluation["eval_accuracy"] >= 0.875  # 7 of the 8 held-out pairs, or all
    assert evaluation["eval_margin"] > 0.5
    # The saved adapter carries the trained score head: reloaded, it ranks a new pair right.
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert any(".score." in k for k in f.keys())  # noqa: SIM118 (safe_open has no __iter__)
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, out).eval()

    def score(answer: str) -> float:
        messages = [
            {"role": "user", "content": "Add 60 and 1"},
            {"role": "assistant", "content": answer},
        ]
        ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            return float(model(**ids).logits[0, 0])

    assert score("61") > score("zebra")


def test_bradley_terry_rows_are_two_chat_conversations(tiny_model_dir, tokenizer) -> None:
    """Axolotl's `bradley_terry.chat_template`: `system`, `input`, `chosen`, `rejected` become
    two conversations, each tokenized as the SFT `chat_template` format tokenizes it."""
    from datasets import Dataset

    from honer.config.load import config_from_dict
    from honer.data.prepare import _tokenize_reward_entry

    row = {"system": "Be brief.", "input": "Add 2 and 3", "chosen": "5", "rejected": "zebra"}
    cfg = config_from_dict(
        {
            "base_model": str(tiny_model_dir),
            "reward_model": True,
            "chat_template": "tokenizer_default",
            "datasets": [{"path": "x.jsonl", "type": "bradley_terry.chat_template"}],
            "output_dir": "out",
        }
    )
    data, counts = _tokenize_reward_entry(
        Dataset.from_list([row]), cfg, 0, "datasets", cfg.datasets[0], tokenizer
    )
    assert counts == {"ok": 1}

    def conversation(answer: str) -> list[int]:
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Add 2 and 3"},
            {"role": "assistant", "content": answer},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]

    assert data[0]["chosen_ids"] == conversation("5")
    assert data[0]["rejected_ids"] == conversation("zebra")
