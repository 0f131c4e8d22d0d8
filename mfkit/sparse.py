"""Ratings as a sparse matrix, and products that touch only the observed cells.

Introduced in chapter 10. The gathered loss of chapter 2 reads the rows
``U_i`` and ``V_j`` of every rating in random order, and writes their
gradients back the same way; on a CPU that random memory traffic, not the
arithmetic, sets the speed. A :class:`RatingMatrix` sorts the ratings once,
by user and (for the transpose) by movie, and keeps them as CSR matrices.
Then

* the predictions ``<U_i, V_j>`` of all observed cells are one *sampled*
  matrix product (``torch.sparse.sampled_addmm``), and
* the gradients are two sparse-dense products, ``E V`` and ``E^T U``, where
  ``E`` holds the error of each observed cell,

all reading memory in order. :func:`mfkit.losses.mse_sparse` uses it for a
full-batch loss, which :func:`mfkit.train.fit` trains with ``batch_size=None``.

Examples
--------
>>> users, movies = torch.tensor([1, 0, 1]), torch.tensor([2, 0, 0])
>>> matrix = RatingMatrix(users, movies, torch.tensor([4.0, 5.0, 1.0]), 2, 3)
>>> matrix.users.tolist(), matrix.movies.tolist(), matrix.ratings.tolist()
([0, 1, 1], [0, 0, 2], [5.0, 1.0, 4.0])
>>> U, V = torch.ones(2, 2), torch.arange(6.0).view(3, 2)
>>> matrix.dot(U, V).tolist()  # <U_i, V_j> of each observed cell, in matrix order
[1.0, 1.0, 9.0]
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["RatingMatrix"]


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _crow(counts: torch.Tensor) -> torch.Tensor:
    """CSR row pointers from the number of entries in each row."""
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


class RatingMatrix:
    """Ratings sorted by (user, movie), as CSR matrices in both orientations.

    Parameters
    ----------
    users, movies : tensor of int
        Row indices of each rating (e.g. from :meth:`mfkit.features.Indexer.tensors`).
    ratings : tensor of float
    n_users, n_movies : int
        The matrix shape.

    Attributes
    ----------
    users, movies, ratings : torch.Tensor
        The ratings in matrix order (by user, then movie).
    user_counts, movie_counts : torch.Tensor
        Number of ratings of each user and of each movie.
    """

    def __init__(
        self,
        users: torch.Tensor,
        movies: torch.Tensor,
        ratings: torch.Tensor,
        n_users: int,
        n_movies: int,
    ) -> None:
        if not len(users) == len(movies) == len(ratings):
            raise ValueError(
                f"users, movies and ratings differ in length: {len(users)}, {len(movies)}, "
                f"{len(ratings)}"
            )
        if len(users) == 0:
            raise ValueError("there are no ratings")
        users, movies = torch.as_tensor(users).long(), torch.as_tensor(movies).long()
        for name, rows, size in (("user", users, n_users), ("movie", movies, n_movies)):
            if rows.min() < 0 or rows.max() >= size:
                raise IndexError(f"{name} rows must lie in 0..{size - 1}")
        order = torch.argsort(users * n_movies + movies)
        self.users, self.movies = users[order], movies[order]
        self.ratings = torch.as_tensor(ratings, dtype=torch.float32)[order]
        self.shape = (n_users, n_movies)
        self.user_counts = torch.bincount(self.users, minlength=n_users)
        self.movie_counts = torch.bincount(self.movies, minlength=n_movies)
        self._crow_users = _crow(self.user_counts)
        self._by_movie = torch.argsort(self.movies * n_users + self.users)  # transpose order
        self._crow_movies = _crow(self.movie_counts)
        self._rows_of_movies = self.users[self._by_movie]

    def __len__(self) -> int:
        return len(self.ratings)

    def __repr__(self) -> str:
        return f"RatingMatrix({self.shape[0]} users x {self.shape[1]} movies, {len(self)} ratings)"

    def to(self, device: str | torch.device) -> RatingMatrix:
        """This matrix with every tensor on ``device`` (a new object)."""
        moved = object.__new__(RatingMatrix)
        for key, value in vars(self).items():
            setattr(moved, key, value.to(device) if isinstance(value, torch.Tensor) else value)
        return moved

    def by_users(self, values: torch.Tensor) -> torch.Tensor:
        """CSR ``(n_users, n_movies)`` with ``values`` (in matrix order) at the rated cells."""
        return _csr(self._crow_users, self.movies, values, self.shape)

    def by_movies(self, values: torch.Tensor) -> torch.Tensor:
        """CSR ``(n_movies, n_users)``: the transpose of :meth:`by_users`."""
        shape = (self.shape[1], self.shape[0])
        return _csr(self._crow_movies, self._rows_of_movies, values[self._by_movie], shape)

    def dot(self, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:  # noqa: N803
        """``<U_i, V_j>`` of every rated cell, in matrix order; differentiable in U and V."""
        return _SampledDot.apply(U, V, self)


class _SampledDot(torch.autograd.Function):
    """Forward: a sampled matrix product. Backward: two sparse-dense products."""

    @staticmethod
    def forward(ctx, U, V, matrix):  # noqa: N803
        ctx.save_for_backward(U, V)
        ctx.matrix = matrix
        pattern = matrix.by_users(torch.zeros(len(matrix), dtype=U.dtype, device=U.device))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse.sampled_addmm(pattern, U, V.T, beta=0.0).values()

    @staticmethod
    def backward(ctx, grad):
        U, V = ctx.saved_tensors  # noqa: N806
        matrix = ctx.matrix
        grad_u = matrix.by_users(grad) @ V if ctx.needs_input_grad[0] else None
        grad_v = matrix.by_movies(grad) @ U if ctx.needs_input_grad[1] else None
        return grad_u, grad_v, None
