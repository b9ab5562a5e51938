"""Axolotl configs as users write them: renamed, translated, noted or refused, never ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from honer.config import axolotl
from honer.config.load import config_from_dict, load_config
from honer.config.reference import AXOLOTL_END, AXOLOTL_START, axolotl_markdown
from honer.config.schema import Config, DatasetConfig
from honer.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "base_model": "NousResearch/Llama-3.2-1B",
    "datasets": [{"path": "teknium/GPT4-LLM-Cleaned", "type": "alpaca"}],
    "output_dir": "./outputs/lora-out",
}


def notes_of(raw: dict[str, Any]) -> dict[str, str]:
    return dict(config_from_dict({**BASE, **raw}).notes)


def errors_of(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict({**BASE, **raw})
    return dict(info.value.problems)


def test_no_axolotl_family_key_is_also_a_schema_key() -> None:
    """A key is either honer's (with Axolotl's meaning) or answered by the table, never both."""
    ours = set(Config.model_fields)
    assert not ours & set(axolotl.TOP_LEVEL), ours & set(axolotl.TOP_LEVEL)
    assert not set(DatasetConfig.model_fields) & set(axolotl.DATASET)
    assert not ours & set(axolotl.ALIASES)
    assert set(axolotl.ALIASES.values()) <= ours


def test_docs_axolotl_page_is_current() -> None:
    text = (REPO / "docs" / "axolotl.md").read_text()
    block = text.split(AXOLOTL_START, 1)[1].split(AXOLOTL_END, 1)[0]
    assert block == "\n" + axolotl_markdown(), (
        "docs/axolotl.md is stale: python -m honer.config.reference docs/axolotl.md"
    )


def test_family_flag_is_a_note_not_an_error() -> None:
    notes = notes_of({"is_mistral_derived_model": True})
    assert notes["is_mistral_derived_model"] == (
        "Axolotl's `is_mistral_derived_model` is accepted and changes nothing: not needed: honer "
        "reads the architecture from the model config."
    )


def test_refused_key_switched_off_is_a_note() -> None:
    notes = notes_of({"gptq": False, "tensor_parallel_size": 1, "torch_compile": False})
    assert notes["gptq"] == (
        "Axolotl's `gptq` (quantization methods) is off here: nothing to switch off."
    )
    assert "nothing to switch off" in notes["tensor_parallel_size"]
    assert "torch_compile" not in notes  # honer's own key


def test_refused_key_switched_on_names_the_feature() -> None:
    problems = errors_of({"gptq": True, "tensor_parallel_size": 2})
    assert problems["gptq"].startswith("Axolotl's `gptq` (quantization methods) is not supported")
    assert problems["tensor_parallel_size"].startswith(
        "Axolotl's `tensor_parallel_size` (model and tensor parallelism beyond data parallel)"
    )


def test_unknown_key_suggests_only_a_close_spelling() -> None:
    problems = errors_of({"lora_alpah": 16, "adam_eps": 1e-6, "ggg_zzz": 1})
    assert problems["lora_alpah"] == "unknown key. Did you mean `lora_alpha`?"
    assert problems["adam_eps"] == "unknown key. Did you mean `adam_epsilon`?"
    assert problems["ggg_zzz"] == "unknown key."


def test_older_axolotl_spellings_are_translated() -> None:
    """Keys of Axolotl's older examples that have a rule: each applied, each with a note."""
    cfg = config_from_dict(
        {
            **BASE,
            "tokens": {"pad_token": "<|padding|>", "eos_token": "<|endoftext|>"},
            "float16": True,
            "learning_rate": 5e-6,
            "lr_scheduler": "cosine",
            "eta_min": 1e-6,
            "gradient_checkpointing_kwargs": {"use_reentrant": False},
        }
    )
    assert (cfg.special_tokens.pad_token, cfg.special_tokens.eos_token) == (
        "<|padding|>",
        "<|endoftext|>",
    )
    assert cfg.tokens is None and cfg.fp16 is True and cfg.bf16 is False
    assert cfg.cosine_min_lr_ratio == pytest.approx(0.2)
    assert cfg.gradient_checkpointing_kwargs is None
    assert sorted(dict(cfg.notes)) == [
        "eta_min",
        "float16",
        "gradient_checkpointing_kwargs",
        "tokens",
    ]
    assert notes_of({**BASE, "bfloat16": True, "bf16": "auto"}) == {
        "bfloat16": "honer's `bf16` already loads the weights in bfloat16."
    }
    problems = errors_of(
        {**BASE, "bfloat16": True, "fp16": True, "eta_min": 1e-6, "lr_scheduler": "linear"}
    )
    assert problems["bfloat16"] == "`bfloat16: true` contradicts `fp16: true`: keep one."
    assert problems["eta_min"].startswith("only applies to `lr_scheduler: cosine`")


def test_every_problem_is_reported_in_one_round() -> None:
    problems = errors_of(
        {"optimizer": "adamw_9bit", "lr_scheduler": "cosnie", "qat": {"a": 1}, "lora_alpah": 1}
    )
    assert set(problems) == {"optimizer", "lr_scheduler", "qat", "lora_alpah"}
    assert problems["lr_scheduler"].endswith("Did you mean `cosine`?")
    assert problems["optimizer"].startswith("`adamw_9bit` is not an accepted value (42 names")
    assert problems["optimizer"].endswith("Did you mean `adamw_8bit`?")


def test_duplicate_yaml_key_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "base_model: m\ndatasets:\n  - path: d.jsonl\n    type: alpaca\nlora_r: 8\nlora_r: 16\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [("lora_r", "written twice (lines 5 and 6): keep one.")]


def test_batch_size_becomes_gradient_accumulation() -> None:
    cfg = config_from_dict({**BASE, "batch_size": 16, "micro_batch_size": 4})
    assert cfg.gradient_accumulation_steps == 4
    assert dict(cfg.notes)["batch_size"] == (
        "Axolotl's older spelling: gradient_accumulation_steps = 4."
    )
    assert "not a multiple" in errors_of({"batch_size": 10, "micro_batch_size": 4})["batch_size"]
    clash = errors_of({"batch_size": 8, "micro_batch_size": 2, "gradient_accumulation_steps": 2})
    assert (
        "disagrees with micro_batch_size × gradient_accumulation_steps (2 × 2)"
        in clash["batch_size"]
    )


def test_rope_scaling_goes_under_model_config() -> None:
    cfg = config_from_dict({**BASE, "rope_scaling": {"type": "linear", "factor": 2.0}})
    assert cfg.model_config_overrides == {"rope_scaling": {"type": "linear", "factor": 2.0}}
    cfg = config_from_dict({**BASE, "model_config": {"max_position_embeddings": 4096}})
    assert cfg.model_config_overrides == {"max_position_embeddings": 4096}


def test_axolotl_deepspeed_file_runs_the_preset() -> None:
    cfg = config_from_dict({**BASE, "deepspeed": "deepspeed_configs/zero3_bf16.json"})
    assert cfg.deepspeed == "zero3"
    assert "honer's `zero3` preset" in dict(cfg.notes)["deepspeed"]


def test_fsdp1_config_translates_to_fsdp2() -> None:
    cfg = config_from_dict(
        {
            **BASE,
            "fsdp": ["full_shard", "auto_wrap"],
            "fsdp_config": {
                "fsdp_sharding_strategy": "SHARD_GRAD_OP",
                "fsdp_use_orig_params": False,
                "fsdp_offload_params": True,
            },
        }
    )
    assert cfg.fsdp_config is not None and cfg.fsdp_config.reshard_after_forward is False
    assert cfg.fsdp_config.offload_params is True
    notes = dict(cfg.notes)
    assert notes["fsdp_config.fsdp_use_orig_params"].startswith("an FSDP1 setting")


def test_fsdp_config_alone_switches_fsdp_on() -> None:
    cfg = config_from_dict(
        {
            **BASE,
            "fsdp_version": 2,
            "fsdp_config": {"offload_params": False, "reshard_after_forward": True},
        }
    )
    assert cfg.fsdp_words == ["full_shard", "auto_wrap"]


def test_gradient_checkpointing_beside_fsdp_activation_checkpointing_applies_once() -> None:
    cfg = config_from_dict(
        {
            **BASE,
            "gradient_checkpointing": True,
            "gradient_checkpointing_kwargs": {"use_reentrant": False},
            "fsdp_config": {"activation_checkpointing": True},
        }
    )
    assert cfg.gradient_checkpointing is False
    assert cfg.gradient_checkpointing_kwargs is None
    assert cfg.fsdp_config is not None and cfg.fsdp_config.activation_checkpointing


def test_plugins_kept_noted_and_refused() -> None:
    cfg = config_from_dict(
        {
            **BASE,
            "plugins": [
                "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin",
                "axolotl.integrations.kernels.KernelsPlugin",
            ],
        }
    )
    assert cfg.use_cut_cross_entropy
    assert "changes nothing" in dict(cfg.notes)["plugins[1]"]
    problems = errors_of({"plugins": ["axolotl.integrations.swanlab.SwanLabPlugin"]})
    assert problems["plugins[0]"].startswith("Axolotl's plugin `axolotl.integrations.swanlab")


def test_strict_turns_notes_into_errors() -> None:
    problems = errors_of({"strict": True, "is_llama_derived_model": True})
    assert problems["is_llama_derived_model"].endswith("(`strict: true` makes notes errors)")


def test_fraction_in_warmup_steps_points_at_warmup_ratio() -> None:
    assert errors_of({"warmup_steps": 0.1})["warmup_steps"] == (
        "0.1 is a fraction: use `warmup_ratio: 0.1`, or a whole step count."
    )


# Axolotl-style configs written from its examples: text models of several families, LoRA,
# QLoRA and full fine-tuning, FSDP and DeepSpeed, kernels, templates. Each must validate as is.
AXOLOTL_STYLE: dict[str, str] = {
    "llama3-lora": """
base_model: NousResearch/Llama-3.2-1B
datasets:
  - path: teknium/GPT4-LLM-Cleaned
    type: alpaca
dataset_prepared_path: last_run_prepared
val_set_size: 0.1
output_dir: ./outputs/lora-out
adapter: lora
lora_r: 16
lora_alpha: 32
lora_dropout: 0.05
lora_target_linear: true
sequence_len: 2048
sample_packing: true
eval_sample_packing: true
gradient_accumulation_steps: 2
micro_batch_size: 2
num_epochs: 1
optimizer: adamw_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
tf32: false
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
logging_steps: 1
flash_attention: true
loss_watchdog_threshold: 5.0
loss_watchdog_patience: 3
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
  pad_token: "<|end_of_text|>"
""",
    "mistral-qlora-workshop": """
base_model: mistralai/Mistral-7B-v0.1
model_type: MistralForCausalLM
tokenizer_type: LlamaTokenizer
is_mistral_derived_model: true
load_in_8bit: false
load_in_4bit: true
strict: false
datasets:
  - path: mhenrichsen/alpaca_2k_test
    type: alpaca
dataset_prepared_path: last_run_prepared
val_set_size: 0.1
output_dir: ./outputs/qlora-out
hub_model_id: me/mistral-sql
adapter: qlora
lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
lora_target_modules:
  - gate_proj
  - down_proj
  - up_proj
  - q_proj
  - v_proj
  - k_proj
  - o_proj
sequence_len: 8192
sample_packing: true
pad_to_sequence_len: true
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 1
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
train_on_inputs: false
group_by_length: false
bf16: auto
fp16:
tf32: false
gradient_checkpointing: true
early_stopping_patience:
resume_from_checkpoint:
local_rank:
logging_steps: 1
xformers_attention:
flash_attention: true
loss_watchdog_threshold: 5.0
loss_watchdog_patience: 3
warmup_steps: 10
evals_per_epoch: 4
eval_table_size:
eval_max_new_tokens: 128
saves_per_epoch: 1
debug:
deepspeed:
weight_decay: 0.0
fsdp:
fsdp_config:
special_tokens:
""",
    "qwen3-chat-cce-liger": """
base_model: Qwen/Qwen3-8B
plugins:
  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin
  - axolotl.integrations.liger.LigerPlugin
liger_rope: true
liger_rms_norm: true
liger_glu_activation: true
liger_layer_norm: true
load_in_4bit: true
adapter: qlora
chat_template: qwen3
datasets:
  - path: mlabonne/FineTome-100k
    type: chat_template
    split: train[:20%]
    field_messages: conversations
    message_property_mappings:
      role: from
      content: value
val_set_size: 0.0
output_dir: ./outputs/out
sequence_len: 2048
sample_packing: true
lora_r: 16
lora_alpha: 32
lora_target_modules: [q_proj, k_proj, v_proj, o_proj, down_proj, up_proj]
lora_mlp_kernel: true
lora_qkv_kernel: true
lora_o_kernel: true
gradient_accumulation_steps: 2
micro_batch_size: 1
num_epochs: 1
optimizer: adamw_torch_fused
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
gradient_checkpointing: offload
gradient_checkpointing_kwargs:
  use_reentrant: false
resume_from_checkpoint:
logging_steps: 1
flash_attention: true
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
""",
    "gemma3-eot": """
base_model: google/gemma-3-1b-it
chat_template: gemma3
eot_tokens:
  - <end_of_turn>
datasets:
  - path: cgato/SlimOrcaDedupCleaned
    type: chat_template
    field_messages: conversations
    message_property_mappings:
      role: from
      content: value
    roles_to_train: [assistant]
    train_on_eos: turn
val_set_size: 0.0
output_dir: ./outputs/out
adapter: lora
lora_r: 32
lora_alpha: 16
lora_target_linear: true
sequence_len: 2048
micro_batch_size: 1
gradient_accumulation_steps: 4
num_epochs: 1
optimizer: adamw_torch_fused
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
gradient_checkpointing: true
activation_offloading: true
evals_per_epoch:
saves_per_epoch: 1
weight_decay: 0.0
""",
    "phi3-full-fsdp": """
base_model: microsoft/Phi-3-mini-4k-instruct
trust_remote_code: true
chat_template: phi_3
datasets:
  - path: garage-bAInd/Open-Platypus
    type: alpaca:phi
""",
    "mixtral-fsdp1": """
base_model: mistralai/Mixtral-8x7B-v0.1
datasets:
  - path: tatsu-lab/alpaca
    type: alpaca
val_set_size: 0.02
output_dir: ./outputs/out
adapter: qlora
load_in_4bit: true
lora_r: 8
lora_alpha: 16
lora_target_linear: true
sequence_len: 4096
sample_packing: true
micro_batch_size: 2
gradient_accumulation_steps: 1
num_epochs: 1
optimizer: adamw_torch
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
flash_attention: true
warmup_steps: 10
evals_per_epoch: 4
saves_per_epoch: 1
fsdp:
  - full_shard
  - auto_wrap
fsdp_config:
  fsdp_limit_all_gathers: true
  fsdp_sync_module_states: true
  fsdp_offload_params: true
  fsdp_use_orig_params: false
  fsdp_cpu_ram_efficient_loading: true
  fsdp_transformer_layer_cls_to_wrap: MixtralSparseMoeBlock
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_sharding_strategy: FULL_SHARD
""",
    "llama3-fsdp2-full": """
base_model: NousResearch/Meta-Llama-3.1-8B
datasets:
  - path: tatsu-lab/alpaca
    type: alpaca
val_set_size: 0.05
output_dir: ./outputs/out
sequence_len: 8192
sample_packing: true
gradient_accumulation_steps: 8
micro_batch_size: 1
num_epochs: 1
optimizer: paged_adamw_8bit
lr_scheduler: cosine
cosine_constant_lr_ratio: 0.8
cosine_min_lr_ratio: 0.1
learning_rate: 2e-5
bf16: auto
gradient_checkpointing: true
flash_attention: true
warmup_steps: 100
evals_per_epoch: 2
save_strategy: epoch
save_only_model: true
include_tokens_per_second: true
fsdp_version: 2
fsdp_config:
  offload_params: false
  cpu_ram_efficient_loading: true
  auto_wrap_policy: TRANSFORMER_BASED_WRAP
  transformer_layer_cls_to_wrap: LlamaDecoderLayer
  state_dict_type: FULL_STATE_DICT
  reshard_after_forward: true
  activation_checkpointing: true
special_tokens:
  pad_token: <|end_of_text|>
""",
    "deepspeed-zero3-neftune": """
base_model: mistralai/Mistral-7B-v0.1
datasets:
  - path: tatsu-lab/alpaca
    type: alpaca
output_dir: ./outputs/out
sequence_len: 2048
micro_batch_size: 1
gradient_accumulation_steps: 4
num_epochs: 1
optimizer: adamw_torch
learning_rate: 0.00001
neftune_noise_alpha: 5
unfrozen_parameters:
  - ^lm_head.weight$
  - model.layers.2[0-9]+.mlp.*
deepspeed: deepspeed_configs/zero3_bf16.json
torch_compile: false
gptq: false
""",
    "qwen2-dpo-full": """
base_model: Qwen/Qwen2.5-0.5B
chat_template: qwen_25
rl: dpo
datasets:
  - path: fozziethebeat/alpaca_messages_2k_dpo_test
    type: chat_template.default
    field_messages: conversation
    field_chosen: chosen
    field_rejected: rejected
    message_property_mappings:
      role: role
      content: content
    roles:
      system:
        - system
      user:
        - user
      assistant:
        - assistant
dataset_prepared_path:
val_set_size: 0.0
output_dir: ./outputs/dpo-out
sequence_len: 2048
sample_packing: false
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 4
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
tf32: false
gradient_checkpointing: true
resume_from_checkpoint:
logging_steps: 1
attn_implementation: flash_attention_2
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
""",
    "llama3-dpo-lora-8bit": """
base_model: meta-llama/Meta-Llama-3-8B-Instruct
model_type: LlamaForCausalLM
tokenizer_type: AutoTokenizer
special_tokens:
  pad_token: <|finetune_right_pad_id|>
  eos_token: <|eot_id|>
load_in_8bit: true
load_in_4bit: false
chat_template: llama3
rl: dpo
datasets:
  - path: fozziethebeat/alpaca_messages_2k_dpo_test
    type: chat_template.default
    field_messages: conversation
    field_chosen: chosen
    field_rejected: rejected
    message_property_mappings:
      role: role
      content: content
val_set_size: 0.05
output_dir: ./outputs/lora-out
sequence_len: 4096
sample_packing: false
adapter: lora
lora_model_dir:
lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 4
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
tf32: false
gradient_checkpointing: true
logging_steps: 1
attn_implementation: flash_attention_2
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
""",
    # examples/mistral/orpo/mistral-qlora-orpo.yml, as Axolotl ships it (comments dropped).
    "mistral-qlora-orpo": """
base_model: mistralai/Mistral-7B-v0.1
model_type: MistralForCausalLM
tokenizer_type: LlamaTokenizer
load_in_8bit: false
load_in_4bit: true
rl: orpo
orpo_alpha: 0.1
remove_unused_columns: false
chat_template: chatml
datasets:
  - path: argilla/ultrafeedback-binarized-preferences-cleaned
    type: chat_template.argilla
dataset_prepared_path: last_run_prepared
val_set_size: 0.1
output_dir: ./outputs/mistral-qlora-orpo-out
adapter: qlora
lora_model_dir:
sequence_len: 4096
sample_packing: false
lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
lora_target_modules:
  - gate_proj
  - down_proj
  - up_proj
  - q_proj
  - v_proj
  - k_proj
  - o_proj
wandb_project:
wandb_entity:
wandb_watch:
wandb_name:
wandb_log_model:
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 1
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
tf32: false
gradient_checkpointing: true
resume_from_checkpoint:
logging_steps: 1
attn_implementation: flash_attention_2
loss_watchdog_threshold: 5.0
loss_watchdog_patience: 3
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
""",
    # examples/llama-3/qlora-1b-gdpo.yaml, as Axolotl ships it (comments dropped).
    "llama3-gdpo": """
base_model: meta-llama/Llama-3.2-1B-Instruct
chat_template: llama3
rl: gdpo
trl:
  beta: 0.001
  max_completion_length: 128
  num_generations: 2
  temperature: 0.7
  top_p: 0.95
  use_vllm: false
  multi_objective_aggregation: normalize_then_sum
  reward_funcs:
    - rwd.format_reward
    - rwd.correctness_reward
  reward_weights: [1.0, 2.0]
  log_completions: true
  num_completions_to_print: 3
  scale_rewards: true
datasets:
  - path: openai/gsm8k
    name: main
    split: train[:1000]
    type: rwd.gsm8k_transform
val_set_size: 0.0
output_dir: ./outputs/llama3-gdpo-out
sequence_len: 512
sample_packing: false
pad_to_sequence_len: false
gradient_accumulation_steps: 8
micro_batch_size: 1
num_epochs: 1
max_steps: 100
optimizer: adamw_torch_fused
lr_scheduler: cosine
learning_rate: 5e-5
weight_decay: 0.01
warmup_steps: 10
bf16: auto
tf32: true
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
attn_implementation: flash_attention_2
logging_steps: 1
save_steps: 50
save_safetensors: true
special_tokens:
  pad_token: "<|end_of_text|>"
seed: 42
""",
    # examples/qwen2/reward-model.yaml, as Axolotl ships it (comments dropped).
    "qwen2-reward-model": """
base_model:  Qwen/Qwen2.5-0.5B
model_type: AutoModelForSequenceClassification
num_labels: 1
tokenizer_type: AutoTokenizer
reward_model: true
chat_template: qwen_25
datasets:
  - path: argilla/distilabel-intel-orca-dpo-pairs
    type: bradley_terry.chat_template
val_set_size: 0.0
output_dir: ./outputs/out
remove_unused_columns: false
sequence_len: 2048
sample_packing: false
eval_sample_packing: false
wandb_project:
wandb_entity:
wandb_watch:
wandb_name:
wandb_log_model:
gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 4
optimizer: adamw_bnb_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: true
fp16:
tf32: true
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
resume_from_checkpoint:
logging_steps: 1
attn_implementation: flash_attention_2
warmup_ratio: 0.1
evals_per_epoch:
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
""",
    # examples/qwen2/prm.yaml, as Axolotl ships it (comments dropped).
    "qwen2-prm": """
base_model: Qwen/Qwen2.5-3B
model_type: AutoModelForTokenClassification
num_labels: 2
tokenizer_type: AutoTokenizer
process_reward_model: true
chat_template:
datasets:
  - path: trl-lib/math_shepherd
    type: stepwise_supervised
    step_separator: "\n"
    max_completion_length:
    train_on_last_step_only: false
val_set_size: 0.2
output_dir: ./outputs/out
remove_unused_columns: false
sequence_len: 2048
sample_packing: false
eval_sample_packing: false
wandb_project:
wandb_entity:
wandb_watch:
wandb_name:
wandb_log_model:
gradient_accumulation_steps: 1
micro_batch_size: 8
eval_batch_size: 8
num_epochs: 1
optimizer: adamw_torch
lr_scheduler: cosine
learning_rate: 0.0002
bf16: true
fp16:
tf32:
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
resume_from_checkpoint:
logging_steps: 1
attn_implementation: flash_attention_2
warmup_ratio: 0.1
evals_per_epoch:
eval_steps: 100
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
""",
    "llama3-kto-qlora": """
base_model: meta-llama/Llama-3.2-1B
load_in_8bit: false
load_in_4bit: true
rl: kto
rl_beta: 0.5
kto_desirable_weight: 0.2
datasets:
  - path: argilla/ultrafeedback-binarized-preferences-cleaned-kto
    type: llama3.ultra
    split: train
dataset_prepared_path: last_run_prepared
val_set_size: 0.0
output_dir: ./outputs/qlora-out
remove_unused_columns: false
adapter: qlora
lora_model_dir:
sequence_len: 2048
sample_packing: false  # not supported with kto
eval_sample_packing: false
pad_to_sequence_len: false
lora_r: 32
lora_alpha: 64
lora_dropout: 0.05
lora_target_linear: true
gradient_accumulation_steps: 1
micro_batch_size: 2
num_epochs: 1
optimizer: adamw_8bit
lr_scheduler: cosine
learning_rate: 0.0002
bf16: auto
tf32: true
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
resume_from_checkpoint:
logging_steps: 1
attn_implementation: flash_attention_2
warmup_ratio: 0.1
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
  pad_token: "<|end_of_text|>"
""",
}


@pytest.mark.parametrize("name", sorted(AXOLOTL_STYLE))
def test_axolotl_style_config_validates(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(AXOLOTL_STYLE[name])
    cfg = load_config(path)
    assert cfg.base_model


def test_axolotl_prompt_strategy_we_lack_is_named() -> None:
    import yaml

    raw = yaml.safe_load(AXOLOTL_STYLE["phi3-full-fsdp"])
    raw["datasets"][0]["type"] = "alpaca:jeopardy"
    problems = errors_of(raw)
    assert problems["datasets[0].type"] == (
        "`alpaca:jeopardy` is not an accepted value (alpaca, sharegpt, chat_template, completion, "
        "input_output, chat_template.default, chat_template.argilla, chat_template.argilla_chat, "
        "chatml.default, "
        "chatml.argilla_chat, chatml.icr, chatml.intel, chatml.prompt_pairs, chatml.ultra, "
        "llama3.default, llama3.argilla_chat, llama3.icr, llama3.intel, llama3.prompt_pairs, "
        "llama3.ultra, chatml.argilla, llama3.argilla, prompt, bradley_terry.chat_template, stepwise_supervised). Did you mean `alpaca`?"
    )
