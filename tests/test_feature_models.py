"""Tests for the feature models of mfkit.models: HybridModel and DemographicsModel."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mfkit.data import synthetic_movielens
from mfkit.features import Indexer, SideFeatures
from mfkit.losses import observed_mse
from mfkit.models import DemographicsModel, HybridModel
from mfkit.train import evaluate, fit

N_USERS, N_MOVIES = 30, 40
USERS = torch.tensor([3, 0, 29, 3, 17])  # unordered, with a repeat


@pytest.fixture(scope="module")
def ds():
    return synthetic_movielens(N_USERS, N_MOVIES, 300, seed=3)


@pytest.fixture(scope="module")
def side(ds) -> SideFeatures:
    return SideFeatures.from_movielens(ds)


def hybrid(side: SideFeatures, **kwargs) -> HybridModel:
    return HybridModel(side, **({"dim": 4, "hidden": (8, 6), "dropout": 0.1} | kwargs))


def demographics(side: SideFeatures, **kwargs) -> DemographicsModel:
    settings = {"dim": 3, "movie_dim": 2, "hidden": (8, 6), "dropout": 0.1} | kwargs
    return DemographicsModel(side, **settings)


BUILDERS = {"hybrid": hybrid, "demographics": demographics}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ shapes, scoring


@pytest.mark.parametrize("kind", BUILDERS)
def test_forward_and_score_all_shapes(side, kind: str) -> None:
    model = BUILDERS[kind](side, seed=0)
    pred = model(torch.tensor([0, 1, 29]), torch.tensor([5, 39, 5]))
    assert pred.shape == (3,) and pred.dtype == torch.float32
    assert model.score_all(USERS).shape == (len(USERS), N_MOVIES)
    assert (model.n_users, model.n_movies) == (N_USERS, N_MOVIES)


@pytest.mark.parametrize("kind", BUILDERS)
def test_score_all_of_no_users_is_empty(side, kind: str) -> None:
    model = BUILDERS[kind](side, seed=0).eval()
    assert model.score_all(torch.tensor([], dtype=torch.int64)).shape == (0, N_MOVIES)


@pytest.mark.parametrize("chunk", [65_536, 85, 7, 1])  # 1 chunk; 2 users a chunk; 1 user a chunk
@pytest.mark.parametrize("kind", BUILDERS)
def test_score_all_equals_forward_on_every_pair(side, kind: str, chunk: int) -> None:
    model = BUILDERS[kind](side, seed=1).eval()
    with torch.no_grad():
        scores = model.score_all(USERS, chunk=chunk)
        for i, user in enumerate(USERS.tolist()):
            for movie in range(N_MOVIES):
                one = model(torch.tensor([user]), torch.tensor([movie]))
                assert scores[i, movie].item() == pytest.approx(one.item(), abs=1e-5)


@pytest.mark.parametrize("kind", BUILDERS)
def test_predict_clips_to_the_rating_range(side, kind: str) -> None:
    model = BUILDERS[kind](side, seed=0, rating_range=(2, 4)).eval()
    users, movies = torch.arange(N_USERS), torch.arange(N_USERS) % N_MOVIES
    with torch.no_grad():
        model.output.bias.fill_(50.0)  # far above the range (hybrid) / saturated (demographics)
    raw = model.predict(users, movies, clip=False)
    clipped = model.predict(users, movies)
    assert not clipped.requires_grad
    assert torch.equal(clipped, raw.clamp(2.0, 4.0))
    assert torch.allclose(clipped, torch.full_like(clipped, 4.0))
    assert model.rating_range == (2.0, 4.0)


@pytest.mark.parametrize("kind", BUILDERS)
@pytest.mark.parametrize("global_mean", [1.8, 4.5])
def test_fresh_model_predicts_about_the_global_mean(side, kind: str, global_mean: float) -> None:
    for seed in range(3):
        model = BUILDERS[kind](side, seed=seed, global_mean=global_mean).eval()
        with torch.no_grad():
            mean = model.score_all(torch.arange(N_USERS)).mean().item()
        assert mean == pytest.approx(global_mean, abs=0.25)


# ---------------------------------------------------------------- demographics


def test_demographics_output_is_the_sigmoid_scaled_to_the_range(side) -> None:
    # Same seed, same starting fraction 0.5 of the range: identical weights and logits.
    a = demographics(side, seed=4, global_mean=3.0, rating_range=(1, 5)).eval()
    b = demographics(side, seed=4, global_mean=0.5, rating_range=(0, 1)).eval()
    with torch.no_grad():
        pa, pb = a.score_all(torch.arange(N_USERS)), b.score_all(torch.arange(N_USERS))
    torch.testing.assert_close((pa - 1) / 4, pb)
    assert ((pb > 0) & (pb < 1)).all()
    with torch.no_grad():
        a.output.bias.fill_(-60.0)
        low = a.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(low, torch.ones_like(low))


def test_demographics_never_uses_the_user_id(ds) -> None:
    users = ds.users.copy()
    twin = ["age", "gender", "occupation", "zip_code"]
    users.loc[1, twin] = users.loc[0, twin].to_numpy()
    side = SideFeatures(users, ds.movies)
    pair = torch.tensor([0, 1])
    model = demographics(side, seed=0).eval()
    with torch.no_grad():
        scores = model.score_all(pair)
        torch.testing.assert_close(scores[0], scores[1], rtol=0, atol=1e-6)
        # The hybrid model, which has user embeddings, tells the twins apart.
        other = hybrid(side, seed=0).eval().score_all(pair)
    assert not torch.allclose(other[0], other[1])
    # Scoring by features alone gives the same numbers as scoring the rows.
    by_features = model.score_profile(side.encode_users(users.iloc[[0, 1, 5]]))
    torch.testing.assert_close(by_features, model.score_all(torch.tensor([0, 1, 5])))
    row = users.iloc[5]
    profile = side.profile(
        age=int(row["age"]),
        gender=row["gender"],
        occupation=row["occupation"],
        zip_code=row["zip_code"],
    )
    torch.testing.assert_close(model.score_profile(profile, chunk=3), by_features[2:])


def test_score_profile_needs_every_user_feature(side) -> None:
    model = demographics(side, seed=0).eval()
    profile = side.profile(age=30, gender="M", occupation="student")
    del profile["age"]
    with pytest.raises(KeyError, match=r"profile lacks \['age'\]"):
        model.score_profile(profile)


def test_unknown_zip_code_is_a_zero_embedding(side) -> None:
    model = demographics(side, seed=2).eval()
    code = int(side.profile(age=30, gender="M", occupation="student", zip_code="10003")["zip"])
    assert code > 0
    assert torch.equal(model.zip_embedding.weight[0], torch.zeros(3))

    def score(zip_code: str) -> torch.Tensor:
        profile = side.profile(age=30, gender="M", occupation="student", zip_code=zip_code)
        return model.score_profile(profile)

    unknown = score("")
    torch.testing.assert_close(score("T8H1N"), unknown, rtol=0, atol=1e-6)
    assert not torch.allclose(score("10003"), unknown)
    with torch.no_grad():
        model.zip_embedding.weight[code] = 0.0
    torch.testing.assert_close(score("10003"), unknown)


def test_unknown_codes_get_no_gradient_and_stay_zero(ds) -> None:
    users, movies = ds.users.copy(), ds.movies.copy()
    active = ds.ratings["user_id"].value_counts().index[:4]
    users.loc[users["user_id"].isin(active), ["zip_code", "occupation"]] = ["T8H1N", None]
    popular = ds.ratings["movie_id"].value_counts().index[:3]
    movies["year"] = movies["year"].astype("Int64")
    movies.loc[movies["movie_id"].isin(popular), "year"] = pd.NA
    side = SideFeatures(users, movies)
    assert (side.users["zip"] == 0).sum() == 4 and (side.users["occupation"] == 0).sum() == 4
    assert (side.movies["year"] == 0).sum() == 3
    tables = ("zip_embedding", "occupation_embedding", "year_embedding")

    model = demographics(side, seed=0)
    data = Indexer.from_movielens(ds).tensors(ds.ratings)
    observed_mse(model, *data).backward()
    for name in tables:
        table = getattr(model, name).weight
        assert torch.equal(table[0], torch.zeros_like(table[0])), name
        assert torch.equal(table.grad[0], torch.zeros_like(table.grad[0])), name
        assert table.grad[1:].abs().sum() > 0, name

    model.zero_grad()
    fit(model, data, observed_mse, epochs=2, lr=0.05, weight_decay=0.01, progress=False)
    for name in tables:
        table = getattr(model, name).weight
        assert torch.equal(table[0], torch.zeros_like(table[0])), name


def test_unknown_categories_look_alike_to_the_hybrid_model(ds) -> None:
    users = ds.users.copy()
    users.loc[[0, 1, 2], ["age", "gender", "zip_code"]] = [30, "M", "10003"]
    users.loc[[0, 1, 2], "occupation"] = [None, "astronaut", "programmer"]
    # "astronaut" belongs to user 2 only, who is held out: unknown, like a missing value.
    side = SideFeatures(users, ds.movies, known_users=users["user_id"].drop(index=1))
    assert side.users["occupation"][:2].tolist() == [0, 0]
    assert side.users["occupation"][2] > 0
    model = hybrid(side, seed=0).eval()
    with torch.no_grad():
        model.user_embedding.weight[1:3] = model.user_embedding.weight[0]
        scores = model.score_all(torch.tensor([0, 1, 2]))
    torch.testing.assert_close(scores[0], scores[1], rtol=0, atol=1e-6)
    assert not torch.allclose(scores[0], scores[2])


def test_movie_dim_zero_scores_movies_by_year_and_genres_only(ds) -> None:
    movies = ds.movies.copy()
    features = ["year", *[c for c in movies.columns if c in ds.genres]]
    movies.loc[1, features] = movies.loc[0, features].to_numpy()
    side = SideFeatures(ds.users, movies)
    without = demographics(side, seed=0, movie_dim=0).eval()
    assert without.movie_embedding is None
    with torch.no_grad():
        scores = without.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(scores[:, 0], scores[:, 1], rtol=0, atol=1e-6)
    with torch.no_grad():
        scores = demographics(side, seed=0, movie_dim=2).eval().score_all(torch.arange(N_USERS))
    assert not torch.allclose(scores[:, 0], scores[:, 1])


# ------------------------------------------------------------- config and seeds


def test_config_holds_the_constructor_arguments(side) -> None:
    model = HybridModel(side, dim=5, hidden=[7, 3], dropout=0.25, rating_range=(0.5, 5.0))
    assert model.config == {
        "dim": 5,
        "hidden": (7, 3),
        "dropout": 0.25,
        "rating_range": (0.5, 5.0),
    }
    model = DemographicsModel(side, dim=2, movie_dim=0, hidden=[4], dropout=0.0)
    assert model.config == {
        "dim": 2,
        "movie_dim": 0,
        "hidden": (4,),
        "dropout": 0.0,
        "rating_range": (1.0, 5.0),
    }
    assert not hasattr(model, "user_embedding")  # no user ids in the demographics model


@pytest.mark.parametrize("kind", BUILDERS)
def test_same_seed_same_weights_different_seed_different(side, kind: str) -> None:
    build = BUILDERS[kind]
    assert same_weights(build(side, seed=7), build(side, seed=7))
    a, b = build(side, seed=7).state_dict(), build(side, seed=8).state_dict()
    assert not any(torch.equal(a[k], b[k]) for k in a if k.endswith("weight") and "embedding" in k)
    assert not torch.equal(a["mlp.0.weight"], b["mlp.0.weight"])


@pytest.mark.parametrize("kind", BUILDERS)
def test_seed_leaves_the_global_generator_alone(side, kind: str) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    BUILDERS[kind](side, seed=5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("kind", BUILDERS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": ()}, r"hidden must be one or more layer sizes >= 1, got \(\)"),
        ({"hidden": (8, 0)}, r"hidden must be one or more layer sizes >= 1, got \(8, 0\)"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        ({"dim": 0}, r"dim must be (at least 1|>= 1)"),
        ({"rating_range": (5, 1)}, r"rating_range must be \(low, high\) with low < high"),
        ({"rating_range": (3, 3)}, r"rating_range must be \(low, high\) with low < high"),
    ],
)
def test_bad_arguments_raise_value_error(side, kind: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BUILDERS[kind](side, **kwargs)


def test_negative_movie_dim_is_an_error(side) -> None:
    with pytest.raises(ValueError, match="movie_dim >= 0, got 3 and -1"):
        demographics(side, movie_dim=-1)


# ----------------------------------------------------------------------- training


@pytest.mark.parametrize("kind", BUILDERS)
def test_training_lowers_the_loss(ds, side, kind: str) -> None:
    data = Indexer.from_movielens(ds).tensors(ds.ratings)
    mean = float(ds.ratings["rating"].mean())
    model = BUILDERS[kind](side, seed=0, global_mean=mean)
    before = evaluate(model, data, observed_mse)
    history = fit(model, data, observed_mse, epochs=15, lr=0.01, batch_size=64, progress=False)
    after = evaluate(model, data, observed_mse)
    assert after < 0.8 * before
    assert history.train_loss[-1] < history.train_loss[0]
    assert not model.training
    if kind == "demographics":
        with torch.no_grad():
            scores = model.score_all(torch.arange(N_USERS))
        assert ((scores > 1.0) & (scores < 5.0)).all()
