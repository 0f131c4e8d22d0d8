"""Turn MovieLens frames into model inputs: ids to row indices, ratings to tensors.

Introduced in chapter 2 (*Matrix factorization*): an embedding table has one row
per user (or movie), so raw ids such as ``movie_id`` must become contiguous row
indices ``0..n-1``. :class:`IdIndex` does that mapping in both directions and
refuses ids it has never seen, instead of silently reading a wrong row.

Examples
--------
>>> movies = IdIndex([10, 20, 30])
>>> movies.index([30, 10]).tolist(), movies.ids_of([1]).tolist()
([2, 0], [20])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

__all__ = ["IdIndex", "Indexer", "UnknownIdError", "rating_tensors"]


class UnknownIdError(KeyError):
    """Raised for ids that an :class:`IdIndex` does not contain."""

    def __str__(self) -> str:
        return str(self.args[0])


class IdIndex:
    """A bijection between raw ids and row indices ``0..len-1`` (in the given order).

    Parameters
    ----------
    ids : iterable of int
        The known ids, without duplicates, e.g. ``ml.movies["movie_id"]``.
    name : str
        What the ids are ("user", "movie"), used in error messages.
    """

    def __init__(self, ids: Iterable[int], name: str = "id") -> None:
        self.ids = pd.Index(ids)
        self.name = name
        if self.ids.has_duplicates:
            dupes = self.ids[self.ids.duplicated()].unique()[:5].tolist()
            raise ValueError(f"{name} ids must be unique; repeated: {dupes}")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item: object) -> bool:
        return item in self.ids

    def __repr__(self) -> str:
        return f"IdIndex({len(self)} {self.name} ids)"

    def index(self, ids: Iterable[int] | int) -> np.ndarray:
        """Row indices of ``ids``; :class:`UnknownIdError` names any unknown id."""
        values = np.atleast_1d(np.asarray(ids))
        rows = self.ids.get_indexer(values)
        if (rows < 0).any():
            unknown = pd.unique(values[rows < 0])
            shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
            raise UnknownIdError(
                f"unknown {self.name} id(s): {shown} ({len(unknown)} in all); "
                f"known {self.name} ids run from {self.ids.min()} to {self.ids.max()} "
                f"({len(self)} ids)"
            )
        return rows.astype(np.int64)

    def ids_of(self, rows: Iterable[int] | int) -> np.ndarray:
        """The ids at row indices ``rows`` (the inverse of :meth:`index`)."""
        rows = np.atleast_1d(np.asarray(rows))
        if not len(rows):  # np.asarray([]) is float64, which cannot index
            rows = rows.astype(np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row indices must lie in 0..{len(self) - 1}")
        return self.ids.to_numpy()[rows]


def rating_tensors(
    ratings: pd.DataFrame, users: IdIndex, movies: IdIndex
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(user_rows, movie_rows, ratings)`` tensors (int64, int64, float32).

    Examples
    --------
    >>> frame = pd.DataFrame({"user_id": [7, 5], "movie_id": [30, 10], "rating": [4, 1]})
    >>> u, m, r = rating_tensors(frame, IdIndex([5, 7]), IdIndex([10, 20, 30]))
    >>> u.tolist(), m.tolist(), r.tolist()
    ([1, 0], [2, 0], [4.0, 1.0])
    """
    missing = {"user_id", "movie_id", "rating"} - set(ratings.columns)
    if missing:
        raise KeyError(f"ratings lacks column(s) {sorted(missing)}")
    return (
        torch.from_numpy(users.index(ratings["user_id"].to_numpy())),
        torch.from_numpy(movies.index(ratings["movie_id"].to_numpy())),
        torch.tensor(ratings["rating"].to_numpy(), dtype=torch.float32),  # a copy
    )


@dataclass(frozen=True)
class Indexer:
    """The user and movie :class:`IdIndex` of a dataset, plus movie titles.

    Row ``i`` of a model's user table is ``users.ids_of(i)``; likewise for movies.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ds = synthetic_movielens(5, 8, 20, seed=0)
    >>> idx = Indexer.from_movielens(ds)
    >>> idx.n_users, idx.n_movies
    (5, 8)
    >>> [t.shape[0] for t in idx.tensors(ds.ratings)]
    [20, 20, 20]
    """

    users: IdIndex
    movies: IdIndex
    titles: np.ndarray

    @classmethod
    def from_movielens(cls, ml) -> Indexer:
        """Rows in the order of ``ml.users`` and ``ml.movies``."""
        return cls(
            IdIndex(ml.users["user_id"], "user"),
            IdIndex(ml.movies["movie_id"], "movie"),
            ml.movies["title"].to_numpy(),
        )

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    def tensors(self, ratings: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`rating_tensors` with this indexer's users and movies."""
        return rating_tensors(ratings, self.users, self.movies)

    def bags(self, ratings: pd.DataFrame) -> torch.Tensor:
        """The rated movies of every user as a 0/1 matrix ``(n_users, n_movies)``.

        Row ``i`` is the "bag of movies" that user ``i`` rated in ``ratings``: the
        input of the softmax model (chapter 5). Dense float32, 4 bytes a cell
        (6 MB for ML-100K).

        Examples
        --------
        >>> from mfkit.data import synthetic_movielens
        >>> ds = synthetic_movielens(3, 4, 6, seed=0)
        >>> idx = Indexer.from_movielens(ds)
        >>> bags = idx.bags(ds.ratings)
        >>> bags.shape, int(bags.sum())
        (torch.Size([3, 4]), 6)
        """
        users, movies, _ = self.tensors(ratings)
        bags = torch.zeros(self.n_users, self.n_movies)
        bags[users, movies] = 1.0
        return bags
