"""The softmax model: a user is the bag of movies they rated, scored against every movie.

Built in chapter 5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SoftmaxModel"]


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
        self.config = {
            "n_movies": n_movies,
            "dim": dim,
            "hidden": hidden,
            "pooling": pooling,
            "share_embeddings": share_embeddings,
            "n_features": n_features,
        }
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
    def V(self) -> torch.Tensor:
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
