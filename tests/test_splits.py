"""Tests for mfkit.splits."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mfkit.data import synthetic_movielens
from mfkit.splits import (
    MissingColumnsError,
    leave_one_out,
    random_split,
    temporal_split,
    user_split,
)

COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_movielens(60, 90, 1_000, seed=3).ratings


def ties(n_users: int = 40, n_tied: int = 3) -> pd.DataFrame:
    """Each user: two early ratings and ``n_tied`` ratings sharing the latest timestamp."""
    rows = [
        (u, m, 3, 1_000 + m if m < 2 else 5_000 + u)
        for u in range(1, n_users + 1)
        for m in range(2 + n_tied)
    ]
    return pd.DataFrame(rows, columns=COLUMNS).astype("int64")


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns), kind="stable").reset_index(drop=True)


def split_all(ratings: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {
        "random": random_split(ratings, 0.25, seed=1),
        "leave_one_out": leave_one_out(ratings, seed=1),
        "temporal": temporal_split(ratings, 0.25),
        "user": user_split(ratings, 0.25, seed=1),
    }


SPLITS = ["random", "leave_one_out", "temporal", "user"]


@pytest.mark.parametrize("name", SPLITS)
def test_rows_partition_input(ratings: pd.DataFrame, name: str) -> None:
    train, test = split_all(ratings)[name]
    assert len(train) > 0 and len(test) > 0
    both = pd.concat([train, test], ignore_index=True)
    pd.testing.assert_frame_equal(sort_rows(both), sort_rows(ratings))


@pytest.mark.parametrize("name", SPLITS)
def test_no_leakage(ratings: pd.DataFrame, name: str) -> None:
    assert not ratings.duplicated(["user_id", "movie_id"]).any()
    train, test = split_all(ratings)[name]
    train_pairs = set(zip(train["user_id"], train["movie_id"], strict=True))
    test_pairs = set(zip(test["user_id"], test["movie_id"], strict=True))
    assert train_pairs.isdisjoint(test_pairs)


@pytest.mark.parametrize("name", SPLITS)
def test_columns_dtypes_index_and_input_untouched(ratings: pd.DataFrame, name: str) -> None:
    messy = ratings.assign(note="x").set_axis(np.arange(len(ratings))[::-1] * 7)
    before = messy.copy()
    for frame in split_all(messy)[name]:
        assert list(frame.columns) == [*COLUMNS, "note"]
        assert frame.dtypes.equals(messy.dtypes)
        pd.testing.assert_index_equal(frame.index, pd.RangeIndex(len(frame)))
    pd.testing.assert_frame_equal(messy, before)


@pytest.mark.parametrize("name", SPLITS)
def test_duplicate_pairs_are_split_as_rows(ratings: pd.DataFrame, name: str) -> None:
    doubled = pd.concat([ratings, ratings.assign(rating=1)], ignore_index=True)
    train, test = split_all(doubled)[name]
    both = pd.concat([train, test], ignore_index=True)
    pd.testing.assert_frame_equal(sort_rows(both), sort_rows(doubled))


@pytest.mark.parametrize("test_frac", [0.01, 0.2, 0.5, 0.77, 0.99])
@pytest.mark.parametrize("n", [1_000, 7, 3])
def test_random_split_size(ratings: pd.DataFrame, test_frac: float, n: int) -> None:
    train, test = random_split(ratings.head(n), test_frac, seed=5)
    assert abs(len(test) - round(test_frac * n)) <= 1
    assert len(train) + len(test) == n


def test_random_split_is_deterministic_and_seeded(ratings: pd.DataFrame) -> None:
    a_train, a_test = random_split(ratings, 0.3, seed=11)
    b_train, b_test = random_split(ratings, 0.3, seed=11)
    pd.testing.assert_frame_equal(a_train, b_train)
    pd.testing.assert_frame_equal(a_test, b_test)
    _, c_test = random_split(ratings, 0.3, seed=12)
    assert not a_test.equals(c_test)


def test_random_split_is_roughly_uniform(ratings: pd.DataFrame) -> None:
    """Over many seeds each row lands in test about test_frac of the time."""
    ids = ratings.assign(row=np.arange(len(ratings)))
    hits = np.zeros(len(ratings))
    for seed in range(200):
        hits[random_split(ids, 0.2, seed=seed)[1]["row"].to_numpy()] += 1
    assert abs(hits.mean() / 200 - 0.2) < 1e-9
    first, last = hits[: len(hits) // 2].mean(), hits[len(hits) // 2 :].mean()
    assert abs(first - last) < 5  # not biased to one end of the frame
    assert hits.min() > 10 and hits.max() < 80


@pytest.mark.parametrize("min_ratings", [1, 2, 5, 20])
def test_leave_one_out_brute_force(ratings: pd.DataFrame, min_ratings: int) -> None:
    train, test = leave_one_out(ratings, seed=0, min_ratings=min_ratings)
    by_user: dict[int, list[int]] = {}
    for user, ts in zip(ratings["user_id"], ratings["timestamp"], strict=True):
        by_user.setdefault(int(user), []).append(int(ts))
    eligible = {u for u, stamps in by_user.items() if len(stamps) >= min_ratings}
    assert eligible and eligible != set(by_user) or min_ratings == 1
    assert sorted(test["user_id"].tolist()) == sorted(eligible)
    for user, ts in zip(test["user_id"], test["timestamp"], strict=True):
        assert ts == max(by_user[int(user)])
    for user in set(by_user) - eligible:
        assert (train["user_id"] == user).sum() == len(by_user[user])
    assert len(train) == len(ratings) - len(eligible)


def test_leave_one_out_ignores_row_order(ratings: pd.DataFrame) -> None:
    assert not ratings.duplicated(["user_id", "timestamp"]).any()
    shuffled = ratings.sample(frac=1.0, random_state=0)
    _, test = leave_one_out(ratings, seed=0)
    _, test_shuffled = leave_one_out(shuffled, seed=0)
    pd.testing.assert_frame_equal(sort_rows(test), sort_rows(test_shuffled))


def test_leave_one_out_ties_are_reproducible_and_seeded() -> None:
    data = ties(n_users=40, n_tied=3)
    first = leave_one_out(data, seed=7)[1]
    pd.testing.assert_frame_equal(first, leave_one_out(data, seed=7)[1])
    assert (first["timestamp"] >= 5_000).all() and len(first) == 40
    chosen = {
        tuple(leave_one_out(data, seed=seed)[1]["movie_id"]) for seed in range(10)
    }  # (1/3)^40 chance that two seeds agree on every user
    assert len(chosen) == 10
    picked = pd.concat([leave_one_out(data, seed=s)[1] for s in range(30)])
    assert set(picked["movie_id"]) == {2, 3, 4}  # every tied rating can be picked


def test_temporal_split_order_and_size(ratings: pd.DataFrame) -> None:
    for test_frac in (0.1, 0.25, 0.6):
        train, test = temporal_split(ratings, test_frac)
        assert train["timestamp"].max() < test["timestamp"].min()
        k = round(test_frac * len(ratings))
        n_at_cutoff = (ratings["timestamp"] == test["timestamp"].min()).sum()
        assert k <= len(test) <= k + n_at_cutoff - 1


def test_temporal_split_exact_size_with_distinct_timestamps() -> None:
    data = pd.DataFrame(
        {"user_id": 1, "movie_id": range(50), "rating": 4, "timestamp": range(100, 150)}
    ).astype("int64")
    train, test = temporal_split(data.sample(frac=1.0, random_state=1), 0.2)
    assert sorted(test["timestamp"]) == list(range(140, 150))
    assert len(train) == 40


def test_temporal_split_with_ties_at_cutoff() -> None:
    data = ties(n_users=10, n_tied=3)  # 50 rows, 30 share timestamps 5001..5010
    train, test = temporal_split(data, 0.1)
    assert train["timestamp"].max() < test["timestamp"].min()
    assert test["timestamp"].min() == 5_009 and len(test) == 6


def test_temporal_split_respects_cutoff(ratings: pd.DataFrame) -> None:
    cutoff = int(ratings["timestamp"].quantile(0.3))
    train, test = temporal_split(ratings, cutoff=cutoff)
    assert (train["timestamp"] < cutoff).all() and (test["timestamp"] >= cutoff).all()
    assert len(test) == (ratings["timestamp"] >= cutoff).sum()
    exact = ratings["timestamp"].iloc[0]  # a rating exactly at the cutoff is test
    assert (temporal_split(ratings, cutoff=exact)[1]["timestamp"] == exact).any()


def test_temporal_split_cutoff_as_date(ratings: pd.DataFrame) -> None:
    date = "1998-01-01"
    seconds = int(pd.Timestamp(date, tz="UTC").timestamp())
    by_date = temporal_split(ratings, cutoff=date)
    by_seconds = temporal_split(ratings, cutoff=seconds)
    for a, b in zip(by_date, by_seconds, strict=True):
        pd.testing.assert_frame_equal(a, b)
    around = pd.DataFrame(
        {"user_id": 1, "movie_id": [1, 2, 3], "rating": 3, "timestamp": seconds + np.arange(-1, 2)}
    ).astype("int64")
    for cutoff in (date, pd.Timestamp("1998-01-01 01:00", tz="Europe/Paris")):
        assert temporal_split(around, cutoff=cutoff)[1]["movie_id"].tolist() == [2, 3]


def test_temporal_split_cutoff_outside_data(ratings: pd.DataFrame) -> None:
    train, test = temporal_split(ratings, cutoff=0)
    assert len(train) == 0 and len(test) == len(ratings)
    assert train.dtypes.equals(ratings.dtypes)


def test_temporal_split_can_be_cold_start() -> None:
    data = pd.DataFrame(
        {"user_id": [1, 1, 2], "movie_id": [1, 2, 3], "rating": 3, "timestamp": [1, 2, 3]}
    ).astype("int64")
    train, test = temporal_split(data, 0.3)
    assert test["user_id"].tolist() == [2] and 2 not in set(train["user_id"])


@pytest.mark.parametrize("test_frac", [0, 1, 0.0, 1.0, -0.1, 1.5, float("nan"), "0.2", None])
@pytest.mark.parametrize("split", [random_split, temporal_split, user_split])
def test_bad_test_frac(ratings: pd.DataFrame, split, test_frac) -> None:
    pattern = rf"test_frac must be strictly between 0 and 1, got {re.escape(repr(test_frac))}"
    with pytest.raises(ValueError, match=pattern):
        split(ratings, test_frac)


@pytest.mark.parametrize("min_ratings", [0, -1, 1.5, True])
def test_bad_min_ratings(ratings: pd.DataFrame, min_ratings) -> None:
    with pytest.raises(ValueError, match=r"min_ratings must be an integer of at least 1"):
        leave_one_out(ratings, min_ratings=min_ratings)


@pytest.mark.parametrize(
    ("split", "dropped", "missing"),
    [
        (random_split, ["movie_id"], "['movie_id']"),
        (leave_one_out, ["timestamp"], "['timestamp']"),
        (leave_one_out, ["user_id", "timestamp"], "['user_id', 'timestamp']"),
        (temporal_split, ["timestamp"], "['timestamp']"),
        (user_split, ["user_id"], "['user_id']"),
    ],
)
def test_missing_columns(ratings: pd.DataFrame, split, dropped, missing) -> None:
    present = str([c for c in COLUMNS if c not in dropped])
    with pytest.raises(MissingColumnsError, match=re.escape(missing)) as info:
        split(ratings.drop(columns=dropped))
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("ratings is missing")  # not quoted like a KeyError
    assert f"columns present: {present}" in str(info.value)


def test_only_needed_columns_are_required(ratings: pd.DataFrame) -> None:
    implicit = ratings.drop(columns="rating")  # e.g. implicit feedback
    assert len(leave_one_out(implicit)[1]) > 0
    assert len(temporal_split(implicit[["timestamp"]])[1]) > 0
    assert len(user_split(ratings[["user_id"]])[1]) > 0


@pytest.mark.parametrize("split", [random_split, leave_one_out, temporal_split, user_split])
def test_empty_ratings(ratings: pd.DataFrame, split) -> None:
    with pytest.raises(ValueError, match=r"ratings is empty"):
        split(ratings.iloc[:0])


def test_not_a_dataframe(ratings: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match=r"ratings must be a pandas DataFrame, got dict"):
        random_split(ratings.to_dict("list"))


# -------------------------------------------------------------------- user_split


@pytest.mark.parametrize("test_frac", [0.02, 0.2, 0.25, 0.5, 0.9])
def test_user_split_holds_out_whole_users(ratings: pd.DataFrame, test_frac: float) -> None:
    train, test = user_split(ratings, test_frac, seed=4)
    users = ratings["user_id"].unique()
    test_users = set(test["user_id"])
    assert len(test_users) == round(test_frac * len(users))
    assert test_users.isdisjoint(train["user_id"])
    assert test_users | set(train["user_id"]) == set(users)
    # Every row of a test user is in test, and nothing else is.
    expected = ratings[ratings["user_id"].isin(test_users)].reset_index(drop=True)
    pd.testing.assert_frame_equal(test, expected)


def test_user_split_counts_users_not_rows() -> None:
    # One user with 8 rows and four with 1 row each: 20% of 5 users is 1 user.
    frame = pd.DataFrame(
        {"user_id": [1] * 8 + [2, 3, 4, 5], "movie_id": range(12), "rating": 3, "timestamp": 0}
    )
    for seed in range(10):
        _, test = user_split(frame, 0.2, seed=seed)
        assert test["user_id"].nunique() == 1
        assert len(test) == (8 if test["user_id"].iloc[0] == 1 else 1)


def test_user_split_is_deterministic_and_seeded(ratings: pd.DataFrame) -> None:
    a_train, a_test = user_split(ratings, 0.3, seed=11)
    b_train, b_test = user_split(ratings, 0.3, seed=11)
    pd.testing.assert_frame_equal(a_train, b_train)
    pd.testing.assert_frame_equal(a_test, b_test)
    _, c_test = user_split(ratings, 0.3, seed=12)
    assert set(a_test["user_id"]) != set(c_test["user_id"])


def test_user_split_picks_every_user_sometimes(ratings: pd.DataFrame) -> None:
    users = ratings["user_id"].unique()
    held_out = pd.Series(
        np.concatenate([user_split(ratings, 0.5, seed=s)[1]["user_id"].unique() for s in range(60)])
    ).value_counts()
    assert set(held_out.index) == set(users)
    assert held_out.between(10, 50).all()  # about 30 of 60 times each


@pytest.mark.parametrize(("n_users", "test_frac"), [(1, 0.5), (2, 0.2), (2, 0.8), (3, 0.1)])
def test_user_split_needs_a_user_on_each_side(n_users: int, test_frac: float) -> None:
    frame = pd.DataFrame(
        {"user_id": range(1, n_users + 1), "movie_id": 1, "rating": 3, "timestamp": 0}
    )
    pattern = rf"test_frac={test_frac} of {n_users} users leaves no user on one side"
    with pytest.raises(ValueError, match=pattern):
        user_split(frame, test_frac)


def test_user_split_of_two_users_keeps_one_on_each_side() -> None:
    frame = pd.DataFrame({"user_id": [7, 7, 9], "movie_id": [1, 2, 1], "rating": 3, "timestamp": 0})
    train, test = user_split(frame, 0.5, seed=0)
    assert {train["user_id"].nunique(), test["user_id"].nunique()} == {1}
    assert set(train["user_id"]) | set(test["user_id"]) == {7, 9}
