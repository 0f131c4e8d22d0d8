"""Tests for the side features of mfkit.features (chapter 6)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.data import GENRES, synthetic_movielens
from mfkit.features import (
    AGE_GROUPS,
    SideFeatures,
    UnknownCategoryError,
    Vocabulary,
    _zip_prefix,
)

USER_KEYS = {"gender", "occupation", "age_group", "zip", "age"}


@pytest.fixture(scope="module")
def ds():
    return synthetic_movielens(30, 40, 300, seed=3)


@pytest.fixture(scope="module")
def side(ds) -> SideFeatures:
    return SideFeatures.from_movielens(ds)


def four_users() -> pd.DataFrame:
    """User 4 alone is 'retired' and has a zip code starting with 9."""
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "age": [20, 30, 40, 70],
            "gender": ["M", "F", "M", "F"],
            "occupation": ["student", "artist", "student", "retired"],
            "zip_code": ["10003", "20001", "19104", "94110"],
        }
    )


# -------------------------------------------------------------------- Vocabulary


def test_vocabulary_codes_sorted_values_from_one_and_zero_for_unknown() -> None:
    vocab = Vocabulary(["b", "a", "c", "a"], "letter")
    assert vocab.values == ("a", "b", "c")
    assert len(vocab) == 4  # three values + unknown
    codes = vocab.encode(["c", "a", "b", "zz", None, np.nan, pd.NA])
    assert codes.tolist() == [3, 1, 2, 0, 0, 0, 0]
    assert codes.dtype == np.int64
    assert "a" in vocab and "zz" not in vocab and None not in vocab
    assert repr(vocab) == "Vocabulary('letter', 3 values + unknown)"


def test_vocabulary_ignores_missing_values_when_built() -> None:
    vocab = Vocabulary(["x", None, np.nan, "y", pd.NA], "v")
    assert vocab.values == ("x", "y")
    assert vocab.encode(["y", "x"]).tolist() == [2, 1]


def test_vocabulary_compares_values_as_text() -> None:
    vocab = Vocabulary([1, 2, 2], "number")
    assert vocab.values == ("1", "2")
    assert vocab.encode([2, "1", 3]).tolist() == [2, 1, 0]
    assert 1 in vocab and "2" in vocab


@pytest.mark.parametrize(
    ("min_count", "values"), [(1, ("a", "b", "c")), (2, ("a", "c")), (3, ("c",)), (4, ())]
)
def test_vocabulary_min_count_drops_rare_values(min_count: int, values: tuple) -> None:
    vocab = Vocabulary(["a", "a", "b", "c", "c", "c"], "v", min_count=min_count)
    assert vocab.values == values
    assert len(vocab) == len(values) + 1
    expected = [values.index(v) + 1 if v in values else 0 for v in "abc"]
    assert vocab.encode(list("abc")).tolist() == expected


@pytest.mark.parametrize("min_count", [0, -3])
def test_vocabulary_rejects_min_count_below_one(min_count: int) -> None:
    with pytest.raises(ValueError, match=f"min_count must be at least 1, got {min_count}"):
        Vocabulary(["a"], "v", min_count=min_count)


def test_empty_vocabulary_encodes_everything_as_unknown() -> None:
    vocab = Vocabulary([], "v")
    assert len(vocab) == 1
    assert vocab.encode(["a", None]).tolist() == [0, 0]


# -------------------------------------------------------------------- zip prefix


@pytest.mark.parametrize(
    ("codes", "digits", "expected"),
    [
        (["10003", "94110", "02139"], 1, ["1", "9", "0"]),
        (["10003", "94110", "02139"], 3, ["100", "941", "021"]),
        (["10003"], 5, ["10003"]),
        (["T8H1N", "V3N4P", "E2A4H"], 1, [None, None, None]),  # Canadian codes in ML-100K
        (["1a003", " 10003 ", "1"], 2, [None, "10", None]),
        ([None, np.nan, pd.NA, ""], 1, [None, None, None, None]),
        ([12345], 2, ["12"]),
    ],
)
def test_zip_prefix(codes: list, digits: int, expected: list) -> None:
    assert _zip_prefix(codes, digits) == expected


# ----------------------------------------------------------------- SideFeatures


def test_user_features_follow_the_frame_rows(ds, side: SideFeatures) -> None:
    users = ds.users
    assert set(side.users) == USER_KEYS
    for key, tensor in side.users.items():
        assert tensor.shape == (len(users),)
        assert tensor.dtype == (torch.float32 if key == "age" else torch.int64)
    for i, row in enumerate(users.itertuples()):
        for key, value in (
            ("gender", row.gender),
            ("occupation", row.occupation),
            ("zip", row.zip_code[0]),
        ):
            code = int(side.users[key][i])
            assert code >= 1 and side.vocab[key].values[code - 1] == value
    ages = users["age"].to_numpy(dtype=float)
    expected = (ages - ages.mean()) / ages.std()  # population std (ddof=0)
    np.testing.assert_allclose(side.users["age"].numpy(), expected, rtol=1e-5)
    assert side.age_mean == pytest.approx(ages.mean())
    assert side.age_std == pytest.approx(np.sqrt(np.mean((ages - ages.mean()) ** 2)))


def test_movie_features_follow_the_frame_rows(ds, side: SideFeatures) -> None:
    movies = ds.movies
    assert set(side.movies) == {"year", "genres"}
    assert side.genres == GENRES
    assert side.movies["year"].dtype == torch.int64
    assert side.movies["genres"].dtype == torch.float32
    assert side.movies["genres"].shape == (len(movies), len(GENRES))
    np.testing.assert_array_equal(side.movies["genres"].numpy(), movies[list(GENRES)].to_numpy())
    decoded = [side.vocab["year"].values[c - 1] for c in side.movies["year"].tolist()]
    assert decoded == [str(y) for y in movies["year"]]


def test_sizes_count_the_codes_with_unknown(ds, side: SideFeatures) -> None:
    users, movies = ds.users, ds.movies
    assert side.sizes == {
        "gender": users["gender"].nunique() + 1,
        "occupation": users["occupation"].nunique() + 1,
        "zip": users["zip_code"].str[0].nunique() + 1,
        "year": movies["year"].nunique() + 1,
        "age_group": len(AGE_GROUPS) + 1,
        "genres": len(GENRES),
    }
    assert repr(side).startswith("SideFeatures(30 users, 40 movies; gender=")


def test_missing_year_is_unknown_and_not_in_the_vocabulary(ds) -> None:
    movies = ds.movies.copy()
    movies["year"] = movies["year"].astype("Int64")
    movies.loc[[0, 5], "year"] = pd.NA
    side = SideFeatures(ds.users, movies)
    codes = side.movies["year"]
    assert codes[0] == 0 and codes[5] == 0
    assert (codes[[i for i in range(len(movies)) if i not in (0, 5)]] > 0).all()
    assert side.sizes["year"] == movies["year"].nunique() + 1  # nunique skips NA


@pytest.mark.parametrize(
    ("age", "group"),
    [
        (1, 1),
        (17, 1),
        (18, 2),
        (24, 2),
        (25, 3),
        (34, 3),
        (35, 4),
        (44, 4),
        (45, 5),
        (49, 5),
        (50, 6),
        (55, 6),
        (56, 7),
        (120, 7),
    ],
)
def test_age_groups_boundaries(side: SideFeatures, age: int, group: int) -> None:
    # Groups: under 18 -> 1, 18-24 -> 2, 25-34 -> 3, 35-44 -> 4, 45-49 -> 5, 50-55 -> 6, 56+ -> 7
    assert AGE_GROUPS == (0, 18, 25, 35, 45, 50, 56)
    profile = side.profile(age=age, gender="M", occupation="homemaker")
    assert int(profile["age_group"]) == group
    frame = pd.DataFrame({"age": [age], "gender": ["M"], "occupation": ["x"], "zip_code": [""]})
    assert int(side.encode_users(frame)["age_group"]) == group


def test_missing_age_is_unknown(side: SideFeatures) -> None:
    frame = pd.DataFrame(
        {"age": [np.nan], "gender": ["M"], "occupation": ["homemaker"], "zip_code": ["10003"]}
    )
    encoded = side.encode_users(frame)
    assert int(encoded["age_group"]) == 0
    assert torch.isfinite(encoded["age"]).all()


def test_encode_users_is_lenient_with_unknown_values(side: SideFeatures) -> None:
    frame = pd.DataFrame(
        {
            "age": [30, 30],
            "gender": ["X", None],
            "occupation": ["astronaut", None],
            "zip_code": ["T8H1N", None],
        }
    )
    encoded = side.encode_users(frame)
    for key in ("gender", "occupation", "zip"):
        assert encoded[key].tolist() == [0, 0]


def test_zip_digits_and_min_count(ds) -> None:
    side = SideFeatures(ds.users, ds.movies, zip_digits=2, min_count=2)
    prefixes = ds.users["zip_code"].str[:2]
    counts = prefixes.value_counts()
    kept = sorted(counts.index[counts >= 2])
    assert 0 < len(kept) < prefixes.nunique()  # some prefixes are rare, some are not
    assert side.vocab["zip"].values == tuple(kept)
    expected = [kept.index(p) + 1 if p in kept else 0 for p in prefixes]
    assert side.users["zip"].tolist() == expected


@pytest.mark.parametrize("digits", [0, 6, -1])
def test_zip_digits_out_of_range(ds, digits: int) -> None:
    with pytest.raises(ValueError, match=f"zip_digits must be between 1 and 5, got {digits}"):
        SideFeatures(ds.users, ds.movies, zip_digits=digits)


def test_missing_columns_are_named(ds) -> None:
    with pytest.raises(KeyError) as info:
        SideFeatures(ds.users.drop(columns="zip_code"), ds.movies)
    assert info.value.args[0].startswith("users lacks column(s) ['zip_code']; it has ['user_id'")
    with pytest.raises(KeyError) as info:
        SideFeatures(ds.users, ds.movies.drop(columns="year"))
    assert info.value.args[0].startswith("movies lacks column(s) ['year']; it has ['movie_id'")


# ----------------------------------------------------------------- known users


def test_categories_of_held_out_users_only_are_unknown(ds) -> None:
    side = SideFeatures(four_users(), ds.movies, known_users=[1, 2, 3])
    assert side.vocab["occupation"].values == ("artist", "student")
    assert side.vocab["zip"].values == ("1", "2")
    assert side.users["occupation"].tolist() == [2, 1, 2, 0]
    assert side.users["zip"].tolist() == [1, 2, 1, 0]
    assert side.users["gender"].tolist() == [2, 1, 2, 1]  # F is known from user 2
    with pytest.raises(UnknownCategoryError, match="unknown occupation 'retired'"):
        side.profile(age=70, gender="F", occupation="retired")


def test_age_is_standardised_with_the_known_users_only(ds) -> None:
    side = SideFeatures(four_users(), ds.movies, known_users=np.array([1, 2, 3]))
    std = math.sqrt(200 / 3)  # ages 20, 30, 40: mean 30, squared deviations 100 + 0 + 100
    assert side.age_mean == pytest.approx(30.0)
    assert side.age_std == pytest.approx(std)
    expected = [-10 / std, 0.0, 10 / std, 40 / std]
    np.testing.assert_allclose(side.users["age"].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_all_users_are_encoded_even_when_few_are_known(ds) -> None:
    side = SideFeatures(ds.users, ds.movies, known_users=[1, 2])
    assert all(len(t) == len(ds.users) for t in side.users.values())


def test_known_users_matching_nobody_is_an_error(ds) -> None:
    with pytest.raises(ValueError, match="known_users matches no user_id"):
        SideFeatures(ds.users, ds.movies, known_users=[1000, 2000])


def test_one_known_user_gives_a_finite_age_scale(ds) -> None:
    side = SideFeatures(four_users(), ds.movies, known_users=[2])
    assert side.age_std == 1.0  # the std of one age is 0: no scaling instead of dividing by 0
    assert side.users["age"].tolist() == pytest.approx([-10.0, 0.0, 10.0, 40.0])


# --------------------------------------------------------------------- profile


def test_profile_of_an_existing_user_equals_their_row(ds, side: SideFeatures) -> None:
    for i in (0, 7, 29):
        row = ds.users.iloc[i]
        profile = side.profile(
            age=int(row["age"]),
            gender=row["gender"],
            occupation=row["occupation"],
            zip_code=row["zip_code"],
        )
        assert set(profile) == USER_KEYS
        for key, tensor in profile.items():
            assert tensor.shape == (1,)
            assert torch.equal(tensor, side.users[key][i : i + 1])


def test_profile_accepts_numpy_ages_and_unknown_zip_codes(side: SideFeatures) -> None:
    a = side.profile(age=np.int64(40), gender="F", occupation="student", zip_code="T8H1N")
    b = side.profile(age=40, gender="F", occupation="student")
    assert int(a["zip"]) == 0 and int(b["zip"]) == 0
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("age", [0, 121, -5, 24.0, 24.5, "24", None, True])
def test_profile_rejects_bad_ages(side: SideFeatures, age) -> None:
    message = f"age must be a whole number of years from 1 to 120, got {age!r}"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        side.profile(age=age, gender="M", occupation="student")


def test_profile_lists_the_valid_occupations(ds, side: SideFeatures) -> None:
    with pytest.raises(UnknownCategoryError) as info:
        side.profile(age=30, gender="M", occupation="astronaut")
    assert isinstance(info.value, ValueError)
    valid = ", ".join(sorted(ds.users["occupation"].unique()))
    assert str(info.value) == f"unknown occupation 'astronaut'; choose one of: {valid}"


@pytest.mark.parametrize("gender", ["X", "m", "", None])
def test_profile_lists_the_valid_genders(side: SideFeatures, gender) -> None:
    message = f"unknown gender {gender!r}; choose one of: F, M"
    with pytest.raises(UnknownCategoryError, match=message):
        side.profile(age=30, gender=gender, occupation="student")


# -------------------------------------------------------------------- state


def test_state_round_trips_through_a_weights_only_file(ds) -> None:
    side = SideFeatures(ds.users, ds.movies, zip_digits=2, min_count=2, known_users=range(1, 21))
    buffer = io.BytesIO()
    torch.save(side.state(), buffer)
    buffer.seek(0)
    back = SideFeatures.from_state(torch.load(buffer, weights_only=True))
    assert back.sizes == side.sizes
    assert back.zip_digits == 2 and back.genres == side.genres
    assert {k: v.values for k, v in back.vocab.items()} == {
        k: v.values for k, v in side.vocab.items()
    }
    assert (back.age_mean, back.age_std) == (side.age_mean, side.age_std)
    for mine, theirs in ((side.users, back.users), (side.movies, back.movies)):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    # The rebuilt object encodes new data exactly as the original does.
    for a, b in (
        (side.encode_users(ds.users), back.encode_users(ds.users)),
        (side.encode_movies(ds.movies), back.encode_movies(ds.movies)),
        (
            side.profile(age=33, gender="F", occupation="writer", zip_code="10003"),
            back.profile(age=33, gender="F", occupation="writer", zip_code="10003"),
        ),
    ):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert repr(back) == repr(side)
