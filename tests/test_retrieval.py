"""Tests for mfkit.retrieval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import synthetic_movielens
from mfkit.features import Indexer, SideFeatures, UnknownCategoryError, UnknownIdError
from mfkit.models import DemographicsModel, MatrixFactorization, SoftmaxModel
from mfkit.retrieval import (
    MEASURES,
    AmbiguousTitleError,
    MovieNotFoundError,
    find_movie,
    nearest_movies,
    recommend,
    recommend_from_movies,
    recommend_new_user,
    similarity,
    top_k_unseen,
)


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


# ------------------------------------------------------------------- similarity
def loop_similarity(q: list[float], items: torch.Tensor, measure: str) -> list[float]:
    """Dot or cosine of one query with each item row, with Python loops."""
    out = []
    for v in items.tolist():
        dot = sum(a * b for a, b in zip(q, v, strict=True))
        if measure == "cosine":
            dot /= np.sqrt(sum(a * a for a in q)) * np.sqrt(sum(b * b for b in v))
        out.append(dot)
    return out


def test_measures_are_dot_and_cosine() -> None:
    assert MEASURES == ("dot", "cosine")


@pytest.mark.parametrize("measure", MEASURES)
def test_similarity_shapes_and_values(measure: str) -> None:
    g = torch.Generator().manual_seed(0)
    items = torch.randn(7, 3, generator=g, dtype=torch.float64)
    queries = torch.randn(4, 3, generator=g, dtype=torch.float64)
    one = similarity(queries[1], items, measure)
    many = similarity(queries, items, measure)
    assert one.shape == (7,) and many.shape == (4, 7)
    torch.testing.assert_close(many[1], one)
    for i in range(4):
        expected = torch.tensor(loop_similarity(queries[i].tolist(), items, measure))
        torch.testing.assert_close(many[i], expected.to(many.dtype))


def test_similarity_defaults_to_dot_which_is_the_matrix_product() -> None:
    g = torch.Generator().manual_seed(1)
    items, queries = torch.randn(9, 5, generator=g), torch.randn(3, 5, generator=g)
    torch.testing.assert_close(similarity(queries, items), queries @ items.T)
    torch.testing.assert_close(similarity(queries[0], items, "dot"), items @ queries[0])


def test_cosine_is_dot_of_normalized_rows_and_ignores_lengths() -> None:
    g = torch.Generator().manual_seed(2)
    items = torch.randn(8, 4, generator=g, dtype=torch.float64)
    queries = torch.randn(3, 4, generator=g, dtype=torch.float64)
    unit_q = queries / queries.norm(dim=1, keepdim=True)
    unit_v = items / items.norm(dim=1, keepdim=True)
    cosine = similarity(queries, items, "cosine")
    torch.testing.assert_close(cosine, similarity(unit_q, unit_v, "dot"))
    lengths = torch.rand(8, 1, generator=g, dtype=torch.float64) * 100 + 0.01
    torch.testing.assert_close(similarity(queries * 7.0, items * lengths, "cosine"), cosine)
    # dot does depend on the lengths: a long item wins every query under dot.
    long = items.clone()
    long[5] = 1e3 * long[5].abs() * queries[0].sign()
    assert similarity(queries[0], long).argmax().item() == 5


def test_cosine_lies_in_minus_one_one_even_for_large_norms() -> None:
    g = torch.Generator().manual_seed(3)
    scales = torch.logspace(-2, 8, 300)[:, None]
    x = torch.randn(300, 6, generator=g) * scales
    cosine = similarity(x, torch.cat([x, -x]), "cosine")
    assert torch.isfinite(cosine).all()
    assert cosine.abs().max().item() <= 1 + 1e-6
    # Each vector is at cosine 1 with itself and -1 with its opposite, whatever its length.
    torch.testing.assert_close(cosine[:, :300].diagonal(), torch.ones(300))
    torch.testing.assert_close(cosine[:, 300:].diagonal(), -torch.ones(300))
    assert similarity(x, x).abs().max().item() > 1e10  # dot is unbounded


@pytest.mark.parametrize("measure", ["euclidean", "Cosine", "", None])
def test_similarity_rejects_unknown_measure(measure) -> None:
    with pytest.raises(ValueError, match=r"unknown measure .*choose one of \('dot', 'cosine'\)"):
        similarity(torch.ones(3), torch.ones(4, 3), measure)


@pytest.mark.parametrize("measure", MEASURES)
def test_similarity_rejects_dimension_mismatch(measure: str) -> None:
    with pytest.raises(ValueError, match="query has dimension 3 but items have 4"):
        similarity(torch.ones(3), torch.ones(5, 4), measure)
    with pytest.raises(ValueError, match="query has dimension 2 but items have 4"):
        similarity(torch.ones(6, 2), torch.ones(5, 4), measure)


# ------------------------------------------------------------------- find_movie
def indexer_with_titles(titles: list[str]) -> Indexer:
    """An Indexer whose movies (ids 1..n, rows in that order) carry ``titles``."""
    ds = synthetic_movielens(4, len(titles), 10, seed=0)
    ds.movies["title"] = titles
    return Indexer.from_movielens(ds)


HEAT_TITLES = [
    "Toy Story (1995)",
    "The Heat (1995)",
    "Heat (1995)",
    "Heat of the Night (1990)",
    "GoldenEye (1995)",
    "Chaos (1999)",
    "Chaos (1999)",
]


@pytest.fixture
def heat() -> Indexer:
    return indexer_with_titles(HEAT_TITLES)


def test_find_movie_by_id(heat: Indexer) -> None:
    assert find_movie(heat, 4) == 4
    assert find_movie(heat, np.int64(7)) == 7
    assert isinstance(find_movie(heat, np.int32(1)), int)


def test_find_movie_by_case_insensitive_title_piece(heat: Indexer) -> None:
    assert find_movie(heat, "toy story") == 1
    assert find_movie(heat, "GOLDENEYE") == 5
    assert find_movie(heat, "  the heat ") == 2  # surrounding spaces are ignored
    assert find_movie(heat, "of the night") == 4
    ds = synthetic_movielens(3, 12, 10, seed=0)
    idx = Indexer.from_movielens(ds)
    title = ds.movies.loc[ds.movies["movie_id"] == 11, "title"].item()
    assert find_movie(idx, title.upper()) == 11


def test_exact_title_beats_partial_matches(heat: Indexer) -> None:
    # "heat (1995)" is also a piece of "The Heat (1995)", but one title is exactly it.
    assert find_movie(heat, "Heat (1995)") == 3
    assert find_movie(heat, "hEaT (1995)") == 3
    with pytest.raises(AmbiguousTitleError, match="'heat' matches 3 titles"):
        find_movie(heat, "heat")


def test_ambiguous_title_lists_the_matches(heat: Indexer) -> None:
    with pytest.raises(AmbiguousTitleError) as info:
        find_movie(heat, "Heat")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for title in ("The Heat (1995)", "Heat (1995)", "Heat of the Night (1990)"):
        assert title in message
    assert "Toy Story" not in message and "movie_id" in message
    # Two movies with the same exact title: still ambiguous, the id is needed.
    with pytest.raises(AmbiguousTitleError, match=r"matches 2 titles: Chaos \(1999\); Chaos"):
        find_movie(heat, "chaos (1999)")


def test_ambiguous_title_shows_at_most_ten_matches() -> None:
    idx = Indexer.from_movielens(synthetic_movielens(3, 25, 10, seed=0))
    with pytest.raises(AmbiguousTitleError, match=r"matches 25 titles: .*; \.\.\.") as info:
        find_movie(idx, "synthetic movie")
    shown = str(info.value).split(": ", 1)[1].split(". Use")[0].split("; ")
    assert len(shown) == 11 and shown[-1] == "..."


def test_find_movie_not_found(heat: Indexer) -> None:
    with pytest.raises(MovieNotFoundError, match="no movie title contains 'casablanca'") as info:
        find_movie(heat, "casablanca")
    assert isinstance(info.value, KeyError)
    with pytest.raises(MovieNotFoundError, match="there is no movie with movie_id 99"):
        find_movie(heat, 99)
    with pytest.raises(MovieNotFoundError, match="movie_id 0"):
        find_movie(heat, 0)


@pytest.mark.parametrize("movie", [None, 3.0, True, "", "   ", [3], b"Heat"])
def test_find_movie_rejects_bad_types(heat: Indexer, movie) -> None:
    with pytest.raises(TypeError, match="movie must be a movie_id or a piece of a title, got"):
        find_movie(heat, movie)


# --------------------------------------------------------------- nearest_movies
def brute_neighbours(emb: torch.Tensor, row: int, measure: str) -> list[tuple[int, float]]:
    """(row, score) of every other movie, best first, scores from Python loops."""
    scores = loop_similarity(emb[row].tolist(), emb, measure)
    others = [(j, scores[j]) for j in range(len(emb)) if j != row]
    return sorted(others, key=lambda p: -p[1])


@pytest.fixture
def embedded(heat: Indexer) -> tuple[Indexer, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(heat.n_movies, 3, generator=g, dtype=torch.float64)
    emb[0] *= 10.0  # a long vector: wins under dot, not under cosine
    return heat, emb


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_nearest_movies_match_brute_force(embedded, measure: str, k: int) -> None:
    idx, emb = embedded
    result = nearest_movies(emb, "goldeneye", idx, measure=measure, k=k)
    assert list(result.columns) == ["movie_id", "title", "score"]
    assert len(result) == k
    assert result.attrs["query"] == "GoldenEye (1995)"
    assert 5 not in set(result["movie_id"])
    assert result["score"].is_monotonic_decreasing
    expected = brute_neighbours(emb, 4, measure)[:k]
    rows = idx.movies.index(result["movie_id"].to_numpy())
    assert rows.tolist() == [j for j, _ in expected]
    np.testing.assert_allclose(result["score"], [s for _, s in expected], rtol=1e-12)
    np.testing.assert_array_equal(result["title"], idx.titles[rows])


def test_dot_and_cosine_neighbours_differ_on_long_vectors(embedded) -> None:
    idx, emb = embedded
    by_dot = nearest_movies(emb, 2, idx, measure="dot", k=6)
    by_cos = nearest_movies(emb, 2, idx, measure="cosine", k=6)
    cos = similarity(emb[1], emb, "cosine")
    assert by_cos["score"].between(-1 - 1e-12, 1 + 1e-12).all()
    np.testing.assert_allclose(by_cos["score"], cos[idx.movies.index(by_cos["movie_id"])])
    assert set(by_dot["movie_id"]) == set(by_cos["movie_id"])  # k = all the others
    assert by_dot["movie_id"].tolist() != by_cos["movie_id"].tolist()


@pytest.mark.parametrize("measure", MEASURES)
def test_nearest_movies_leave_out_the_query_even_among_twins(heat: Indexer, measure) -> None:
    emb = torch.zeros(heat.n_movies, 2)
    emb[:, 0] = torch.linspace(-1.0, 1.0, heat.n_movies)
    emb[[1, 2, 3]] = torch.tensor([4.0, 1.0])  # three movies with identical embeddings
    result = nearest_movies(emb, "Heat (1995)", heat, measure=measure, k=4)
    assert result.attrs["query"] == "Heat (1995)"
    assert 3 not in set(result["movie_id"])
    assert set(result["movie_id"][:2]) == {2, 4}  # the twins come first
    np.testing.assert_allclose(result["score"][:2], similarity(emb[2], emb[[1, 3]], measure))


def test_nearest_movies_accepts_ids_and_titles(embedded) -> None:
    idx, emb = embedded
    by_id = nearest_movies(emb, 3, idx, k=3)
    by_title = nearest_movies(emb, "HEAT (1995)", idx, k=3)
    pd.testing.assert_frame_equal(by_id, by_title)
    assert by_id.attrs["query"] == "Heat (1995)"
    with pytest.raises(MovieNotFoundError):
        nearest_movies(emb, "casablanca", idx)
    with pytest.raises(AmbiguousTitleError):
        nearest_movies(emb, "heat", idx)


@pytest.mark.parametrize("k", [0, -2, 1.5, "3", None, True])
def test_nearest_movies_rejects_bad_k(embedded, k) -> None:
    idx, emb = embedded
    with pytest.raises(ValueError, match="k must be a positive integer, got"):
        nearest_movies(emb, 1, idx, k=k)


def test_nearest_movies_rejects_unknown_measure(embedded) -> None:
    idx, emb = embedded
    with pytest.raises(ValueError, match="unknown measure 'euclid'"):
        nearest_movies(emb, 1, idx, measure="euclid")


@pytest.mark.parametrize("measure", MEASURES)
def test_nearest_movies_never_returns_the_query_when_k_is_large(embedded, measure) -> None:
    idx, emb = embedded
    result = nearest_movies(emb, 3, idx, measure=measure, k=idx.n_movies)
    assert 3 not in set(result["movie_id"])
    assert len(result) == idx.n_movies - 1
    assert np.isfinite(result["score"]).all()


# -------------------------------------------------------- recommend by measure
def brute_recommend(scores: torch.Tensor, watched_rows: set[int], k: int) -> list[int]:
    unseen = [j for j in range(len(scores)) if j not in watched_rows]
    return sorted(unseen, key=lambda j: -scores[j].item())[:k]


@pytest.fixture
def long_model(setup):
    """The biased model with a few long movie vectors, so dot and cosine rank differently."""
    ds, idx, model = setup
    with torch.no_grad():
        model.V[::5] *= 8.0
    return ds, idx, model


@pytest.mark.parametrize("measure", MEASURES)
def test_recommend_by_measure_matches_brute_force(long_model, measure: str) -> None:
    ds, idx, model = long_model
    user = active_user(ds.ratings, idx.n_movies)
    watched = set(ds.ratings.loc[ds.ratings["user_id"] == user, "movie_id"])
    watched_rows = set(idx.movies.index(list(watched)).tolist())
    recs = recommend(model, user, idx, seen=ds.ratings, k=8, measure=measure)
    assert len(recs) == 8
    assert not set(recs["movie_id"]) & watched
    assert recs["score"].is_monotonic_decreasing
    row = int(idx.users.index(user)[0])
    U, V = model.U.detach().double(), model.V.detach().double()  # noqa: N806
    scores = torch.tensor(loop_similarity(U[row].tolist(), V, measure))
    cols = idx.movies.index(recs["movie_id"].to_numpy())
    assert cols.tolist() == brute_recommend(scores, watched_rows, 8)
    np.testing.assert_allclose(recs["score"], scores[cols].numpy(), rtol=1e-5, atol=1e-6)
    if measure == "cosine":
        assert recs["score"].abs().max() <= 1 + 1e-6


def test_recommend_measures_differ_from_each_other_and_from_the_model(long_model) -> None:
    ds, idx, model = long_model
    user = active_user(ds.ratings, idx.n_movies)
    lists = {
        m: recommend(model, user, idx, seen=ds.ratings, k=8, measure=m)["movie_id"].tolist()
        for m in (None, "dot", "cosine")
    }
    assert lists["dot"] != lists["cosine"]
    assert lists[None] != lists["dot"]  # the biases change the ranking


def test_recommend_measure_none_ranks_by_score_all(long_model) -> None:
    ds, idx, model = long_model
    user = active_user(ds.ratings, idx.n_movies)
    watched = set(ds.ratings.loc[ds.ratings["user_id"] == user, "movie_id"])
    recs = recommend(model, user, idx, seen=ds.ratings, k=6, measure=None)
    pd.testing.assert_frame_equal(recs, recommend(model, user, idx, seen=ds.ratings, k=6))
    scores = model.score_all(torch.as_tensor(idx.users.index(user)))[0].detach()
    watched_rows = set(idx.movies.index(list(watched)).tolist())
    cols = idx.movies.index(recs["movie_id"].to_numpy())
    assert cols.tolist() == brute_recommend(scores, watched_rows, 6)
    np.testing.assert_allclose(recs["score"], scores[cols].numpy(), rtol=1e-6)


def test_recommend_rejects_unknown_measure(setup) -> None:
    _, idx, model = setup
    with pytest.raises(ValueError, match="unknown measure 'pearson'"):
        recommend(model, int(idx.users.ids_of(0)[0]), idx, measure="pearson")


# ------------------------------------------------------- recommend_from_movies
@pytest.fixture
def bag_model(heat: Indexer) -> tuple[Indexer, SoftmaxModel]:
    return heat, SoftmaxModel(heat.n_movies, 3, hidden=(5,), init_std=1.0, seed=0)


def logits_of(model: SoftmaxModel, rows: list[int], n_movies: int) -> torch.Tensor:
    bag = torch.zeros(1, n_movies)
    for row in rows:
        bag[0, row] = 1.0
    with torch.no_grad():
        return model(bag)[0]


@pytest.mark.parametrize("liked", [[3], [1, 5], [2, 4, 7]])
def test_recommend_from_movies_matches_brute_force(bag_model, liked: list[int]) -> None:
    idx, model = bag_model
    recs = recommend_from_movies(model, liked, idx, k=3)
    assert list(recs.columns) == ["movie_id", "title", "score"]
    assert len(recs) == 3 and recs["movie_id"].is_unique
    assert not set(recs["movie_id"]) & set(liked)
    assert recs["score"].is_monotonic_decreasing
    rows = idx.movies.index(liked).tolist()
    scores = logits_of(model, rows, idx.n_movies)
    cols = idx.movies.index(recs["movie_id"].to_numpy())
    assert cols.tolist() == brute_recommend(scores, set(rows), 3)
    np.testing.assert_allclose(recs["score"], scores[cols].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(recs["title"], idx.titles[cols])
    assert recs.attrs["liked"] == [HEAT_TITLES[r] for r in rows]


def test_recommend_from_movies_depends_on_the_liked_movies(bag_model) -> None:
    idx, model = bag_model
    lists = [recommend_from_movies(model, [m], idx, k=6) for m in (1, 4)]
    assert lists[0]["score"].tolist() != lists[1]["score"].tolist()


def test_recommend_from_movies_accepts_titles_and_ids(bag_model) -> None:
    idx, model = bag_model
    by_title = recommend_from_movies(model, ["toy story", "Heat (1995)"], idx, k=4)
    by_id = recommend_from_movies(model, [1, np.int64(3)], idx, k=4)
    mixed = recommend_from_movies(model, ["GOLDENEYE", 3], idx, k=4)
    pd.testing.assert_frame_equal(by_title, by_id)
    assert by_title.attrs["liked"] == ["Toy Story (1995)", "Heat (1995)"]
    assert by_id.attrs["liked"] == ["Toy Story (1995)", "Heat (1995)"]
    assert mixed.attrs["liked"] == ["GoldenEye (1995)", "Heat (1995)"]
    assert not {1, 3} & set(by_title["movie_id"]) and not {3, 5} & set(mixed["movie_id"])


def test_recommend_from_movies_returns_only_the_movies_left(bag_model) -> None:
    idx, model = bag_model
    recs = recommend_from_movies(model, [1, 2], idx, k=50)
    assert len(recs) == idx.n_movies - 2
    assert set(recs["movie_id"]) == {3, 4, 5, 6, 7}
    assert np.isfinite(recs["score"]).all()
    everything = recommend_from_movies(model, list(range(1, 8)), idx, k=3)
    assert len(everything) == 0 and list(everything.columns) == ["movie_id", "title", "score"]


def test_recommend_from_movies_errors(bag_model) -> None:
    idx, model = bag_model
    with pytest.raises(ValueError, match="give at least one movie"):
        recommend_from_movies(model, [], idx)
    with pytest.raises(MovieNotFoundError, match="no movie title contains 'Jaws'"):
        recommend_from_movies(model, [1, "Jaws"], idx)
    with pytest.raises(MovieNotFoundError, match="there is no movie with movie_id 99"):
        recommend_from_movies(model, [99], idx)
    with pytest.raises(AmbiguousTitleError, match="'chaos' matches 2 titles"):
        recommend_from_movies(model, ["chaos"], idx)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommend_from_movies(model, [1], idx, k=0)


def test_recommend_from_movies_leaves_model_in_eval_mode_without_gradients(bag_model) -> None:
    idx, model = bag_model
    model.train()
    recs = recommend_from_movies(model, [2], idx, k=2)
    assert not model.training
    assert recs["score"].dtype == np.float32
    assert all(p.grad is None for p in model.parameters())


def test_recommend_from_movies_with_a_mean_pooling_model_ignores_repeats(bag_model) -> None:
    idx, model = bag_model
    once = recommend_from_movies(model, [2, 4], idx, k=5)
    twice = recommend_from_movies(model, [2, "Heat of the Night", 4], idx, k=5)
    pd.testing.assert_frame_equal(once, twice)


# ------------------------------------------------------------------- candidates
def best_allowed(scores: torch.Tensor, idx: Indexer, allowed: set[int], k: int) -> list[int]:
    """Movie ids in ``allowed``, sorted by score, best first, cut at k (a Python loop)."""
    ids = idx.movies.ids_of(np.arange(idx.n_movies)).tolist()
    ranked = sorted((m for m in ids if m in allowed), key=lambda m: -scores[ids.index(m)].item())
    return ranked[:k]


def test_recommend_only_among_candidates_and_never_seen(setup) -> None:
    ds, idx, model = setup
    user = active_user(ds.ratings, idx.n_movies)
    watched = set(ds.ratings.loc[ds.ratings["user_id"] == user, "movie_id"])
    counts = ds.ratings["movie_id"].value_counts()
    candidates = counts.index[counts >= 5].tolist()
    unseen = set(candidates) - watched
    assert len(unseen) >= 6 and set(candidates) & watched  # the test would notice either error
    recs = recommend(model, user, idx, seen=ds.ratings, k=6, candidates=candidates)
    assert len(recs) == 6
    assert set(recs["movie_id"]) <= unseen
    all_scores = model.score_all(torch.as_tensor(idx.users.index(user)))[0].detach()
    assert recs["movie_id"].tolist() == best_allowed(all_scores, idx, unseen, 6)


def test_recommend_with_few_candidates_returns_fewer(setup) -> None:
    ds, idx, model = setup
    user = int(idx.users.ids_of(2)[0])
    recs = recommend(model, user, idx, k=10, candidates=np.array([7, 3, 11]))
    assert sorted(recs["movie_id"]) == [3, 7, 11]
    assert recs["score"].is_monotonic_decreasing
    assert len(recommend(model, user, idx, k=10, candidates=[])) == 0


def test_recommend_with_an_unknown_candidate(setup) -> None:
    _, idx, model = setup
    with pytest.raises(UnknownIdError, match=r"unknown movie id\(s\): 4242"):
        recommend(model, int(idx.users.ids_of(0)[0]), idx, candidates=[1, 4242])


# ------------------------------------------------------------ recommend_new_user
@pytest.fixture
def newcomer(small):
    side = SideFeatures.from_movielens(small)
    model = DemographicsModel(side, dim=3, movie_dim=4, hidden=(8,), seed=0)
    with torch.no_grad():  # spread the scores out
        model.movie_embedding.weight.mul_(20)
    occupation = str(small.users["occupation"].iloc[0])
    return small, Indexer.from_movielens(small), model, occupation


@pytest.mark.parametrize("use_candidates", [False, True])
def test_recommend_new_user_matches_brute_force(newcomer, use_candidates: bool) -> None:
    ds, idx, model, occupation = newcomer
    profile = {"age": 24, "gender": "F", "occupation": occupation, "zip_code": "10003"}
    candidates = ds.movies["movie_id"].iloc[::3].tolist() if use_candidates else None
    model.train()
    recs = recommend_new_user(model, idx, k=5, candidates=candidates, **profile)
    assert not model.training
    assert list(recs.columns) == ["movie_id", "title", "score"] and len(recs) == 5
    scores = model.score_profile(model.side.profile(**profile))[0]
    allowed = set(candidates or ds.movies["movie_id"])
    assert recs["movie_id"].tolist() == best_allowed(scores, idx, allowed, 5)
    cols = idx.movies.index(recs["movie_id"].to_numpy())
    np.testing.assert_allclose(recs["score"], scores[cols].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(recs["title"], idx.titles[cols])
    assert ((recs["score"] > 1) & (recs["score"] < 5)).all()


def test_recommend_new_user_depends_on_the_profile(newcomer) -> None:
    _, idx, model, occupation = newcomer
    young = recommend_new_user(model, idx, age=12, gender="F", occupation=occupation, k=5)
    old = recommend_new_user(model, idx, age=70, gender="M", occupation=occupation, k=5)
    assert young["score"].tolist() != old["score"].tolist()


def test_recommend_new_user_needs_a_profile_model(setup) -> None:
    _, idx, model = setup
    with pytest.raises(TypeError, match="a MatrixFactorization needs a user id"):
        recommend_new_user(model, idx, age=30, gender="M", occupation="student")


def test_recommend_new_user_checks_the_answers(newcomer) -> None:
    ds, idx, model, occupation = newcomer
    with pytest.raises(UnknownCategoryError, match="unknown occupation 'astronaut'") as info:
        recommend_new_user(model, idx, age=30, gender="M", occupation="astronaut")
    for valid in ds.users["occupation"].unique():
        assert valid in str(info.value)
    with pytest.raises(UnknownCategoryError, match="unknown gender 'X'; choose one of: F, M"):
        recommend_new_user(model, idx, age=30, gender="X", occupation=occupation)
    with pytest.raises(ValueError, match="age must be a whole number of years from 1 to 120"):
        recommend_new_user(model, idx, age=0, gender="M", occupation=occupation)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommend_new_user(model, idx, age=30, gender="M", occupation=occupation, k=0)
