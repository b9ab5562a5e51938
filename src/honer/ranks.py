"""Which process this is in a multi-process run, from the launcher's environment (torch-free).

torchrun and `accelerate launch` set WORLD_SIZE and RANK; a plain run has neither. Config
checks, the CLI and the trainer all ask here, so none of them needs torch to know.
"""

from __future__ import annotations

import os


def world_size() -> int:
    """Processes in this run (set by torchrun / accelerate launch; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 when not launched by torchrun / accelerate)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0 writes every output, log line and report; the others only compute."""
    return rank() == 0
