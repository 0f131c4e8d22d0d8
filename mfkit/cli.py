"""The ``mfkit`` command line.

Chapter 1 adds ``mfkit data``; chapter 6 adds recommendations from the feature
models: ``recommend``, ``evaluate``, ``train`` and the interactive ``menu``;
chapter 9 adds ``recommend --next``, the movies to watch next by a sequence model;
chapter 11 adds ``similar``, the movies nearest to a movie by a two-tower model's
movie tower, found through an approximate nearest-neighbour (HNSW) index.

Four models serve the commands: the *hybrid* model (user and movie ids plus side
features) for users who are in the data, the *demographics* model for a new
user known only by age, gender, occupation and zip code, the *sequence*
model (chapter 9's SASRec, trained on every rating as an interaction, in time
order) for what an existing user will watch next after their latest movies, and
the *two-tower* model (:class:`~mfkit.models.TwoTower`, trained on every rating as an interaction
with the in-batch softmax and the logQ correction) whose movie vectors ``similar``
searches. Each is trained once, saved under ``$MFKIT_CACHE_DIR/models`` (default:
the OS cache folder) and loaded by later commands; a command that needs a model
that is not saved yet trains it first, with a progress bar. ``mfkit train`` trains
the two rating models (``--model both``, the default), one model, or all four
(``--model all``).

Examples
--------
.. code-block:: console

    $ mfkit data                               # where ML-100K is, checksums, sizes
    $ mfkit train                              # train and save both models (~30 s)
    $ mfkit recommend --user 265 -k 5          # an existing user
    $ mfkit recommend --age 24 --gender M --occupation entertainment --zip 10003 -k 5
    $ mfkit recommend --user 265 --json        # for scripts
    $ mfkit recommend --user 265 --next -k 5   # what user 265 may watch next (sequence model)
    $ mfkit train --model sequence             # train and save the sequence model
    $ mfkit similar --movie 50 -k 5            # the movies nearest to Star Wars (two-tower)
    $ mfkit similar --movie "star wars" --json # a piece of a title works too
    $ mfkit train --model two-tower            # train and save the two-tower model
    $ mfkit train --model all                  # all four models
    $ mfkit evaluate --split u1                # RMSE and MAE on the u1 test set
    $ mfkit menu                               # the interactive menu
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mfkit import __version__, data
from mfkit.ann import build_index
from mfkit.features import Indexer, SideFeatures, UnknownCategoryError, UnknownIdError
from mfkit.losses import implicit_bce, next_item_ce, observed_mse, two_tower_loss
from mfkit.metrics import mae, rmse
from mfkit.models import DemographicsModel, HybridModel, MatrixFactorization, SASRec, TwoTower
from mfkit.retrieval import (
    MovieNotFoundError,
    find_movie,
    recommend,
    recommend_new_user,
    top_k_unseen,
)
from mfkit.sampling import NegativeSampler, implicit
from mfkit.saving import ModelFileError, SavedModel, load_model, save_model
from mfkit.sequences import histories, next_item_examples
from mfkit.splits import MissingColumnsError, random_split
from mfkit.tables import Columns, recommendations
from mfkit.train import fit, rating_rmse

#: How the command line trains each kind of model. The rating models use the settings
#: chosen in chapter 6; the sequence model is chapter 9's SASRec for a fixed number of
#: epochs (no validation); the two-tower model (for ``similar``) also trains for a fixed
#: number of epochs, with the in-batch softmax and its logQ correction, settings from a
#: validation study on chapter 7's split (full-ranking validation NDCG@10 0.082, against
#: 0.022 without the correction).
RECIPES: dict[str, dict] = {
    "hybrid": {
        "model": {"dim": 128, "hidden": (128, 64, 32), "dropout": 0.2},
        "fit": {"lr": 1e-3, "batch_size": 256, "epochs": 10, "weight_decay": 0.0},
    },
    "demographics": {
        "model": {"dim": 16, "movie_dim": 32, "hidden": (64, 32), "dropout": 0.2},
        "fit": {"lr": 3e-3, "batch_size": 256, "epochs": 10, "weight_decay": 1e-4},
    },
    "sequence": {
        "model": {"dim": 64, "maxlen": 50, "blocks": 2, "heads": 1, "dropout": 0.2},
        "fit": {"lr": 1e-2, "batch_size": 128, "epochs": 12},
    },
    "two-tower": {
        "model": {"dim": 64, "hidden": (128,), "normalize": True},
        "loss": {"temperature": 0.1, "mask_duplicates": True},
        "fit": {"lr": 3e-3, "batch_size": 1024, "epochs": 7},
    },
}
#: The models that predict ratings, used by ``recommend --user``/``--age ...``,
#: ``evaluate`` and ``train --model both``.
RATING_KINDS = ("hybrid", "demographics")
#: Every kind of saved model (``train --model all``).
KINDS = (*RATING_KINDS, "sequence", "two-tower")
#: The models trained for a fixed number of epochs, reported by their final training loss.
FIXED_EPOCH_KINDS = ("sequence", "two-tower")
#: What ``train --model`` accepts beyond one kind: ``both`` (the two rating models,
#: as before the other models existed) and ``all``.
TRAIN_GROUPS = {"both": RATING_KINDS, "all": KINDS}
SPLIT_CHOICES = ("all", *data.SPLITS)

# ----------------------------------------------------------------------- models


def model_path(kind: str, variant: str = "ml-100k", split: str = "all") -> Path:
    """Where ``mfkit train`` saves the ``kind`` model trained on ``split`` of ``variant``."""
    return data._cache_dir() / "models" / f"{kind}-{variant}-{split}.pt"


def _training_ratings(ml: data.MovieLens, split: str) -> pd.DataFrame:
    if split == "all":
        return ml.ratings
    return data.load_split(split, ml.name, progress=False)[0]


def _side_features(ml: data.MovieLens, ratings: pd.DataFrame) -> SideFeatures:
    """Side features whose vocabularies come from the users with training ratings."""
    return SideFeatures.from_movielens(ml, known_users=ratings["user_id"].unique())


def train_model(
    kind: str,
    ml: data.MovieLens,
    split: str = "all",
    *,
    epochs: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[Path, dict]:
    """Train the ``kind`` model on ``split`` of ``ml`` (``"all"``: every rating); save it.

    For the rating models 5% of the training ratings are held out to stop
    training early (patience 2) and keep the best epoch; the sequence and
    two-tower models train for their recipe's epochs (see
    :func:`train_sequence_model` and :func:`train_two_tower_model`). Returns the
    saved file's path and its ``meta``.
    """
    if kind == "sequence":
        return train_sequence_model(ml, split, epochs=epochs, progress=progress, seed=seed)
    if kind == "two-tower":
        return train_two_tower_model(ml, split, epochs=epochs, progress=progress, seed=seed)
    recipe = RECIPES[kind]
    indexer = Indexer.from_movielens(ml)
    ratings = _training_ratings(ml, split)
    fit_part, valid = random_split(ratings, 0.05, seed=seed)
    side = _side_features(ml, ratings)
    cls = HybridModel if kind == "hybrid" else DemographicsModel
    mean = float(fit_part["rating"].mean())
    model = cls(side, global_mean=mean, seed=seed, **recipe["model"])
    settings = _fit_settings(kind, epochs)
    history = fit(
        model,
        indexer.tensors(fit_part),
        observed_mse,
        valid=indexer.tensors(valid),
        metric=rating_rmse,
        patience=2,
        seed=seed,
        progress=progress,
        **settings,
    )
    scores = {"best_epoch": history.best_epoch, "valid_rmse": min(history.valid_metric)}
    return _save_trained(kind, model, history, ml, split, indexer, **scores)


def _save_trained(kind, model, history, ml, split, indexer, **scores) -> tuple[Path, dict]:
    """Save a trained ``kind`` model where :func:`get_model` looks; return its path and meta."""
    meta = {
        "kind": kind,
        "variant": ml.name,
        "split": split,
        "epochs": history.epochs,
        **scores,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return save_model(model, model_path(kind, ml.name, split), indexer, **meta), meta


def train_sequence_model(
    ml: data.MovieLens,
    split: str = "all",
    *,
    epochs: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[Path, dict]:
    """Train chapter 9's SASRec on ``split`` of ``ml``; save it as the ``sequence`` model.

    Every rating is an interaction (:func:`mfkit.sampling.implicit`); each user's
    latest ``maxlen + 1`` interactions, oldest first, give ``maxlen`` next-movie
    examples, trained with the full softmax cross-entropy
    (:func:`mfkit.losses.next_item_ce`) for the recipe's epochs (``epochs``
    overrides them). Returns the saved file's path and its ``meta``.
    """
    recipe = RECIPES["sequence"]
    indexer = Indexer.from_movielens(ml)
    interactions = implicit(_training_ratings(ml, split))
    model = SASRec(indexer.n_movies, seed=seed, **recipe["model"])
    seqs = histories(interactions, indexer, maxlen=model.config["maxlen"] + 1)
    inputs, targets = next_item_examples(seqs)
    useful = (targets != model.pad).any(dim=1)  # users with at least two interactions
    if not useful.any():
        raise ValueError(
            f"no user of {ml.name} ({split} ratings) has two ratings: nothing to learn "
            "the next movie from"
        )
    data = (inputs[useful], targets[useful])
    return _fit_fixed(
        "sequence", model, data, next_item_ce, ml, split, indexer, epochs, progress, seed
    )


def train_two_tower_model(
    ml: data.MovieLens,
    split: str = "all",
    *,
    epochs: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[Path, dict]:
    """Train the two-tower model (:class:`~mfkit.models.TwoTower`) on ``split`` of ``ml``.

    Every rating is an interaction (:func:`mfkit.sampling.implicit`); each
    (user, movie) pair is a positive of the in-batch softmax
    (:func:`mfkit.losses.two_tower_loss`, the user's bag without that movie as the
    user tower's input), with the logQ correction by each movie's number of pairs,
    the recipe's temperature and duplicate movies of a batch masked, for the
    recipe's epochs (``epochs`` overrides them). Returns the saved file's path and
    its ``meta``.
    """
    recipe = RECIPES["two-tower"]
    indexer = Indexer.from_movielens(ml)
    ratings = _training_ratings(ml, split)
    interactions = implicit(ratings)
    users, movies = indexer.pairs(interactions)
    counts = torch.bincount(movies, minlength=indexer.n_movies).float().clamp(min=1)
    loss = functools.partial(
        two_tower_loss, bags=indexer.bags(interactions), counts=counts, **recipe["loss"]
    )
    model = TwoTower(_side_features(ml, ratings), seed=seed, **recipe["model"])
    return _fit_fixed(
        "two-tower", model, (users, movies), loss, ml, split, indexer, epochs, progress, seed
    )


def _fit_fixed(kind, model, data, loss, ml, split, indexer, epochs, progress, seed):
    """Train a ``FIXED_EPOCH_KINDS`` model for its recipe's epochs (or ``epochs``) and
    save it, with its final training loss."""
    history = fit(model, data, loss, seed=seed, progress=progress, **_fit_settings(kind, epochs))
    final = {"train_loss": history.train_loss[-1]}
    return _save_trained(kind, model, history, ml, split, indexer, **final)


def _fit_settings(kind: str, epochs: int | None) -> dict:
    """The recipe's ``fit`` settings, with ``epochs`` in place of its epochs when given."""
    return {**RECIPES[kind]["fit"], **({"epochs": epochs} if epochs else {})}


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def get_model(
    kind: str, ml: data.MovieLens, split: str = "all", *, progress: bool = True
) -> SavedModel:
    """Load the saved ``kind`` model of ``ml``, training and saving it first if there is none."""
    variant = ml.name
    path = model_path(kind, variant, split)
    if not path.exists():
        _note(f"No saved {kind} model for {variant} ({split} ratings) yet; training one...")
        train_model(kind, ml, split, progress=progress)
        _note(f"Saved it to {path}")
    saved = load_model(path)
    current = Indexer.from_movielens(ml)
    if not (
        saved.indexer.users.ids.equals(current.users.ids)
        and saved.indexer.movies.ids.equals(current.movies.ids)
    ):
        raise ModelFileError(
            f"{path} was trained on other data ({len(saved.indexer.users)} users, "
            f"{len(saved.indexer.movies)} movies); retrain it with "
            f"`mfkit train --model {kind} --split {split} --variant {variant}`"
        )
    return saved


# ----------------------------------------------------------------- your own data


def read_interactions(path: str | os.PathLike, columns: Columns) -> pd.DataFrame:
    """A CSV file of interactions, one row each, with mfkit's column names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no interaction file at {path}")
    return columns.standardize(pd.read_csv(path))


def own_model_path(path: str | os.PathLike, columns: Columns) -> Path:
    """Where ``mfkit train --interactions`` saves the model of this file and these columns."""
    digest = hashlib.sha256(Path(path).read_bytes() + repr(columns).encode()).hexdigest()
    return data._cache_dir() / "models" / f"own-{Path(path).stem}-{digest[:12]}.pt"


def train_own_model(
    path: str | os.PathLike,
    columns: Columns,
    *,
    epochs: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[Path, dict]:
    """Matrix factorization of an interaction file; saved where :func:`get_own_model` looks.

    With a rating column: biased MF on the observed MSE (32 dimensions, the batch L2
    penalty 0.05), stopped early on 5% of the ratings held out (at most ``epochs``,
    default 20). Without: chapter 7's MF with a binary cross-entropy, four fresh
    negatives per interaction each epoch, for ``epochs`` (default 10).
    """
    table = read_interactions(path, columns)
    indexer = Indexer.from_interactions(table)
    shape = dict(n_users=indexer.n_users, n_movies=indexer.n_movies, dim=32, init_std=0.1)
    options = dict(lr=0.01, seed=seed, progress=progress)
    if columns.rating:
        fit_part, valid = random_split(table, 0.05, seed=seed)
        mean = float(fit_part["rating"].mean())
        model = MatrixFactorization(**shape, bias=True, global_mean=mean, seed=seed)
        loss = functools.partial(observed_mse, l2=0.05)
        valid_data = indexer.tensors(valid)
        stop = dict(valid=valid_data, metric=rating_rmse, patience=2, epochs=epochs or 20)
        history = fit(model, indexer.tensors(fit_part), loss, **stop, **options)
        scores = {"best_epoch": history.best_epoch, "valid_rmse": min(history.valid_metric)}
    else:
        model = MatrixFactorization(**shape, seed=seed)
        ids = dict(users=indexer.users.ids, items=indexer.movies.ids, seed=seed)
        sampler = NegativeSampler(table, indexer.n_movies, **ids)
        history = fit(
            model,
            lambda epoch: sampler.training_data(ratio=4),  # fresh negatives every epoch
            implicit_bce,
            epochs=epochs or 10,
            **options,
        )
        scores = {"train_loss": history.train_loss[-1]}
    meta = {
        "kind": "own",
        "file": str(Path(path).resolve()),
        "columns": asdict(columns),
        "epochs": history.epochs,
        **scores,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return save_model(model, own_model_path(path, columns), indexer, **meta), meta


def get_own_model(path, columns: Columns, *, progress: bool = True) -> SavedModel:
    """The saved model of an interaction file, training and saving it first if there is none."""
    saved_at = own_model_path(path, columns)
    if not saved_at.exists():
        _note(f"No saved model of {path} yet; training one...")
        train_own_model(path, columns, progress=progress)
        _note(f"Saved it to {saved_at}")
    return load_model(saved_at)


def _own_columns(args: argparse.Namespace) -> Columns:
    return Columns(args.user_col, args.item_col, args.rating_col, args.time_col)


def _own_recommendations(args: argparse.Namespace) -> tuple[str, pd.DataFrame]:
    columns = _own_columns(args)
    table = read_interactions(args.interactions, columns)
    known = Indexer.from_interactions(table).users
    try:
        user = args.user if known.ids.dtype == object else known.ids.dtype.type(args.user)
    except ValueError:
        raise _UsageError(f"{args.user_col} holds numbers, got --user {args.user}") from None
    known.index([user])  # an unknown id fails before any training
    saved = get_own_model(args.interactions, columns, progress=not args.quiet)
    top = recommendations(saved.model, saved.indexer, table, users=[user], k=args.k)
    frame = pd.DataFrame(
        {
            "rank": top["rank"].to_numpy(),
            args.item_col: top["movie_id"].to_numpy(),
            "score": top["score"].round(4).to_numpy(),
        }
    )
    n_seen = int((table["user_id"] == user).sum())
    heading = (
        f"Top {args.k} items for {args.user_col} {user} (who has {n_seen} interactions), "
        f"matrix factorization of {Path(args.interactions).name}:"
    )
    return heading, frame


# ----------------------------------------------------------------------- output


#: Decimals of the score column of each kind of table (default 2: predicted ratings).
_DIGITS = {"probability": 4, "similarity": 3}


def _table(frame: pd.DataFrame) -> str:
    digits = next((d for column, d in _DIGITS.items() if column in frame.columns), 2)
    return frame.to_string(index=False, float_format=lambda x: f"{x:.{digits}f}")


def _recommendations(top: pd.DataFrame, saved: SavedModel) -> pd.DataFrame:
    low, high = saved.model.rating_range
    return pd.DataFrame(
        {
            "rank": range(1, len(top) + 1),
            "movie_id": top["movie_id"].to_numpy(),
            "title": top["title"].to_numpy(),
            "predicted": top["score"].astype(float).clip(low, high).round(2).to_numpy(),
        }
    )


def _emit(heading: str, frame: pd.DataFrame, as_json: bool, **extra) -> None:
    if as_json:
        print(json.dumps({**extra, "results": frame.to_dict(orient="records")}, default=str))
    else:
        print(heading)
        print(_table(frame))


# --------------------------------------------------------------------- commands


def _cmd_data(args: argparse.Namespace) -> None:
    names = data.verify(args.variant, progress=not args.quiet)
    folder = data.data_path(args.variant, progress=False)
    source = data.DATA_DIR_ENV if os.environ.get(data.DATA_DIR_ENV) else "download cache"
    ml = data.load_movielens(args.variant, progress=False)
    n_users, n_movies = ml.ratings["user_id"].nunique(), ml.ratings["movie_id"].nunique()
    density = len(ml.ratings) / (n_users * n_movies)
    print(f"{ml.name} in {folder} (from {source})")
    print(f"checksums: {len(names)} files OK")
    print(
        f"{len(ml.ratings):,} ratings by {len(ml.users):,} users of {len(ml.movies):,} movies; "
        f"{density:.2%} of the user x movie matrix is observed"
    )


def _cmd_train(args: argparse.Namespace) -> None:
    if args.interactions:
        if args.model != "both" or args.split != "all":
            raise _UsageError("--interactions trains one model of that file: drop --model/--split")
        _note(f"Training a matrix factorization of {args.interactions}...")
        path, meta = train_own_model(
            args.interactions, _own_columns(args), epochs=args.epochs, progress=not args.quiet
        )
        if "valid_rmse" in meta:
            score = f"best validation RMSE {meta['valid_rmse']:.4f} (epoch {meta['best_epoch']})"
        else:
            score = f"final training loss {meta['train_loss']:.4f}"
        print(f"{meta['epochs']} epochs, {score}; saved to {path}")
        return
    for kind in TRAIN_GROUPS.get(args.model, (args.model,)):
        _note(f"Training the {kind} model on {args.variant} ({args.split} ratings)...")
        path, meta = train_model(
            kind, _dataset(args), args.split, epochs=args.epochs, progress=not args.quiet
        )
        if kind in FIXED_EPOCH_KINDS:
            score = f"final training loss {meta['train_loss']:.4f}"
        else:
            score = f"best validation RMSE {meta['valid_rmse']:.4f} (epoch {meta['best_epoch']})"
        print(f"{kind}: {meta['epochs']} epochs, {score}; saved to {path}")


def _candidates(ratings: pd.DataFrame, min_ratings: int) -> list[int]:
    """Movies with at least ``min_ratings`` ratings: their predicted rating is trustworthy."""
    counts = ratings["movie_id"].value_counts()
    return counts.index[counts >= min_ratings].tolist()


def _dataset(args: argparse.Namespace) -> data.MovieLens:
    """The command's dataset, loaded (and checked) once per command."""
    if getattr(args, "dataset", None) is None:
        args.dataset = data.load_movielens(args.variant, progress=not args.quiet)
    return args.dataset


def _for_user(args: argparse.Namespace, user_id: int) -> tuple[str, pd.DataFrame]:
    ml = _dataset(args)
    Indexer.from_movielens(ml).users.index(user_id)  # an unknown id fails before any training
    saved = get_model("hybrid", ml, "all", progress=not args.quiet)
    k, allowed = args.k, _candidates(ml.ratings, args.min_ratings)
    top = recommend(saved.model, user_id, saved.indexer, seen=ml.ratings, k=k, candidates=allowed)
    n_seen = int((ml.ratings["user_id"] == user_id).sum())
    heading = f"Top {k} unseen movies for user {user_id} (who rated {n_seen}), hybrid model:"
    return heading, _recommendations(top, saved)


def _next_for_user(args: argparse.Namespace, user_id: int) -> tuple[str, pd.DataFrame, dict]:
    """The movies ``user_id`` may watch next by the sequence model, and their latest movie."""
    ml = _dataset(args)
    Indexer.from_movielens(ml).users.index(user_id)  # an unknown id fails before any training
    mine = implicit(ml.ratings[ml.ratings["user_id"] == user_id])
    if mine.empty:
        raise ValueError(
            f"user {user_id} has no ratings in {ml.name}: the sequence model needs a "
            "history; try `mfkit recommend --user` without --next"
        )
    saved = get_model("sequence", ml, "all", progress=not args.quiet)
    model, indexer = saved.model, saved.indexer
    row = int(indexer.users.index(user_id)[0])
    seq = histories(mine, indexer, maxlen=model.config["maxlen"])[row : row + 1]
    probabilities = model.score_next(seq).softmax(dim=-1)
    excluded = torch.ones_like(probabilities, dtype=torch.bool)
    allowed = np.asarray(_candidates(ml.ratings, args.min_ratings), dtype=np.int64)
    excluded[0, indexer.movies.index(allowed)] = False
    excluded[0, indexer.movies.index(mine["movie_id"].to_numpy())] = True
    values, cols = top_k_unseen(probabilities, excluded, args.k)
    keep = torch.isfinite(values[0])
    cols = cols[0][keep].numpy()
    frame = pd.DataFrame(
        {
            "rank": range(1, len(cols) + 1),
            "movie_id": indexer.movies.ids_of(cols),
            "title": indexer.titles[cols],
            "probability": values[0][keep].double().numpy().round(4),
        }
    )
    latest_row = int(seq[0, (seq[0] != model.pad).sum() - 1])
    latest = {
        "movie_id": int(indexer.movies.ids_of([latest_row])[0]),
        "title": str(indexer.titles[latest_row]),
    }
    heading = (
        f"Top {args.k} movies to watch next for user {user_id} "
        f"(latest: {latest['title']}), sequence model:"
    )
    return heading, frame, latest


def _for_profile(args: argparse.Namespace, profile: dict) -> tuple[str, pd.DataFrame]:
    ml = _dataset(args)
    _side_features(ml, ml.ratings).profile(**profile)  # bad answers fail before training
    saved = get_model("demographics", ml, "all", progress=not args.quiet)
    k, allowed = args.k, _candidates(ml.ratings, args.min_ratings)
    top = recommend_new_user(saved.model, saved.indexer, k=k, candidates=allowed, **profile)
    who = f"{profile['age']}-year-old {profile['gender']} {profile['occupation']}"
    zip_code = f", zip {profile['zip_code']}" if profile["zip_code"] else ""
    heading = f"Top {k} movies for a new user ({who}{zip_code}), demographics model:"
    return heading, _recommendations(top, saved)


def _cmd_recommend(args: argparse.Namespace) -> None:
    answers = {"age": args.age, "gender": args.gender, "occupation": args.occupation}
    if args.interactions:
        others = [f"--{name}" for name, value in answers.items() if value is not None]
        others += ["--zip"] * bool(args.zip) + ["--next"] * args.next
        if others or args.user is None:
            raise _UsageError(
                "--interactions recommends for one --user ID of that file"
                + (f"; drop {', '.join(others)}" if others else "")
            )
        heading, frame = _own_recommendations(args)
        _emit(heading, frame, args.json, user=args.user, model="own")
        return
    if args.user is not None:
        try:
            args.user = int(args.user)
        except ValueError:
            raise _UsageError(f"MovieLens user ids are numbers, got --user {args.user}") from None
    if args.next:
        given = [f"--{name}" for name, value in answers.items() if value is not None]
        if given or args.zip:
            raise _UsageError(
                f"--next cannot be combined with {', '.join(given or ['--zip'])}: it "
                "recommends for an existing user (--user ID) from their history"
            )
        if args.user is None:
            raise _UsageError("--next needs --user ID (an existing user with a history)")
        heading, frame, latest = _next_for_user(args, args.user)
        _emit(heading, frame, args.json, user=args.user, model="sequence", latest=latest)
        return
    if args.user is not None:
        given = [f"--{name}" for name, value in answers.items() if value is not None]
        if given or args.zip:
            raise _UsageError(f"--user cannot be combined with {', '.join(given or ['--zip'])}")
        heading, frame = _for_user(args, args.user)
        _emit(heading, frame, args.json, user=args.user, model="hybrid")
        return
    missing = [f"--{name}" for name, value in answers.items() if value is None]
    if missing:
        raise _UsageError(
            "give --user ID for an existing user, or --age, --gender and --occupation "
            f"(and optionally --zip) for a new one; missing {', '.join(missing)}"
        )
    profile = {**answers, "zip_code": args.zip or ""}
    heading, frame = _for_profile(args, profile)
    _emit(heading, frame, args.json, profile=profile, model="demographics")


def _movie_arg(text: str) -> int | str:
    """``--movie``'s value: a movie id if it is a whole number, else a piece of a title."""
    try:
        return int(text)
    except ValueError:
        return text


#: The HNSW candidate list of ``similar``'s searches (faiss's efSearch; at least the
#: number of neighbours asked for). The catalogue is small, so a long list costs little.
SIMILAR_EF_SEARCH = 256


def _similar_movies(args: argparse.Namespace) -> tuple[str, pd.DataFrame, dict]:
    """The movies nearest to ``args.movie`` by the two-tower movie tower, and the movie."""
    ml = _dataset(args)
    # An unknown id (or a title that matches no movie, or several) fails before training.
    query = _movie_arg(args.movie)
    if isinstance(query, int):
        Indexer.from_movielens(ml).movies.index(query)  # the error recommend gives for users
        movie_id = query
    else:
        movie_id = find_movie(Indexer.from_movielens(ml), query)
    saved = get_model("two-tower", ml, "all", progress=not args.quiet)
    model, indexer = saved.model.eval(), saved.indexer
    with torch.no_grad():
        vectors = model.movie_vectors()
    index = build_index(vectors, "hnsw", metric="cosine")
    row = int(indexer.movies.index(movie_id)[0])
    allowed = np.zeros(indexer.n_movies, dtype=bool)
    candidates = np.asarray(_candidates(ml.ratings, args.min_ratings), dtype=np.int64)
    allowed[indexer.movies.index(candidates)] = True
    allowed[row] = False  # never the movie itself
    n = min(args.k + 1, index.ntotal)
    while True:  # ask for more neighbours until k of them are allowed, or for all of them
        scores, rows = index.search(vectors[row : row + 1], n, ef_search=SIMILAR_EF_SEARCH)
        scores, rows = scores[0].numpy(), rows[0].numpy()
        keep = rows >= 0
        keep[keep] = allowed[rows[keep]]
        if keep.sum() >= args.k or n == index.ntotal:
            break
        n = min(2 * n, index.ntotal)
    scores, rows = scores[keep][: args.k], rows[keep][: args.k]
    frame = pd.DataFrame(
        {
            "rank": range(1, len(rows) + 1),
            "movie_id": indexer.movies.ids_of(rows),
            "title": indexer.titles[rows],
            "similarity": scores.astype(np.float64).round(3),
        }
    )
    movie = {"movie_id": movie_id, "title": str(indexer.titles[row])}
    heading = (
        f"Top {args.k} movies most similar to {movie['title']} (movie {movie_id}), "
        "two-tower movie tower, HNSW index:"
    )
    return heading, frame, movie


def _cmd_similar(args: argparse.Namespace) -> None:
    if not args.movie.strip():
        raise _UsageError("--movie needs a movie id or a piece of a title")
    heading, frame, movie = _similar_movies(args)
    _emit(heading, frame, args.json, movie=movie, model="two-tower", index="hnsw")


def evaluation_table(ml: data.MovieLens, split: str, *, progress: bool = True) -> pd.DataFrame:
    """RMSE and MAE of both rating models (trained on ``split``'s base) and the mean rating."""
    train, test = data.load_split(split, ml.name, progress=False)
    rows = []
    for kind in RATING_KINDS:
        saved = get_model(kind, ml, split, progress=progress)
        users, movies, ratings = saved.indexer.tensors(test)
        predicted = saved.model.predict(users, movies).numpy()
        rows.append(
            {"model": kind, "RMSE": rmse(ratings, predicted), "MAE": mae(ratings, predicted)}
        )
    mean = float(train["rating"].mean())
    constant = [mean] * len(test)
    rows.append(
        {
            "model": "mean rating",
            "RMSE": rmse(test["rating"], constant),
            "MAE": mae(test["rating"], constant),
        }
    )
    table = pd.DataFrame(rows)
    table["test ratings"] = len(test)
    return table


def _cmd_evaluate(args: argparse.Namespace) -> None:
    table = evaluation_table(_dataset(args), args.split, progress=not args.quiet)
    if args.json:
        print(json.dumps({"split": args.split, "results": table.to_dict(orient="records")}))
    else:
        print(f"Test ratings of {args.variant} {args.split} (models trained on {args.split}.base):")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


# ------------------------------------------------------------------------- menu

MENU = """
mfkit - movie recommendations
  1  enter user data manually (a new user)
  2  existing user id
  3  RMSE on the test set (u1)
  4  exit"""


class _EndOfInput(Exception):
    """stdin ran out: leave the menu quietly."""


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        print()
        raise _EndOfInput from None


def _ask_until(prompt: str, parse: Callable[[str], object]):
    """Ask until ``parse`` accepts the answer; it raises ValueError with the reason."""
    while True:
        try:
            return parse(_ask(prompt))
        except ValueError as err:
            print(f"  {err}")


def _whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"please type a whole number for the {what}, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"the {what} must be from {low} to {high}")
        return value

    return parse


def _one_of(values: Sequence[str], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text in values:
            return text
        raise ValueError(f"unknown {what} {text!r}; choose one of: {', '.join(values)}")

    return parse


def _menu_new_user(args: argparse.Namespace) -> None:
    saved = get_model("demographics", _dataset(args), "all", progress=not args.quiet)
    vocab = saved.model.side.vocab
    profile = {
        "age": _ask_until("age (years): ", _whole_number(1, 120, "age")),
        "gender": _ask_until(
            f"gender ({'/'.join(vocab['gender'].values)}): ",
            _one_of(vocab["gender"].values, "gender"),
        ),
        "occupation": _ask_until("occupation: ", _one_of(vocab["occupation"].values, "occupation")),
        "zip_code": _ask("zip code (optional): "),
    }
    heading, frame = _for_profile(args, profile)
    print(heading)
    print(_table(frame))


def _menu_existing_user(args: argparse.Namespace) -> None:
    ids = _dataset(args).users["user_id"]
    low, high = int(ids.min()), int(ids.max())
    user = _ask_until(f"user id ({low}-{high}): ", _whole_number(low, high, "user id"))
    heading, frame = _for_user(args, user)
    print(heading)
    print(_table(frame))


def _menu_rmse(args: argparse.Namespace) -> None:
    _cmd_evaluate(argparse.Namespace(**{**vars(args), "split": "u1", "json": False}))


def _cmd_menu(args: argparse.Namespace) -> None:
    actions = {"1": _menu_new_user, "2": _menu_existing_user, "3": _menu_rmse}
    try:
        while True:
            print(MENU)
            choice = _ask("choose 1-4: ")
            if choice in ("4", "q", "quit", "exit"):
                break
            if choice not in actions:
                print(f"  please type 1, 2, 3 or 4, got {choice!r}")
                continue
            try:
                actions[choice](args)
            except (UnknownIdError, UnknownCategoryError) as err:
                print(f"  {err}")
    except _EndOfInput:
        pass
    print("bye")


# ----------------------------------------------------------------------- parser


class _UsageError(ValueError):
    """Arguments that parse but do not make sense together."""


def _add_k(parser: argparse.ArgumentParser, *, min_ratings_help: str | None = None) -> None:
    parser.add_argument("-k", type=int, default=10, help="how many movies (default 10)")
    parser.add_argument(
        "--min-ratings",
        type=int,
        default=20,
        help=min_ratings_help
        or "recommend only movies with at least this many ratings (default 20): a rating "
        "model's favourites are otherwise obscure movies with two or three 5-star ratings",
    )


def _add_common(parser: argparse.ArgumentParser, *, json_output: bool = False) -> None:
    parser.set_defaults(parser=parser)
    parser.add_argument("--variant", choices=sorted(data.VARIANTS), default="ml-100k")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_own_data(parser: argparse.ArgumentParser) -> None:
    own = parser.add_argument_group(
        "your own data",
        "a CSV file of interactions instead of MovieLens: one row per interaction, its "
        "columns named below (ids may be numbers or text); a matrix factorization of it, "
        "on the ratings if --rating-col is given, else on the interactions alone "
        "(--min-ratings applies to MovieLens only)",
    )
    own.add_argument("--interactions", metavar="CSV", help="the interaction file")
    own.add_argument("--user-col", default="user_id", help="its user column (default user_id)")
    own.add_argument("--item-col", default="item_id", help="its item column (default item_id)")
    own.add_argument("--rating-col", help="its rating column, if it has ratings")
    own.add_argument("--time-col", help="its time column (Unix seconds), if it has one")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mfkit`` command."""
    parser = argparse.ArgumentParser(
        prog="mfkit",
        description="Recommender systems with PyTorch on MovieLens: the course's toolkit.",
        epilog=f"Data comes from ${data.DATA_DIR_ENV} if set, else it is downloaded and "
        f"checked once. Models are saved under ${data.CACHE_DIR_ENV}/models (default: the "
        "OS cache folder). Run 'mfkit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"mfkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    show = commands.add_parser(
        "data",
        help="locate, verify and summarize a MovieLens dataset",
        description="Find (or download) a MovieLens dataset, check every file against its "
        "pinned SHA-256 and print its size.",
    )
    _add_common(show)
    show.set_defaults(run=_cmd_data)

    train = commands.add_parser(
        "train",
        help="train and save the recommendation models",
        description="Train the hybrid, demographics, sequence and/or two-tower model and "
        "save it for the other commands (replacing a saved one, e.g. a corrupt file).",
    )
    train.add_argument(
        "--model",
        choices=(*TRAIN_GROUPS, *KINDS),
        default="both",
        help="'both' (the default): the two rating models, hybrid and demographics; 'all': "
        "those, the sequence model (used by recommend --next) and the two-tower model "
        "(used by similar); or one model",
    )
    train.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="all",
        help="train on every rating ('all', used by recommend) or on a split's base file "
        "(used by evaluate)",
    )
    train.add_argument(
        "--epochs",
        type=int,
        help="at most this many epochs (default: 10; the sequence and two-tower models "
        "train for exactly this many, default 12 and 7)",
    )
    _add_common(train)
    _add_own_data(train)
    train.set_defaults(run=_cmd_train)

    rec = commands.add_parser(
        "recommend",
        help="top movies for an existing user or for a new user's demographics",
        description="Recommend movies: --user ID for a user in the data (movies they have "
        "not rated, by the hybrid model), --user ID --next for the movies they may watch "
        "next after their latest ones (by the sequence model, from their ratings in time "
        "order), or --age/--gender/--occupation[/--zip] for a new user (by the "
        "demographics model).",
    )
    rec.add_argument("--user", help="an existing user id")
    rec.add_argument(
        "--next",
        action="store_true",
        help="with --user: the movies to watch next, by the sequence model (its "
        "probability that each is the next movie, out of the whole catalogue)",
    )
    rec.add_argument("--age", type=int, help="a new user's age in years")
    rec.add_argument("--gender", help="a new user's gender (M or F in MovieLens)")
    rec.add_argument("--occupation", help="a new user's occupation, e.g. student")
    rec.add_argument("--zip", help="a new user's zip code (optional)")
    _add_k(rec)
    _add_common(rec, json_output=True)
    _add_own_data(rec)
    rec.set_defaults(run=_cmd_recommend)

    sim = commands.add_parser(
        "similar",
        help="the movies most similar to a movie, by the two-tower model",
        description="List the movies nearest to a movie by cosine similarity of the "
        "two-tower model's movie vectors (its movie tower: id, genres and year), found "
        "through an HNSW approximate nearest-neighbour index (faiss) over every movie.",
    )
    sim.add_argument(
        "--movie",
        required=True,
        metavar="ID",
        help="a movie id, or a piece of its title that matches one movie (e.g. 'star wars')",
    )
    _add_k(
        sim,
        min_ratings_help="list only movies with at least this many ratings (default 20): "
        "a rarely rated movie's id embedding has barely trained, so its place among the "
        "vectors says little",
    )
    _add_common(sim, json_output=True)
    sim.set_defaults(run=_cmd_similar)

    ev = commands.add_parser(
        "evaluate",
        help="RMSE and MAE of the models on a test split",
        description="Train both rating models on a split's base file (once; then loaded) and "
        "report RMSE and MAE on its test file, beside predicting the mean rating.",
    )
    ev.add_argument("--split", choices=data.SPLITS, default="u1")
    _add_common(ev, json_output=True)
    ev.set_defaults(run=_cmd_evaluate)

    menu = commands.add_parser(
        "menu",
        help="the interactive menu",
        description="Ask for a new user's data or an existing user id and recommend movies; "
        "or show the RMSE on the u1 test set.",
    )
    _add_k(menu)
    _add_common(menu)
    menu.set_defaults(run=_cmd_menu)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("k", "min_ratings", "epochs"):
        value = getattr(args, option, None)
        if value is not None and value < (0 if option == "min_ratings" else 1):
            flag = "-k" if option == "k" else "--" + option.replace("_", "-")
            args.parser.error(
                f"{flag} must be at least {0 if option == 'min_ratings' else 1}, got {value}"
            )
    try:
        args.run(args)
    except _UsageError as err:
        args.parser.error(str(err))
    except (
        data.ChecksumError,
        data.DataNotFoundError,
        data.DownloadError,
        ModelFileError,
        UnknownIdError,
        UnknownCategoryError,
        MovieNotFoundError,
        MissingColumnsError,
        FileNotFoundError,
        ValueError,
    ) as err:
        print(f"mfkit: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmfkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
