"""Tests for mfkit.evaluation: scorer, top_k_for_users, evaluate_ranking."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import synthetic_movielens
from mfkit.evaluation import (
    evaluate_leave_one_out,
    evaluate_ranking,
    popularity_scorer,
    scorer,
    top_k_for_users,
)
from mfkit.features import IdIndex, Indexer
from mfkit.models import EASE, MatrixFactorization, SoftmaxModel
from mfkit.retrieval import similarity
from mfkit.splits import MissingColumnsError

METRICS = ["precision", "recall", "ndcg", "hit_rate", "coverage", "popularity"]


def brute_evaluate(
    scores: np.ndarray,
    indexer: Indexer,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int,
    min_rating: float,
) -> dict[str, float]:
    """The ranking metrics with Python loops over users; ``scores`` is (n_users, n_movies)."""
    user_row = {u: i for i, u in enumerate(indexer.users.ids.tolist())}
    movie_row = {m: j for j, m in enumerate(indexer.movies.ids.tolist())}
    n_train = [0] * indexer.n_movies
    watched: dict[int, set[int]] = {}
    for u, m in zip(train["user_id"], train["movie_id"], strict=True):
        watched.setdefault(user_row[u], set()).add(movie_row[m])
        n_train[movie_row[m]] += 1
    relevant: dict[int, set[int]] = {}
    for u, m, r in zip(test["user_id"], test["movie_id"], test["rating"], strict=True):
        if r >= min_rating:
            relevant.setdefault(user_row[u], set()).add(movie_row[m])
    sums = dict.fromkeys(["precision", "recall", "ndcg", "hit_rate"], 0.0)
    covered: set[int] = set()
    popularity: list[int] = []
    for i, rel in relevant.items():
        unseen = [j for j in range(indexer.n_movies) if j not in watched.get(i, set())]
        top = sorted(unseen, key=lambda j: -scores[i][j])[:k]
        hits = [j in rel for j in top]
        sums["precision"] += sum(hits) / k
        sums["recall"] += sum(hits) / len(rel)
        dcg = sum(h / math.log2(rank + 2) for rank, h in enumerate(hits))
        sums["ndcg"] += dcg / sum(1 / math.log2(rank + 2) for rank in range(min(k, len(rel))))
        sums["hit_rate"] += float(any(hits))
        covered.update(top)
        popularity.extend(n_train[j] for j in top)
    n = len(relevant)
    result = {"users": n} | {f"{name}@{k}": value / n for name, value in sums.items()}
    result[f"coverage@{k}"] = len(covered) / indexer.n_movies
    result[f"popularity@{k}"] = sum(popularity) / len(popularity)
    return result


def assert_matches(result: pd.Series, expected: dict[str, float]) -> None:
    assert list(result.index) == list(expected)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


# --------------------------------------------------------------- hand-made case
# 4 users (ids 10, 20, 30, 40), 6 movies (ids 101..106 in rows 0..5).
TINY_SCORES = torch.tensor(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # user 10: movie 101 scores highest
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # user 20
        [0.5, 0.9, 0.1, 0.7, 0.3, 0.2],  # user 30
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # user 40: nothing relevant in test
    ]
)
TINY_TRAIN = pd.DataFrame(
    {
        "user_id": [10, 20, 20, 30, 40],
        "movie_id": [101, 106, 105, 102, 101],
        "rating": [5, 3, 4, 2, 4],
    }
)
TINY_TEST = pd.DataFrame(
    {
        # user 10's 101 is also in train (a leak): relevant, but must never be recommended.
        "user_id": [10, 10, 10, 20, 20, 30, 30, 40],
        "movie_id": [101, 103, 106, 104, 101, 104, 105, 102],
        "rating": [5, 4, 5, 2, 4, 5, 4, 3],
    }
)


@pytest.fixture
def tiny() -> Indexer:
    titles = np.array([f"Movie {m}" for m in range(101, 107)], dtype=object)
    return Indexer(IdIndex([10, 20, 30, 40], "user"), IdIndex(range(101, 107), "movie"), titles)


def tiny_score(calls: list[list[int]] | None = None):
    def score(rows: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(rows.tolist())
        return TINY_SCORES[rows]

    return score


def test_hand_computed_metrics(tiny: Indexer) -> None:
    # Top 2 among unseen movies (rows), relevant rows:
    #   user 10: unseen 1..5 -> [1, 2]; relevant {0, 2, 5} -> hit at rank 1
    #   user 20: unseen 0..3 -> [3, 2]; relevant {0} (104 is rated 2) -> no hit
    #   user 30: unseen all but 1 -> [3, 0]; relevant {3, 4} -> hit at rank 0
    #   user 40: no test rating >= 4 -> left out
    calls: list[list[int]] = []
    result = evaluate_ranking(tiny_score(calls), tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=4)
    d = 1 / math.log2(3)
    expected = {
        "users": 3,
        "precision@2": (1 / 2 + 0 + 1 / 2) / 3,
        "recall@2": (1 / 3 + 0 + 1 / 2) / 3,
        "ndcg@2": (d / (1 + d) + 0 + 1 / (1 + d)) / 3,
        "hit_rate@2": 2 / 3,
        "coverage@2": 4 / 6,  # rows {0, 1, 2, 3}
        # training counts per row: [2, 1, 0, 0, 1, 1]; lists [1, 2], [3, 2], [3, 0]
        "popularity@2": (1 + 0 + 0 + 0 + 0 + 2) / 6,
    }
    assert_matches(result, expected)
    assert sorted(r for batch in calls for r in batch) == [0, 1, 2]  # user 40 is not scored
    assert_matches(result, brute_evaluate(TINY_SCORES.numpy(), tiny, TINY_TRAIN, TINY_TEST, 2, 4))


def test_per_user_rows_by_hand_and_their_means(tiny: Indexer) -> None:
    # The users of test_hand_computed_metrics: 10 hits at rank 1, 20 misses, 30 hits at 0.
    rows = evaluate_ranking(
        tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2, per_user=True, min_rating=4
    )
    d = 1 / math.log2(3)
    assert rows.index.tolist() == [10, 20, 30]  # user 40 has no relevant movie
    assert rows["hit_rate@2"].tolist() == [1.0, 0.0, 1.0]
    assert rows["ndcg@2"].to_numpy() == pytest.approx([d / (1 + d), 0.0, 1 / (1 + d)])
    assert rows["recall@2"].to_numpy() == pytest.approx([1 / 3, 0.0, 1 / 2])
    means = evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=4)
    for column in rows.columns:
        assert rows[column].mean() == pytest.approx(means[column])


def test_training_movies_are_never_recommended(tiny: Indexer) -> None:
    seen_users, seen_movies, _ = tiny.tensors(TINY_TRAIN)
    top = top_k_for_users(
        tiny_score(), torch.arange(4), seen_users, seen_movies, tiny.n_movies, k=3
    )
    assert top.tolist() == [[1, 2, 3], [3, 2, 1], [3, 0, 4], [5, 4, 3]]
    train_pairs = set(zip(seen_users.tolist(), seen_movies.tolist(), strict=True))
    assert not any((i, j) in train_pairs for i in range(4) for j in top[i].tolist())
    # Movie 101 is user 10's best-scored and a relevant test movie: counting it would make
    # user 10's top 1 a hit, but it is a training movie, so the top 1 is 102, a miss.
    result = evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=1, min_rating=4)
    assert result["precision@1"] == pytest.approx(1 / 3)  # only user 30 hits (104)
    without_train = evaluate_ranking(
        tiny_score(), tiny, TINY_TRAIN.iloc[1:], TINY_TEST, k=1, min_rating=4
    )
    assert without_train["precision@1"] == pytest.approx(2 / 3)  # now 101 counts for user 10


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("min_rating", [3, 4, 5])
def test_tiny_case_matches_brute_force(tiny: Indexer, k: int, min_rating: float) -> None:
    result = evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=k, min_rating=min_rating)
    expected = brute_evaluate(TINY_SCORES.numpy(), tiny, TINY_TRAIN, TINY_TEST, k, min_rating)
    assert_matches(result, expected)


def test_users_without_relevant_ratings_are_left_out(tiny: Indexer) -> None:
    assert (
        evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=4)["users"] == 3
    )
    lenient = evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=3)
    assert lenient["users"] == 4  # user 40's rating 3 now counts
    assert lenient["coverage@2"] == pytest.approx(1.0)  # user 40's [5, 4] adds rows 4, 5
    strict = evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=5)
    assert strict["users"] == 2  # users 10 and 30


@pytest.mark.parametrize("min_rating", [6, 5.5])
def test_nothing_relevant_raises(tiny: Indexer, min_rating: float) -> None:
    with pytest.raises(ValueError, match=f"no test rating is >= min_rating={min_rating}"):
        evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, min_rating=min_rating)
    low = TINY_TEST.assign(rating=1)
    with pytest.raises(ValueError, match="nothing is relevant"):
        evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, low, min_rating=4)


def test_the_relevance_threshold_has_no_default(tiny: Indexer) -> None:
    with pytest.raises(TypeError, match="min_rating"):
        evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2)  # type: ignore[call-arg]


def test_implicit_test_data_needs_no_rating_column(tiny: Indexer) -> None:
    # min_rating=None: every test interaction is relevant, as min_rating=1 on 1-5 stars.
    interactions = TINY_TEST.drop(columns="rating")
    implicit_result = evaluate_ranking(
        tiny_score(), tiny, TINY_TRAIN, interactions, k=2, min_rating=None
    )
    explicit = evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=1)
    pd.testing.assert_series_equal(implicit_result, explicit)
    assert implicit_result["users"] == 4
    with pytest.raises(MissingColumnsError, match="pass min_rating=None"):
        evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, interactions, k=2, min_rating=4)
    with pytest.raises(ValueError, match="test is empty"):
        evaluate_ranking(tiny_score(), tiny, TINY_TRAIN, interactions.iloc[:0], min_rating=None)


def test_evaluate_ranking_is_deterministic_and_leaves_inputs_alone(tiny: Indexer) -> None:
    train, test = TINY_TRAIN.copy(), TINY_TEST.copy()
    first = evaluate_ranking(tiny_score(), tiny, train, test, k=3, min_rating=4)
    pd.testing.assert_series_equal(
        first, evaluate_ranking(tiny_score(), tiny, train, test, k=3, min_rating=4)
    )
    pd.testing.assert_frame_equal(train, TINY_TRAIN)
    pd.testing.assert_frame_equal(test, TINY_TEST)


def test_padding_of_short_lists_is_not_counted(tiny: Indexer) -> None:
    # User 10 trained on 5 of the 6 movies: one unseen movie (106), but k=3.
    train = pd.DataFrame({"user_id": 10, "movie_id": [101, 102, 103, 104, 105], "rating": 3})
    test = pd.DataFrame({"user_id": 10, "movie_id": [106, 101, 102], "rating": 5})
    result = evaluate_ranking(tiny_score(), tiny, train, test, k=3, min_rating=4)
    assert result["hit_rate@3"] == 1.0
    assert result["recall@3"] == pytest.approx(1 / 3)  # 106 only: 101, 102 were trained on
    assert result["coverage@3"] == pytest.approx(1 / 6)  # only 106 was recommended
    assert result["popularity@3"] == 0.0  # 106 has no training rating


# ------------------------------------------------------------- models and scorer
@pytest.fixture(scope="module")
def fitted_case():
    ds = synthetic_movielens(40, 60, 900, seed=5)
    idx = Indexer.from_movielens(ds)
    ratings = ds.ratings.sample(frac=1.0, random_state=0)
    train, test = ratings.iloc[:700], ratings.iloc[700:]
    model = MatrixFactorization(idx.n_users, idx.n_movies, 4, bias=True, global_mean=3.5, seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        model.movie_bias.weight.normal_(generator=g)
        model.V[::7] *= 5.0  # long vectors: dot and cosine rank differently
    return idx, train, test, model


def all_scores(model: MatrixFactorization, measure: str | None) -> np.ndarray:
    with torch.no_grad():
        if measure is None:
            return model.score_all(torch.arange(len(model.U))).double().numpy()
        return similarity(model.U.double(), model.V.double(), measure).numpy()


@pytest.mark.parametrize("measure", [None, "dot", "cosine"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_model_metrics_match_brute_force(fitted_case, measure, k: int) -> None:
    idx, train, test, model = fitted_case
    model.train()
    result = evaluate_ranking(model, idx, train, test, k=k, measure=measure, min_rating=4)
    assert not model.training
    expected = brute_evaluate(all_scores(model, measure), idx, train, test, k, 4)
    assert_matches(result, expected)
    assert 0 < result["users"] < idx.n_users
    assert 0 < result[f"hit_rate@{k}"] <= 1 and 0 < result[f"coverage@{k}"] <= 1


def test_measures_give_different_rankings(fitted_case) -> None:
    idx, train, test, model = fitted_case
    results = [
        evaluate_ranking(model, idx, train, test, k=5, measure=m, min_rating=4)
        for m in (None, "dot")
    ]
    results.append(evaluate_ranking(model, idx, train, test, k=5, measure="cosine", min_rating=4))
    popularity = [r["popularity@5"] for r in results]
    assert len(set(popularity)) == 3


def test_scorer_returns_the_scores_of_each_measure(fitted_case) -> None:
    _, _, _, model = fitted_case
    rows = torch.tensor([3, 0, 3, 17])
    with torch.no_grad():
        by_model = scorer(model)(rows)
        assert by_model.shape == (4, len(model.V))
        torch.testing.assert_close(by_model, model.score_all(rows))
        torch.testing.assert_close(scorer(model, "dot")(rows), model.U[rows] @ model.V.T)
        cosine = scorer(model, "cosine")(rows)
        unit_u = model.U[rows] / model.U[rows].norm(dim=1, keepdim=True)
        unit_v = model.V / model.V.norm(dim=1, keepdim=True)
        torch.testing.assert_close(cosine, unit_u @ unit_v.T)
    with pytest.raises(ValueError, match="unknown measure 'manhattan'"):
        scorer(model, "manhattan")(rows)


# ------------------------------------------------------------ top_k_for_users
def brute_top_k(scores: torch.Tensor, rows: list[int], seen: set[tuple[int, int]], k: int):
    out = []
    for i in rows:
        unseen = [j for j in range(scores.shape[1]) if (i, j) not in seen]
        out.append(sorted(unseen, key=lambda j: -scores[i, j].item())[:k])
    return out


@pytest.fixture
def random_case():
    g = torch.Generator().manual_seed(6)
    scores = torch.randn(23, 15, generator=g)
    cells = torch.randperm(23 * 15, generator=g)[:120]
    seen_users, seen_movies = cells // 15, cells % 15
    user_rows = torch.randperm(23, generator=g)[:17]  # unsorted, some users left out
    return scores, user_rows, seen_users, seen_movies


def test_top_k_for_users_with_scores_gives_each_row_its_score(random_case) -> None:
    scores, user_rows, seen_users, seen_movies = random_case
    args = (lambda rows: scores[rows], user_rows, seen_users, seen_movies, 15, 14)
    values, top = top_k_for_users(*args, batch_size=5, with_scores=True)
    assert torch.equal(top, top_k_for_users(*args, batch_size=5))
    padded = top < 0  # users with fewer than 14 unseen movies
    assert padded.any() and bool(torch.isinf(values[padded]).all())
    expected = scores[user_rows[:, None].expand_as(top)[~padded], top[~padded]]
    torch.testing.assert_close(values[~padded], expected)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 16, 17, 512])
def test_top_k_for_users_is_the_same_in_any_batch_size(random_case, batch_size: int) -> None:
    scores, user_rows, seen_users, seen_movies = random_case
    calls: list[int] = []

    def score(rows: torch.Tensor) -> torch.Tensor:
        calls.append(len(rows))
        return scores[rows]

    args = (user_rows, seen_users, seen_movies, 15, 4)
    top = top_k_for_users(score, *args, batch_size=batch_size)
    assert top.shape == (17, 4) and top.dtype == torch.int64
    assert calls == [min(batch_size, 17 - s) for s in range(0, 17, batch_size)]
    assert torch.equal(top, top_k_for_users(lambda r: scores[r], *args))
    seen = set(zip(seen_users.tolist(), seen_movies.tolist(), strict=True))
    assert top.tolist() == brute_top_k(scores, user_rows.tolist(), seen, 4)


def test_top_k_for_users_with_users_beyond_the_training_rows() -> None:
    # User row 5 has no training pair and is larger than every seen user row.
    scores = torch.tensor([[0.3, 0.2, 0.1], [0.1, 0.2, 0.3]]).repeat(3, 1)
    top = top_k_for_users(
        lambda r: scores[r], torch.tensor([5, 0]), torch.tensor([0]), torch.tensor([0]), 3, 2
    )
    assert top.tolist() == [[2, 1], [1, 2]]


def test_top_k_for_users_with_repeated_users() -> None:
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    top = top_k_for_users(
        lambda r: scores[torch.zeros_like(r)],
        torch.tensor([0, 0]),
        torch.tensor([0]),
        torch.tensor([3]),
        4,
        2,
    )
    assert top.tolist() == [[2, 1], [2, 1]]


# ------------------------------------------------------------------ softmax model
@pytest.fixture(scope="module")
def softmax_case():
    ds = synthetic_movielens(40, 60, 900, seed=5)
    idx = Indexer.from_movielens(ds)
    ratings = ds.ratings.sample(frac=1.0, random_state=0)
    return idx, ratings.iloc[:700], ratings.iloc[700:]


def make_softmax(n_movies: int, pooling: str) -> SoftmaxModel:
    # Unshared tables with a large scale: scores vary a lot between movies and users.
    return SoftmaxModel(
        n_movies, 4, hidden=(6,), pooling=pooling, share_embeddings=False, init_std=1.0, seed=1
    )


def brute_softmax_scores(
    model: SoftmaxModel, indexer: Indexer, train: pd.DataFrame, measure: str | None
) -> np.ndarray:
    """Scores of every (user, movie) row pair from Python sets of training movies, in float64."""
    emb = model.input_embedding.detach().double()
    V = model.V.detach().double()  # noqa: N806
    psi = copy.deepcopy(model.psi).double()
    user_row = {u: i for i, u in enumerate(indexer.users.ids.tolist())}
    movie_row = {m: j for j, m in enumerate(indexer.movies.ids.tolist())}
    watched: dict[int, set[int]] = {}
    for u, m in zip(train["user_id"], train["movie_id"], strict=True):
        watched.setdefault(user_row[u], set()).add(movie_row[m])
    scores = np.zeros((indexer.n_users, indexer.n_movies))
    for i in range(indexer.n_users):
        rows = sorted(watched.get(i, set()))
        pooled = torch.zeros(emb.shape[1], dtype=torch.float64)
        for j in rows:
            pooled += emb[j]
        if model.pooling == "mean" and rows:
            pooled /= len(rows)
        with torch.no_grad():
            query = psi(pooled[None])[0]
        for j in range(indexer.n_movies):
            dot = float(query @ V[j])
            if measure == "cosine":
                dot /= float(query.norm() * V[j].norm())
            scores[i, j] = dot
    return scores


@pytest.mark.parametrize("measure", [None, "dot", "cosine"])
@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_softmax_metrics_match_brute_force(softmax_case, pooling: str, measure) -> None:
    idx, train, test = softmax_case
    model = make_softmax(idx.n_movies, pooling)
    model.train()
    result = evaluate_ranking(model, idx, train, test, k=5, measure=measure, min_rating=4)
    assert not model.training
    expected = brute_evaluate(
        brute_softmax_scores(model, idx, train, measure), idx, train, test, 5, 4
    )
    assert_matches(result, expected)
    assert 0 < result["users"] < idx.n_users and 0 < result["hit_rate@5"] <= 1


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_softmax_model_is_scored_from_the_training_bags(softmax_case, pooling: str) -> None:
    idx, train, test = softmax_case
    model = make_softmax(idx.n_movies, pooling)
    bags = idx.bags(train)
    for k in (1, 10):
        by_model = evaluate_ranking(model, idx, train, test, k=k, min_rating=4)
        by_hand = evaluate_ranking(
            lambda rows: model(bags[rows]), idx, train, test, k=k, min_rating=4
        )
        pd.testing.assert_series_equal(by_model, by_hand)
    # Bags of every rating (test included) are a different input: the lists change.
    everything = idx.bags(pd.concat([train, test]))
    leaky = evaluate_ranking(
        lambda rows: model(everything[rows]), idx, train, test, k=10, min_rating=4
    )
    assert leaky["popularity@10"] != by_model["popularity@10"]


def test_softmax_model_never_recommends_training_movies(tiny: Indexer) -> None:
    # Sum pooling with E ~ 3 I (shared): each user's training movies get the top logits.
    model = SoftmaxModel(6, 6, pooling="sum", share_embeddings=True, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.input_embedding.copy_(3.0 * torch.eye(6) + 0.1 * torch.rand(6, 6, generator=g))
    bags = tiny.bags(TINY_TRAIN)
    logits = model(bags).detach()
    best = logits.argmax(dim=1)
    assert (bags[torch.arange(4), best] == 1).all()  # everyone's best is a training movie
    seen_users, seen_movies, _ = tiny.tensors(TINY_TRAIN)
    top = top_k_for_users(
        scorer(model, bags=bags), torch.arange(4), seen_users, seen_movies, 6, k=5
    )
    train_pairs = set(zip(seen_users.tolist(), seen_movies.tolist(), strict=True))
    for i in range(4):
        listed = [j for j in top[i].tolist() if j >= 0]
        assert len(listed) == 6 - sum(1 for (u, _) in train_pairs if u == i)
        assert not any((i, j) in train_pairs for j in listed)
    result = evaluate_ranking(model, tiny, TINY_TRAIN, TINY_TEST, k=2, min_rating=4)
    assert_matches(result, brute_evaluate(logits.numpy(), tiny, TINY_TRAIN, TINY_TEST, 2, 4))


def test_scorer_of_a_softmax_model(softmax_case) -> None:
    idx, train, _ = softmax_case
    model = make_softmax(idx.n_movies, "mean")
    bags = idx.bags(train)
    rows = torch.tensor([5, 0, 5, 33])
    with pytest.raises(ValueError, match="bags"):
        scorer(model)
    with pytest.raises(ValueError, match="bags"):
        scorer(model, "cosine")
    with torch.no_grad():
        logits = scorer(model, bags=bags)(rows)
        assert logits.shape == (4, idx.n_movies)
        torch.testing.assert_close(logits, model(bags[rows]))
        torch.testing.assert_close(scorer(model, "dot", bags=bags)(rows), logits)
        query = model.user_vectors(bags[rows])
        cosine = scorer(model, "cosine", bags=bags)(rows)
        torch.testing.assert_close(cosine, similarity(query, model.V, "cosine"))
        unit_q = query / query.norm(dim=1, keepdim=True)
        unit_v = model.V / model.V.norm(dim=1, keepdim=True)
        torch.testing.assert_close(cosine, unit_q @ unit_v.T)
        assert cosine.abs().max() <= 1 + 1e-6
        assert not torch.equal(cosine.argsort(dim=1), logits.argsort(dim=1))
    with pytest.raises(ValueError, match="unknown measure 'manhattan'"):
        scorer(model, "manhattan", bags=bags)(rows)


# --------------------------------------------------------------- popularity baseline
# Training counts per movie row: [2, 0, 4, 0, 3, 1] (rows 1 and 3 tie, but never at a cut).
POP_TRAIN = pd.DataFrame(
    {
        "user_id": [10, 20, 30, 40, 20, 30, 40, 30, 40, 40],
        "movie_id": [103, 103, 103, 103, 105, 105, 105, 101, 101, 106],
        "rating": [3, 4, 5, 2, 4, 4, 3, 5, 1, 4],
    }
)
POP_TEST = pd.DataFrame(
    {
        "user_id": [10, 10, 10, 20, 20, 30],
        "movie_id": [105, 102, 103, 106, 104, 102],
        "rating": [5, 4, 5, 4, 2, 3],
    }
)


def test_popularity_scorer_counts_training_ratings(tiny: Indexer) -> None:
    score = popularity_scorer(tiny, POP_TRAIN)
    counts = [0.0] * tiny.n_movies
    for movie_id in POP_TRAIN["movie_id"]:
        counts[int(tiny.movies.index(movie_id)[0])] += 1
    assert counts == [2, 0, 4, 0, 3, 1]
    rows = torch.tensor([3, 0, 0])
    scores = score(rows)
    assert scores.shape == (3, tiny.n_movies)
    assert scores.tolist() == [counts] * 3  # the same for every user
    assert score(torch.tensor([1])).tolist() == [counts]


def test_popularity_ranking_hand_computed(tiny: Indexer) -> None:
    # Top 2 unseen by count [2, 0, 4, 0, 3, 1]:
    #   user 10 saw {2} -> [4, 0]; relevant {4, 1, 2} -> hit at rank 0
    #   user 20 saw {2, 4} -> [0, 5]; relevant {5} -> hit at rank 1
    #   user 30: no test rating >= 4 -> left out
    result = evaluate_ranking(
        popularity_scorer(tiny, POP_TRAIN), tiny, POP_TRAIN, POP_TEST, k=2, min_rating=4
    )
    d = 1 / math.log2(3)
    expected = {
        "users": 2,
        "precision@2": (1 / 2 + 1 / 2) / 2,
        "recall@2": (1 / 3 + 1) / 2,
        "ndcg@2": (1 / (1 + d) + d) / 2,
        "hit_rate@2": 1.0,
        "coverage@2": 3 / 6,  # rows {0, 4, 5}
        "popularity@2": (3 + 2 + 2 + 1) / 4,
    }
    assert_matches(result, expected)
    counts = np.array([[2, 0, 4, 0, 3, 1]] * tiny.n_users, dtype=float)
    assert_matches(result, brute_evaluate(counts, tiny, POP_TRAIN, POP_TEST, 2, 4))


def test_popularity_matches_brute_force_on_synthetic_data(softmax_case) -> None:
    idx, train, test = softmax_case
    score = popularity_scorer(idx, train)
    counts = train["movie_id"].value_counts().reindex(idx.movies.ids, fill_value=0)
    np.testing.assert_array_equal(score(torch.tensor([0]))[0].numpy(), counts.to_numpy())
    # Break the many ties the same way in both: add a tiny, distinct offset per movie.
    offset = torch.linspace(0, 0.5, idx.n_movies)
    result = evaluate_ranking(
        lambda rows: score(rows) + offset, idx, train, test, k=5, min_rating=4
    )
    scores = np.tile(counts.to_numpy() + offset.numpy(), (idx.n_users, 1))
    assert_matches(result, brute_evaluate(scores, idx, train, test, 5, 4))
    assert result["coverage@5"] < 0.5  # everyone gets nearly the same list


def test_a_model_without_parameters_is_scored_through_its_buffers() -> None:
    ds = synthetic_movielens(20, 15, 150, seed=4)
    idx = Indexer.from_movielens(ds)
    train, test = ds.ratings.iloc[:130], ds.ratings.iloc[130:].drop_duplicates("user_id")
    ease = EASE(idx.bags(train), lam=5.0)
    assert list(ease.parameters()) == []
    rows = torch.arange(idx.n_users)
    torch.testing.assert_close(scorer(ease)(rows), ease.score_all(rows))
    by_model = evaluate_leave_one_out(ease, idx, train, test, negatives=None)
    by_function = evaluate_leave_one_out(ease.score_all, idx, train, test, negatives=None)
    pd.testing.assert_series_equal(by_model, by_function)
