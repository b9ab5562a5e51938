"""Sample packing: several tokenized samples per row, each one attended and trained alone.

Padding every batch to its longest sample wastes the compute of every pad token; alpaca-like data
(many short samples, a long tail) wastes most of it. Packing fills rows of at most
`sequence_len` tokens with whole samples instead. Three samples A (3 tokens), B (2), C (2) in a
row of 8 (`p` is the padding of a micro-batch whose longest row is 8):

    input_ids     a0 a1 a2 | b0 b1 | c0 c1 | p
    position_ids   0  1  2 |  0  1 |  0  1 | 0
    labels        -- a1 a2 | -- b1 | -- c1 | --      (-- is -100)

    attention (1 = may attend), block-diagonal and causal:
         a0 a1 a2 b0 b1 c0 c1 p
    a0    1
    a1    1  1
    a2    1  1  1
    b0             1
    b1             1  1
    c0                   1
    c1                   1  1
    p                          1

Why each row is built this way:

* **Attention.** The batch carries `position_ids` that restart at 0 for every sample and *no*
  `attention_mask`. transformers 5.x derives the block-diagonal mask above from the position ids
  on `sdpa` and `eager` (measured exact against the samples run one by one, tests/packing), and flash-attention 2 runs varlen over the
  same boundaries. A 2D all-ones attention mask would switch that detection off, so the packing
  collator never emits one. The padding at the end of a row is its own pseudo-sample (positions
  from 0, labels -100): no real token attends to it, and it trains nothing.
* **Loss.** The causal loss makes position t predict `labels[t+1]`. The first label of every
  sample is set to -100, so the last token of A never learns to predict b0; run alone, a sample's
  first token is never predicted either, so the summed loss and the trained-token count of a
  packed row equal those of its samples run one by one (tested to 1e-5, losses and gradients).
* **Bins.** `pack` shuffles the samples with the seed, cuts them into groups of `group_size`
  and packs each group with best-fit-decreasing (each sample, longest first, goes into the
  fullest row it still fits in). Best-fit-decreasing is never worse than first-fit-decreasing's
  11/9 bound and, over thousands of short samples, leaves under 1% of slots empty. The bins are
  computed once per run from the seed, so the number of rows, and thus the steps of every epoch,
  are exact before training; the Trainer's seeded sampler reorders the rows each epoch, and
  resuming from a checkpoint skips to exactly the same rows.
* **CPU speed.** On CPU, sdpa with that block mask takes a slow masked path;
  `honer.model.segment_attention` swaps in causal sdpa per sample of the row (a varlen kernel for
  CPU) when the trainer runs on a CPU.
* **Processes.** Under DDP every rank packs the same bins (same seed); accelerate hands rank r
  the micro-batches r, r + world, r + 2·world, … (`rank_batches` reproduces that split). Filler
  rows (one pad token, nothing trained) bring the row count to a multiple of
  `world_size × micro_batch_size`, so every rank gets distinct rows and the same step count,
  and accelerate never has to repeat rows from the start of the epoch to even the ranks out.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

IGNORE_INDEX = -100
# Defaults as in Axolotl: samples packed together per group, most samples in one row.
DEFAULT_GROUP_SIZE = 100_000
DEFAULT_BIN_SIZE = 200


def pack(
    lengths: Sequence[int],
    capacity: int,
    seed: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    bin_size: int = DEFAULT_BIN_SIZE,
) -> list[list[int]]:
    """Bins of sample indices, each holding at most `capacity` tokens and `bin_size` samples.

    The samples are shuffled with `seed`, cut into groups of `group_size` and each group is packed
    with best-fit-decreasing; the bins come back in a seeded random order and each bin lists its
    samples in that shuffled order. Deterministic for (lengths, capacity, seed, sizes).
    """
    too_long = [i for i, n in enumerate(lengths) if n > capacity]
    if too_long:
        raise DataError(
            f"sample {too_long[0]} has {lengths[too_long[0]]} tokens, more than the packing "
            f"capacity {capacity} (`sequence_len`); {len(too_long)} such sample(s)."
        )
    if group_size < 1 or bin_size < 1:
        raise ValueError("group_size and bin_size must be positive")
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bins: list[list[int]] = []
    for start in range(0, len(order), group_size):
        bins.extend(
            _best_fit_decreasing(order[start : start + group_size], lengths, capacity, bin_size)
        )
    rng.shuffle(bins)
    return bins


def _best_fit_decreasing(
    items: list[int], lengths: Sequence[int], capacity: int, bin_size: int
) -> list[list[int]]:
    """Place each item, longest first, in the open bin with the least room that still fits it."""
    rank = {item: k for k, item in enumerate(items)}
    bins: list[list[int]] = []
    # Open bins as (room left, bin number), sorted: the first entry with room >= n is the best fit.
    open_bins: list[tuple[int, int]] = []
    for item in sorted(items, key=lambda i: (-lengths[i], rank[i])):
        n = lengths[item]
        k = bisect.bisect_left(open_bins, (n, -1))
        if k < len(open_bins):
            room, b = open_bins.pop(k)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(item)
        if room - n > 0 and len(bins[b]) < bin_size:
            bisect.insort(open_bins, (room - n, b))
    return [sorted(b, key=rank.__getitem__) for b in bins]


def filler_rows(rows: int, world_size: int, micro_batch_size: int) -> int:
    """Filler rows that make `rows` a multiple of `world_size × micro_batch_size` (0 on one process)."""
    if world_size <= 1:
        return 0
    per_round = world_size * micro_batch_size
    return -rows % per_round


def rank_batches(rows: int, world_size: int, rank: int, micro_batch_size: int) -> list[list[int]]:
    """Row positions (in sampler order) of each micro-batch rank `rank` trains, as accelerate
    splits them: consecutive micro-batches go to ranks 0, 1, …, world_size - 1 in turn."""
    batches = [
        list(range(s, min(s + micro_batch_size, rows))) for s in range(0, rows, micro_batch_size)
    ]
    return batches[rank::world_size]


def packed_row_count(
    lengths: Sequence[int],
    capacity: int,
    seed: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    bin_size: int = DEFAULT_BIN_SIZE,
    world_size: int = 1,
    micro_batch_size: int = 1,
) -> int:
    """Rows `pack_dataset` makes of samples of these lengths (filler rows included), so a step
    count can be planned without building the packed rows."""
    bins = pack(lengths, capacity, seed, group_size, bin_size)
    return len(bins) + filler_rows(len(bins), world_size, micro_batch_size)


def pack_row(samples: Sequence[tuple[Sequence[int], Sequence[int]]]) -> dict[str, list[int]]:
    """Concatenate (input_ids, labels) samples into one row with restarting position ids.

    The first label of each sample becomes -100: the previous sample's last token must not be
    trained to predict it (see the module docstring).
    """
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for ids, labs in samples:
        if len(ids) != len(labs):
            raise DataError(
                f"sample has {len(ids)} input_ids but {len(labs)} labels; the prepared data is "
                "inconsistent (rebuild it with `honer preprocess --force`)."
            )
        if not ids:
            continue
        input_ids.extend(ids)
        labels.append(IGNORE_INDEX)
        labels.extend(labs[1:])
        position_ids.extend(range(len(ids)))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


@dataclass(frozen=True)
class PackStats:
    """What packing did: samples in, rows out, and how full the rows are."""

    samples: int
    rows: int
    filler_rows: int
    tokens: int
    capacity: int

    @property
    def efficiency(self) -> float:
        """Real tokens / token slots (rows × capacity), filler rows included as empty slots."""
        return self.tokens / max(1, self.rows * self.capacity)

    def describe(self) -> str:
        filler = (
            f" (+{self.filler_rows} filler rows to even out processes)" if self.filler_rows else ""
        )
        return (
            f"sample packing: {self.samples:,} samples → {self.rows:,} rows of ≤ {self.capacity} "
            f"tokens{filler} | packing efficiency {100 * self.efficiency:.2f}% "
            f"(real tokens / token slots)"
        )


def pack_dataset(
    dataset: Dataset,
    capacity: int,
    seed: int,
    pad_token_id: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    bin_size: int = DEFAULT_BIN_SIZE,
    world_size: int = 1,
    micro_batch_size: int = 1,
) -> tuple[Dataset, PackStats]:
    """A dataset of packed rows (input_ids, labels, position_ids) and its statistics."""
    from datasets import Dataset

    columns = dataset.select_columns(["input_ids", "labels"])
    ids_col: list[list[int]] = columns["input_ids"]
    labels_col: list[list[int]] = columns["labels"]
    lengths = [len(ids) for ids in ids_col]
    bins = pack(lengths, capacity, seed, group_size, bin_size)
    rows: dict[str, list[Any]] = {"input_ids": [], "labels": [], "position_ids": []}
    for b in bins:
        row = pack_row([(ids_col[i], labels_col[i]) for i in b])
        for key, value in row.items():
            rows[key].append(value)
    fillers = filler_rows(len(bins), world_size, micro_batch_size)
    for _ in range(fillers):
        rows["input_ids"].append([pad_token_id])
        rows["labels"].append([IGNORE_INDEX])
        rows["position_ids"].append([0])
    stats = PackStats(
        samples=len(lengths),
        rows=len(bins) + fillers,
        filler_rows=fillers,
        tokens=sum(lengths),
        capacity=capacity,
    )
    return Dataset.from_dict(rows), stats


@dataclass(frozen=True)
class PackedCollator:
    """Collate packed rows: right-pad to the longest row (or `pad_to_length`) with a padding
    pseudo-sample, and return `position_ids` and no `attention_mask` (module docstring).

    `num_real_tokens` (tokens of the rows before padding; a filler row counts one) is for
    throughput logging only; the trainer removes it before the forward pass. Rows without
    `position_ids` (an unpacked validation set next to a packed training set) go to `unpacked`.
    """

    pad_token_id: int
    pad_to_length: int | None = None
    unpacked: Callable[[Sequence[dict[str, Any]]], dict[str, Any]] | None = None

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if "position_ids" not in rows[0] and self.unpacked is not None:
            return self.unpacked(rows)

        width = max(max(len(row["input_ids"]) for row in rows), self.pad_to_length or 0)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((n, width), dtype=torch.long)
        real = 0
        for i, row in enumerate(rows):
            k = len(row["input_ids"])
            input_ids[i, :k] = torch.as_tensor(row["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.as_tensor(row["labels"], dtype=torch.long)
            position_ids[i, :k] = torch.as_tensor(row["position_ids"], dtype=torch.long)
            position_ids[i, k:] = torch.arange(width - k)
            real += k
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "num_real_tokens": torch.tensor(real),
        }
