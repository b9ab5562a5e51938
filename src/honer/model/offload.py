"""Activation offloading: the tensors autograd saves for the backward pass, kept off the GPU.

  gradient_checkpointing: offload        checkpointing on, and what it keeps in CPU memory
  gradient_checkpointing: offload_disk   checkpointing on, and what it keeps in files
  activation_offloading: true | legacy   the tensors saved for backward in CPU memory
  activation_offloading: disk            the tensors saved for backward in files

(Axolotl: `gradient_checkpointing: offload` means checkpointing + `activation_offloading: true`,
`offload_disk` checkpointing + `activation_offloading: disk`; honer reads them the same way.)

How: a `torch.autograd.graph.saved_tensors_hooks` pair is active while the model's forward runs
(pre/post hooks on the outermost module, so no trainer code is involved). Every tensor autograd
saves in that window, except parameters, tensors under `min_bytes` and tensor subclasses, is
packed off the device and brought back when the backward pass needs it. With checkpointing on,
the tensors saved outside the checkpointed layers are essentially each layer's input, so those
are what moves; without it, every activation moves. Evaluation and generation run without
gradients, save nothing, and so cost nothing.

CPU memory: a pinned host copy per tensor, copied synchronously (what
`torch.autograd.graph.save_on_cpu(pin_memory=True)` does, plus the parameter filter). Axolotl's
`true` overlaps the copies on a second CUDA stream (TRL's offloader) and `legacy` is its
synchronous path; in honer both are the synchronous one: the same memory saved, possibly slower.
Disk: one file per tensor in a temporary folder (`$TMPDIR`; point it at a real disk, not a RAM
tmpfs), deleted as soon as autograd frees the saved tensor.

On a CPU-only run the activations are in CPU memory already: CPU offloading is skipped with a
notice, and the run is exactly the plain one. Disk offloading works on CPU too. With `fsdp` or
`deepspeed` offloading is refused (their gathered weights would be copied out and back).

The checkpointing switches these keys imply (`checkpointing`, `use_reentrant`) live here too, so
the training arguments and the k-bit preparation read them the same way.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from honer import hardware
from honer.config.schema import Config
from honer.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

Target = Literal["cpu", "disk"]


def _notice(message: str) -> None:
    """One line on stderr: a fallback the user should know about, never an error."""
    print(f"notice: {message}", file=sys.stderr)


def offload_setting(cfg: Config) -> tuple[str, Any] | None:
    """(key, value) of the setting that asks for offloading; `activation_offloading` wins."""
    if cfg.activation_offloading:
        return "activation_offloading", cfg.activation_offloading
    if cfg.gradient_checkpointing in ("offload", "offload_disk"):
        return "gradient_checkpointing", cfg.gradient_checkpointing
    return None


def offload_target(cfg: Config) -> Target | None:
    """Where saved tensors go: `cpu`, `disk`, or None (no offloading)."""
    setting = offload_setting(cfg)
    if setting is None:
        return None
    return "disk" if setting[1] in ("disk", "offload_disk") else "cpu"


def checkpointing(cfg: Config) -> bool:
    """Activation checkpointing is on: `true`, `offload` or `offload_disk`."""
    return bool(cfg.gradient_checkpointing)


def use_reentrant(cfg: Config) -> bool:
    """`gradient_checkpointing_kwargs.use_reentrant`; non-reentrant unless asked (it works with
    frozen embeddings and LoRA without inputs that require gradients)."""
    kwargs = cfg.gradient_checkpointing_kwargs
    return bool(kwargs.use_reentrant) if kwargs is not None else False


class _OnHost:
    """A saved tensor's copy in (pinned) CPU memory, and the device it goes back to."""

    def __init__(self, tensor: torch.Tensor, pin_memory: bool) -> None:
        import torch

        self.device = tensor.device
        self.copy = torch.empty(
            tensor.size(), dtype=tensor.dtype, layout=tensor.layout, pin_memory=pin_memory
        )
        self.copy.copy_(tensor)

    def load(self) -> torch.Tensor:
        return self.copy.to(self.device, non_blocking=True)


class _OnDisk:
    """A saved tensor in a file, deleted when autograd frees the saved tensor (this object)."""

    def __init__(self, tensor: torch.Tensor, folder: Path) -> None:
        import torch

        self.device = tensor.device
        self.path = folder / f"{uuid.uuid4().hex}.pt"
        data = tensor.detach()
        if data.device.type != "cpu":
            data = data.cpu()
        elif data.untyped_storage().nbytes() != data.numel() * data.element_size():
            data = data.clone()  # a view: torch.save would write the whole underlying storage
        torch.save(data, self.path)

    def load(self) -> torch.Tensor:
        import torch

        return torch.load(self.path, map_location=self.device, weights_only=True)

    def __del__(self) -> None:
        # Also at interpreter exit, when module globals may already be gone.
        with contextlib.suppress(Exception):
            self.path.unlink(missing_ok=True)


class SavedTensorOffload:
    """The saved-tensor hooks: pack tensors of `devices` to `target`, unpack them back.

    Used as a context manager around a forward pass (re-entrant: only the outermost enter and
    exit count). `offloaded` counts the tensors packed, for tests and reports.
    """

    def __init__(
        self,
        target: Target,
        devices: tuple[str, ...] = ("cuda",),
        min_bytes: int = 1024,
        pin_memory: bool | None = None,
        folder: Path | None = None,
    ) -> None:
        import torch

        self.target = target
        self.devices = devices
        self.min_bytes = min_bytes
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.folder: Path | None = folder
        self.offloaded = 0
        self._param_storages: set[int] = set()
        self._depth = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def watch_parameters(self, model: nn.Module) -> None:
        """Remember the storages of `model`'s parameters: a weight saved for backward (often as
        a transposed view) stays where it is."""
        storages = set()
        for param in model.parameters():
            try:
                storages.add(param.untyped_storage().data_ptr())
            except (RuntimeError, NotImplementedError):
                continue
        self._param_storages = storages

    def _folder(self) -> Path:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="honer-activations-"))
            weakref.finalize(self, shutil.rmtree, self.folder, True)
        return self.folder

    def _keeps(self, tensor: torch.Tensor) -> bool:
        """Tensors that stay where they are: parameters, small ones, other devices, subclasses."""
        import torch

        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided:
            return True
        if tensor.device.type not in self.devices:
            return True
        if tensor.numel() * tensor.element_size() < self.min_bytes:
            return True
        try:
            return tensor.untyped_storage().data_ptr() in self._param_storages
        except (RuntimeError, NotImplementedError):
            return True

    def _pack(self, tensor: torch.Tensor) -> Any:
        if self._keeps(tensor):
            return tensor
        self.offloaded += 1
        if self.target == "disk":
            return _OnDisk(tensor, self._folder())
        return _OnHost(tensor, self.pin_memory)

    @staticmethod
    def _unpack(packed: Any) -> torch.Tensor:
        if isinstance(packed, _OnHost | _OnDisk):
            return packed.load()
        return packed

    def __enter__(self) -> SavedTensorOffload:
        self._depth += 1
        if self._depth == 1:
            self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._hooks.__exit__(*exc)


def install(cfg: Config, model: nn.Module) -> SavedTensorOffload | None:
    """Offload `model`'s saved tensors during every forward, as the config asks.

    Returns the hooks (None when nothing is offloaded). CPU offloading on a machine without a
    GPU is a notice and nothing else: the activations already live in CPU memory.
    """
    target = offload_target(cfg)
    if target is None:
        return None
    key, value = offload_setting(cfg) or ("", "")
    if cfg.deepspeed or cfg.fsdp_words:
        # Sharded engines gather weights into fresh storages each forward: the parameter filter
        # would not know them, and every gathered weight would be copied out and back.
        raise ConfigError(
            [
                (
                    key,
                    "activation offloading runs with single-process or DDP training, not with "
                    "`fsdp`/`deepspeed` (use `fsdp_config.offload_params` or `zero3_offload` "
                    "to offload there).",
                )
            ]
        )
    cuda = hardware.cuda_available()
    if target == "cpu" and not cuda:
        _notice(
            f"{key}: {str(value).lower()}: activations are already in CPU memory on this CPU-only "
            "machine; training runs unchanged."
        )
        return None
    offload = SavedTensorOffload(target, devices=("cuda",) if cuda else ("cpu",))

    def begin(module: nn.Module, args: Any) -> None:
        if offload._depth == 0:
            offload.watch_parameters(module)
        offload.__enter__()

    def end(module: nn.Module, args: Any, output: Any) -> None:
        offload.__exit__(None, None, None)

    model.register_forward_pre_hook(begin)
    model.register_forward_hook(end, always_call=True)
    return offload
