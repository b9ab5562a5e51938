"""Load the tokenizer (and, for training, the base model) as the config says.

Heavy imports happen inside the functions: this module is imported by CLI commands that may not
need torch at all.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

from honer import hardware
from honer.config.schema import Config
from honer.errors import ConfigError, ModelError, is_out_of_memory, out_of_memory_error
from honer.model.gguf import loadable_base

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def _offline_hint(name: str) -> str:
    if os.path.isdir(name):
        return ""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return (
            f" HF_HUB_OFFLINE=1 is set and `{name}` is not in the local Hugging Face cache: "
            "point `base_model` at a local folder, or unset HF_HUB_OFFLINE to download it."
        )
    return (
        f" `{name}` is neither a local folder nor a reachable hub repository: check the name, "
        "your network, and HF_TOKEN for gated models (or set HF_HUB_OFFLINE=1 and use a local path)."
    )


def _one_progress_display() -> None:
    """transformers draws a bar for every weight load and checkpoint save ("Loading weights",
    "Writing model shards"); honer shows its own progress, so those are switched off when honer
    loads a model (hub downloads keep huggingface_hub's own bar)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _transformers_class(key: str, name: str, kind: str, examples: str) -> Any:
    """The transformers class a config key names (`tokenizer_type`, `model_type`)."""
    import transformers

    cls = getattr(transformers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelError(f"{key}: `{name}` is not a transformers {kind} class (e.g. {examples}).")
    return cls


def _tokenizer_class(cfg: Config) -> Any:
    name = cfg.tokenizer_type or "AutoTokenizer"
    return _transformers_class(
        "tokenizer_type", name, "tokenizer", "AutoTokenizer, LlamaTokenizerFast"
    )


def load_tokenizer(cfg: Config) -> PreTrainedTokenizerBase:
    """The tokenizer with `special_tokens` / `tokens` applied and a pad token guaranteed.

    A missing pad token is set to EOS (the common choice for causal LMs); labels of padding are
    -100 anyway, so this never trains on padding.
    """
    _one_progress_display()
    source = cfg.tokenizer_config or loadable_base(cfg)  # a GGUF's tokenizer comes with it
    cls = _tokenizer_class(cfg)
    try:
        extra = {} if cfg.tokenizer_legacy is None else {"legacy": cfg.tokenizer_legacy}
        tok = cls.from_pretrained(
            source,
            use_fast=cfg.tokenizer_use_fast,
            trust_remote_code=cfg.trust_remote_code,
            revision=cfg.revision_of_model if source == cfg.base_model else None,
            **extra,
        )
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load the tokenizer from `{source}`: {err}.{_offline_hint(source)}"
        ) from None
    if cfg.special_tokens is not None:
        wanted = {k: v for k, v in cfg.special_tokens.model_dump().items() if v is not None}
        if wanted:
            tok.add_special_tokens(wanted)
    if cfg.tokens:
        tok.add_tokens(list(cfg.tokens))
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelError(
                f"the tokenizer of `{source}` has neither a pad nor an EOS token: set "
                "`special_tokens: {pad_token: ...}` in the config."
            )
        tok.pad_token = tok.eos_token
    return tok


# --- base model ------------------------------------------------------------------------------------


def _notice(message: str) -> None:
    """One line on stderr: a fallback the user should know about, never an error."""
    print(f"notice: {message}", file=sys.stderr)


def use_bf16(cfg: Config) -> bool:
    """Resolve `bf16` (true / false / "auto") for this machine.

    `auto` means bf16 where a GPU runs it natively; on CPU it resolves to float32, because bf16
    autocast on CPU is emulated and slower than float32. An explicit `true` on hardware without
    native bf16 is an error rather than a silent downgrade: the user asked for a precision that
    changes numerics and memory.
    """
    if cfg.bf16 == "auto":
        return hardware.bf16_supported()
    if cfg.bf16 and not hardware.bf16_supported():
        where = (
            "this GPU has no bfloat16 support (it needs Ampere or newer)"
            if hardware.cuda_available()
            else "this machine has no GPU, and bf16 mixed precision needs one"
        )
        raise ConfigError(
            [
                (
                    "bf16",
                    f"true, but {where}: set `bf16: auto` (bf16 where supported) or `bf16: false`.",
                )
            ]
        )
    return bool(cfg.bf16)


def use_fp16(cfg: Config) -> bool:
    """`fp16` mixed precision needs a CUDA GPU (its loss scaler does not run on CPU)."""
    if cfg.fp16 and not hardware.cuda_available():
        raise ConfigError(
            [
                (
                    "fp16",
                    "true, but this machine has no GPU: fp16 mixed precision needs CUDA; set it to false.",
                )
            ]
        )
    return cfg.fp16


def use_tf32(cfg: Config) -> bool:
    """TF32 is a speed hint for Ampere+ GPUs; elsewhere it is skipped with a notice."""
    if not cfg.tf32:
        return False
    if hardware.tf32_supported():
        return True
    _notice("tf32: true has no effect without an Ampere or newer GPU; continuing without it.")
    return False


def model_dtype(cfg: Config) -> Any:
    """The dtype weights are loaded in: bf16/fp16 when training in that precision, else float32.

    Full fine-tuning under fp16 keeps float32 weights: the fp16 loss scaler cannot unscale fp16
    gradients, so the master weights must stay float32 (only the adapter path loads fp16 bases).
    """
    import torch

    if use_bf16(cfg):
        return torch.bfloat16
    if use_fp16(cfg):
        return torch.float16 if cfg.adapter else torch.float32
    return torch.float32


def _flash_attn_importable(package: str = "flash_attn") -> bool:
    return importlib.util.find_spec(package) is not None


def attn_implementation(cfg: Config, dtype: Any = None) -> str | None:
    """The attention kernel to load the model with (None: the transformers default).

    `flash_attention: true` asks for flash-attention 2, which needs the `flash_attn` package, a
    GPU and half precision; when any is missing it falls back to sdpa with a one-line notice, so
    a config written for a GPU box still runs on a laptop.
    """
    import torch

    flash = cfg.attn_implementation in ("flash_attention_2", "flash_attention_3")
    if cfg.attn_implementation is not None and not flash:
        return cfg.attn_implementation
    if cfg.sdp_attention:
        return "sdpa"
    if not (cfg.flash_attention or flash):
        return None
    wanted = cfg.attn_implementation or "flash_attention_2"
    key = "attn_implementation" if flash else "flash_attention"
    package = "flash_attn_interface" if wanted == "flash_attention_3" else "flash_attn"
    missing = []
    if not hardware.cuda_available():
        missing.append("there is no GPU")
    if not _flash_attn_importable(package):
        missing.append(f"the `{package}` package is not installed")
    if not missing and dtype is not None and dtype not in (torch.bfloat16, torch.float16):
        missing.append("it needs bf16 or fp16 weights: set `bf16: auto`")
    if missing:
        version = wanted.rsplit("_", 1)[-1]
        _notice(f"{key}: using sdpa instead of flash-attention {version} ({'; '.join(missing)}).")
        return "sdpa"
    return wanted


def _model_class(cfg: Config) -> Any:
    default = (
        "AutoModelForTokenClassification"
        if cfg.process_reward_model
        else "AutoModelForSequenceClassification"
        if cfg.reward_model
        else "AutoModelForCausalLM"
    )
    name = cfg.model_type or default
    return _transformers_class(
        "model_type", name, "model", "AutoModelForCausalLM, LlamaForCausalLM"
    )


def _require_bitsandbytes(key: str) -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(
            f"{key}: quantized loading needs bitsandbytes, which is not installed: "
            "pip install 'bitsandbytes>=0.45' (or pip install 'honer[quant]')."
        )


def quant_storage_dtype(cfg: Config, compute_dtype: Any) -> Any:
    """The dtype the packed 4-bit weights are stored in (`bnb_4bit_quant_storage`).

    bitsandbytes packs two 4-bit values per byte and, by default, stores them as uint8. Under
    FSDP2 that cannot work: `fully_shard` replaces every parameter by a DTensor shard gathered
    in the mixed-precision dtype, which a uint8 `Params4bit` does not survive, so accelerate
    leaves such weights out of sharding and every rank holds the whole base (measured: 0 of 14
    layers sharded). Stored in the compute dtype instead (float32 on CPU, bfloat16 on a bf16 GPU), the packed bytes
    are just an `(n, 1)` float tensor that FSDP shards, gathers and frees like any other weight,
    and the mixed-precision policy transformers derives from this dtype never converts them
    (Answer.AI's fsdp_qlora and transformers' "FSDP + QLoRA" recipe do the same). Without FSDP
    the byte layout is bitsandbytes' default, uint8. The value does not change the numbers: the
    same bytes are dequantized whatever tensor type holds them.
    """
    import torch

    bnb = cfg.bnb_config_kwargs
    chosen = bnb.bnb_4bit_quant_storage if bnb is not None else None
    if chosen is not None:
        return getattr(torch, chosen)
    return compute_dtype if cfg.fsdp_words else torch.uint8


def quantization_config(cfg: Config, compute_dtype: Any) -> Any:
    """A `BitsAndBytesConfig` for `load_in_4bit` / `load_in_8bit`, or None when not quantizing.

    `compute_dtype` is the training dtype; `bnb_config_kwargs.bnb_4bit_compute_dtype` overrides
    it for the 4-bit matmuls only.
    """
    if not (cfg.load_in_4bit or cfg.load_in_8bit):
        return None
    _require_bitsandbytes("load_in_4bit" if cfg.load_in_4bit else "load_in_8bit")
    import torch
    from transformers import BitsAndBytesConfig

    from honer.config.schema import BnbConfig

    bnb = cfg.bnb_config_kwargs or BnbConfig()
    if cfg.load_in_4bit:
        matmul_dtype = (
            getattr(torch, bnb.bnb_4bit_compute_dtype)
            if bnb.bnb_4bit_compute_dtype is not None
            else compute_dtype
        )
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=bnb.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=bnb.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=matmul_dtype,
            bnb_4bit_quant_storage=quant_storage_dtype(cfg, compute_dtype),
        )
    return BitsAndBytesConfig(
        load_in_8bit=True, llm_int8_has_fp16_weight=bnb.llm_int8_has_fp16_weight
    )


def _content_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Special tokens that appear in training text (so are predicted or attended to)."""
    ids = {tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}
    return {i for i in ids if i is not None}


def load_model(cfg: Config, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The base model as the config says: class, revision, dtype, attention kernel, quantization.

    When the tokenizer holds more tokens than the model has embedding rows (`special_tokens` /
    `tokens` added some), the embeddings are resized and the count of new rows that training
    text uses (a padding-only token is not) is recorded as `model.honer_new_tokens`:
    `build_adapter` needs it to refuse a LoRA that could not train them.
    """
    _one_progress_display()
    cls = _model_class(cfg)
    dtype = model_dtype(cfg)
    source = loadable_base(cfg)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "trust_remote_code": cfg.trust_remote_code,
        "revision": cfg.revision_of_model if source == cfg.base_model else None,
    }
    attn = attn_implementation(cfg, dtype)
    if attn is not None:
        kwargs["attn_implementation"] = attn
    if cfg.reward_model:  # one output: the reward
        kwargs["num_labels"] = 1
    elif cfg.process_reward_model:  # two classes per step: wrong, right
        kwargs["num_labels"] = 2
    quant = quantization_config(cfg, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if hardware.cuda_available():
            # Quantized weights cannot be moved after loading: place them on this rank's GPU.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        if cfg.base_model_config is not None or cfg.model_config_overrides:
            from transformers import AutoConfig

            # `model_config` (Axolotl): values that replace the model config's own, e.g.
            # `rope_scaling`; AutoConfig applies keyword arguments as overrides.
            kwargs["config"] = AutoConfig.from_pretrained(
                cfg.base_model_config or source,
                trust_remote_code=cfg.trust_remote_code,
                revision=cfg.revision_of_model,
                **(cfg.model_config_overrides or {}),
            )
            if "num_labels" in kwargs:
                kwargs["config"].num_labels = kwargs.pop("num_labels")
        model = cls.from_pretrained(source, **kwargs)
        if cfg.reward_model or cfg.process_reward_model:  # classifiers skip the padding
            model.config.pad_token_id = tokenizer.pad_token_id
    except (OSError, ValueError) as err:
        if is_out_of_memory(err):
            raise out_of_memory_error("loading the base model") from None
        source = cfg.base_model_config or cfg.base_model
        raise ModelError(
            f"cannot load the base model `{cfg.base_model}`: {err}.{_offline_hint(source)}"
        ) from None
    except RuntimeError as err:
        if is_out_of_memory(err):
            raise out_of_memory_error("loading the base model") from None
        raise
    if quant is not None and cfg.load_in_4bit:
        # One numeric path for training, evaluation and inference: bitsandbytes' packed CPU
        # inference layout passes no gradient and rounds differently (see honer.model.kbit).
        from honer.model.kbit import keep_4bit_weights_unpacked

        keep_4bit_weights_unpacked(model)
    rows = model.get_input_embeddings().weight.shape[0]
    new_tokens = max(0, len(tokenizer) - rows)
    if cfg.resize_token_embeddings_to_32x:
        # Rows padded to a multiple of 32 (faster matmuls); the padding rows are never used.
        target = -(-max(rows, len(tokenizer)) // 32) * 32
        if target != rows:
            model.resize_token_embeddings(target)
    elif new_tokens:
        model.resize_token_embeddings(len(tokenizer))
    pad = tokenizer.pad_token_id
    if new_tokens and pad is not None and pad >= rows and pad not in _content_ids(tokenizer):
        # A new token used only for padding is never attended to nor predicted (attention
        # mask and -100 labels), so its random row needs no training (Llama-3's
        # `pad_token: <|end_of_text|>` on a tokenizer that lacks it).
        new_tokens -= 1
    model.honer_new_tokens = new_tokens
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model
