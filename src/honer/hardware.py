"""What this machine's accelerator can do, asked of torch at call time.

One place for the questions that model loading, training arguments and the multi-process
set-up all ask, so that they never disagree and a test can stand in for a GPU (or for its
absence) by patching one module. torch is imported inside each function: importing this
module stays cheap for the CLI.
"""

from __future__ import annotations


def cuda_available() -> bool:
    """A CUDA device is visible to torch."""
    import torch

    return torch.cuda.is_available()


def bf16_supported() -> bool:
    """bfloat16 mixed precision runs natively (a CUDA GPU of Ampere or newer)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def tf32_supported() -> bool:
    """TF32 matmuls exist (compute capability 8.0 or newer)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
