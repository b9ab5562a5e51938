"""The config schema: one pydantic model per YAML section, Axolotl key names and meanings.

Every field carries a description: the README's config reference table is generated from it
(`honer.config.reference`), and a test checks that the table is current. Validation of single
values lives here (types, ranges, allowed values); checks that relate several keys live in
`honer.config.checks`, and loading/aliases/unknown keys in `honer.config.load`.

Pydantic is the only dependency: importing this module must not import torch.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from honer.schedules import PHASE_POLICIES, SCHEDULES

SFT_TYPES = ("alpaca", "sharegpt", "chat_template", "completion", "input_output")
# Preference (DPO/IPO) row formats: Axolotl's `rl: dpo` dataset types, same names and meanings
# (honer.data.preference renders each one's prompt / chosen / rejected text).
PREFERENCE_TYPES = (
    "chat_template.default",
    "chat_template.argilla",
    "chat_template.argilla_chat",
    *(
        f"{family}.{kind}"
        for family in ("chatml", "llama3")
        for kind in ("default", "argilla_chat", "icr", "intel", "prompt_pairs", "ultra")
    ),
)
# KTO (`rl: kto`) rows: one answer and a desirable/undesirable `label` (Axolotl's kto strategies).
KTO_TYPES = tuple(
    f"{family}.{kind}"
    for family in ("chatml", "llama3")
    for kind in ("argilla", "argilla_chat", "intel", "prompt_pairs", "ultra")
)
# Reward-model (`reward_model: true`) rows: Axolotl's Bradley-Terry type, besides every pair type.
REWARD_TYPES = ("bradley_terry.chat_template",)
# Process-reward-model (`process_reward_model: true`) rows: a prompt, steps and a label per step.
PRM_TYPES = ("stepwise_supervised",)
# GRPO (`rl: grpo`) prompt rows: `prompt` (text or messages) and the columns the rewards read;
# `chat_template` rows give their conversation less its last answer (the reference answer).
GRPO_TYPES = ("prompt", "chat_template")
DatasetType = Literal[  # type: ignore[valid-type]
    (
        *SFT_TYPES,
        *PREFERENCE_TYPES,
        *(t for t in KTO_TYPES if t not in PREFERENCE_TYPES),
        *(t for t in GRPO_TYPES if t not in SFT_TYPES),
        *REWARD_TYPES,
        *PRM_TYPES,
    )
]
RlKind = Literal["dpo", "ipo", "orpo", "kto", "simpo", "grpo", "gdpo"]
RL_SUPPORTED = ("dpo", "ipo", "kto", "orpo", "simpo", "grpo", "gdpo")
# Online RL: completions are generated while training and scored by reward functions.
ONLINE_RL = ("grpo", "gdpo")
# Preference losses that need no reference model (TRL's ORPOTrainer / CPOTrainer).
REFERENCE_FREE = ("orpo", "simpo")
BuiltinChatTemplate = Literal["chatml", "llama3", "mistral", "alpaca", "vicuna"]
# Axolotl's named chat templates (its `ChatTemplate` enum), each shipped as a .jinja file under
# honer/data/formats/chat_templates/ (a test checks the two lists agree). Named here, not read
# from the folder, so that validating a config imports nothing but pydantic.
AXOLOTL_CHAT_TEMPLATES = (
    "alpaca",
    "aya",
    "chatml",
    "cohere",
    "command_a",
    "command_a_rag",
    "command_a_tool_use",
    "deepseek_v2",
    "deepseek_v3",
    "exaone",
    "exaone4",
    "falcon_h1",
    "gemma",
    "gemma3",
    "gemma3n",
    "gemma4",
    "gemma4_unified",
    "jamba",
    "llama3",
    "llama3_2_vision",
    "llama4",
    "llava",
    "metharme",
    "mistral_v1",
    "mistral_v2v3",
    "mistral_v3_tekken",
    "mistral_v7_tekken",
    "nemotron_h",
    "phi_3",
    "phi_35",
    "phi_4",
    "pixtral",
    "qwen2_vl",
    "qwen3",
    "qwen3_5",
    "qwen_25",
)
CHAT_TEMPLATE_NAMES = tuple(
    dict.fromkeys(
        ("tokenizer_default", "jinja", "chatml", "llama3", "mistral", "alpaca", "vicuna")
        + AXOLOTL_CHAT_TEMPLATES
    )
)
ChatTemplateName = Literal[CHAT_TEMPLATE_NAMES]  # type: ignore[valid-type]
TrainOnEos = Literal["turn", "last", "all", "none"]
# The names live in one place, `honer.schedules` (transformers' six, then honer's policies).
LrScheduler = Literal[SCHEDULES]  # type: ignore[valid-type]
PhasePolicy = Literal[PHASE_POLICIES]  # type: ignore[valid-type]
# Every optimizer name transformers' `OptimizerNames` accepts (5.17-5.24), plus `muon`, which
# honer builds itself. Which names need an extra package is checked with the config
# (`honer.config.checks._optimizer`).
OPTIMIZERS = (
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_torch_xla",
    "adamw_torch_npu_fused",
    "adafactor",
    "adamw_anyprecision",
    "adamw_torch_4bit",
    "adamw_torch_8bit",
    "ademamix",
    "sgd",
    "adagrad",
    "adamw_bnb_8bit",
    "adamw_8bit",
    "ademamix_8bit",
    "lion_8bit",
    "lion_32bit",
    "paged_adamw_32bit",
    "paged_adamw_8bit",
    "paged_ademamix_32bit",
    "paged_ademamix_8bit",
    "paged_lion_32bit",
    "paged_lion_8bit",
    "rmsprop",
    "rmsprop_bnb",
    "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit",
    "galore_adamw",
    "galore_adamw_8bit",
    "galore_adafactor",
    "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise",
    "galore_adafactor_layerwise",
    "lomo",
    "adalomo",
    "grokadamw",
    "schedule_free_radam",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "apollo_adamw",
    "apollo_adamw_layerwise",
    "stable_adamw",
    "muon",
)
Optimizer = Literal[OPTIMIZERS]  # type: ignore[valid-type]
# Axolotl's `plugins:` honer runs with its own code (the rest are refused in load.py).
CUT_CROSS_ENTROPY_PLUGIN = "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"
LIGER_PLUGIN = "axolotl.integrations.liger.LigerPlugin"
Plugin = Literal[CUT_CROSS_ENTROPY_PLUGIN, LIGER_PLUGIN]
LIGER_KEYS = (
    "liger_rope",
    "liger_rms_norm",
    "liger_rms_norm_gated",
    "liger_layer_norm",
    "liger_glu_activation",
    "liger_cross_entropy",
    "liger_fused_linear_cross_entropy",
)
ExcessLength = Literal["drop", "truncate"]
ReportTo = Literal["wandb", "tensorboard", "mlflow", "none"]

# Axolotl's `fsdp` words. hybrid_shard / no_shard are FSDP1 strategies (refused in checks).
FsdpOption = Literal[
    "full_shard",
    "shard_grad_op",
    "hybrid_shard",
    "hybrid_shard_zero2",
    "no_shard",
    "auto_wrap",
    "offload",
]
PositiveInt = Annotated[int, Field(ge=1)]


def _annotation_kinds(annotation: Any) -> set[Any]:
    """The plain types an annotation admits (through Optional, unions, Annotated, Literal)."""
    from typing import get_args, get_origin

    origin = get_origin(annotation)
    if origin is Literal:
        return {type(a) for a in get_args(annotation)}
    if origin is None:
        return {annotation}
    if origin in (list, dict, tuple, set):
        return {origin}
    kinds: set[Any] = set()
    for arg in get_args(annotation):
        kinds |= _annotation_kinds(arg)
    return kinds


class _Section(BaseModel):
    """Shared settings: frozen, unknown keys rejected (load.py reports them with a suggestion)."""

    # Non-finite numbers (`.inf`, `.nan` in YAML) are refused: a learning rate of .inf would
    # train to an all-NaN model and exit 0.
    model_config = ConfigDict(
        frozen=True, extra="forbid", protected_namespaces=(), allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: Any) -> Any:
        """`micro_batch_size: true` is not 1: a number field refuses true/false (pydantic would
        read them as 1/0)."""
        if isinstance(value, bool) and info.field_name in cls.model_fields:
            kinds = _annotation_kinds(cls.model_fields[info.field_name].annotation)
            if bool not in kinds and kinds & {int, float}:
                raise ValueError("must be a number, not true/false")
        return value


class SpecialTokens(_Section):
    """Special tokens to set on the tokenizer (added to the vocabulary when missing)."""

    bos_token: str | None = Field(None, description="Beginning-of-sequence token text.")
    eos_token: str | None = Field(
        None,
        description="End-of-sequence token text; set it to the chat template's end-of-turn "
        "token (e.g. `<|im_end|>`) so the fine-tuned model stops.",
    )
    pad_token: str | None = Field(None, description="Padding token text.")
    unk_token: str | None = Field(None, description="Unknown token text.")


class MessageMapping(_Section):
    """Which keys of a message hold its role and its content."""

    role: str = Field("role", description="Key holding the speaker's role.")
    content: str = Field("content", description="Key holding the message text.")


class DatasetConfig(_Section):
    """One entry of `datasets:`: where the rows come from and how they become tokens."""

    path: str = Field(
        description="Local file (.jsonl/.json/.csv/.parquet), a folder of them, or a Hugging Face "
        "dataset name."
    )
    type: DatasetType = Field(description="Prompt format that turns a row into tokens and labels.")
    name: str | None = Field(None, description="Hub dataset configuration (subset) name.")
    split: str = Field("train", description="Split to read from a hub dataset.")
    data_files: str | list[str] | None = Field(
        None, description="Files inside a hub dataset repository to read."
    )
    revision: str | None = Field(None, description="Hub dataset revision (branch, tag or commit).")
    ds_type: Literal["json", "jsonl", "csv", "tsv", "parquet"] | None = Field(
        None, description="File format when the extension does not tell it."
    )
    field: str | None = Field(
        None,
        description="Column holding the text (`completion`, default `text`) or the segments "
        "(`input_output`, default `segments`).",
    )
    # alpaca
    field_instruction: str = Field("instruction", description="alpaca: instruction column.")
    field_input: str = Field("input", description="alpaca: optional input column.")
    field_output: str = Field("output", description="alpaca: answer column.")
    field_system: str = Field("system", description="alpaca/chat: optional system-prompt column.")
    system_prompt: str | None = Field(
        None, description="alpaca: replaces the standard Alpaca preamble."
    )
    transform: str | None = Field(
        None,
        description="GRPO: a Python `module.function(cfg)` returning `(transform_fn, map "
        "kwargs)` that turns each row into `{prompt, …}` (Axolotl's `type: module.function`; "
        "imported from the working directory).",
    )
    step_separator: str = Field(
        "\n",
        description="stepwise_supervised: text appended to every step (its label sits on "
        "the step's last token).",
    )
    max_completion_length: PositiveInt | None = Field(
        None, description="stepwise_supervised: keep at most this many step tokens."
    )
    train_on_last_step_only: bool = Field(
        False, description="stepwise_supervised: train on the last step's label only."
    )
    prompt_style: Literal["instruct", "chat", "chatml", "phi"] = Field(
        "instruct",
        description="alpaca: the turn markers (`### Instruction:`, `USER:`/`ASSISTANT:`, ChatML, "
        "Phi-3), as Axolotl's `type: alpaca:chat` etc.",
    )
    # sharegpt / chat_template
    conversation: BuiltinChatTemplate | None = Field(
        None,
        description="sharegpt: built-in template to render the conversation with (default: the "
        "top-level `chat_template`).",
    )
    field_messages: str | None = Field(
        None,
        description="Column holding the list of messages (default `conversations` for sharegpt, "
        "`messages` for chat_template).",
    )
    message_property_mappings: MessageMapping | None = Field(
        None,
        description="Keys of role and content inside a message (default `from`/`value` for "
        "sharegpt, `role`/`content` for chat_template).",
    )
    message_field_role: str | None = Field(
        None, description="Axolotl's older spelling of `message_property_mappings.role`."
    )
    message_field_content: str | None = Field(
        None, description="Axolotl's older spelling of `message_property_mappings.content`."
    )
    roles: dict[str, list[str]] | None = Field(
        None,
        description="Maps our roles (system/user/assistant) to the role names in the data, e.g. "
        "`{user: [human, user], assistant: [gpt, bot]}`.",
    )
    roles_to_train: list[str] | None = Field(
        None,
        description="Roles whose turns are trained (default `[assistant]`; all roles when "
        "`train_on_inputs: true`).",
    )
    train_on_eos: TrainOnEos = Field(
        "turn",
        description="Which end-of-turn tokens are trained: of every trained turn, only the last "
        "turn, every turn, or none.",
    )
    train_on_eot: TrainOnEos | None = Field(
        None,
        description="Which `eot_tokens` are trained (same values as `train_on_eos`; default: as "
        "`train_on_eos`).",
    )
    chat_template: ChatTemplateName | None = Field(
        None, description="Per-dataset override of the top-level `chat_template`."
    )
    drop_system_message: bool = Field(False, description="Remove system messages before rendering.")
    # preference (rl: dpo / ipo)
    field_chosen: str | None = Field(
        None, description="Preference rows: column of the preferred answer (default `chosen`)."
    )
    field_rejected: str | None = Field(
        None, description="Preference rows: column of the rejected answer (default `rejected`)."
    )


class LrPhase(_Section):
    """One phase of `lr_scheduler: composite`: a policy run over its own number of steps."""

    policy: PhasePolicy = Field(description="Policy of this phase (see `honer.schedules`).")
    steps: PositiveInt = Field(description="Optimizer steps the phase lasts.")
    kwargs: dict[str, Any] | None = Field(None, description="The policy's parameters.")


class TrlConfig(_Section):
    """`trl:` — GRPO's settings, with TRL's (and Axolotl's) names and defaults."""

    reward_funcs: list[str | dict[str, Any]] = Field(
        min_length=1,
        description="Rewards: honer checks (`{type: regex|not_regex|json|json_schema|exact|"
        "contains|callable, …}`, as in `evals.checks`), the word `evals` (every `evals.checks` "
        "entry), or a Python `module.function` / `module:function` (TRL's signature).",
    )
    reward_weights: list[float] | None = Field(
        None, description="One weight per reward (default 1 each)."
    )
    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt.")
    max_completion_length: PositiveInt = Field(256, description="Tokens generated at most.")
    beta: float = Field(
        0.0, ge=0, description="KL weight to the reference (0: no reference model, TRL's default)."
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    top_k: int = Field(0, ge=0, description="Top-k sampling (0: off).")
    min_p: float | None = Field(None, ge=0, le=1, description="Min-p sampling.")
    repetition_penalty: float = Field(1.0, gt=0, description="Repetition penalty.")
    scale_rewards: bool | Literal["group", "batch", "none"] = Field(
        "group", description="Divide advantages by the reward std (`group`, `batch`, `none`)."
    )
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = Field(
        "dapo", description="TRL's GRPO loss formulation."
    )
    epsilon: float = Field(0.2, gt=0, description="Clipping range (lower).")
    epsilon_high: float | None = Field(None, gt=0, description="Clipping range (upper).")
    num_iterations: PositiveInt = Field(1, description="Updates per generated batch (μ).")
    mask_truncated_completions: bool = Field(
        False, description="Leave completions cut at `max_completion_length` out of the loss."
    )
    multi_objective_aggregation: Literal["sum_then_normalize", "normalize_then_sum"] | None = Field(
        None, description="How several rewards combine (GDPO: `normalize_then_sum`)."
    )
    generation_batch_size: PositiveInt | None = Field(
        None, description="Completions generated at once (default: the effective batch)."
    )
    steps_per_generation: PositiveInt | None = Field(
        None, description="Micro-steps per generated batch (default gradient_accumulation_steps)."
    )
    generation_kwargs: dict[str, Any] | None = Field(
        None, description="Extra sampling arguments for `generate` (or vLLM's SamplingParams)."
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        None,
        description="Template variables for rendering the prompts (added to the top-level "
        "`chat_template_kwargs`, e.g. `enable_thinking: false`).",
    )
    log_completions: bool = Field(False, description="Print sampled completions when logging.")
    num_completions_to_print: PositiveInt | None = Field(
        None, description="How many completions `log_completions` prints."
    )
    use_vllm: bool = Field(False, description="Generate with vLLM (CUDA and `vllm` needed).")
    vllm_mode: Literal["server", "colocate"] = Field(
        "colocate", description="vLLM in the trainer process, or a `trl vllm-serve` server."
    )
    vllm_server_host: str = Field("127.0.0.1", description="vLLM server host (`server` mode).")
    vllm_server_port: int = Field(8000, description="vLLM server port (`server` mode).")
    vllm_server_timeout: float = Field(240.0, gt=0, description="Seconds to wait for it.")
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="GPU memory share of colocated vLLM."
    )


class EvalsConfig(_Section):
    """`honer evaluate`: generation-based checks on the validation split (greedy)."""

    checks: list[dict[str, Any]] = Field(
        min_length=1,
        description="Checks: `{type: regex|not_regex|json|json_schema|exact|contains|callable, "
        "…}` (see honer.evaluate.assertions).",
    )
    max_samples: PositiveInt | None = Field(None, description="Evaluate at most this many rows.")
    max_new_tokens: PositiveInt | None = Field(
        None, description="Tokens generated per prompt (default `eval_max_new_tokens`)."
    )


class BnbConfig(_Section):
    """bitsandbytes quantization settings for `load_in_4bit` / `load_in_8bit`."""

    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    bnb_4bit_use_double_quant: bool = Field(
        True, description="Quantize the quantization constants."
    )
    llm_int8_has_fp16_weight: bool = Field(False, description="8-bit: keep fp16 master weights.")
    bnb_4bit_quant_storage: Literal["bfloat16", "float16", "float32", "uint8"] | None = Field(
        None,
        description="Storage dtype of the packed 4-bit weights (default: the compute dtype under "
        "FSDP, so shards are even; uint8 otherwise).",
    )
    bnb_4bit_compute_dtype: Literal["bfloat16", "float16", "float32"] | None = Field(
        None, description="4-bit matmul dtype (default: the training dtype)."
    )


class GradientCheckpointingKwargs(_Section):
    """Arguments of activation checkpointing (`torch.utils.checkpoint`)."""

    use_reentrant: bool = Field(
        False,
        description="Reentrant checkpointing (older; needs an input that requires grad). The "
        "default, non-reentrant, works with LoRA and frozen embeddings.",
    )


class FsdpConfig(_Section):
    """FSDP2 settings (Axolotl's `fsdp_config`; each key also accepted with an `fsdp_` prefix)."""

    version: int = Field(
        2,
        description="FSDP version. Only 2 (per-parameter sharding, `fully_shard`): transformers "
        "5.20 removed FSDP1.",
    )
    reshard_after_forward: bool | None = Field(
        None,
        description="Free gathered weights after each layer's forward (ZeRO-3-like); `false` keeps "
        "them until backward (ZeRO-2-like). Default: from `fsdp` (full_shard → true, shard_grad_op "
        "→ false).",
    )
    offload_params: bool = Field(
        False, description="Keep parameters, gradients and optimizer state in CPU memory."
    )
    state_dict_type: Literal["FULL_STATE_DICT", "SHARDED_STATE_DICT"] = Field(
        "FULL_STATE_DICT",
        description="Checkpoint form: one gathered state dict, or one shard per rank (merge them "
        "with `honer merge-sharded-fsdp-weights`).",
    )
    auto_wrap_policy: Literal["TRANSFORMER_BASED_WRAP", "NO_WRAP"] = Field(
        "TRANSFORMER_BASED_WRAP", description="Shard layer by layer, or the model as one unit."
    )
    transformer_layer_cls_to_wrap: list[str] | str | None = Field(
        None,
        description="Layer class(es) to shard as units (default: the model's own "
        "`_no_split_modules`, e.g. `LlamaDecoderLayer`).",
    )
    cpu_ram_efficient_loading: bool = Field(
        False, description="Load weights on rank 0 only and broadcast them."
    )
    activation_checkpointing: bool = Field(
        False,
        description="FSDP's own activation checkpointing (use instead of `gradient_checkpointing`).",
    )


class Config(_Section):
    """A whole honer run. Field names follow Axolotl's."""

    # (key path, message) notes from loading: Axolotl keys accepted without effect, translated
    # spellings. Not config values: they are printed by the commands, never saved.
    _notes: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    # --- model & tokenizer -------------------------------------------------------------------
    base_model: str = Field(
        description="Hub model name, local folder, or local `.gguf` file of the base model."
    )
    gguf_file: str | None = Field(
        None,
        description="GGUF file inside the `base_model` folder or hub repository (transformers' "
        "`gguf_file`); converted once into a cached safetensors folder.",
    )
    base_model_config: str | None = Field(
        None, description="Where to read the model config from, when not `base_model`."
    )
    revision_of_model: str | None = Field(None, description="Hub revision of the base model.")
    model_type: str | None = Field(
        None,
        description="transformers class to load the model with, e.g. `AutoModelForCausalLM` or "
        "`LlamaForCausalLM` (default: AutoModelForCausalLM).",
    )
    tokenizer_config: str | None = Field(
        None, description="Where to load the tokenizer from, when not `base_model`."
    )
    tokenizer_type: str | None = Field(
        None, description="transformers tokenizer class, e.g. `AutoTokenizer` (default)."
    )
    tokenizer_use_fast: bool = Field(True, description="Use the fast (Rust) tokenizer.")
    tokenizer_legacy: bool | None = Field(
        None,
        description="transformers' `legacy` flag of SentencePiece (Llama/T5) tokenizers; default: "
        "the tokenizer's own.",
    )
    model_config_overrides: dict[str, Any] | None = Field(
        None,
        description="Values that replace the model config's (e.g. `rope_scaling`, "
        "`max_position_embeddings`); Axolotl's `model_config`.",
    )
    resize_token_embeddings_to_32x: bool = Field(
        False, description="Pad the embedding matrix to a multiple of 32 rows (faster matmuls)."
    )
    trust_remote_code: bool = Field(
        False, description="Run code shipped with the model repository. Off unless you set it."
    )
    special_tokens: SpecialTokens | None = Field(
        None, description="Tokens to set on the tokenizer (bos/eos/pad/unk)."
    )
    tokens: list[str] | None = Field(
        None, description="Extra tokens to add to the vocabulary (embeddings are resized)."
    )
    chat_template: ChatTemplateName = Field(
        "tokenizer_default",
        description="Chat template for chat formats: the tokenizer's own, a built-in one, or "
        "`jinja` with `chat_template_jinja`.",
    )
    chat_template_jinja: str | None = Field(
        None, description="Jinja chat template text, used with `chat_template: jinja`."
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        None,
        description="Extra variables for the chat template, at training and inference (e.g. "
        "`enable_thinking: false`).",
    )
    eot_tokens: list[str] | None = Field(
        None,
        description="Tokens that end a turn (each one token of the vocabulary); trained as "
        "`train_on_eot` says. Default: the template's end-of-turn token.",
    )
    default_system_message: str | None = Field(
        None, description="System message added to conversations that have none (chat formats)."
    )

    # --- adapter & quantization --------------------------------------------------------------
    adapter: Literal["lora", "qlora"] | None = Field(
        None, description="`lora`, `qlora` (LoRA on a 4-bit base), or empty for full fine-tuning."
    )
    lora_model_dir: str | None = Field(None, description="Existing adapter to continue training.")
    lora_r: PositiveInt = Field(8, description="LoRA rank.")
    lora_alpha: float = Field(16, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_target_modules: list[str] | str | None = Field(
        None,
        description="Module names (or a regex) to adapt; default: the attention projections.",
    )
    lora_target_linear: bool | None = Field(
        None, description="Adapt every linear layer except the output head."
    )
    lora_modules_to_save: list[str] | None = Field(
        None,
        description="Modules trained in full and saved with the adapter (e.g. `embed_tokens`, "
        "`lm_head` when new tokens are added).",
    )
    lora_fan_in_fan_out: bool = Field(
        False, description="Set for models that store weights as (fan_in, fan_out), e.g. GPT-2."
    )
    peft_use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")
    peft_use_rslora: bool = Field(
        False, description="Rank-stabilised LoRA scaling (alpha/sqrt(r))."
    )
    load_in_8bit: bool = Field(False, description="Load the base model in 8-bit (bitsandbytes).")
    load_in_4bit: bool = Field(False, description="Load the base model in 4-bit (bitsandbytes).")
    bnb_config_kwargs: BnbConfig | None = Field(
        None, description="bitsandbytes settings (quant type, double quant)."
    )

    # --- data ---------------------------------------------------------------------------------
    datasets: list[DatasetConfig] = Field(min_length=1, description="Training datasets.")
    test_datasets: list[DatasetConfig] | None = Field(
        None, description="Validation datasets (instead of splitting by `val_set_size`)."
    )
    dataset_prepared_path: str = Field(
        "last_run_prepared",
        description="Folder for the tokenized-data cache (one sub-folder per fingerprint).",
    )
    val_set_size: float = Field(
        0.0,
        description="Validation split: a fraction in [0, 1), or a row count when a whole number "
        ">= 1.",
    )
    dataset_processes: PositiveInt | None = Field(
        None, description="Processes for tokenization (`datasets.map` num_proc); default 1."
    )
    shuffle_merged_datasets: bool = Field(True, description="Shuffle rows after merging datasets.")
    shuffle_before_merging_datasets: bool = Field(
        False, description="Shuffle each dataset on its own before merging them."
    )
    skip_bad_rows: bool = Field(
        False,
        description="Skip (and count) malformed rows instead of stopping at the first one.",
    )
    dataset_exact_deduplication: bool = Field(
        False,
        description="Drop tokenized samples identical to an earlier one (ids and labels), and "
        "validation samples identical to a training one.",
    )
    min_sample_len: PositiveInt | None = Field(
        None, description="Drop samples shorter than this many tokens (counted per dataset)."
    )
    sequence_len: int = Field(2048, ge=8, description="Maximum tokens per sample.")
    excess_length_strategy: ExcessLength = Field(
        "drop", description="What to do with samples longer than `sequence_len`."
    )
    train_on_inputs: bool = Field(
        False, description="Also train on prompts / non-assistant turns (no masking)."
    )
    sample_packing: bool = Field(
        False,
        description="Pack several samples into each row of at most `sequence_len` tokens "
        "(attention and loss stay per sample; see docs/packing.md).",
    )
    eval_sample_packing: bool | None = Field(
        None, description="Pack the validation set too (default: as `sample_packing`)."
    )
    sample_packing_group_size: PositiveInt = Field(
        100_000, description="Samples bin-packed together per group (larger: fuller rows, slower)."
    )
    sample_packing_bin_size: PositiveInt = Field(200, description="Most samples in one packed row.")
    pad_to_sequence_len: bool = Field(False, description="Pad every batch to `sequence_len`.")

    # --- batch, epochs, steps -----------------------------------------------------------------
    micro_batch_size: PositiveInt = Field(1, description="Samples per device per forward pass.")
    eval_batch_size: PositiveInt | None = Field(
        None, description="Samples per device per eval step (default: micro_batch_size)."
    )
    gradient_accumulation_steps: PositiveInt = Field(
        1, description="Micro-batches accumulated per optimizer step."
    )
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    max_steps: PositiveInt | None = Field(
        None, description="Stop after this many optimizer steps (overrides num_epochs)."
    )
    group_by_length: bool = Field(
        False, description="Batch samples of similar length together (less padding)."
    )

    # --- preference tuning (rl) ---------------------------------------------------------------
    rl: RlKind | None = Field(
        None,
        description="Preference tuning instead of SFT: `dpo`, `ipo` (DPO with the IPO loss), "
        "`orpo` or `simpo` (no reference model) on preference pairs (`type: "
        "chat_template.default`, `chatml.*`, `llama3.*`), or `kto` on single answers labelled "
        "desirable or not (`chatml.*`, `llama3.*`).",
    )
    rl_beta: float = Field(
        0.1,
        gt=0,
        description="DPO's beta: how far the policy may move from the reference (SimPO: the "
        "reward scale; ORPO: the odds-ratio weight unless `orpo_alpha` is set).",
    )
    orpo_alpha: float | None = Field(
        None,
        gt=0,
        description="ORPO: weight of the odds-ratio term beside the chosen answers' NLL "
        "(TRL's `beta`; default `rl_beta`, 0.1).",
    )
    simpo_gamma: float | None = Field(
        None, ge=0, description="SimPO: the target reward margin (default 0.5)."
    )
    cpo_alpha: float | None = Field(
        None,
        ge=0,
        description="SimPO: weight of the chosen answers' NLL added to the loss (TRL's and "
        "Axolotl's default 1.0; 0 is the SimPO paper's loss).",
    )
    dpo_loss_type: list[str] | None = Field(
        None,
        description="TRL's DPO loss names (`sigmoid`, `hinge`, `ipo`, `robust`, `sft`, …); "
        "several are summed with `dpo_loss_weights` (default: `sigmoid`, `ipo` for `rl: ipo`).",
    )
    dpo_loss_weights: list[float] | None = Field(
        None, description="One weight per `dpo_loss_type` entry."
    )
    dpo_label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Label noise assumed by the robust/cDPO losses."
    )
    dpo_use_weighting: bool = Field(False, description="WPO's per-pair weighting of the loss.")
    kto_desirable_weight: float = Field(
        1.0, gt=0, description="KTO: weight of the desirable (label true) examples' loss."
    )
    kto_undesirable_weight: float = Field(
        1.0, gt=0, description="KTO: weight of the undesirable (label false) examples' loss."
    )
    reward_model: bool = Field(
        False,
        description="Train a reward model (a sequence classifier scoring a whole conversation) on "
        "preference pairs, with the Bradley-Terry loss (TRL's `RewardTrainer`).",
    )
    process_reward_model: bool = Field(
        False,
        description="Train a process reward model: a token classifier that judges each reasoning "
        "step (`type: stepwise_supervised` rows) right or wrong.",
    )
    num_labels: int | None = Field(
        None,
        ge=1,
        description="Outputs of the classifier head (a reward model has 1, a process reward "
        "model 2).",
    )
    center_rewards_coefficient: float | None = Field(
        None,
        ge=0,
        description="Reward model: weight of a penalty that keeps rewards centred on 0 (0.01 is "
        "the usual value).",
    )
    rl_reference_model: str | None = Field(
        None,
        description="DPO/IPO/KTO (and GRPO with `trl.beta` > 0): the reference model, a folder or "
        "hub name sharing the base's tokenizer, loaded like the base (default: the base itself; "
        "with a fresh adapter, the base with the adapter disabled, with no second copy).",
    )
    precompute_ref_log_probs: bool = Field(
        False,
        description="Compute the reference log-probs once before training (no reference model "
        "held in memory while training).",
    )

    # --- optimizer & schedule -----------------------------------------------------------------
    learning_rate: float | None = Field(
        None, gt=0, description="Peak learning rate (default 2e-4 with an adapter, 2e-5 without)."
    )
    lr_scheduler: LrScheduler = Field("cosine", description="Learning-rate schedule.")
    lr_scheduler_kwargs: dict[str, Any] | None = Field(
        None,
        description="Arguments of the schedule (e.g. `power` for polynomial, `mode` and "
        "`half_cycle` for cyclic).",
    )
    lr_phases: list[LrPhase] | None = Field(
        None,
        description="`lr_scheduler: composite`: the phases, run in order after the warm-up.",
    )
    cosine_min_lr_ratio: float | None = Field(
        None, ge=0, le=1, description="cosine_with_min_lr: final LR as a fraction of the peak."
    )
    cosine_constant_lr_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="cosine: reach `cosine_min_lr_ratio` at this fraction of the steps, then stay "
        "constant.",
    )
    warmup_steps: int | None = Field(None, ge=0, description="Linear warm-up steps.")
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="Warm-up as a fraction of total steps."
    )
    optimizer: Optimizer = Field("adamw_torch", description="Optimizer.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    adam_epsilon: float = Field(1e-8, gt=0, description="Adam epsilon.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0 disables).")
    unfrozen_parameters: list[str] | None = Field(
        None,
        description="Regexes of parameter names trained in full; every other parameter is frozen "
        "(full fine-tuning).",
    )
    neftune_noise_alpha: float | None = Field(
        None,
        gt=0,
        description="NEFTune: uniform noise of scale alpha/sqrt(length·hidden) on the input "
        "embeddings while training (paper default 5). Also accepted as `noisy_embedding_alpha`.",
    )

    # --- precision & memory -------------------------------------------------------------------
    bf16: bool | Literal["auto"] = Field(
        False,
        description="Train in bfloat16 (`true` needs a GPU with bf16; `auto`: bf16 on such a GPU, "
        "float32 elsewhere).",
    )
    fp16: bool = Field(False, description="Train in float16 mixed precision.")
    tf32: bool = Field(False, description="Allow TF32 matmuls on Ampere+ GPUs.")
    gradient_checkpointing: bool | Literal["offload", "offload_disk"] = Field(
        False,
        description="Recompute activations in the backward pass (less memory, ~30% slower); "
        "`offload` also keeps the saved activations in CPU memory, `offload_disk` on disk.",
    )
    gradient_checkpointing_kwargs: GradientCheckpointingKwargs | None = Field(
        None, description="Arguments of activation checkpointing."
    )
    activation_offloading: bool | Literal["legacy", "disk"] = Field(
        False,
        description="Keep the activations saved for backward in CPU memory (`disk`: in files) "
        "instead of on the GPU.",
    )
    flash_attention: bool = Field(
        False, description="Use flash-attention 2 (falls back to sdpa with a notice)."
    )
    sdp_attention: bool = Field(False, description="Use PyTorch scaled-dot-product attention.")
    attn_implementation: str | None = Field(
        None,
        description="Attention kernel, set explicitly: `eager`, `sdpa`, `flash_attention_2`, "
        "`flash_attention_3`, `flex_attention`, or a kernels-hub repository (`org/name`).",
    )
    torch_compile: bool | Literal["auto"] = Field(
        False, description="Compile the model with torch.compile (`auto`: on a CUDA GPU)."
    )
    torch_compile_backend: str | None = Field(
        None, description="torch.compile backend (default inductor)."
    )
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] | None = Field(
        None, description="torch.compile mode."
    )
    plugins: list[Plugin] | None = Field(
        None,
        description="Axolotl plugins honer runs with its own code: `…CutCrossEntropyPlugin` "
        "(chunked head + loss) and `…LigerPlugin` (with the `liger_*` keys).",
    )
    cut_cross_entropy: bool | None = Field(
        None,
        description="Compute the output head and cross-entropy in chunks, never holding the "
        "whole tokens × vocabulary logits (same loss and gradients, much less memory).",
    )
    liger_rope: bool | None = Field(None, description="Liger RoPE kernel (CUDA).")
    liger_rms_norm: bool | None = Field(None, description="Liger RMSNorm kernel (CUDA).")
    liger_rms_norm_gated: bool | None = Field(
        None, description="Liger gated RMSNorm kernel (CUDA)."
    )
    liger_layer_norm: bool | None = Field(None, description="Liger LayerNorm kernel (CUDA).")
    liger_glu_activation: bool | None = Field(None, description="Liger SwiGLU/GeGLU kernel (CUDA).")
    liger_cross_entropy: bool | None = Field(None, description="Liger cross-entropy (CUDA).")
    liger_fused_linear_cross_entropy: bool | None = Field(
        None,
        description="Liger fused head + cross-entropy (CUDA; on CPU honer's chunked loss).",
    )

    # --- evaluation, saving, logging ----------------------------------------------------------
    evals_per_epoch: int | None = Field(
        None, ge=0, description="Evaluations per epoch (0: none during training)."
    )
    eval_steps: PositiveInt | None = Field(None, description="Evaluate every N steps.")
    eval_table_size: int | None = Field(
        None, ge=0, description="Validation prompts generated and logged at each eval."
    )
    eval_max_new_tokens: PositiveInt = Field(
        128, description="Tokens generated per eval-table prompt."
    )
    saves_per_epoch: PositiveInt | None = Field(None, description="Checkpoints per epoch.")
    save_steps: PositiveInt | None = Field(None, description="Checkpoint every N steps.")
    save_total_limit: PositiveInt | None = Field(None, description="Keep at most N checkpoints.")
    save_strategy: Literal["steps", "epoch", "no", "best"] | None = Field(
        None,
        description="When to checkpoint: `steps` (save_steps/saves_per_epoch), `epoch`, `best` "
        "(at each new lowest eval loss) or `no` (only the final model). Default: from "
        "`save_steps`/`saves_per_epoch`, else each epoch.",
    )
    save_only_model: bool = Field(
        False,
        description="Checkpoints hold the model only, no optimizer/scheduler state (smaller; "
        "such a checkpoint cannot be resumed).",
    )
    include_tokens_per_second: bool | None = Field(
        None, description="Report the run's tokens per second in the final metrics."
    )
    save_safetensors: bool = Field(
        True,
        description="Save weights as safetensors (transformers 5 writes nothing else: `false` is "
        "refused).",
    )
    logging_steps: PositiveInt = Field(1, description="Log every N optimizer steps.")
    loss_watchdog_threshold: float | None = Field(
        None, gt=0, description="Stop when the training loss stays above this value."
    )
    loss_watchdog_patience: PositiveInt = Field(
        3, description="Logged steps above the threshold before stopping."
    )
    evals: EvalsConfig | None = Field(None, description="Assertion evals for `honer evaluate`.")
    trl: TrlConfig | None = Field(
        None, description="`rl: grpo`: generation and reward settings (TRL's names)."
    )
    early_stopping_patience: PositiveInt | None = Field(
        None,
        description="Stop after this many evaluations without a lower eval loss; keeps and "
        "loads the best checkpoint (as `load_best_model_at_end`).",
    )
    load_best_model_at_end: bool = Field(
        False, description="Keep the checkpoint with the lowest eval loss and end with it."
    )
    output_dir: str = Field("./outputs/run", description="Where the run writes its outputs.")
    resume_from_checkpoint: str | bool | None = Field(
        None, description="Checkpoint folder to resume from, or `true` for the latest one."
    )
    auto_resume_from_checkpoints: bool = Field(
        False,
        description="Resume from the latest checkpoint in `output_dir` when there is one, start "
        "fresh when there is none (a job a scheduler may restart).",
    )
    seed: int = Field(
        42, ge=0, lt=2**32, description="Random seed (model init, adapter init, shuffling)."
    )
    data_seed: int | None = Field(
        None, ge=0, lt=2**32, description="Seed for data order (default: `seed`)."
    )
    strict: bool = Field(
        False, description="Turn config and data warnings into errors (e.g. EOS mismatch)."
    )

    # --- multi-process ---------------------------------------------------------------------
    deepspeed: str | None = Field(
        None,
        description="DeepSpeed config: `zero1`, `zero2`, `zero3`, `zero3_offload` (shipped with "
        "honer) or the path of a JSON file.",
    )
    fsdp: list[FsdpOption] | None = Field(
        None,
        description="Shard with FSDP2: `full_shard` or `shard_grad_op`, plus `auto_wrap` and "
        "`offload` (as in Axolotl: a list, or words in one string).",
    )
    fsdp_config: FsdpConfig | None = Field(None, description="FSDP settings.")
    dp_shard_size: PositiveInt | None = Field(
        None,
        description="Processes FSDP shards across; honer shards across all of them, so it must "
        "equal the number of processes (checked at launch).",
    )
    fsdp_version: int | None = Field(
        None, description="Same as `fsdp_config.version` (Axolotl's top-level spelling)."
    )
    ddp_find_unused_parameters: bool | None = Field(
        None,
        description="DDP: look for parameters without a gradient each step (slower; needed when "
        "some layers are skipped).",
    )
    ddp_timeout: PositiveInt = Field(
        1800, description="Seconds a process waits for the others (e.g. rank 0 preprocessing)."
    )

    @field_validator("fsdp", mode="before")
    @classmethod
    def _fsdp_words(cls, value: Any) -> Any:
        """`fsdp: "full_shard auto_wrap"` (transformers' spelling) means the list of its words."""
        return value.split() if isinstance(value, str) else value

    # --- tracking & hub ----------------------------------------------------------------------
    report_to: list[ReportTo] | None = Field(
        None, description="Tracking integrations; `wandb` is added when `wandb_project` is set."
    )
    wandb_project: str | None = Field(None, description="Weights & Biases project.")
    wandb_entity: str | None = Field(None, description="Weights & Biases entity (team/user).")
    wandb_name: str | None = Field(None, description="Weights & Biases run name.")
    wandb_run_id: str | None = Field(None, description="Weights & Biases run id.")
    wandb_watch: Literal["false", "gradients", "parameters", "all"] | None = Field(
        None, description="What W&B records of the model."
    )
    wandb_log_model: Literal["false", "checkpoint", "end"] | None = Field(
        None, description="Upload checkpoints to W&B."
    )
    wandb_mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="W&B mode (`offline` logs locally; `wandb sync` uploads later)."
    )
    use_tensorboard: bool = Field(
        False, description="Log to TensorBoard under `output_dir/runs/` (adds `tensorboard`)."
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking store (a file path, `sqlite:///…` or a server); adds `mlflow`.",
    )
    mlflow_experiment_name: str | None = Field(None, description="MLflow experiment name.")
    hub_model_id: str | None = Field(
        None, description="Push the result to this Hugging Face Hub repository."
    )
    hub_strategy: Literal["end", "every_save", "checkpoint", "all_checkpoints"] | None = Field(
        None, description="When to push to the hub."
    )
    hub_private_repo: bool | None = Field(None, description="Create the hub repository as private.")
    hub_revision: str | None = Field(
        None, description="Branch of the hub repository to push to (default main)."
    )

    @property
    def notes(self) -> tuple[tuple[str, str], ...]:
        """What loading noted about the config (see `honer.config.load`)."""
        return self._notes

    def with_notes(self, notes: list[tuple[str, str]]) -> Config:
        """This config carrying the loader's notes."""
        self._notes = tuple(notes)
        return self

    @property
    def use_cut_cross_entropy(self) -> bool:
        """The chunked head + loss: `cut_cross_entropy`, or the plugin that means it."""
        return bool(self.cut_cross_entropy) or CUT_CROSS_ENTROPY_PLUGIN in (self.plugins or [])

    @property
    def liger_kernels(self) -> dict[str, bool]:
        """The `liger_*` keys that are set, by name."""
        values = {key: getattr(self, key) for key in LIGER_KEYS}
        return {key: bool(value) for key, value in values.items() if value is not None}

    @property
    def fsdp_words(self) -> list[str]:
        """The FSDP mode: the `fsdp` words, or, in Axolotl's FSDP2 spelling (`fsdp_config` with
        no `fsdp` list), the words its settings mean. Empty: no FSDP."""
        if self.fsdp:
            return list(self.fsdp)
        fc = self.fsdp_config
        if fc is None:
            return []
        words = ["shard_grad_op" if fc.reshard_after_forward is False else "full_shard"]
        if fc.auto_wrap_policy == "TRANSFORMER_BASED_WRAP":
            words.append("auto_wrap")
        if fc.offload_params:
            words.append("offload")
        return words

    @property
    def rl_losses(self) -> list[str]:
        """The preference run's loss names: `dpo_loss_type` (TRL's DPO names, default
        `sigmoid`, `ipo` for `rl: ipo`), else the method's own (`kto`, `orpo`, `simpo`)."""
        if self.rl in ("dpo", "ipo"):
            return list(self.dpo_loss_type or (["ipo"] if self.rl == "ipo" else ["sigmoid"]))
        if self.rl in ONLINE_RL and self.trl is not None:
            return [self.trl.loss_type]
        return [self.rl] if self.rl else []

    @property
    def orpo_weight(self) -> float:
        """ORPO's odds-ratio weight: `orpo_alpha`, else `rl_beta` (as Axolotl maps them)."""
        return self.orpo_alpha if self.orpo_alpha is not None else self.rl_beta

    @property
    def rl_strength(self) -> str:
        """The preference run's strength settings, as printed before training."""
        if self.rl in ONLINE_RL and self.trl is not None:
            rewards = len(self.trl.reward_funcs)
            return (
                f"{self.trl.num_generations} completions per prompt, {rewards} reward "
                f"entr{'y' if rewards == 1 else 'ies'}, beta {self.trl.beta:g}"
            )
        if self.rl == "orpo":
            return f"odds-ratio weight {self.orpo_weight:g}"
        if self.rl == "simpo":
            gamma, nll = self.simpo_settings
            return f"beta {self.rl_beta:g}, gamma {gamma:g}, NLL × {nll:g}"
        return f"beta {self.rl_beta:g}"

    @property
    def simpo_settings(self) -> tuple[float, float]:
        """SimPO's (gamma, NLL weight): `simpo_gamma` (default 0.5) and `cpo_alpha` (default
        1.0, TRL's and Axolotl's)."""
        gamma = 0.5 if self.simpo_gamma is None else self.simpo_gamma
        return gamma, 1.0 if self.cpo_alpha is None else self.cpo_alpha

    @property
    def effective_batch_size(self) -> int:
        """Samples per optimizer step on one process."""
        return self.micro_batch_size * self.gradient_accumulation_steps

    @property
    def resolved_data_seed(self) -> int:
        """The seed of data order (split, shuffle, packing): `data_seed`, 0 included, else `seed`."""
        return self.data_seed if self.data_seed is not None else self.seed

    @property
    def resolved_learning_rate(self) -> float:
        """The configured LR, or the default that suits the adapter choice."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.adapter else 2e-5

    @property
    def resolved_report_to(self) -> list[str]:
        """Integrations to enable: explicit `report_to`, plus those Axolotl's keys switch on
        (`wandb_project`, `use_tensorboard`, `mlflow_tracking_uri`)."""
        targets = [t for t in (self.report_to or []) if t != "none"]
        implied = (
            ("wandb", bool(self.wandb_project)),
            ("tensorboard", self.use_tensorboard),
            ("mlflow", bool(self.mlflow_tracking_uri)),
        )
        for name, on in implied:
            if on and name not in targets:
                targets.append(name)
        return targets
