"""`honer data dedup`: remove exact, near and (optionally) semantic duplicates; keep the first.

Three passes of increasing cost, each only over the rows the previous one kept:

1. exact: a 128-bit hash of the chosen fields after normalisation (Unicode NFKC, case-folded,
   runs of whitespace as one space), so rows differing only in case or spacing are duplicates;
2. near: MinHash (datasketch, 128 permutations) over word 5-gram shingles, banded for LSH. A
   row whose estimated Jaccard similarity to an earlier kept row reaches `threshold` is a near
   duplicate; LSH only proposes candidates, each is confirmed against the kept row's signature.
   Changing one word of a 100-word text leaves about 0.9 of its 5-grams shared, above the
   default 0.8;
3. semantic (opt-in): cosine similarity of sentence embeddings from a *local* model folder.

Removed rows go to the rejects file with the place of the row they duplicate, and the summary
counts clusters (a kept row with the duplicates removed in its favour).

Memory grows with the rows kept (the index must remember them), measured on 50-word rows:
about 0.2 KB a row for exact deduplication, 1.6 KB a row with near-duplicate signatures and
band tables; semantic adds one float32 embedding a row. Input and output are streamed.
`duplicate_of` names the first occurrence, which a later pass (semantic) may itself remove.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.curate.ingest.output import JsonlWriter
from honer.data.readers.lines import Meter
from honer.data.readers.records import Record, Tally
from honer.data.readers.rowfiles import iter_row_file
from honer.errors import DataError, HonerError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_THRESHOLD = 0.8
DEFAULT_SEMANTIC_THRESHOLD = 0.95
NUM_PERM = 128
SHINGLE_WORDS = 5
EMBED_BATCH = 64
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
Embedder = Callable[[list[str]], "np.ndarray"]


def normalise(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _canonical(value: Any) -> str:
    """A stable text form of a field's value with every string normalised."""
    if isinstance(value, str):
        return normalise(value)
    if isinstance(value, list):
        return "[" + "\x1e".join(map(_canonical, value)) + "]"
    if isinstance(value, dict):
        return "{" + "\x1e".join(f"{k}\x1f{_canonical(value[k])}" for k in sorted(value)) + "}"
    return repr(value)


def chosen_fields(row: dict[str, Any], fields: list[str] | None) -> list[tuple[str, Any]]:
    """The (field, value) pairs compared: `fields`, or every field but `source`."""
    if fields:
        return [(f, row.get(f)) for f in fields]
    return [(k, v) for k, v in sorted(row.items()) if k != "source"]


def exact_key(pairs: list[tuple[str, Any]]) -> bytes:
    text = "\x1d".join(f"{k}\x1c{_canonical(v)}" for k, v in pairs)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(map(_text, value))
    if isinstance(value, dict):
        return " ".join(_text(v) for k, v in value.items() if k not in ("role", "from"))
    return ""


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[bytes]:
    """Word n-grams of the normalised text (the whole text when it has fewer words)."""
    words = _WORD.findall(normalise(text))
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


@dataclass
class DedupResult:
    """The tally plus, per kept row that absorbed duplicates, how many it absorbed."""

    tally: Tally
    clusters: Counter[str] = field(default_factory=Counter)


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising the area of false positives below the threshold plus
    false negatives above it, weighted equally (datasketch's rule for MinHashLSH)."""
    import numpy as np

    xs = np.linspace(0.0, 1.0, 501)
    below, above = xs < threshold, xs >= threshold

    def area(y: np.ndarray, x: np.ndarray) -> float:
        return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum()) if len(x) > 1 else 0.0

    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            candidate = 1 - (1 - xs**rows) ** bands
            error = area(candidate[below], xs[below]) + area(1 - candidate[above], xs[above])
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


class NearIndex:
    """MinHash signatures of kept rows, banded for LSH, with each candidate confirmed.

    datasketch computes the signatures; the band tables are ours because datasketch's
    MinHashLSH costs about 4.3 KB a row (a set per bucket, byte-string keys), these about 1.5.
    A band is keyed by the Python hash of its values; a collision only costs one extra check.
    """

    def __init__(self, threshold: float, num_perm: int = NUM_PERM) -> None:
        import numpy as np

        try:
            from datasketch import MinHash
        except ImportError:
            raise HonerError(
                "near-duplicate search needs datasketch: pip install datasketch (or "
                "honer[data]), or use --exact-only"
            ) from None

        self._minhash = MinHash
        self._perm = MinHash(num_perm=num_perm, seed=1, scheme="affine32").permutations
        self.num_perm = num_perm
        self.threshold = threshold
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        self.tables: list[dict[int, int | list[int]]] = [{} for _ in range(self.bands)]
        self.signatures = np.zeros((1024, num_perm), np.uint32)
        self.wheres: list[str] = []

    def signature(self, text: str) -> np.ndarray | None:
        """The text's MinHash values (uint32), or None when it has no words to compare."""
        import numpy as np

        grams = shingles(text)
        if not grams:
            return None
        m = self._minhash(
            num_perm=self.num_perm, seed=1, permutations=self._perm, scheme="affine32"
        )
        m.update_batch(list(grams))
        return m.hashvalues.astype(np.uint32)

    def _keys(self, sig: np.ndarray) -> list[int]:
        r = self.rows
        return [hash(sig[i * r : (i + 1) * r].tobytes()) for i in range(self.bands)]

    def find(self, sig: np.ndarray) -> tuple[str, float] | None:
        """(where, estimated Jaccard) of the most similar kept row at or above the threshold."""
        import numpy as np

        candidates: set[int] = set()
        for table, key in zip(self.tables, self._keys(sig), strict=True):
            hit = table.get(key)
            if isinstance(hit, int):
                candidates.add(hit)
            elif hit is not None:
                candidates.update(hit)
        if not candidates:
            return None
        ids = np.fromiter(sorted(candidates), dtype=np.int64)
        sims = np.count_nonzero(self.signatures[ids] == sig, axis=1) / self.num_perm
        best = int(sims.argmax())  # the earliest row among equally similar ones
        return (self.wheres[ids[best]], float(sims[best])) if sims[best] >= self.threshold else None

    def add(self, where: str, sig: np.ndarray) -> None:
        import numpy as np

        n = len(self.wheres)
        if n == len(self.signatures):
            grown = np.zeros((2 * n, self.num_perm), np.uint32)
            grown[:n] = self.signatures
            self.signatures = grown
        self.signatures[n] = sig
        self.wheres.append(where)
        for table, key in zip(self.tables, self._keys(sig), strict=True):
            hit = table.get(key)
            if hit is None:
                table[key] = n
            elif isinstance(hit, int):
                table[key] = [hit, n]
            else:
                hit.append(n)


class _Vectors:
    """Unit vectors of kept rows in one growing matrix (doubling, so appends are cheap)."""

    def __init__(self) -> None:
        self.matrix: np.ndarray | None = None
        self.wheres: list[str] = []

    def most_similar(self, vec: np.ndarray) -> tuple[str, float] | None:
        if not self.wheres:
            return None
        assert self.matrix is not None
        sims = self.matrix[: len(self.wheres)] @ vec
        best = int(sims.argmax())
        return self.wheres[best], float(sims[best])

    def add(self, where: str, vec: np.ndarray) -> None:
        import numpy as np

        n = len(self.wheres)
        if self.matrix is None or n == len(self.matrix):
            grown = np.zeros((max(1024, 2 * n), vec.shape[0]), np.float32)
            if self.matrix is not None:
                grown[:n] = self.matrix
            self.matrix = grown
        self.matrix[n] = vec
        self.wheres.append(where)


def load_embedder(model_dir: Path) -> Embedder:
    """Sentence embeddings from a local folder: sentence-transformers when the folder is one
    (and the package is installed), else a transformers encoder with mean pooling."""
    if not model_dir.is_dir():
        raise DataError(
            f"--semantic-model {model_dir}: not a local folder. Semantic dedup needs an embedding "
            "model on disk (e.g. a sentence-transformers folder); honer data never downloads."
        )
    if (model_dir / "modules.json").is_file():
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise DataError(
                f"--semantic-model {model_dir}: a sentence-transformers model, but the "
                "sentence-transformers package is not installed (pip install sentence-transformers)."
            ) from None
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        return lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    if not (model_dir / "config.json").is_file():
        raise DataError(
            f"--semantic-model {model_dir}: holds no model (no modules.json or config.json)."
        )
    return _mean_pooling_embedder(model_dir)


def _mean_pooling_embedder(model_dir: Path) -> Embedder:
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    except (OSError, ValueError) as err:
        raise DataError(f"--semantic-model {model_dir}: cannot load ({err}).") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token

    def embed(texts: list[str]) -> np.ndarray:
        batch = tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).numpy()

    return embed


def _semantic_pass(
    rows: Iterator[tuple[str, dict[str, Any]]],
    text_of: Callable[[dict[str, Any]], str],
    embed: Embedder,
    threshold: float,
) -> Iterator[tuple[str, dict[str, Any], tuple[str, float] | None]]:
    """(where, row, (duplicate-of, similarity) or None) for each row, in order."""
    import numpy as np

    kept = _Vectors()
    batch: list[tuple[str, dict[str, Any]]] = []

    def flush() -> Iterator[tuple[str, dict[str, Any], tuple[str, float] | None]]:
        vectors = np.asarray(embed([text_of(row) for _, row in batch]), dtype=np.float32)
        for (where, row), vec in zip(batch, vectors, strict=True):
            match = kept.most_similar(vec)
            if match is not None and match[1] >= threshold:
                yield where, row, match
            else:
                kept.add(where, vec)
                yield where, row, None
        batch.clear()

    for item in rows:
        batch.append(item)
        if len(batch) == EMBED_BATCH:
            yield from flush()
    if batch:
        yield from flush()


def dedup(
    source: Path,
    out: Path,
    rejects: Path,
    fields: list[str] | None = None,
    near: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    embed: Embedder | None = None,
    semantic_threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
    meter: Meter | None = None,
) -> DedupResult:
    """Write the first of each group of duplicates to `out`, the others to `rejects`."""
    if not 0 < threshold <= 1 or not 0 < semantic_threshold <= 1:
        raise DataError("--threshold and --semantic-threshold must be in (0, 1].")
    if out.resolve() == rejects.resolve():
        raise DataError(f"--rejects {rejects}: must differ from --out.")
    result = DedupResult(Tally())
    tally = result.tally
    seen: dict[bytes, str] = {}
    index = NearIndex(threshold) if near else None

    def text_of(row: dict[str, Any]) -> str:
        return " ".join(_text(v) for _, v in chosen_fields(row, fields))

    def remove(where: str, row: dict[str, Any], reason: str, of: str, sim: float | None) -> None:
        detail = f"of {of}" + (f" (similarity {sim:.2f})" if sim is not None else "")
        tally.reject(reason, where, detail)
        result.clusters[of] += 1
        entry: dict[str, Any] = {"source": where, "reason": reason, "duplicate_of": of}
        if sim is not None:
            entry["similarity"] = round(sim, 4)
        bad.write({**entry, "row": row})

    def first_passes(records: Iterator[Record]) -> Iterator[tuple[str, dict[str, Any]]]:
        for record in records:
            row = record.row
            if row is None:
                tally.reject(record.reason, record.where, record.problem or "")
                bad.write(
                    {"source": record.where, "reason": record.reason, "detail": record.problem}
                )
                continue
            if fields:
                missing = [f for f in fields if f not in row]
                if missing:
                    raise DataError(
                        f"{record.where}: no field `{missing[0]}` (row has: {', '.join(row)})."
                    )
            key = exact_key(chosen_fields(row, fields))
            if key in seen:
                remove(record.where, row, "exact duplicate", seen[key], None)
                continue
            if index is not None and (sig := index.signature(text_of(row))) is not None:
                match = index.find(sig)
                if match is not None:
                    remove(record.where, row, "near duplicate", *match)
                    continue
                index.add(record.where, sig)
            seen[key] = record.where
            yield record.where, row

    with ExitStack() as stack:
        kept = stack.enter_context(JsonlWriter(out))
        bad = stack.enter_context(JsonlWriter(rejects))
        survivors = first_passes(iter_row_file(source, meter=meter))
        if embed is None:
            for _, row in survivors:
                kept.write(row)
                tally.keep()
        else:
            for where, row, match in _semantic_pass(survivors, text_of, embed, semantic_threshold):
                if match is None:
                    kept.write(row)
                    tally.keep()
                else:
                    remove(where, row, "semantic duplicate", *match)
    return result
