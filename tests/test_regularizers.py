"""Tests for the chapter-4 regularizers: l2_regularizer, gravity and regularized_mse."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mfkit.losses import gravity, l2_regularizer, regularized_mse
from mfkit.models import MatrixFactorization
from mfkit.train import fit

SHAPES = [(1, 1, 1), (4, 9, 1), (9, 4, 1), (7, 5, 3), (20, 30, 8), (3, 50, 16)]


def random_factors(n: int, m: int, d: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    U = scale * torch.randn(n, d, generator=g, dtype=torch.float64)  # noqa: N806
    V = scale * torch.randn(m, d, generator=g, dtype=torch.float64)  # noqa: N806
    return U.requires_grad_(), V.requires_grad_()


def brute_gravity(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """The definition: the mean of the squared entries of the full matrix U V^T."""
    return ((U @ V.T) ** 2).mean()


def loop_l2(U: torch.Tensor, V: torch.Tensor) -> float:  # noqa: N803
    """1/N sum_i ||U_i||^2 + 1/M sum_j ||V_j||^2 with Python loops."""
    total = 0.0
    for table in (U, V):
        rows = table.detach().tolist()
        total += sum(sum(x * x for x in row) for row in rows) / len(rows)
    return total


def loop_gravity(U: torch.Tensor, V: torch.Tensor) -> float:  # noqa: N803
    """1/(N M) sum_ij <U_i, V_j>^2 with Python loops (a second, independent reference)."""
    u, v = U.detach().tolist(), V.detach().tolist()
    total = sum(sum(a * b for a, b in zip(ui, vj, strict=True)) ** 2 for ui in u for vj in v)
    return total / (len(u) * len(v))


@pytest.mark.parametrize(("n", "m", "d"), SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gravity_closed_form_equals_brute_force(n: int, m: int, d: int, seed: int) -> None:
    U, V = random_factors(n, m, d, seed)  # noqa: N806
    value = gravity(U, V)
    assert value.shape == () and value.dtype == torch.float64
    torch.testing.assert_close(value, brute_gravity(U, V), rtol=1e-12, atol=1e-12)
    assert value.item() == pytest.approx(loop_gravity(U, V), rel=1e-12)


@pytest.mark.parametrize(("n", "m", "d"), SHAPES)
def test_gravity_gradient_equals_brute_force_gradient(n: int, m: int, d: int) -> None:
    U, V = random_factors(n, m, d, seed=2)  # noqa: N806
    closed = torch.autograd.grad(gravity(U, V), (U, V))
    brute = torch.autograd.grad(brute_gravity(U, V), (U, V))
    for a, b in zip(closed, brute, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # And the analytic gradient: d/dU mean((U V^T)^2) = 2 U V^T V / (N M).
    torch.testing.assert_close(closed[0], 2 * U @ (V.T @ V) / (n * m), rtol=1e-10, atol=1e-12)


def test_gravity_is_zero_for_orthogonal_embeddings_and_scales_quartically() -> None:
    U = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)  # noqa: N806
    V = torch.tensor([[0.0, 3.0], [0.0, -1.0], [0.0, 5.0]], dtype=torch.float64)  # noqa: N806
    assert gravity(U, V).item() == 0.0  # every <U_i, V_j> is 0
    U, V = random_factors(5, 6, 3, seed=3)  # noqa: N806
    torch.testing.assert_close(gravity(2 * U, 2 * V), 16 * gravity(U, V))


@pytest.mark.parametrize(("n", "m", "d"), SHAPES)
def test_l2_regularizer_equals_mean_squared_row_norms(n: int, m: int, d: int) -> None:
    U, V = random_factors(n, m, d, seed=4)  # noqa: N806
    value = l2_regularizer(U, V)
    assert value.shape == ()
    assert value.item() == pytest.approx(loop_l2(U, V), rel=1e-12)


def test_l2_regularizer_weights_users_and_movies_by_their_own_counts() -> None:
    # 1/N and 1/M, not 1/(N+M): one user with norm^2 4, three movies with norm^2 1, 1, 4.
    U = torch.tensor([[2.0, 0.0]])  # noqa: N806
    V = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.0, 2.0]])  # noqa: N806
    assert l2_regularizer(U, V).item() == pytest.approx(4.0 + 6.0 / 3)


def make_model(bias: bool, seed: int = 0) -> MatrixFactorization:
    model = MatrixFactorization(6, 8, 3, bias=bias, global_mean=3.0, init_std=0.8, seed=seed)
    if bias:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            model.user_bias.weight.normal_(generator=g)
            model.movie_bias.weight.normal_(generator=g)
    return model


def make_batch(seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    users = torch.tensor([0, 2, 2, 5])  # rows 1, 3, 4 of U are not in the batch
    movies = torch.randint(8, (4,), generator=g)
    ratings = torch.randint(1, 6, (4,), generator=g).float()
    return users, movies, ratings


@pytest.mark.parametrize("bias", [False, True])
def test_regularized_mse_without_penalties_is_mse_of_predictions(bias: bool) -> None:
    model = make_model(bias)
    users, movies, ratings = make_batch()
    expected = F.mse_loss(model(users, movies), ratings)
    assert expected.item() > 0
    torch.testing.assert_close(regularized_mse(model, users, movies, ratings), expected)
    zero = regularized_mse(model, users, movies, ratings, lambda_r=0.0, lambda_g=0.0)
    torch.testing.assert_close(zero, expected)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("lambda_r", "lambda_g"), [(0.3, 0.0), (0.0, 2.0), (0.05, 0.7)])
def test_regularized_mse_adds_weighted_penalties(bias: bool, lambda_r: float, lambda_g) -> None:
    model = make_model(bias)
    users, movies, ratings = make_batch()
    with torch.no_grad():  # computed independently of mfkit.losses
        pred = [model(users[k : k + 1], movies[k : k + 1]).item() for k in range(len(users))]
        mse = sum((p - r) ** 2 for p, r in zip(pred, ratings.tolist(), strict=True)) / len(pred)
    expected = (
        mse + lambda_r * loop_l2(model.U, model.V) + lambda_g * loop_gravity(model.U, model.V)
    )
    value = regularized_mse(model, users, movies, ratings, lambda_r=lambda_r, lambda_g=lambda_g)
    assert value.shape == ()
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert value.item() > mse  # both penalties are positive here
    partial = functools.partial(regularized_mse, lambda_r=lambda_r, lambda_g=lambda_g)
    torch.testing.assert_close(partial(model, users, movies, ratings), value)


def test_penalties_reach_rows_outside_the_batch() -> None:
    users, movies, ratings = make_batch()
    outside = [1, 3, 4]
    for kwargs, touched in (({}, False), ({"lambda_r": 0.1}, True), ({"lambda_g": 0.1}, True)):
        model = make_model(bias=False)
        regularized_mse(model, users, movies, ratings, **kwargs).backward()
        grad = model.user_factors.weight.grad
        assert bool((grad[outside] != 0).any()) is touched, kwargs
        assert (grad[[0, 2, 5]] != 0).any()  # the batch rows always get a gradient


def regularized_problem():
    g = torch.Generator().manual_seed(0)
    U, V = torch.randn(25, 3, generator=g), torch.randn(30, 3, generator=g)  # noqa: N806
    cells = torch.randperm(25 * 30, generator=g)[:300]
    users, movies = cells // 30, cells % 30
    return users, movies, (U[users] * V[movies]).sum(-1) + 0.1 * torch.randn(300, generator=g)


def train_with(lambda_g: float, data) -> tuple[MatrixFactorization, list[float]]:
    model = MatrixFactorization(25, 30, 4, init_std=0.5, seed=7)
    loss = functools.partial(regularized_mse, lambda_r=0.01, lambda_g=lambda_g)
    history = fit(model, data, loss, epochs=8, lr=0.05, batch_size=100, progress=False)
    return model, history.train_loss


def test_regularized_mse_trains_with_fit_and_gravity_shrinks_all_predictions() -> None:
    data = regularized_problem()
    plain, plain_losses = train_with(0.0, data)
    pulled, pulled_losses = train_with(5.0, data)
    for losses in (plain_losses, pulled_losses):
        assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
        assert losses[-1] < losses[0]
    with torch.no_grad():
        g_plain, g_pulled = gravity(plain.U, plain.V).item(), gravity(pulled.U, pulled.V).item()
    assert g_pulled < 0.5 * g_plain
    # Same seed, same data, same lambda: the same weights.
    again, _ = train_with(5.0, data)
    assert torch.equal(again.U, pulled.U) and torch.equal(again.V, pulled.V)
