"""Accuracy metrics for rating prediction and top-k recommendation.

Introduced in chapter 2 (rating metrics: :func:`rmse`, :func:`mae`) and chapter 5
(ranking metrics: precision, recall, NDCG and hit rate at k, catalogue coverage).
Inputs may be array-likes, numpy arrays or torch tensors (torch is never imported here).

The ranking metrics use binary relevance and share one signature,
``f(recommended, relevant, k, *, per_user=False)``:

* ``recommended``: one ranked list of item ids per user, as a 2-D array or tensor of
  shape ``(n_users, >= k)`` or a sequence of (possibly ragged) sequences; a list
  shorter than ``k`` just has fewer hits. An item repeated within a list counts once.
* ``relevant``: one collection (set, list, array, tensor) of relevant item ids per
  user; a scalar counts as one item, so a 1-D array of held-out items works too.
* Users with no relevant item are skipped: left out of the mean, ``nan`` per user.

Examples
--------
>>> recall_at_k([[10, 11, 12], [12, 13, 14]], [{11, 99}, {14}], k=2)  # (1/2 + 0/1) / 2
0.25
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from numbers import Integral
from typing import Any

import numpy as np

Score = float | np.ndarray  # the mean over users, or one score per user

__all__ = [
    "catalog_coverage",
    "hit_rate_at_k",
    "mae",
    "mse_by_user",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "rmse",
]


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on the GPU or requiring grad
        x = x.detach().cpu()
    elif isinstance(x, AbstractSet):
        x = list(x)
    return np.asarray(x)


def _errors(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _as_array(y_true).astype(np.float64), _as_array(y_pred).astype(np.float64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred have different shapes: {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    for name, a in (("y_true", t), ("y_pred", p)):
        if np.isnan(a).any():
            raise ValueError(f"{name} contains NaN")
    return t - p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, ``sqrt(mean((y_true - y_pred) ** 2))``.

    Examples
    --------
    >>> rmse([1, 2, 3, 4], [2, 2, 5, 4])  # sqrt((1 + 0 + 4 + 0) / 4)
    1.118033988749895
    """
    return float(np.sqrt(np.mean(_errors(y_true, y_pred) ** 2)))


def mse_by_user(users: Any, y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean squared error of each user's ratings: the cases of the paired rule for ratings.

    One value per distinct user in ``users``, in increasing user order, so two models
    scored on the same ratings give vectors that :func:`mfkit.stats.paired` can compare
    (with ``lower_is_better=True``).

    Examples
    --------
    >>> mse_by_user([7, 3, 7], [4, 2, 5], [3, 2, 2]).tolist()  # user 3: 0; user 7: (1 + 9) / 2
    [0.0, 5.0]
    """
    squared = _errors(y_true, y_pred) ** 2
    who = _as_array(users)
    if who.shape != squared.shape:
        raise ValueError(f"users and y_true have different shapes: {who.shape} and {squared.shape}")
    _, row = np.unique(who, return_inverse=True)
    return np.bincount(row, weights=squared) / np.bincount(row)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, ``mean(|y_true - y_pred|)``.

    Examples
    --------
    >>> mae([1, 2, 3, 4], [2, 2, 5, 4])  # (1 + 0 + 2 + 0) / 4
    0.75
    """
    return float(np.mean(np.abs(_errors(y_true, y_pred))))


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _flatten(recommended: Any, k: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Return ``(user_row, rank, item, n_users)`` for every item in each top-k list."""
    if hasattr(recommended, "detach") or isinstance(recommended, np.ndarray):
        top = _as_array(recommended)
        if top.ndim != 2:
            raise ValueError(f"recommended must be 2-D (n_users, n_items), got shape {top.shape}")
        n, width = top[:, :k].shape
        return np.repeat(np.arange(n), width), np.tile(np.arange(width), n), top[:, :k].ravel(), n
    rows = [_as_array(r) for r in recommended]
    if any(r.ndim != 1 for r in rows):
        raise ValueError("recommended must hold one 1-D list of item ids per user")
    rows = [r[:k] for r in rows]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    user = np.repeat(np.arange(len(rows)), lengths)
    rank = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    return user, rank, items, len(rows)


def _hits(recommended: Any, relevant: Any, k: Any) -> tuple[np.ndarray, np.ndarray]:
    """Boolean hits matrix ``(n_users, k)`` and the number of relevant items per user."""
    _check_positive("k", k)
    user, rank, items, n = _flatten(recommended, k)
    rel_rows = [_as_array(r).ravel() for r in relevant]
    if len(rel_rows) != n:
        raise ValueError(f"recommended has {n} users but relevant has {len(rel_rows)}")
    rel_user = np.repeat(np.arange(n), [len(r) for r in rel_rows])
    rel_items = np.concatenate(rel_rows) if rel_rows else np.empty(0, dtype=np.int64)
    # Encode each (user row, item) pair as one int64 key: user * n_codes + item code.
    uniq, codes = np.unique(np.concatenate([items, rel_items]), return_inverse=True)
    n_codes = max(len(uniq), 1)
    keys = user * n_codes + codes[: len(items)]
    rel_keys = np.unique(rel_user * n_codes + codes[len(items) :])
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True  # first occurrence in each list
    hit = first & np.isin(keys, rel_keys)
    hits = np.zeros((n, k), dtype=bool)
    hits[user[hit], rank[hit]] = True
    return hits, np.bincount(rel_keys // n_codes, minlength=n)


def _evaluate(recommended: Any, relevant: Any, k: int, per_user: bool, score: Callable) -> Score:
    """Apply ``score(hits, n_relevant)`` to the users with a relevant item; mean or per user."""
    hits, n_rel = _hits(recommended, relevant, k)
    ok = n_rel > 0
    if not ok.any():
        raise ValueError("every user has an empty relevant set: there is nothing to evaluate")
    out = np.full(len(n_rel), np.nan)
    out[ok] = score(hits[ok], n_rel[ok])
    return out if per_user else float(out[ok].mean())


def precision_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False) -> Score:
    """Share of the top ``k`` recommendations that are relevant: ``hits / k``.

    Parameters
    ----------
    recommended : 2-D array or tensor, or sequence of sequences
        One ranked list of item ids per user (see the module docstring).
    relevant : sequence of collections
        The relevant item ids of each user.
    k : int
        Cut-off, at least 1.
    per_user : bool
        Return the score of every user (``nan`` where nothing is relevant) instead
        of the mean over users with at least one relevant item.

    Examples
    --------
    >>> precision_at_k([[1, 2, 3, 4]], [{2, 4}], k=2)  # 1 hit in the top 2
    0.5
    """
    return _evaluate(recommended, relevant, k, per_user, lambda h, n: h.sum(1) / h.shape[1])


def recall_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False) -> Score:
    """Share of the relevant items found in the top ``k``: ``hits / |relevant|``.

    Parameters as for :func:`precision_at_k`.

    Examples
    --------
    >>> recall_at_k([[1, 2, 3, 4]], [{2, 4, 9}], k=4)  # 2 of 3 found
    0.6666666666666666
    """
    return _evaluate(recommended, relevant, k, per_user, lambda h, n: h.sum(1) / n)


def hit_rate_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False) -> Score:
    """Share of users with at least one relevant item in their top ``k``.

    Parameters as for :func:`precision_at_k`.

    Examples
    --------
    >>> hit_rate_at_k([[1, 2], [3, 4]], [{2}, {5}], k=2)
    0.5
    """
    return _evaluate(recommended, relevant, k, per_user, lambda h, n: h.any(1).astype(float))


def _ndcg(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(hits.shape[1]) + 2)
    ideal = np.cumsum(discount)  # IDCG for 1, 2, ..., k relevant items
    return hits @ discount / ideal[np.minimum(n_rel, hits.shape[1]) - 1]


def ndcg_at_k(recommended: Any, relevant: Any, k: int, *, per_user: bool = False) -> Score:
    """Normalised discounted cumulative gain (Järvelin & Kekäläinen, 2002).

    ``DCG = sum_{i < k} hit_i / log2(i + 2)`` (ranks ``i`` from 0), divided by the
    ideal ``IDCG = sum_{i < min(k, |relevant|)} 1 / log2(i + 2)``.
    Parameters as for :func:`precision_at_k`.

    Examples
    --------
    >>> round(ndcg_at_k([[1, 2, 3]], [{2}], k=3), 4)  # (1 / log2(3)) / 1
    0.6309
    """
    return _evaluate(recommended, relevant, k, per_user, _ndcg)


def catalog_coverage(recommended: Any, n_items: int, k: int | None = None) -> float:
    """Share of the ``n_items`` catalogue that appears in at least one top-``k`` list.

    Parameters
    ----------
    recommended : 2-D array or tensor, or sequence of sequences
        One ranked list of item ids per user.
    n_items : int
        Size of the catalogue, at least 1.
    k : int, optional
        Cut-off; by default every list is used whole.

    Examples
    --------
    >>> catalog_coverage([[0, 1, 2], [2, 3, 4]], n_items=10, k=2)  # {0, 1, 2, 3}
    0.4
    """
    _check_positive("n_items", n_items)
    if k is not None:
        _check_positive("k", k)
    n_seen = len(np.unique(_flatten(recommended, k)[2]))
    if n_seen > n_items:
        raise ValueError(f"recommended holds {n_seen} distinct items, more than n_items={n_items}")
    return n_seen / n_items
