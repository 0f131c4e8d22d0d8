"""Tests for mfkit.metrics' beyond-accuracy metrics: hand values and brute-force references."""

import math

import numpy as np
import pytest
import torch

from mfkit.metrics import (
    exposure_gini,
    genre_mix,
    intra_list_diversity,
    mean_popularity,
    miscalibration,
    novelty,
)

# ------------------------------------------------------------------------- exposure


def _gini_by_pairs(counts):
    """Mean absolute difference over all ordered pairs, over twice the mean."""
    x = np.asarray(counts, dtype=float)
    return np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())


def test_exposure_gini_by_hand():
    # counts: item 0 once, item 1 three times, item 2 twice -> sorted [1, 2, 3], total 6:
    # (-2 * 1 + 0 * 2 + 2 * 3) / (3 * 6) = 4 / 18
    lists = [[0, 1], [1, 2], [1, 2]]
    assert exposure_gini(lists, n_items=3) == pytest.approx(2 / 9)
    # a fourth item never shown counts 0: sorted [0, 1, 2, 3], weights -3, -1, 1, 3 -> 10 / 24
    assert exposure_gini(lists, n_items=4) == pytest.approx(5 / 12)
    assert _gini_by_pairs([1, 3, 2]) == pytest.approx(2 / 9)
    assert _gini_by_pairs([0, 1, 3, 2]) == pytest.approx(5 / 12)


@pytest.mark.parametrize("n_items", [1, 2, 7, 50])
def test_exposure_gini_extremes(n_items):
    # every item shown equally often (twice each) -> 0; one item shown to all -> (n - 1) / n
    even = np.arange(n_items).reshape(-1, 1).repeat(2, axis=0)
    assert exposure_gini(even, n_items) == pytest.approx(0.0, abs=1e-12)
    assert exposure_gini([[3], [3], [3]], n_items) == pytest.approx((n_items - 1) / n_items)


def test_exposure_gini_against_pairs_on_random_lists():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n_items = int(rng.integers(5, 40))
        popularity = rng.dirichlet(np.full(n_items, 0.3))
        top = rng.choice(n_items, size=(30, 8), p=popularity)
        counts = np.bincount(top[:, :5].ravel(), minlength=n_items)
        expected = _gini_by_pairs(counts)
        assert exposure_gini(top, n_items, k=5) == pytest.approx(expected), trial
        assert exposure_gini(torch.from_numpy(top[:, :5]), n_items) == pytest.approx(expected)
        ragged = [row[: rng.integers(1, 6)] for row in top]
        ragged_counts = np.bincount(np.concatenate(ragged), minlength=n_items)
        assert exposure_gini(ragged, n_items) == pytest.approx(_gini_by_pairs(ragged_counts))


def test_exposure_gini_errors():
    with pytest.raises(ValueError, match="3 distinct items, more than n_items=2"):
        exposure_gini([[0, 1, 2]], n_items=2)
    with pytest.raises(ValueError, match="every list is empty"):
        exposure_gini([[], []], n_items=2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        exposure_gini([[0, 1]], n_items=2, k=0)
    with pytest.raises(ValueError, match="n_items must be a positive integer"):
        exposure_gini([[0, 1]], n_items=0)


# ---------------------------------------------------------------- novelty, popularity

COUNTS, N_USERS = [8, 2, 1, 0], 8  # shares 1, 1/4, 1/8, 0 -> 0, 2 and 3 bits; item 3 unseen


def test_novelty_by_hand():
    lists = [[0, 1], [2, 1], []]
    per_user = novelty(lists, COUNTS, N_USERS, per_user=True)
    assert per_user[:2] == pytest.approx([(0 + 2) / 2, (3 + 2) / 2])
    assert np.isnan(per_user[2])  # an empty list has no items to average
    assert novelty(lists, COUNTS, N_USERS) == pytest.approx((1 + 2.5) / 2)
    assert novelty(np.array([[0, 1], [2, 1]]), COUNTS, N_USERS, k=1) == pytest.approx(1.5)
    assert isinstance(novelty(lists, np.array(COUNTS), N_USERS), float)


def test_novelty_against_a_loop():
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 51, 30)
    top = rng.integers(0, 30, (20, 6))
    expected = [np.mean([-math.log2(counts[i] / 50) for i in row[:4]]) for row in top]
    got = novelty(torch.from_numpy(top), torch.from_numpy(counts), 50, k=4, per_user=True)
    assert got == pytest.approx(expected)


def test_novelty_errors():
    with pytest.raises(ValueError, match="item 3 has count 0"):
        novelty([[0, 3]], COUNTS, N_USERS)
    with pytest.raises(ValueError, match=r"counts\[1\] = 9 is more than n_users=8"):
        novelty([[0]], [8, 9], N_USERS)
    with pytest.raises(ValueError, match="integers from 0 to 3"):
        novelty([[0, 4]], COUNTS, N_USERS)
    with pytest.raises(ValueError, match="integers from 0 to 3"):
        novelty([[0.5]], COUNTS, N_USERS)
    with pytest.raises(ValueError, match="counts must hold finite values >= 0"):
        novelty([[0]], [-1, 2], N_USERS)
    with pytest.raises(ValueError, match="n_users must be a positive integer"):
        novelty([[0]], COUNTS, 0)


def test_mean_popularity_by_hand():
    counts = [10, 4, 0, 6]
    per_user = mean_popularity([[0, 1], [1, 2, 3], [2]], counts, per_user=True)
    assert per_user == pytest.approx([7, 10 / 3, 0])
    assert mean_popularity([[0, 1], [1, 2, 3], [2]], counts) == pytest.approx((7 + 10 / 3) / 3)
    assert mean_popularity(torch.tensor([[0, 1], [3, 2]]), counts, k=1) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="integers from 0 to 3"):
        mean_popularity([[0, 9]], counts)


# ------------------------------------------------------------------------ diversity


def _ild_by_pairs(lists, vectors):
    """Mean of 1 - cosine over the pairs i < j of each list; nan below 2 items."""
    out = []
    for row in lists:
        values = []
        for a in range(len(row)):
            for b in range(a + 1, len(row)):
                u, v = vectors[row[a]], vectors[row[b]]
                nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                cos = 0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv))
                values.append(1 - cos)
        out.append(np.mean(values) if values else np.nan)
    return np.array(out)


def test_intra_list_diversity_by_hand():
    # items 0 and 1: the same genre (cos 1); item 2 another (cos 0); item 3 both genres:
    # cos(0, 3) = 1 / sqrt(2); item 4 has no genre: similarity 0 to everything
    genres = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [0, 0]])
    lists = [[0, 1], [0, 2], [0, 3], [4, 4], [0, 1, 2], [2]]
    expected = [0, 1, 1 - 1 / math.sqrt(2), 1, (0 + 1 + 1) / 3, np.nan]
    got = intra_list_diversity(lists, genres, per_user=True)
    assert got == pytest.approx(expected, nan_ok=True)
    assert intra_list_diversity(lists, genres) == pytest.approx(np.nanmean(expected))


def test_intra_list_diversity_against_pairs():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(25, 4))
    vectors[3] = 0
    top = rng.integers(0, 25, (30, 7))
    lists = [row[: rng.integers(0, 8)].tolist() for row in top]
    expected = _ild_by_pairs(lists, vectors)
    got = intra_list_diversity(lists, torch.from_numpy(vectors), per_user=True)
    assert got == pytest.approx(expected, nan_ok=True)
    assert intra_list_diversity(top, vectors, k=5, per_user=True) == pytest.approx(
        _ild_by_pairs(top[:, :5], vectors)
    )


def test_intra_list_diversity_errors():
    with pytest.raises(ValueError, match="no list holds 2 items or more"):
        intra_list_diversity([[0], []], np.eye(2))
    with pytest.raises(ValueError, match="item_vectors must be a finite 2-D array"):
        intra_list_diversity([[0, 1]], np.ones(3))
    with pytest.raises(ValueError, match="integers from 0 to 1"):
        intra_list_diversity([[0, 2]], np.eye(2))


# ---------------------------------------------------------------------- calibration

GENRES = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])  # item 3 has no genre


def test_genre_mix_by_hand():
    lists = [[0, 1], [2, 3], [3], [], [0, 1, 2, 3]]
    expected = [
        [0.75, 0.25, 0],  # ([1, 0, 0] + [1/2, 1/2, 0]) / 2
        [0, 0, 1],  # item 3 contributes nothing
        [0, 0, 0],  # a list without genres
        [0, 0, 0],  # an empty list
        [1.5 / 3, 0.5 / 3, 1 / 3],
    ]
    got = genre_mix(lists, GENRES)
    assert got.shape == (5, 3)
    assert got == pytest.approx(np.array(expected))
    weighted = genre_mix([[0, 1], [2, 0]], torch.from_numpy(GENRES), weights=[[3, 1], [0, 2]])
    # (3 [1, 0, 0] + 1 [1/2, 1/2, 0]) / 4 and (0 [0, 0, 1] + 2 [1, 0, 0]) / 2
    assert weighted == pytest.approx(np.array([[0.875, 0.125, 0], [1, 0, 0]]))


def test_genre_mix_against_a_loop():
    rng = np.random.default_rng(3)
    genres = (rng.random((20, 5)) < 0.3).astype(float)
    lists = [rng.integers(0, 20, rng.integers(0, 9)) for _ in range(15)]
    weights = [rng.uniform(0, 5, len(row)) for row in lists]
    got = genre_mix(lists, genres, weights=weights)
    for row, w, mix in zip(lists, weights, got, strict=True):
        total = np.zeros(5)
        for item, wi in zip(row, w, strict=True):
            if genres[item].sum() > 0:
                total += wi * genres[item] / genres[item].sum()
        expected = total / total.sum() if total.sum() > 0 else total
        assert mix == pytest.approx(expected)
    assert np.all(np.isclose(got.sum(1), 1) | (got.sum(1) == 0))


def test_genre_mix_errors():
    with pytest.raises(ValueError, match="one weight per item of each list"):
        genre_mix([[0, 1], [2]], GENRES, weights=[[1], [1, 1]])
    with pytest.raises(ValueError, match="genres must hold finite values >= 0"):
        genre_mix([[0]], -GENRES)
    with pytest.raises(ValueError, match="weights must hold finite values >= 0"):
        genre_mix([[0]], GENRES, weights=[[-1]])
    with pytest.raises(ValueError, match="integers from 0 to 3"):
        genre_mix([[4]], GENRES)


def test_miscalibration_by_hand():
    # q~ = 0.5 [1, 0] + 0.5 [0.5, 0.5] = [0.75, 0.25]: 0.5 ln(0.5 / 0.75) + 0.5 ln(0.5 / 0.25)
    expected = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
    assert miscalibration([0.5, 0.5], [1, 0], alpha=0.5) == pytest.approx(expected)
    # genres with p_g = 0 add nothing: ln(1 / 0.5)
    assert miscalibration([1, 0], [0.5, 0.5], alpha=0) == pytest.approx(math.log(2))
    # default alpha = 0.01: q~ = [0.99 * 0.2 + 0.01 * 0.6, 0.99 * 0.8 + 0.01 * 0.4]
    q_tilde = [0.99 * 0.2 + 0.006, 0.99 * 0.8 + 0.004]
    expected_default = 0.6 * math.log(0.6 / q_tilde[0]) + 0.4 * math.log(0.4 / q_tilde[1])
    assert miscalibration([0.6, 0.4], [0.2, 0.8]) == pytest.approx(expected_default)
    assert miscalibration([0.5, 0.5], [1, 0], alpha=0) == math.inf
    rows = miscalibration([[0.5, 0.5], [0.3, 0.7]], np.array([[1, 0], [0.3, 0.7]]), alpha=0.5)
    assert rows.shape == (2,)
    assert rows == pytest.approx([expected, 0.0])


def test_miscalibration_of_genre_mixes():
    history = genre_mix([[0, 0, 2]], GENRES)  # two thirds genre 0, one third genre 2
    assert miscalibration(history, genre_mix([[0, 0, 2]], GENRES)) == pytest.approx([0.0])
    near, far = genre_mix([[0, 2]], GENRES), genre_mix([[2, 2]], GENRES)
    assert miscalibration(history, near)[0] < miscalibration(history, far)[0]


def test_miscalibration_errors():
    with pytest.raises(ValueError, match=r"different shapes: \(2,\) and \(3,\)"):
        miscalibration([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="alpha must lie between 0 and 1"):
        miscalibration([0.5, 0.5], [0.5, 0.5], alpha=1.5)
    with pytest.raises(ValueError, match="q must hold finite values >= 0"):
        miscalibration([0.5, 0.5], [1.5, -0.5])
    with pytest.raises(ValueError, match="p must be 2-D"):
        miscalibration(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
