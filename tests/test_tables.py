"""Own data in, recommendations out: mfkit.tables and Indexer.from_interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import synthetic_movielens
from mfkit.evaluation import evaluate_leave_one_out, evaluate_ranking
from mfkit.features import Indexer, SideFeatures, UnknownIdError
from mfkit.models import MatrixFactorization, SASRec, SoftmaxModel, TwoTower
from mfkit.sequences import histories
from mfkit.splits import MissingColumnsError, leave_one_out, random_split, temporal_split
from mfkit.tables import Columns, recommendations

# Another library's layout: other names, string ids, implicit (no rating).
CLICKS = pd.DataFrame(
    {
        "userID": ["ann", "ann", "ann", "bob", "bob", "cy", "cy", "cy"],
        "itemID": ["tea", "jam", "bun", "tea", "pie", "jam", "pie", "tea"],
        "timestamp": [1, 2, 3, 1, 5, 2, 3, 4],
        "note": list("abcdefgh"),
    }
)
COLUMNS = Columns(user="userID", item="itemID", timestamp="timestamp")


def test_standardize_renames_the_given_columns_and_restore_undoes_it() -> None:
    table = COLUMNS.standardize(CLICKS)
    assert list(table.columns) == ["user_id", "movie_id", "timestamp"]  # "note" dropped
    assert table["user_id"].tolist() == CLICKS["userID"].tolist()
    back = COLUMNS.restore(table.assign(score=1.0))
    assert list(back.columns) == ["userID", "itemID", "timestamp", "score"]


def test_standardize_names_what_is_missing_or_wrong() -> None:
    with pytest.raises(MissingColumnsError, match=r"lacks column\(s\) \['rating'\]"):
        Columns(user="userID", item="itemID", rating="rating").standardize(CLICKS)
    with pytest.raises(ValueError, match="'itemID' has missing ids"):
        COLUMNS.standardize(CLICKS.assign(itemID=[None, *CLICKS["itemID"][1:]]))
    dated = CLICKS.assign(timestamp=pd.to_datetime(CLICKS["timestamp"], unit="D"))
    with pytest.raises(ValueError, match="timestamp must be numeric"):
        COLUMNS.standardize(dated)


def test_an_indexer_from_the_table_alone() -> None:
    idx = Indexer.from_interactions(COLUMNS.standardize(CLICKS))
    assert idx.users.ids.tolist() == ["ann", "bob", "cy"]
    assert idx.movies.ids.tolist() == ["bun", "jam", "pie", "tea"]
    assert idx.titles.tolist() == ["bun", "jam", "pie", "tea"]
    users, items = idx.pairs(COLUMNS.standardize(CLICKS))
    assert users.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert items.tolist() == [3, 1, 0, 3, 2, 1, 2, 3]
    titles = pd.Series({"tea": "Green tea", "jam": "Jam", "bun": "Bun", "pie": "Pie"})
    assert Indexer.from_interactions(COLUMNS.standardize(CLICKS), titles).titles[3] == "Green tea"
    with pytest.raises(UnknownIdError, match="titles lacks item id"):
        Indexer.from_interactions(COLUMNS.standardize(CLICKS), titles.drop("pie"))


def test_ids_that_do_not_sort_keep_their_first_order() -> None:
    table = pd.DataFrame({"user_id": [2, "a", 1], "movie_id": [0, 0, 0]})
    assert Indexer.from_interactions(table).users.ids.tolist() == [2, "a", 1]


def test_the_splits_work_on_a_standardized_table() -> None:
    table = COLUMNS.standardize(CLICKS)
    before, last = leave_one_out(table, seed=0)
    assert last.set_index("user_id")["movie_id"].to_dict() == {
        "ann": "bun",
        "bob": "pie",
        "cy": "tea",
    }
    assert len(before) == len(table) - 3
    past, future = temporal_split(table, cutoff=4)
    assert future["timestamp"].min() >= 4 > past["timestamp"].max()
    assert len(random_split(table, 0.25, seed=0)[1]) == 2


def brute_top(scores: np.ndarray, seen: set[tuple[int, int]], k: int) -> list[list[int]]:
    out = []
    for i, row in enumerate(scores):
        order = sorted((j for j in range(len(row)) if (i, j) not in seen), key=lambda j: -row[j])
        out.append(order[:k])
    return out


def test_recommendations_by_brute_force_in_own_ids() -> None:
    table = COLUMNS.standardize(CLICKS)
    idx = Indexer.from_interactions(table)
    model = MatrixFactorization(idx.n_users, idx.n_movies, dim=3, seed=0)
    train = table.iloc[[0, 1, 3, 5]]  # ann: tea, jam; bob: tea; cy: jam
    recs = recommendations(model, idx, train, k=2, batch_size=2)  # two batches
    assert list(recs.columns) == ["user_id", "movie_id", "score", "rank"]
    scores = model.score_all(torch.arange(idx.n_users)).detach().numpy()
    seen = set(zip(*(t.tolist() for t in idx.pairs(train)), strict=True))
    expected = brute_top(scores, seen, 2)
    for row, user in enumerate(idx.users.ids):
        mine = recs[recs["user_id"] == user]
        assert mine["movie_id"].tolist() == idx.movies.ids_of(expected[row]).tolist()
        assert mine["rank"].tolist() == [1, 2]
        assert mine["score"].to_numpy() == pytest.approx(scores[row, expected[row]])


def test_recommendations_for_some_users_and_short_lists() -> None:
    table = COLUMNS.standardize(CLICKS)
    idx = Indexer.from_interactions(table)
    model = MatrixFactorization(idx.n_users, idx.n_movies, dim=3, seed=0)
    recs = recommendations(model, idx, table, users=["cy", "ann"], k=3)
    # ann has seen 3 of 4 items, cy 3 of 4: one item each, cy first
    assert recs["user_id"].tolist() == ["cy", "ann"]
    assert recs["movie_id"].tolist() == ["bun", "pie"]
    with pytest.raises(UnknownIdError, match="dan"):
        recommendations(model, idx, table, users=["dan"])


def test_recommendations_of_a_softmax_model_read_the_seen_bags() -> None:
    table = COLUMNS.standardize(CLICKS)
    idx = Indexer.from_interactions(table)
    model = SoftmaxModel(idx.n_movies, 3, seed=0)
    recs = recommendations(model, idx, table, k=1)
    logits = model(idx.bags(table)).detach().numpy()
    seen = set(zip(*(t.tolist() for t in idx.pairs(table)), strict=True))
    expected = [top[0] for top in brute_top(logits, seen, 1)]
    assert recs["movie_id"].tolist() == idx.movies.ids_of(expected).tolist()


def test_a_recommendations_table_feeds_the_implicit_protocol() -> None:
    # Implicit data: every test interaction is relevant (min_rating=None); the hit rate
    # computed from the recommendations table by hand equals evaluate_ranking's.
    table = COLUMNS.standardize(CLICKS)
    idx = Indexer.from_interactions(table)
    train, test = leave_one_out(table, seed=0)
    model = MatrixFactorization(idx.n_users, idx.n_movies, dim=3, seed=1)
    recs = recommendations(model, idx, train, k=2)
    hits = recs.merge(test[["user_id", "movie_id"]], on=["user_id", "movie_id"])
    by_hand = hits["user_id"].nunique() / test["user_id"].nunique()
    result = evaluate_ranking(model, idx, train, test, k=2, min_rating=None)
    assert result["hit_rate@2"] == pytest.approx(by_hand)


def test_unknown_test_ids_raise_or_are_skipped_and_counted() -> None:
    table = COLUMNS.standardize(CLICKS)
    idx = Indexer.from_interactions(table)
    model = MatrixFactorization(idx.n_users, idx.n_movies, dim=3, seed=0)
    train, test = leave_one_out(table, seed=0)
    newcomer = pd.DataFrame({"user_id": ["dan"], "movie_id": ["tea"], "timestamp": [9]})
    with_new = pd.concat([test, newcomer], ignore_index=True)
    with pytest.raises(UnknownIdError, match="dan"):
        evaluate_ranking(model, idx, train, with_new, min_rating=None)
    skipped = evaluate_ranking(model, idx, train, with_new, min_rating=None, unknown="skip")
    plain = evaluate_ranking(model, idx, train, test, min_rating=None)
    assert skipped["skipped"] == 1
    pd.testing.assert_series_equal(skipped.drop("skipped"), plain)
    rows = evaluate_ranking(
        model, idx, train, with_new, min_rating=None, unknown="skip", per_user=True
    )
    assert rows.attrs["skipped"] == 1 and len(rows) == 3
    cases = evaluate_leave_one_out(model, idx, train, with_new, negatives=None, unknown="skip")
    assert cases["skipped"] == 1 and cases["cases"] == 3
    assert "skipped" not in evaluate_leave_one_out(model, idx, train, test, negatives=None)
    with pytest.raises(ValueError, match="unknown must be 'raise' or 'skip'"):
        evaluate_ranking(model, idx, train, test, min_rating=None, unknown="drop")


def test_recommendations_of_a_two_tower_model_read_the_seen_bags() -> None:
    ds = synthetic_movielens(6, 9, 30, seed=0)
    idx = Indexer.from_movielens(ds)
    model = TwoTower(SideFeatures.from_movielens(ds), dim=4, hidden=(8,), seed=0).eval()
    recs = recommendations(model, idx, ds.ratings, k=2)
    bags = idx.bags(ds.ratings)
    scores = model.score_all(torch.arange(idx.n_users), bags).detach().numpy()
    seen = set(zip(*(t.tolist() for t in idx.pairs(ds.ratings)), strict=True))
    expected = np.concatenate([idx.movies.ids_of(top) for top in brute_top(scores, seen, 2)])
    assert recs["movie_id"].tolist() == expected.tolist()
    cases = evaluate_leave_one_out(
        model, idx, ds.ratings.iloc[5:], ds.ratings.iloc[:5], negatives=None
    )
    assert cases["cases"] == 5


def test_recommendations_of_a_sequence_model_read_each_history_in_time_order() -> None:
    table = COLUMNS.standardize(CLICKS)
    idx = Indexer.from_interactions(table)
    model = SASRec(idx.n_movies, dim=4, maxlen=3, blocks=1, heads=1, seed=0).eval()
    recs = recommendations(model, idx, table, k=1)
    seqs = histories(table, idx, maxlen=3)
    scores = model.score_next(seqs).numpy()
    seen = set(zip(*(t.tolist() for t in idx.pairs(table)), strict=True))
    expected = [top[0] for top in brute_top(scores, seen, 1)]
    assert recs["movie_id"].tolist() == idx.movies.ids_of(expected).tolist()
    with pytest.raises(KeyError, match="timestamp"):
        recommendations(model, idx, table.drop(columns="timestamp"))


def test_from_movielens_on_a_plain_table_points_to_from_interactions() -> None:
    with pytest.raises(TypeError, match="use Indexer.from_interactions"):
        Indexer.from_movielens(COLUMNS.standardize(CLICKS))


def test_side_features_by_id_follow_the_indexer_and_are_checked() -> None:
    ds = synthetic_movielens(6, 9, 30, seed=0)
    idx = Indexer.from_movielens(ds)
    shuffled_users = ds.users.sample(frac=1, random_state=0)
    shuffled_movies = ds.movies.sample(frac=1, random_state=1)
    side = SideFeatures.for_indexer(shuffled_users, shuffled_movies, idx)
    in_order = SideFeatures.from_movielens(ds)
    for mine, theirs in ((side.users, in_order.users), (side.movies, in_order.movies)):
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name])
    with pytest.raises(UnknownIdError, match="lacks 1 user_id"):
        SideFeatures.for_indexer(ds.users.iloc[1:], ds.movies, idx)
    with pytest.raises(ValueError, match="movie_id more than once"):
        SideFeatures.for_indexer(ds.users, pd.concat([ds.movies, ds.movies.iloc[:1]]), idx)


def test_side_features_by_own_ids_and_without_tables() -> None:
    ds = synthetic_movielens(6, 9, 30, seed=0)
    users = ds.users.assign(customer="c" + ds.users["user_id"].astype(str)).drop(columns="user_id")
    movies = ds.movies.assign(sku="s" + ds.movies["movie_id"].astype(str)).drop(columns="movie_id")
    ratings = ds.ratings.assign(
        user_id="c" + ds.ratings["user_id"].astype(str),
        movie_id="s" + ds.ratings["movie_id"].astype(str),
    )
    idx = Indexer.from_interactions(ratings)
    side = SideFeatures.for_indexer(users, movies, idx, user_key="customer", item_key="sku")
    by_number = SideFeatures.for_indexer(ds.users, ds.movies, Indexer.from_interactions(ds.ratings))
    for mine, theirs in ((side.users, by_number.users), (side.movies, by_number.movies)):
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name])
    with pytest.raises(TypeError, match="'age' column must be numeric"):
        SideFeatures.for_indexer(users.assign(age="old"), None, idx, user_key="customer")
    with pytest.raises(MissingColumnsError, match="customer"):
        SideFeatures.for_indexer(users, None, idx)  # the key column is not user_id
    bare = SideFeatures.for_indexer(None, None, idx)
    assert bare.sizes["genres"] == 0 and bare.sizes["year"] == 1
    assert set(bare.users["gender"].tolist()) == {0}  # every user unknown
    assert torch.equal(bare.users["age"], torch.zeros(idx.n_users))


def test_two_tower_runs_on_interactions_alone() -> None:
    ratings = CLICKS.rename(columns={"userID": "user_id", "itemID": "movie_id"})
    idx = Indexer.from_interactions(ratings)
    model = TwoTower(SideFeatures.for_indexer(None, None, idx), dim=4, hidden=(8,), seed=0)
    users = torch.arange(idx.n_users)
    scores = model.score_all(users, idx.bags(ratings)[users])
    assert scores.shape == (idx.n_users, idx.n_movies) and torch.isfinite(scores).all()
    with pytest.raises(ValueError, match="keep movie_ids=True"):
        TwoTower(SideFeatures.for_indexer(None, None, idx), movie_ids=False)


def test_implicit_mlp_runs_without_genres() -> None:
    from mfkit.models import ImplicitMLP

    ratings = CLICKS.rename(columns={"userID": "user_id", "itemID": "movie_id"})
    idx = Indexer.from_interactions(ratings)
    no_genres = torch.zeros(idx.n_movies, 0)  # interactions alone: no item features
    model = ImplicitMLP(idx.n_users, idx.n_movies, no_genres, dim=4, hidden=(8,), seed=0)
    scores = model.score_all(torch.arange(idx.n_users))
    assert scores.shape == (idx.n_users, idx.n_movies) and torch.isfinite(scores).all()
