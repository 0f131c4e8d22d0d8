"""Tests for the two-tower model (mfkit.models.TwoTower) and the in-batch losses (mfkit.losses)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mfkit.data import synthetic_movielens
from mfkit.evaluation import evaluate_ranking
from mfkit.features import Indexer, SideFeatures
from mfkit.losses import batch_log_q, in_batch_softmax, two_tower_loss
from mfkit.models import TwoTower
from mfkit.splits import random_split
from mfkit.train import fit

N_USERS, N_MOVIES, DIM = 30, 40, 4

# A batch of 3 pairs by hand: user vectors U, movie vectors V.
U = [[1.0, 0.0], [0.5, -1.0], [-0.3, 2.0]]
V = [[0.2, 1.0], [1.5, 0.0], [-1.0, 0.4]]


def hand_in_batch(log_q: list[float] | None = None, temperature: float = 1.0, skip=()) -> float:
    """Mean over rows i of -log softmax_j(<U_i, V_j> / t - log_q[j])[i], in floats;
    the (i, j) cells in ``skip`` are left out of the softmax."""
    total = 0.0
    for i, u in enumerate(U):
        logits = {
            j: sum(a * b for a, b in zip(u, v, strict=True)) / temperature
            - (log_q[j] if log_q else 0.0)
            for j, v in enumerate(V)
            if (i, j) not in skip
        }
        total += math.log(sum(math.exp(x) for x in logits.values())) - logits[i]
    return total / len(U)


@pytest.fixture(scope="module")
def ds():
    return synthetic_movielens(N_USERS, N_MOVIES, 300, seed=3)


@pytest.fixture(scope="module")
def side(ds) -> SideFeatures:
    return SideFeatures.from_movielens(ds)


@pytest.fixture(scope="module")
def bags(ds) -> torch.Tensor:
    return Indexer.from_movielens(ds).bags(ds.ratings)


def tower(side: SideFeatures, **kwargs) -> TwoTower:
    return TwoTower(side, **({"dim": DIM, "hidden": (8,), "seed": 0} | kwargs))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ in-batch softmax


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_in_batch_softmax_equals_hand_computed_softmax(temperature: float) -> None:
    loss = in_batch_softmax(torch.tensor(U), torch.tensor(V), temperature=temperature)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(hand_in_batch(temperature=temperature), rel=1e-6)


def test_log_q_correction_shifts_each_column_by_its_log_probability() -> None:
    users, movies = torch.tensor(U), torch.tensor(V)
    log_q = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    corrected = in_batch_softmax(users, movies, log_q=log_q, temperature=0.5)
    shifted = users @ movies.T / 0.5 - log_q[None, :]  # column j minus log q_j
    explicit = F.cross_entropy(shifted, torch.arange(3))
    assert torch.allclose(corrected, explicit, rtol=1e-6, atol=0)
    hand = hand_in_batch(log_q=log_q.tolist(), temperature=0.5)
    assert corrected.item() == pytest.approx(hand, rel=1e-6)
    assert corrected.item() != pytest.approx(in_batch_softmax(users, movies, temperature=0.5))


def test_log_q_correction_ignores_a_constant_and_penalises_popular_positives() -> None:
    users, movies = torch.tensor(U), torch.tensor(V)
    plain = in_batch_softmax(users, movies)
    uniform = in_batch_softmax(users, movies, log_q=torch.full((3,), math.log(1 / 3)))
    assert uniform.item() == pytest.approx(plain.item(), rel=1e-6)  # a softmax ignores it
    assert in_batch_softmax(users[:1], movies[:1]).item() == 0.0  # no negatives, no loss
    # Pair 0's movie is the popular one: its logit drops the most, so its loss grows.
    popular_first = torch.log(torch.tensor([0.9, 0.05, 0.05]))
    logits = users @ movies.T
    row0 = F.cross_entropy(logits[:1] - popular_first, torch.tensor([0]))
    assert row0.item() > F.cross_entropy(logits[:1], torch.tensor([0])).item()


def test_accidental_hits_are_left_out_of_the_softmax() -> None:
    users, movies = torch.tensor(U), torch.tensor(V)
    rows = torch.tensor([5, 9, 5])  # pairs 0 and 2 share a movie
    masked = in_batch_softmax(users, movies, movies=rows)
    assert masked.item() == pytest.approx(hand_in_batch(skip={(0, 2), (2, 0)}), rel=1e-6)
    distinct = in_batch_softmax(users, movies, movies=torch.tensor([5, 9, 7]))
    assert distinct.item() == pytest.approx(in_batch_softmax(users, movies).item(), rel=1e-6)


@pytest.mark.parametrize(
    ("users", "movies", "kwargs", "match"),
    [
        ((3, 2), (2, 2), {}, "one row per pair"),
        ((3, 2), (3, 3), {}, "one row per pair"),
        ((3,), (3,), {}, "one row per pair"),
        ((3, 2), (3, 2), {"log_q": torch.zeros(2)}, "log_q must have one entry"),
        ((3, 2), (3, 2), {"log_q": torch.zeros(3, 1)}, "log_q must have one entry"),
        ((3, 2), (3, 2), {"temperature": 0.0}, "temperature"),
        ((3, 2), (3, 2), {"movies": torch.arange(4)}, "movies must have one row"),
    ],
)
def test_in_batch_softmax_rejects_mismatched_shapes(users, movies, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        in_batch_softmax(torch.zeros(users), torch.zeros(movies), **kwargs)


def test_batch_log_q_is_the_log_share_of_the_pairs() -> None:
    counts = torch.tensor([2, 0, 5, 1])
    log_q = batch_log_q(torch.tensor([2, 0, 2, 3]), counts)
    assert log_q.dtype == torch.float32
    assert torch.allclose(log_q.exp(), torch.tensor([5 / 8, 2 / 8, 5 / 8, 1 / 8]))
    with pytest.raises(ValueError, match="positive count"):
        batch_log_q(torch.tensor([1]), counts)


# ------------------------------------------------------------------ the two-tower model


def test_shapes_and_score_all_is_the_dot_product_of_the_towers(side, bags) -> None:
    model = tower(side).eval()
    users = torch.tensor([3, 0, 29, 3])
    with torch.no_grad():
        user_vecs = model.user_vectors(bags[users], model.user_features(users), users=users)
        movie_vecs = model.movie_vectors()
        scores = model.score_all(users, bags[users])
        pair_users, pair_movies = model(users, bags[users], torch.tensor([1, 2, 3, 39]))
    assert user_vecs.shape == (4, DIM) and movie_vecs.shape == (N_MOVIES, DIM)
    assert scores.shape == (4, N_MOVIES)
    assert torch.allclose(scores, user_vecs @ movie_vecs.T, atol=1e-6)
    assert torch.allclose(pair_users, user_vecs) and torch.allclose(
        pair_movies, movie_vecs[[1, 2, 3, 39]]
    )
    # The same user at two batch positions: equal up to rounding (BLAS does not promise
    # bitwise-equal rows at different positions).
    torch.testing.assert_close(user_vecs[0], user_vecs[3])


def test_new_movie_is_embedded_from_its_features_alone(side) -> None:
    model = tower(side).eval()
    cold = torch.tensor([7, 8])
    with torch.no_grad():
        before_cold = model.movie_vectors(cold, with_ids=False)
        before_warm = model.movie_vectors(cold)
        model.movie_id.weight[cold] += 5.0  # whatever the ids' rows hold ...
        after_cold = model.movie_vectors(cold, with_ids=False)
        after_warm = model.movie_vectors(cold)
    assert torch.equal(after_cold, before_cold)  # ... the cold vectors do not read them
    assert not torch.allclose(after_warm, before_warm)


def test_movies_alike_in_year_and_genres_share_a_cold_vector(side) -> None:
    model = tower(side).eval()
    year, genres = side.movies["year"], side.movies["genres"]
    pairs = [
        (i, j)
        for i in range(N_MOVIES)
        for j in range(i + 1, N_MOVIES)
        if year[i] == year[j] and torch.equal(genres[i], genres[j])
    ]
    assert pairs  # the synthetic data has some (movies 8 and 10)
    with torch.no_grad():
        cold = model.movie_vectors(with_ids=False)
        warm = model.movie_vectors()
    for i, j in pairs:
        torch.testing.assert_close(cold[i], cold[j])  # rows i and j: equal up to rounding
        assert not torch.allclose(warm[i], warm[j])
    assert len(cold.unique(dim=0)) > 1  # the features do matter


def test_with_ids_chooses_movie_by_movie(side) -> None:
    model = tower(side).eval()
    mask = torch.arange(N_MOVIES) % 3 == 0
    with torch.no_grad():
        mixed = model.movie_vectors(with_ids=mask)
        warm, cold = model.movie_vectors(), model.movie_vectors(with_ids=False)
    torch.testing.assert_close(mixed[mask], warm[mask])
    torch.testing.assert_close(mixed[~mask], cold[~mask])
    with pytest.raises(ValueError, match="one bool per movie"):
        model.movie_vectors(torch.tensor([0, 1]), with_ids=mask)


def test_reserved_id_rows_start_at_zero_and_id_dropout_one_is_the_cold_tower(side) -> None:
    model = tower(side, user_ids=True, id_dropout=1.0)
    assert not model.movie_id.weight[-1].any() and not model.user_id.weight[-1].any()
    assert model.movie_id.weight.shape == (N_MOVIES + 1, DIM)
    with torch.no_grad():
        model.train()  # every id dropped
        dropped = model.movie_vectors()
        model.eval()  # no id dropped in evaluation
        torch.testing.assert_close(dropped, model.movie_vectors(with_ids=False))
        assert not torch.allclose(dropped, model.movie_vectors())


def test_id_dropout_drops_some_ids_while_training(side) -> None:
    model = tower(side, id_dropout=0.5)
    with torch.no_grad():
        torch.manual_seed(0)
        vecs = model.train().movie_vectors()
        warm = model.eval().movie_vectors()
        cold = model.movie_vectors(with_ids=False)
    as_warm = torch.isclose(vecs, warm, rtol=1e-5, atol=1e-6).all(1)
    as_cold = torch.isclose(vecs, cold, rtol=1e-5, atol=1e-6).all(1)
    assert bool((as_warm | as_cold).all()) and 0 < int(as_cold.sum()) < N_MOVIES


def test_new_user_from_a_profile_and_a_bag(side, bags) -> None:
    model = tower(side, user_ids=True).eval()
    profile = side.profile(age=30, gender="F", occupation="student", zip_code="94110")
    bag = torch.zeros(1, N_MOVIES)
    bag[0, [2, 5]] = 1.0
    with torch.no_grad():
        new = model.user_vectors(bag, profile)  # users=None: the reserved "no id" row
        empty = model.user_vectors(torch.zeros(1, N_MOVIES), profile)
        rows = torch.arange(2)
        known = model.user_vectors(bags[:2], model.user_features(rows), users=rows)
        no_id = model.user_vectors(bags[:2], model.user_features(rows), users=None)
    assert new.shape == (1, DIM) and torch.isfinite(empty).all()
    assert not torch.allclose(new, empty)  # the bag matters
    assert not torch.allclose(known, no_id)  # users=None is not the users' own ids


def test_user_ids_off_ignores_the_user_rows(side, bags) -> None:
    model = tower(side).eval()
    users = torch.tensor([4, 9])
    features = model.user_features(users)
    with torch.no_grad():
        with_rows = model.user_vectors(bags[users], features, users=torch.tensor([0, 1]))
        without = model.user_vectors(bags[users], features)
    assert torch.equal(with_rows, without)


def test_normalize_gives_unit_vectors(side, bags) -> None:
    model = tower(side, normalize=True).eval()
    with torch.no_grad():
        movies = model.movie_vectors()
        users = model.user_vectors(bags[:5], model.user_features(torch.arange(5)))
    assert torch.allclose(movies.norm(dim=1), torch.ones(N_MOVIES), atol=1e-6)
    assert torch.allclose(users.norm(dim=1), torch.ones(5), atol=1e-6)


def test_config_rebuilds_the_model(side, bags) -> None:
    model = tower(side, hidden=(8, 6), user_ids=True, id_dropout=0.2, normalize=True)
    copy = TwoTower(side, **model.config)
    copy.load_state_dict(model.state_dict())  # strict: the same parameters
    users = torch.arange(6)
    with torch.no_grad():
        assert torch.equal(
            model.eval().score_all(users, bags[users]), copy.eval().score_all(users, bags[users])
        )


def test_seed_reproducible_and_global_generator_untouched(side) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b, c = tower(side, seed=5), tower(side, seed=5), tower(side, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert same_weights(a, b) and not same_weights(a, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, "dim"),
        ({"hidden": ()}, "hidden"),
        ({"dropout": 1.0}, "dropout"),
        ({"id_dropout": 1.5}, "id_dropout"),
    ],
)
def test_bad_settings_are_refused(side, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        tower(side, **kwargs)


def test_bad_inputs_are_refused(side, bags) -> None:
    model = tower(side)
    features = model.user_features(torch.arange(3))
    with pytest.raises(ValueError, match=r"bags must have shape \(B, 40\)"):
        model.user_vectors(bags[:3, :10], features)
    with pytest.raises(ValueError, match="one row per bag"):
        model.user_vectors(bags[:2], features)
    with pytest.raises(KeyError, match="lacks"):
        model.user_vectors(bags[:3], {k: v for k, v in features.items() if k != "zip"})
    with pytest.raises(ValueError, match="1-D"):
        model.movie_vectors(torch.tensor([[0, 1]]))


# ------------------------------------------------------------------ training


def test_two_tower_loss_leaves_the_target_out_of_the_bag(side, bags) -> None:
    model = tower(side).eval()
    users, movies = torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7])
    with_target, without = bags.clone(), bags.clone()
    with_target[users, movies], without[users, movies] = 1.0, 0.0
    before = with_target.clone()
    with torch.no_grad():
        a = two_tower_loss(model, users, movies, bags=with_target)
        b = two_tower_loss(model, users, movies, bags=without)
        user_vecs, movie_vecs = model(users, without[users], movies)
        counts = torch.bincount(movies, minlength=N_MOVIES) + 1
        corrected = two_tower_loss(model, users, movies, bags=without, counts=counts)
        by_hand = in_batch_softmax(user_vecs, movie_vecs, log_q=batch_log_q(movies, counts))
    torch.testing.assert_close(a, b)  # the same up to float rounding
    assert torch.equal(with_target, before)  # bags untouched
    assert a.item() == pytest.approx(in_batch_softmax(user_vecs, movie_vecs).item(), rel=1e-6)
    assert corrected.item() == pytest.approx(by_hand.item(), rel=1e-6)


@pytest.mark.parametrize("log_q", [False, True])
def test_fit_lowers_the_in_batch_loss_and_evaluates(ds, side, log_q: bool) -> None:
    indexer = Indexer.from_movielens(ds)
    train, test = random_split(ds.ratings, 0.2, seed=0)
    bags = indexer.bags(train)
    users, movies, _ = indexer.tensors(train)
    counts = torch.bincount(movies, minlength=N_MOVIES) if log_q else None
    loss = functools.partial(two_tower_loss, bags=bags, counts=counts, mask_duplicates=True)
    model = tower(side, dim=8, hidden=(16,), id_dropout=0.1)
    history = fit(model, (users, movies), loss, epochs=8, batch_size=32, lr=0.01, progress=False)
    assert history.train_loss[-1] < history.train_loss[0]
    metrics = evaluate_ranking(
        lambda rows: model.score_all(rows, bags[rows]), indexer, train, test, min_rating=4
    )
    assert 0 <= metrics["ndcg@10"] <= 1 and metrics["users"] > 0


# ------------------------------------------------------------------ the cheap bag path


class DenseOnly(torch.nn.Module):
    """A TwoTower seen only through ``forward``: two_tower_loss's dense path."""

    def __init__(self, model: TwoTower) -> None:
        super().__init__()
        self.model = model

    def forward(self, users, bags, movies):
        return self.model(users, bags, movies)


def random_pairs(bags: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs, repeated users included: half from the bags, half at random (not in them)."""
    g = torch.Generator().manual_seed(seed)
    in_bag = bags.nonzero()
    picked = in_bag[torch.randint(len(in_bag), (n // 2,), generator=g)]
    users = torch.cat([picked[:, 0], torch.randint(len(bags), (n - n // 2,), generator=g)])
    movies = torch.cat([picked[:, 1], torch.randint(bags.shape[1], (n - n // 2,), generator=g)])
    return users, movies


@pytest.mark.parametrize("kwargs", [{}, {"user_ids": True, "normalize": True}])
def test_pair_vectors_equal_the_dense_bags_without_each_pairs_movie(side, bags, kwargs) -> None:
    model = tower(side, **kwargs).eval()
    users, movies = random_pairs(bags, 64, seed=0)
    assert len(users.unique()) < len(users)  # some users twice: one sum serves both
    before = bags.clone()
    dense = bags[users]
    dense[torch.arange(len(users)), movies] = 0.0
    with torch.no_grad():
        expected = model(users, dense, movies)
        got = model.pair_vectors(users, movies, bags)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert torch.equal(bags, before)


def test_pair_vectors_of_an_emptied_bag_pool_to_zeros(side) -> None:
    model = tower(side).eval()
    bags = torch.zeros(N_USERS, N_MOVIES)
    bags[3, 7] = 1.0  # user 3's only movie is the pair's own
    with torch.no_grad():
        got, _ = model.pair_vectors(torch.tensor([3]), torch.tensor([7]), bags)
        empty, _ = model(torch.tensor([3]), torch.zeros(1, N_MOVIES), torch.tensor([7]))
    torch.testing.assert_close(got, empty)


@pytest.mark.parametrize("counts", [False, True])
def test_two_tower_loss_and_gradients_match_the_dense_path(side, bags, counts) -> None:
    model = tower(side, user_ids=True, normalize=True)
    users, movies = random_pairs(bags, 48, seed=1)
    n = torch.bincount(movies, minlength=N_MOVIES) + 1 if counts else None
    kwargs = {"bags": bags, "counts": n, "temperature": 0.5, "mask_duplicates": True}
    cheap = two_tower_loss(model, users, movies, **kwargs)
    cheap_grads = torch.autograd.grad(cheap, list(model.parameters()), allow_unused=True)
    dense = two_tower_loss(DenseOnly(model), users, movies, **kwargs)
    dense_grads = torch.autograd.grad(dense, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(cheap, dense)
    for a, b in zip(cheap_grads, dense_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_training_with_either_path_follows_the_same_losses(ds, side) -> None:
    indexer = Indexer.from_movielens(ds)
    users, movies, _ = indexer.tensors(ds.ratings)
    bags = indexer.bags(ds.ratings)
    loss = functools.partial(two_tower_loss, bags=bags, temperature=0.5, mask_duplicates=True)
    runs = []
    for wrap in (lambda m: m, DenseOnly):
        model = tower(side, dim=8, hidden=(16,))
        settings = {"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 0, "progress": False}
        history = fit(wrap(model), (users, movies), loss, **settings)
        runs.append(history.train_loss)
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)


def test_pair_vectors_refuse_bad_inputs(side, bags) -> None:
    model = tower(side)
    with pytest.raises(ValueError, match="every user's bag"):
        model.pair_vectors(torch.tensor([0]), torch.tensor([1]), bags[:, :-1])
    with pytest.raises(ValueError, match="1-D"):
        model.pair_vectors(torch.tensor([0, 1]), torch.tensor([1]), bags)
