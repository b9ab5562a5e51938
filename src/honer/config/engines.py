"""What the config says about sharding engines, for the checks and the trainer alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from honer.config.schema import Config

# DeepSpeed configs shipped with honer (`deepspeed: zero2`), in honer/configs/deepspeed/.
DEEPSPEED_PRESETS = ("zero1", "zero2", "zero3", "zero3_offload")


def fsdp_version(cfg: Config) -> int:
    """`fsdp_config.version`, or Axolotl's top-level `fsdp_version` (2 unless set)."""
    if cfg.fsdp_version is not None:
        return cfg.fsdp_version
    return cfg.fsdp_config.version if cfg.fsdp_config is not None else 2
