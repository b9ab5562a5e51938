"""Per-sample causal attention for packed rows on CPU (a varlen kernel written for CPU).

On CPU, sdpa with the block-diagonal mask transformers builds for a packed row (see
`honer.data.packing`) takes the masked math path, 10x slower than causal sdpa over the same samples.
This module registers an attention function that runs each sample of a packed row as its own
causal block, and leaves unpacked inputs (padded batches, generation) to transformers' sdpa.
"""

from __future__ import annotations

from typing import Any

SEGMENT_SDPA = "honer_segment_sdpa"


def segment_sdpa_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """sdpa attention that runs each packed sample as its own causal block (CPU varlen).

    On CPU, sdpa with the block-diagonal mask transformers builds for a packed row takes the
    masked math path: measured 10× slower than causal sdpa over the same samples one by one
    (a 1,000-token row of 5 samples, hidden 256). This function finds the samples from
    `position_ids` (a position that does not follow the previous one starts a sample, as in
    transformers' own packed-sequence detection) and calls causal sdpa on each, which is also
    exactly the computation of the samples run alone. Inputs that are not packed (no restart in
    the position ids: padded batches, generation) go to transformers' sdpa unchanged.
    """
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    length = query.shape[2]
    packed = (
        position_ids is not None
        and length > 1
        and key.shape[2] == length
        and position_ids.shape[-1] == length
        and bool((position_ids[..., 1:] != position_ids[..., :-1] + 1).any())
    )
    if not packed:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    positions = position_ids.expand(query.shape[0], -1)
    rows = []
    for r in range(query.shape[0]):
        restarts = (positions[r, 1:] != positions[r, :-1] + 1).nonzero().flatten() + 1
        bounds = [0, *restarts.tolist(), length]
        pieces = [
            F.scaled_dot_product_attention(
                query[r : r + 1, :, s:e],
                key[r : r + 1, :, s:e],
                value[r : r + 1, :, s:e],
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
            )
            for s, e in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        rows.append(torch.cat(pieces, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def use_segment_attention(model: Any) -> bool:
    """Switch a CPU model on `sdpa` to `segment_sdpa_forward`; True if switched.

    GPU kernels (sdpa's memory-efficient kernel with the block mask, flash-attention varlen) are
    fast on packed rows and are left alone, as are `eager` and explicit custom choices. The
    choice is not written into a saved config.json, so saved models load with plain sdpa.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if base.config._attn_implementation != "sdpa" or base.device.type != "cpu":
        return False
    AttentionInterface.register(SEGMENT_SDPA, segment_sdpa_forward)
    AttentionMaskInterface.register(SEGMENT_SDPA, sdpa_mask)
    base.set_attn_implementation(SEGMENT_SDPA)
    return True
