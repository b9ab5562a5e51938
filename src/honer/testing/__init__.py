"""Helpers for tests, benchmarks and the offline quickstart (tiny local models, no downloads)."""

from honer.testing.tiny_model import tiny_model

__all__ = ["tiny_model"]
