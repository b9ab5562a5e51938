"""Merge a LoRA/QLoRA adapter into its base weights, one tensor at a time, into a standalone model.

Why not peft's `merge_and_unload`: it needs the whole base model loaded (plus the merged copy
while saving), so a 70B merge needs twice its size in RAM. Here the base's safetensors shards are
read one tensor at a time (`safe_open`), the adapted weights get `W += scale · B @ A`, and output
shards are flushed as soon as they reach `max_shard_size`: peak memory is one output shard plus
the adapter, whatever the model size (bench/merge_memory.py measures it).

DoRA adapters merge the way peft's `merge_and_unload` does: `W' = W + scale · B @ A`, then each
output row of `W'` is rescaled to the trained magnitude, `W' · m / ‖W'‖` (the norm of each row,
taken on the same weight the adapter saw: the de-quantized one for QLoRA).

QLoRA adapters were trained against the 4-bit *de-quantized* weights, not the original ones:
`qlora_base="dequantized"` (the default) rounds every quantized linear weight through the same
NF4/FP4 quantization first, so the merged model reproduces the trained one; `"original"` merges
into the full-precision weights, which the adapter never saw (a small, measured logit gap).

The output is staged in a temporary sibling folder and renamed into place: a crash leaves no
half-written model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.atomic import staged_folder
from honer.errors import ModelError
from honer.model.lora_weights import (
    LoraWeights,
    apply_dora,
    load_lora,
    lora_delta,
)

if TYPE_CHECKING:
    import torch

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DEFAULT_MAX_SHARD = 5 * 1024**3
QLORA_BASES = ("dequantized", "original")


@dataclass(frozen=True)
class MergeResult:
    output: Path
    shards: int
    merged_tensors: int
    quantized_tensors: int
    total_bytes: int


def parse_size(text: str | int) -> int:
    """'5GB', '500MB', '2GiB', or bytes → bytes (the spelling `save_pretrained` accepts)."""
    if isinstance(text, int):
        return text
    s = text.strip().upper()
    units = {"GIB": 1024**3, "MIB": 1024**2, "KIB": 1024, "GB": 10**9, "MB": 10**6, "KB": 10**3}
    for unit, mult in units.items():
        if s.endswith(unit):
            try:
                return int(float(s[: -len(unit)]) * mult)
            except ValueError:
                break
    if s.endswith("B"):
        s = s[:-1]
    try:
        return int(s)
    except ValueError:
        raise ModelError(
            f"--max-shard-size: `{text}` is not a size (e.g. 5GB, 500MB, 2GiB)."
        ) from None


def base_weight_files(base_dir: Path) -> list[Path]:
    """The base's safetensors files, in index order (one file when not sharded)."""
    index = base_dir / INDEX_FILE
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [base_dir / n for n in names]
    single = base_dir / SINGLE_FILE
    if single.is_file():
        return [single]
    raise ModelError(
        f"base_model: `{base_dir}` has no safetensors weights ({SINGLE_FILE} or {INDEX_FILE}); "
        "merging reads local safetensors files (download the model or convert it first)."
    )


def resolve_base_dir(base_model: str, revision: str | None = None) -> Path:
    """A local folder for `base_model`: the folder itself, or its snapshot in the HF cache."""
    if os.path.isdir(base_model):
        return Path(base_model)
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                base_model,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
            )
        )
    except Exception as err:  # network, auth, or not in the offline cache
        raise ModelError(f"base_model: cannot find `{base_model}` locally: {err}") from None


def quantized_weight_names(base_dir: Path, skip: list[str] | None = None) -> set[str]:
    """Weight keys that bitsandbytes quantizes at load: every nn.Linear except the output head.

    The model skeleton is built on the meta device (no memory), so the set comes from the real
    module types rather than from tensor names.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    skip = list(skip or [])
    names = set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        if any(name == s or name.endswith(f".{s}") or name.startswith(f"{s}.") for s in skip):
            continue
        names.add(f"{name}.weight")
    return names


@dataclass(frozen=True)
class Quantization:
    """How the QLoRA base was quantized (bitsandbytes 4-bit), to reproduce its rounding."""

    quant_type: str = "nf4"
    double_quant: bool = True
    blocksize: int = 64
    skip_modules: tuple[str, ...] = ()
    load_dtype: Any = None  # the dtype weights were cast to before quantizing (training dtype)


def round_through_4bit(weight: torch.Tensor, q: Quantization) -> torch.Tensor:
    """The weight as the 4-bit model sees it: quantized and de-quantized by bitsandbytes."""
    import bitsandbytes.functional as bnbf

    source = weight if q.load_dtype is None else weight.to(q.load_dtype)
    packed, state = bnbf.quantize_4bit(
        source.contiguous(),
        blocksize=q.blocksize,
        quant_type=q.quant_type,
        compress_statistics=q.double_quant,
    )
    return bnbf.dequantize_4bit(packed, state).to(source.dtype)


class _ShardWriter:
    """Collects tensors and writes a shard file each time `max_bytes` would be exceeded."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.buffer: dict[str, Any] = {}
        self.buffered = 0
        self.files: list[tuple[Path, list[str]]] = []
        self.total = 0

    def add(self, key: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.buffer and self.buffered + size > self.max_bytes:
            self.flush()
        self.buffer[key] = tensor.contiguous()
        self.buffered += size
        self.total += size

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.buffer:
            return
        path = self.folder / f".part-{len(self.files):05d}.safetensors"
        save_file(self.buffer, str(path), metadata={"format": "pt"})
        self.files.append((path, list(self.buffer)))
        self.buffer = {}
        self.buffered = 0

    def finish(self) -> int:
        """Rename parts to the names transformers expects and write the index when sharded."""
        self.flush()
        n = len(self.files)
        if n == 1:
            os.replace(self.files[0][0], self.folder / SINGLE_FILE)
            return 1
        weight_map = {}
        for i, (path, keys) in enumerate(self.files):
            name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(path, self.folder / name)
            weight_map.update(dict.fromkeys(keys, name))
        index = {
            "metadata": {"total_size": self.total},
            "weight_map": dict(sorted(weight_map.items())),
        }
        (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return n


def check_output(output: Path, force: bool) -> None:
    """Refuse to replace a non-empty folder unless `force`: merges take minutes to redo."""
    if output.exists() and not output.is_dir():
        raise ModelError(f"--output: `{output}` is a file, not a folder.")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise ModelError(
            f"--output: `{output}` is not empty; pass --force to replace it, or choose another folder."
        )


def merge_lora(
    base_dir: Path,
    adapter_dir: Path,
    output: Path,
    *,
    dtype: torch.dtype | None = None,
    quantization: Quantization | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD,
    force: bool = False,
    extra_files: dict[str, str] | None = None,
    save_tokenizer: Any = None,
    stop_ids: set[int] | None = None,
) -> MergeResult:
    """Write base + adapter as one standalone model in `output` (see the module docstring).

    `dtype`: the dtype of the floating-point output tensors (None keeps each base tensor's own).
    `quantization`: given for QLoRA in `dequantized` mode; the quantized linear weights are
    rounded through 4-bit before the adapter is added. `extra_files`: name → text written into
    the output (model card, config.yml). `save_tokenizer`: saved with `save_pretrained`.
    `stop_ids`: end-of-turn tokens added to the generation config's `eos_token_id`, so plain
    `generate()` on the merged model stops where `honer inference` does.
    """
    from safetensors import safe_open

    check_output(output, force)
    lora = load_lora(adapter_dir)
    files = base_weight_files(base_dir)
    quantized = (
        quantized_weight_names(base_dir, list(quantization.skip_modules)) if quantization else set()
    )
    with staged_folder(output, "merging") as staging:
        writer = _ShardWriter(staging, max_shard_size)
        pending = set(lora.pairs) | set(lora.replaced)
        merged = rounded = 0
        for path in files:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    tensor = lora.replaced.get(key)
                    if tensor is None:
                        tensor = f.get_tensor(key)
                    else:
                        pending.discard(key)
                    floating = tensor.is_floating_point()
                    out_dtype = dtype if dtype is not None and floating else tensor.dtype
                    if key in quantized:
                        tensor = round_through_4bit(tensor, quantization)  # type: ignore[arg-type]
                        rounded += 1
                    if key in lora.pairs:
                        delta = lora_delta(lora, key)
                        if delta.shape != tensor.shape:
                            raise ModelError(
                                f"{adapter_dir}: the adapter's `{key}` is {tuple(delta.shape)} but "
                                f"the base's is {tuple(tensor.shape)}: was it trained on this base?"
                            )
                        tensor = tensor.float() + delta
                        if key in lora.magnitudes:
                            tensor = apply_dora(lora, key, tensor)
                        tensor = tensor.to(out_dtype)
                        pending.discard(key)
                        merged += 1
                    else:
                        tensor = tensor.to(out_dtype)
                    writer.add(key, tensor)
                    del tensor
        if pending:
            raise ModelError(
                f"{adapter_dir}: adapter weights match no base tensor, e.g. {sorted(pending)[:3]}: "
                "was it trained on this base model?"
            )
        shards = writer.finish()
        _write_config(base_dir, staging, dtype, lora)
        _write_generation_config(base_dir, staging, stop_ids)
        if save_tokenizer is not None:
            save_tokenizer.save_pretrained(str(staging))
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)
    return MergeResult(output, shards, merged, rounded, writer.total)


def _write_config(base_dir: Path, staging: Path, dtype: Any, lora: LoraWeights) -> None:
    """config.json of the base without quantization, with the output dtype and vocabulary size."""
    config = json.loads((base_dir / "config.json").read_text())
    config.pop("quantization_config", None)
    if dtype is not None:
        name = str(dtype).removeprefix("torch.")
        config["dtype"] = name
        if "torch_dtype" in config:
            config["torch_dtype"] = name
    for key, tensor in lora.replaced.items():
        if key.endswith(("embed_tokens.weight", "lm_head.weight")) and "vocab_size" in config:
            config["vocab_size"] = int(tensor.shape[0])
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_generation_config(base_dir: Path, staging: Path, stop_ids: set[int] | None) -> None:
    """The base's generation_config.json (or one from config.json), stopping at `stop_ids` too."""
    path = base_dir / "generation_config.json"
    if path.is_file():
        gen = json.loads(path.read_text())
    else:
        config = json.loads((base_dir / "config.json").read_text())
        keys = ("bos_token_id", "eos_token_id", "pad_token_id")
        gen = {k: config[k] for k in keys if config.get(k) is not None}
    if stop_ids:
        eos = gen.get("eos_token_id")
        have = eos if isinstance(eos, list) else ([] if eos is None else [eos])
        merged = have + sorted(set(stop_ids) - set(have))
        gen["eos_token_id"] = merged[0] if len(merged) == 1 else merged
    (staging / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
