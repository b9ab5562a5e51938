"""Memory per device before a run: weights, gradients, optimizer state, activations, peak.

Every term is computed from the model's config (the model is built on the `meta` device, so
an 8B model costs no memory to inspect) and from our config keys:

* **Weights**: each parameter in its load dtype (`bf16`/`fp16`/float32); with `load_in_4bit` the
  decoder's linear weights take 4 bits plus their block scales (bitsandbytes: one float32
  absmax per 64 weights, or 8 bits per 64 plus a float32 per 256 blocks with double quant),
  with `load_in_8bit` one byte plus a float32 scale per row. LoRA weights are float32 (peft
  upcasts adapters), and so is every weight of a quantized base that is not quantized
  (embeddings, norms, the head: peft's `prepare_model_for_kbit_training` upcasts them).
* **Gradients**: one per trainable element, in its dtype.
* **Optimizer state**: AdamW two moments per trainable element in its dtype; the 8-bit
  bitsandbytes optimizers one byte per moment for tensors of 4,096 elements or more (smaller
  ones stay 32-bit, as bitsandbytes does); Lion one moment; Adafactor factored row + column
  statistics; SGD (no momentum) none.
* **Activations** (tensors saved for backward) per token, for Llama-style decoders
  (Llama, Mistral, Qwen2, …) with sdpa attention, measured with autograd's saved-tensor hooks on
  torch 2.13 / transformers 5.x and fitted exactly (h hidden, i intermediate, k = kv heads ×
  head dim, n heads):
    full fine-tuning, per layer   8h + 4i + 2k − 3n + 18
    frozen base (LoRA), per layer 4h + 3i + 2k − 3n + 16, plus the input of each adapted group
                                  ({q,k,v}: h, {gate,up}: h, down: i; o's input is sdpa's saved
                                  output), r per adapted module, and with LoRA dropout 1.5 ×
                                  the module's input width
    outside the layers            V (the float32 log-softmax of the loss) + 3h when the norms
                                  train
    gradient checkpointing        h per layer (its input); backward recomputes one layer's
                                  activations at a time, beside that layer's backward
                                  (2h + 2i: gradients of its hidden states and MLP halves)
  times `micro_batch_size × sequence_len` tokens (the most a batch can hold), in the compute
  dtype (float32 for the log-softmax). `eager` attention adds its n·S² probabilities.
* **Peak** = weights + optimizer state + the largest of: activations + the loss's transient
  buffers (two float32 logits-sized tensors at the start of backward); with checkpointing, the
  kept layer inputs + one recomputed layer; gradients + the AdamW step's temporaries (one
  moment-sized tensor for torch's foreach implementation).
  Gradients and activations do not peak together: backward frees activations as it makes
  gradients, and gradients are freed (set to None) before the next forward.

Across N processes: ZeRO-1 divides the optimizer state by N, ZeRO-2 and FSDP `shard_grad_op`
also the gradients, ZeRO-3 and FSDP `full_shard` also the weights (plus one layer gathered at a
time); offload moves the state (and with ZeRO-3 offload the weights) to CPU memory. DDP keeps
an extra gradient-sized bucket buffer.

FSDP over a 4-bit base (QLoRA + FSDP): the packed 4-bit data, stored in a float dtype
(`bnb_4bit_quant_storage`), is sharded like any weight, so each device holds 1/N of it at half
a byte per weight; its quantization constants (absmax) are layer attributes, not parameters,
and every device keeps them whole. Before sharding, though, every process loads and quantizes
the whole base onto its own device (transformers places a bitsandbytes model on one device, and
accelerate skips `cpu_ram_efficient_loading` for 4-bit weights), so the whole 4-bit base must
fit one device once: that is the `loading` row, and the peak is at least that.

The figures that match Hugging Face's model-memory table (`accelerate estimate-memory`) are the
weights row and weights + gradients + Adam states ("Training using Adam"): 108,310,272 float32
parameters → 413.18 MB and 1.61 GB (binary units, as that table uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from honer.config.schema import ONLINE_RL, REFERENCE_FREE
from honer.errors import ModelError

if TYPE_CHECKING:
    from honer.config.schema import Config

MIB = 1024**2
BNB_MIN_8BIT_SIZE = 4096  # bitsandbytes keeps smaller tensors' optimizer state in 32 bits


@dataclass(frozen=True)
class Shape:
    """The decoder's dimensions, read from its config."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_dim: int
    vocab: int


@dataclass(frozen=True)
class Tensors:
    """Parameter element counts, split the way memory is counted."""

    total: int
    trainable: list[int]  # element count of each trainable tensor
    trainable_2d: list[tuple[int, int]]  # shapes of 2-D trainable tensors (Adafactor)
    quantizable: int  # decoder linear weights bitsandbytes would quantize
    quantizable_rows: int  # their output rows (8-bit keeps one scale per row)
    adapted: dict[str, int] = field(default_factory=dict)  # LoRA module kind → input width


@dataclass
class Estimate:
    """Bytes per device, per component, and the peak."""

    rows: list[tuple[str, float]]
    peak: float
    processes: int
    tokens_per_micro_batch: int
    notes: list[str]
    hf_reference: dict[str, float]

    def table(self) -> list[tuple[str, str]]:
        return [(name, human(size)) for name, size in self.rows] + [("peak", human(self.peak))]


def human(size: float) -> str:
    """Binary units written as KB/MB/GB, like accelerate's `convert_bytes`."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024.0:
            return f"{round(size, 2)} {unit}"
        size /= 1024.0
    return f"{round(size, 2)} PB"


def hf_reference(params: int) -> dict[str, float]:
    """Hugging Face's model-memory table for `params` float32 parameters (bytes)."""
    fp32 = params * 4
    return {
        "float32 weights": fp32,
        "float32 training with Adam": fp32 * 4,
        "float16 weights": fp32 / 2,
        "float16 training with Adam": fp32 * 2,
        "int8 weights": fp32 / 4,
        "int4 weights": fp32 / 8,
    }


def _shape(model_config: Any) -> Shape:
    c = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    try:
        heads = c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
        return Shape(
            hidden=c.hidden_size,
            intermediate=c.intermediate_size,
            layers=c.num_hidden_layers,
            heads=heads,
            kv_dim=(getattr(c, "num_key_value_heads", None) or heads) * head_dim,
            vocab=c.vocab_size,
        )
    except AttributeError as err:
        raise ModelError(
            f"`honer estimate` reads Llama-style configs (hidden_size, intermediate_size, "
            f"num_hidden_layers, num_attention_heads); this model's config lacks {err.name}."
        ) from None


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _tensors(cfg: Config, model: Any) -> Tensors:
    """Count the (meta) model's parameters; apply the config's LoRA the way training does."""
    import torch.nn as nn

    head = model.get_output_embeddings()
    quantizable = rows = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and module is not head:
            quantizable += module.weight.numel()
            rows += module.weight.shape[0]
    total = sum(p.numel() for p in model.parameters())
    adapted: dict[str, int] = {}
    if cfg.adapter:
        from peft import get_peft_model

        from honer.model.adapters import lora_config

        model = get_peft_model(model, lora_config(cfg, model))
        for name, module in model.named_modules():
            if hasattr(module, "lora_A") and isinstance(
                getattr(module, "base_layer", None), nn.Linear
            ):
                adapted[_kind(name)] = module.base_layer.in_features
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return Tensors(
        total=total,
        trainable=[p.numel() for p in trainable],
        trainable_2d=[tuple(p.shape) for p in trainable if p.dim() == 2],
        quantizable=quantizable,
        quantizable_rows=rows,
        adapted=adapted,
    )


def inspect_model(cfg: Config) -> tuple[Shape, Tensors]:
    """Shape and parameter counts of the config's model, built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from honer.model.gguf import loadable_base

    source = cfg.base_model_config or loadable_base(cfg)
    try:
        model_config = AutoConfig.from_pretrained(
            source,
            revision=cfg.revision_of_model if source == cfg.base_model else None,
            trust_remote_code=cfg.trust_remote_code,
        )
    except OSError as err:
        raise ModelError(
            f"cannot read the model config of `{source}`: {err}. Offline, point `base_model` "
            "at a local folder (or unset HF_HUB_OFFLINE to download the config)."
        ) from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            model_config, trust_remote_code=cfg.trust_remote_code
        )
    return _shape(model_config), _tensors(cfg, model)


def _dtype_bytes(cfg: Config) -> int:
    from honer.model.load import use_bf16, use_fp16

    return 2 if (use_bf16(cfg) or (use_fp16(cfg) and cfg.adapter)) else 4


@dataclass(frozen=True)
class WeightBytes:
    """The model's weights in bytes, split the way sharding treats them."""

    packed: float  # quantized linear weights' data (4 or 8 bits each)
    scales: float  # their quantization constants (bitsandbytes keeps them beside the weight)
    dense: float  # every other base weight
    lora: float  # adapter weights (float32)

    @property
    def total(self) -> float:
        return self.packed + self.scales + self.dense + self.lora


def weight_parts(cfg: Config, t: Tensors, lora_params: int) -> WeightBytes:
    """The model as trained: quantized linear weights, the rest in the load dtype (float32 beside
    a quantized base: peft upcasts it), + LoRA in float32."""
    base = t.total
    lora = lora_params * 4
    if cfg.load_in_4bit:
        double = cfg.bnb_config_kwargs is None or cfg.bnb_config_kwargs.bnb_4bit_use_double_quant
        scale = (1 / 64 + 4 / (64 * 256)) if double else 4 / 64
        return WeightBytes(
            t.quantizable * 0.5, t.quantizable * scale, (base - t.quantizable) * 4, lora
        )
    if cfg.load_in_8bit:
        return WeightBytes(t.quantizable, t.quantizable_rows * 4, (base - t.quantizable) * 4, lora)
    return WeightBytes(0.0, 0.0, base * _dtype_bytes(cfg), lora)


def weight_bytes(cfg: Config, t: Tensors, lora_params: int) -> float:
    """The model as trained, in bytes (see `weight_parts`)."""
    return weight_parts(cfg, t, lora_params).total


def optimizer_bytes(cfg: Config, t: Tensors, param_bytes: int) -> float:
    """Optimizer state of the trainable tensors (see the module docstring)."""
    name = cfg.optimizer
    if name in ("adamw_torch", "adamw_torch_fused", "paged_adamw_32bit"):
        return 2 * sum(t.trainable) * param_bytes
    if name in ("adamw_bnb_8bit", "paged_adamw_8bit", "lion_8bit"):
        moments = 1 if name == "lion_8bit" else 2
        return moments * sum(n if n >= BNB_MIN_8BIT_SIZE else 4 * n for n in t.trainable)
    if name == "adafactor":
        factored = sum((r + c) * 4 for r, c in t.trainable_2d)
        n_2d = sum(r * c for r, c in t.trainable_2d)
        return factored + (sum(t.trainable) - n_2d) * 4
    return 0.0  # sgd without momentum keeps no state


_GROUPS = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "gu", "up_proj": "gu"}


def activation_elements_per_token(cfg: Config, s: Shape, t: Tensors) -> tuple[float, float]:
    """(per layer, outside the layers) saved elements per token, without checkpointing."""
    h, i, k, n = s.hidden, s.intermediate, s.kv_dim, s.heads
    if not cfg.adapter:
        return 8 * h + 4 * i + 2 * k - 3 * n + 18, 3 * h
    layer = 4 * h + 3 * i + 2 * k - 3 * n + 16
    groups = set()
    for kind, width in t.adapted.items():
        layer += cfg.lora_r + (1.5 * width if cfg.lora_dropout > 0 else 0)
        group = _GROUPS.get(kind, kind)
        if group not in groups and kind != "o_proj":
            groups.add(group)
            layer += i if kind == "down_proj" else h
    return layer, 0.0


def estimate(cfg: Config, shape: Shape, t: Tensors, processes: int = 1) -> Estimate:
    """Bytes per device for `cfg` on a model of `shape` with parameters `t`."""
    from honer.train import parallel

    elem = _dtype_bytes(cfg)
    lora_params = sum(t.trainable) if cfg.adapter else 0
    param_bytes = 4 if cfg.adapter else elem
    parts = weight_parts(cfg, t, lora_params)
    weights = parts.total
    grads = sum(t.trainable) * param_bytes
    state = optimizer_bytes(cfg, t, param_bytes)
    # A preference row is two sequences in one forward: prompt + chosen and prompt + rejected
    # (DPO), or prompt + answer and prompt + a neighbour's answer for the KL term (KTO).
    # (GRPO: each micro-batch row is one prompt + completion.)
    online = cfg.rl in ONLINE_RL
    # A reward model reads both sides of a pair too, and its head has one output, not a vocabulary.
    sequences = 2 if (cfg.rl and not online) or cfg.reward_model else 1
    tokens = sequences * cfg.micro_batch_size * cfg.sequence_len
    per_layer, outside = activation_elements_per_token(cfg, shape, t)
    if (cfg.attn_implementation or "sdpa") == "eager":  # n·S² attention probabilities
        per_layer += shape.heads * cfg.sequence_len
    outputs = 1 if cfg.reward_model else 2 if cfg.process_reward_model else shape.vocab
    head = tokens * outputs * 4  # the loss's float32 log-softmax
    loss_transient = 2 * head
    if cfg.gradient_checkpointing:
        inputs = tokens * shape.hidden * shape.layers * elem  # each layer's input, kept
        acts = inputs + tokens * outside * elem + head
        # Backward recomputes one layer at a time, after the loss's buffers are gone, and
        # runs that layer's backward beside it: the gradients of its hidden states and of its
        # two MLP intermediates.
        layer_backward = 2 * (shape.hidden + shape.intermediate)
        act_peak = max(acts + loss_transient, inputs + tokens * (per_layer + layer_backward) * elem)
    else:
        acts = tokens * (per_layer * shape.layers + outside) * elem + head
        act_peak = acts + loss_transient
    step_transient = state / 2 if cfg.optimizer.startswith("adamw_torch") else 0.0

    notes: list[str] = []
    stage = parallel.deepspeed_stage(cfg)
    fsdp = cfg.fsdp_words
    n = processes
    shard_state = shard_grads = shard_weights = False
    offload_state = offload_weights = False
    if stage is not None:
        shard_state, shard_grads, shard_weights = stage >= 1, stage >= 2, stage >= 3
        offload_state = offload_weights = cfg.deepspeed == "zero3_offload"
    elif fsdp:
        shard_state = shard_grads = True
        shard_weights = "shard_grad_op" not in fsdp
        offload_state = offload_weights = "offload" in fsdp or bool(
            cfg.fsdp_config and cfg.fsdp_config.offload_params
        )
    elif n > 1:
        grads *= 2  # DDP's bucket views: a second gradient-sized buffer
        notes.append("DDP: gradients counted twice (DDP's reduction buckets).")
    if shard_state:
        state /= n
        step_transient /= n
    if shard_grads:
        grads /= n
    loading = 0.0
    if shard_weights:
        layer_weights = weights / max(shape.layers, 1)
        if fsdp and cfg.load_in_4bit:
            # The packed data is sharded; the quantization constants stay whole on every device.
            weights = (weights - parts.scales) / n + parts.scales + layer_weights
            loading = parts.total - parts.lora  # the whole 4-bit base, before sharding
            notes.append(
                f"FSDP + 4-bit: every process first loads the whole 4-bit base onto its device "
                f"({human(loading)}), then keeps 1/{n} of its packed weights; the peak is at least "
                "that."
            )
        else:
            weights = weights / n + layer_weights  # one gathered layer at a time
    if offload_state:
        notes.append(f"optimizer state offloaded to CPU memory: {human(state)} there.")
        state = step_transient = 0.0
    if offload_weights:
        notes.append(f"weights offloaded to CPU memory: {human(weights)} there.")
        weights = 0.0
    reference = 0.0
    generation = 0.0
    if online and cfg.trl is not None:
        # Sampling holds the KV cache of a whole generated batch (every completion of the
        # step's prompts) at full length, beside the weights, before the training pass.
        batch = cfg.trl.generation_batch_size or cfg.micro_batch_size * (
            cfg.trl.steps_per_generation or cfg.gradient_accumulation_steps
        )
        generation = 2 * shape.layers * shape.kv_dim * cfg.sequence_len * batch * elem
        notes.append(
            f"{cfg.rl.upper()}: sampling {batch} completions at once holds a KV cache of "
            f"{human(generation)} (2 × layers × KV width × sequence_len × {batch}); it is freed "
            "before the training pass."
        )
    if cfg.rl in REFERENCE_FREE or (online and (cfg.trl is None or cfg.trl.beta == 0)):
        notes.append(f"{cfg.rl.upper()}: no reference model.")
    elif cfg.rl and (
        cfg.rl_reference_model or (not cfg.adapter and not cfg.precompute_ref_log_probs)
    ):
        reference = parts.total  # a frozen second copy of the base: no gradients, no state
        what = f"`{cfg.rl_reference_model}`, counted as" if cfg.rl_reference_model else "model,"
        notes.append(f"{cfg.rl.upper()}: the frozen reference {what} {human(reference)}.")
    elif cfg.rl:
        why = "the base with the adapter disabled" if cfg.adapter else "precomputed log-probs"
        notes.append(f"{cfg.rl.upper()}: the reference is {why}: no second copy of the weights.")
    peak = max(
        weights + reference + state + max(act_peak, grads + step_transient, generation), loading
    )
    rows = [
        *([("loading (whole 4-bit base)", loading)] if loading else []),
        ("weights", weights),
        *([("reference model (frozen)", reference)] if reference else []),
        *([("generation KV cache (while sampling)", generation)] if generation else []),
        ("gradients", grads),
        ("optimizer state", state),
        ("activations", acts),
        ("weights + gradients + optimizer state", weights + grads + state),
    ]
    notes.append(
        f"activations for {tokens:,} tokens per micro-batch ("
        + ("2 sequences per row × " if sequences == 2 else "")
        + f"{cfg.micro_batch_size} × sequence_len {cfg.sequence_len}), the most a batch can hold."
    )
    return Estimate(
        rows=rows,
        peak=peak,
        processes=n,
        tokens_per_micro_batch=tokens,
        notes=notes,
        hf_reference=hf_reference(t.total),
    )


def device_memory() -> tuple[str, list[int]]:
    """('cuda', free bytes per GPU), or ('cpu', [available RAM]) when there is no GPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda", [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    import psutil

    return "cpu", [psutil.virtual_memory().available]
