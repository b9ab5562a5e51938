"""A user-style scoring function for the `callable` check test."""


def word_overlap(output: str, expected: str | None) -> float:
    want = set((expected or "").split())
    return len(want & set(output.split())) / len(want) if want else 0.0
