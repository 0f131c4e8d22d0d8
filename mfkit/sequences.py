"""Interaction histories as sequences, and the baselines that read their order.

Introduced in chapter 9. :func:`histories` turns interactions into one row per
user: the movie rows the user interacted with, oldest first, right-padded with the
padding row ``n_movies`` (one past the last movie). Row ``u`` of the result is
the history of indexer row ``u``, so scores computed from it line up with every
other model's ``(n_users, n_movies)`` scores.

:func:`next_item_examples` shifts a history by one position: the input at step
``t`` is the movie at ``t`` and the target is the movie at ``t + 1``. Built from
the training interactions of :func:`mfkit.splits.leave_one_out`, no example ever
holds a held-out movie, as input or as target.

:func:`recency_weights` and :func:`transition_counts` are the pieces of the
order-aware baselines: a user's last few movies, weighted by how recent they are,
times a movie-to-next-movie count matrix (or any movie-movie similarity).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from mfkit.features import IdIndex, Indexer
>>> idx = Indexer(IdIndex([1, 2]), IdIndex([10, 20, 30]), np.array(["A", "B", "C"]))
>>> pairs = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [30, 10, 20], "timestamp": [5, 3, 1]})
>>> histories(pairs, idx)
tensor([[0, 2],
        [1, 3]])
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mfkit._checks import positive_int
from mfkit.features import Indexer

__all__ = [
    "histories",
    "history_windows",
    "last_positions",
    "next_item_examples",
    "recency_weights",
    "transition_counts",
]


def histories(
    interactions: pd.DataFrame,
    indexer: Indexer,
    *,
    maxlen: int | None = None,
    shuffle_ties: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Each user's movie rows in time order, right-padded: ``(n_users, width)``.

    Parameters
    ----------
    interactions : DataFrame
        ``user_id, movie_id, timestamp`` rows (ratings or implicit interactions).
    indexer : Indexer
        Row ``u`` of the result is ``indexer.users`` row ``u``; movies are its rows,
        and the padding is ``indexer.n_movies``.
    maxlen : int, optional
        Keep each user's latest ``maxlen`` interactions; the width is ``maxlen``.
        By default the width is the longest history.
    shuffle_ties : bool
        Interactions with the same timestamp keep their order in ``interactions``;
        with ``True`` their order is shuffled (reproducibly for ``seed``).
    seed : int
        Seed of the shuffle.

    Returns
    -------
    LongTensor
        A user without interactions gets a row of padding.
    """
    missing = {"user_id", "movie_id", "timestamp"} - set(interactions.columns)
    if missing:
        raise KeyError(f"interactions lacks column(s) {sorted(missing)}")
    users = indexer.users.index(interactions["user_id"].to_numpy())
    movies = indexer.movies.index(interactions["movie_id"].to_numpy())
    timestamps = interactions["timestamp"].to_numpy()
    if shuffle_ties:
        tiebreak = np.random.default_rng(seed).random(len(users))
    else:
        tiebreak = np.arange(len(users))
    order = np.lexsort((tiebreak, timestamps, users))
    users, movies = users[order], movies[order]
    counts = np.bincount(users, minlength=indexer.n_users)
    width = int(counts.max(initial=0)) if maxlen is None else positive_int("maxlen", maxlen)
    rank = np.arange(len(users)) - (counts.cumsum() - counts)[users]  # 0 = the user's oldest
    from_end = counts[users] - 1 - rank  # 0 = the user's latest
    kept = from_end < width
    position = np.minimum(counts, width)[users] - 1 - from_end
    out = torch.full((indexer.n_users, max(width, 1)), indexer.n_movies, dtype=torch.long)
    out[torch.from_numpy(users[kept]), torch.from_numpy(position[kept])] = torch.from_numpy(
        movies[kept]
    )
    return out


def last_positions(seqs: torch.Tensor, pad: int) -> torch.Tensor:
    """Index of each row's latest movie (``-1`` for a row of padding only)."""
    return (seqs != pad).sum(dim=1) - 1


def next_item_examples(seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)``: the movie at step ``t`` and the one at ``t + 1``.

    Both are ``seqs`` shifted by one, ``(n, width - 1)``; a target is padding
    wherever the history has ended, and a loss skips those positions.

    Examples
    --------
    >>> inputs, targets = next_item_examples(torch.tensor([[4, 7, 2, 9]]))
    >>> inputs, targets
    (tensor([[4, 7, 2]]), tensor([[7, 2, 9]]))
    """
    if seqs.ndim != 2 or seqs.shape[1] < 2:
        raise ValueError(f"seqs must be (n, width) with width >= 2, got {tuple(seqs.shape)}")
    return seqs[:, :-1], seqs[:, 1:]


def history_windows(
    seqs: torch.Tensor, pad: int, width: int, *, stride: int | None = None
) -> torch.Tensor:
    """Cut whole histories into windows of ``width`` steps: ``(n_windows, width)``.

    A model that reads ``maxlen`` movies learns from the latest ``maxlen + 1``
    of a history (``histories(..., maxlen=maxlen + 1)``); a longer history's
    earlier movies never become examples. Windows keep them: each row of
    ``seqs`` (from :func:`histories` without ``maxlen``) gives its latest
    ``width`` movies, then the ``width`` movies ending ``stride`` steps earlier,
    and so on back to its first movie; a window shorter than ``width`` is
    right-padded. With the default ``stride = width - 1`` consecutive windows
    share one movie, so :func:`next_item_examples` of the windows holds every
    step of every history exactly once as a target (the first window's steps
    read fewer earlier movies than they would in one long history).

    Parameters
    ----------
    seqs : LongTensor
        Right-padded histories, ``(n_users, any width)``.
    pad : int
        The padding row (``n_movies``).
    width : int
        Steps per window (``maxlen + 1`` for training examples); at least 2.
    stride : int, optional
        Steps between the ends of consecutive windows, from 1 to ``width - 1``.

    Returns
    -------
    LongTensor
        Each user's windows, latest first, users in row order; a row without
        movies gives none. The first window of each user is its row of
        ``histories(..., maxlen=width)``.

    Examples
    --------
    >>> history_windows(torch.tensor([[0, 1, 2, 3, 4], [5, 6, 9, 9, 9]]), 9, 3)
    tensor([[2, 3, 4],
            [0, 1, 2],
            [5, 6, 9]])
    """
    width = positive_int("width", width)
    if width < 2:
        raise ValueError(f"width must be at least 2, got {width}")
    stride = width - 1 if stride is None else positive_int("stride", stride)
    if stride > width - 1:
        raise ValueError(f"stride must be from 1 to width - 1 = {width - 1}, got {stride}")
    lengths = (seqs != pad).sum(dim=1)
    later = (lengths - width).clamp(min=0)  # steps before the latest window
    count = torch.where(lengths > 0, 1 + (later + stride - 1) // stride, 0)
    owner = torch.repeat_interleave(torch.arange(len(seqs)), count)
    first = torch.cumsum(count, 0) - count  # each user's first window
    ends = lengths[owner] - (torch.arange(len(owner)) - first[owner]) * stride
    columns = (ends - width).clamp(min=0)[:, None] + torch.arange(width)
    inside = columns < ends[:, None]
    picked = seqs[owner[:, None], columns.clamp(max=seqs.shape[1] - 1)]
    return torch.where(inside, picked, torch.full_like(picked, pad))


def recency_weights(
    seqs: torch.Tensor, n_items: int, *, last: int | None = None, decay: float = 1.0
) -> torch.Tensor:
    """``(n_users, n_items)``: weight ``decay ** age`` on each of a user's ``last`` movies.

    The latest movie has age 0, the one before it age 1, and so on; older movies
    (beyond ``last``, or all of them by default) weigh nothing. Times a
    movie-movie matrix, this scores every movie from the user's recent ones.

    Examples
    --------
    >>> recency_weights(torch.tensor([[0, 2, 1]]), 3, last=2, decay=0.5)
    tensor([[0.0000, 1.0000, 0.5000]])
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    width = seqs.shape[1]
    last = width if last is None else positive_int("last", last)
    age = last_positions(seqs, n_items)[:, None] - torch.arange(width)
    weights = torch.where((age >= 0) & (age < last), decay ** age.clamp(min=0).float(), 0.0)
    out = torch.zeros(len(seqs), n_items + 1)
    out.scatter_add_(1, seqs, weights)
    return out[:, :n_items]


def transition_counts(seqs: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(n_items, n_items)``: how often movie ``j`` came right after movie ``i``.

    Examples
    --------
    >>> transition_counts(torch.tensor([[0, 1, 0, 3], [1, 0, 3, 3]]), 3)
    tensor([[0., 1., 0.],
            [2., 0., 0.],
            [0., 0., 0.]])
    """
    before, after = seqs[:, :-1].reshape(-1), seqs[:, 1:].reshape(-1)
    real = (before != n_items) & (after != n_items)
    counts = torch.zeros(n_items, n_items)
    counts.index_put_((before[real], after[real]), torch.ones(int(real.sum())), accumulate=True)
    return counts
