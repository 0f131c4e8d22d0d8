"""Alternating least squares (chapter 10): als_step, als_fit, als_objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfkit.als import als_fit, als_objective, als_step
from mfkit.losses import observed_mse
from mfkit.models import MatrixFactorization
from mfkit.train import fit


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The problems are tiny: threads only add overhead (a lot on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def low_rank(n_users: int, n_movies: int, rank: int, seed: int) -> torch.Tensor:
    """A random ``n_users x n_movies`` matrix of rank ``rank`` with entries of order 1."""
    generator = torch.Generator().manual_seed(seed)
    U = torch.randn(n_users, rank, generator=generator)  # noqa: N806
    V = torch.randn(n_movies, rank, generator=generator)  # noqa: N806
    return U @ V.T / rank**0.5


def cells(n_users: int, n_movies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (user, movie) pair, row by row."""
    users, movies = torch.meshgrid(torch.arange(n_users), torch.arange(n_movies), indexing="ij")
    return users.reshape(-1), movies.reshape(-1)


def split(n_users: int, n_movies: int, held_out: float, seed: int):
    """Observed and held-out cells, each user and movie keeping at least one observed cell."""
    users, movies = cells(n_users, n_movies)
    generator = torch.Generator().manual_seed(seed)
    hide = torch.rand(len(users), generator=generator) < held_out
    hide[users == movies] = False  # the diagonal stays observed
    return (users[~hide], movies[~hide]), (users[hide], movies[hide])


def random_ratings(n_users: int, n_movies: int, n: int, seed: int):
    """``n`` random (user, movie, rating) triples, repeated pairs allowed, every row used.

    Needs ``n_users >= n_movies``: the first ``n_users`` pairs cover every user and movie.
    """
    assert n_users >= n_movies
    generator = torch.Generator().manual_seed(seed)
    users = torch.cat([torch.arange(n_users), torch.randint(n_users, (n,), generator=generator)])
    movies = torch.cat(
        [torch.arange(n_users) % n_movies, torch.randint(n_movies, (n,), generator=generator)]
    )
    ratings = 1 + 4 * torch.rand(len(users), generator=generator)
    return users, movies, ratings


def rmse(model: MatrixFactorization, users, movies, ratings) -> float:
    with torch.no_grad():
        return float((model(users, movies) - ratings).square().mean().sqrt())


def random_model(n_users: int, n_movies: int, dim: int, bias: bool, seed: int, **kwargs):
    """A model with random factors and (when ``bias``) random, non-zero biases."""
    model = MatrixFactorization(
        n_users, n_movies, dim=dim, bias=bias, init_std=0.5, seed=seed, **kwargs
    )
    if bias:
        generator = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            model.user_bias.weight.normal_(0.0, 0.5, generator=generator)
            model.movie_bias.weight.normal_(0.0, 0.5, generator=generator)
    return model


def brute_force_ridge(model, users, movies, ratings, reg: float, solve_for: str) -> np.ndarray:
    """Each row's ridge solution, one row at a time in float64: ``(rows, dim [+ 1])``."""
    if solve_for == "users":
        rows, cols = users.numpy(), movies.numpy()
        n_rows, fixed = model.config["n_users"], model.V.detach().double().numpy()
        fixed_bias = model.movie_bias.weight if model.bias else None
    else:
        rows, cols = movies.numpy(), users.numpy()
        n_rows, fixed = model.config["n_movies"], model.U.detach().double().numpy()
        fixed_bias = model.user_bias.weight if model.bias else None
    targets = ratings.double().numpy().copy()
    if model.bias:
        targets -= model.global_mean.item() + fixed_bias.detach().double().numpy()[cols, 0]
        fixed = np.hstack([fixed, np.ones((len(fixed), 1))])
    k = fixed.shape[1]
    solution = np.zeros((n_rows, k))
    for row in range(n_rows):
        mine = rows == row
        if not mine.any():
            continue
        x, t = fixed[cols[mine]], targets[mine]
        gram = x.T @ x + reg * mine.sum() * np.eye(k)
        solution[row] = np.linalg.solve(gram, x.T @ t)
    return solution


def side(model: MatrixFactorization, solve_for: str) -> np.ndarray:
    """A side's factors, with its biases as a last column when the model has them."""
    factors = model.U if solve_for == "users" else model.V
    if model.bias:
        bias = model.user_bias.weight if solve_for == "users" else model.movie_bias.weight
        factors = torch.cat([factors, bias], dim=1)
    return factors.detach().double().numpy()


def objective_by_hand(model, users, movies, ratings, reg: float) -> float:
    """The weighted-lambda objective, one rating and one row at a time, in float64."""
    U, V = model.U.detach().double().numpy(), model.V.detach().double().numpy()  # noqa: N806
    if model.bias:
        mu = model.global_mean.item()
        b = model.user_bias.weight.detach().double().numpy()[:, 0]
        c = model.movie_bias.weight.detach().double().numpy()[:, 0]
    error = 0.0
    for i, j, r in zip(users.tolist(), movies.tolist(), ratings.tolist(), strict=True):
        pred = float(U[i] @ V[j]) + (mu + b[i] + c[j] if model.bias else 0.0)
        error += (r - pred) ** 2
    penalty = 0.0
    for i in range(len(U)):
        n_i = sum(1 for u in users.tolist() if u == i)
        penalty += n_i * (float(U[i] @ U[i]) + (b[i] ** 2 if model.bias else 0.0))
    for j in range(len(V)):
        n_j = sum(1 for m in movies.tolist() if m == j)
        penalty += n_j * (float(V[j] @ V[j]) + (c[j] ** 2 if model.bias else 0.0))
    return (error + reg * penalty) / len(ratings)


# ----------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("rank", [2, 3])
def test_recovers_a_fully_observed_low_rank_matrix(rank: int) -> None:
    truth = low_rank(40, 30, rank, seed=rank)
    users, movies = cells(40, 30)
    ratings = truth[users, movies]
    model = MatrixFactorization(40, 30, dim=rank, seed=0)
    losses = als_fit(model, users, movies, ratings, reg=1e-6, iterations=30, progress=False)
    assert rmse(model, users, movies, ratings) < 1e-3
    assert losses[-1] < 1e-3 * losses[0]


def test_recovers_held_out_cells_of_a_well_sampled_low_rank_matrix() -> None:
    truth = low_rank(40, 30, 2, seed=7)
    (users, movies), (hidden_users, hidden_movies) = split(40, 30, held_out=0.2, seed=1)
    assert len(hidden_users) > 100
    model = MatrixFactorization(40, 30, dim=2, seed=0)
    als_fit(model, users, movies, truth[users, movies], reg=1e-6, iterations=30, progress=False)
    assert rmse(model, users, movies, truth[users, movies]) < 1e-3
    assert rmse(model, hidden_users, hidden_movies, truth[hidden_users, hidden_movies]) < 1e-2


def test_recovers_ratings_with_biases() -> None:
    generator = torch.Generator().manual_seed(5)
    mu = 3.5
    user_bias, movie_bias = (
        torch.randn(40, generator=generator),
        torch.randn(30, generator=generator),
    )
    truth = mu + user_bias[:, None] + movie_bias[None, :] + low_rank(40, 30, 2, seed=6)
    (users, movies), (hidden_users, hidden_movies) = split(40, 30, held_out=0.15, seed=2)
    model = MatrixFactorization(40, 30, dim=2, bias=True, global_mean=mu, seed=0)
    als_fit(model, users, movies, truth[users, movies], reg=1e-6, iterations=30, progress=False)
    assert rmse(model, users, movies, truth[users, movies]) < 1e-3
    assert rmse(model, hidden_users, hidden_movies, truth[hidden_users, hidden_movies]) < 1e-2
    assert model.global_mean.item() == mu


def test_bias_only_model_trains() -> None:
    generator = torch.Generator().manual_seed(8)
    mu = 3.0
    truth = mu + torch.randn(12, generator=generator)[:, None] + torch.randn(9, generator=generator)
    users, movies = cells(12, 9)
    ratings = truth[users, movies]
    model = MatrixFactorization(12, 9, dim=0, bias=True, global_mean=mu, seed=0)
    losses = als_fit(model, users, movies, ratings, reg=1e-6, iterations=20, progress=False)
    assert losses[-1] < losses[0]
    assert all(b <= a + 1e-6 * abs(a) for a, b in zip(losses, losses[1:], strict=False))
    assert rmse(model, users, movies, ratings) < 1e-3
    assert model.U.shape == (12, 0) and model.V.shape == (9, 0)


def test_als_and_gradient_descent_reach_similar_training_rmse() -> None:
    truth = low_rank(20, 15, 2, seed=11)
    users, movies = cells(20, 15)
    ratings = truth[users, movies]
    als_model = MatrixFactorization(20, 15, dim=2, seed=0)
    als_fit(als_model, users, movies, ratings, reg=1e-4, iterations=30, progress=False)
    gd_model = MatrixFactorization(20, 15, dim=2, seed=0)
    fit(
        gd_model,
        (users, movies, ratings),
        observed_mse,
        epochs=200,
        batch_size=len(ratings),
        lr=0.05,
        progress=False,
    )
    als_rmse = rmse(als_model, users, movies, ratings)
    gd_rmse = rmse(gd_model, users, movies, ratings)
    assert als_rmse < 1e-2 and gd_rmse < 1e-2
    assert abs(als_rmse - gd_rmse) < 1e-2


# ----------------------------------------------------------------------------- monotonicity


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("solve_for", ["users", "movies"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_half_step_never_increases_the_objective(bias: bool, solve_for: str, seed: int) -> None:
    users, movies, ratings = random_ratings(9, 7, 40, seed=seed)
    model = random_model(9, 7, dim=3, bias=bias, seed=seed, global_mean=3.0)
    for reg in (1e-3, 0.1, 2.0):
        before = als_objective(model, users, movies, ratings, reg=reg)
        als_step(model, users, movies, ratings, reg=reg, solve_for=solve_for)
        after = als_objective(model, users, movies, ratings, reg=reg)
        assert after <= before + 1e-5 * abs(before)
        # a second solve of the same side is already at the minimum
        als_step(model, users, movies, ratings, reg=reg, solve_for=solve_for)
        again = als_objective(model, users, movies, ratings, reg=reg)
        assert again == pytest.approx(after, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("bias", [False, True])
def test_fit_returns_non_increasing_objectives(bias: bool) -> None:
    users, movies, ratings = random_ratings(15, 10, 80, seed=3)
    model = random_model(15, 10, dim=2, bias=bias, seed=3, global_mean=3.0)
    losses = als_fit(model, users, movies, ratings, reg=0.05, iterations=7, progress=False)
    assert len(losses) == 8
    assert all(isinstance(loss, float) for loss in losses)
    assert all(b <= a + 1e-5 * abs(a) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < losses[0]
    assert losses[0] == pytest.approx(
        objective_by_hand(
            random_model(15, 10, 2, bias, 3, global_mean=3.0), users, movies, ratings, 0.05
        ),
        rel=1e-5,
    )
    assert losses[-1] == pytest.approx(als_objective(model, users, movies, ratings, reg=0.05))
    assert not model.training


def test_fit_continues_from_the_current_factors() -> None:
    users, movies, ratings = random_ratings(10, 8, 50, seed=4)
    model = random_model(10, 8, dim=2, bias=True, seed=4, global_mean=3.0)
    first = als_fit(model, users, movies, ratings, reg=0.1, iterations=3, progress=False)
    second = als_fit(model, users, movies, ratings, reg=0.1, iterations=2, progress=False)
    assert second[0] == pytest.approx(first[-1])


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("solve_for", ["users", "movies"])
def test_a_half_step_is_the_per_row_ridge_solution(
    bias: bool, solve_for: str, dtype: torch.dtype
) -> None:
    users, movies, ratings = random_ratings(8, 6, 30, seed=5)
    users, movies, ratings = (
        torch.cat([users, users[:3]]),
        torch.cat([movies, movies[:3]]),
        torch.cat([ratings, ratings[:3] + 1.0]),
    )  # repeated pairs
    model = random_model(8, 6, dim=3, bias=bias, seed=5, global_mean=2.5).to(dtype)
    reg = 0.3
    other = "movies" if solve_for == "users" else "users"
    fixed_before = side(model, other)
    expected = brute_force_ridge(model, users, movies, ratings, reg, solve_for)
    als_step(model, users, movies, ratings, reg=reg, solve_for=solve_for)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(side(model, solve_for), expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(side(model, other), fixed_before)  # the other side is fixed
    assert model.U.dtype == dtype


# ----------------------------------------------------------------------------- objective


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("reg", [0.01, 1.5])
def test_objective_matches_a_brute_force_computation(bias: bool, reg: float) -> None:
    users, movies, ratings = random_ratings(7, 5, 25, seed=6)
    model = random_model(7, 5, dim=2, bias=bias, seed=6, global_mean=3.0)
    expected = objective_by_hand(model, users, movies, ratings, reg)
    assert als_objective(model, users, movies, ratings, reg=reg) == pytest.approx(
        expected, rel=1e-5
    )


def test_objective_of_a_hand_computed_example() -> None:
    # U = [[1, 0], [0, 2]], V = [[1, 1], [3, 0]]; ratings (0, 0) = 2, (0, 1) = 1, (1, 0) = 0
    model = MatrixFactorization(2, 2, dim=2)
    with torch.no_grad():
        model.U.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.V.copy_(torch.tensor([[1.0, 1.0], [3.0, 0.0]]))
    users, movies, ratings = (
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 1, 0]),
        torch.tensor([2.0, 1.0, 0.0]),
    )
    # predictions 1, 3, 2: squared errors 1 + 4 + 4 = 9
    # penalty: user 0 (2 ratings) 2 * 1, user 1 (1) 1 * 4, movie 0 (2) 2 * 2, movie 1 (1) 1 * 9
    expected = (9 + 0.5 * (2 + 4 + 4 + 9)) / 3
    assert als_objective(model, users, movies, ratings, reg=0.5) == pytest.approx(expected)


# ----------------------------------------------------------------------------- details


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("solve_for", ["users", "movies"])
def test_rows_without_ratings_become_zero(bias: bool, solve_for: str) -> None:
    # user 3 and movie 4 have no ratings
    users = torch.tensor([0, 0, 1, 1, 2, 2, 4, 4, 0])
    movies = torch.tensor([0, 1, 1, 2, 2, 3, 0, 3, 3])
    ratings = torch.tensor([5.0, 3.0, 4.0, 1.0, 2.0, 4.0, 3.0, 5.0, 2.0])
    model = random_model(5, 5, dim=2, bias=bias, seed=9, global_mean=3.0)
    empty = 3 if solve_for == "users" else 4
    assert np.abs(side(model, solve_for)[empty]).min() > 0
    als_step(model, users, movies, ratings, reg=0.1, solve_for=solve_for)
    solved = side(model, solve_for)
    assert np.all(solved[empty] == 0)
    others = [row for row in range(5) if row != empty]
    assert np.all(np.abs(solved[others]).sum(1) > 0)


def test_global_mean_is_unchanged() -> None:
    users, movies, ratings = random_ratings(9, 7, 40, seed=10)
    model = random_model(9, 7, dim=2, bias=True, seed=10, global_mean=3.25)
    als_fit(model, users, movies, ratings, reg=0.1, iterations=4, progress=False)
    assert model.global_mean.item() == 3.25


def test_fit_is_deterministic() -> None:
    users, movies, ratings = random_ratings(12, 9, 60, seed=12)
    first = random_model(12, 9, dim=3, bias=True, seed=12, global_mean=3.0)
    second = random_model(12, 9, dim=3, bias=True, seed=12, global_mean=3.0)
    losses_first = als_fit(first, users, movies, ratings, reg=0.1, iterations=4, progress=False)
    losses_second = als_fit(second, users, movies, ratings, reg=0.1, iterations=4, progress=False)
    assert losses_first == losses_second
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_fit_accepts_int32_indices() -> None:
    users, movies, ratings = random_ratings(9, 7, 40, seed=13)
    first = random_model(9, 7, dim=2, bias=False, seed=13)
    second = random_model(9, 7, dim=2, bias=False, seed=13)
    expected = als_fit(first, users, movies, ratings, reg=0.1, iterations=2, progress=False)
    got = als_fit(second, users.int(), movies.int(), ratings, reg=0.1, iterations=2, progress=False)
    assert got == pytest.approx(expected)
    assert torch.allclose(first.U, second.U) and torch.allclose(first.V, second.V)


# ----------------------------------------------------------------------------- errors


USERS, MOVIES, RATINGS = (
    torch.tensor([0, 1, 1]),
    torch.tensor([1, 0, 1]),
    torch.tensor([4.0, 2.0, 5.0]),
)


def call(function, model, users=USERS, movies=MOVIES, ratings=RATINGS, **kwargs):
    if function is als_fit:
        kwargs.setdefault("progress", False)
    return function(model, users, movies, ratings, **{"reg": 0.1} | kwargs)


@pytest.mark.parametrize("function", [als_fit, als_step, als_objective])
def test_rejects_a_model_that_is_not_matrix_factorization(function) -> None:
    with pytest.raises(TypeError, match="MatrixFactorization"):
        call(function, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("function", [als_fit, als_step, als_objective])
@pytest.mark.parametrize(
    "data",
    [
        (USERS[:2], MOVIES, RATINGS),
        (USERS, MOVIES[:2], RATINGS),
        (USERS, MOVIES, RATINGS[:2]),
    ],
)
def test_rejects_mismatched_lengths(function, data) -> None:
    with pytest.raises(ValueError, match="length"):
        call(function, MatrixFactorization(2, 2, dim=2, seed=0), *data)


@pytest.mark.parametrize("function", [als_fit, als_step, als_objective])
def test_rejects_empty_ratings(function) -> None:
    empty = torch.tensor([], dtype=torch.long)
    with pytest.raises(ValueError, match="no ratings"):
        call(function, MatrixFactorization(2, 2, dim=2, seed=0), empty, empty, torch.tensor([]))


@pytest.mark.parametrize("function", [als_fit, als_step, als_objective])
@pytest.mark.parametrize("reg", [0.0, -0.1])
def test_rejects_a_non_positive_reg(function, reg: float) -> None:
    with pytest.raises(ValueError, match="reg"):
        call(function, MatrixFactorization(2, 2, dim=2, seed=0), reg=reg)


@pytest.mark.parametrize("iterations", [0, -1])
def test_rejects_fewer_than_one_iteration(iterations: int) -> None:
    with pytest.raises(ValueError, match="iterations"):
        call(als_fit, MatrixFactorization(2, 2, dim=2, seed=0), iterations=iterations)


@pytest.mark.parametrize("solve_for", ["items", "user", "", "both"])
def test_rejects_an_unknown_side(solve_for: str) -> None:
    with pytest.raises(ValueError, match="solve_for"):
        call(als_step, MatrixFactorization(2, 2, dim=2, seed=0), solve_for=solve_for)


def test_errors_leave_the_model_unchanged() -> None:
    model = MatrixFactorization(2, 2, dim=2, seed=0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(ValueError):
        call(als_step, model, solve_for="items")
    with pytest.raises(ValueError):
        call(als_fit, model, reg=0.0)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
