"""The factorization machine (Rendle 2010): every pair of features, through factors.

For a sparse feature row ``x`` (:class:`mfkit.feature_rows.FeatureRows`),

    y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j .

The pairwise sum has ``n (n - 1) / 2`` terms, but Rendle's identity computes it in
``O(k n)`` for ``k`` factors, over the non-zero entries only:

    sum_{i<j} <v_i, v_j> x_i x_j = 1/2 sum_f [ (sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2 ] .

With two one-hot fields, a user and a movie, ``y = w0 + w_user + w_movie + <v_user,
v_movie>``: biased matrix factorization (chapter 2) is the factorization machine of
those two fields.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FactorizationMachine"]


class FactorizationMachine(nn.Module):
    """A second-order factorization machine over ``n_features`` sparse features.

    Parameters
    ----------
    n_features : int
        The width of the feature rows (every field's columns together).
    dim : int
        Factors per feature, ``k``.
    init_std : float
        Standard deviation of the factors' normal initialisation (weights and bias
        start at 0; ``global_mean`` sets the bias).
    global_mean : float
        The bias ``w0`` at the start, e.g. the mean training rating.
    seed : int, optional
        Seeds the initialisation.

    Examples
    --------
    >>> from mfkit.feature_rows import FeatureRows, one_hot
    >>> users, movies = one_hot(torch.tensor([0, 1]), 2), one_hot(torch.tensor([1, 0]), 3)
    >>> rows = FeatureRows.concat(users, movies)
    >>> fm = FactorizationMachine(rows.n_features, dim=4, seed=0)
    >>> fm(*rows.batch(torch.arange(2))).shape
    torch.Size([2])
    """

    def __init__(
        self,
        n_features: int,
        dim: int,
        *,
        init_std: float = 0.01,
        global_mean: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if n_features < 1 or dim < 1:
            raise ValueError(f"n_features and dim must be >= 1, got {n_features} and {dim}")
        self.config = {
            "n_features": n_features,
            "dim": dim,
            "init_std": init_std,
            "global_mean": global_mean,
        }
        self.bias = nn.Parameter(torch.tensor(float(global_mean)))
        self.weights = nn.EmbeddingBag(n_features, 1, mode="sum")
        self.factors = nn.EmbeddingBag(n_features, dim, mode="sum")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        nn.init.zeros_(self.weights.weight)
        nn.init.normal_(self.factors.weight, 0.0, init_std, generator=generator)

    def forward(
        self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """``y(x)`` of each row given as ``(indices, offsets, values)`` (one value per row)."""
        linear = self.weights(indices, offsets, per_sample_weights=values).squeeze(-1)
        sum_vx = self.factors(indices, offsets, per_sample_weights=values)
        squared = self.factors.weight.square()
        squares = nn.functional.embedding_bag(
            indices, squared, offsets, mode="sum", per_sample_weights=values.square()
        )
        return self.bias + linear + 0.5 * (sum_vx.square() - squares).sum(dim=-1)
