"""The factorization machine (Rendle 2010): every pair of features, through factors.

For a sparse feature row ``x`` (:class:`mfkit.feature_rows.FeatureRows`),

    y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j .

The pairwise sum has ``n (n - 1) / 2`` terms, but Rendle's identity computes it in
``O(k n)`` for ``k`` factors, over the non-zero entries only:

    sum_{i<j} <v_i, v_j> x_i x_j = 1/2 sum_f [ (sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2 ] .

With two one-hot fields, a user and a movie, ``y = w0 + w_user + w_movie + <v_user,
v_movie>``: biased matrix factorization (chapter 2) is the factorization machine of
those two fields.

Two networks read the same rows field by field (each field's entries pooled into
one embedding, :func:`mfkit.feature_rows.field_offsets`): :class:`DeepFM` (Guo et
al. 2017) adds an MLP over the fields' factors to the FM, and :class:`DCN` (DCN-v2,
Wang et al. 2021) crosses the fields' embeddings explicitly, ``x_{l+1} = x_0 *
(W_l x_l + b_l) + x_l``, before an MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from mfkit.feature_rows import field_offsets
from mfkit.models._layers import check_mlp_args, mlp

__all__ = ["DCN", "DeepFM", "FactorizationMachine"]


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


def _field_embeddings(
    table: nn.EmbeddingBag, indices, offsets, values, fields: tuple[int, ...]
) -> torch.Tensor:
    """Each row's fields, each pooled (weighted sum) into one embedding: ``(rows, F * dim)``."""
    bags = field_offsets(indices, offsets, fields)
    pooled = table(indices, bags, per_sample_weights=values)
    return pooled.view(len(offsets), len(fields) * table.embedding_dim)


class DeepFM(FactorizationMachine):
    """A factorization machine plus an MLP over the same factors, field by field.

    ``y(x) = FM(x) + MLP([e_1, ..., e_F])``, where ``e_f`` is field ``f``'s entries'
    factors, weighted by their values and summed. ``fields`` are the widths of the
    rows' fields (``FeatureRows.fields``, :mod:`mfkit.feature_rows`); the other
    parameters are :class:`FactorizationMachine`'s, plus the MLP's ``hidden`` sizes
    and ``dropout``.
    """

    def __init__(
        self,
        fields: tuple[int, ...],
        dim: int,
        *,
        hidden: tuple[int, ...] = (64, 32),
        dropout: float = 0.0,
        **options,
    ) -> None:
        super().__init__(sum(fields), dim, **options)
        hidden = check_mlp_args(hidden, dropout)
        self.fields = tuple(fields)
        self.config |= {"fields": self.fields, "hidden": hidden, "dropout": dropout}
        del self.config["n_features"]
        seed = options.get("seed", 0)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            deep = mlp((len(fields) * dim, *hidden), dropout, batch_norm=False)
            self.deep = nn.Sequential(deep, nn.Linear(hidden[-1], 1))

    def forward(self, indices, offsets, values) -> torch.Tensor:
        """``y(x)`` of each row given as ``(indices, offsets, values)``: the FM plus the MLP."""
        x0 = _field_embeddings(self.factors, indices, offsets, values, self.fields)
        return super().forward(indices, offsets, values) + self.deep(x0).squeeze(-1)


class DCN(nn.Module):
    """DCN-v2: cross layers over the fields' embeddings, then an MLP.

    ``x_0`` is the fields' embeddings side by side (``F * dim``); each of ``crosses``
    layers computes ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``, a feature cross of one
    more order per layer; an MLP of ``hidden`` sizes and a linear output follow.
    """

    def __init__(
        self,
        fields: tuple[int, ...],
        dim: int,
        *,
        crosses: int = 2,
        hidden: tuple[int, ...] = (64, 32),
        dropout: float = 0.0,
        init_std: float = 0.01,
        global_mean: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        hidden = check_mlp_args(hidden, dropout)
        if crosses < 0:
            raise ValueError(f"crosses must be >= 0, got {crosses}")
        self.fields = tuple(fields)
        self.config = {
            "fields": self.fields,
            "dim": dim,
            "crosses": crosses,
            "hidden": hidden,
            "dropout": dropout,
            "init_std": init_std,
            "global_mean": global_mean,
        }
        width = len(fields) * dim
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.embedding = nn.EmbeddingBag(sum(fields), dim, mode="sum")
            nn.init.normal_(self.embedding.weight, 0.0, init_std)
            self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(crosses))
            self.deep = mlp((width, *hidden), dropout, batch_norm=False)
            self.output = nn.Linear(hidden[-1], 1)
        nn.init.constant_(self.output.bias, float(global_mean))

    def forward(self, indices, offsets, values) -> torch.Tensor:
        """The prediction for each row given as ``(indices, offsets, values)``."""
        x0 = _field_embeddings(self.embedding, indices, offsets, values, self.fields)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.output(self.deep(x)).squeeze(-1)
