"""Matrix factorization, ``A ~ U V^T``, optionally with user and movie biases.

Built in chapter 2; chapter 3 inspects its embeddings, chapter 4 regularizes it,
chapter 7 reads its score as a logit for implicit feedback, and chapter 10 trains it
with full-batch steps and ALS (:mod:`mfkit.als`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MatrixFactorization"]


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` through ``index_select``, whose backward (one ``index_add_``)
    is about a quarter faster on CPU than an embedding lookup's."""
    return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[1])


_BLOCK = 2**18  # floats per gathered block in _PairDot: 1 MiB, which stays in cache


class _PairDot(torch.autograd.Function):
    """``(U[users] * V[movies]).sum(-1)`` for 1-D indices, a block of pairs at a time.

    The same numbers as the plain expression, forward and backward (bit for bit on
    one thread; several threads may add a row's gradients in another order): each
    pair's product and sum are computed alike, and the backward adds the rows into
    the gradients with ``index_add_``. What it saves is the
    ``(pairs, dim)`` intermediates (two gathered tables, their product, two
    gradients): at 2^18 pairs of dimension 32 each was a fresh 32 MiB allocation,
    which the C allocator maps and page-faults in at every step and which never
    fits in cache; that cost a third of an epoch of the scale benchmark.
    """

    @staticmethod
    def forward(ctx, U, V, users, movies):  # noqa: N803
        ctx.save_for_backward(U, V, users, movies)
        out = U.new_empty(len(users))
        step = max(1, _BLOCK // max(1, U.shape[1]))
        for first in range(0, len(users), step):
            block = slice(first, first + step)
            rows = U.index_select(0, users[block]) * V.index_select(0, movies[block])
            torch.sum(rows, dim=-1, out=out[block])
        return out

    @staticmethod
    def backward(ctx, grad):
        U, V, users, movies = ctx.saved_tensors  # noqa: N806
        grad_u = torch.zeros_like(U) if ctx.needs_input_grad[0] else None
        grad_v = torch.zeros_like(V) if ctx.needs_input_grad[1] else None
        step = max(1, _BLOCK // max(1, U.shape[1]))
        for first in range(0, len(users), step):
            block = slice(first, first + step)
            g = grad[block, None]
            if grad_u is not None:
                grad_u.index_add_(0, users[block], g * V.index_select(0, movies[block]))
            if grad_v is not None:
                grad_v.index_add_(0, movies[block], g * U.index_select(0, users[block]))
        return grad_u, grad_v, None, None


def _pair_dot(U: torch.Tensor, V: torch.Tensor, users, movies) -> torch.Tensor:  # noqa: N803
    """``<U_i, V_j>`` for each pair; broadcast index grids take the plain gathered product.

    Pairs of the same shape on the CPU that fill more than one block go through
    :class:`_PairDot` (same numbers, no batch-sized intermediates); small batches,
    where its Python loop would cost more than it saves, and broadcasting or the GPU
    take the plain expression.
    """
    blocks = users.numel() * U.shape[1] > _BLOCK
    if users.shape == movies.shape and U.device.type == "cpu" and blocks:
        return _PairDot.apply(U, V, users.reshape(-1), movies.reshape(-1)).reshape(users.shape)
    return (_rows(U, users) * _rows(V, movies)).sum(dim=-1)


class MatrixFactorization(nn.Module):
    """Approximate the rating matrix as ``A ~ U V^T``, optionally with biases.

    The predicted rating of user ``i`` for movie ``j`` is ``<U_i, V_j>``, or, with
    ``bias=True``, ``mu + b_i + c_j + <U_i, V_j>`` where ``mu`` is a global mean
    (a parameter, started at ``global_mean``) and ``b``, ``c`` are per-user and
    per-movie offsets (started at zero).

    Parameters
    ----------
    n_users, n_movies : int
        Number of rows of ``U`` and ``V``.
    dim : int
        Embedding dimension ``d``; 0 with ``bias=True`` gives the biases-only
        baseline ``mu + b_i + c_j``.
    bias : bool
        Add the global mean and user/movie biases.
    global_mean : float
        Starting value of ``mu`` (use the mean training rating).
    init_std : float
        Standard deviation of the normal initialisation of ``U`` and ``V``.
    rating_range : (float, float) or None
        Where :meth:`predict` clips its output, e.g. ``(1, 5)``.
    seed : int or None
        Seed for the initialisation (``None``: torch's global generator).

    Examples
    --------
    >>> model = MatrixFactorization(3, 4, dim=2, bias=True, global_mean=3.5, seed=0)
    >>> model(torch.tensor([0, 2]), torch.tensor([1, 3])).shape
    torch.Size([2])
    >>> model.score_all(torch.tensor([0])).shape
    torch.Size([1, 4])
    """

    step_threads = 1  # mini-batch steps on one thread (mfkit.threads)

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        dim: int = 32,
        *,
        bias: bool = False,
        global_mean: float = 0.0,
        init_std: float = 0.1,
        rating_range: tuple[float, float] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_movies", n_movies)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if dim < (0 if bias else 1):
            raise ValueError(
                f"dim must be at least 1 (or 0 with bias=True: a biases-only model), got {dim}"
            )
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.user_factors = nn.Embedding(n_users, dim)
        self.movie_factors = nn.Embedding(n_movies, dim)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for table in (self.user_factors, self.movie_factors):
                table.weight.normal_(0.0, init_std, generator=generator)
        self.config = {
            "n_users": n_users,
            "n_movies": n_movies,
            "dim": dim,
            "bias": bias,
            "rating_range": rating_range,
        }
        self.bias = bias
        if bias:
            self.global_mean = nn.Parameter(torch.tensor(float(global_mean)))
            self.user_bias = nn.Embedding(n_users, 1)
            self.movie_bias = nn.Embedding(n_movies, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.movie_bias.weight)
        self.rating_range = rating_range

    @property
    def U(self) -> torch.Tensor:
        """User embeddings, shape ``(n_users, dim)``."""
        return self.user_factors.weight

    @property
    def V(self) -> torch.Tensor:
        """Movie embeddings, shape ``(n_movies, dim)``."""
        return self.movie_factors.weight

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of the pairs ``(users[k], movies[k])``: O(batch * dim)."""
        pred = _pair_dot(self.U, self.V, users, movies)
        if self.bias:
            pred = (
                pred
                + self.global_mean
                + _rows(self.user_bias.weight, users).squeeze(-1)
                + _rows(self.movie_bias.weight, movies).squeeze(-1)
            )
        return pred

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of every movie for each of ``users``: ``(len(users), n_movies)``."""
        scores = self.user_factors(users) @ self.V.T
        if self.bias:
            scores = scores + self.global_mean + self.user_bias(users) + self.movie_bias.weight.T
        return scores

    @torch.no_grad()
    def predict(
        self, users: torch.Tensor, movies: torch.Tensor, *, clip: bool = True
    ) -> torch.Tensor:
        """Like ``forward`` without gradients, clipped to ``rating_range`` if set."""
        pred = self(users, movies)
        if clip and self.rating_range is not None:
            pred = pred.clamp(*self.rating_range)
        return pred
