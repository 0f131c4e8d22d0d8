"""Tests for mfkit.rerank: plain top-k at weight 0, brute-force greedy references, trends."""

import numpy as np
import pytest
import torch

from mfkit.metrics import genre_mix, intra_list_diversity, mean_popularity, miscalibration
from mfkit.rerank import calibrate, mmr, popularity_penalty

N_USERS, N_ITEMS, N_GENRES = 12, 40, 6


def _data(seed):
    """Scores with about 30% excluded, item vectors (one zero), genres (one item without)."""
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.normal(size=(N_USERS, N_ITEMS))).float()
    scores[torch.from_numpy(rng.random((N_USERS, N_ITEMS)) < 0.3)] = float("-inf")
    vectors = rng.normal(size=(N_ITEMS, 4))
    vectors[5] = 0
    genres = (rng.random((N_ITEMS, N_GENRES)) < 0.3).astype(float)
    genres[7] = 0
    counts = rng.integers(0, 300, N_ITEMS)
    history = [rng.choice(N_ITEMS, 15, p=rng.dirichlet(np.ones(N_ITEMS))) for _ in range(N_USERS)]
    return scores, vectors, genres, counts, genre_mix(history, genres)


def _candidates(row, candidates):
    """A user's top allowed items, best first (ties in item order), and their relevance."""
    row = row.double().numpy()
    order = [i for i in np.argsort(-row, kind="stable") if np.isfinite(row[i])][:candidates]
    values = row[order]
    spread = values.max() - values.min()
    relevance = (values - values.min()) / spread if spread > 0 else np.ones(len(values))
    return order, relevance


def _cos(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv))


def _mmr_by_hand(scores, vectors, k, weight, candidates):
    out = []
    for row in scores:
        items, relevance = _candidates(row, candidates)
        chosen = []
        for _ in range(k):
            best, best_value = None, -np.inf
            for pos, item in enumerate(items):
                if item in chosen:
                    continue
                closest = max((_cos(vectors[item], vectors[c]) for c in chosen), default=0.0)
                value = (1 - weight) * relevance[pos] - weight * closest
                if value > best_value:
                    best, best_value = item, value
            chosen.append(best)
        out.append(chosen)
    return out


def _calibrate_by_hand(scores, genres, target, k, weight, candidates, alpha):
    """Steck's greedy, scoring each whole list with mfkit.metrics' genre_mix and KL."""
    out = []
    for row, goal in zip(scores, target, strict=True):
        items, relevance = _candidates(row, candidates)
        gain = dict(zip(items, relevance, strict=True))
        chosen = []
        for _ in range(k):
            best, best_value = None, -np.inf
            for item in items:
                if item in chosen:
                    continue
                trial = [*chosen, item]
                off = miscalibration(goal, genre_mix([trial], genres)[0], alpha)
                value = (1 - weight) * sum(gain[i] for i in trial) - weight * off
                if value > best_value:
                    best, best_value = item, value
            chosen.append(best)
        out.append(chosen)
    return out


def _rerankers(vectors, genres, counts, target):
    return {
        "mmr": lambda s, k, w, c=100: mmr(s, vectors, k, w, candidates=c),
        "popularity": lambda s, k, w, c=100: popularity_penalty(s, counts, k, w, candidates=c),
        "calibrate": lambda s, k, w, c=100: calibrate(s, genres, target, k, w, candidates=c),
    }


@pytest.mark.parametrize("name", ["mmr", "popularity", "calibrate"])
def test_weight_zero_is_the_plain_top_k(name):
    scores, vectors, genres, counts, target = _data(0)
    rerank = _rerankers(vectors, genres, counts, target)[name]
    expected = torch.topk(scores, 8).indices
    for candidates in (8, 15, 100):
        got = rerank(scores, 8, 0.0, candidates)
        assert got.dtype == torch.int64 and got.shape == (N_USERS, 8)
        assert torch.equal(got, expected), candidates


@pytest.mark.parametrize("name", ["mmr", "popularity", "calibrate"])
@pytest.mark.parametrize("weight", [0.3, 0.9])
def test_lists_are_allowed_distinct_and_among_the_candidates(name, weight):
    scores, vectors, genres, counts, target = _data(1)
    got = _rerankers(vectors, genres, counts, target)[name](scores, 6, weight, 10)
    assert got.shape == (N_USERS, 6)
    assert torch.isfinite(scores.gather(1, got)).all()  # never an excluded item
    top10 = torch.topk(scores, 10).indices
    for row, allowed in zip(got.tolist(), top10.tolist(), strict=True):
        assert len(set(row)) == 6
        assert set(row) <= set(allowed)


@pytest.mark.parametrize("weight", [0.2, 0.6, 1.0])
@pytest.mark.parametrize("candidates", [12, 100])
def test_mmr_matches_a_greedy_by_hand(weight, candidates):
    scores, vectors, *_ = _data(2)
    got = mmr(scores, torch.from_numpy(vectors), 7, weight, candidates=candidates)
    assert got.tolist() == _mmr_by_hand(scores, vectors, 7, weight, candidates)


def test_mmr_diversity_grows_with_the_weight():
    scores, vectors, *_ = _data(3)
    diversity = [
        intra_list_diversity(mmr(scores, vectors, 10, w, candidates=25), vectors)
        for w in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    assert np.all(np.diff(diversity) >= -1e-9), diversity
    assert diversity[-1] > diversity[0] + 0.1, diversity


def test_popularity_penalty_by_hand_and_at_large_weight():
    # one user, candidates 0..3 with relevance 1, 2/3, 1/3, 0; popularity log1p(counts)
    # scaled: item 3 (count 0) -> 0, item 0 (count 1000) -> 1
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, float("-inf")]])
    counts = np.array([1000, 0, 30, 0, 5])
    popularity = np.log1p(counts) / np.log1p(1000)
    value = np.array([1, 2 / 3, 1 / 3, 0]) - 0.5 * popularity[:4]
    expected = np.argsort(-value, kind="stable")[:3].tolist()
    assert popularity_penalty(scores, counts, 3, 0.5).tolist() == [expected]
    # a weight far above any gap in relevance: least popular first, relevance breaks ties
    assert popularity_penalty(scores, counts, 4, 1e6).tolist() == [[1, 3, 2, 0]]


def test_popularity_penalty_lowers_mean_popularity():
    scores, _, _, counts, _ = _data(4)
    popularity = [
        mean_popularity(popularity_penalty(scores, counts, 8, w, candidates=20), counts)
        for w in (0.0, 0.5, 2.0, 100.0)
    ]
    assert np.all(np.diff(popularity) <= 1e-9), popularity
    # at weight 100 each list is the 8 least popular of its 20 candidates
    top20 = torch.topk(scores, 20).indices.numpy()
    least = np.sort(counts[top20], axis=1)[:, :8].mean()
    assert popularity[-1] == pytest.approx(least)


@pytest.mark.parametrize("weight", [0.3, 0.8, 1.0])
def test_calibrate_matches_a_greedy_by_hand(weight):
    scores, _, genres, _, target = _data(5)
    got = calibrate(scores, torch.from_numpy(genres), target, 5, weight, candidates=15, alpha=0.05)
    assert got.tolist() == _calibrate_by_hand(scores, genres, target, 5, weight, 15, 0.05)


def test_calibrate_lowers_miscalibration():
    scores, _, genres, _, target = _data(6)
    off = [
        miscalibration(target, genre_mix(calibrate(scores, genres, target, 10, w), genres)).mean()
        for w in (0.0, 0.5, 0.9, 0.99)
    ]
    assert np.all(np.diff(off) <= 1e-9), off
    assert off[-1] < off[0] / 2, off


def test_all_equal_candidates_and_short_rows():
    scores = torch.full((2, 6), 1.0)
    scores[1, :3] = float("-inf")  # user 1 has exactly k = 3 allowed items
    vectors, genres = np.eye(6), np.eye(6)[:, :3]
    target = np.full((2, 3), 1 / 3)
    for got in (
        mmr(scores, vectors, 3, 0.5),
        popularity_penalty(scores, np.arange(6), 3, 0.5),
        calibrate(scores, genres, target, 3, 0.5),
    ):
        assert sorted(got[1].tolist()) == [3, 4, 5]
        assert len(set(got[0].tolist())) == 3


def test_bad_input():
    scores, vectors, genres, counts, target = _data(7)
    with pytest.raises(ValueError, match="k=11 is more than candidates=10"):
        mmr(scores, vectors, 11, 0.5, candidates=10)
    short = scores.clone()
    short[3, 5:] = float("-inf")
    with pytest.raises(ValueError, match="k=8 but user row 3 has only"):
        popularity_penalty(short, counts, 8, 1.0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        mmr(scores, vectors, 0, 0.5)
    with pytest.raises(ValueError, match="weight must be from 0 to 1"):
        mmr(scores, vectors, 5, 1.5)
    with pytest.raises(ValueError, match="weight must be from 0 to 1"):
        calibrate(scores, genres, target, 5, -0.1)
    with pytest.raises(ValueError, match="weight must be a number >= 0"):
        popularity_penalty(scores, counts, 5, -1.0)
    with pytest.raises(ValueError, match=r"item_vectors must have shape \(40, any\)"):
        mmr(scores, vectors[:30], 5, 0.5)
    with pytest.raises(ValueError, match=r"counts must have shape \(40\)"):
        popularity_penalty(scores, counts[:, None], 5, 0.5)
    with pytest.raises(ValueError, match="counts must be >= 0"):
        popularity_penalty(scores, -counts, 5, 0.5)
    with pytest.raises(ValueError, match=r"target must have shape \(12, 6\)"):
        calibrate(scores, genres, target[:, :4], 5, 0.5)
    with pytest.raises(ValueError, match="genres and target must hold values >= 0"):
        calibrate(scores, -genres, target, 5, 0.5)
    with pytest.raises(ValueError, match="alpha must be above 0"):
        calibrate(scores, genres, target, 5, 0.5, alpha=0.0)
    with pytest.raises(ValueError, match="scores must be a float tensor"):
        mmr(scores.numpy(), vectors, 5, 0.5)
    with pytest.raises(ValueError, match="scores must be a float tensor"):
        mmr(scores[0], vectors, 5, 0.5)
    nan = scores.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        mmr(nan, vectors, 5, 0.5)
