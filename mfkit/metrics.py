"""Accuracy metrics for rating prediction and top-k recommendation.

Introduced in chapter 2 (rating metrics: :func:`rmse`, :func:`mae`) and chapter 5
(ranking metrics: precision, recall, NDCG and hit rate at k, catalogue coverage).
Chapter 13 adds metrics of the lists beyond accuracy: how evenly they spread exposure
over the catalogue (:func:`exposure_gini`), how unfamiliar and how popular their items
are (:func:`novelty`, :func:`mean_popularity`), how unlike each other
(:func:`intra_list_diversity`), and how well their genre mix matches a user's history
(:func:`genre_mix`, :func:`miscalibration`).
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
from typing import Any

import numpy as np

from mfkit._checks import positive_int

Score = float | np.ndarray  # the mean over users, or one score per user

__all__ = [
    "catalog_coverage",
    "exposure_gini",
    "genre_mix",
    "hit_rate_at_k",
    "intra_list_diversity",
    "mae",
    "mean_popularity",
    "miscalibration",
    "mse_by_user",
    "ndcg_at_k",
    "novelty",
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
    positive_int("k", k)
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
    positive_int("n_items", n_items)
    if k is not None:
        positive_int("k", k)
    n_seen = len(np.unique(_flatten(recommended, k)[2]))
    if n_seen > n_items:
        raise ValueError(f"recommended holds {n_seen} distinct items, more than n_items={n_items}")
    return n_seen / n_items


# ------------------------------------------------------------- beyond accuracy (chapter 13)


def _check_k(k: Any) -> None:
    if k is not None:
        positive_int("k", k)


def _table(name: str, values: Any, ndim: int) -> np.ndarray:
    """``values`` as a float array of ``ndim`` dimensions, finite and never negative."""
    array = _as_array(values).astype(np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must hold finite values >= 0")
    return array


def _rows(items: np.ndarray, n_rows: int, name: str) -> np.ndarray:
    """Item ids as int64 row numbers of ``name``, which has ``n_rows`` rows.

    Whole floats pass too: an empty list among ragged ones makes the flat ids floats.
    """
    if items.size == 0:
        return items.astype(np.int64)
    whole = np.issubdtype(items.dtype, np.integer) or (
        np.issubdtype(items.dtype, np.floating) and (items == np.round(items)).all()
    )
    if not whole or items.min() < 0 or items.max() >= n_rows:
        raise ValueError(
            f"item ids must be integers from 0 to {n_rows - 1} (the rows of {name}), "
            f"got ids from {items.min()} to {items.max()}"
        )
    return items.astype(np.int64)


def _sum_by_list(user: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``rows`` (one per flat item) within each of the ``n`` lists."""
    out = np.zeros((n, *rows.shape[1:]))
    np.add.at(out, user, rows)
    return out


def _mean_by_list(user: np.ndarray, values: np.ndarray, n: int, per_user: bool) -> Score:
    """Mean of ``values`` within each list: ``nan`` for an empty list, left out of the mean."""
    length = np.bincount(user, minlength=n)
    if not length.any():
        raise ValueError("every list is empty: there is nothing to evaluate")
    out = np.full(n, np.nan)
    ok = length > 0
    out[ok] = _sum_by_list(user, values, n)[ok] / length[ok]
    return out if per_user else float(out[ok].mean())


def exposure_gini(recommended: Any, n_items: int, k: int | None = None) -> float:
    """Gini coefficient of how often each catalogue item appears in the top-``k`` lists.

    Items never recommended count as shown 0 times. With the counts sorted,
    ``x_1 <= ... <= x_n``, it is ``sum_i (2 i - n - 1) x_i / (n sum_i x_i)``: 0 when every
    item is shown equally often, ``(n - 1) / n`` when one item takes all the exposure.

    Parameters
    ----------
    recommended : 2-D array or tensor, or sequence of sequences
        One ranked list of item ids per user (ids of any kind).
    n_items : int
        Size of the catalogue, at least the number of distinct recommended items.
    k : int, optional
        Cut-off; by default every list is used whole.

    Examples
    --------
    >>> exposure_gini([[0, 1], [0, 1]], n_items=2)  # both shown twice
    0.0
    >>> exposure_gini([[0], [0]], n_items=4)  # one item takes everything: 3 / 4
    0.75
    """
    positive_int("n_items", n_items)
    _check_k(k)
    shown = np.unique(_flatten(recommended, k)[2], return_counts=True)[1]
    if shown.size == 0:
        raise ValueError("every list is empty: there is no exposure to measure")
    if shown.size > n_items:
        raise ValueError(
            f"recommended holds {shown.size} distinct items, more than n_items={n_items}"
        )
    counts = np.sort(np.concatenate([np.zeros(n_items - shown.size), shown]))
    weight = 2 * np.arange(1, n_items + 1) - n_items - 1
    return float(weight @ counts / (n_items * counts.sum()))


def _counts(counts: Any) -> np.ndarray:
    return _table("counts", counts, 1)


def novelty(
    recommended: Any, counts: Any, n_users: int, k: int | None = None, *, per_user: bool = False
) -> Score:
    """Mean self-information ``-log2(counts[i] / n_users)`` of the recommended items, in bits.

    ``counts[i] / n_users`` is the share of training users who interacted with item ``i``:
    an item every user knows carries 0 bits, one known to 1 user in 1,024 carries 10.

    Parameters
    ----------
    recommended : 2-D array or tensor, or sequence of sequences
        One ranked list of item ids per user; the ids index ``counts``.
    counts : 1-D array-like
        The number of training users of each item id, between 0 and ``n_users``.
        A recommended item must have a count above 0 (its novelty would be infinite).
    n_users : int
        The number of training users.
    k : int, optional
        Cut-off; by default every list is used whole.
    per_user : bool
        One value per list (``nan`` for an empty one) instead of the mean over lists.

    Examples
    --------
    >>> novelty([[0, 1], [1, 1]], counts=[8, 2], n_users=8, per_user=True)  # 0 and 2 bits
    array([1., 2.])
    """
    positive_int("n_users", n_users)
    _check_k(k)
    share = _counts(counts) / n_users
    if (share > 1).any():
        item = int(np.argmax(share > 1))
        raise ValueError(
            f"counts[{item}] = {share[item] * n_users:g} is more than n_users={n_users}"
        )
    user, _, items, n = _flatten(recommended, k)
    items = _rows(items, len(share), "counts")
    unseen = share[items] == 0
    if unseen.any():
        raise ValueError(
            f"item {items[unseen][0]} has count 0, so its novelty is infinite: "
            "recommend only items seen in training"
        )
    return _mean_by_list(user, -np.log2(share[items]), n, per_user)


def mean_popularity(
    recommended: Any, counts: Any, k: int | None = None, *, per_user: bool = False
) -> Score:
    """Mean training count of the recommended items (average recommendation popularity).

    The "ARP" of Abdollahpouri et al.: how much a model leans on the popular head of
    the catalogue. Parameters as for :func:`novelty` (``counts`` has no upper bound here).

    Examples
    --------
    >>> mean_popularity([[0, 1], [1, 2]], counts=[10, 4, 0])  # (7 + 2) / 2
    4.5
    """
    _check_k(k)
    popularity = _counts(counts)
    user, _, items, n = _flatten(recommended, k)
    return _mean_by_list(user, popularity[_rows(items, len(popularity), "counts")], n, per_user)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; a zero row stays zero (similarity 0 to everything)."""
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norm, out=np.zeros_like(vectors), where=norm > 0)


def intra_list_diversity(
    recommended: Any, item_vectors: Any, k: int | None = None, *, per_user: bool = False
) -> Score:
    """Mean ``1 - cosine similarity`` over the pairs of items within each list.

    Parameters
    ----------
    recommended : 2-D array or tensor, or sequence of sequences
        One ranked list of item ids per user; the ids index the rows of ``item_vectors``.
    item_vectors : 2-D array or tensor
        One vector per item, e.g. 0/1 genre flags or embeddings. A zero vector has
        similarity 0 to every item.
    k : int, optional
        Cut-off; by default every list is used whole.
    per_user : bool
        One value per list instead of the mean; a list of fewer than 2 items has no
        pairs: ``nan``, and left out of the mean.

    Examples
    --------
    >>> genres = [[1, 0], [1, 0], [0, 1]]  # items 0 and 1 share their genre
    >>> intra_list_diversity([[0, 1], [0, 2], [0, 1, 2]], genres, per_user=True)
    array([0.        , 1.        , 0.66666667])
    """
    _check_k(k)
    vectors = _as_array(item_vectors).astype(np.float64)
    if vectors.ndim != 2 or not np.isfinite(vectors).all():
        raise ValueError(f"item_vectors must be a finite 2-D array, got shape {vectors.shape}")
    user, _, items, n = _flatten(recommended, k)
    unit = _unit_rows(vectors)[_rows(items, len(vectors), "item_vectors")]
    # Over the pairs i != j of a list, sum_ij <v_i, v_j> = |sum_i v_i|^2 - sum_i |v_i|^2.
    total = (_sum_by_list(user, unit, n) ** 2).sum(1)
    similar = (total - np.bincount(user, (unit**2).sum(1), minlength=n)) / 2
    length = np.bincount(user, minlength=n)
    pairs = length * (length - 1) / 2
    if not (pairs > 0).any():
        raise ValueError("no list holds 2 items or more: there are no pairs to compare")
    out = np.full(n, np.nan)
    ok = pairs > 0
    out[ok] = 1 - similar[ok] / pairs[ok]
    return out if per_user else float(out[ok].mean())


def genre_mix(lists: Any, genres: Any, weights: Any = None) -> np.ndarray:
    """Each list's distribution over genres (Steck, 2018, "Calibrated recommendations").

    An item's genre flags are shared out to sum 1 (a comedy-drama is half of each), then
    averaged over the list's items, weighted by ``weights`` if given. An item without
    a genre contributes nothing: the row is rescaled to sum 1 over the others.

    Parameters
    ----------
    lists : 2-D array or tensor, or sequence of sequences
        One list of item ids each (recommendations, or a user's history); the ids
        index the rows of ``genres``.
    genres : 2-D array or tensor (n_items, n_genres)
        0/1 genre flags, or any weights >= 0.
    weights : sequence of sequences, optional
        One weight >= 0 per item of each list (e.g. ratings of a history).

    Returns
    -------
    ndarray (n_lists, n_genres)
        Rows that sum to 1; all zero for an empty list or one without genres.

    Examples
    --------
    >>> genres = [[1, 0], [1, 1], [0, 0]]
    >>> genre_mix([[0, 1], [2], [1, 2]], genres)  # item 1 is half of each genre
    array([[0.75, 0.25],
           [0.  , 0.  ],
           [0.5 , 0.5 ]])
    """
    flags = _table("genres", genres, 2)
    share = flags / np.maximum(flags.sum(1, keepdims=True), np.finfo(float).tiny)
    user, _, items, n = _flatten(lists, None)
    rows = share[_rows(items, len(share), "genres")]
    if weights is not None:
        weight_user, _, weight, _ = _flatten(weights, None)
        if len(weight_user) != len(user) or (weight_user != user).any():
            raise ValueError("weights must hold one weight per item of each list")
        rows = rows * _table("weights", weight, 1)[:, None]
    mix = _sum_by_list(user, rows, n)
    total = mix.sum(1, keepdims=True)
    return np.divide(mix, total, out=np.zeros_like(mix), where=total > 0)


def miscalibration(p: Any, q: Any, alpha: float = 0.01) -> Score:
    """Steck's (2018) miscalibration: ``KL(p || q~) = sum_g p_g log(p_g / q~_g)``, in nats.

    ``p`` is the target distribution over genres (e.g. :func:`genre_mix` of a user's
    history), ``q`` the list's; ``q~ = (1 - alpha) q + alpha p`` keeps the divergence
    finite where the list misses a genre the user has. Genres with ``p_g = 0`` add 0.

    Parameters
    ----------
    p, q : array-like, 1-D (one distribution) or 2-D (one per row)
    alpha : float
        Between 0 and 1; 0 gives the plain KL divergence, infinite where ``q`` misses.

    Returns
    -------
    float for 1-D input, one value per row for 2-D.

    Examples
    --------
    >>> round(miscalibration([0.5, 0.5], [1.0, 0.0], alpha=0.0), 4)  # 0.5 log 1/2 + inf
    inf
    >>> round(miscalibration([0.5, 0.5], [1.0, 0.0], alpha=0.5), 4)  # q~ = [3/4, 1/4]
    0.1438
    """
    ndim = 1 if _as_array(p).ndim == 1 else 2
    target, actual = _table("p", p, ndim), _table("q", q, ndim)
    if target.shape != actual.shape:
        raise ValueError(f"p and q have different shapes: {target.shape} and {actual.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie between 0 and 1, got {alpha}")
    mixed = (1 - alpha) * actual + alpha * target
    terms = np.zeros_like(target)
    some = target > 0
    with np.errstate(divide="ignore"):
        terms[some] = target[some] * np.log(target[some] / mixed[some])
    kl = terms.sum(-1)
    return float(kl) if kl.ndim == 0 else kl
