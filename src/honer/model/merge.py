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
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.errors import ModelError, NotSupportedError

if TYPE_CHECKING:
    import torch

PEFT_PREFIX = "base_model.model."
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DEFAULT_MAX_SHARD = 5 * 1024**3
QLORA_BASES = ("dequantized", "original")
DORA_MAGNITUDE = ".lora_magnitude_vector"


@dataclass
class LoraWeights:
    """The adapter, as base-weight key → (A, B) pairs plus full replacements (modules_to_save)."""

    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    embedding_keys: set[str]  # pairs that belong to an nn.Embedding (delta is transposed)
    replaced: dict[str, torch.Tensor]
    scale: float
    fan_in_fan_out: bool
    config: dict[str, Any] = field(default_factory=dict)
    magnitudes: dict[str, torch.Tensor] = field(default_factory=dict)  # DoRA: base key → m


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


def _refuse_unsupported(config: dict[str, Any], where: Path) -> None:
    """Adapter features whose merge is not `W += scale · B @ A` are refused, never mis-merged."""
    if config.get("peft_type", "LORA") != "LORA":
        raise NotSupportedError(f"{where}: a {config.get('peft_type')} adapter is not LoRA.")
    problems = {
        "rank_pattern": "per-module ranks (`rank_pattern`)",
        "alpha_pattern": "per-module alphas (`alpha_pattern`)",
        "lora_bias": "LoRA biases (`lora_bias`)",
        "layer_replication": "layer replication",
        "trainable_token_indices": "trainable token indices",
        "target_parameters": "LoRA on parameters (`target_parameters`)",
        "use_qalora": "QA-LoRA",
    }
    for key, what in problems.items():
        if config.get(key):
            raise NotSupportedError(f"{where}: merging {what} is not supported.")
    if config.get("bias", "none") != "none":
        raise NotSupportedError(f"{where}: merging trained biases (`bias: {config['bias']}`).")


def load_lora(adapter_dir: Path) -> LoraWeights:
    """Read the adapter's config and weights, keyed by the base-model tensor they change."""
    from safetensors.torch import load_file

    cfg_path = adapter_dir / ADAPTER_CONFIG
    weights_path = adapter_dir / ADAPTER_WEIGHTS
    if not cfg_path.is_file() or not weights_path.is_file():
        raise ModelError(
            f"--lora-model-dir: `{adapter_dir}` holds no adapter ({ADAPTER_CONFIG} and "
            f"{ADAPTER_WEIGHTS}); train one with `adapter: lora` or point at its folder."
        )
    config = json.loads(cfg_path.read_text())
    _refuse_unsupported(config, cfg_path)
    r, alpha = config["r"], config["lora_alpha"]
    scale = alpha / (r**0.5) if config.get("use_rslora") else alpha / r
    pairs: dict[str, dict[str, Any]] = {}
    embedding_keys: set[str] = set()
    replaced: dict[str, Any] = {}
    magnitudes: dict[str, Any] = {}
    for key, tensor in load_file(str(weights_path)).items():
        name = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
        if name.endswith(DORA_MAGNITUDE):
            magnitudes[name[: -len(DORA_MAGNITUDE)] + ".weight"] = tensor
            continue
        for marker, part, emb in (
            (".lora_A.weight", "A", False),
            (".lora_B.weight", "B", False),
            (".lora_embedding_A", "A", True),
            (".lora_embedding_B", "B", True),
        ):
            if name.endswith(marker):
                base_key = name[: -len(marker)] + ".weight"
                pairs.setdefault(base_key, {})[part] = tensor
                if emb:
                    embedding_keys.add(base_key)
                break
        else:  # a module trained in full (modules_to_save): its weights replace the base's
            replaced[name.replace(".modules_to_save.default", "")] = tensor
    broken = [k for k, v in pairs.items() if set(v) != {"A", "B"}]
    if broken:
        raise ModelError(f"{weights_path}: LoRA A/B pair incomplete for {broken[:3]}.")
    _check_dora(config, pairs, embedding_keys, magnitudes, weights_path)
    return LoraWeights(
        pairs={k: (v["A"], v["B"]) for k, v in pairs.items()},
        embedding_keys=embedding_keys,
        replaced=replaced,
        scale=scale,
        fan_in_fan_out=bool(config.get("fan_in_fan_out")),
        config=config,
        magnitudes=magnitudes,
    )


def _check_dora(
    config: dict[str, Any],
    pairs: dict[str, Any],
    embedding_keys: set[str],
    magnitudes: dict[str, Any],
    weights_path: Path,
) -> None:
    """A DoRA adapter has one magnitude vector per adapted linear weight, and nothing else."""
    if not config.get("use_dora"):
        if magnitudes:
            raise ModelError(
                f"{weights_path}: holds DoRA magnitude vectors but its config has no "
                "`use_dora: true`; the adapter folder is inconsistent."
            )
        return
    if embedding_keys:
        raise NotSupportedError(
            f"{weights_path}: merging DoRA on embedding layers "
            f"({sorted(embedding_keys)[:2]}) is not supported; merge it with peft's "
            "`merge_and_unload`, or train DoRA on linear layers only."
        )
    missing = sorted(set(pairs) - set(magnitudes))
    stray = sorted(set(magnitudes) - set(pairs))
    if missing or stray:
        raise ModelError(
            f"{weights_path}: DoRA magnitude vectors do not match the LoRA pairs "
            f"(missing for {missing[:3]}, without a pair: {stray[:3]}); was the adapter saved "
            "whole?"
        )


def apply_dora(lora: LoraWeights, key: str, merged: torch.Tensor) -> torch.Tensor:
    """Rescale `W + ΔW` (float32, base layout) to the trained magnitudes, as peft's DoRA merge:
    `W' · m / ‖W'‖`, one norm per output feature (per row; per column when `fan_in_fan_out`)."""
    magnitude = lora.magnitudes[key].float()
    dim = 0 if lora.fan_in_fan_out else 1
    norm = merged.norm(p=2, dim=dim)
    if magnitude.shape != norm.shape:
        raise ModelError(
            f"DoRA magnitude of `{key}` is {tuple(magnitude.shape)} but the weight has "
            f"{norm.numel()} output features: was the adapter trained on this base?"
        )
    factor = (magnitude / norm).unsqueeze(dim)
    return merged * factor


def lora_delta(lora: LoraWeights, key: str) -> torch.Tensor:
    """scale · B @ A for one weight, in float32 and in the base weight's layout."""
    a, b = lora.pairs[key]
    if key in lora.embedding_keys:  # peft Embedding: A is (r, vocab), B is (dim, r)
        return (b.float() @ a.float()).T * lora.scale
    delta = (b.float() @ a.float()) * lora.scale
    return delta.T if lora.fan_in_fan_out else delta


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
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.merging-", dir=output.parent))
    try:
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
        _publish(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
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


def _publish(staging: Path, output: Path) -> None:
    """Rename the staged folder into place; an old output (allowed by --force) goes only then."""
    if output.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.replace(output, trash / output.name)
        os.replace(staging, output)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, output)


# --- from a config: the `honer merge-lora` command's work --------------------------------------


def _final_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of each loss-like metric in the run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    found: dict[str, float] = {}
    if not path.is_file():
        return found
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        for key, value in row.items():
            if isinstance(value, (int, float)) and ("loss" in key or "perplexity" in key):
                found[key] = float(value)
        if "step" in row:
            found["step"] = float(row["step"])
    return found


def model_card(
    cfg: Any, adapter_dir: Path | None, config_yaml: str, notes: list[str], merged: bool
) -> str:
    """README.md for a merged model or an adapter: base, datasets, config and final metrics."""
    kind = "merged model" if merged else f"{cfg.adapter or 'full'} fine-tune"
    lines = [
        "---",
        f"base_model: {cfg.base_model}",
        # An adapter folder is a peft artefact; a merged model or a full fine-tune loads with
        # transformers alone.
        "library_name: peft" if cfg.adapter and not merged else "library_name: transformers",
        "tags: [honer]",
        "---",
        "",
        f"# {Path(cfg.output_dir).name} ({kind})",
        "",
        f"Fine-tuned from `{cfg.base_model}` with honer"
        + (
            f" (adapter: `{cfg.adapter}`, r={cfg.lora_r}, alpha={cfg.lora_alpha})."
            if cfg.adapter
            else "."
        ),
        "",
        "## Datasets",
        "",
        *[f"- `{ds.path}` (type `{ds.type}`)" for ds in cfg.datasets],
        "",
    ]
    metrics = _final_metrics(adapter_dir or Path(cfg.output_dir))
    if metrics:
        lines += ["## Metrics (last logged values)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
        lines.append("")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += ["## Config", "", "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


QLORA_NOTE = {
    "dequantized": "QLoRA: the adapter was merged into the base weights rounded through the same "
    "4-bit quantization it was trained against, so this model reproduces the trained QLoRA model "
    "(up to float rounding), including the quantization error of the frozen weights.",
    "original": "QLoRA: the adapter was merged into the original full-precision weights, which it "
    "was not trained against; expect logits to differ slightly from the trained QLoRA model "
    "(the 4-bit quantization error of the base, measured in docs/inference.md).",
}


DORA_NOTE = (
    "DoRA: each adapted weight is `W + scale · B @ A` rescaled, row by row, to the trained "
    "magnitude vector (as peft's `merge_and_unload` does), so the merged model reproduces the "
    "trained DoRA model."
)


def training_dtype(cfg: Any) -> torch.dtype:
    """The dtype the adapter was trained against (the merged model's default): float32 unless
    the config trains in bf16/fp16. A bf16/fp16 config merged on a machine without that
    precision was trained elsewhere, in that precision."""
    import torch

    from honer.model.load import model_dtype

    try:
        return model_dtype(cfg)
    except Exception:
        return torch.bfloat16 if cfg.bf16 is True else torch.float16


def merge_from_config(
    cfg: Any,
    lora_model_dir: Path | None,
    output: Path | None,
    *,
    qlora_base: str = "dequantized",
    dtype: torch.dtype | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD,
    force: bool = False,
) -> MergeResult:
    """Merge the config's adapter (`--lora-model-dir`, `lora_model_dir`, or output_dir) into its base.

    The output (default `output_dir/merged`) holds safetensors shards, config, generation config,
    tokenizer, the run's config.yml and a model card.
    """
    from honer.model.load import load_tokenizer

    if qlora_base not in QLORA_BASES:
        raise ModelError(f"--qlora-base: `{qlora_base}` is not one of {', '.join(QLORA_BASES)}.")
    adapter_dir = Path(lora_model_dir or cfg.lora_model_dir or cfg.output_dir)
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        flag = "--lora-model-dir" if lora_model_dir else "output_dir"
        raise ModelError(
            f"{flag}: `{adapter_dir}` holds no {ADAPTER_CONFIG}: nothing to merge (a full "
            "fine-tune is already a standalone model)."
        )
    output = Path(output or Path(cfg.output_dir) / "merged")
    check_output(output, force)
    from honer.model.gguf import is_gguf, loadable_base

    base_dir = (
        Path(loadable_base(cfg))
        if is_gguf(cfg)
        else resolve_base_dir(cfg.base_model, cfg.revision_of_model)
    )
    quantized = bool(cfg.load_in_4bit or cfg.adapter == "qlora")
    if cfg.load_in_8bit and not quantized:
        raise NotSupportedError(
            "load_in_8bit: merging an adapter trained on an 8-bit base is not supported; merge "
            "into the original weights by loading the config without `load_in_8bit`."
        )
    notes = []
    if json.loads((adapter_dir / ADAPTER_CONFIG).read_text()).get("use_dora"):
        notes.append(DORA_NOTE)
    quantization = None
    if quantized:
        from honer.config.schema import BnbConfig

        bnb = cfg.bnb_config_kwargs or BnbConfig()
        notes.append(QLORA_NOTE[qlora_base])
        if qlora_base == "dequantized":
            quantization = Quantization(
                quant_type=bnb.bnb_4bit_quant_type,
                double_quant=bnb.bnb_4bit_use_double_quant,
                load_dtype=training_dtype(cfg),
            )
    config_file = adapter_dir / "config.yml"
    if config_file.is_file():
        config_yaml = config_file.read_text()
    else:
        from honer.train.trainer import resolved_config_yaml

        config_yaml = resolved_config_yaml(cfg)
    card = model_card(cfg, adapter_dir, config_yaml, notes, merged=True)
    from honer.infer.prompt import PromptFormatter  # the one definition of where answers stop

    tokenizer = load_tokenizer(cfg)
    return merge_lora(
        base_dir,
        adapter_dir,
        output,
        dtype=dtype or training_dtype(cfg),
        quantization=quantization,
        max_shard_size=max_shard_size,
        force=force,
        extra_files={"README.md": card, "config.yml": config_yaml},
        save_tokenizer=tokenizer,
        stop_ids=PromptFormatter(cfg, tokenizer).stop_ids,
    )
