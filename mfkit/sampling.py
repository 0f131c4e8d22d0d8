"""Implicit feedback and negative sampling.

Introduced in chapter 7. With implicit data there are only positives ("user ``i``
watched movie ``j``"); a model also needs negatives, which are *sampled* from the
movies a user has not interacted with. :class:`NegativeSampler` draws them
uniformly or by popularity, vectorized and seeded, and never returns one of the
user's positives. The chapter writes the same rejection sampler by hand, on a dense
``seen`` matrix, and checks that both draw the same movies from the same seed.

Examples
--------
>>> import pandas as pd
>>> pairs = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [10, 20, 10]})
>>> sampler = NegativeSampler(pairs, n_items=4, users=[1, 2], items=[10, 20, 30, 40], seed=0)
>>> users, items = sampler.sample(per_user=2)
>>> sorted(set(zip(users.tolist(), items.tolist())) & {(0, 0), (0, 1), (1, 0)})
[]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from mfkit.features import require_columns

__all__ = ["DISTRIBUTIONS", "NegativeSampler", "implicit"]

#: How negatives can be drawn (every unseen item alike, or weighted by popularity).
DISTRIBUTIONS = ("uniform", "popularity")


def implicit(ratings: pd.DataFrame, min_rating: float | None = None) -> pd.DataFrame:
    """Every rating (or every rating >= ``min_rating``) as an interaction.

    Returns the ``user_id, movie_id`` (and ``timestamp`` if present) columns of
    the kept rows, with a fresh index.
    """
    missing = {"user_id", "movie_id"} - set(ratings.columns)
    if missing:
        raise KeyError(f"ratings lacks column(s) {sorted(missing)}")
    kept = ratings if min_rating is None else ratings[ratings["rating"] >= min_rating]
    columns = [c for c in ("user_id", "movie_id", "timestamp") if c in kept.columns]
    return kept[columns].reset_index(drop=True)


class NegativeSampler:
    """Draw items a user has *not* interacted with.

    Parameters
    ----------
    positives : DataFrame
        The interactions (``user_id, movie_id``) that must never be drawn.
    n_items : int
        Size of the catalogue.
    users, items : iterable of int
        The user and item ids in row order (row ``r`` of the result is
        ``users[r]``); e.g. ``indexer.users.ids`` and ``indexer.movies.ids``.
    distribution : {"uniform", "popularity"}
        ``"uniform"``: every unseen item is equally likely. ``"popularity"``:
        probability proportional to ``(count + 1) ** alpha``, where ``count`` is
        the item's number of interactions; ``alpha=-1`` favours rare items
        (inverse popularity), ``alpha=0.75`` is word2vec's choice.
    alpha : float
        Exponent of the popularity distribution.
    seed : int or None
    """

    def __init__(
        self,
        positives: pd.DataFrame,
        n_items: int,
        *,
        users: Iterable[int],
        items: Iterable[int],
        distribution: str = "uniform",
        alpha: float = -1.0,
        seed: int | None = 0,
    ) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
        self.user_ids = pd.Index(list(users))
        self.item_ids = pd.Index(list(items))
        if len(self.item_ids) != n_items:
            raise ValueError(f"items has {len(self.item_ids)} ids but n_items is {n_items}")
        require_columns(positives, ("user_id", "movie_id"), "positives")
        u = self.user_ids.get_indexer(positives["user_id"])
        m = self.item_ids.get_indexer(positives["movie_id"])
        if (u < 0).any() or (m < 0).any():
            raise KeyError("positives contain user or item ids that are not in users/items")
        self.n_items = n_items
        self.keys = np.unique(u.astype(np.int64) * n_items + m)
        self.per_user = np.bincount(self.keys // n_items, minlength=len(self.user_ids))
        counts = np.bincount(m, minlength=n_items).astype(float)
        weights = np.ones(n_items) if distribution == "uniform" else (counts + 1.0) ** alpha
        self.probabilities = weights / weights.sum()
        self.rng = np.random.default_rng(seed)

    def is_positive(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """Whether each ``(user row, item row)`` pair is an interaction."""
        keys = np.asarray(user_rows, dtype=np.int64) * self.n_items + np.asarray(item_rows)
        if not len(self.keys):
            return np.zeros(len(keys), dtype=bool)
        where = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return self.keys[where] == keys

    def sample_for(self, user_rows: np.ndarray) -> np.ndarray:
        """One negative item row for each entry of ``user_rows`` (rows may repeat)."""
        user_rows = np.asarray(user_rows, dtype=np.int64)
        if len(user_rows) and (self.per_user[user_rows] >= self.n_items).any():
            raise ValueError("a user has interacted with every item: no negative exists")
        items = self.rng.choice(self.n_items, size=len(user_rows), p=self.probabilities)
        redo = self.is_positive(user_rows, items)
        while redo.any():  # rejection sampling: the draw stays from the same distribution
            items[redo] = self.rng.choice(self.n_items, size=int(redo.sum()), p=self.probabilities)
            redo[redo] = self.is_positive(user_rows[redo], items[redo])
        return items

    def sample(
        self, *, per_user: int | None = None, ratio: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Negatives for every user with interactions: ``(user_rows, item_rows)`` tensors.

        Give either ``per_user`` (the same number for everyone) or ``ratio`` (that
        many negatives per interaction of the user, rounded).
        """
        if (per_user is None) == (ratio is None):
            raise ValueError("give exactly one of per_user= and ratio=")
        value = per_user if per_user is not None else ratio
        if value < 0:
            raise ValueError(f"per_user and ratio must be >= 0, got {value}")
        counts = (
            np.where(self.per_user > 0, per_user, 0)
            if per_user is not None
            else np.rint(self.per_user * ratio).astype(np.int64)
        )
        user_rows = np.repeat(np.arange(len(self.per_user)), counts)
        return torch.from_numpy(user_rows), torch.from_numpy(self.sample_for(user_rows))

    def training_data(self, ratio: float = 4.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All positives (label 1) plus freshly drawn negatives (label 0).

        Returns ``(user_rows, item_rows, labels)`` with ``ratio`` negatives per
        positive of each user. Call it once per epoch (``fit`` accepts
        ``lambda epoch: sampler.training_data(4)``) so that the model sees new
        negatives every epoch instead of memorising one fixed draw.
        """
        pos_users = torch.from_numpy(self.keys // self.n_items)
        pos_items = torch.from_numpy(self.keys % self.n_items)
        neg_users, neg_items = self.sample(ratio=ratio)
        labels = torch.cat([torch.ones(len(pos_users)), torch.zeros(len(neg_users))])
        return torch.cat([pos_users, neg_users]), torch.cat([pos_items, neg_items]), labels

    def sample_distinct(self, user_rows: np.ndarray, n: int) -> torch.Tensor:
        """``n`` *different* negative item rows per user: a ``(len(user_rows), n)`` tensor.

        Draws without replacement from the sampler's distribution (the Gumbel
        top-k trick: the ``n`` largest ``log p + Gumbel noise`` among the user's
        unseen items), e.g. the 99 negatives of a leave-one-out evaluation.
        """
        user_rows = np.asarray(user_rows, dtype=np.int64)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not len(user_rows):
            return torch.empty(0, n, dtype=torch.int64)
        if (self.per_user[user_rows] > self.n_items - n).any():
            raise ValueError(f"a user has fewer than n={n} unseen items to draw from")
        unique, inverse = np.unique(user_rows, return_inverse=True)
        key_users = self.keys // self.n_items
        owners = np.searchsorted(unique, key_users).clip(max=len(unique) - 1)
        mine = unique[owners] == key_users
        seen = np.zeros((len(unique), self.n_items), dtype=bool)
        seen[owners[mine], self.keys[mine] % self.n_items] = True
        keys = np.log(self.probabilities) + self.rng.gumbel(size=(len(user_rows), self.n_items))
        keys[seen[inverse]] = -np.inf
        top = np.argpartition(-keys, n - 1, axis=1)[:, :n] if n else keys[:, :0]
        return torch.from_numpy(np.ascontiguousarray(top, dtype=np.int64))
