"""The supervised-token LR rule, term by term."""

from __future__ import annotations

import pytest

from honer.lr.suggest import (
    ADAPTER_FACTOR,
    FAMILY_FIGURES,
    SIZE_CLASSES,
    pretraining_reference,
    suggest,
)


def test_issue_example_gives_1_89e_6() -> None:
    s = suggest(2_000_000, 350, 1, 5e-5, 4_000_000)
    assert f"{s.learning_rate:.3g}" == "1.89e-06"
    assert s.supervised_tokens_in_batch == pytest.approx(2_000_000 / 350)
    assert s.lines()[-1] == "lr = 5e-05 * sqrt(0.00142857) = 1.89e-06"


def test_epochs_scale_the_batch() -> None:
    # The same data over 2 epochs and 700 steps has the same tokens per step as 1 epoch / 350.
    assert suggest(2_000_000, 700, 2, 5e-5, 4_000_000).learning_rate == pytest.approx(
        suggest(2_000_000, 350, 1, 5e-5, 4_000_000).learning_rate
    )


def test_non_positive_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="steps must be positive, got 0"):
        suggest(1000, 0, 1, 1e-4, 1000)


def test_figure_tables_have_sources() -> None:
    figures = [f for family in FAMILY_FIGURES.values() for f in family] + list(SIZE_CLASSES)
    assert all(f.source and f.batch_tokens > 0 and f.base_lr > 0 for f in figures)


def test_lora_multiplies_the_full_finetune_rule_by_the_adapter_factor() -> None:
    full = suggest(2_000_000, 350, 1, 5e-5, 4_000_000)
    for adapter in ("lora", "qlora"):
        lora = suggest(2_000_000, 350, 1, 5e-5, 4_000_000, adapter=adapter)
        assert ADAPTER_FACTOR == 10.0
        assert lora.learning_rate == pytest.approx(10 * full.learning_rate)
        assert lora.lines()[-1] == "lr = 5e-05 * sqrt(0.00142857) * 10 = 1.89e-06 * 10 = 1.89e-05"
        assert "LoRA Without Regret" in lora.lines()[-2]


def test_a_small_llama_gets_its_size_class_not_llama_2_7b() -> None:
    """The issue's case: SmolLM2-135M is `model_type: llama`; Llama 2 7B's figures (3e-4 with
    4M-token batches) are for a model 50x larger."""
    figures, why = pretraining_reference("llama", 134_515_008)
    assert figures.name == "GPT-3 Small (125M)"
    assert (figures.base_lr, figures.batch_tokens) == (6e-4, 500_000)
    assert why.startswith("assumed the nearest size class, GPT-3 Small (125M), for this 135M model")
    assert "published for Llama 2 7B, Llama 2 13B, Llama 2 34B, Llama 2 70B only" in why


def test_a_family_size_that_is_published_uses_its_own_figures() -> None:
    figures, why = pretraining_reference("llama", 6.7e9)
    assert figures.name == "Llama 2 7B" and figures.base_lr == 3e-4
    assert why == "pre-training figures of Llama 2 7B for this 6.7B model"
    pythia, _ = pretraining_reference("gpt_neox", 162e6)
    assert pythia.name == "Pythia 160M" and pythia.batch_tokens == 2_097_152
    unknown, why = pretraining_reference("qwen2", 1.5e9)
    assert unknown.name == "GPT-3 XL (1.3B)" and "model type `qwen2`" in why


def test_a_batch_far_below_pretraining_is_flagged() -> None:
    small = suggest(40 * 165, 165, 1, 6e-4, 500_000, adapter="lora")
    assert any("12,500x fewer than a pre-training batch" in w for w in small.warnings())
    assert not suggest(2_000_000, 1, 1, 6e-4, 500_000).warnings()
