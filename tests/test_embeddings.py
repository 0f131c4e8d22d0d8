"""Tests for mfkit.embeddings: norm_popularity, genre_labels, genre_agreement, tsne_map."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import MovieLens, synthetic_movielens
from mfkit.embeddings import genre_agreement, genre_labels, norm_popularity, tsne_map
from mfkit.features import Indexer, UnknownIdError


@pytest.fixture
def sparse() -> MovieLens:
    """Few ratings for many movies, so that some movies have none."""
    return synthetic_movielens(20, 40, 60, seed=5)


def shuffled_movies(ml: MovieLens, seed: int) -> MovieLens:
    """``ml`` with its movies frame in a random row order (ids no longer equal row + 1)."""
    order = np.random.default_rng(seed).permutation(len(ml.movies))
    return dataclasses.replace(ml, movies=ml.movies.iloc[order].reset_index(drop=True))


# ------------------------------------------------------------------ norm_popularity
@pytest.mark.parametrize("shuffle", [False, True])
def test_norm_popularity_matches_per_movie_loop(sparse: MovieLens, shuffle: bool) -> None:
    ml = shuffled_movies(sparse, seed=1) if shuffle else sparse
    idx = Indexer.from_movielens(ml)
    emb = np.random.default_rng(0).normal(size=(idx.n_movies, 6))
    table = norm_popularity(emb, idx, ml.ratings)

    assert list(table.columns) == ["movie_id", "title", "norm", "n_ratings"]
    assert len(table) == idx.n_movies
    counts = ml.ratings.groupby("movie_id").size()
    for j, (movie_id, title) in enumerate(
        zip(ml.movies["movie_id"], ml.movies["title"], strict=True)
    ):
        row = table.iloc[j]
        assert row["movie_id"] == movie_id
        assert row["title"] == title
        assert row["norm"] == pytest.approx(math.sqrt(sum(x * x for x in emb[j])))
        assert row["n_ratings"] == counts.get(movie_id, 0)
    assert (table["n_ratings"] == 0).any(), "the fixture should leave some movies unrated"
    assert table["n_ratings"].sum() == len(ml.ratings)
    assert np.issubdtype(table["n_ratings"].dtype, np.integer)


def test_norm_popularity_accepts_a_tensor_that_requires_grad(sparse: MovieLens) -> None:
    idx = Indexer.from_movielens(sparse)
    emb = torch.randn(idx.n_movies, 4, generator=torch.Generator().manual_seed(2))
    emb.requires_grad_(True)
    table = norm_popularity(emb, idx, sparse.ratings)
    expected = [float(torch.linalg.vector_norm(emb[j].detach())) for j in range(idx.n_movies)]
    np.testing.assert_allclose(table["norm"].to_numpy(), expected, rtol=1e-6)


def test_norm_popularity_counts_only_the_given_ratings(sparse: MovieLens) -> None:
    idx = Indexer.from_movielens(sparse)
    emb = np.ones((idx.n_movies, 2))
    none = norm_popularity(emb, idx, sparse.ratings.iloc[:0])
    assert none["n_ratings"].tolist() == [0] * idx.n_movies
    half = sparse.ratings.iloc[: len(sparse.ratings) // 2]
    table = norm_popularity(emb, idx, half)
    expected = half["movie_id"].value_counts().reindex(table["movie_id"], fill_value=0)
    assert table["n_ratings"].tolist() == expected.tolist()


def test_norm_popularity_rejects_mismatched_embeddings(sparse: MovieLens) -> None:
    idx = Indexer.from_movielens(sparse)
    with pytest.raises(ValueError, match=rf"has {idx.n_movies - 1} rows .* {idx.n_movies} movies"):
        norm_popularity(np.ones((idx.n_movies - 1, 3)), idx, sparse.ratings)
    with pytest.raises(ValueError, match="2-D"):
        norm_popularity(np.ones(idx.n_movies), idx, sparse.ratings)


def test_norm_popularity_rejects_ratings_of_unknown_movies(sparse: MovieLens) -> None:
    idx = Indexer.from_movielens(sparse)
    ratings = sparse.ratings.copy()
    ratings.loc[ratings.index[0], "movie_id"] = 9999
    with pytest.raises(UnknownIdError, match="9999"):
        norm_popularity(np.ones((idx.n_movies, 2)), idx, ratings)


# ---------------------------------------------------------------------- genre_labels
def brute_genre_labels(movies: pd.DataFrame, genres: list[str], other: str) -> list[str]:
    labels = []
    for _, row in movies.iterrows():
        labels.append(next((g for g in genres if row[g] == 1), other))
    return labels


@pytest.mark.parametrize(
    "genres",
    [["Horror", "Comedy", "Drama"], ["Drama", "Comedy", "Horror"], ["Sci-Fi"], []],
)
def test_genre_labels_takes_the_first_listed_genre(genres: list[str]) -> None:
    movies = synthetic_movielens(5, 60, 10, seed=4).movies
    labels = genre_labels(movies, genres)
    assert isinstance(labels, pd.Series)
    assert labels.index.equals(movies.index)
    assert labels.tolist() == brute_genre_labels(movies, genres, "other")


def test_genre_labels_priority_other_and_index() -> None:
    movies = pd.DataFrame(
        {"Comedy": [1, 1, 0, 0], "Horror": [0, 1, 1, 0], "War": [1, 0, 0, 0]},
        index=[10, 5, 7, 3],
    )
    labels = genre_labels(movies, ["Horror", "Comedy"], other="misc")
    assert labels.to_dict() == {10: "Comedy", 5: "Horror", 7: "Horror", 3: "misc"}
    swapped = genre_labels(movies, ["Comedy", "Horror"])
    assert swapped.to_dict() == {10: "Comedy", 5: "Comedy", 7: "Horror", 3: "other"}
    # War is not listed: movie 10 falls back to the listed genre it has
    assert genre_labels(movies, ["War", "Horror"]).tolist() == ["War", "Horror", "Horror", "other"]


def test_genre_labels_accepts_bool_and_float_flags() -> None:
    movies = pd.DataFrame({"A": [True, False, False], "B": [0.0, 1.0, 0.0]})
    assert genre_labels(movies, ["A", "B"]).tolist() == ["A", "B", "other"]


def test_genre_labels_does_not_modify_movies() -> None:
    movies = pd.DataFrame({"A": [1, 0], "B": [1, 1]})
    before = movies.copy()
    genre_labels(movies, ["B", "A"])
    pd.testing.assert_frame_equal(movies, before)


def test_genre_labels_names_unknown_genres() -> None:
    movies = pd.DataFrame({"Comedy": [1], "Horror": [0]})
    with pytest.raises(ValueError, match=r"unknown genre column\(s\) \['Western'\].*Comedy"):
        genre_labels(movies, ["Comedy", "Western"])


# ------------------------------------------------------------------- genre_agreement
def brute_genre_agreement(emb: np.ndarray, flags: np.ndarray, k: int, measure: str) -> float:
    """Python loops: for each movie, its k best-scoring other movies, then genre overlap."""
    n = len(emb)
    shares = []
    for i in range(n):
        scores = {}
        for j in range(n):
            if j == i:
                continue
            dot = sum(float(a) * float(b) for a, b in zip(emb[i], emb[j], strict=True))
            if measure == "cosine":
                dot /= math.sqrt(sum(float(a) ** 2 for a in emb[i]))
                dot /= math.sqrt(sum(float(b) ** 2 for b in emb[j]))
            scores[j] = dot
        neighbours = sorted(scores, key=lambda j: -scores[j])[:k]
        mine = {g for g, f in enumerate(flags[i]) if f}
        shared = [bool(mine & {g for g, f in enumerate(flags[j]) if f}) for j in neighbours]
        shares.append(sum(shared) / k)
    return sum(shares) / n


@pytest.mark.parametrize("measure", ["dot", "cosine"])
@pytest.mark.parametrize("k", [1, 3, 7, 29])
def test_genre_agreement_matches_brute_force(measure: str, k: int) -> None:
    rng = np.random.default_rng(k)
    emb = rng.normal(size=(30, 5)) * rng.lognormal(0, 1, size=(30, 1))  # varied lengths
    flags = (rng.random((30, 6)) < 0.25).astype(int)
    got = genre_agreement(emb, flags, k=k, measure=measure)
    assert isinstance(got, float)
    assert got == pytest.approx(brute_genre_agreement(emb, flags, k, measure), abs=1e-6)


def test_genre_agreement_with_all_other_movies_is_the_pair_rate() -> None:
    """With k = n - 1 the neighbours are every other movie, whatever the measure."""
    ml = synthetic_movielens(5, 25, 10, seed=6)
    flags = ml.movies[ml.genres].to_numpy()
    n = len(flags)
    pair_rate = np.mean([(flags[i] @ flags[j] > 0) for i in range(n) for j in range(n) if i != j])
    emb = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    for measure in ("dot", "cosine"):
        got = genre_agreement(emb, flags, k=n - 1, measure=measure)
        assert got == pytest.approx(pair_rate, abs=1e-6)


def test_genre_agreement_dot_and_cosine_differ_on_a_long_hub() -> None:
    # a and c point the same way and share a genre; b is long, points elsewhere, and
    # is alone in its genre. Cosine: a<->c agree, b->c does not (2/3). Dot: the long
    # b is the nearest neighbour of both a and c, and b's own is c (score 11 > 10): 0.
    emb = np.array([[1.0, 0.0], [10.0, 10.0], [0.9, 0.2]])
    flags = np.array([[1, 0], [0, 1], [1, 0]])
    assert genre_agreement(emb, flags, k=1, measure="cosine") == pytest.approx(
        brute_genre_agreement(emb, flags, 1, "cosine")
    )
    assert genre_agreement(emb, flags, k=1, measure="cosine") == pytest.approx(2 / 3)
    assert genre_agreement(emb, flags, k=1, measure="dot") == 0.0


def test_genre_agreement_accepts_frames_and_tensors(small: MovieLens) -> None:
    frame = small.movies[small.genres]
    emb = torch.randn(len(frame), 8, generator=torch.Generator().manual_seed(1))
    emb.requires_grad_(True)
    from_frame = genre_agreement(emb, frame, k=5)
    from_array = genre_agreement(emb.detach().numpy(), frame.to_numpy(), k=5)
    assert from_frame == from_array
    assert from_frame == pytest.approx(
        brute_genre_agreement(emb.detach().numpy(), frame.to_numpy(), 5, "cosine"), abs=1e-6
    )


def test_genre_agreement_is_one_when_all_share_a_genre_and_zero_when_none_do() -> None:
    emb = np.random.default_rng(3).normal(size=(8, 3))
    assert genre_agreement(emb, np.ones((8, 2)), k=3) == 1.0
    assert genre_agreement(emb, np.eye(8), k=3) == 0.0  # each movie alone in its genre


@pytest.mark.parametrize("k", [0, -1, 6, 7])
def test_genre_agreement_rejects_k_outside_the_other_movies(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be between 1 and 5 .*got {k}"):
        genre_agreement(np.ones((6, 2)), np.ones((6, 3)), k=k)


@pytest.mark.parametrize("genres", [np.ones((5, 3)), np.ones(6), np.ones((7, 3))])
def test_genre_agreement_rejects_genres_of_the_wrong_shape(genres: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"one row per embedding \(6\)"):
        genre_agreement(np.ones((6, 2)), genres, k=2)


def test_genre_agreement_rejects_unknown_measures_and_1d_embeddings() -> None:
    with pytest.raises(ValueError, match="unknown measure 'euclid'"):
        genre_agreement(np.eye(4), np.ones((4, 2)), k=1, measure="euclid")
    with pytest.raises(ValueError, match="2-D"):
        genre_agreement(np.ones(4), np.ones((4, 2)), k=1)


# -------------------------------------------------------------------------- tsne_map
def two_directions(n_per_group: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows along one of two orthogonal directions, each with length 1 or 10.

    Returns the rows and, per row, (direction, length) group codes.
    """
    rng = np.random.default_rng(seed)
    direction = np.repeat([0, 1], n_per_group)
    long = np.tile([0, 1], n_per_group)
    base = np.eye(6)[direction] + 0.05 * rng.normal(size=(2 * n_per_group, 6))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    return base * np.where(long, 10.0, 1.0)[:, None], np.stack([direction, long], axis=1)


def nearest_on_map(coords: np.ndarray) -> np.ndarray:
    """For each point, the index of its nearest other point in the 2-D map."""
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return dist.argmin(axis=1)


def test_tsne_map_shape_and_reproducibility() -> None:
    emb, _ = two_directions()
    coords = tsne_map(emb, perplexity=5, seed=0)
    assert coords.shape == (len(emb), 2)
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(coords, tsne_map(emb, perplexity=5, seed=0))
    from_tensor = tsne_map(torch.as_tensor(emb, dtype=torch.float64), perplexity=5, seed=0)
    np.testing.assert_array_equal(coords, from_tensor)


def test_tsne_map_seed_matters_only_with_random_init() -> None:
    emb = np.random.default_rng(0).normal(size=(40, 5))
    first, second = (tsne_map(emb, perplexity=5, init="random", seed=s) for s in (0, 1))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(
        tsne_map(emb, perplexity=5, seed=0), tsne_map(emb, perplexity=5, seed=1)
    )


def test_tsne_map_keeps_neighbourhoods_of_its_metric() -> None:
    """Cosine groups the rows by direction and mixes lengths; euclidean keeps both apart."""
    emb, groups = two_directions()
    cosine = groups[nearest_on_map(tsne_map(emb, metric="cosine", perplexity=5))]
    assert (cosine[:, 0] == groups[:, 0]).all()
    assert not (cosine[:, 1] == groups[:, 1]).all()
    euclidean = groups[nearest_on_map(tsne_map(emb, metric="euclidean", perplexity=5))]
    assert (euclidean == groups).all()


@pytest.mark.parametrize("perplexity", [0, -1.0, 10, 12.5, float("nan")])
def test_tsne_map_rejects_bad_perplexity(perplexity: float) -> None:
    with pytest.raises(ValueError, match=r"perplexity must be positive and smaller .*\(10\)"):
        tsne_map(np.random.default_rng(0).normal(size=(10, 3)), perplexity=perplexity)


def test_tsne_map_rejects_1d_input() -> None:
    with pytest.raises(ValueError, match=r"2-D .*shape \(10,\)"):
        tsne_map(np.arange(10.0), perplexity=2)
