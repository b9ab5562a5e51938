"""Third-party output a user cannot act on, silenced before any command runs.

Each entry names what it hides and why it is noise for a honer user; anything a user can act on
is left alone (or said once, in honer's own words, where it happens). Only the CLI calls this:
a library user's logging and warning settings are theirs. (transformers' own loading/saving
progress bars are switched off where honer loads a model: `honer.model.load`.)
"""

from __future__ import annotations

import logging
import warnings


def quiet_third_party() -> None:
    # bitsandbytes on CPUs with AVX512-BF16 tries an optional kernel package at import time and
    # logs "Failed to load CPU gemm_4bit_forward from kernels-community … pip install kernels"
    # for every run that imports it (peft imports it even for plain LoRA). honer never uses that
    # kernel: training keeps 4-bit weights in the plain layout (honer.model.kbit).
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # transformers' own deprecation of an attribute peft reads; nothing for a user to change.
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    # DeepSpeed, when installed, is imported by transformers for every run and warns "Setting
    # accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it." on
    # machines without a GPU. honer reports the device it trains on itself; other DeepSpeed
    # messages are kept.
    logging.getLogger("DeepSpeed").addFilter(_DropMessage("Setting accelerator to CPU"))


class _DropMessage(logging.Filter):
    """Drop log records whose message contains `text`; let every other record through."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()
