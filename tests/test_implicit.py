"""Implicit feedback (chapter 7): negatives, ImplicitMLP, implicit_bce, fit, leave-one-out."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import chisquare

from mfkit.data import synthetic_movielens
from mfkit.evaluation import evaluate_leave_one_out
from mfkit.features import IdIndex, Indexer
from mfkit.losses import implicit_bce, observed_mse
from mfkit.models import ImplicitMLP, MatrixFactorization, drop_ids
from mfkit.sampling import NegativeSampler
from mfkit.train import fit

GENRES = torch.tensor(
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
)  # movie 2 has genres 0 and 1, movie 3 none, movie 4 all three


def make_sampler(pairs, n_users, n_items, **kwargs) -> NegativeSampler:
    frame = pd.DataFrame(pairs, columns=["user_id", "movie_id"])
    return NegativeSampler(frame, n_items, users=range(n_users), items=range(n_items), **kwargs)


def mlp(**kwargs) -> ImplicitMLP:
    settings = {"dim": 4, "hidden": (8, 6), "dropout": 0.0, "seed": 0} | kwargs
    return ImplicitMLP(6, len(GENRES), GENRES, **settings)


def binomial_ok(successes: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(successes / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ training_data


# user 0: 1 positive, user 1: 2, user 2: 3, user 3: none (of 10 items)
PAIRS = [(0, 4), (1, 0), (1, 9), (2, 1), (2, 2), (2, 3)]


@pytest.mark.parametrize("ratio", [0.0, 0.7, 4.0])
def test_training_data_has_every_positive_and_ratio_negatives_per_user(ratio: float) -> None:
    sampler = make_sampler(PAIRS, 4, 10, seed=0)
    users, items, labels = sampler.training_data(ratio)
    assert len(users) == len(items) == len(labels)
    assert set(labels.tolist()) <= {0.0, 1.0}
    positive = labels == 1
    assert sorted(zip(users[positive].tolist(), items[positive].tolist(), strict=True)) == PAIRS
    negatives = list(zip(users[~positive].tolist(), items[~positive].tolist(), strict=True))
    assert not set(negatives) & set(PAIRS)
    per_user = np.bincount(users[~positive].numpy(), minlength=4)
    n_positives = [1, 2, 3, 0]
    assert per_user.tolist() == [round(ratio * n) for n in n_positives]


def test_training_data_draws_fresh_negatives_each_call() -> None:
    sampler = make_sampler(PAIRS, 4, 10, seed=0)
    first = sampler.training_data(4.0)
    second = sampler.training_data(4.0)
    assert torch.equal(first[0], second[0]) and torch.equal(first[2], second[2])
    assert not torch.equal(first[1], second[1])  # 24 negatives: a repeat is ~impossible
    again = make_sampler(PAIRS, 4, 10, seed=0).training_data(4.0)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


# ------------------------------------------------------------------ sample_distinct


def test_sample_distinct_rows_are_distinct_unseen_items() -> None:
    ds = synthetic_movielens(20, 25, 200, seed=4)
    sampler = NegativeSampler(
        ds.ratings, 25, users=ds.users["user_id"], items=ds.movies["movie_id"], seed=0
    )
    rows = np.array([3, 0, 3, 17, 3, 7])  # repeated user rows
    n = int(25 - sampler.per_user[rows].max())  # all that user 17 has; user 3 has more
    assert 0 < n < 25 - sampler.per_user[3]
    drawn = sampler.sample_distinct(rows, n)
    assert drawn.shape == (len(rows), n) and drawn.dtype == torch.int64
    seen: dict[int, set[int]] = {}
    for u, m in zip(ds.ratings["user_id"], ds.ratings["movie_id"], strict=True):
        seen.setdefault(sampler.user_ids.get_loc(u), set()).add(sampler.item_ids.get_loc(m))
    for row, items in zip(rows, drawn.tolist(), strict=True):
        assert len(set(items)) == n
        assert all(0 <= j < 25 for j in items)
        assert not set(items) & seen.get(row, set())
    # the three rows of user 3 are independent draws, not one draw copied
    assert len({tuple(sorted(drawn[i].tolist())) for i in (0, 2, 4)}) > 1


def test_sample_distinct_takes_every_unseen_item_when_n_is_all_of_them() -> None:
    sampler = make_sampler(PAIRS, 4, 10, seed=1)
    drawn = sampler.sample_distinct(np.array([2, 3]), 7)
    assert sorted(drawn[0].tolist()) == [0, 4, 5, 6, 7, 8, 9]
    assert len(set(drawn[1].tolist())) == 7


def test_sample_distinct_edge_shapes_and_errors() -> None:
    sampler = make_sampler(PAIRS, 4, 10, seed=0)
    assert sampler.sample_distinct(np.array([0, 2]), 0).shape == (2, 0)
    assert sampler.sample_distinct(np.array([], dtype=np.int64), 5).shape == (0, 5)
    with pytest.raises(ValueError, match="fewer than"):
        sampler.sample_distinct(np.array([0, 2]), 8)  # user 2 has 7 unseen items
    with pytest.raises(ValueError):
        sampler.sample_distinct(np.array([0]), -1)


def test_sample_distinct_is_seeded() -> None:
    rows = np.array([0, 1, 2, 3, 1])
    a = make_sampler(PAIRS, 4, 10, seed=5).sample_distinct(rows, 4)
    b = make_sampler(PAIRS, 4, 10, seed=5).sample_distinct(rows, 4)
    c = make_sampler(PAIRS, 4, 10, seed=6).sample_distinct(rows, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_uniform_sample_distinct_includes_every_unseen_item_equally_often() -> None:
    sampler = make_sampler([(0, 0), (0, 3)], 1, 8, seed=0)
    drawn = sampler.sample_distinct(np.zeros(4_000, dtype=np.int64), 3)
    counts = np.bincount(drawn.ravel().numpy(), minlength=8)
    assert counts[0] == counts[3] == 0
    assert counts.sum() == 12_000
    assert chisquare(counts[[1, 2, 4, 5, 6, 7]]).pvalue > 1e-3


def test_popularity_sample_distinct_follows_sequential_draws_without_replacement() -> None:
    # popularity from other users: item 1 x3, item 2 x1, items 3, 4 x0; user 0 owns item 0
    pairs = [(0, 0), (1, 1), (2, 1), (3, 1), (1, 2)]
    sampler = make_sampler(pairs, 4, 5, distribution="popularity", alpha=1.0, seed=0)
    weights = {1: 4.0, 2: 2.0, 3: 1.0, 4: 1.0}  # (count + 1) ** alpha
    total = sum(weights.values())
    # brute force: P(item in a draw of 2 without replacement, each step prop. to weight)
    inclusion = dict.fromkeys(weights, 0.0)
    for i, j in itertools.permutations(weights, 2):
        p = weights[i] / total * weights[j] / (total - weights[i])
        inclusion[i] += p
        inclusion[j] += p
    n_draws = 6_000
    drawn = sampler.sample_distinct(np.zeros(n_draws, dtype=np.int64), 2)
    counts = np.bincount(drawn.ravel().numpy(), minlength=5)
    assert counts[0] == 0
    expected = np.array([inclusion[j] for j in (1, 2, 3, 4)]) * n_draws
    assert chisquare(counts[1:], expected).pvalue > 1e-3
    # and the top item is included clearly more often than under a uniform draw
    assert counts[1] / n_draws > 0.6


# ------------------------------------------------------------------ drop_ids


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_ids_replaces_at_rate_p(p: float) -> None:
    n = 200_000
    ids = torch.arange(n) % 7
    before = ids.clone()
    out = drop_ids(ids, p, reserved=99, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, before)  # the input is left alone
    assert out.shape == ids.shape and out.dtype == ids.dtype
    dropped = out == 99
    assert binomial_ok(int(dropped.sum()), n, p)
    assert torch.equal(out[~dropped], ids[~dropped])
    again = drop_ids(ids, p, reserved=99, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_drop_ids_extremes_and_bad_p() -> None:
    ids = torch.tensor([[3, 1, 4], [1, 5, 9]])
    assert torch.equal(drop_ids(ids, 0.0, reserved=7), ids)
    assert torch.equal(drop_ids(ids, 1.0, reserved=7), torch.full_like(ids, 7))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError):
            drop_ids(ids, p, reserved=7)


# ------------------------------------------------------------------ ImplicitMLP


def record_user_ids(model: ImplicitMLP) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    model.user_embedding.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_user_dropout_replaces_a_share_p_of_users_in_training_only(p: float) -> None:
    model = mlp(user_dropout=p)
    assert model.new_user == 6
    seen = record_user_ids(model)
    users = torch.arange(60_000) % 6
    movies = torch.arange(60_000) % len(GENRES)
    torch.manual_seed(0)
    model.train()
    model(users, movies)
    dropped = seen[-1] == model.new_user
    assert binomial_ok(int(dropped.sum()), len(users), p) if p else not dropped.any()
    assert torch.equal(seen[-1][~dropped], users[~dropped])
    model.eval()
    model(users, movies)
    model.score_all(torch.arange(6))
    assert not (seen[-1] == model.new_user).any() and not (seen[-2] == model.new_user).any()


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_new_user_row_gets_gradient_only_with_user_dropout(p: float) -> None:
    torch.manual_seed(1)
    model = mlp(user_dropout=p).train()
    users, movies = torch.arange(6).repeat(20), torch.arange(5).repeat(24)
    model(users, movies).sum().backward()
    grad = model.user_embedding.weight.grad
    assert (grad[model.new_user].abs().sum() > 0) == (p > 0)
    assert (grad[:6].abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize("chunk", [262_144, 5, 7, 1])
def test_score_all_equals_forward_on_every_pair(chunk: int) -> None:
    model = mlp(dropout=0.3, user_dropout=0.4).eval()
    users = torch.tensor([4, 0, 6, 4, 2])  # the new-user row and a repeat
    scores = model.score_all(users, chunk=chunk)
    pairs_u = users.repeat_interleave(len(GENRES))
    pairs_m = torch.arange(len(GENRES)).repeat(len(users))
    expected = model(pairs_u, pairs_m).view(len(users), len(GENRES))
    assert scores.shape == (5, len(GENRES))
    torch.testing.assert_close(scores, expected)
    assert model.score_all(torch.tensor([], dtype=torch.int64)).shape == (0, len(GENRES))


def test_score_all_split_first_layer_matches_the_per_pair_path() -> None:
    # Evaluation mode splits the first layer into a user part and a movie part; without
    # dropout, training mode (every pair through forward) gives the same logits.
    model = mlp(dim=3, hidden=(5, 4), dropout=0.0)
    users = torch.arange(7)
    fast = model.eval().score_all(users, chunk=6)
    per_pair = model.train().score_all(users, chunk=6)
    torch.testing.assert_close(fast, per_pair)


@pytest.mark.parametrize("training", [True, False])
def test_score_new_user_is_the_reserved_row_and_keeps_the_mode(training: bool) -> None:
    model = mlp(dropout=0.5, user_dropout=0.5)
    model.train(training)
    scores = model.score_new_user()
    assert model.training is training
    assert scores.shape == (1, len(GENRES))
    model.eval()
    torch.testing.assert_close(scores, model.score_all(torch.tensor([6])))


def test_predict_is_sigmoid_of_forward() -> None:
    model = mlp().eval()
    users, movies = torch.tensor([0, 5, 6, 2]), torch.tensor([4, 0, 2, 3])
    probabilities = model.predict(users, movies)
    torch.testing.assert_close(probabilities, torch.sigmoid(model(users, movies)))
    assert not probabilities.requires_grad
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_same_seed_same_weights() -> None:
    state = torch.get_rng_state()
    a, b, c = mlp(seed=3), mlp(seed=3), mlp(seed=4)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not torch.equal(a.user_embedding.weight, c.user_embedding.weight)
    assert not torch.equal(a.output.weight, c.output.weight)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"genres": GENRES[:4]},  # one row short
        {"genres": GENRES[:, 0]},  # 1-D
        {"user_dropout": 1.0},
        {"user_dropout": -0.1},
        {"dim": 0},
        {"hidden": ()},
        {"hidden": (4, 0)},
        {"dropout": 1.0},
        {"n_users": 0},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    settings = {"n_users": 6, "n_movies": len(GENRES), "genres": GENRES, "dim": 4} | kwargs
    with pytest.raises(ValueError):
        ImplicitMLP(**settings)


def test_genre_input_is_the_mean_of_genre_embeddings() -> None:
    genres = GENRES.clone()
    model = mlp()
    genres[0, 1] = 1.0  # changing the caller's tensor must not change the model
    outputs: list[torch.Tensor] = []
    model.genre_embedding.register_forward_hook(lambda module, args, out: outputs.append(out))
    model.eval()
    model(torch.zeros(5, dtype=torch.int64), torch.arange(5))
    g = outputs[-1].detach()
    torch.testing.assert_close(g[2], (g[0] + g[1]) / 2)  # genres {0, 1}
    single = model.genre_embedding.weight.detach().T  # row c: output of genre c alone
    torch.testing.assert_close(g[4], single.mean(dim=0))  # genres {0, 1, 2}
    torch.testing.assert_close(g[0], single[0])
    assert torch.equal(g[3], torch.zeros(4))  # no genre: a zero vector


def test_config_holds_the_constructor_arguments() -> None:
    model = ImplicitMLP(
        6, len(GENRES), GENRES, dim=3, hidden=[7, 5], dropout=0.25, user_dropout=0.1, seed=2
    )
    assert model.config == {
        "n_users": 6,
        "n_movies": len(GENRES),
        "dim": 3,
        "hidden": (7, 5),
        "dropout": 0.25,
        "user_dropout": 0.1,
    }
    rebuilt = ImplicitMLP(genres=GENRES, **model.config)
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt.score_all(torch.arange(7)), model.score_all(torch.arange(7)))


# ------------------------------------------------------------------ implicit_bce


def test_implicit_bce_matches_the_formula() -> None:
    model = MatrixFactorization(2, 3, dim=2, bias=True, global_mean=0.5)
    with torch.no_grad():
        model.user_factors.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        model.movie_factors.weight.copy_(torch.tensor([[0.2, 0.1], [-1.0, 0.4], [2.0, 0.0]]))
        model.user_bias.weight.copy_(torch.tensor([[0.3], [-0.7]]))
        model.movie_bias.weight.copy_(torch.tensor([[0.0], [1.0], [-2.0]]))
    users = [0, 0, 1, 1, 0]
    movies = [0, 1, 2, 1, 2]
    labels = [1.0, 0.0, 1.0, 0.0, 0.0]
    # s = 0.5 + b_u + c_m + <U_u, V_m>, by hand
    s = [0.5 + 0.3 + 0.0 + 0.0, 0.5 + 0.3 + 1.0 - 1.8, 0.5 - 0.7 - 2.0 + 1.0]
    s += [0.5 - 0.7 + 1.0 + 0.7, 0.5 + 0.3 - 2.0 + 2.0]
    expected = -sum(
        y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x)))
        for x, y in zip(s, labels, strict=True)
    ) / len(s)
    loss = implicit_bce(
        model, torch.tensor(users), torch.tensor(movies), torch.tensor(labels, dtype=torch.int64)
    )
    assert loss.requires_grad
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ fit with fresh data


def fixed_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    users = torch.randint(0, 6, (40,), generator=generator)
    movies = torch.randint(0, len(GENRES), (40,), generator=generator)
    return users, movies, (torch.rand(40, generator=generator) < 0.5).float()


def test_fit_calls_the_data_function_once_per_epoch_from_1() -> None:
    calls: list[int] = []

    def data(epoch: int):
        calls.append(epoch)
        return fixed_data()

    history = fit(mlp(), data, implicit_bce, epochs=4, batch_size=16, progress=False)
    assert calls == [1, 2, 3, 4]
    assert history.epochs == 4


def test_fit_on_a_function_returning_fixed_data_equals_fit_on_the_data() -> None:
    data = fixed_data()
    settings = {"epochs": 3, "batch_size": 16, "lr": 0.05, "seed": 7, "progress": False}
    on_tuple = mlp(dropout=0.3, user_dropout=0.3)
    on_function = mlp(dropout=0.3, user_dropout=0.3)
    h1 = fit(on_tuple, data, implicit_bce, **settings)
    h2 = fit(on_function, lambda epoch: data, implicit_bce, **settings)
    assert h1.train_loss == h2.train_loss
    for (name, a), b in zip(
        on_tuple.state_dict().items(), on_function.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not torch.equal(on_tuple.output.weight, mlp().output.weight)  # it did train


def test_fit_accepts_data_that_changes_size_every_epoch() -> None:
    users, movies, labels = fixed_data()
    sizes: list[int] = []

    def loss(model, u, m, y):
        sizes.append(len(u))
        return implicit_bce(model, u, m, y)

    def data(epoch: int):
        n = 5 * epoch
        return users[:n], movies[:n], labels[:n]

    fit(mlp(), data, loss, epochs=3, batch_size=100, progress=False)
    assert sizes == [5, 10, 15]


def test_fit_with_fresh_negatives_learns_the_positives() -> None:
    ds = synthetic_movielens(20, 30, 150, seed=1)
    indexer = Indexer.from_movielens(ds)
    sampler = NegativeSampler(
        ds.ratings, 30, users=indexer.users.ids, items=indexer.movies.ids, seed=0
    )
    model = MatrixFactorization(20, 30, dim=8, bias=True, seed=0)
    fit(
        model,
        lambda epoch: sampler.training_data(1.0),
        implicit_bce,
        epochs=40,
        batch_size=64,
        lr=0.05,
        progress=False,
    )
    users, items, labels = sampler.training_data(1.0)
    scores = model.predict(users, items)
    # positives score above a fresh draw of negatives on average
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.5


def test_fit_still_rejects_mismatched_fresh_data() -> None:
    users, movies, labels = fixed_data()
    with pytest.raises(ValueError):
        fit(mlp(), lambda epoch: (users, movies[:-1], labels), observed_mse, progress=False)


# ------------------------------------------------------------------ leave-one-out evaluation

N_USERS, N_MOVIES = 8, 12
USER_IDS = [70 - 3 * i for i in range(N_USERS)]  # ids that are not their rows
MOVIE_IDS = [100 + 10 * j for j in range(N_MOVIES)]


def toy_indexer() -> Indexer:
    titles = np.array([f"movie {m}" for m in MOVIE_IDS])
    return Indexer(IdIndex(USER_IDS, "user"), IdIndex(MOVIE_IDS, "movie"), titles)


def toy_split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[set[int]], list[int]]:
    """Every user: 3 train movies and 1 held-out movie (rows), as frames of ids."""
    rng = np.random.default_rng(seed)
    train_rows, held_rows = [], []
    for _ in range(N_USERS):
        picked = rng.choice(N_MOVIES, size=4, replace=False)
        train_rows.append(set(picked[:3].tolist()))
        held_rows.append(int(picked[3]))
    train = pd.DataFrame(
        [(USER_IDS[u], MOVIE_IDS[m]) for u in range(N_USERS) for m in sorted(train_rows[u])],
        columns=["user_id", "movie_id"],
    )
    test = pd.DataFrame(
        [(USER_IDS[u], MOVIE_IDS[held_rows[u]]) for u in range(N_USERS)],
        columns=["user_id", "movie_id"],
    )
    return train, test, train_rows, held_rows


def brute_leave_one_out(scores, train_rows, held_rows, k) -> tuple[float, float]:
    """HR and NDCG of the full ranking among movies outside each user's train set."""
    hits, gains = [], []
    for u, held in enumerate(held_rows):
        rank = sum(
            1
            for j in range(N_MOVIES)
            if j != held and j not in train_rows[u] and scores[u, j] > scores[u, held]
        )
        hits.append(float(rank < k))
        gains.append(1 / math.log2(rank + 2) if rank < k else 0.0)
    return float(np.mean(hits)), float(np.mean(gains))


def test_leave_one_out_full_ranking_at_known_ranks() -> None:
    train, test, train_rows, held_rows = toy_split()
    # held-out movie of user u at rank u among the unseen movies; train movies score highest
    scores = torch.zeros(N_USERS, N_MOVIES)
    for u, held in enumerate(held_rows):
        unseen = [j for j in range(N_MOVIES) if j != held and j not in train_rows[u]]
        values = torch.arange(len(unseen), 0, -1, dtype=torch.float32)  # distinct, descending
        scores[u, unseen] = values
        scores[u, held] = values[u - 1] - 0.5 if u else values[0] + 1  # rank u
        scores[u, sorted(train_rows[u])] = 100.0
    for k in (1, 3, 5, 10):
        result = evaluate_leave_one_out(
            lambda rows: scores[rows], toy_indexer(), train, test, k=k, negatives=None
        )
        assert result["cases"] == N_USERS
        assert result[f"hit_rate@{k}"] == pytest.approx(np.mean([r < k for r in range(N_USERS)]))
        ndcg = np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in range(N_USERS)])
        assert result[f"ndcg@{k}"] == pytest.approx(ndcg)


def test_leave_one_out_per_case_rows_are_each_cases_rank_and_average_to_the_summary() -> None:
    train, test, train_rows, held_rows = toy_split()
    scores = torch.randn(N_USERS, N_MOVIES, generator=torch.Generator().manual_seed(0))
    args = (lambda rows: scores[rows], toy_indexer(), train, test)
    cases = evaluate_leave_one_out(*args, k=5, negatives=None, per_case=True)
    assert list(cases.columns) == ["user_id", "hit_rate@5", "ndcg@5"]
    assert cases["user_id"].tolist() == test["user_id"].tolist()
    for u, held in enumerate(held_rows):
        rank = sum(
            1
            for j in range(N_MOVIES)
            if j != held and j not in train_rows[u] and scores[u, j] > scores[u, held]
        )
        assert cases["hit_rate@5"][u] == float(rank < 5)
        assert cases["ndcg@5"][u] == pytest.approx(1 / math.log2(rank + 2) if rank < 5 else 0.0)
    summary = evaluate_leave_one_out(*args, k=5, negatives=None)
    assert summary[["hit_rate@5", "ndcg@5"]].to_numpy() == pytest.approx(
        cases[["hit_rate@5", "ndcg@5"]].mean().to_numpy()
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leave_one_out_sampling_every_unseen_movie_equals_the_full_ranking(seed: int) -> None:
    train, test, train_rows, held_rows = toy_split(seed)
    scores = torch.randn(N_USERS, N_MOVIES, generator=torch.Generator().manual_seed(seed))
    expected = brute_leave_one_out(scores, train_rows, held_rows, k=4)
    everyone = N_MOVIES - 1 - 3
    for negatives, batch_size in ((None, 512), (everyone, 512), (everyone, 3)):
        result = evaluate_leave_one_out(
            lambda rows: scores[rows],
            toy_indexer(),
            train,
            test,
            k=4,
            negatives=negatives,
            seed=seed,
            batch_size=batch_size,
        )
        assert result["cases"] == N_USERS
        assert (result["hit_rate@4"], result["ndcg@4"]) == pytest.approx(expected)


@pytest.mark.parametrize("negatives", [None, 3, 8])
def test_leave_one_out_top_scored_held_out_movie_is_a_perfect_hit(negatives) -> None:
    train, test, train_rows, held_rows = toy_split()
    scores = torch.rand(N_USERS, N_MOVIES, generator=torch.Generator().manual_seed(0))
    for u, held in enumerate(held_rows):
        scores[u, sorted(train_rows[u])] = 10.0  # train movies are never candidates
        scores[u, held] = 5.0
    result = evaluate_leave_one_out(
        lambda rows: scores[rows], toy_indexer(), train, test, k=1, negatives=negatives
    )
    assert result["hit_rate@1"] == 1.0 and result["ndcg@1"] == 1.0


def test_leave_one_out_ranks_among_exactly_negatives_plus_one_candidates() -> None:
    train, test, train_rows, held_rows = toy_split()
    scores = torch.rand(N_USERS, N_MOVIES, generator=torch.Generator().manual_seed(0)) + 1
    for u, held in enumerate(held_rows):
        scores[u, held] = 0.0  # the worst of all: last among the candidates
    score = lambda rows: scores[rows]  # noqa: E731
    worst = evaluate_leave_one_out(score, toy_indexer(), train, test, k=4, negatives=4)
    assert worst["hit_rate@4"] == 0.0 and worst["ndcg@4"] == 0.0
    last = evaluate_leave_one_out(score, toy_indexer(), train, test, k=5, negatives=4)
    assert last["hit_rate@5"] == 1.0
    assert last["ndcg@5"] == pytest.approx(1 / math.log2(4 + 2))


def tie_setup(n_users: int = 600, n_movies: int = 20):
    """Every user has the same two train movies and the same held-out movie; constant scores."""
    users = list(range(n_users))
    indexer = Indexer(IdIndex(users, "user"), IdIndex(range(n_movies), "movie"), np.array([]))
    train = pd.DataFrame({"user_id": users * 2, "movie_id": [0] * n_users + [1] * n_users})
    test = pd.DataFrame({"user_id": users, "movie_id": [2] * n_users})
    return indexer, train, test, lambda rows: torch.zeros(len(rows), n_movies)


def test_leave_one_out_breaks_ties_at_random_among_sampled_candidates() -> None:
    indexer, train, test, constant = tie_setup()
    k, negatives = 2, 9
    result = evaluate_leave_one_out(constant, indexer, train, test, k=k, negatives=negatives)
    n = negatives + 1
    assert binomial_ok(round(result["hit_rate@2"] * len(test)), len(test), k / n)
    expected_ndcg = sum(1 / math.log2(r + 2) for r in range(k)) / n
    assert result["ndcg@2"] == pytest.approx(expected_ndcg, abs=0.06)
    other = evaluate_leave_one_out(constant, indexer, train, test, k=k, negatives=9, seed=1)
    assert other["hit_rate@2"] != result["hit_rate@2"]  # the tie-breaking follows the seed


def test_leave_one_out_breaks_ties_at_random_in_the_full_ranking() -> None:
    indexer, train, test, constant = tie_setup()
    result = evaluate_leave_one_out(constant, indexer, train, test, k=2, negatives=None)
    n_unseen = 20 - 2  # the held-out movie and the 17 never-seen ones
    assert binomial_ok(round(result["hit_rate@2"] * len(test)), len(test), 2 / n_unseen)


@pytest.mark.parametrize("negatives", [None, 5])
def test_leave_one_out_accepts_a_model(negatives) -> None:
    train, test, _, _ = toy_split()
    model = ImplicitMLP(N_USERS, N_MOVIES, torch.eye(N_MOVIES)[:, :3], dim=4, dropout=0.5, seed=0)
    model.train()
    result = evaluate_leave_one_out(model, toy_indexer(), train, test, k=3, negatives=negatives)
    assert not model.training  # scored in eval mode: dropout off
    expected = evaluate_leave_one_out(
        lambda rows: model.score_all(rows), toy_indexer(), train, test, k=3, negatives=negatives
    )
    pd.testing.assert_series_equal(result, expected)
    mf = MatrixFactorization(N_USERS, N_MOVIES, dim=3, seed=1)
    direct = evaluate_leave_one_out(mf, toy_indexer(), train, test, k=3, negatives=negatives)
    by_hand = evaluate_leave_one_out(
        lambda rows: mf.score_all(rows), toy_indexer(), train, test, k=3, negatives=negatives
    )
    pd.testing.assert_series_equal(direct, by_hand)
    assert list(direct.index) == ["cases", "hit_rate@3", "ndcg@3"]


def test_leave_one_out_rejects_an_empty_test_set() -> None:
    train, test, _, _ = toy_split()
    with pytest.raises(ValueError, match="empty"):
        evaluate_leave_one_out(
            lambda rows: torch.zeros(len(rows), N_MOVIES), toy_indexer(), train, test.iloc[:0]
        )
