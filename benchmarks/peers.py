"""The benchmarks' peer library, Surprise: fit a model on ratings and test it.

:func:`surprise` fits one model with fixed settings. :func:`surprise_tuned` tunes a
model class with Surprise's own ``GridSearchCV`` on one given validation split (the
split mfkit chooses its settings on, through :class:`OneSplit`), refits the best
setting on the whole training frame and tests it once.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from surprise import Dataset, Reader, accuracy
from surprise.model_selection import GridSearchCV


def dataset(ratings: pd.DataFrame) -> Dataset:
    """A Surprise dataset of a ratings frame, its raw ratings in the frame's row order."""
    reader = Reader(rating_scale=(1, 5))
    return Dataset.load_from_df(ratings[["user_id", "movie_id", "rating"]], reader)


def cases(ratings: pd.DataFrame) -> list[tuple]:
    """``(user, movie, rating)`` triples of a frame, as Surprise's ``test`` takes them."""
    return list(zip(ratings["user_id"], ratings["movie_id"], ratings["rating"], strict=True))


def scores(predictions) -> dict:
    """Test RMSE, MAE and each prediction (in the test frame's order)."""
    return {
        "rmse": accuracy.rmse(predictions, verbose=False),
        "mae": accuracy.mae(predictions, verbose=False),
        "prediction": np.array([p.est for p in predictions]),
    }


def surprise(algo, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Fit a Surprise ``algo`` on ``train``; its fit seconds, test RMSE, MAE, predictions."""
    trainset = dataset(train).build_full_trainset()
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    return {**scores(algo.test(cases(test))), "seconds": seconds}


class OneSplit:
    """A Surprise cross-validation iterator with exactly one split.

    ``valid_rows`` are positions in the frame the dataset was built from: those
    ratings are the validation set, the others the training set. ``GridSearchCV``
    takes it as its ``cv``, so it scores every setting on that one split only.
    """

    def __init__(self, valid_rows) -> None:
        self.valid_rows = np.asarray(valid_rows, dtype=np.int64)

    def get_n_folds(self) -> int:
        return 1

    def split(self, data):
        held = np.zeros(len(data.raw_ratings), dtype=bool)
        held[self.valid_rows] = True
        raw = data.raw_ratings
        train = [r for r, h in zip(raw, held, strict=True) if not h]
        valid = [r for r, h in zip(raw, held, strict=True) if h]
        yield data.construct_trainset(train), data.construct_testset(valid)


def surprise_tuned(
    cls, grid: dict, train: pd.DataFrame, valid_rows, test: pd.DataFrame, n_jobs: int = 1
) -> dict:
    """Tune ``cls`` over ``grid`` on the rows ``valid_rows`` of ``train``, refit, test.

    ``GridSearchCV`` fits every setting of ``grid`` on ``train`` less the validation
    rows (``n_jobs`` at a time) and scores its RMSE on them; the best setting is
    refit on all of ``train`` and tested once on ``test``. Seconds cover the whole
    search and the refit.
    """
    search = GridSearchCV(
        cls, grid, measures=["rmse"], cv=OneSplit(valid_rows), refit=True, n_jobs=n_jobs
    )
    start = time.perf_counter()
    search.fit(dataset(train))
    seconds = time.perf_counter() - start
    return {
        **scores(search.test(cases(test))),
        "seconds": seconds,
        "valid_rmse": float(search.best_score["rmse"]),
        "best": search.best_params["rmse"],
    }
