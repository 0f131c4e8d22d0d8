"""Alternating least squares (ALS) for explicit ratings.

Introduced in chapter 8. With the movie factors fixed, the best user factors
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

import warnings

import torch
from tqdm.auto import tqdm

from mfkit.models import MatrixFactorization

__all__ = ["als_fit", "als_objective", "als_step"]


def _check(model, users, movies, ratings, reg) -> None:
    if not isinstance(model, MatrixFactorization):
        raise TypeError(f"ALS trains a MatrixFactorization, got {type(model).__name__}")
    if not len(users) == len(movies) == len(ratings):
        raise ValueError(
            f"users, movies and ratings differ in length: {len(users)}, {len(movies)}, "
            f"{len(ratings)}"
        )
    if len(ratings) == 0:
        raise ValueError("there are no ratings to fit")
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
    busier rows are penalised more, as in stochastic gradient descent).
    """
    _check(model, users, movies, ratings, reg)
    error = sum(  # in chunks: a gather of every rating at once would hold |ratings| x dim
        (model(users[part], movies[part]) - ratings[part]).square().sum()
        for part in torch.arange(len(ratings), device=ratings.device).split(2**20)
    )
    penalty = 0.0
    for rows, (factors, bias) in zip((users, movies), _sides(model).values(), strict=True):
        counts = torch.bincount(rows, minlength=len(factors)).to(factors.dtype)
        norms = factors.square().sum(1) + (bias.square().squeeze(1) if bias is not None else 0)
        penalty = penalty + (counts * norms).sum()
    return float((error + reg * penalty) / len(ratings))


class _Pattern:
    """Where one side's ratings are, as a CSR matrix (rows x cols) built once.

    The sort happens here; each half-step only fills in new values.
    """

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int):
        self.order = torch.argsort(rows * n_cols + cols)
        self.counts = torch.bincount(rows, minlength=n_rows)
        self.crow = torch.cat([self.counts.new_zeros(1), self.counts.cumsum(0)])
        self.col = cols[self.order]
        self.shape = (n_rows, n_cols)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """The CSR matrix with ``values`` (given in rating order) at the rated cells."""
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.crow, self.col, values[self.order], self.shape, check_invariants=False
            )


def _solve(pattern: _Pattern, targets: torch.Tensor, inputs: torch.Tensor, reg: float):
    """Ridge regression per row: ``w_r = argmin sum_c (t_rc - <w, x_c>)^2 + reg n_r |w|^2``.

    The Gram matrices ``sum_c x_c x_c^T`` are symmetric, so only their upper
    triangles are computed: one sparse-dense product with ``k (k + 1) / 2`` columns.
    """
    n_rows, k = pattern.shape[0], inputs.shape[1]
    upper, lower = torch.triu_indices(k, k, device=inputs.device)
    outer = inputs[:, upper] * inputs[:, lower]
    triangle = pattern.matrix(torch.ones_like(targets)) @ outer
    gram = inputs.new_zeros(n_rows, k, k)
    gram[:, upper, lower] = triangle
    gram[:, lower, upper] = triangle
    counts = pattern.counts.to(inputs.dtype).clamp(min=1)
    gram.diagonal(dim1=1, dim2=2).add_(reg * counts[:, None])
    rhs = pattern.matrix(targets) @ inputs
    return torch.linalg.solve(gram, rhs)


class _Problem:
    """The rating pattern seen from both sides, built once per :func:`als_fit`."""

    def __init__(self, model: MatrixFactorization, users, movies, ratings):
        n_users, n_movies = len(model.U), len(model.V)
        if (
            users.min() < 0
            or users.max() >= n_users
            or movies.min() < 0
            or movies.max() >= n_movies
        ):
            raise IndexError(
                f"user rows must lie in 0..{n_users - 1} and movie rows in 0..{n_movies - 1}"
            )
        self.users, self.movies, self.ratings = users, movies, ratings
        self.patterns = {
            "users": _Pattern(users, movies, n_users, n_movies),
            "movies": _Pattern(movies, users, n_movies, n_users),
        }


@torch.no_grad()
def _half_step(model: MatrixFactorization, problem: _Problem, reg: float, solve_for: str) -> None:
    sides = _sides(model)
    other = "movies" if solve_for == "users" else "users"
    (factors, bias), (fixed, fixed_bias) = sides[solve_for], sides[other]
    cols = problem.movies if solve_for == "users" else problem.users
    targets = problem.ratings.to(fixed.dtype)
    inputs = fixed
    if model.bias:
        targets = targets - model.global_mean - fixed_bias[cols].squeeze(1)
        ones = torch.ones(len(fixed), 1, dtype=fixed.dtype, device=fixed.device)
        inputs = torch.cat([fixed, ones], dim=1)
    solution = _solve(problem.patterns[solve_for], targets, inputs, reg)
    factors.copy_(solution[:, : factors.shape[1]])
    if model.bias:
        bias.copy_(solution[:, -1:])


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
    _check(model, users, movies, ratings, reg)
    if solve_for not in ("users", "movies"):
        raise ValueError(f"solve_for must be 'users' or 'movies', got {solve_for!r}")
    _half_step(model, _Problem(model, users.long(), movies.long(), ratings), reg, solve_for)


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
    _check(model, users, movies, ratings, reg)
    users, movies = users.long(), movies.long()
    problem = _Problem(model, users, movies, ratings)
    losses = [als_objective(model, users, movies, ratings, reg=reg)]
    for _ in tqdm(range(iterations), desc="ALS", disable=not progress, leave=False):
        for side in ("users", "movies"):
            _half_step(model, problem, reg, side)
        losses.append(als_objective(model, users, movies, ratings, reg=reg))
    model.eval()
    return losses
