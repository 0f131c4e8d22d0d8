"""Tests for mfkit.losses."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mfkit.losses import (
    batch_l2,
    bpr_loss,
    hinge_loss,
    implicit_bce,
    mse_dense,
    mse_gathered,
    observed_mse,
)
from mfkit.models import MatrixFactorization


def random_problem(n: int, m: int, d: int, size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: N806
    V = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: N806
    users = torch.randint(n, (size,), generator=g)  # repeated pairs are likely
    movies = torch.randint(m, (size,), generator=g)
    ratings = torch.randint(1, 6, (size,), generator=g).to(torch.float64)
    return U, V, users, movies, ratings


@pytest.mark.parametrize(
    ("n", "m", "d", "size", "seed"),
    [(1, 1, 1, 1, 0), (3, 4, 2, 10, 1), (7, 5, 8, 60, 2), (20, 30, 4, 200, 3)],
)
def test_dense_equals_gathered_with_gradients(n: int, m: int, d: int, size: int, seed: int) -> None:
    U, V, users, movies, ratings = random_problem(n, m, d, size, seed)  # noqa: N806
    dense = mse_dense(U, V, users, movies, ratings)
    gathered = mse_gathered(U, V, users, movies, ratings)
    assert dense.shape == gathered.shape == ()
    torch.testing.assert_close(dense, gathered, rtol=1e-12, atol=1e-12)
    grads_dense = torch.autograd.grad(dense, (U, V))
    grads_gathered = torch.autograd.grad(gathered, (U, V))
    for a, b in zip(grads_dense, grads_gathered, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_repeated_pairs_count_every_time() -> None:
    U, V = torch.eye(2), torch.eye(2)  # noqa: N806 - prediction is 1 on the diagonal
    users, movies = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 0])
    ratings = torch.tensor([3.0, 3.0, 3.0, 1.0])  # errors -2, -2, -2, -1
    for loss in (mse_dense, mse_gathered):
        assert loss(U, V, users, movies, ratings).item() == pytest.approx(13 / 4)


def test_hand_computed_example() -> None:
    U = torch.tensor([[1.0, 2.0], [0.0, -1.0]])  # noqa: N806
    V = torch.tensor([[3.0, 1.0], [1.0, 1.0], [2.0, 0.5]])  # noqa: N806
    # U V^T = [[5, 3, 3], [-1, -1, -0.5]]
    users, movies = torch.tensor([0, 1, 0]), torch.tensor([0, 2, 1])
    ratings = torch.tensor([4.0, 1.0, 3.0])
    # errors: 5-4=1, -0.5-1=-1.5, 3-3=0 -> (1 + 2.25 + 0) / 3
    for loss in (mse_dense, mse_gathered):
        assert loss(U, V, users, movies, ratings).item() == pytest.approx(3.25 / 3)


def test_hand_computed_gradient() -> None:
    U = torch.tensor([[1.0, 2.0]], requires_grad=True)  # noqa: N806
    V = torch.tensor([[3.0, 1.0]], requires_grad=True)  # noqa: N806
    loss = mse_gathered(U, V, torch.tensor([0]), torch.tensor([0]), torch.tensor([4.0]))
    loss.backward()  # d/dU (U.V - 4)^2 = 2 * (5 - 4) * V
    assert U.grad.tolist() == [[6.0, 2.0]] and V.grad.tolist() == [[2.0, 4.0]]


def brute_l2(model: MatrixFactorization, users: torch.Tensor, movies: torch.Tensor) -> float:
    total = 0.0
    for i, j in zip(users.tolist(), movies.tolist(), strict=True):
        total += sum(x * x for x in model.U[i].tolist()) + sum(x * x for x in model.V[j].tolist())
        if model.bias:
            total += model.user_bias.weight[i, 0].item() ** 2
            total += model.movie_bias.weight[j, 0].item() ** 2
    return total / len(users)


@pytest.mark.parametrize("bias", [False, True])
def test_batch_l2_equals_brute_force(bias: bool) -> None:
    model = MatrixFactorization(6, 9, 4, bias=bias, global_mean=3.5, init_std=0.7, seed=0)
    if bias:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            model.user_bias.weight.normal_(generator=g)
            model.movie_bias.weight.normal_(generator=g)
    users = torch.tensor([0, 5, 5, 2, 3])
    movies = torch.tensor([8, 0, 0, 4, 1])
    value = batch_l2(model, users, movies)
    assert value.shape == ()
    assert value.item() == pytest.approx(brute_l2(model, users, movies), rel=1e-6)


def test_batch_l2_ignores_the_global_mean() -> None:
    model = MatrixFactorization(2, 2, 1, bias=True, global_mean=100.0, init_std=0.0, seed=0)
    assert batch_l2(model, torch.tensor([0, 1]), torch.tensor([1, 0])).item() == 0.0


@pytest.mark.parametrize("bias", [False, True])
def test_batch_l2_of_triples_adds_the_negative_rows(bias: bool) -> None:
    model, users, movies, _ = make_batch(bias)
    negatives = movies.flip(0)
    triple = batch_l2(model, users, movies, negatives)
    extra = [
        sum(x * x for x in model.V[j].tolist())
        + (model.movie_bias.weight[j, 0].item() ** 2 if bias else 0.0)
        for j in negatives.tolist()
    ]
    expected = brute_l2(model, users, movies) + sum(extra) / len(extra)
    assert triple.item() == pytest.approx(expected, rel=1e-6)


def test_batch_l2_needs_factor_tables() -> None:
    with pytest.raises(TypeError, match="weight_decay"):
        batch_l2(torch.nn.Linear(2, 1), torch.tensor([0]), torch.tensor([0]))


@pytest.mark.parametrize(
    "loss, columns",
    [(bpr_loss, "triples"), (hinge_loss, "triples"), (implicit_bce, "pairs")],
)
def test_ranking_losses_add_l2_over_every_row_they_score(loss, columns) -> None:
    model, users, movies, _ = make_batch(bias=True)
    other = movies.flip(0)
    batch = (users, movies, other) if columns == "triples" else (users, movies, (other > 4).float())
    plain = loss(model, *batch)
    rows = (users, movies, other) if columns == "triples" else (users, movies)
    expected = plain + 0.3 * batch_l2(model, *rows)
    torch.testing.assert_close(loss(model, *batch, l2=0.3), expected)
    torch.testing.assert_close(loss(model, *batch, l2=0.0), plain)


def make_batch(bias: bool):
    model = MatrixFactorization(8, 10, 3, bias=bias, global_mean=3.0, init_std=0.5, seed=4)
    g = torch.Generator().manual_seed(2)
    users = torch.randint(8, (25,), generator=g)
    movies = torch.randint(10, (25,), generator=g)
    ratings = torch.randint(1, 6, (25,), generator=g).float()
    return model, users, movies, ratings


@pytest.mark.parametrize("bias", [False, True])
def test_observed_mse_without_penalty_is_mse_of_outputs(bias: bool) -> None:
    model, users, movies, ratings = make_batch(bias)
    expected = F.mse_loss(model(users, movies), ratings)
    torch.testing.assert_close(observed_mse(model, users, movies, ratings), expected)
    torch.testing.assert_close(observed_mse(model, users, movies, ratings, l2=0.0), expected)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("l2", [0.01, 0.5])
def test_observed_mse_adds_l2_times_batch_l2(bias: bool, l2: float) -> None:
    model, users, movies, ratings = make_batch(bias)
    plain = observed_mse(model, users, movies, ratings)
    penalised = observed_mse(model, users, movies, ratings, l2=l2)
    torch.testing.assert_close(penalised, plain + l2 * batch_l2(model, users, movies))
    assert penalised.item() > plain.item()
    partial = functools.partial(observed_mse, l2=l2)  # how fit receives a penalty
    torch.testing.assert_close(partial(model, users, movies, ratings), penalised)


def test_observed_mse_is_differentiable() -> None:
    model, users, movies, ratings = make_batch(True)
    observed_mse(model, users, movies, ratings, l2=0.1).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.U.grad.abs().sum() > 0
