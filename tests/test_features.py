"""Tests for mfkit.features."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import synthetic_movielens
from mfkit.features import IdIndex, Indexer, UnknownIdError, rating_tensors

IDS = [42, 7, 1000, 3, 18]  # non-contiguous and unsorted


def test_index_follows_given_order_on_non_contiguous_ids() -> None:
    ix = IdIndex(IDS, "movie")
    assert len(ix) == 5
    assert ix.index([3, 42, 18, 42]).tolist() == [3, 0, 4, 0]
    assert ix.index(1000).tolist() == [2]  # a scalar gives a 1-element array
    assert ix.index([3]).dtype == np.int64
    assert 7 in ix and 8 not in ix


def test_index_and_ids_of_round_trip() -> None:
    ix = IdIndex(IDS)
    rng = np.random.default_rng(0)
    ids = rng.choice(IDS, size=50)
    rows = ix.index(ids)
    assert rows.min() >= 0 and rows.max() < len(ix)
    np.testing.assert_array_equal(ix.ids_of(rows), ids)
    np.testing.assert_array_equal(ix.index(ix.ids_of(np.arange(5))), np.arange(5))
    np.testing.assert_array_equal(ix.ids_of(np.arange(5)), IDS)


def test_index_accepts_series_and_tensors() -> None:
    ix = IdIndex(np.array(IDS))
    assert ix.index(pd.Series([7, 3])).tolist() == [1, 3]
    assert ix.index(torch.tensor([1000])).tolist() == [2]


def test_empty_inputs_give_empty_outputs() -> None:
    ix = IdIndex(IDS)
    assert ix.index([]).shape == (0,)
    assert ix.ids_of([]).shape == (0,)
    assert ix.ids_of(np.array([], dtype=np.int64)).shape == (0,)


def test_unknown_id_error_names_the_unknown_ids() -> None:
    ix = IdIndex(IDS, "movie")
    with pytest.raises(UnknownIdError, match=r"unknown movie id\(s\): 99, 5 \(2 in all\)") as e:
        ix.index([7, 99, 5, 99])
    assert isinstance(e.value, KeyError)
    message = str(e.value)
    assert not message.startswith("'")  # not quoted like a plain KeyError
    assert "from 3 to 1000" in message and "(5 ids)" in message


def test_unknown_id_error_shows_at_most_five_ids() -> None:
    ix = IdIndex([1, 2], "user")
    with pytest.raises(
        UnknownIdError, match=r"user id\(s\): 11, 12, 13, 14, 15, \.\.\. \(7 in all\)"
    ):
        ix.index([11, 12, 13, 14, 15, 16, 17])


def test_unknown_id_error_is_caught_as_key_error() -> None:
    with pytest.raises(KeyError, match="unknown id"):
        IdIndex([1]).index(2)


def test_duplicate_ids_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"user ids must be unique; repeated: \[7\]"):
        IdIndex([1, 7, 3, 7], "user")


@pytest.mark.parametrize("rows", [[5], [-1], [0, 99]])
def test_ids_of_out_of_range_raises_index_error(rows: list[int]) -> None:
    with pytest.raises(IndexError, match=r"row indices must lie in 0\.\.4"):
        IdIndex(IDS).ids_of(rows)


def test_repr_names_size_and_kind() -> None:
    assert repr(IdIndex(IDS, "movie")) == "IdIndex(5 movie ids)"


def test_rating_tensors_dtypes_and_values() -> None:
    frame = pd.DataFrame(
        {"user_id": [9, 2, 9, 5], "movie_id": [30, 10, 20, 30], "rating": [4, 1, 5, 2]}
    )
    u, m, r = rating_tensors(frame, IdIndex([2, 5, 9]), IdIndex([30, 10, 20]))
    assert (u.dtype, m.dtype, r.dtype) == (torch.int64, torch.int64, torch.float32)
    assert u.tolist() == [2, 0, 2, 1]
    assert m.tolist() == [0, 1, 2, 0]
    assert r.tolist() == [4.0, 1.0, 5.0, 2.0]


def test_rating_tensors_keeps_fractional_ratings() -> None:
    frame = pd.DataFrame({"user_id": [1], "movie_id": [1], "rating": [3.5]})
    assert rating_tensors(frame, IdIndex([1]), IdIndex([1]))[2].tolist() == [3.5]


def test_rating_tensors_copy_the_ratings() -> None:
    # pandas hands out read-only arrays; the tensor must not alias the frame.
    frame = pd.DataFrame({"user_id": [1, 1], "movie_id": [1, 2]})
    frame["rating"] = np.array([3.0, 4.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = rating_tensors(frame, IdIndex([1]), IdIndex([1, 2]))[2]
    r += 1
    assert frame["rating"].tolist() == [3.0, 4.0]


def test_rating_tensors_missing_columns() -> None:
    frame = pd.DataFrame({"user_id": [1], "item": [1]})
    with pytest.raises(KeyError, match=r"ratings lacks column\(s\) \['movie_id', 'rating'\]"):
        rating_tensors(frame, IdIndex([1]), IdIndex([1]))


def test_rating_tensors_unknown_movie() -> None:
    frame = pd.DataFrame({"user_id": [1], "movie_id": [77], "rating": [3]})
    with pytest.raises(UnknownIdError, match=r"unknown movie id\(s\): 77"):
        rating_tensors(frame, IdIndex([1], "user"), IdIndex([1], "movie"))


def test_indexer_rows_follow_frame_order(small) -> None:
    # Shuffle the frames so that row order differs from id order.
    ds = synthetic_movielens(6, 9, 20, seed=2)
    ds.users = ds.users.sample(frac=1, random_state=0).reset_index(drop=True)
    ds.movies = ds.movies.sample(frac=1, random_state=1).reset_index(drop=True)
    idx = Indexer.from_movielens(ds)
    assert (idx.n_users, idx.n_movies) == (6, 9)
    np.testing.assert_array_equal(idx.users.ids_of(np.arange(6)), ds.users["user_id"])
    np.testing.assert_array_equal(idx.movies.ids_of(np.arange(9)), ds.movies["movie_id"])
    np.testing.assert_array_equal(idx.titles, ds.movies["title"])
    assert idx.users.name == "user" and idx.movies.name == "movie"

    idx_small = Indexer.from_movielens(small)
    assert (idx_small.n_users, idx_small.n_movies) == (len(small.users), len(small.movies))


def test_indexer_tensors_match_rating_tensors(small) -> None:
    idx = Indexer.from_movielens(small)
    u, m, r = idx.tensors(small.ratings)
    assert u.shape == m.shape == r.shape == (len(small.ratings),)
    np.testing.assert_array_equal(idx.users.ids_of(u.numpy()), small.ratings["user_id"])
    np.testing.assert_array_equal(idx.movies.ids_of(m.numpy()), small.ratings["movie_id"])
    np.testing.assert_array_equal(r.numpy(), small.ratings["rating"].astype(np.float32))
    row = int(m[0])
    assert (
        idx.titles[row]
        == small.movies.set_index("movie_id").loc[small.ratings["movie_id"].iloc[0], "title"]
    )


def test_indexer_from_frames_missing_columns() -> None:
    ds = synthetic_movielens(3, 4, 5, seed=0)
    ds.movies = ds.movies.drop(columns="title")
    with pytest.raises(KeyError, match="title"):
        Indexer.from_movielens(ds)
    ds = synthetic_movielens(3, 4, 5, seed=0)
    ds.users = ds.users.rename(columns={"user_id": "uid"})
    with pytest.raises(KeyError, match="user_id"):
        Indexer.from_movielens(ds)


# ------------------------------------------------------------------------ bags
def test_bags_equal_a_brute_force_loop(small) -> None:
    idx = Indexer.from_movielens(small)
    ratings = small.ratings.iloc[::2]  # some users and movies have no rating here
    bags = idx.bags(ratings)
    assert bags.shape == (idx.n_users, idx.n_movies) == (30, 40)
    assert bags.dtype == torch.float32
    expected = torch.zeros(idx.n_users, idx.n_movies)
    user_ids, movie_ids = idx.users.ids.tolist(), idx.movies.ids.tolist()
    for u, m in zip(ratings["user_id"], ratings["movie_id"], strict=True):
        expected[user_ids.index(u), movie_ids.index(m)] = 1.0
    assert torch.equal(bags, expected)
    assert int(bags.sum()) == len(ratings)  # the synthetic pairs are unique
    assert (bags.sum(dim=1) == 0).any()  # users without ratings get an empty bag


def test_bags_follow_the_indexer_rows_not_the_ids() -> None:
    idx = Indexer(
        IdIndex([7, 3], "user"), IdIndex([30, 10, 20], "movie"), np.array(["a", "b", "c"])
    )
    ratings = pd.DataFrame({"user_id": [3, 7, 3], "movie_id": [10, 20, 30], "rating": [1, 5, 3]})
    assert idx.bags(ratings).tolist() == [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    # Implicit interactions have no rating column: the same bags.
    assert torch.equal(idx.bags(ratings.drop(columns="rating")), idx.bags(ratings))
    with pytest.raises(KeyError, match="movie_id"):
        idx.bags(ratings.drop(columns="movie_id"))


def test_bags_are_zero_one_even_with_repeated_ratings() -> None:
    idx = Indexer(IdIndex([1, 2], "user"), IdIndex([5, 6, 7], "movie"), np.array(["a", "b", "c"]))
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 1, 2, 1], "movie_id": [6, 6, 5, 7, 6], "rating": [4, 2, 1, 5, 3]}
    )
    bags = idx.bags(ratings)
    assert bags.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert bags.max().item() == 1.0


def test_bags_of_no_ratings_are_empty_and_unknown_ids_raise() -> None:
    idx = Indexer(IdIndex([1, 2], "user"), IdIndex([5, 6], "movie"), np.array(["a", "b"]))
    empty = pd.DataFrame({"user_id": [], "movie_id": [], "rating": []}, dtype=np.int64)
    assert torch.equal(idx.bags(empty), torch.zeros(2, 2))
    unknown = pd.DataFrame({"user_id": [1], "movie_id": [9], "rating": [3]})
    with pytest.raises(UnknownIdError, match=r"unknown movie id\(s\): 9"):
        idx.bags(unknown)


def test_bags_leave_the_ratings_alone(small) -> None:
    idx = Indexer.from_movielens(small)
    before = small.ratings.copy()
    idx.bags(small.ratings)
    pd.testing.assert_frame_equal(small.ratings, before)


def test_pairs_are_the_rating_tensors_without_ratings(small) -> None:
    idx = Indexer.from_movielens(small)
    users, movies = idx.pairs(small.ratings[["user_id", "movie_id"]])
    expected = idx.tensors(small.ratings)
    assert users.dtype == movies.dtype == torch.int64
    assert torch.equal(users, expected[0]) and torch.equal(movies, expected[1])


def test_pairs_errors() -> None:
    idx = Indexer(IdIndex([5, 7]), IdIndex([10, 20]), np.array(["a", "b"]))
    with pytest.raises(KeyError, match=r"lacks column\(s\) \['movie_id'\]"):
        idx.pairs(pd.DataFrame({"user_id": [5]}))
    with pytest.raises(UnknownIdError):
        idx.pairs(pd.DataFrame({"user_id": [5], "movie_id": [30]}))
