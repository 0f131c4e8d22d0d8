"""Checks on the real ML-100K; they run where MFKIT_DATA_DIR holds it (CI does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mfkit.data import GENRES, SPLITS, load_movielens, load_split

DATA_DIR = os.environ.get("MFKIT_DATA_DIR", "")
pytestmark = pytest.mark.skipif(
    not (Path(DATA_DIR) / "ml-100k" / "u.data").is_file(),
    reason="set MFKIT_DATA_DIR to a folder holding ml-100k/ to run these",
)


def test_ml100k_has_the_documented_sizes() -> None:
    ml = load_movielens("ml-100k")
    assert (len(ml.ratings), len(ml.users), len(ml.movies)) == (100_000, 943, 1_682)
    assert ml.ratings["user_id"].nunique() == 943
    assert ml.ratings["movie_id"].nunique() == 1_682
    assert ml.ratings.groupby("user_id").size().min() == 20  # README: >= 20 per user
    assert set(ml.ratings["rating"]) == {1, 2, 3, 4, 5}
    assert ml.genres == list(GENRES)


@pytest.mark.parametrize("name", SPLITS)
def test_official_splits_partition_the_ratings(name: str) -> None:
    train, test = load_split(name)
    sizes = {"ua": 9_430, "ub": 9_430}
    assert len(test) == sizes.get(name, 20_000)
    assert len(train) + len(test) == 100_000
    pairs = train.merge(test, on=["user_id", "movie_id"])
    assert pairs.empty
