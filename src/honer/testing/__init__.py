"""Helpers for tests and benchmarks (tiny local models, no downloads)."""

from honer.testing.tiny_model import tiny_model

__all__ = ["tiny_model"]
