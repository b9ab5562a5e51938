"""Config loading: defaults, aliases, and an error with a key path for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from honer.config import config_from_dict, load_config
from honer.errors import ConfigError

MINIMAL = {"base_model": "some/model", "datasets": [{"path": "data.jsonl", "type": "alpaca"}]}

# The seed example (Axolotl's llama-2 QLoRA example), as the foundation issue lists its keys.
SEED_YAML = """
base_model: {base}
model_type: LlamaForCausalLM
tokenizer_type: AutoTokenizer
load_in_8bit: false
load_in_4bit: true
strict: false
lora_fan_in_fan_out:
data_seed: 49
seed: 49
datasets:
  - path: {data}
    type: sharegpt
    conversation: alpaca
dataset_prepared_path: last_run_prepared
val_set_size: 0.05
output_dir: ./qlora-out
hub_model_id:
adapter: qlora
sequence_len: 1024
sample_packing: true
pad_to_sequence_len: true
lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
lora_target_modules:
wandb_project:
wandb_entity:
gradient_accumulation_steps: 4
micro_batch_size: 2
eval_batch_size: 2
num_epochs: 4
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
max_grad_norm: 1.0
adam_beta2: 0.95
adam_epsilon: 0.00001
save_total_limit: 12
train_on_inputs: false
group_by_length: false
bf16: auto
fp16:
tf32: false
gradient_checkpointing: true
logging_steps: 1
flash_attention: true
loss_watchdog_threshold: 5.0
loss_watchdog_patience: 3
warmup_steps: 10
evals_per_epoch: 4
eval_table_max_new_tokens: 128
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
  bos_token: "<s>"
  eos_token: "</s>"
  unk_token: "<unk>"
save_safetensors: true
"""


def errors_of(raw: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, "cfg.yml")
    return dict(info.value.problems)


def test_minimal_config_gets_novice_defaults() -> None:
    cfg = config_from_dict(MINIMAL)
    assert cfg.sequence_len == 2048
    assert cfg.micro_batch_size == 1 and cfg.effective_batch_size == 1
    assert cfg.resolved_learning_rate == 2e-5  # full fine-tuning
    assert cfg.datasets[0].train_on_eos == "turn"
    assert cfg.train_on_inputs is False
    assert cfg.trust_remote_code is False
    lora = config_from_dict({**MINIMAL, "adapter": "lora"})
    assert lora.resolved_learning_rate == 2e-4


def test_seed_example_validates(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("{}\n")
    path = tmp_path / "qlora.yml"
    path.write_text(SEED_YAML.format(base=tmp_path, data=tmp_path / "data.jsonl"))
    cfg = load_config(path)
    assert cfg.adapter == "qlora" and cfg.load_in_4bit
    assert cfg.eval_max_new_tokens == 128  # Axolotl's eval_table_max_new_tokens
    assert cfg.special_tokens is not None and cfg.special_tokens.eos_token == "</s>"
    assert cfg.datasets[0].conversation == "alpaca"
    assert cfg.effective_batch_size == 8
    assert cfg.bf16 == "auto" and cfg.fp16 is False  # `fp16:` empty means unset


def test_unknown_key_names_closest_known_key() -> None:
    problems = errors_of({**MINIMAL, "lora_alpah": 16})
    assert problems == {"lora_alpah": "unknown key. Did you mean `lora_alpha`?"}


def test_unknown_nested_keys_have_paths() -> None:
    raw = {
        **MINIMAL,
        "datasets": [{"path": "a", "type": "alpaca", "feild_output": "x"}],
        "special_tokens": {"eos": "</s>"},
    }
    problems = errors_of(raw)
    assert problems["datasets[0].feild_output"] == "unknown key. Did you mean `field_output`?"
    assert problems["special_tokens.eos"] == "unknown key. Did you mean `eos_token`?"


def test_wrong_value_names_path_and_allowed_values() -> None:
    raw = {**MINIMAL, "datasets": [MINIMAL["datasets"][0], {"path": "b", "type": "alpca"}]}
    problems = errors_of(raw)
    assert list(problems) == ["datasets[1].type"]
    message = problems["datasets[1].type"]
    assert message.startswith(
        "`alpca` is not an accepted value (alpaca, sharegpt, chat_template, completion, "
        "input_output, chat_template.default, "
    )
    assert message.endswith(
        ", llama3.argilla, prompt, bradley_terry.chat_template, stepwise_supervised). Did you mean `alpaca`?"
    )


def test_wrong_type_is_reported_with_path() -> None:
    problems = errors_of({**MINIMAL, "micro_batch_size": "two"})
    assert "micro_batch_size" in problems and "integer" in problems["micro_batch_size"]


@pytest.mark.parametrize(
    ("extra", "path", "needle"),
    [
        ({"adapter": "qlora"}, "adapter", "needs `load_in_4bit: true`"),
        ({"fp16": True, "bf16": True}, "fp16", "both true"),
        ({"micro_batch_size": 0}, "micro_batch_size", "greater than or equal to 1"),
        ({"val_set_size": 1.5}, "val_set_size", "neither a fraction"),
        ({"val_set_size": -0.1}, "val_set_size", "negative"),
        ({"load_in_4bit": True}, "load_in_4bit", "without an adapter"),
        ({"adapter": "lora", "load_in_4bit": True}, "adapter", "use `adapter: qlora`"),
        ({"lora_r": 16}, "lora_r", "`adapter` is empty"),
        ({"warmup_steps": 5, "warmup_ratio": 0.1}, "warmup_ratio", "both set"),
        ({"wandb_entity": "me"}, "wandb_entity", "`wandb_project` is not"),
        ({"chat_template": "jinja"}, "chat_template_jinja", "needs the template text"),
    ],
)
def test_contradictions_are_errors(extra: dict, path: str, needle: str) -> None:
    problems = errors_of({**MINIMAL, **extra})
    assert needle in problems[path]


def test_val_set_size_row_count_is_accepted() -> None:
    assert config_from_dict({**MINIMAL, "val_set_size": 200}).val_set_size == 200


def test_axolotl_keys_we_lack_name_the_feature() -> None:
    problems = errors_of({**MINIMAL, "vllm": {"port": 8000}, "rpo_alpha": 0.1, "qat": {"x": 1}})
    assert problems["vllm"].startswith(
        "Axolotl's `vllm` (preference and RL training) is not supported: honer runs DPO, IPO, KTO"
    )
    # A real Axolotl key is never "corrected" into a look-alike of ours (`lora_alpha`).
    assert "Did you mean" not in problems["rpo_alpha"]
    assert problems["qat"].startswith("Axolotl's `qat` (quantization methods) is not supported")


def test_unsupported_key_left_empty_is_fine() -> None:
    assert config_from_dict({**MINIMAL, "rl": None, "torch_compile": None}).base_model


def test_alias_and_its_target_together_is_an_error() -> None:
    problems = errors_of({**MINIMAL, "eval_table_max_new_tokens": 10, "eval_max_new_tokens": 20})
    assert "another name for `eval_max_new_tokens`" in problems["eval_table_max_new_tokens"]


def test_all_problems_are_reported_at_once() -> None:
    problems = errors_of({**MINIMAL, "lora_alpah": 1, "rpo_alpha": 1, "sequence_len": 1})
    assert set(problems) == {"lora_alpah", "rpo_alpha", "sequence_len"}


def test_required_keys() -> None:
    problems = errors_of({"datasets": []})
    assert problems["base_model"] == "required key is missing."
    assert "at least 1 item" in problems["datasets"]


@pytest.mark.parametrize("raw", [None, [1, 2], "text", 3])
def test_root_must_be_a_mapping(raw: object) -> None:
    problems = errors_of(raw)
    assert "must be a mapping" in problems[""]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("base_model: x\ndatasets:\n  - path: a\n   type: alpaca\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "line 4" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yml")


def test_config_is_frozen() -> None:
    cfg = config_from_dict(MINIMAL)
    with pytest.raises(Exception, match="frozen"):
        cfg.seed = 3  # type: ignore[misc]


def test_report_to_adds_wandb_for_a_project() -> None:
    cfg = config_from_dict({**MINIMAL, "wandb_project": "p", "report_to": ["tensorboard"]})
    assert cfg.resolved_report_to == ["tensorboard", "wandb"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("learning_rate", float("inf"), "must be a finite number (not .inf or .nan)."),
        ("num_epochs", float("inf"), "must be a finite number (not .inf or .nan)."),
        ("val_set_size", float("nan"), "must be a finite number (not .inf or .nan)."),
        ("seed", -1, "Input should be greater than or equal to 0"),
        ("seed", 2**32, "Input should be less than 4294967296"),
        ("micro_batch_size", True, "must be a number, not true/false"),
        ("lora_dropout", False, "must be a number, not true/false"),
    ],
)
def test_values_that_would_fail_later_are_refused(key: str, value: object, message: str) -> None:
    assert errors_of({**MINIMAL, key: value})[key] == message
