"""Errors a user can act on.

Every error carries *where* the problem is (a config key path, or a file and line/row) so the CLI
can print one or two lines and exit 2 instead of a traceback.
"""

from __future__ import annotations


class HonerError(Exception):
    """Base class: an error the CLI reports as a short message (exit code 2)."""

    exit_code = 2


class ConfigError(HonerError):
    """Invalid configuration. `problems` holds (key_path, message) pairs; all are reported."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{where}{path or '<root>'}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))

    @property
    def key_paths(self) -> list[str]:
        return [p for p, _ in self.problems]


class DataError(HonerError):
    """Bad data: names the dataset/file and the line or row, and what to do."""


class ModelError(HonerError):
    """A model, tokenizer or adapter cannot be loaded or used as configured."""


class NotSupportedError(HonerError):
    """An option we parse but cannot honour (yet) in the requested command."""


class OutOfMemoryError(HonerError):
    """The device (GPU or CPU RAM) ran out of memory; the message lists the keys that help."""


# Out-of-memory: CUDA raises `torch.OutOfMemoryError`; the CPU allocator raises a plain
# `RuntimeError` naming `DefaultCPUAllocator`. Both become one `OutOfMemoryError` that lists the
# config keys that lower memory, instead of a traceback from deep inside torch.


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
