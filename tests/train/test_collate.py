"""The padding collator: exact tensors."""

from __future__ import annotations

import pytest

from honer.train.collate import PaddingCollator


def test_pads_right_with_pad_id_and_ignore_labels():
    rows = [
        {"input_ids": [1, 5, 6], "labels": [-100, 5, 6]},
        {"input_ids": [1, 7], "labels": [-100, 7]},
    ]
    batch = PaddingCollator(pad_token_id=3)(rows)
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, 3]]
    assert batch["labels"].tolist() == [[-100, 5, 6], [-100, 7, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert set(batch) == {"input_ids", "labels", "attention_mask"}


def test_pad_to_length_and_extra_columns_ignored():
    rows = [{"input_ids": [1, 5], "labels": [-100, 5], "length": 2}]
    batch = PaddingCollator(pad_token_id=0, pad_to_length=5)(rows)
    assert batch["input_ids"].tolist() == [[1, 5, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 5, -100, -100, -100]]


def test_length_mismatch_is_reported():
    with pytest.raises(ValueError, match="2 input_ids but 1 labels"):
        PaddingCollator(pad_token_id=0)([{"input_ids": [1, 2], "labels": [1]}])
