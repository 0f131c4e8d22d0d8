"""Save a trained model with everything needed to use it again; load it back safely.

Introduced in chapter 6, for the ``mfkit`` command line; chapter 9's sequence
models (:class:`~mfkit.models.GRU4Rec`, :class:`~mfkit.models.SASRec`) and chapter
11's :class:`~mfkit.models.TwoTower` save and load the same way (``recommend
--next``, ``similar``). A saved model is one
file holding the model's class and ``config``, its weights, the ids of the users
and movies its rows stand for (with titles), the encoded side features of the
feature models, and free-form ``meta`` (what it was trained on, its scores).
It is read with ``torch.load(weights_only=True)``: plain numbers, strings and
tensors only, so loading a file cannot run code.

Examples
--------
>>> import tempfile, pathlib
>>> from mfkit.data import synthetic_movielens
>>> from mfkit.features import Indexer
>>> from mfkit.models import MatrixFactorization
>>> ds = synthetic_movielens(5, 8, 20, seed=0)
>>> indexer = Indexer.from_movielens(ds)
>>> model = MatrixFactorization(5, 8, dim=2, seed=0)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "mf.pt"
>>> saved = load_model(save_model(model, path, indexer, split="u1"))
>>> type(saved.model).__name__, saved.meta["split"], saved.indexer.n_movies
('MatrixFactorization', 'u1', 8)
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfkit import __version__
from mfkit.features import IdIndex, Indexer, SideFeatures
from mfkit.models import (
    DemographicsModel,
    GRU4Rec,
    HybridModel,
    MatrixFactorization,
    SASRec,
    SoftmaxModel,
    TwoTower,
)

__all__ = ["MODELS", "ModelFileError", "SavedModel", "load_model", "save_model"]

FORMAT = "mfkit-model"
VERSION = 1

#: The model classes that can be saved, by name.
MODELS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (
        MatrixFactorization,
        SoftmaxModel,
        HybridModel,
        DemographicsModel,
        GRU4Rec,
        SASRec,
        TwoTower,
    )
}


class ModelFileError(ValueError):
    """A saved model is missing, unreadable, or not an mfkit model."""


@dataclass
class SavedModel:
    """A loaded model (in eval mode), the :class:`~mfkit.features.Indexer` of its rows, and
    its ``meta``."""

    model: nn.Module
    indexer: Indexer
    meta: dict = field(default_factory=dict)


def _plain(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return value


def save_model(model: nn.Module, path: str | os.PathLike, indexer: Indexer, **meta) -> Path:
    """Write ``model`` (with ``indexer`` and ``meta``) to ``path``; return the path.

    The file is written next to ``path`` first and then renamed, so an
    interrupted save never leaves half a file behind.
    """
    name = type(model).__name__
    if name not in MODELS:
        raise TypeError(f"cannot save a {name}; saveable models: {sorted(MODELS)}")
    side = getattr(model, "side", None)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "mfkit": __version__,
        "class": name,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "side": side.state() if side is not None else None,
        "user_ids": indexer.users.ids.to_numpy().tolist(),
        "movie_ids": indexer.movies.ids.to_numpy().tolist(),
        "titles": [str(t) for t in indexer.titles],
        "meta": _plain(meta),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save(payload, partial)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def _fix(path: Path) -> str:
    return f"delete {path} or save a new model over it (e.g. `mfkit train`)"


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> SavedModel:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    ModelFileError
        When the file is missing, truncated, corrupt, from another program, or
        does not match its model class; the message says what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no saved model at {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise ModelFileError(
            f"{path} is not a readable mfkit model: the file is truncated, corrupt or "
            f"of another kind ({type(err).__name__}); {_fix(path)}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an mfkit model file; {_fix(path)}")
    if payload.get("version") != VERSION or payload.get("class") not in MODELS:
        raise ModelFileError(
            f"{path} was saved in format {payload.get('version')} for a "
            f"{payload.get('class')}; this mfkit reads format {VERSION} of {sorted(MODELS)}; "
            f"{_fix(path)}"
        )
    cls = MODELS[payload["class"]]
    try:
        if payload["side"] is not None:
            model = cls(SideFeatures.from_state(payload["side"]), **payload["config"])
        else:
            model = cls(**payload["config"])
        model.load_state_dict(payload["state_dict"])
        indexer = Indexer(
            IdIndex(payload["user_ids"], "user"),
            IdIndex(payload["movie_ids"], "movie"),
            np.asarray(payload["titles"], dtype=object),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            f"{path} does not hold a valid {payload['class']} ({err}); {_fix(path)}"
        ) from err
    return SavedModel(model.to(device).eval(), indexer, dict(payload.get("meta") or {}))
