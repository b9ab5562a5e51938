"""GGUF base models: converted once into a cached safetensors folder, then loaded like any other.

transformers reads GGUF files (through the `gguf` package) and de-quantizes them to float, but the
model it returns carries a GGUF quantizer marker: `save_pretrained` refuses it, and every load
de-quantizes again (~25 s for a 135M model). So honer converts a GGUF once into
`cache_dir()/gguf/<sha256 of the file, 16 hex>/` (weights in float32, config, tokenizer with its
chat template) and from then on every command (train, evaluate, inference, merge-lora, lr,
estimate) loads that folder. The folder is written to a temporary sibling and renamed into place,
so an interrupted conversion never leaves a half-written cache behind.

`base_model: path/to/model.gguf`, or `base_model: FOLDER_OR_HUB_REPO` with `gguf_file: NAME`.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from honer.config.schema import Config
from honer.errors import ModelError

COMPLETE = ".honer-gguf-complete"  # written last: a folder without it is not a finished cache


def is_gguf(cfg: Config) -> bool:
    return cfg.gguf_file is not None or str(cfg.base_model).lower().endswith(".gguf")


def gguf_path(cfg: Config) -> Path:
    """The local GGUF file the config names (downloaded from the hub when it is a repo file)."""
    if cfg.gguf_file is None:
        path = Path(cfg.base_model)
        if not path.is_file():
            raise ModelError(f"base_model: `{path}` is not a file (a .gguf base must exist).")
        return path
    folder = Path(cfg.base_model)
    if folder.is_dir():
        path = folder / cfg.gguf_file
        if not path.is_file():
            found = sorted(p.name for p in folder.glob("*.gguf"))
            raise ModelError(
                f"gguf_file: `{cfg.gguf_file}` is not in `{folder}` (GGUF files there: "
                f"{', '.join(found) or 'none'})."
            )
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(cfg.base_model, cfg.gguf_file, revision=cfg.revision_of_model))
    except Exception as err:  # offline, unknown repo or file, gated repo
        raise ModelError(
            f"gguf_file: cannot get `{cfg.gguf_file}` from the hub repository "
            f"`{cfg.base_model}`: {err}"
        ) from None


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def describe(path: Path) -> tuple[str, str]:
    """(architecture, quantization type) read from the GGUF header, without loading tensors."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch_field = reader.fields.get("general.architecture")
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field else "unknown"
    kind_field = reader.fields.get("general.file_type")
    kind = "unknown"
    if kind_field is not None:
        code = int(kind_field.parts[kind_field.data[0]][0])
        try:
            kind = gguf.LlamaFileType(code).name.removeprefix("MOSTLY_")
        except ValueError:
            kind = f"type {code}"
    return arch, kind


def _supported() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))


def _require_gguf_package() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            "base_model: reading a GGUF file needs the `gguf` package, which is not installed: "
            "pip install gguf"
        )


def _convert(path: Path, dest: Path, final: Path, trust_remote_code: bool) -> None:
    """De-quantize the GGUF with transformers and save a plain safetensors folder at `dest`
    (a staging folder renamed to `final` afterwards)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)  # fails fast
        arch, kind = describe(path)
        print(
            f"converting the GGUF base {name} ({arch}, {kind}) once into {final} (later runs "
            "load it from there)",
            file=sys.stderr,
        )
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, trust_remote_code=trust_remote_code
        )
    except ValueError as err:
        if "not supported" in str(err).lower():
            raise ModelError(
                f"base_model: {err} transformers reads these GGUF architectures: "
                f"{', '.join(_supported())}; convert the model to a safetensors folder instead."
            ) from None
        raise ModelError(f"base_model: cannot read `{path}`: {err}") from None
    # The de-quantized model still carries transformers' GGUF quantizer marker, which makes
    # save_pretrained refuse; the weights themselves are plain float tensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    (dest / "source.txt").write_text(f"converted by honer from {path.resolve()}\n")
    (dest / COMPLETE).write_text("")


def converted_base(cfg: Config) -> Path:
    """The cached safetensors folder of the config's GGUF base, converting it on first use."""
    _require_gguf_package()
    path = gguf_path(cfg)
    from honer.paths import cache_dir

    dest = cache_dir() / "gguf" / content_hash(path)
    if (dest / COMPLETE).is_file():
        return dest
    from honer.atomic import staged_folder

    with staged_folder(dest, "converting") as staging:
        _convert(path, staging, dest, cfg.trust_remote_code)
    return dest


def loadable_base(cfg: Config) -> str:
    """What transformers loads for `base_model`: the converted folder for a GGUF, else the name."""
    return str(converted_base(cfg)) if is_gguf(cfg) else cfg.base_model
