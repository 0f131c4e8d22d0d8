"""Negative sampling for implicit feedback (chapter 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from mfkit.data import synthetic_movielens
from mfkit.sampling import NegativeSampler, implicit
from mfkit.splits import MissingColumnsError


def make_sampler(pairs, n_users, n_items, **kwargs) -> NegativeSampler:
    frame = pd.DataFrame(pairs, columns=["user_id", "movie_id"])
    return NegativeSampler(frame, n_items, users=range(n_users), items=range(n_items), **kwargs)


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_negatives_are_never_positives(distribution: str) -> None:
    ds = synthetic_movielens(40, 30, 600, seed=2)  # dense: many rejections
    sampler = NegativeSampler(
        ds.ratings,
        30,
        users=ds.users["user_id"],
        items=ds.movies["movie_id"],
        distribution=distribution,
        seed=1,
    )
    users, items = sampler.sample(per_user=50)
    positives = set(
        zip(
            sampler.user_ids.get_indexer(ds.ratings["user_id"]),
            sampler.item_ids.get_indexer(ds.ratings["movie_id"]),
            strict=True,
        )
    )
    drawn = set(zip(users.tolist(), items.tolist(), strict=True))
    assert drawn and not drawn & positives


def test_uniform_negatives_are_uniform_over_unseen_items() -> None:
    sampler = make_sampler([(0, 0), (0, 3)], 1, 6, seed=0)
    items = sampler.sample_for(np.zeros(12_000, dtype=np.int64))
    counts = np.bincount(items, minlength=6)
    assert counts[0] == counts[3] == 0
    assert chisquare(counts[[1, 2, 4, 5]]).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [-1.0, 0.75])
def test_popularity_negatives_follow_count_plus_one_to_the_alpha(alpha: float) -> None:
    # item popularity from other users: item 1 x3, item 2 x1, item 3 x0; user 0 owns item 0
    pairs = [(0, 0), (1, 1), (2, 1), (3, 1), (1, 2)]
    sampler = make_sampler(pairs, 4, 4, distribution="popularity", alpha=alpha, seed=0)
    items = sampler.sample_for(np.zeros(20_000, dtype=np.int64))
    counts = np.bincount(items, minlength=4)
    weights = np.array([4.0, 2.0, 1.0]) ** alpha  # (count + 1) ** alpha for items 1, 2, 3
    expected = weights / weights.sum() * len(items)
    assert counts[0] == 0
    assert chisquare(counts[1:], expected).pvalue > 1e-3


def test_counts_per_user_and_by_ratio() -> None:
    pairs = [(0, 0), (0, 1), (0, 2), (2, 5)]  # user 1 has no interactions
    sampler = make_sampler(pairs, 3, 10, seed=0)
    users, _ = sampler.sample(per_user=4)
    assert np.bincount(users.numpy(), minlength=3).tolist() == [4, 0, 4]
    users, _ = sampler.sample(ratio=2)
    assert np.bincount(users.numpy(), minlength=3).tolist() == [6, 0, 2]
    users, _ = sampler.sample(ratio=0.5)
    assert np.bincount(users.numpy(), minlength=3).tolist() == [round(1.5), 0, round(0.5)]


def test_the_same_seed_gives_the_same_negatives() -> None:
    pairs = [(u, (u * 7) % 50) for u in range(20)]
    first = make_sampler(pairs, 20, 50, seed=3).sample(per_user=5)
    again = make_sampler(pairs, 20, 50, seed=3).sample(per_user=5)
    other = make_sampler(pairs, 20, 50, seed=4).sample(per_user=5)
    assert all(a.equal(b) for a, b in zip(first, again, strict=True))
    assert not first[1].equal(other[1])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="distribution must be one of"):
        make_sampler([(0, 0)], 1, 3, distribution="zipf")
    full = make_sampler([(0, 0), (0, 1)], 1, 2)
    with pytest.raises(ValueError, match="every item"):
        full.sample(per_user=1)
    sampler = make_sampler([(0, 0)], 1, 3)
    with pytest.raises(ValueError, match="exactly one"):
        sampler.sample()
    with pytest.raises(ValueError, match="exactly one"):
        sampler.sample(per_user=1, ratio=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        sampler.sample(per_user=-1)
    with pytest.raises(KeyError, match="not in users/items"):
        make_sampler([(0, 9)], 1, 3)


def test_implicit_keeps_ratings_above_a_threshold() -> None:
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 2], "movie_id": [5, 6, 5], "rating": [5, 2, 4], "timestamp": [1, 2, 3]}
    )
    assert len(implicit(ratings)) == 3
    kept = implicit(ratings, min_rating=4)
    assert kept.columns.tolist() == ["user_id", "movie_id", "timestamp"]
    assert kept[["user_id", "movie_id"]].values.tolist() == [[1, 5], [2, 5]]
    with pytest.raises(KeyError):
        implicit(ratings.drop(columns="movie_id"))


def test_a_sampler_without_positives_draws_anything() -> None:
    sampler = NegativeSampler(
        pd.DataFrame({"user_id": [], "movie_id": []}, dtype="int64"), 3, users=[1], items=[1, 2, 3]
    )
    assert sorted(set(sampler.sample_for(np.zeros(300, dtype=np.int64)).tolist())) == [0, 1, 2]


def test_positives_with_other_column_names_get_a_clear_error() -> None:
    positives = pd.DataFrame({"userID": [1, 2], "itemID": [10, 20]})
    with pytest.raises(MissingColumnsError, match=r"lacks column\(s\) \['user_id', 'movie_id'\]"):
        NegativeSampler(positives, 2, users=[1, 2], items=[10, 20])
    renamed = positives.rename(columns={"userID": "user_id", "itemID": "movie_id"})
    assert NegativeSampler(renamed, 2, users=[1, 2], items=[10, 20]).per_user.tolist() == [1, 1]
