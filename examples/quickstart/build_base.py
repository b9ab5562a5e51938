"""Create the quickstart's base model offline: a tiny random-init Llama and its tokenizer."""

from __future__ import annotations

import sys
from pathlib import Path

from honer.testing import tiny_model

if __name__ == "__main__":
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "tiny-base")
    print(f"base model ready: {tiny_model(dest, hidden_size=128, num_layers=4, num_heads=4)}")
