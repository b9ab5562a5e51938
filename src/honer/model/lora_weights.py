"""A saved LoRA/DoRA adapter read as plain tensors, and the weight change it makes.

`load_lora` reads `adapter_model.safetensors` + `adapter_config.json` into base-weight key →
(A, B) pairs (and DoRA magnitudes, and `modules_to_save` replacements), refusing what a merge
cannot reproduce (rank/alpha patterns, LoRA biases, non-LoRA peft types) with a clear error.
`lora_delta` is `scale · B @ A` (transposed for embeddings and fan-in/fan-out layers);
`apply_dora` rescales a merged weight to the trained magnitudes, as peft's merge does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.errors import ModelError, NotSupportedError

if TYPE_CHECKING:
    import torch

PEFT_PREFIX = "base_model.model."
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
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
