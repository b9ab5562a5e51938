"""Axolotl's config keys that honer's schema does not have: what each one means here.

Users arrive with a working Axolotl YAML. Every key Axolotl knows and honer's schema lacks falls
in one family below, with one of three answers:

* `alias`   — the same meaning under another name: renamed on load, silently.
* `noted`   — accepted with a one-line note, because it changes nothing in honer's run: a
              model-family flag the model config already tells, a loader hint transformers 5
              always follows, a speed-only GPU kernel whose results honer's plain path equals.
* `refused` — a feature honer does not have: an error that says so ("Axolotl's `X` (…) is not
              supported: …") and what to do. A refused key set to its "off" value (`false`,
              `0`, an empty value, or 1 for a parallel size) switches off something honer
              does not do anyway: it is accepted with a note.

`docs/axolotl.md` is generated from this table and the schema (`honer.config.reference`), and a
test keeps the two in sync. Pure data and pydantic-free: validating a config imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["alias", "noted", "refused"]


@dataclass(frozen=True)
class Family:
    """Axolotl keys that get the same answer, and why."""

    name: str
    keys: tuple[str, ...]
    status: Status
    why: str
    # Values that mean "off" for these keys, beyond the falsy ones (1 for a parallel degree).
    off: tuple[Any, ...] = ()


# Same meaning, other name (Axolotl's spelling → honer's key).
ALIASES: dict[str, str] = {
    "eval_table_max_new_tokens": "eval_max_new_tokens",
    "dataset_num_proc": "dataset_processes",
    "noisy_embedding_alpha": "neftune_noise_alpha",
    "model_config": "model_config_overrides",
    "overrides_of_model_config": "model_config_overrides",
    "dpo_beta": "rl_beta",
}

FAMILIES: tuple[Family, ...] = (
    Family(
        "model-family flags",
        (
            "is_llama_derived_model",
            "is_mistral_derived_model",
            "is_falcon_derived_model",
            "is_qwen_derived_model",
        ),
        "noted",
        "not needed: honer reads the architecture from the model config",
    ),
    Family(
        "loader hints transformers 5 always follows",
        ("low_cpu_mem_usage", "experimental_skip_move_to_device", "device_map"),
        "noted",
        "transformers 5 loads weights lazily onto the training device; honer places the model "
        "itself (one device per process)",
    ),
    Family(
        "launcher and credentials settings",
        ("local_rank", "world_size", "ddp", "hf_use_auth_token", "axolotl_config_path"),
        "noted",
        "not read from the config: the launcher (`honer train --num-processes N`) sets ranks, "
        "and hub credentials come from `HF_TOKEN` or `huggingface-cli login`",
    ),
    Family(
        "tracker switches implied by their settings",
        ("use_wandb", "use_mlflow", "include_tkps"),
        "noted",
        "implied: `wandb_project` / `mlflow_tracking_uri` switch the tracker on, and every "
        "logged step already carries tokens/s",
    ),
    Family(
        "speed-only GPU kernels",
        (
            "lora_mlp_kernel",
            "lora_qkv_kernel",
            "lora_o_kernel",
            "lora_embedding_kernel",
            "use_kernels",
            "use_scattermoe",
            "use_sonicmoe",
            "fused_attn_kernel",
            "flash_attn_fuse_mlp",
            "flash_attn_rms_norm",
            "flash_attn_cross_entropy",
            "flash_optimum",
            "gemma4_hybrid_attn_impl",
            "llama4_linearized_experts",
            "flex_attn_compile_kwargs",
            "sdpa_varlen",
            "experts_implementation",
        ),
        "noted",
        "Axolotl's fused GPU kernels change speed, not results; honer runs the model's own "
        "layers and peft's LoRA layers (the same maths)",
    ),
    Family(
        "data-loading performance knobs",
        (
            "dataloader_num_workers",
            "dataloader_pin_memory",
            "dataloader_prefetch_factor",
            "dataloader_drop_last",
            "sample_packing_eff_est",
            "sample_packing_mp_start_method",
            "gc_steps",
            "gc_collect_steps",
            "torch_empty_cache_steps",
            "dataset_keep_in_memory",
            "is_preprocess",
            "remove_unused_columns",
        ),
        "noted",
        "honer's data loader is fixed (prepared rows in memory, exact packed bins, the columns it "
        "needs): these settings change nothing in what is trained",
    ),
    Family(
        "quantization methods",
        (
            "gptq",
            "gptq_groupsize",
            "gptq_model_v1",
            "gptq_disable_exllama",
            "qat",
            "quantization",
            "quantize_moe_experts",
            "model_quantization_config",
            "model_quantization_config_kwargs",
            "fp8",
            "fp8_enable_fsdp_float8_all_gather",
            "use_onebitllms",
            "nvfp4_merge_aware",
            "llmcompressor",
            "dsv4_fp4_grouped_mode",
            "float32",
        ),
        "refused",
        "honer quantizes with bitsandbytes only (`load_in_4bit` / `load_in_8bit`) and trains in "
        "mixed precision (`bf16` / `fp16`); GPTQ, QAT, FP8, MXFP4 and MoE-expert quantization "
        "are not implemented: remove the key (with `load_in_4bit`, MoE experts stay in the "
        "training dtype)",
    ),
    Family(
        "preference and RL training",
        (
            "dpo_use_logits_to_keep",
            "dpo_padding_free",
            "dpo_norm_loss",
            "dpo_generate_during_eval",
            "dpo_use_liger_kernel",
            "rpo_alpha",
            "vllm",
            "ebft",
            "max_prompt_len",
        ),
        "refused",
        "honer runs DPO, IPO, KTO, ORPO, SimPO and GRPO (`rl: dpo|ipo|kto|orpo|simpo|grpo`, "
        "`rl_beta`, `dpo_loss_type`, `orpo_alpha`, `simpo_gamma`, `cpo_alpha`, `trl:`), reward "
        "models (`reward_model: true`) and process reward models (`process_reward_model: "
        "true`); these "
        "preference and RL settings are not supported yet: remove the key, or train this stage "
        "with Axolotl or TRL",
    ),
    Family(
        "model and tensor parallelism beyond data parallel",
        (
            "tensor_parallel_size",
            "context_parallel_size",
            "sequence_parallel_degree",
            "dp_replicate_size",
            "expert_parallel_size",
            "heads_k_stride",
            "ring_attn_func",
        ),
        "refused",
        "honer runs data parallel (DDP, FSDP2, DeepSpeed ZeRO) only: remove the key",
        off=(1,),
    ),
    Family(
        "alternative training methods",
        (
            "relora",
            "relora_steps",
            "relora_warmup_steps",
            "relora_anneal_steps",
            "relora_prune_ratio",
            "relora_prune_method",
            "relora_cpu_offload",
            "jagged_restart_steps",
            "jagged_restart_warmup_steps",
            "jagged_restart_anneal_steps",
            "lisa_n_layers",
            "lisa_step_interval",
            "lisa_layers_attribute",
            "use_eaft",
            "eaft_alpha",
            "eaft_k",
            "diffusion",
            "loraplus_lr_ratio",
            "loraplus_lr_embedding",
            "lr_groups",
            "embedding_lr",
            "embedding_lr_scale",
            "peft_layers_to_transform",
            "peft_layers_pattern",
            "peft_layer_replication",
            "lora_target_parameters",
            "lora_rank_pattern",
            "lora_alpha_pattern",
            "peft_init_lora_weights",
            "peft_trainable_token_indices",
            "lora_on_cpu",
            "use_pose",
            "pose_split_on_token_ids",
            "pose_max_context_len",
            "pose_num_chunks",
            "tiled_mlp",
            "tiled_mlp_num_shards",
            "tiled_mlp_use_original_mlp",
            "layer_offloading",
            "selective_checkpointing",
            "dynamic_checkpoint",
            "lr_quadratic_warmup",
            "lr_div_factor",
            "optim_args",
            "optim_target_modules",
            "fix_untrained_tokens",
            "reinit_weights",
            "shrink_embeddings",
            "mean_resizing_embeddings",
            "embeddings_skip_upcast",
            "fp32_norms",
            "fp32_norm_classes",
            "scaling_softmax",
            "scaling_softmax_factor",
            "scaling_softmax_bias",
            "large_head_attention",
            "flash_attn_d512",
            "chunked_cross_entropy",
            "chunked_cross_entropy_num_chunks",
            "auto_find_batch_size",
            "xformers_attention",
            "s2_attention",
            "sage_attention",
            "eager_attention",
            "flex_attention",
            "batch_flattening",
            "peft_autocast_adapter_dtype",
            "peft_ensure_weight_tying",
            "qlora_sharded_model_loading",
            "deepcompile",
            "torch_compile_options",
            "torchdistx_path",
            "added_tokens_overrides",
            "tokenizer_use_mistral_common",
            "tokenizer_save_jinja_files",
            "cls_model_config",
            "trainer_cls",
            "type_of_model",
            "overrides_of_model_kwargs",
            "model_kwargs",
            "base_model_ignore_patterns",
            "max_memory",
            "gpu_memory_limit",
            "ddp_bucket_cap_mb",
            "ddp_broadcast_buffers",
            "accelerator_config",
            "fsdp_final_state_dict_type",
            "merge_lora",
            "merge_method",
            "adam_beta3",
            "adam_epsilon2",
            "dion_lr",
            "dion_momentum",
            "dion_rank_fraction",
            "dion_rank_multiple_of",
            "qgalore_rank",
            "qgalore_update_proj_gap",
            "qgalore_scale",
            "qgalore_proj_type",
            "qgalore_proj_quant",
            "qgalore_proj_bits",
            "qgalore_proj_group_size",
            "qgalore_cos_threshold",
            "qgalore_gamma_proj",
            "qgalore_queue_size",
        ),
        "refused",
        "not implemented in honer: remove the key (docs/axolotl.md lists what honer offers "
        "instead)",
    ),
    Family(
        "data pipeline features",
        (
            "pretraining_dataset",
            "pretraining_sample_concatenation",
            "pretrain_multipack_attn",
            "pretrain_multipack_buffer_size",
            "streaming",
            "streaming_multipack_buffer_size",
            "preprocess_iterable",
            "skip_prepare_dataset",
            "push_dataset_to_hub",
            "dataset_shard_num",
            "dataset_shard_idx",
            "num_dataset_shards_to_save",
            "curriculum_sampling",
            "sample_packing_sequentially",
            "multipack_real_batches",
            "max_packed_sequence_len",
            "eval_sequence_len",
            "pad_to_multiple_of",
            "total_num_tokens",
            "total_supervised_tokens",
        ),
        "refused",
        "not implemented in honer's data pipeline: remove the key (`honer data dedup` removes "
        "duplicates before training)",
    ),
    Family(
        "evaluation and generation during training",
        (
            "do_bench_eval",
            "bench_dataset",
            "bench_split",
            "do_causal_lm_eval",
            "eval_causal_lm_metrics",
            "generate_samples",
            "num_generation_samples",
            "generation_max_new_tokens",
            "generation_temperature",
            "generation_top_k",
            "generation_top_p",
            "generation_do_sample",
            "generation_prompt_ratio",
            "eval_strategy",
            "evaluation_strategy",
            "metric_for_best_model",
            "greater_is_better",
            "save_first_step",
        ),
        "refused",
        "honer's own evaluation keys do this: `evals_per_epoch` / `eval_steps` for when, "
        "`eval_table_size` for generations, `evals:` checks with `honer evaluate`, "
        "`resume_from_checkpoint: true` to resume; remove the key",
    ),
    Family(
        "integrations",
        (
            "use_comet",
            "comet_api_key",
            "comet_workspace",
            "comet_project_name",
            "comet_experiment_key",
            "comet_mode",
            "comet_online",
            "comet_experiment_config",
            "use_trackio",
            "trackio_project_name",
            "trackio_run_name",
            "trackio_space_id",
            "use_otel_metrics",
            "otel_metrics_host",
            "otel_metrics_port",
            "use_ray",
            "ray_run_name",
            "ray_num_workers",
            "resources_per_worker",
            "hf_mlflow_log_artifacts",
            "mlflow_run_name",
            "profiler_steps",
            "profiler_steps_start",
            "gradio_title",
            "gradio_share",
            "gradio_server_name",
            "gradio_server_port",
            "gradio_max_new_tokens",
            "gradio_temperature",
            "use_swanlab",
            "swanlab_project",
            "swanlab_experiment_name",
            "swanlab_description",
            "swanlab_mode",
            "swanlab_log_completions",
        ),
        "refused",
        "honer tracks with W&B, TensorBoard and MLflow (`report_to`), and serves with `honer "
        "inference --gradio`: remove the key",
    ),
    Family(
        "multimodal models",
        (
            "processor_type",
            "processor_kwargs",
            "image_size",
            "image_resize_algorithm",
            "freeze_mm_modules",
            "role_boundaries",
        ),
        "refused",
        "honer trains text models only: remove the key",
    ),
)

# Axolotl's dataset-entry keys honer lacks (same three answers).
DATASET_FAMILIES: tuple[Family, ...] = (
    Family(
        "dataset keys honer does not implement",
        (
            "field_human",
            "field_model",
            "field_thinking",
            "field_tools",
            "template_thinking_key",
            "split_thinking",
            "message_field_training",
            "message_field_training_detail",
            "input_format",
            "input_transform",
            "logprobs_field",
            "temperature",
            "shards",
            "shards_idx",
            "preprocess_shards",
            "trust_remote_code",
        ),
        "refused",
        "not implemented for honer's dataset formats (docs/data.md lists what each format "
        "reads): remove the key",
    ),
)

# Axolotl's `plugins:` entries honer does not run with code of its own.
PLUGINS: dict[str, tuple[Status, str]] = {
    "axolotl.integrations.kernels.KernelsPlugin": (
        "noted",
        "Axolotl's hub kernels for MoE layers change speed, not results; honer runs the "
        "model's own layers",
    ),
    "axolotl.integrations.swanlab.SwanLabPlugin": (
        "refused",
        "SwanLab tracking is not supported: use `report_to` (wandb, tensorboard, mlflow)",
    ),
    "axolotl.integrations.expert_parallel.ExpertParallelPlugin": (
        "refused",
        "expert parallelism is not supported: honer runs data parallel only",
    ),
    "axolotl.integrations.diffusion.DiffusionPlugin": (
        "refused",
        "diffusion language-model training is not supported",
    ),
    "axolotl.integrations.llm_compressor.LLMCompressorPlugin": (
        "refused",
        "LLM Compressor sparsity/quantization is not supported",
    ),
}

# Axolotl ships these DeepSpeed JSON files (`deepspeed: deepspeed_configs/NAME.json`); honer's
# presets mean the same ZeRO stage (bf16/fp16 follow the config's own precision keys).
DEEPSPEED_FILES: dict[str, str] = {
    "zero1.json": "zero1",
    "zero1_torch_compile.json": "zero1",
    "zero2.json": "zero2",
    "zero2_torch_compile.json": "zero2",
    "zero3.json": "zero3",
    "zero3_bf16.json": "zero3",
    "zero3_bf16_cpuoffload_params.json": "zero3_offload",
    "zero3_bf16_cpuoffload_all.json": "zero3_offload",
}


def _index(families: tuple[Family, ...]) -> dict[str, Family]:
    out: dict[str, Family] = {}
    for family in families:
        for key in family.keys:
            assert key not in out, f"{key} is in two families"
            out[key] = family
    return out


TOP_LEVEL: dict[str, Family] = _index(FAMILIES)
DATASET: dict[str, Family] = _index(DATASET_FAMILIES)


def is_off(family: Family, value: Any) -> bool:
    """The value switches the feature off (nothing for honer to do)."""
    if value is None or value is False or value == 0 or value in ("", [], {}):
        return True
    return any(value == off and not isinstance(value, bool) for off in family.off)


def answer(key: str, value: Any, family: Family) -> tuple[Status, str]:
    """(`noted` or `refused`, the message) for an Axolotl key honer's schema lacks."""
    if family.status == "refused" and is_off(family, value):
        return "noted", f"Axolotl's `{key}` ({family.name}) is off here: nothing to switch off."
    if family.status == "noted":
        return "noted", f"Axolotl's `{key}` is accepted and changes nothing: {family.why}."
    return "refused", f"Axolotl's `{key}` ({family.name}) is not supported: {family.why}."
