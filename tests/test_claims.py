"""mfkit.claims: a sentence's comparison, checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfkit.claims import ClaimError, claim, claim_speed
from mfkit.measure import speed_verdict


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


@pytest.mark.parametrize(
    ("verdict", "seconds", "other"),
    [
        ("faster than", 1.0, 1.3),
        ("slower than", 1.3, 1.0),
        ("about as fast as", 1.0, 1.29),
        ("about as fast as", 1.29, 1.0),
        ("about as fast as", 1.0, 1.0),
    ],
)
def test_claim_speed_accepts_the_words_that_hold(verdict, seconds, other) -> None:
    assert claim_speed(verdict, seconds, other, "x is <verdict> y") is None


@pytest.mark.parametrize(
    ("verdict", "seconds", "other"),
    [
        ("faster than", 1.0, 1.29),
        ("slower than", 1.29, 1.0),
        ("about as fast as", 1.0, 1.3),
        ("about as fast as", 2.0, 1.0),
        ("faster than", 2.0, 1.0),
    ],
)
def test_claim_speed_rejects_words_the_timings_contradict(verdict, seconds, other) -> None:
    with pytest.raises(ClaimError, match=f"sparse is <verdict> dense \\('{verdict}' at a margin"):
        claim_speed(verdict, seconds, other, "sparse is <verdict> dense")


@pytest.mark.parametrize("seconds", [0.5, 0.9, 1.0, 1.2, 1.31, 3.0])
def test_claim_speed_always_accepts_speed_verdict_on_the_same_timings(seconds) -> None:
    for margin in (1.0, 1.3, 2.0):
        verdict = speed_verdict(seconds, 1.0, margin=margin)
        claim_speed(verdict, seconds, 1.0, "consistent", margin=margin)


def test_claim_speed_rejects_unknown_words_and_margins() -> None:
    with pytest.raises(ValueError, match="unknown verdict 'quicker than'"):
        claim_speed("quicker than", 1.0, 2.0, "x")
    with pytest.raises(ValueError, match="margin must be >= 1"):
        claim_speed("faster than", 1.0, 2.0, "x", margin=0.5)
