"""Recommendation models, as plain ``torch.nn.Module`` s.

Every model scores ``(user row, movie row)`` pairs with ``forward`` and all movies
for some users with ``score_all``, so the training loop (:mod:`mfkit.train`) and
retrieval (:mod:`mfkit.retrieval`) work with any of them.

Introduced in chapter 2: :class:`MatrixFactorization`; chapter 5:
:class:`SoftmaxModel`, which scores all movies for users described by the bags
of movies they rated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MatrixFactorization", "SoftmaxModel"]


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
        self.bias = bias
        if bias:
            self.global_mean = nn.Parameter(torch.tensor(float(global_mean)))
            self.user_bias = nn.Embedding(n_users, 1)
            self.movie_bias = nn.Embedding(n_movies, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.movie_bias.weight)
        self.rating_range = rating_range

    @property
    def U(self) -> torch.Tensor:  # noqa: N802 - the course's notation
        """User embeddings, shape ``(n_users, dim)``."""
        return self.user_factors.weight

    @property
    def V(self) -> torch.Tensor:  # noqa: N802
        """Movie embeddings, shape ``(n_movies, dim)``."""
        return self.movie_factors.weight

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of the pairs ``(users[k], movies[k])``: O(batch * dim)."""
        pred = (self.user_factors(users) * self.movie_factors(movies)).sum(dim=-1)
        if self.bias:
            pred = (
                pred
                + self.global_mean
                + self.user_bias(users).squeeze(-1)
                + self.movie_bias(movies).squeeze(-1)
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


class SoftmaxModel(nn.Module):
    """Softmax recommender: a user is a function of the movies they rated.

    The input is a *bag* of movies, a row of a ``(n_users, n_movies)`` 0/1
    matrix such as :meth:`mfkit.features.Indexer.bags`. The bag is pooled into one
    vector through the movie input embeddings (``mean`` or ``sum``), optional
    user features are appended, and ``psi`` (hidden layers with ReLU, or none)
    maps the result to a query vector in the output embedding space. The logits
    are ``psi(x) V^T``, one per movie; a softmax over them gives the probability
    that the user watches each movie.

    Parameters
    ----------
    n_movies : int
    dim : int
        Size of the movie embeddings and of ``psi``'s output.
    hidden : sequence of int
        Sizes of the hidden layers of ``psi``; ``()`` for none (``psi`` is the
        identity, or one linear layer when there are user features).
    pooling : {"mean", "sum"}
    share_embeddings : bool
        Use one embedding table for the input bag and the output layer (as in
        the Google course), or two.
    n_features : int
        Number of extra user features appended to the pooled bag.
    init_std : float
        Standard deviation of the normal initialisation of the embeddings.
    seed : int or None

    Examples
    --------
    >>> model = SoftmaxModel(5, dim=4, hidden=(8,), seed=0)
    >>> bags = torch.tensor([[1.0, 1.0, 0, 0, 0], [0, 0, 0, 0, 1.0]])
    >>> model(bags).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        n_movies: int,
        dim: int = 32,
        *,
        hidden: Sequence[int] = (),
        pooling: str = "mean",
        share_embeddings: bool = True,
        n_features: int = 0,
        init_std: float = 0.1,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if n_movies < 1 or dim < 1:
            raise ValueError(f"n_movies and dim must be at least 1, got {n_movies} and {dim}")
        hidden = tuple(hidden)
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        if pooling not in ("mean", "sum"):
            raise ValueError(f"pooling must be 'mean' or 'sum', got {pooling!r}")
        if any(h < 1 for h in hidden) or n_features < 0:
            raise ValueError(
                f"hidden sizes must be >= 1 and n_features >= 0, got {hidden}, {n_features}"
            )
        self.pooling = pooling
        self.n_features = n_features
        # Seed torch's global generator (used by nn.Linear) without disturbing it outside.
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.input_embedding = nn.Parameter(torch.randn(n_movies, dim) * init_std)
            self.output_embedding = (
                self.input_embedding
                if share_embeddings
                else nn.Parameter(torch.randn(n_movies, dim) * init_std)
            )
            sizes = [dim + n_features, *hidden]
            layers: list[nn.Module] = []
            for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [nn.Linear(size_in, size_out), nn.ReLU()]
            if hidden or n_features:
                layers.append(nn.Linear(sizes[-1], dim))
            self.psi = nn.Sequential(*layers)

    @property
    def V(self) -> torch.Tensor:  # noqa: N802 - the course's notation
        """Output movie embeddings, shape ``(n_movies, dim)``."""
        return self.output_embedding

    def user_vectors(
        self, bags: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``psi(x)`` for each bag: the query vectors, shape ``(n, dim)``."""
        if bags.ndim != 2 or bags.shape[1] != len(self.input_embedding):
            raise ValueError(
                f"bags must have shape (n, {len(self.input_embedding)}), got {tuple(bags.shape)}"
            )
        pooled = bags @ self.input_embedding
        if self.pooling == "mean":
            pooled = pooled / bags.sum(dim=1, keepdim=True).clamp(min=1)
        if features is not None and not self.n_features:
            raise ValueError("features given, but the model was built with n_features=0")
        if self.n_features:
            if features is None or features.shape != (len(bags), self.n_features):
                raise ValueError(
                    f"the model expects features of shape ({len(bags)}, {self.n_features})"
                )
            pooled = torch.cat([pooled, features], dim=1)
        return self.psi(pooled)

    def forward(self, bags: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every movie for each bag: ``(n, n_movies)``."""
        return self.user_vectors(bags, features) @ self.V.T
