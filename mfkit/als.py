"""Alternating least squares (ALS) for explicit ratings.

Introduced in chapter 10. With the movie factors fixed, the best user factors
under a squared loss with an L2 penalty are a ridge regression per user: one
small ``k x k`` linear system each. ALS alternates between solving all users
(movies fixed) and all movies (users fixed). Every half-step minimises the
objective exactly in the variables it solves for, so the objective never
increases, and there is no learning rate to tune.

The systems are built for all users at once: the Gram matrix of user ``i`` is
``sum_j x_j x_j^T`` over the movies ``j`` it rated, which is one sparse
(users x movies) times dense (movies x k(k+1)/2: the upper triangles) product,
and ``torch.linalg.solve`` solves all of them in one batched call. The cost of
a sweep grows linearly with the number of ratings.

It trains a :class:`mfkit.models.MatrixFactorization` in place, so the result
works with every other part of ``mfkit``. With ``bias=True`` each side's
factors are augmented with its bias (and the other side's with a constant 1);
the global mean stays fixed.

Examples
--------
>>> import torch
>>> from mfkit.models import MatrixFactorization
>>> users, movies = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 0, 2, 1])
>>> ratings = torch.tensor([5.0, 3.0, 4.0, 1.0, 2.0])
>>> model = MatrixFactorization(3, 3, dim=2, seed=0)
>>> losses = als_fit(model, users, movies, ratings, reg=0.01, iterations=5, progress=False)
>>> bool(losses[-1] <= losses[0])
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from mfkit.losses import mse_sparse
from mfkit.models import MatrixFactorization
from mfkit.sparse import RatingMatrix

__all__ = ["als_fit", "als_objective", "als_step"]


def _check(model, reg) -> None:
    """Model and penalty; the ratings are checked by :class:`~mfkit.sparse.RatingMatrix`."""
    if not isinstance(model, MatrixFactorization):
        raise TypeError(f"ALS trains a MatrixFactorization, got {type(model).__name__}")
    if reg <= 0:
        raise ValueError(f"reg must be > 0 (it keeps every system solvable), got {reg}")


def _sides(model: MatrixFactorization) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """Each side's factor table and bias table (None without biases)."""
    return {
        "users": (model.user_factors.weight, model.user_bias.weight if model.bias else None),
        "movies": (model.movie_factors.weight, model.movie_bias.weight if model.bias else None),
    }


@torch.no_grad()
def als_objective(
    model: MatrixFactorization,
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    *,
    reg: float,
) -> float:
    """The objective ALS minimises, divided by the number of ratings.

    ``sum (r_ij - pred_ij)^2 + reg * (sum_i n_i ||w_i||^2 + sum_j n_j ||h_j||^2)``,
    where ``w_i`` are user ``i``'s factors (and bias), ``h_j`` movie ``j``'s, and
    ``n_i``, ``n_j`` their numbers of ratings (the "weighted-lambda" penalty:
    busier rows are penalised more, as in stochastic gradient descent). It is
    exactly :func:`mfkit.losses.mse_sparse` with ``l2=reg``, the full-batch
    version of chapter 2's ``observed_mse`` with ``l2``.
    """
    _check(model, reg)
    return _objective(model, _matrix(model, users, movies, ratings), reg)


def _objective(model: MatrixFactorization, matrix: RatingMatrix, reg: float) -> float:
    with torch.no_grad():
        return float(mse_sparse(model, matrix, l2=reg))


def _solve(
    csr: Callable[[torch.Tensor], torch.Tensor],
    counts: torch.Tensor,
    targets: torch.Tensor,
    inputs: torch.Tensor,
    reg: float,
) -> torch.Tensor:
    """Ridge regression per row: ``w_r = argmin sum_c (t_rc - <w, x_c>)^2 + reg n_r |w|^2``.

    ``csr(values)`` puts values (one per rating) into the sparse rows x cols
    matrix. The Gram matrices ``sum_c x_c x_c^T`` are symmetric, so only their
    upper triangles are computed: one sparse-dense product with ``k (k + 1) / 2``
    columns.
    """
    k = inputs.shape[1]
    upper, lower = torch.triu_indices(k, k, device=inputs.device)
    triangle = csr(torch.ones_like(targets)) @ (inputs[:, upper] * inputs[:, lower])
    gram = inputs.new_zeros(len(counts), k, k)
    gram[:, upper, lower] = triangle
    gram[:, lower, upper] = triangle
    gram.diagonal(dim1=1, dim2=2).add_(reg * counts.to(inputs.dtype).clamp(min=1)[:, None])
    return torch.linalg.solve(gram, csr(targets) @ inputs)


@torch.no_grad()
def _half_step(model: MatrixFactorization, matrix: RatingMatrix, reg: float, solve_for: str):
    sides = _sides(model)
    other = "movies" if solve_for == "users" else "users"
    (factors, bias), (fixed, fixed_bias) = sides[solve_for], sides[other]
    if solve_for == "users":
        cols, csr, counts = matrix.movies, matrix.by_users, matrix.user_counts
    else:
        cols, csr, counts = matrix.users, matrix.by_movies, matrix.movie_counts
    targets = matrix.ratings.to(fixed.dtype)
    inputs = fixed
    if model.bias:
        targets = targets - model.global_mean - fixed_bias[cols].squeeze(1)
        ones = torch.ones(len(fixed), 1, dtype=fixed.dtype, device=fixed.device)
        inputs = torch.cat([fixed, ones], dim=1)
    solution = _solve(csr, counts, targets, inputs, reg)
    factors.copy_(solution[:, : factors.shape[1]])
    if model.bias:
        bias.copy_(solution[:, -1:])


def _matrix(model: MatrixFactorization, users, movies, ratings) -> RatingMatrix:
    return RatingMatrix(users, movies, ratings, len(model.U), len(model.V))


@torch.no_grad()
def als_step(
    model: MatrixFactorization,
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    *,
    reg: float,
    solve_for: str = "users",
) -> None:
    """Solve exactly for one side's factors (and biases), the other side fixed.

    ``solve_for`` is ``"users"`` or ``"movies"``. Rows without ratings are set
    to zero (the penalty's minimum).
    """
    _check(model, reg)
    if solve_for not in ("users", "movies"):
        raise ValueError(f"solve_for must be 'users' or 'movies', got {solve_for!r}")
    _half_step(model, _matrix(model, users, movies, ratings), reg, solve_for)


def als_fit(
    model: MatrixFactorization,
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    *,
    reg: float = 0.1,
    iterations: int = 10,
    progress: bool = True,
) -> list[float]:
    """Alternate user and movie solves ``iterations`` times; return the objective after each.

    The first entry is the objective before any step, so the list has
    ``iterations + 1`` values and never increases. Training continues from the
    model's current factors.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    _check(model, reg)
    users, movies = users.long(), movies.long()
    matrix = _matrix(model, users, movies, ratings)
    losses = [_objective(model, matrix, reg)]
    for _ in tqdm(range(iterations), desc="ALS", disable=not progress, leave=False):
        for side in ("users", "movies"):
            _half_step(model, matrix, reg, side)
        losses.append(_objective(model, matrix, reg))
    model.eval()
    return losses
