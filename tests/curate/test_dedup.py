"""dedup: planted exact and near duplicates removed, distinct texts kept, clusters reported."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from honer.curate.dedup import dedup, load_embedder, shingles
from honer.errors import DataError
from tests.curate.helpers import read_jsonl

VOCAB = [f"w{i}" for i in range(3000)]


def text(rng: random.Random, n: int = 100) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def one_word_changed(original: str, rng: random.Random) -> str:
    words = original.split()
    at = rng.randrange(len(words))
    words[at] = rng.choice([w for w in VOCAB if w != words[at]])
    return " ".join(words)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, list[str]]:
    """60 distinct 100-word texts, then 10 exact copies (case/spacing changed) and 10 copies
    with one word changed; the duplicates come after their originals, interleaved."""
    rng = random.Random(7)
    originals = [text(rng) for _ in range(60)]
    rows = [{"instruction": f"Q{i}", "output": t} for i, t in enumerate(originals)]
    for i in range(10):
        rows.insert(20 + 4 * i, {"instruction": f"q{i}", "output": "  " + originals[i].upper()})
        rows.append(
            {"instruction": f"Q{10 + i}", "output": one_word_changed(originals[10 + i], rng)}
        )
    return write(tmp_path / "in.jsonl", rows), originals


def test_exact_and_near_duplicates_removed_distinct_kept(tmp_path: Path, planted) -> None:
    source, originals = planted
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    result = dedup(source, out, rejects)
    assert [r["output"] for r in read_jsonl(out)] == originals
    assert dict(result.tally.rejected) == {"exact duplicate": 10, "near duplicate": 10}
    removed = read_jsonl(rejects)
    exact = [r for r in removed if r["reason"] == "exact duplicate"]
    assert [r["duplicate_of"] for r in exact] == [f"{source}:{i + 1}" for i in range(10)]
    near = [r for r in removed if r["reason"] == "near duplicate"]
    assert [r["duplicate_of"] for r in near] == [f"{source}:{11 + i}" for i in range(10)]
    assert all(0.8 <= r["similarity"] < 1 for r in near)
    assert len(result.clusters) == 20 and set(result.clusters.values()) == {1}


def test_exact_only_and_field_choice(tmp_path: Path, planted) -> None:
    source, _ = planted
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    result = dedup(source, out, rejects, near=False)
    assert dict(result.tally.rejected) == {"exact duplicate": 10}
    result = dedup(source, out, rejects, fields=["instruction"], near=False)
    # Only instructions compared: the copies' "q3" normalises like "Q3", and the one-word
    # variants kept their original's instruction.
    assert dict(result.tally.rejected) == {"exact duplicate": 20}
    with pytest.raises(DataError, match="no field `answer`"):
        dedup(source, out, rejects, fields=["answer"])


def test_texts_a_third_different_are_kept(tmp_path: Path) -> None:
    rng = random.Random(3)
    base = text(rng).split()
    variant = list(base)
    for at in range(0, 100, 3):
        variant[at] = "changed"
    source = write(tmp_path / "in.jsonl", [{"text": " ".join(base)}, {"text": " ".join(variant)}])
    result = dedup(source, tmp_path / "out.jsonl", tmp_path / "r.jsonl")
    assert result.tally.kept == 2


def test_source_field_is_ignored_by_default(tmp_path: Path) -> None:
    source = write(
        tmp_path / "in.jsonl",
        [{"text": "Same words.", "source": "a.html"}, {"text": "same  words.", "source": "b.html"}],
    )
    result = dedup(source, tmp_path / "out.jsonl", tmp_path / "r.jsonl", near=False)
    assert result.tally.kept == 1


def test_shingles_of_short_and_long_texts() -> None:
    assert shingles("Hello,  World!") == {b"hello world"}
    assert shingles("a b c d e f") == {b"a b c d e", b"b c d e f"}
    assert shingles("...") == set()


def test_semantic_pass_with_an_embedder(tmp_path: Path) -> None:
    vectors = {"cat": [1.0, 0.0], "kitten": [0.99, 0.141], "car": [0.0, 1.0]}

    def embed(texts: list[str]) -> np.ndarray:
        v = np.array([vectors[t] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    source = write(tmp_path / "in.jsonl", [{"text": t} for t in ("cat", "kitten", "car")])
    out, rejects = tmp_path / "out.jsonl", tmp_path / "r.jsonl"
    result = dedup(source, out, rejects, embed=embed, semantic_threshold=0.95)
    assert [r["text"] for r in read_jsonl(out)] == ["cat", "car"]
    assert read_jsonl(rejects) == [
        {
            "source": f"{source}:2",
            "reason": "semantic duplicate",
            "duplicate_of": f"{source}:1",
            "similarity": 0.99,
            "row": {"text": "kitten"},
        }
    ]
    assert dict(result.tally.rejected) == {"semantic duplicate": 1}


def test_semantic_model_must_be_local(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a local folder. Semantic dedup needs an embedding"):
        load_embedder(tmp_path / "sentence-transformers/all-MiniLM-L6-v2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no model"):
        load_embedder(tmp_path / "empty")
    st = tmp_path / "st"
    st.mkdir()
    (st / "modules.json").write_text("[]")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="sentence-transformers package is not installed"):
            load_embedder(st)


def test_semantic_with_a_local_transformers_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = write(
        tmp_path / "in.jsonl",
        [{"text": "the cat sat"}, {"text": "a dog ran far away"}, {"text": "the cat sat"}],
    )
    result = dedup(
        source,
        tmp_path / "out.jsonl",
        tmp_path / "r.jsonl",
        near=False,
        embed=load_embedder(tiny_model_dir),
        semantic_threshold=0.9999,
    )
    # Exact copies are caught first; the embedder only sees distinct texts.
    assert dict(result.tally.rejected) == {"exact duplicate": 1}
    assert result.tally.kept == 2
