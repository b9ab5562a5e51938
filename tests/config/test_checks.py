"""Every message of `honer.config.checks` is triggered by a config here, and says what it should.

`test_every_check_message_is_triggered` holds the table to the code: it records which `yield`
statement of checks.py produced each problem and fails when a `yield` is never reached, so a new
rule cannot land without a case here.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

from honer.config import checks
from honer.config.load import config_from_dict
from honer.errors import ConfigError

BASE: dict[str, Any] = {
    "base_model": "some/model",
    "datasets": [{"path": "data.jsonl", "type": "alpaca"}],
    "output_dir": "out",
}
LORA = {"adapter": "lora"}
VAL = {"val_set_size": 0.1}
CHAT = {"datasets": [{"path": "d.jsonl", "type": "chat_template"}]}

# (case id, keys added to BASE, expected key path, fragment of the message)
PAIRS = {"datasets": [{"path": "p.jsonl", "type": "chat_template.default"}]}
DPO = {"rl": "dpo", **PAIRS}
PRM = {
    "process_reward_model": True,
    "datasets": [{"path": "s.jsonl", "type": "stepwise_supervised"}],
}
GRPO = {
    "rl": "grpo",
    "micro_batch_size": 4,
    "datasets": [{"path": "p.jsonl", "type": "prompt"}],
    "trl": {"num_generations": 4, "reward_funcs": [{"type": "json"}]},
}
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("pairs without rl", PAIRS, "datasets[0].type", "is a preference format: set `rl: dpo`"),
    ("dpo loss without rl", {"dpo_loss_type": ["sigmoid"]}, "dpo_loss_type", "applies to `rl:"),
    ("rm keys without rm", {"num_labels": 1}, "num_labels", "applies to reward models"),
    (
        "not a causal lm",
        {"model_type": "AutoModel"},
        "model_type",
        "is not a language model class",
    ),
    (
        "step key off stepwise",
        {"datasets": [{"path": "d.jsonl", "type": "alpaca", "train_on_last_step_only": True}]},
        "datasets[0].train_on_last_step_only",
        "applies to `type: stepwise_supervised`",
    ),
    (
        "separator off stepwise",
        {"datasets": [{"path": "d.jsonl", "type": "alpaca", "step_separator": " "}]},
        "datasets[0].step_separator",
        "applies to `type: stepwise_supervised`",
    ),
    (
        "stepwise without prm",
        {"datasets": [{"path": "d.jsonl", "type": "stepwise_supervised"}]},
        "datasets[0].type",
        "set `process_reward_model: true`",
    ),
    (
        "prm with rm",
        {**PRM, "reward_model": True},
        "process_reward_model",
        "set together with `reward_model`",
    ),
    ("prm on sft data", {"process_reward_model": True}, "datasets[0].type", "`alpaca` is not one"),
    ("prm labels", {**PRM, "num_labels": 1}, "num_labels", "use 2"),
    (
        "prm model class",
        {**PRM, "model_type": "AutoModelForSequenceClassification"},
        "model_type",
        "is not a token classifier",
    ),
    ("prm packing", {**PRM, "sample_packing": True}, "sample_packing", "stepwise rows are padded"),
    (
        "bt data without rm",
        {"datasets": [{"path": "b.jsonl", "type": "bradley_terry.chat_template"}]},
        "datasets[0].type",
        "set `reward_model: true`",
    ),
    ("rm with rl", {**DPO, "reward_model": True}, "reward_model", "keep one"),
    ("rm on sft data", {"reward_model": True}, "datasets[0].type", "`alpaca` is not such a"),
    ("rm labels", {**PAIRS, "reward_model": True, "num_labels": 2}, "num_labels", "use 1"),
    (
        "rm model class",
        {**PAIRS, "reward_model": True, "model_type": "AutoModelForCausalLM"},
        "model_type",
        "is not a sequence classifier",
    ),
    (
        "rm packing",
        {**PAIRS, "reward_model": True, "sample_packing": True},
        "sample_packing",
        "reward pairs are padded per batch",
    ),
    ("trl without rl", {"trl": {"reward_funcs": ["evals"]}}, "trl", "set `rl: grpo` to use them"),
    (
        "transform without grpo",
        {"datasets": [{"path": "d.jsonl", "type": "prompt", "transform": "rwd.to_prompt"}]},
        "datasets[0].transform",
        "prompt transforms are for `rl: grpo` data",
    ),
    ("trl on dpo", {**DPO, "trl": {"reward_funcs": ["evals"]}}, "trl", "`rl: dpo` does not use"),
    ("grpo on pairs", {**GRPO, **PAIRS}, "datasets[0].type", "is not a prompt format"),
    (
        "transform on a chat type",
        {**GRPO, "datasets": [{"path": "d.jsonl", "type": "chat_template", "transform": "m.f"}]},
        "datasets[0].transform",
        "applies to `type: prompt` rows",
    ),
    ("grpo without trl", {**GRPO, "trl": None}, "trl", "needs a `trl:` section"),
    ("grpo packing", {**GRPO, "sample_packing": True}, "sample_packing", "GRPO pads each batch"),
    (
        "judge in evals rewards",
        {
            **GRPO,
            "evals": {"checks": [{"type": "judge", "model": "m"}]},
            "trl": {"reward_funcs": ["evals"], "num_generations": 4},
        },
        "trl.reward_funcs[0]",
        "includes a `judge` check",
    ),
    (
        "judge reward",
        {**GRPO, "trl": {"reward_funcs": [{"type": "judge", "model": "m"}], "num_generations": 4}},
        "trl.reward_funcs[0]",
        "it is not a reward",
    ),
    ("ref model without rl", {"rl_reference_model": "m"}, "rl_reference_model", "`rl` runs"),
    (
        "ref model on simpo",
        {**DPO, "rl": "simpo", "rl_reference_model": "m"},
        "rl_reference_model",
        "`rl: simpo` has no reference model",
    ),
    (
        "ref model without kl",
        {**GRPO, "rl_reference_model": "m"},
        "rl_reference_model",
        "`trl.beta`",
    ),
    (
        "grpo precompute",
        {**GRPO, "precompute_ref_log_probs": True},
        "precompute_ref_log_probs",
        "generates its answers while training",
    ),
    (
        "evals reward without evals",
        {**GRPO, "trl": {"reward_funcs": ["evals"], "num_generations": 4}},
        "trl.reward_funcs[0]",
        "but `evals:` is not set",
    ),
    (
        "bad check reward",
        {**GRPO, "trl": {"reward_funcs": [{"type": "regex"}], "num_generations": 4}},
        "trl.reward_funcs[0].pattern",
        "required for a `regex` check",
    ),
    (
        "reward not a name",
        {**GRPO, "trl": {"reward_funcs": ["not a function"], "num_generations": 4}},
        "trl.reward_funcs[0]",
        "neither `evals`, a check mapping, nor a Python",
    ),
    (
        "reward weights count",
        {**GRPO, "trl": {"reward_funcs": ["m.f"], "reward_weights": [1, 2], "num_generations": 4}},
        "trl.reward_weights",
        "2 weight(s) for 1 reward(s)",
    ),
    (
        "generation batch and steps",
        {
            **GRPO,
            "trl": {
                "reward_funcs": ["m.f"],
                "num_generations": 4,
                "generation_batch_size": 8,
                "steps_per_generation": 2,
            },
        },
        "trl.generation_batch_size",
        "set together with `steps_per_generation`",
    ),
    (
        "generation batch not of micro-batches",
        {
            **GRPO,
            "trl": {"reward_funcs": ["m.f"], "num_generations": 2, "generation_batch_size": 6},
        },
        "trl.generation_batch_size",
        "a multiple of `micro_batch_size`",
    ),
    (
        "partial groups",
        {**GRPO, "micro_batch_size": 3},
        "trl.num_generations",
        "4 completions per prompt do not fill whole batches of 3",
    ),
    (
        "grpo eval groups",
        {**GRPO, "val_set_size": 0.1, "eval_batch_size": 2},
        "eval_batch_size",
        "a multiple of num_generations (4)",
    ),
    (
        "completion fills sequence",
        {**GRPO, "sequence_len": 128, "trl": {**GRPO["trl"], "max_completion_length": 128}},
        "trl.max_completion_length",
        "leaves no room for the prompt",
    ),
    (
        "vllm missing",
        {**GRPO, "trl": {**GRPO["trl"], "use_vllm": True}},
        "trl.use_vllm",
        "needs vLLM on a CUDA machine",
    ),
    (
        "gdpo sums first",
        {
            **GRPO,
            "rl": "gdpo",
            "trl": {**GRPO["trl"], "multi_objective_aggregation": "sum_then_normalize"},
        },
        "trl.multi_objective_aggregation",
        "use `rl: grpo` for",
    ),
    ("simpo key without rl", {"cpo_alpha": 0.0}, "cpo_alpha", "applies to `rl: simpo` runs only"),
    ("orpo key on dpo", {**DPO, "orpo_alpha": 0.2}, "orpo_alpha", "`rl: orpo` only, not `dpo`"),
    ("simpo key on orpo", {**DPO, "rl": "orpo", "simpo_gamma": 1.0}, "simpo_gamma", "not `orpo`"),
    (
        "precompute without a reference",
        {**DPO, "rl": "simpo", "precompute_ref_log_probs": True},
        "precompute_ref_log_probs",
        "has no reference model, so there is nothing to precompute",
    ),
    ("rl on sft data", {"rl": "dpo"}, "datasets[0].type", "`alpaca` is not such a format"),
    (
        "kto batch of one",
        {"rl": "kto", "datasets": [{"path": "k.jsonl", "type": "chatml.argilla"}]},
        "micro_batch_size",
        "use 2 or more",
    ),
    (
        "dpo loss on kto",
        {
            "rl": "kto",
            "micro_batch_size": 2,
            "dpo_loss_type": ["sigmoid"],
            "datasets": [{"path": "k.jsonl", "type": "chatml.argilla"}],
        },
        "dpo_loss_type",
        "not `kto`",
    ),
    (
        "kto weight on dpo",
        {**DPO, "kto_desirable_weight": 2.0},
        "kto_desirable_weight",
        "`rl: kto` only",
    ),
    ("unknown dpo loss", {**DPO, "dpo_loss_type": ["simpo"]}, "dpo_loss_type", "not a DPO loss"),
    (
        "ipo loss clash",
        {**DPO, "rl": "ipo", "dpo_loss_type": ["hinge"]},
        "dpo_loss_type",
        "is the `ipo` loss",
    ),
    (
        "loss weights count",
        {**DPO, "dpo_loss_type": ["sigmoid", "sft"], "dpo_loss_weights": [1.0]},
        "dpo_loss_weights",
        "1 weight(s) for 2",
    ),
    (
        "dpo packing",
        {**DPO, "sample_packing": True},
        "sample_packing",
        "preference pairs are padded",
    ),
    ("fp16+bf16", {"fp16": True, "bf16": True}, "fp16", "both true: choose one precision"),
    (
        "gguf twice",
        {"base_model": "m.gguf", "gguf_file": "m.gguf"},
        "gguf_file",
        "already names a .gguf file",
    ),
    ("gguf name", {"gguf_file": "model.bin"}, "gguf_file", "`model.bin` is not a .gguf file name"),
    (
        "gguf+config",
        {"base_model": "m.gguf", "base_model_config": "x"},
        "base_model_config",
        "the GGUF file carries the model config",
    ),
    (
        "4+8 bit",
        {**LORA, "load_in_4bit": True, "load_in_8bit": True},
        "load_in_4bit",
        "both true: choose one",
    ),
    ("qlora no 4bit", {"adapter": "qlora"}, "adapter", "needs `load_in_4bit: true`"),
    ("lora 4bit", {**LORA, "load_in_4bit": True}, "adapter", "use `adapter: qlora`"),
    ("full 8bit", {"load_in_8bit": True}, "load_in_8bit", "cannot be fully fine-tuned"),
    (
        "bnb kwargs",
        {"bnb_config_kwargs": {"bnb_4bit_quant_type": "nf4"}},
        "bnb_config_kwargs",
        "neither `load_in_4bit` nor `load_in_8bit`",
    ),
    ("lora keys, full", {"lora_r": 8}, "lora_r", "`adapter` is empty (full fine-tuning)"),
    (
        "warmup twice",
        {"warmup_steps": 2, "warmup_ratio": 0.1},
        "warmup_ratio",
        "`warmup_steps` and `warmup_ratio` are both set",
    ),
    (
        "two kernels",
        {"flash_attention": True, "sdp_attention": True},
        "sdp_attention",
        "both true: keep one",
    ),
    (
        "kernel+impl",
        {"sdp_attention": True, "attn_implementation": "eager"},
        "attn_implementation",
        "set together with `sdp_attention`",
    ),
    ("val negative", {"val_set_size": -1}, "val_set_size", "-1.0 is negative"),
    ("val 2.5", {"val_set_size": 2.5}, "val_set_size", "neither a fraction in [0, 1)"),
    (
        "val+test",
        {**VAL, "test_datasets": [{"path": "t.jsonl", "type": "alpaca"}]},
        "val_set_size",
        "keep one way of validating",
    ),
    ("jinja empty", {"chat_template": "jinja"}, "chat_template_jinja", "needs the template text"),
    (
        "jinja text alone",
        {"chat_template_jinja": "{{ x }}"},
        "chat_template",
        "also set `chat_template: jinja`",
    ),
    (
        "chat key on alpaca",
        {"datasets": [{"path": "d.jsonl", "type": "alpaca", "roles_to_train": ["assistant"]}]},
        "datasets[0].roles_to_train",
        "only applies to chat formats, not `alpaca`",
    ),
    (
        "alpaca prompt style on a chat format",
        {"datasets": [{"path": "d.jsonl", "type": "chat_template", "prompt_style": "chat"}]},
        "datasets[0].prompt_style",
        "only applies to `alpaca`, not `chat_template`",
    ),
    (
        "conversation on chat_template",
        {"datasets": [{"path": "d.jsonl", "type": "chat_template", "conversation": "chatml"}]},
        "datasets[0].conversation",
        "is a sharegpt key",
    ),
    (
        "entry jinja",
        {"datasets": [{"path": "d.jsonl", "type": "chat_template", "chat_template": "jinja"}]},
        "datasets[0].chat_template",
        "needs top-level `chat_template_jinja`",
    ),
    ("composite empty", {"lr_scheduler": "composite"}, "lr_phases", "needs `lr_phases"),
    (
        "phases without composite",
        {"lr_phases": [{"policy": "constant", "steps": 5}]},
        "lr_phases",
        "only applies to `lr_scheduler: composite`",
    ),
    (
        "composite kwargs",
        {
            "lr_scheduler": "composite",
            "lr_phases": [{"policy": "constant", "steps": 5}],
            "lr_scheduler_kwargs": {"gamma": 0.5},
        },
        "lr_scheduler_kwargs",
        "per phase",
    ),
    (
        "min ratio on linear",
        {"lr_scheduler": "linear", "cosine_min_lr_ratio": 0.1},
        "cosine_min_lr_ratio",
        "only applies to cosine schedules, not `lr_scheduler: linear`",
    ),
    (
        "policy kwargs",
        {"lr_scheduler": "step", "lr_scheduler_kwargs": {"gama": 0.5}},
        "lr_scheduler_kwargs",
        "gama",
    ),
    (
        "constant warm-up",
        {"lr_scheduler": "constant", "warmup_steps": 3},
        "warmup_steps",
        "use `lr_scheduler: constant_with_warmup`",
    ),
    (
        "min lr twice",
        {"cosine_min_lr_ratio": 0.1, "lr_scheduler_kwargs": {"min_lr_rate": 0.1}},
        "cosine_min_lr_ratio",
        "`lr_scheduler_kwargs.min_lr`/`min_lr_rate`: keep one",
    ),
    (
        "min lr missing",
        {"lr_scheduler": "cosine_with_min_lr"},
        "cosine_min_lr_ratio",
        "needs the final LR as a fraction of the peak",
    ),
    (
        "unknown schedule kwarg",
        {"lr_scheduler": "cosine", "lr_scheduler_kwargs": {"power": 2}},
        "lr_scheduler_kwargs.power",
        "not an argument of the `cosine` schedule (it takes: num_cycles)",
    ),
    (
        "lr_end above lr",
        {"lr_scheduler": "polynomial", "learning_rate": 1e-4, "lr_scheduler_kwargs": {"lr_end": 1}},
        "lr_scheduler_kwargs.lr_end",
        "must be below the learning rate (0.0001)",
    ),
    (
        "early stop without validation",
        {"early_stopping_patience": 2},
        "early_stopping_patience",
        "there is no validation set",
    ),
    ("eval note", {"eval_steps": 10}, "eval_steps", "no evaluation runs during training"),
    (
        "early stop unaligned",
        {**VAL, "early_stopping_patience": 2, "evals_per_epoch": 2, "saves_per_epoch": 1},
        "early_stopping_patience",
        "checkpoints must be saved at evaluations",
    ),
    (
        "pickle weights",
        {"save_safetensors": False},
        "save_safetensors",
        "writes only safetensors",
    ),
    (
        "eval check spec",
        {"evals": {"checks": [{"type": "regex"}]}},
        "evals.checks[0].pattern",
        "required for a `regex` check",
    ),
    ("wandb without project", {"wandb_entity": "me"}, "wandb_entity", "needs a project"),
    ("report_to none+", {"report_to": ["none", "wandb"]}, "report_to", "cannot be combined"),
    (
        "mlflow",
        {"mlflow_experiment_name": "x"},
        "mlflow_experiment_name",
        "`mlflow_tracking_uri` is not",
    ),
    ("hub strategy", {"hub_strategy": "end"}, "hub_strategy", "`hub_model_id` is not"),
    (
        "two engines",
        {"deepspeed": "zero2", "fsdp": ["full_shard"]},
        "fsdp",
        "choose one sharding engine",
    ),
    (
        "deepspeed file",
        {"deepspeed": "missing_ds.json"},
        "deepspeed",
        "neither a shipped config (zero1, zero2, zero3, zero3_offload)",
    ),
    ("fsdp1", {"fsdp": ["hybrid_shard"]}, "fsdp", "`hybrid_shard` is an FSDP1 strategy"),
    (
        "two fsdp strategies",
        {"fsdp": ["full_shard", "shard_grad_op"]},
        "fsdp",
        "`full_shard` and `shard_grad_op` are both set",
    ),
    (
        "fsdp v1",
        {"fsdp": ["full_shard"], "fsdp_version": 1},
        "fsdp_version",
        "FSDP1 is not supported",
    ),
    (
        "fsdp 8bit",
        {"fsdp": ["full_shard"], "adapter": "lora", "load_in_8bit": True},
        "fsdp",
        "FSDP with an 8-bit base is not supported",
    ),
    (
        "fsdp uint8 storage",
        {
            "fsdp": ["full_shard"],
            "adapter": "qlora",
            "load_in_4bit": True,
            "bnb_config_kwargs": {"bnb_4bit_quant_storage": "uint8"},
        },
        "bnb_config_kwargs.bnb_4bit_quant_storage",
        "cannot be sharded evenly",
    ),
    ("dp_shard_size no fsdp", {"dp_shard_size": 2}, "dp_shard_size", "FSDP is off"),
    ("fsdp_version alone", {"fsdp_version": 2}, "fsdp_version", "FSDP is off"),
    (
        "gc kwargs without gc",
        {"gradient_checkpointing_kwargs": {"use_reentrant": True}},
        "gradient_checkpointing_kwargs",
        "`gradient_checkpointing` is off",
    ),
    (
        "offload + fsdp",
        {"activation_offloading": True, "fsdp": ["full_shard"]},
        "activation_offloading",
        "without FSDP/DeepSpeed",
    ),
    ("muon + zero", {"optimizer": "muon", "deepspeed": "zero2"}, "optimizer", "cannot run with"),
    (
        "compile backend alone",
        {"torch_compile_backend": "inductor"},
        "torch_compile_backend",
        "`torch_compile` is off",
    ),
    (
        "constant ratio, linear",
        {"cosine_constant_lr_ratio": 0.8, "lr_scheduler": "linear"},
        "cosine_constant_lr_ratio",
        "only applies to cosine schedules",
    ),
    ("hub revision alone", {"hub_revision": "dev"}, "hub_revision", "`hub_model_id` is not"),
    (
        "two liger losses",
        {"liger_cross_entropy": True, "liger_fused_linear_cross_entropy": True},
        "liger_cross_entropy",
        "keep one loss",
    ),
    (
        "ddp key under deepspeed",
        {"deepspeed": "zero2", "ddp_find_unused_parameters": True},
        "ddp_find_unused_parameters",
        "applies to DDP only",
    ),
]


def _problems(keys: dict[str, Any]) -> list[tuple[str, str]]:
    """The errors of a config, or the notes of a valid one (checks.NOTES)."""
    try:
        return list(config_from_dict({**BASE, **keys}).notes)
    except ConfigError as err:
        return err.problems


@pytest.mark.parametrize(
    ("keys", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_check_message(keys, key, fragment):
    problems = _problems(keys)
    assert any(k == key and fragment in m for k, m in problems), problems


def test_optimizer_needs_bitsandbytes(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    problems = _problems({"optimizer": "paged_adamw_8bit"})
    assert ("optimizer", next(m for k, m in problems if k == "optimizer")) in problems
    assert dict(problems)["optimizer"].startswith(
        "`paged_adamw_8bit` needs the bitsandbytes package, which is not installed: pip install "
    )


def _yield_lines() -> set[int]:
    tree = ast.parse(inspect.getsource(checks))
    return {n.lineno for n in ast.walk(tree) if isinstance(n, ast.Yield | ast.YieldFrom)}


def _lines_reached(cfg_keys: dict[str, Any]) -> set[int]:
    """The yield statements of checks.py that fire for a config (the generator's suspended line)."""
    from honer.config.schema import Config

    raw = {**BASE, **cfg_keys}
    cfg = Config.model_validate(raw)
    reached = set()
    for check in [*checks.CHECKS, *checks.NOTES]:
        gen = check(cfg)
        for _ in gen:
            g = gen  # through `yield from` into the generator that really yielded
            while g is not None and hasattr(g, "gi_frame"):
                if g.gi_frame.f_code.co_filename == checks.__file__:
                    reached.add(g.gi_frame.f_lineno)
                g = g.gi_yieldfrom
    return reached


def test_every_check_message_is_triggered(monkeypatch):
    import importlib.util

    reached: set[int] = set()
    for _, keys, _, _ in CASES:
        reached |= _lines_reached(keys)
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None)
    reached |= _lines_reached({"optimizer": "paged_adamw_8bit"})
    missing = sorted(_yield_lines() - reached)
    assert not missing, f"checks.py yields never triggered by a case here, lines {missing}"
