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

import torch

__all__ = ["FeatureRows", "field_offsets", "multi_hot", "one_hot"]


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
