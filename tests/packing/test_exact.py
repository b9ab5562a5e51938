"""A packed batch trains exactly like its samples run one by one, on sdpa and eager.

Per-sample losses and the gradients of the summed loss are compared with each sample run alone
(no padding, no packing), and a perturbation test proves no token sees another sample: changing
one sample's tokens must leave every other sample's logits unchanged.
"""

from __future__ import annotations

import random

import pytest

from honer.data.packing import IGNORE_INDEX, PackedCollator, pack_row

# "segment_sdpa": sdpa switched to honer's per-sample CPU kernel, as the trainer does with packing.
ATTENTION = ["sdpa", "eager", "segment_sdpa"]


def _samples(n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        length = rng.randint(3, 40)
        ids = [1] + [rng.randint(10, 2000) for _ in range(length - 1)]
        prompt = rng.randint(0, length // 2)
        samples.append((ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return samples


def _model(model_dir, attn: str):
    import torch
    from transformers import AutoModelForCausalLM

    from honer.model.segment_attention import use_segment_attention

    torch.manual_seed(0)
    segment = attn == "segment_sdpa"
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation="sdpa" if segment else attn
    ).float()
    assert use_segment_attention(model) if segment else True
    return model


def _token_losses(logits, labels):
    """Per-position next-token loss (0 where not trained), shifted as `token_sum_loss` does."""
    import torch.nn.functional as F

    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    return F.cross_entropy(
        logits.float().transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )


def _packed_batch(samples):
    # Two rows of different length: the second is padded, so padding is exercised too.
    rows = [pack_row(samples[:3]), pack_row(samples[3:])]
    return rows, PackedCollator(pad_token_id=0)(rows)


@pytest.mark.parametrize("attn", ATTENTION)
def test_packed_loss_and_gradients_equal_samples_alone(tiny_model_dir, attn):
    import torch

    from honer.train.trainer import token_sum_loss

    samples = _samples(5)
    model = _model(tiny_model_dir, attn)

    # Alone: each sample its own batch of one, no mask, no padding.
    alone_losses = []
    alone_total = 0
    alone_count = 0
    for ids, labels in samples:
        out = model(input_ids=torch.tensor([ids]))
        per_token = _token_losses(out.logits, torch.tensor([labels]))
        alone_losses.append(per_token.sum())
        alone_total = alone_total + per_token.sum()
        alone_count += int((torch.tensor(labels[1:]) != IGNORE_INDEX).sum())
    (alone_total / alone_count).backward()
    alone_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    rows, batch = _packed_batch(samples)
    batch.pop("num_real_tokens")
    out = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False)
    per_token = _token_losses(out.logits, batch["labels"])
    spans = []
    for r, members in ((0, samples[:3]), (1, samples[3:])):
        start = 0
        for ids, _ in members:
            spans.append((r, start, start + len(ids)))
            start += len(ids)
    for (r, a, b), expected in zip(spans, alone_losses, strict=True):
        # The loss of a sample's positions (its last position predicts nothing: label -100 next).
        assert abs(float(per_token[r, a:b].sum().detach()) - float(expected.detach())) <= 1e-5
    count = int((batch["labels"][..., 1:] != IGNORE_INDEX).sum())
    assert count == alone_count
    loss = token_sum_loss(out, batch["labels"])
    assert abs(float(loss) - float(alone_total / alone_count)) <= 1e-6
    loss.backward()
    worst = max(float((p.grad - alone_grads[n]).abs().max()) for n, p in model.named_parameters())
    assert worst <= 1e-5


@pytest.mark.parametrize("attn", ATTENTION)
def test_no_token_attends_to_another_sample(tiny_model_dir, attn):
    """Replacing sample 0's tokens changes sample 0's logits and no other sample's."""
    import torch

    samples = _samples(3, seed=1)
    model = _model(tiny_model_dir, attn)
    changed = [([1] + [(t * 7) % 2000 + 5 for t in samples[0][0][1:]], samples[0][1]), *samples[1:]]
    with torch.no_grad():
        before = model(**_forward_inputs(samples)).logits[0]
        after = model(**_forward_inputs(changed)).logits[0]
    n0 = len(samples[0][0])
    assert float((before[1:n0] - after[1:n0]).abs().max()) > 1e-3  # the probe is sensitive
    assert float((before[n0:] - after[n0:]).abs().max()) <= 1e-6


def _forward_inputs(samples):
    batch = PackedCollator(pad_token_id=0)([pack_row(samples)])
    return {
        "input_ids": batch["input_ids"],
        "position_ids": batch["position_ids"],
        "use_cache": False,
    }


@pytest.mark.parametrize("leak", ["all_ones_mask", "use_cache"])
def test_the_probe_catches_the_two_known_leaks(tiny_model_dir, leak):
    """What packing must never send: a 2D all-ones mask, or `use_cache=True` (a cache makes
    transformers skip the packed-sequence detection). With either, the second sample's logits
    depend on the first sample."""
    import torch

    samples = _samples(2, seed=2)
    model = _model(tiny_model_dir, "sdpa")
    changed = [([1] + [(t * 7) % 2000 + 5 for t in samples[0][0][1:]], samples[0][1]), samples[1]]
    with torch.no_grad():
        a, b = _forward_inputs(samples), _forward_inputs(changed)
        for inputs in (a, b):
            if leak == "all_ones_mask":
                inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
            else:
                inputs["use_cache"] = True
        before, after = model(**a).logits[0], model(**b).logits[0]
    n0 = len(samples[0][0])
    assert float((before[n0:] - after[n0:]).abs().max()) > 1e-3
