"""The supervised-token LR rule, term by term."""

from __future__ import annotations

import pytest

from honer.lr.suggest import FAMILIES, suggest


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


def test_family_table_has_sources() -> None:
    assert FAMILIES["mistral"].base_lr == 5e-5 and FAMILIES["llama"].base_lr == 3e-4
    assert all(f.source and f.pretrained_batch_tokens > 0 for f in FAMILIES.values())
