"""Train/test splits of a ratings frame.

Introduced in chapter 2 (random holdout), chapter 5/7 (leave-one-out, temporal)
and chapter 6 (whole users held out: the cold-start test).

Every function takes a ratings frame (columns ``user_id, movie_id, rating,
timestamp``; extra columns are carried along) and returns ``(train, test)``: two
new frames with the input's columns and dtypes and a fresh ``RangeIndex``, whose
rows are disjoint and together are exactly the input rows, each in input order.
Duplicated ``(user_id, movie_id)`` pairs are allowed; rows are split, not pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = [
    "MissingColumnsError",
    "leave_one_out",
    "random_split",
    "temporal_split",
    "user_split",
]


class MissingColumnsError(KeyError):
    """Raised when a ratings frame lacks a column that a split needs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _check(ratings: pd.DataFrame, needed: Sequence[str]) -> None:
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}")
    missing = [c for c in needed if c not in ratings.columns]
    if missing:
        raise MissingColumnsError(
            f"ratings is missing required column(s) {missing}; "
            f"columns present: {list(ratings.columns)}"
        )
    if len(ratings) == 0:
        raise ValueError("ratings is empty: there is nothing to split")


def _check_frac(test_frac: float) -> None:
    if not (isinstance(test_frac, Real) and 0 < test_frac < 1):
        raise ValueError(f"test_frac must be strictly between 0 and 1, got {test_frac!r}")


def _split(ratings: pd.DataFrame, is_test: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = ratings.iloc[np.flatnonzero(~is_test)].reset_index(drop=True)
    test = ratings.iloc[np.flatnonzero(is_test)].reset_index(drop=True)
    return train, test


def random_split(
    ratings: pd.DataFrame, test_frac: float = 0.2, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a uniformly random ``round(test_frac * len(ratings))`` rows.

    Parameters
    ----------
    ratings : DataFrame
        Ratings with at least ``user_id`` and ``movie_id`` columns.
    test_frac : float
        Fraction of rows for the test set, strictly between 0 and 1.
    seed : int
        Seed of the random choice; the same seed gives the same split.

    Returns
    -------
    train, test : DataFrame

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ratings = synthetic_movielens(seed=0).ratings
    >>> train, test = random_split(ratings, 0.1, seed=42)
    >>> len(train), len(test)
    (1800, 200)
    """
    _check_frac(test_frac)
    _check(ratings, ("user_id", "movie_id"))
    n = len(ratings)
    is_test = np.zeros(n, dtype=bool)
    is_test[np.random.default_rng(seed).permutation(n)[: round(test_frac * n)]] = True
    return _split(ratings, is_test)


def user_split(
    ratings: pd.DataFrame, test_frac: float = 0.2, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out *users*: a random ``round(test_frac * n_users)`` of them, with all their rows.

    No test user has a training rating, so the test set measures what happens to
    brand-new users (*cold start*); a model that needs a user id cannot score
    them at all.

    Parameters
    ----------
    ratings : DataFrame
        Ratings with at least a ``user_id`` column.
    test_frac : float
        Fraction of the users for the test set, strictly between 0 and 1.
    seed : int
        Seed of the random choice of users.

    Returns
    -------
    train, test : DataFrame

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ratings = synthetic_movielens(seed=0).ratings
    >>> train, test = user_split(ratings, 0.2, seed=1)
    >>> set(train["user_id"]) & set(test["user_id"])
    set()
    """
    _check_frac(test_frac)
    _check(ratings, ("user_id",))
    users = ratings["user_id"].unique()
    n_test = round(test_frac * len(users))
    if not 0 < n_test < len(users):
        raise ValueError(f"test_frac={test_frac} of {len(users)} users leaves no user on one side")
    chosen = np.random.default_rng(seed).choice(users, n_test, replace=False)
    return _split(ratings, ratings["user_id"].isin(chosen).to_numpy())


def leave_one_out(
    ratings: pd.DataFrame, *, seed: int = 0, min_ratings: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's latest rating.

    For every user with at least ``min_ratings`` ratings, the rating with the
    largest ``timestamp`` goes to test; ties among a user's latest ratings are
    broken at random, reproducibly for a given ``seed``. Users with fewer ratings
    stay wholly in train, so test has exactly one row per eligible user.

    Parameters
    ----------
    ratings : DataFrame
        Ratings with at least ``user_id`` and ``timestamp`` columns.
    seed : int
        Seed of the tie-breaking.
    min_ratings : int
        Fewest ratings a user needs to get a test row (at least 1).

    Returns
    -------
    train, test : DataFrame

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ratings = synthetic_movielens(seed=0).ratings
    >>> train, test = leave_one_out(ratings)
    >>> test["user_id"].is_unique
    True
    """
    if isinstance(min_ratings, bool) or not isinstance(min_ratings, Integral) or min_ratings < 1:
        raise ValueError(f"min_ratings must be an integer of at least 1, got {min_ratings!r}")
    _check(ratings, ("user_id", "timestamp"))
    n = len(ratings)
    users = ratings["user_id"].to_numpy()
    tiebreak = np.random.default_rng(seed).random(n)
    order = np.lexsort((tiebreak, ratings["timestamp"].to_numpy(), users))
    sorted_users = users[order]
    is_last = np.append(sorted_users[1:] != sorted_users[:-1], True)
    counts = ratings.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    is_test = np.zeros(n, dtype=bool)
    is_test[order[is_last]] = True
    return _split(ratings, is_test & (counts >= min_ratings))


def temporal_split(
    ratings: pd.DataFrame,
    test_frac: float = 0.2,
    *,
    cutoff: float | str | pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split globally in time: ratings at or after ``cutoff`` are test.

    This is the honest setting for "predict the future": the model is trained
    only on the past. Unlike the other splits, some test users or movies may not
    appear in train at all (cold start); a model must handle them, or the
    evaluation must report them separately.

    Parameters
    ----------
    ratings : DataFrame
        Ratings with at least a ``timestamp`` column (Unix seconds).
    test_frac : float
        Used when ``cutoff`` is None: the cutoff is then the timestamp of the
        ``k = round(test_frac * n)``-th latest rating (at least the latest one),
        i.e. the ``1 - test_frac`` quantile, so that test has ``k`` rows, or a
        few more when several ratings share the cutoff timestamp.
    cutoff : number, str or Timestamp, optional
        Unix seconds, or anything :class:`pandas.Timestamp` reads (naive is UTC).

    Returns
    -------
    train, test : DataFrame
        Every test timestamp is >= every train timestamp; either may be empty
        when an explicit ``cutoff`` lies outside the data.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ratings = synthetic_movielens(seed=0).ratings
    >>> train, test = temporal_split(ratings, cutoff="1998-03-01")
    >>> bool(train["timestamp"].max() < test["timestamp"].min())
    True
    """
    _check_frac(test_frac)
    _check(ratings, ("timestamp",))
    ts = ratings["timestamp"].to_numpy()
    if cutoff is None:
        k = min(max(round(test_frac * len(ts)), 1), len(ts))
        cutoff = np.sort(ts)[len(ts) - k]
    elif not isinstance(cutoff, Real):
        cutoff = pd.Timestamp(cutoff).timestamp()
    return _split(ratings, ts >= cutoff)
