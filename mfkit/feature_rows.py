"""Sparse feature rows: each example as the few features that are on, and their values.

A factorization machine (:class:`mfkit.models.FactorizationMachine`) reads every
example as a row ``x`` of a very wide, very sparse vector: one column per user, per
movie, per genre, per day... Only a handful are non-zero. :class:`FeatureRows` stores
the non-zero entries of all rows in the compressed-row layout of
``torch.nn.EmbeddingBag`` (and of SciPy's CSR matrices): ``indices`` and ``values``
of every row one after the other, and ``indptr`` where each row starts.

A row is built field by field: :func:`one_hot` (a user id, a movie id, a day: one
feature on, value 1) and :func:`multi_hot` (a movie's genres, a user's bag of rated
movies: several on, each ``1/sqrt(n)`` by default, as SVD++ normalises the bag).
:meth:`FeatureRows.concat` puts fields side by side, each in its own block of columns.

Examples
--------
>>> users = one_hot(torch.tensor([0, 1]), 2)
>>> genres = multi_hot([[0, 2], [1]], 3, scale="none")
>>> rows = FeatureRows.concat(users, genres)
>>> rows.dense()
tensor([[1., 0., 1., 0., 1.],
        [0., 1., 0., 1., 0.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

__all__ = ["FIELDS", "FeatureRows", "field_offsets", "interaction_rows", "multi_hot", "one_hot"]


@dataclass(frozen=True)
class FeatureRows:
    """``n`` sparse rows of width ``n_features`` in the compressed-row layout.

    Row ``r``'s non-zero columns are ``indices[indptr[r]:indptr[r + 1]]`` with values
    ``values[indptr[r]:indptr[r + 1]]``, in the order of the fields. ``fields`` holds
    the width of each field's block of columns (one field of all the columns by
    default), for the models that embed each field apart (DeepFM, DCN).
    """

    indptr: torch.Tensor  # (n + 1,) int64, starts at 0
    indices: torch.Tensor  # (nnz,) int64
    values: torch.Tensor  # (nnz,) float32
    n_features: int
    fields: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.fields:
            object.__setattr__(self, "fields", (self.n_features,))
        if sum(self.fields) != self.n_features or min(self.fields) < 1:
            raise ValueError(f"fields {self.fields} must be widths >= 1 that add up to n_features")
        if self.indptr.ndim != 1 or len(self.indptr) < 1 or int(self.indptr[0]) != 0:
            raise ValueError("indptr must be a 1-D tensor that starts at 0")
        if bool((self.indptr[1:] < self.indptr[:-1]).any()):
            raise ValueError("indptr must not decrease")
        if len(self.indices) != int(self.indptr[-1]) or len(self.values) != len(self.indices):
            raise ValueError("indices and values need indptr[-1] entries each")
        if len(self.indices) and not 0 <= int(self.indices.min()) <= int(self.indices.max()) < (
            self.n_features
        ):
            raise ValueError(f"indices must lie in 0..{self.n_features - 1}")

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(indices, offsets, values)`` of ``rows``, as ``nn.EmbeddingBag`` takes them."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        # Position of each entry of the batch within the stored arrays.
        within = torch.arange(int(lengths.sum())) - torch.repeat_interleave(offsets, lengths)
        where = torch.repeat_interleave(starts, lengths) + within
        return self.indices[where], offsets, self.values[where]

    def take(self, rows: torch.Tensor) -> FeatureRows:
        """Rows ``rows`` (any order, repeats allowed) as new feature rows."""
        indices, offsets, values = self.batch(rows)
        indptr = torch.cat([offsets, torch.tensor([len(indices)])])
        return FeatureRows(indptr, indices, values, self.n_features, self.fields)

    def dense(self) -> torch.Tensor:
        """The rows as a dense ``(n, n_features)`` tensor (for small checks only)."""
        out = torch.zeros(len(self), self.n_features)
        row_of = torch.repeat_interleave(torch.arange(len(self)), self.indptr.diff())
        out.index_put_((row_of, self.indices), self.values, accumulate=True)
        return out

    @classmethod
    def concat(cls, *fields: FeatureRows) -> FeatureRows:
        """The fields side by side: field ``f``'s columns shifted past those before it."""
        if not fields or len({len(f) for f in fields}) != 1:
            raise ValueError("concat needs one or more fields with the same number of rows")
        shift, indices, values, rows = 0, [], [], []
        for field in fields:
            indices.append(field.indices + shift)
            values.append(field.values)
            rows.append(torch.repeat_interleave(torch.arange(len(field)), field.indptr.diff()))
            shift += field.n_features
        # A stable sort by row keeps each row's fields in the order given.
        sort = torch.argsort(torch.cat(rows), stable=True)
        counts = sum(field.indptr.diff() for field in fields)
        indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
        widths = tuple(width for field in fields for width in field.fields)
        return cls(indptr, torch.cat(indices)[sort], torch.cat(values)[sort], shift, widths)


def one_hot(codes: torch.Tensor, size: int) -> FeatureRows:
    """One feature on per row: column ``codes[r]`` with value 1 (an id, a day, a category)."""
    codes = torch.as_tensor(codes, dtype=torch.int64)
    if codes.ndim != 1:
        raise ValueError(f"codes must be 1-D, got shape {tuple(codes.shape)}")
    indptr = torch.arange(len(codes) + 1, dtype=torch.int64)
    return FeatureRows(indptr, codes, torch.ones(len(codes)), size)


def multi_hot(lists: Sequence[Sequence[int]], size: int, *, scale: str = "sqrt") -> FeatureRows:
    """Several features on per row, e.g. a movie's genres or a user's rated movies.

    ``scale="sqrt"`` gives each of a row's ``n`` features the value ``1/sqrt(n)``
    (SVD++'s normalisation of a bag), ``"mean"`` ``1/n``, ``"none"`` 1. An empty
    row has no features.
    """
    factors = {"sqrt": lambda n: n**-0.5, "mean": lambda n: 1.0 / n, "none": lambda n: 1.0}
    if scale not in factors:
        raise ValueError(f"scale must be one of {sorted(factors)}, got {scale!r}")
    lengths = torch.tensor([len(items) for items in lists], dtype=torch.int64)
    indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)])
    indices = torch.tensor([i for items in lists for i in items], dtype=torch.int64)
    values = torch.tensor(
        [factors[scale](len(items)) for items in lists for _ in items], dtype=torch.float32
    )
    return FeatureRows(indptr, indices, values, size)


def field_offsets(
    indices: torch.Tensor, offsets: torch.Tensor, fields: tuple[int, ...]
) -> torch.Tensor:
    """Offsets that cut a batch (:meth:`FeatureRows.batch`) into one bag per row and field.

    Bag ``r * len(fields) + f`` holds row ``r``'s entries of field ``f``; an
    ``nn.EmbeddingBag`` with these offsets gives ``(rows * fields, dim)``, which
    ``.view(rows, fields * dim)`` turns into each row's field embeddings side by side.
    """
    n_rows, n_fields = len(offsets), len(fields)
    boundaries = torch.cumsum(torch.tensor(fields), 0)
    field_of = torch.bucketize(indices, boundaries, right=True)
    lengths = torch.diff(offsets, append=torch.tensor([len(indices)]))
    row_of = torch.repeat_interleave(torch.arange(n_rows), lengths)
    bag_of = row_of * n_fields + field_of  # sorted: rows in order, fields in order in a row
    return torch.searchsorted(bag_of, torch.arange(n_rows * n_fields))


#: The fields :func:`interaction_rows` builds, and what each one is.
FIELDS: dict[str, str] = {
    "user": "the user id (one-hot)",
    "movie": "the movie id (one-hot)",
    "user_bag": "the movies the user rated in the history, each 1/sqrt(n) (SVD++'s implicit bag)",
    "movie_bag": "the users who rated the movie in the history, each 1/sqrt(n)",
    "day": "the day of the interaction, counted from the history's first day (one-hot)",
    "hour": "the hour of the day of the interaction, in UTC (one-hot)",
    "gender": "the user's gender (one-hot; side features)",
    "age_group": "the user's age group (one-hot; side features)",
    "occupation": "the user's occupation (one-hot; side features)",
    "year": "the movie's release year (one-hot; side features)",
    "genres": "the movie's genres, each 1/sqrt(n) (side features)",
}


def _bags(keys: torch.Tensor, values: torch.Tensor, n_keys: int, size: int) -> FeatureRows:
    """Per key, the multi-hot bag of its ``values`` (1/sqrt(n) each), one row per key."""
    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(keys, minlength=n_keys)
    lists = torch.split(values[order], counts.tolist())
    return multi_hot([part.tolist() for part in lists], size)


def interaction_rows(
    interactions: pd.DataFrame,
    indexer,
    history: pd.DataFrame,
    fields: Sequence[str],
    *,
    side=None,
) -> FeatureRows:
    """One feature row per interaction, with the named ``fields`` (:data:`FIELDS`) in order.

    ``history`` (the training interactions) gives the bags and the first day, so rows
    of held-out interactions never see themselves. ``side``
    (:class:`mfkit.features.SideFeatures`) is needed for the side-feature fields.
    Days after the history's last day count as its last day.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> from mfkit.features import Indexer
    >>> ds = synthetic_movielens(5, 6, 20, seed=0)
    >>> rows = interaction_rows(ds.ratings, Indexer.from_movielens(ds), ds.ratings,
    ...                         ["user", "movie", "user_bag"])
    >>> len(rows), rows.fields
    (20, (5, 6, 6))
    """
    unknown = [name for name in fields if name not in FIELDS]
    if unknown or not fields:
        raise ValueError(f"unknown fields {unknown}; choose from {list(FIELDS)}")
    needs_side = {"gender", "age_group", "occupation", "year", "genres"} & set(fields)
    if needs_side and side is None:
        raise ValueError(f"fields {sorted(needs_side)} need side=SideFeatures(...)")
    users, movies = indexer.pairs(interactions)
    past_users, past_movies = indexer.pairs(history)
    n_users, n_movies = indexer.n_users, indexer.n_movies
    built = []
    for name in fields:
        if name == "user":
            built.append(one_hot(users, n_users))
        elif name == "movie":
            built.append(one_hot(movies, n_movies))
        elif name == "user_bag":
            built.append(_bags(past_users, past_movies, n_users, n_movies).take(users))
        elif name == "movie_bag":
            built.append(_bags(past_movies, past_users, n_movies, n_users).take(movies))
        elif name == "day":
            first, last = (
                int(t) // 86_400 for t in (history["timestamp"].min(), history["timestamp"].max())
            )
            days = torch.as_tensor(interactions["timestamp"].to_numpy() // 86_400 - first)
            built.append(one_hot(days.clamp(0, last - first), last - first + 1))
        elif name == "hour":
            hours = torch.as_tensor(interactions["timestamp"].to_numpy() // 3_600 % 24)
            built.append(one_hot(hours, 24))
        elif name in ("gender", "age_group", "occupation"):
            built.append(one_hot(side.users[name][users], side.sizes[name]))
        elif name == "year":
            built.append(one_hot(side.movies["year"][movies], side.sizes["year"]))
        else:  # genres: each movie's bag once, then one row per interaction
            flags = side.movies["genres"]
            lists = [row.nonzero().flatten().tolist() for row in flags]
            built.append(multi_hot(lists, flags.shape[1]).take(movies))
    return FeatureRows.concat(*built)
