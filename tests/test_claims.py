"""mfkit.claims: a sentence's comparison, checked."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from mfkit.claims import ClaimError, ClaimWarning, claim, claim_speed, claims_mode
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


@pytest.mark.parametrize(
    ("variables", "mode"),
    [
        ({}, "warn"),  # a learner's machine: the build goes on
        ({"CI": "true"}, "strict"),
        ({"CI": "true", "MFKIT_CLAIMS": "collect"}, "collect"),
        ({"MFKIT_CLAIMS": " Strict "}, "strict"),
    ],
)
def test_the_mode_comes_from_mfkit_claims_else_ci(monkeypatch, variables, mode) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("MFKIT_CLAIMS", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert claims_mode() == mode


def test_an_unknown_mode_is_named(monkeypatch) -> None:
    monkeypatch.setenv("MFKIT_CLAIMS", "lenient")
    with pytest.raises(ValueError, match="'lenient' is not a mode: expected one of"):
        claim(False, "x")


def test_warn_mode_warns_and_goes_on(monkeypatch) -> None:
    monkeypatch.setenv("MFKIT_CLAIMS", "warn")
    with pytest.warns(ClaimWarning, match=r"did not hold: the hybrid wins \(hybrid=0.95\)"):
        assert claim(False, "the hybrid wins", hybrid=0.95) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        claim(True, "nothing to say")  # a claim that holds says nothing


def test_collect_mode_appends_each_failed_claim_to_the_log(monkeypatch, tmp_path) -> None:
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("MFKIT_CLAIMS", "collect")
    monkeypatch.setenv("MFKIT_CLAIMS_LOG", str(log))
    claim(True, "holds")
    assert not log.exists()
    with pytest.warns(ClaimWarning):
        claim(False, "a beats b", a=0.1234567, b=torch.tensor(0.2))
        claim(np.bool_(False), "second", word="level")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [
        {"statement": "a beats b", "values": {"a": "0.123457", "b": "0.2"}},
        {"statement": "second", "values": {"word": "'level'"}},
    ]


def test_collect_mode_needs_a_log(monkeypatch) -> None:
    monkeypatch.setenv("MFKIT_CLAIMS", "collect")
    monkeypatch.delenv("MFKIT_CLAIMS_LOG", raising=False)
    with pytest.raises(ValueError, match="needs MFKIT_CLAIMS_LOG"):
        claim(False, "x")


def test_in_a_notebook_the_warning_is_a_box_on_the_page(monkeypatch) -> None:
    shown = []
    monkeypatch.setenv("MFKIT_CLAIMS", "warn")
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    monkeypatch.setattr("IPython.display.display", lambda data, raw: shown.append(data))
    claim(False, "a < b", a=2, b=1)
    (data,) = shown
    assert 'class="admonition warning"' in data["text/html"]
    assert "a &lt; b (a=2, b=1)" in data["text/html"]  # escaped for HTML
    assert data["text/plain"].startswith("Warning: On this machine a sentence near here")
