"""Where honer keeps what outlives a run: `cache_dir()` (the LR database, converted GGUF bases).

`$HONER_CACHE_DIR`, else `$XDG_CACHE_HOME/honer`, else `~/.cache/honer`. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """honer's cache folder (not created here)."""
    if os.environ.get("HONER_CACHE_DIR"):
        return Path(os.environ["HONER_CACHE_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "honer"
