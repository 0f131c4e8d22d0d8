"""Tests for mfkit.retrieval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.features import Indexer, UnknownIdError
from mfkit.models import MatrixFactorization
from mfkit.retrieval import recommend, top_k_unseen


def brute_top_k(scores: torch.Tensor, seen: torch.Tensor | None, k: int):
    """Per row: the unseen columns sorted by score, best first, cut at k."""
    rows = []
    for i in range(scores.shape[0]):
        unseen = [j for j in range(scores.shape[1]) if seen is None or not seen[i, j]]
        unseen.sort(key=lambda j: -scores[i, j].item())
        rows.append(unseen[:k])
    return rows


@pytest.mark.parametrize(
    ("n_users", "n_movies", "k", "p_seen", "seed"),
    [(1, 1, 1, 0.0, 0), (4, 10, 3, 0.3, 1), (6, 12, 5, 0.7, 2), (8, 20, 20, 0.5, 3)],
)
def test_top_k_unseen_matches_brute_force(
    n_users: int, n_movies: int, k: int, p_seen: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_users, n_movies, generator=g)
    seen = torch.rand(n_users, n_movies, generator=g) < p_seen
    values, indices = top_k_unseen(scores, seen, k)
    assert values.shape == indices.shape == (n_users, k)
    assert indices.dtype == torch.int64
    for i, expected in enumerate(brute_top_k(scores, seen, k)):
        n = len(expected)
        assert indices[i, :n].tolist() == expected
        assert values[i, :n].tolist() == scores[i, expected].tolist()
        assert torch.isneginf(values[i, n:]).all()  # too few unseen movies: -inf padding


def test_top_k_without_mask_is_plain_top_k() -> None:
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(3, 9, generator=g)
    values, indices = top_k_unseen(scores, None, 4)
    assert indices.tolist() == brute_top_k(scores, None, 4)
    torch.testing.assert_close(values, scores.gather(1, indices))
    assert (values[:, :-1] >= values[:, 1:]).all()


def test_top_k_does_not_modify_scores() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5]])
    top_k_unseen(scores, torch.tensor([[False, True, False]]), 2)
    assert torch.equal(scores, torch.tensor([[0.1, 0.9, 0.5]]))


def test_k_larger_than_n_movies_is_capped() -> None:
    scores = torch.tensor([[0.2, 0.8, 0.5], [0.3, 0.1, 0.7]])
    values, indices = top_k_unseen(scores, None, 10)
    assert indices.tolist() == [[1, 2, 0], [2, 0, 1]]
    assert values.shape == (2, 3)


@pytest.mark.parametrize("k", [0, -1, 2.0, 2.5, "3", None, True])
def test_top_k_rejects_bad_k(k) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer, got"):
        top_k_unseen(torch.zeros(1, 3), None, k)


def test_top_k_accepts_numpy_integers() -> None:
    assert top_k_unseen(torch.tensor([[1.0, 3.0, 2.0]]), None, np.int64(2))[1].tolist() == [[1, 2]]


@pytest.fixture
def setup(small):
    idx = Indexer.from_movielens(small)
    model = MatrixFactorization(idx.n_users, idx.n_movies, 4, bias=True, global_mean=3.5, seed=0)
    with torch.no_grad():  # make the biases matter
        model.movie_bias.weight.normal_(generator=torch.Generator().manual_seed(1))
    return small, idx, model


def active_user(ratings: pd.DataFrame, n_movies: int) -> int:
    """The user with the most ratings among those who left 10+ movies unrated."""
    counts = ratings["user_id"].value_counts()
    return int(counts[counts <= n_movies - 10].idxmax())


def test_recommend_excludes_seen_and_sorts_by_model_score(setup) -> None:
    ds, idx, model = setup
    user = active_user(ds.ratings, idx.n_movies)
    watched = set(ds.ratings.loc[ds.ratings["user_id"] == user, "movie_id"])
    assert 10 <= len(watched) <= idx.n_movies - 10
    recs = recommend(model, user, idx, seen=ds.ratings, k=7)
    assert list(recs.columns) == ["movie_id", "title", "score"]
    assert len(recs) == 7
    assert not set(recs["movie_id"]) & watched
    assert recs["movie_id"].is_unique
    assert recs["score"].is_monotonic_decreasing
    # Scores are the model's, and they are the best among the unseen movies.
    all_scores = model.score_all(torch.as_tensor(idx.users.index(user)))[0].detach()
    cols = idx.movies.index(recs["movie_id"].to_numpy())
    np.testing.assert_allclose(recs["score"], all_scores[cols].numpy(), rtol=1e-6)
    unseen = [c for c in range(idx.n_movies) if idx.movies.ids_of(c)[0] not in watched]
    best = sorted(unseen, key=lambda c: -all_scores[c].item())[:7]
    assert cols.tolist() == best
    # Titles match the indexer and the movies frame.
    np.testing.assert_array_equal(recs["title"], idx.titles[cols])
    titles = ds.movies.set_index("movie_id")["title"]
    assert recs["title"].tolist() == titles.loc[recs["movie_id"]].tolist()


def test_recommend_without_seen_ranks_every_movie(setup) -> None:
    _, idx, model = setup
    user = int(idx.users.ids_of(3)[0])
    recs = recommend(model, user, idx, k=idx.n_movies + 5)
    assert len(recs) == idx.n_movies
    assert sorted(recs["movie_id"]) == sorted(idx.movies.ids_of(np.arange(idx.n_movies)))
    expected = model.score_all(torch.tensor([3]))[0].detach().sort(descending=True).values
    np.testing.assert_allclose(recs["score"], expected.numpy(), rtol=1e-6)


def test_recommend_ignores_other_users_ratings(setup) -> None:
    ds, idx, model = setup
    user = active_user(ds.ratings, idx.n_movies)
    others = ds.ratings[ds.ratings["user_id"] != user]
    assert recommend(model, user, idx, seen=others, k=5).equals(recommend(model, user, idx, k=5))


def test_recommend_when_almost_everything_is_seen(setup) -> None:
    _, idx, model = setup
    user = int(idx.users.ids_of(0)[0])
    movie_ids = idx.movies.ids_of(np.arange(idx.n_movies))
    left = {int(movie_ids[4]), int(movie_ids[17])}
    seen = pd.DataFrame(
        {"user_id": user, "movie_id": [m for m in movie_ids if m not in left], "rating": 3}
    )
    recs = recommend(model, user, idx, seen=seen, k=10)
    assert len(recs) == 2
    assert set(recs["movie_id"]) == left
    assert recs["score"].is_monotonic_decreasing and np.isfinite(recs["score"]).all()

    everything = pd.DataFrame({"user_id": user, "movie_id": movie_ids})
    empty = recommend(model, user, idx, seen=everything, k=3)
    assert len(empty) == 0 and list(empty.columns) == ["movie_id", "title", "score"]


def test_recommend_unknown_user(setup) -> None:
    _, idx, model = setup
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\): 99999"):
        recommend(model, 99_999, idx)


@pytest.mark.parametrize("k", [0, -3, 1.5, "5"])
def test_recommend_rejects_bad_k(setup, k) -> None:
    _, idx, model = setup
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommend(model, int(idx.users.ids_of(0)[0]), idx, k=k)


def test_recommend_leaves_model_in_eval_mode_without_gradients(setup) -> None:
    _, idx, model = setup
    model.train()
    recs = recommend(model, int(idx.users.ids_of(1)[0]), idx, k=3)
    assert not model.training
    assert recs["score"].dtype == np.float32
    assert all(p.grad is None for p in model.parameters())


def test_recommend_seen_with_unknown_movie(setup) -> None:
    ds, idx, model = setup
    user = int(idx.users.ids_of(0)[0])
    seen = pd.DataFrame({"user_id": [user, user], "movie_id": [1, 4242]})
    with pytest.raises(UnknownIdError, match=r"unknown movie id\(s\): 4242"):
        recommend(model, user, idx, seen=seen)
