"""Out-of-memory: recognise it, whatever raised it, and say what to change.

CUDA raises `torch.OutOfMemoryError`; the CPU allocator raises a plain `RuntimeError` whose text
names `DefaultCPUAllocator`. Both become one `OutOfMemoryError` that lists the config keys that
lower memory, instead of a traceback from deep inside torch.
"""

from __future__ import annotations

from honer.errors import OutOfMemoryError


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA OOM, or the CPU allocator failing (`DefaultCPUAllocator: can't allocate memory`)."""
    if type(err).__name__ == "OutOfMemoryError" and type(err).__module__.startswith("torch"):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "out of memory" in text.lower() or "DefaultCPUAllocator" in text
    )


def out_of_memory_error(doing: str) -> OutOfMemoryError:
    """The user-facing error for an OOM that happened while `doing` something."""
    return OutOfMemoryError(
        f"out of memory while {doing}: lower `micro_batch_size` (raise "
        "`gradient_accumulation_steps` to keep the effective batch) or `sequence_len`, set "
        "`gradient_checkpointing: true`, or train a 4-bit base with `adapter: qlora` and "
        "`load_in_4bit: true`."
    )
