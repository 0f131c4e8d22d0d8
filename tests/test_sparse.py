"""Sparse rating matrices (chapter 10): RatingMatrix, sampled dot, mse_sparse, full-batch fit."""

from __future__ import annotations

import copy
import functools
import re

import pytest
import torch

from mfkit.losses import mse_sparse, observed_mse
from mfkit.models import MatrixFactorization
from mfkit.sparse import RatingMatrix
from mfkit.train import evaluate, fit, rating_rmse

N_USERS, N_MOVIES = 8, 7
RATED_USERS = torch.tensor([0, 1, 3, 4, 6])  # users 2, 5 and 7 have no ratings
RATED_MOVIES = torch.tensor([1, 2, 4, 5])  # movies 0, 3 and 6 have no ratings


def random_triples(n: int, seed: int, *, duplicates: bool = True):
    """``n`` shuffled (user, movie, rating) triples on RATED_USERS x RATED_MOVIES.

    With ``duplicates`` some (user, movie) pairs occur several times (with different
    ratings); without, every pair occurs at most once.
    """
    generator = torch.Generator().manual_seed(seed)
    if duplicates:
        users = RATED_USERS[torch.randint(len(RATED_USERS), (n,), generator=generator)]
        movies = RATED_MOVIES[torch.randint(len(RATED_MOVIES), (n,), generator=generator)]
        users = torch.cat([users, users[:4], users[:2]])  # pairs 0 and 1 three times
        movies = torch.cat([movies, movies[:4], movies[:2]])
    else:
        cells = torch.cartesian_prod(RATED_USERS, RATED_MOVIES)
        chosen = cells[torch.randperm(len(cells), generator=generator)[:n]]
        users, movies = chosen[:, 0], chosen[:, 1]
    ratings = 1 + 4 * torch.rand(len(users), generator=generator)
    order = torch.randperm(len(users), generator=generator)
    return users[order], movies[order], ratings[order]


def make_matrix(n: int = 30, seed: int = 0, **kwargs) -> RatingMatrix:
    return RatingMatrix(*random_triples(n, seed, **kwargs), N_USERS, N_MOVIES)


def make_model(*, bias: bool, dim: int = 3, seed: int = 0) -> MatrixFactorization:
    """A model with random factors and (with ``bias``) random nonzero biases."""
    model = MatrixFactorization(
        N_USERS, N_MOVIES, dim=dim, bias=bias, global_mean=3.0, init_std=0.5, seed=seed
    )
    if bias:
        generator = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            model.user_bias.weight.copy_(torch.randn(N_USERS, 1, generator=generator))
            model.movie_bias.weight.copy_(torch.randn(N_MOVIES, 1, generator=generator))
    return model


def dense(users, movies, values, shape) -> torch.Tensor:
    """The dense matrix with ``values`` at (users, movies), duplicates summed, by brute force."""
    result = torch.zeros(shape, dtype=torch.float64)
    for user, movie, value in zip(users.tolist(), movies.tolist(), values.tolist(), strict=True):
        result[user, movie] += value
    return result


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


# --- RatingMatrix: order, length, CSR views ------------------------------------------------


@pytest.mark.parametrize("duplicates", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ratings_are_sorted_by_user_then_movie(seed, duplicates):
    users, movies, ratings = random_triples(15, seed, duplicates=duplicates)
    matrix = RatingMatrix(users, movies, ratings, N_USERS, N_MOVIES)
    triples = list(zip(users.tolist(), movies.tolist(), ratings.tolist(), strict=True))
    got = list(
        zip(matrix.users.tolist(), matrix.movies.tolist(), matrix.ratings.tolist(), strict=True)
    )
    assert len(matrix) == len(users)
    assert [(u, m) for u, m, _ in got] == sorted((u, m) for u, m, _ in triples)
    assert sorted(got) == sorted(triples)  # a permutation of the input triples
    if not duplicates:  # then the order is unique
        assert got == sorted(triples)


def test_sorting_does_not_change_the_input():
    users, movies, ratings = random_triples(12, 3)
    saved = users.clone(), movies.clone(), ratings.clone()
    RatingMatrix(users, movies, ratings, N_USERS, N_MOVIES)
    for before, after in zip(saved, (users, movies, ratings), strict=True):
        assert torch.equal(before, after)


def test_accepts_lists_and_keeps_one_rating_of_one_cell():
    matrix = RatingMatrix([2], [3], [4.5], 3, 4)
    assert len(matrix) == 1
    assert (matrix.users.tolist(), matrix.movies.tolist(), matrix.ratings.tolist()) == (
        [2],
        [3],
        [4.5],
    )
    expected = torch.zeros(3, 4, dtype=torch.float64)
    expected[2, 3] = 4.5
    assert torch.equal(matrix.by_users(matrix.ratings).to_dense().double(), expected)
    assert torch.equal(matrix.by_movies(matrix.ratings).to_dense().double(), expected.T)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("duplicates", [True, False])
def test_by_users_and_by_movies_are_the_dense_matrix_and_its_transpose(seed, duplicates):
    matrix = make_matrix(25, seed, duplicates=duplicates)
    values = torch.randn(
        len(matrix), dtype=torch.float64, generator=torch.Generator().manual_seed(9)
    )
    expected = dense(matrix.users, matrix.movies, values, (N_USERS, N_MOVIES))
    by_users, by_movies = matrix.by_users(values), matrix.by_movies(values)
    assert by_users.shape == (N_USERS, N_MOVIES)
    assert by_movies.shape == (N_MOVIES, N_USERS)
    assert torch.allclose(by_users.to_dense(), expected)
    assert torch.allclose(by_movies.to_dense(), expected.T)
    ratings = dense(matrix.users, matrix.movies, matrix.ratings, (N_USERS, N_MOVIES))
    assert torch.allclose(matrix.by_users(matrix.ratings).to_dense().double(), ratings)
    assert torch.allclose(matrix.by_movies(matrix.ratings).to_dense().double(), ratings.T)


# --- dot: the sampled product and its gradients ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("duplicates", [True, False])
def test_dot_and_its_gradients_match_the_gathered_product(dtype, duplicates):
    matrix = make_matrix(30, 4, duplicates=duplicates)
    generator = torch.Generator().manual_seed(5)
    U = torch.randn(N_USERS, 3, dtype=dtype, generator=generator, requires_grad=True)  # noqa: N806
    V = torch.randn(N_MOVIES, 3, dtype=dtype, generator=generator, requires_grad=True)  # noqa: N806
    upstream = torch.randn(len(matrix), dtype=dtype, generator=generator)
    U2, V2 = U.detach().clone().requires_grad_(), V.detach().clone().requires_grad_()  # noqa: N806

    got = matrix.dot(U, V)
    expected = (U2[matrix.users] * V2[matrix.movies]).sum(1)
    assert got.shape == (len(matrix),)
    assert got.dtype == dtype
    assert torch.allclose(got, expected, atol=1e-6)
    got.backward(upstream)
    expected.backward(upstream)
    assert torch.allclose(U.grad, U2.grad, atol=1e-5)
    assert torch.allclose(V.grad, V2.grad, atol=1e-5)
    assert torch.equal(U.grad[2], torch.zeros(3, dtype=dtype))  # a user with no ratings


def test_dot_gradient_of_a_sum():
    """``.sum()`` passes an expanded (stride 0) gradient to backward."""
    matrix = make_matrix(20, 6)
    U = torch.randn(N_USERS, 2, dtype=torch.float64, requires_grad=True)  # noqa: N806
    V = torch.randn(N_MOVIES, 2, dtype=torch.float64, requires_grad=True)  # noqa: N806
    matrix.dot(U, V).sum().backward()
    counts = dense(matrix.users, matrix.movies, torch.ones(len(matrix)), (N_USERS, N_MOVIES))
    assert torch.allclose(U.grad, counts @ V.detach())
    assert torch.allclose(V.grad, counts.T @ U.detach())


@pytest.mark.parametrize("side", ["U", "V"])
def test_dot_with_only_one_side_requiring_grad(side):
    matrix = make_matrix(20, 7)
    generator = torch.Generator().manual_seed(8)
    tables = {
        "U": torch.randn(N_USERS, 2, dtype=torch.float64, generator=generator),
        "V": torch.randn(N_MOVIES, 2, dtype=torch.float64, generator=generator),
    }
    tables[side].requires_grad_()
    twin = tables[side].detach().clone().requires_grad_()
    upstream = torch.randn(len(matrix), dtype=torch.float64, generator=generator)
    other = tables["V" if side == "U" else "U"]

    got = matrix.dot(tables["U"], tables["V"])
    assert got.requires_grad
    got.backward(upstream)
    U2, V2 = (twin, other) if side == "U" else (other, twin)  # noqa: N806
    (U2[matrix.users] * V2[matrix.movies]).sum(1).backward(upstream)
    assert torch.allclose(tables[side].grad, twin.grad)
    assert other.grad is None


def test_dot_without_gradients():
    matrix = make_matrix(10, 1)
    U, V = torch.randn(N_USERS, 2), torch.randn(N_MOVIES, 2)  # noqa: N806
    got = matrix.dot(U, V)
    assert not got.requires_grad
    assert torch.allclose(got, (U[matrix.users] * V[matrix.movies]).sum(1))


# --- mse_sparse -------------------------------------------------------------------------------


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize(("bias", "dim"), [(False, 3), (True, 3), (True, 0)])
def test_mse_sparse_and_its_gradients_match_observed_mse(bias, dim, l2):
    users, movies, ratings = random_triples(30, 11)
    matrix = RatingMatrix(users, movies, ratings, N_USERS, N_MOVIES)
    model = make_model(bias=bias, dim=dim)
    twin = copy.deepcopy(model)

    got = mse_sparse(model, matrix, l2=l2)
    expected = observed_mse(twin, users, movies, ratings, l2=l2)  # batch_l2 over all ratings
    assert got.shape == ()
    assert torch.allclose(got, expected, rtol=1e-5)
    got.backward()
    expected.backward()
    got_grads, expected_grads = grads(model), grads(twin)
    assert got_grads.keys() == expected_grads.keys()
    for name, grad in expected_grads.items():
        assert torch.allclose(got_grads[name], grad, atol=1e-6), name


def test_mse_sparse_l2_adds_the_penalty():
    users, movies, ratings = random_triples(20, 12)
    matrix = RatingMatrix(users, movies, ratings, N_USERS, N_MOVIES)
    model = make_model(bias=True)
    plain, penalised = mse_sparse(model, matrix), mse_sparse(model, matrix, l2=0.5)
    penalty = model.U[users].square().sum(1) + model.V[movies].square().sum(1)
    penalty = (
        penalty + model.user_bias.weight[users, 0] ** 2 + model.movie_bias.weight[movies, 0] ** 2
    )
    assert torch.allclose(penalised - plain, 0.5 * penalty.mean(), rtol=1e-5)


# --- fit with batch_size=None -----------------------------------------------------------------


def gradient_descent(model, data, loss, *, epochs: int, lr: float, valid=None):
    """``epochs`` full-batch SGD steps on ``data``; the losses before each step, and after."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    train_losses, valid_losses = [], []
    for _ in range(epochs):
        value = loss(model, *data)
        opt.zero_grad()
        value.backward()
        opt.step()
        train_losses.append(float(value.detach()))
        if valid is not None:
            with torch.no_grad():
                valid_losses.append(float(loss(model, *valid)))
    return train_losses, valid_losses


@pytest.mark.parametrize(("bias", "l2"), [(False, 0.0), (True, 0.0), (True, 0.2)])
def test_fit_on_a_rating_matrix_is_full_batch_gradient_descent(bias, l2):
    users, movies, ratings = random_triples(30, 13)
    matrix = RatingMatrix(users, movies, ratings, N_USERS, N_MOVIES)
    model = make_model(bias=bias)
    twin = copy.deepcopy(model)
    epochs, lr = 4, 0.05

    history = fit(
        model,
        (matrix,),
        functools.partial(mse_sparse, l2=l2),
        batch_size=None,
        epochs=epochs,
        lr=lr,
        optimizer="sgd",
        progress=False,
    )
    losses, _ = gradient_descent(
        twin,
        (users, movies, ratings),
        functools.partial(observed_mse, l2=l2),
        epochs=epochs,
        lr=lr,
    )
    assert history.epochs == epochs
    assert history.train_loss == pytest.approx(losses, rel=1e-5)
    assert losses[-1] < losses[0]  # the steps did something
    for (name, got), expected in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(got, expected, atol=1e-5), name


def test_fit_on_a_rating_matrix_records_the_validation_loss():
    train = random_triples(30, 14)
    valid = random_triples(10, 15)
    matrix = RatingMatrix(*train, N_USERS, N_MOVIES)
    valid_matrix = RatingMatrix(*valid, N_USERS, N_MOVIES)
    model = make_model(bias=True)
    twin = copy.deepcopy(model)

    history = fit(
        model,
        (matrix,),
        mse_sparse,
        valid=(valid_matrix,),
        batch_size=None,
        epochs=3,
        lr=0.05,
        optimizer="sgd",
        progress=False,
    )
    _, valid_losses = gradient_descent(
        twin, (matrix,), mse_sparse, epochs=3, lr=0.05, valid=(valid_matrix,)
    )
    assert history.valid_loss == pytest.approx(valid_losses, rel=1e-5)
    assert history.valid_loss[-1] == pytest.approx(
        float(mse_sparse(model, valid_matrix).detach()), rel=1e-6
    )


def test_fit_on_a_rating_matrix_records_metrics_of_its_ratings():
    """A metric (here RMSE) takes (users, movies, ratings): fit unpacks a rating matrix."""
    train, valid = random_triples(30, 17), random_triples(10, 18)
    matrix = RatingMatrix(*train, N_USERS, N_MOVIES)
    model = make_model(bias=True)
    history = fit(model, (matrix,), mse_sparse, valid=(RatingMatrix(*valid, N_USERS, N_MOVIES),),
                  metric=rating_rmse, batch_size=None, epochs=2, progress=False)  # fmt: skip
    assert len(history.train_metric) == len(history.valid_metric) == 2
    assert history.train_metric[-1] == pytest.approx(rating_rmse(model, *train), rel=1e-6)
    assert history.valid_metric[-1] == pytest.approx(rating_rmse(model, *valid), rel=1e-6)


def test_evaluate_on_a_rating_matrix_is_one_call():
    matrix = make_matrix(25, 16)
    model = make_model(bias=True)
    assert evaluate(model, (matrix,), mse_sparse, batch_size=4) == pytest.approx(
        float(mse_sparse(model, matrix).detach()), rel=1e-6
    )


def test_fit_full_batch_on_tensors_takes_one_unshuffled_step_per_epoch():
    users, movies, ratings = random_triples(30, 17)
    model = make_model(bias=True)
    twin = copy.deepcopy(model)
    seen = []

    def recording_mse(model, *batch):
        seen.append(batch)
        return observed_mse(model, *batch)

    history = fit(
        model,
        (users, movies, ratings),
        recording_mse,
        batch_size=None,
        epochs=1,
        lr=0.05,
        optimizer="sgd",
        progress=False,
    )
    losses, _ = gradient_descent(twin, (users, movies, ratings), observed_mse, epochs=1, lr=0.05)
    assert len(seen) == 1  # one step
    for got, expected in zip(seen[0], (users, movies, ratings), strict=True):
        assert torch.equal(got, expected)  # all the data, in its order
    assert history.train_loss == pytest.approx(losses, rel=1e-6)
    for got, expected in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_fit_still_rejects_a_batch_size_below_one(batch_size):
    users, movies, ratings = random_triples(10, 18)
    matrix = RatingMatrix(users, movies, ratings, N_USERS, N_MOVIES)
    model = make_model(bias=False)
    with pytest.raises(ValueError):
        fit(model, (users, movies, ratings), observed_mse, batch_size=batch_size, progress=False)
    with pytest.raises(ValueError):
        fit(model, (matrix,), mse_sparse, batch_size=batch_size, progress=False)


# --- errors, to, repr -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("users", "movies", "ratings"),
    [
        ([0, 1, 2], [0, 1], [1.0, 2.0, 3.0]),
        ([0, 1], [0, 1, 2], [1.0, 2.0]),
        ([0, 1], [0, 1], [1.0]),
        ([], [], []),
    ],
)
def test_mismatched_or_empty_ratings_raise_value_error(users, movies, ratings):
    with pytest.raises(ValueError):
        RatingMatrix(torch.tensor(users), torch.tensor(movies), torch.tensor(ratings), 3, 3)


@pytest.mark.parametrize(
    ("users", "movies"),
    [([0, -1], [0, 1]), ([0, 3], [0, 1]), ([0, 1], [-1, 1]), ([0, 1], [0, 4]), ([5, 2], [9, 0])],
)
def test_rows_out_of_range_raise_index_error(users, movies):
    with pytest.raises(IndexError):
        RatingMatrix(torch.tensor(users), torch.tensor(movies), torch.tensor([1.0, 2.0]), 3, 4)


def test_rows_at_the_last_index_are_accepted():
    matrix = RatingMatrix(
        torch.tensor([2, 0]), torch.tensor([3, 0]), torch.tensor([1.0, 2.0]), 3, 4
    )
    assert matrix.users.tolist() == [0, 2]
    assert matrix.movies.tolist() == [0, 3]


def test_to_returns_a_new_equal_matrix_and_leaves_the_original():
    matrix = make_matrix(11, 19, duplicates=False)
    before = {k: v.clone() for k, v in vars(matrix).items() if isinstance(v, torch.Tensor)}
    moved = matrix.to("cpu")
    assert moved is not matrix
    assert isinstance(moved, RatingMatrix)
    assert moved.shape == matrix.shape
    assert len(moved) == len(matrix)
    for key, value in before.items():
        assert torch.equal(getattr(matrix, key), value), key  # the original is unchanged
        assert torch.equal(getattr(moved, key), value), key
    U, V = torch.randn(N_USERS, 2), torch.randn(N_MOVIES, 2)  # noqa: N806
    assert torch.equal(moved.dot(U, V), matrix.dot(U, V))
    values = torch.arange(len(matrix), dtype=torch.float32)
    assert torch.equal(moved.by_movies(values).to_dense(), matrix.by_movies(values).to_dense())


def test_repr_mentions_the_shape_and_the_number_of_ratings():
    matrix = make_matrix(11, 20, duplicates=False)
    numbers = re.findall(r"\d+", repr(matrix))
    assert str(N_USERS) in numbers
    assert str(N_MOVIES) in numbers
    assert str(len(matrix)) in numbers
    assert len(matrix) == 11
