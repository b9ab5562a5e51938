"""Bin packing, packed rows and the split across processes, as pure functions."""

from __future__ import annotations

import random

import pytest

from honer.data.packing import (
    IGNORE_INDEX,
    PackedCollator,
    filler_rows,
    pack,
    pack_row,
    rank_batches,
)
from honer.errors import DataError


def _alpaca_like_lengths(n: int, seed: int = 0) -> list[int]:
    """Log-normal lengths (median ~150 tokens, long tail) capped at 1024, like alpaca."""
    rng = random.Random(seed)
    return [max(8, min(1024, int(rng.lognormvariate(5.0, 0.7)))) for _ in range(n)]


def test_every_sample_once_within_capacity_and_bin_size():
    lengths = _alpaca_like_lengths(3000)
    bins = pack(lengths, capacity=1024, seed=3, group_size=1000, bin_size=5)
    flat = sorted(i for b in bins for i in b)
    assert flat == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 1024 for b in bins)
    assert max(len(b) for b in bins) == 5


def test_deterministic_for_the_seed_and_different_across_seeds():
    lengths = _alpaca_like_lengths(500)
    assert pack(lengths, 1024, seed=1) == pack(lengths, 1024, seed=1)
    assert pack(lengths, 1024, seed=1) != pack(lengths, 1024, seed=2)


def test_packing_efficiency_over_99_percent_at_1024():
    lengths = _alpaca_like_lengths(2000)
    bins = pack(lengths, 1024, seed=0)
    efficiency = sum(lengths) / (len(bins) * 1024)
    assert efficiency >= 0.99
    # Best-fit-decreasing over one group is at least as good as the lower bound allows + 1 row.
    assert len(bins) <= -(-sum(lengths) // 1024) + 1


def test_small_groups_pack_each_group_alone():
    lengths = [600, 600, 400, 400]
    # One group: 600+400 twice. Groups of 1: nothing shares a row.
    assert len(pack(lengths, 1000, seed=0)) == 2
    assert len(pack(lengths, 1000, seed=0, group_size=1)) == 4


def test_sample_longer_than_capacity_is_an_error():
    with pytest.raises(
        DataError, match="sample 1 has 30 tokens, more than the packing capacity 20"
    ):
        pack([10, 30], 20, seed=0)


def test_pack_row_restarts_positions_and_masks_first_label_of_each_sample():
    row = pack_row([([1, 2, 3], [-100, 2, 3]), ([4, 5], [4, 5]), ([6, 7], [-100, 7])])
    assert row == {
        "input_ids": [1, 2, 3, 4, 5, 6, 7],
        "labels": [-100, 2, 3, -100, 5, -100, 7],
        "position_ids": [0, 1, 2, 0, 1, 0, 1],
    }


def test_collator_pads_with_a_separate_pseudo_sample_and_no_attention_mask():
    collate = PackedCollator(pad_token_id=0)
    a = pack_row([([1, 2, 3], [1, 2, 3]), ([4, 5], [4, 5])])
    b = pack_row([([6, 7], [6, 7])])
    batch = collate([a, b])
    assert "attention_mask" not in batch
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, 5], [-100, 7, -100, -100, -100]]
    assert int(batch["num_real_tokens"]) == 7
    assert collate.pad_to_length is None
    wide = PackedCollator(pad_token_id=0, pad_to_length=8)([b])
    assert wide["position_ids"].tolist() == [[0, 1, 0, 1, 2, 3, 4, 5]]


def test_collator_hands_unpacked_rows_to_the_fallback():
    from honer.train.collate import PaddingCollator

    collate = PackedCollator(0, None, PaddingCollator(pad_token_id=0))
    batch = collate([{"input_ids": [1, 2], "labels": [1, 2]}])
    assert batch["attention_mask"].tolist() == [[1, 1]]


@pytest.mark.parametrize("rows", [1, 7, 8, 13, 64])
@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("micro_batch_size", [1, 2, 4])
def test_ranks_get_distinct_rows_and_the_same_step_count(rows, world_size, micro_batch_size):
    """With filler rows, accelerate's own batch split gives every rank distinct, full batches."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    total = rows + filler_rows(rows, world_size, micro_batch_size)
    assert (
        total % (world_size * micro_batch_size) == 0
        and total - rows < world_size * micro_batch_size
    )
    per_rank = []
    for rank in range(world_size):
        ours = rank_batches(total, world_size, rank, micro_batch_size)
        shard = BatchSamplerShard(
            BatchSampler(SequentialSampler(range(total)), micro_batch_size, drop_last=False),
            num_processes=world_size,
            process_index=rank,
        )
        assert list(shard) == ours  # what accelerate does is what rank_batches says
        per_rank.append(ours)
    assert len({len(b) for b in per_rank}) == 1  # same number of micro-batches on every rank
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert sorted(seen) == list(range(total))  # every row once: distinct, none repeated


def test_one_process_needs_no_filler():
    assert filler_rows(13, 1, 4) == 0
    assert IGNORE_INDEX == -100
