import math

import numpy as np
import pytest
from scipy import stats

from mfkit.stats import paired, seed_spread


def test_interval_by_hand():
    # differences 2, 2.5, 3: mean 2.5, sd 0.5, t(0.975, 2) = 4.302653
    result = paired([3, 4.5, 6], [1, 2, 3])
    half = 4.302652729911275 * 0.5 / math.sqrt(3)
    assert result.difference == pytest.approx(2.5)
    assert (result.low, result.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert result.cases == 3
    assert result.word == "ahead of"


def test_interval_matches_scipys_paired_t_test():
    rng = np.random.default_rng(0)
    b = rng.random(500)
    a = b + rng.normal(0.01, 0.2, 500)
    result = paired(a, b, level=0.9)
    expected = stats.ttest_rel(a, b).confidence_interval(0.9)
    assert (result.low, result.high) == pytest.approx((expected.low, expected.high))


def test_words_follow_the_interval():
    rng = np.random.default_rng(1)
    b = rng.random(1000)
    assert paired(b + 0.05 + rng.normal(0, 0.01, 1000), b).word == "ahead of"
    assert paired(b - 0.05 + rng.normal(0, 0.01, 1000), b).word == "behind"
    assert paired(b + rng.normal(0, 0.1, 1000), b).word == "level with"


def test_margin_turns_a_small_win_into_level():
    rng = np.random.default_rng(2)
    b = rng.random(1000)
    a = b + 0.01 + rng.normal(0, 0.01, 1000)
    assert paired(a, b).word == "ahead of"
    assert paired(a, b, margin=0.02).word == "level with"


def test_lower_is_better_turns_the_words_round():
    rng = np.random.default_rng(4)
    b = rng.random(500)
    lower = b - 0.05 + rng.normal(0, 0.01, 500)  # A's errors are lower: A is ahead
    result = paired(lower, b, lower_is_better=True)
    assert result.word == "ahead of"
    assert result.difference < 0 and result.high < 0  # the numbers stay a - b
    assert paired(b, lower, lower_is_better=True).word == "behind"
    assert paired(b + rng.normal(0, 0.1, 500), b, lower_is_better=True).word == "level with"


def test_pairing_sees_what_unpaired_means_hide():
    # Users differ a lot, the two models little but consistently: only pairing tells.
    rng = np.random.default_rng(3)
    user = rng.random(200)
    a, b = user + 0.01, user
    assert paired(a, b).word == "ahead of"
    assert paired(b, a).word == "behind"


def test_str_names_the_numbers():
    text = str(paired([3, 4.5, 6], [1, 2, 3]))
    assert text.startswith("ahead of (mean difference +2.5000, 95% interval +1.2579 to +3.7421")
    assert "3 cases" in text
    assert paired([3, 4.5, 6], [1, 2, 3]).interval(2) == "+1.26 to +3.74"


@pytest.mark.parametrize(
    "a, b, kwargs, message",
    [
        ([1, 2], [1, 2, 3], {}, "same cases"),
        ([1], [2], {}, "at least 2 cases"),
        ([[1, 2]], [[1, 2]], {}, "1-D"),
        ([1, np.nan], [1, 2], {}, "NaN"),
        ([1, 2], [1, 2], {"level": 1.5}, "level"),
        ([1, 2], [1, 2], {"margin": -0.1}, "margin"),
    ],
)
def test_bad_input(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired(a, b, **kwargs)


def test_seed_spread():
    mean, sd = seed_spread([0.10, 0.12, 0.11])
    assert mean == pytest.approx(0.11)
    assert sd == pytest.approx(0.01)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_spread([0.1])
