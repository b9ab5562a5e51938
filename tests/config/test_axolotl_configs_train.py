"""The Axolotl-style configs of test_axolotl.py train as written, on the tiny model.

Only what cannot work offline or on two CPU cores is changed: `base_model` (the tiny local
model), each dataset's `path` (a local file in the same format), `output_dir` /
`dataset_prepared_path` (a temporary folder), a 3-step cap with a short `sequence_len`, the loss
watchdog's threshold (the random model starts above it), `bf16: true` (needs a GPU) as `auto`,
and GRPO's `max_completion_length` where it would fill the short `sequence_len`. Every
other key stays as the user wrote it: kernels, plugins, templates, offloading, optimizers,
quantization. The multi-process ones (FSDP, DeepSpeed) are left to the engine tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.config.test_axolotl import AXOLOTL_STYLE

pytestmark = pytest.mark.slow

# Single-process configs; the others need FSDP/DeepSpeed engines (tests/train/test_distributed.py).
PLAIN = [
    "llama3-lora",
    "mistral-qlora-workshop",
    "qwen3-chat-cce-liger",
    "gemma3-eot",
    "qwen2-dpo-full",
    "llama3-dpo-lora-8bit",
    "llama3-kto-qlora",
    "mistral-qlora-orpo",
    "llama3-gdpo",
    "qwen2-reward-model",
    "qwen2-prm",
]

# The GDPO example's Python (`rwd.py`, which Axolotl's users write beside the config): a stand-in
# with the same names and TRL's signatures.
RWD = """
def gsm8k_transform(cfg, *args, **kwargs):
    def transform_fn(example, tokenizer=None):
        return {
            "prompt": [{"role": "user", "content": example["question"]}],
            "answer": example["answer"].split("####")[-1].strip(),
        }

    return transform_fn, {"remove_columns": ["question"]}


def format_reward(completions, **kwargs):
    return [float(len(c[0]["content"]) < 40) for c in completions]


def correctness_reward(completions, answer, **kwargs):
    return [float(a in c[0]["content"]) for c, a in zip(completions, answer)]
"""


def _rows(dataset: dict, n: int = 24) -> list[dict]:
    """Rows in the dataset entry's own format: alpaca, or conversations with from/value."""
    if dataset["type"] == "chat_template.default":  # a preference pair
        field = dataset.get("field_messages", "messages")
        return [
            {
                field: [{"role": "user", "content": f"Add {i} and 1"}],
                dataset.get("field_chosen", "chosen"): str(i + 1),
                dataset.get("field_rejected", "rejected"): "zebra",
            }
            for i in range(n)
        ]
    if dataset["type"] == "chat_template.argilla":  # ORPO: [user, assistant] conversations
        return [
            {
                "prompt": f"Add {i} and 1",
                "chosen": [
                    {"role": "user", "content": f"Add {i} and 1"},
                    {"role": "assistant", "content": str(i + 1)},
                ],
                "rejected": [
                    {"role": "user", "content": f"Add {i} and 1"},
                    {"role": "assistant", "content": "zebra"},
                ],
            }
            for i in range(n)
        ]
    if dataset["type"] == "stepwise_supervised":  # Math-Shepherd's columns
        return [
            {
                "prompt": f"Add {i} and 1",
                "completions": [f"{i} + 1", f"= {i + 1}"],
                "labels": [True, i % 3 != 0],
            }
            for i in range(n)
        ]
    if dataset["type"] == "bradley_terry.chat_template":  # Intel ORCA pairs' columns
        return [
            {"system": "", "input": f"Add {i} and 1", "chosen": str(i + 1), "rejected": "zebra"}
            for i in range(n)
        ]
    if dataset["type"] == "rwd.gsm8k_transform":  # GRPO: GSM8K's columns
        return [{"question": f"Add {i} and 1", "answer": f"{i} + 1 #### {i + 1}"} for i in range(n)]
    if dataset["type"] == "llama3.ultra":  # KTO: one answer, labelled
        return [
            {
                "prompt": f"Add {i} and 1",
                "completion": str(i + 1) if i % 2 else "zebra",
                "label": i % 2 == 1,
            }
            for i in range(n)
        ]
    if dataset["type"] == "alpaca":
        return [
            {"instruction": f"Add {i} and 1", "input": "", "output": str(i + 1)} for i in range(n)
        ]
    field = dataset.get("field_messages", "messages")
    mapping = dataset.get("message_property_mappings", {"role": "role", "content": "content"})
    role, content = mapping["role"], mapping["content"]
    user, assistant = ("human", "gpt") if role == "from" else ("user", "assistant")
    return [
        {
            field: [
                {role: user, content: f"Add {i} and 1"},
                {role: assistant, content: str(i + 1)},
            ]
        }
        for i in range(n)
    ]


def _localised(name: str, tiny: Path, tmp: Path) -> Path:
    raw = yaml.safe_load(AXOLOTL_STYLE[name])
    raw["base_model"] = str(tiny)
    for i, entry in enumerate(raw["datasets"]):
        data = tmp / f"data{i}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _rows(entry)))
        entry["path"] = str(data)
        entry.pop("split", None)  # a slice of the hub dataset; the local file is small already
    raw.update(
        output_dir=str(tmp / "out"),
        dataset_prepared_path=str(tmp / "prepared"),
        max_steps=3,
        sequence_len=128,
    )
    if "loss_watchdog_threshold" in raw:
        # A random-init model starts at ln(vocab) = 7.6, above the threshold of 5 written for a
        # pretrained one: keep the watchdog on, with room for the untrained start.
        raw["loss_watchdog_threshold"] = 20.0
    if raw.get("trl", {}).get("max_completion_length", 0) >= raw["sequence_len"]:
        raw["trl"]["max_completion_length"] = 16  # room for the prompt; fast on two cores
    if raw.get("bf16") is True:  # needs a GPU; `auto` is what a CPU can honour
        raw["bf16"] = "auto"
    raw.pop("hub_model_id", None)  # pushing is tests/runs/test_hub.py's job (a local stub)
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# Tokens the real base model's tokenizer has and the config relies on (`eot_tokens`, the named
# template's markers): the tiny stand-in gets them too, as single tokens.
FAMILY_TOKENS = {
    "gemma3-eot": ["<start_of_turn>", "<end_of_turn>"],
    "llama3-kto-qlora": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    "llama3-gdpo": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"],
    "llama3-dpo-lora-8bit": [
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
    ],
}


def _stand_in(name: str, tiny: Path, tmp: Path) -> Path:
    """The tiny model, with the family's special tokens where the config relies on them."""
    if name not in FAMILY_TOKENS:
        return tiny
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    tokenizer.add_special_tokens({"additional_special_tokens": FAMILY_TOKENS[name]})
    model = AutoModelForCausalLM.from_pretrained(tiny)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    dest = tmp / "base"
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


@pytest.mark.parametrize("name", PLAIN)
def test_axolotl_style_config_trains(
    name: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import honer

    if name == "llama3-gdpo":
        (tmp_path / "rwd.py").write_text(RWD)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
    base = _stand_in(name, tiny_model_dir, tmp_path)
    cfg = honer.load_config(_localised(name, base, tmp_path))
    run = honer.train_model(cfg)
    assert run.global_step == 3
    steps = [
        json.loads(line)
        for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line).get("kind") == "train"
    ]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(s["loss"] == s["loss"] for s in steps)  # not NaN
    if cfg.rl not in ("grpo", "gdpo"):  # a policy-gradient loss may be 0 or below
        assert all(s["loss"] > 0 for s in steps)
    if cfg.rl == "dpo":  # the policy starts equal to its reference
        assert steps[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
        assert "rewards/margins" in steps[0]
    if cfg.reward_model:  # TRL's reward metrics, and a one-output classifier saved
        assert {"accuracy", "margin"} <= set(steps[0])
        saved_config = json.loads((tmp_path / "out" / "config.json").read_text())
        assert saved_config["architectures"][0].endswith("ForSequenceClassification")
        assert len(saved_config["id2label"]) == 1
    if cfg.process_reward_model:  # a two-class token classifier saved
        saved_config = json.loads((tmp_path / "out" / "config.json").read_text())
        assert saved_config["architectures"][0].endswith("ForTokenClassification")
        # transformers leaves its default of two labels out of config.json
        assert len(saved_config.get("id2label") or {"0": "LABEL_0", "1": "LABEL_1"}) == 2
    if cfg.rl == "gdpo":  # both Python rewards scored every step, and the KL is logged
        assert {"rewards/format_reward/mean", "rewards/correctness_reward/mean", "kl"} <= set(
            steps[0]
        )
    saved = tmp_path / "out"
    weights = "adapter_model.safetensors" if cfg.adapter else "model.safetensors"
    assert (saved / weights).is_file()
