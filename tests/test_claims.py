"""mfkit.claims: a sentence's comparison, checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfkit.claims import ClaimError, claim


def test_a_claim_that_holds_passes_silently() -> None:
    assert claim(0.91 < 0.93 - 0.005, "tuned MF beats biases only") is None


@pytest.mark.parametrize("holds", [False, np.bool_(False), torch.tensor(False)])
def test_a_claim_that_fails_names_the_sentence_and_the_numbers(holds) -> None:
    with pytest.raises(ClaimError) as info:
        claim(holds, "the hybrid beats tuned MF on u1", hybrid=0.92512, mf=torch.tensor(0.913))
    assert str(info.value) == (
        "claim no longer holds: the hybrid beats tuned MF on u1 (hybrid=0.9251, mf=0.913)"
    )
    assert isinstance(info.value, AssertionError)  # a failed claim is a failed check


def test_values_that_are_not_numbers_are_shown_as_they_are() -> None:
    with pytest.raises(ClaimError, match=r"\(word='faster than'\)"):
        claim(False, "sparse steps are faster", word="faster than")


def test_a_claim_needs_a_statement() -> None:
    with pytest.raises(ValueError, match="needs a statement"):
        claim(True, "  ")


def test_an_ambiguous_tensor_is_an_error_not_a_verdict() -> None:
    with pytest.raises(RuntimeError):
        claim(torch.tensor([True, False]), "all of them")
