"""Tests for mfkit.saving: save a model with its indexer, load it back safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mfkit.data import synthetic_movielens
from mfkit.features import Indexer, SideFeatures
from mfkit.models import (
    DemographicsModel,
    GRU4Rec,
    HybridModel,
    MatrixFactorization,
    SASRec,
    SoftmaxModel,
    TwoTower,
)
from mfkit.saving import MODELS, ModelFileError, SavedModel, load_model, save_model
from mfkit.sequences import histories

N_USERS, N_MOVIES = 30, 40


@pytest.fixture(scope="module")
def ds():
    return synthetic_movielens(N_USERS, N_MOVIES, 300, seed=3)


@pytest.fixture(scope="module")
def indexer(ds) -> Indexer:
    return Indexer.from_movielens(ds)


@pytest.fixture(scope="module")
def side(ds) -> SideFeatures:
    # Built from some users only, so that the saved vocabularies and age scaling matter.
    return SideFeatures(ds.users, ds.movies, zip_digits=2, known_users=range(1, 25))


def scramble(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic values a fresh model would not have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.add_(torch.rand(tensor.shape, generator=g) * 0.5)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(7)
    return model.eval()


def mf(side: SideFeatures) -> MatrixFactorization:
    return MatrixFactorization(
        N_USERS, N_MOVIES, dim=3, bias=True, global_mean=3.5, rating_range=(1, 5), seed=0
    )


def softmax(side: SideFeatures) -> SoftmaxModel:
    return SoftmaxModel(N_MOVIES, dim=4, hidden=(6,), pooling="sum", share_embeddings=False)


def tied_softmax(side: SideFeatures) -> SoftmaxModel:
    return SoftmaxModel(N_MOVIES, dim=4, hidden=(), share_embeddings=True)


def hybrid(side: SideFeatures) -> HybridModel:
    return HybridModel(side, dim=4, hidden=(8, 5), dropout=0.1, rating_range=(0.5, 5.0))


def demographics(side: SideFeatures) -> DemographicsModel:
    return DemographicsModel(side, dim=3, movie_dim=2, hidden=(6,), dropout=0.3)


def sasrec(side: SideFeatures) -> SASRec:
    return SASRec(N_MOVIES, dim=4, maxlen=5, blocks=2, heads=2, dropout=0.3, seed=0)


def gru4rec(side: SideFeatures) -> GRU4Rec:
    return GRU4Rec(N_MOVIES, dim=4, dropout=0.3, seed=0)


def two_tower(side: SideFeatures) -> TwoTower:
    return TwoTower(
        side, dim=4, hidden=(6,), user_ids=True, id_dropout=0.2, dropout=0.1, normalize=True
    )


BUILDERS = {
    "mf": mf,
    "softmax": softmax,
    "tied_softmax": tied_softmax,
    "hybrid": hybrid,
    "demographics": demographics,
    "sasrec": sasrec,
    "gru4rec": gru4rec,
    "two_tower": two_tower,
}


def scores(model: torch.nn.Module, ds, indexer: Indexer) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, SoftmaxModel):
            return model(indexer.bags(ds.ratings))
        if isinstance(model, SASRec | GRU4Rec):
            return model.score_next(histories(ds.ratings, indexer, maxlen=5))
        if isinstance(model, TwoTower):
            return model.score_all(torch.arange(N_USERS), indexer.bags(ds.ratings))
        return model.score_all(torch.arange(N_USERS))


@pytest.mark.parametrize("kind", BUILDERS)
def test_round_trip_gives_identical_scores(ds, indexer, side, tmp_path: Path, kind: str) -> None:
    model = scramble(BUILDERS[kind](side))
    path = save_model(model, tmp_path / "deep" / "folder" / "model.pt", indexer, split="u1", n=3)
    assert path == tmp_path / "deep" / "folder" / "model.pt" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no .partial left

    saved = load_model(path)
    assert isinstance(saved, SavedModel)
    loaded = saved.model
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    torch.testing.assert_close(
        scores(loaded, ds, indexer), scores(model, ds, indexer), rtol=0, atol=0
    )
    assert saved.meta == {"split": "u1", "n": 3}
    assert saved.indexer.users.ids.equals(indexer.users.ids)
    assert saved.indexer.movies.ids.equals(indexer.movies.ids)
    assert saved.indexer.titles.tolist() == indexer.titles.tolist()


def test_feature_models_keep_their_side_features(ds, indexer, side, tmp_path: Path) -> None:
    model = scramble(demographics(side))
    loaded = load_model(save_model(model, tmp_path / "d.pt", indexer)).model
    assert loaded.side.sizes == side.sizes
    assert loaded.side.vocab["occupation"].values == side.vocab["occupation"].values
    profile = dict(age=33, gender="F", occupation="writer", zip_code="10003")
    torch.testing.assert_close(
        loaded.score_profile(loaded.side.profile(**profile)),
        model.score_profile(side.profile(**profile)),
        rtol=0,
        atol=0,
    )


def test_two_tower_keeps_its_movie_vectors(indexer, side, tmp_path: Path) -> None:
    model = scramble(two_tower(side))
    loaded = load_model(save_model(model, tmp_path / "t.pt", indexer)).model
    assert loaded.side.sizes == side.sizes
    with torch.no_grad():
        for with_ids in (True, False):  # False: the cold-start vectors (reserved id row)
            torch.testing.assert_close(
                loaded.movie_vectors(with_ids=with_ids),
                model.movie_vectors(with_ids=with_ids),
                rtol=0,
                atol=0,
            )


def test_tied_embeddings_stay_tied(indexer, side, tmp_path: Path) -> None:
    loaded = load_model(save_model(tied_softmax(side), tmp_path / "s.pt", indexer)).model
    assert loaded.output_embedding is loaded.input_embedding


def test_saving_again_replaces_the_file(indexer, side, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_model(mf(side), path, indexer, version="first")
    second = scramble(mf(side), seed=5)
    save_model(second, path, indexer, version="second")
    saved = load_model(path)
    assert saved.meta == {"version": "second"}
    assert torch.equal(saved.model.U, second.U)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_only_mfkit_models_can_be_saved(indexer, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"cannot save a Linear; saveable models: \['Demo"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "x.pt", indexer)
    assert not list(tmp_path.iterdir())
    assert sorted(MODELS) == [
        "DemographicsModel",
        "GRU4Rec",
        "HybridModel",
        "MatrixFactorization",
        "SASRec",
        "SoftmaxModel",
        "TwoTower",
    ]


def test_meta_is_either_refused_when_saving_or_read_back(indexer, side, tmp_path: Path) -> None:
    try:
        path = save_model(mf(side), tmp_path / "m.pt", indexer, rmse=np.float64(0.875))
    except (TypeError, ValueError):
        return
    assert load_model(path).meta == {"rmse": 0.875}


def test_a_failed_save_leaves_nothing_behind(indexer, side, tmp_path: Path) -> None:
    path = save_model(mf(side), tmp_path / "m.pt", indexer, version="good")
    with pytest.raises(Exception):  # noqa: B017 - whatever pickling raises
        save_model(mf(side), path, indexer, callback=lambda: None)
    assert load_model(path).meta == {"version": "good"}  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


# ---------------------------------------------------------------- broken files


def assert_says_what_to_do(err: ModelFileError, path: Path) -> None:
    message = str(err)
    assert isinstance(err, ValueError)
    assert str(path) in message
    assert f"delete {path} or save a new model over it" in message
    assert "mfkit train" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.pt"
    with pytest.raises(ModelFileError, match=f"no saved model at {path}"):
        load_model(path)
    with pytest.raises(ModelFileError, match="no saved model at"):
        load_model(tmp_path)  # a folder is not a model file either


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage, not a model\n", bytes(range(256)) * 10],
    ids=["empty", "text", "binary"],
)
def test_unreadable_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="is not a readable mfkit model") as info:
        load_model(path)
    assert_says_what_to_do(info.value, path)


def test_truncated_file(indexer, side, tmp_path: Path) -> None:
    path = save_model(hybrid(side), tmp_path / "h.pt", indexer)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(ModelFileError, match="truncated, corrupt or of another kind") as info:
        load_model(path)
    assert_says_what_to_do(info.value, path)


@pytest.mark.parametrize("payload", [{"a": 1}, torch.zeros(3), [1, 2]], ids=str)
def test_torch_file_that_is_not_an_mfkit_model(tmp_path: Path, payload) -> None:
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="is not an mfkit model file") as info:
        load_model(path)
    assert_says_what_to_do(info.value, path)


def edited(path: Path, edit) -> Path:
    """Rewrite the saved file at ``path`` after ``edit(payload)``."""
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("version", 99, "saved in format 99 for a MatrixFactorization; this mfkit reads format 1"),
        ("class", "FancyModel", "saved in format 1 for a FancyModel"),
    ],
)
def test_other_version_or_class(indexer, side, tmp_path: Path, key, value, message) -> None:
    path = save_model(mf(side), tmp_path / "m.pt", indexer)
    edited(path, lambda payload: payload.__setitem__(key, value))
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert_says_what_to_do(info.value, path)


def wrong_shape(payload: dict) -> None:
    payload["state_dict"]["user_factors.weight"] = torch.zeros(N_USERS + 1, 3)


def missing_weight(payload: dict) -> None:
    del payload["state_dict"]["movie_bias.weight"]


def unknown_setting(payload: dict) -> None:
    payload["config"]["colour"] = "blue"


def duplicate_ids(payload: dict) -> None:
    payload["user_ids"][1] = payload["user_ids"][0]


@pytest.mark.parametrize("edit", [wrong_shape, missing_weight, unknown_setting, duplicate_ids])
def test_file_that_does_not_hold_a_valid_model(indexer, side, tmp_path: Path, edit) -> None:
    path = edited(save_model(mf(side), tmp_path / "m.pt", indexer), edit)
    with pytest.raises(ModelFileError, match="does not hold a valid MatrixFactorization") as info:
        load_model(path)
    assert_says_what_to_do(info.value, path)


def test_feature_model_with_broken_side_features(indexer, side, tmp_path: Path) -> None:
    def drop_vocabulary(payload: dict) -> None:
        del payload["side"]["vocab"]

    path = edited(save_model(hybrid(side), tmp_path / "h.pt", indexer), drop_vocabulary)
    with pytest.raises(ModelFileError, match="does not hold a valid HybridModel") as info:
        load_model(path)
    assert_says_what_to_do(info.value, path)
