"""Batch tokenized samples: right-pad `input_ids` with the pad id, `labels` with -100.

Padding is never trained (label -100) and never attended (attention_mask 0), so a sample's loss
does not depend on what it was batched with. With `pad_to_sequence_len` every batch has the same
shape (`sequence_len`), which keeps GPU memory flat from the first step: an OOM shows at once
instead of at the longest batch hours later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PaddingCollator:
    """Collate `{"input_ids", "labels"}` rows into padded tensors plus an attention mask."""

    pad_token_id: int
    pad_to_length: int | None = None

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(row["input_ids"]) for row in rows)
        width = max(longest, self.pad_to_length or 0)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids, labs = row["input_ids"], row["labels"]
            if len(ids) != len(labs):
                raise ValueError(
                    f"sample has {len(ids)} input_ids but {len(labs)} labels; "
                    "the prepared data is inconsistent (rebuild it with `honer preprocess --force`)."
                )
            k = len(ids)
            input_ids[i, :k] = torch.as_tensor(ids, dtype=torch.long)
            labels[i, :k] = torch.as_tensor(labs, dtype=torch.long)
            attention_mask[i, :k] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
