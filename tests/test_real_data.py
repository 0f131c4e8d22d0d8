"""Checks on the real ML-100K; they run where MFKIT_DATA_DIR holds it (CI does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfkit.data import GENRES, OCCUPATIONS, SPLITS, load_movielens, load_split
from mfkit.features import SideFeatures

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


def test_side_features_of_ml100k() -> None:
    ml = load_movielens("ml-100k")
    side = SideFeatures.from_movielens(ml)
    assert side.vocab["occupation"].values == OCCUPATIONS  # the 21 of u.occupation
    assert side.sizes["occupation"] == 21 + 1  # and unknown
    assert side.vocab["gender"].values == ("F", "M")
    assert (side.users["occupation"] > 0).all() and (side.users["age_group"] > 0).all()
    # Canadian and other non-numeric zip codes are unknown, US ones are not.
    numeric = ml.users["zip_code"].str[0].str.isdigit()
    assert ((side.users["zip"] == 0).numpy() == ~numeric.to_numpy()).all()
    # Demographics identify almost every user: a zip-code embedding can memorise users.
    profiles = ml.users[["age", "gender", "occupation", "zip_code"]]
    assert len(profiles.drop_duplicates()) >= 0.99 * len(profiles)
    assert (~profiles.duplicated(keep=False)).mean() >= 0.98  # users alone with their profile


def test_command_line_trains_then_recommends(tmp_path: Path) -> None:
    ml = load_movielens("ml-100k")
    seen = set(ml.ratings.loc[ml.ratings["user_id"] == 265, "movie_id"])
    env = {**os.environ, "MFKIT_CACHE_DIR": str(tmp_path / "cache")}

    def mfkit(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mfkit.cli", *args, "-q"]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    trained = mfkit("train", "--epochs", "1").stdout
    assert "hybrid: 1 epochs" in trained and "demographics: 1 epochs" in trained
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == [
        "demographics-ml-100k-all.pt",
        "hybrid-ml-100k-all.pt",
    ]
    profile = ["--age", "24", "--gender", "M", "--occupation", "entertainment", "--zip", "10003"]
    counts = ml.ratings["movie_id"].value_counts()
    for args in (["--user", "265"], profile):
        answer = json.loads(mfkit("recommend", *args, "-k", "5", "--json").stdout)
        results = answer["results"]
        assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
        ids = [r["movie_id"] for r in results]
        assert len(set(ids)) == 5
        if args[0] == "--user":
            assert answer["user"] == 265 and not set(ids) & seen
        else:
            assert answer["profile"]["occupation"] == "entertainment"
        assert all(counts[m] >= 20 for m in ids)  # the default --min-ratings
        assert all(1 <= r["predicted"] <= 5 for r in results)
