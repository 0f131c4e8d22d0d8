"""The benchmarks' peer library, Surprise: fit a model on ratings and test it."""

from __future__ import annotations

import time

import pandas as pd
from surprise import Dataset, Reader, accuracy


def surprise(algo, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Fit a Surprise ``algo`` on ``train``; its fit seconds and test RMSE and MAE."""
    reader = Reader(rating_scale=(1, 5))
    trainset = Dataset.load_from_df(train[["user_id", "movie_id", "rating"]], reader)
    start = time.perf_counter()
    algo.fit(trainset.build_full_trainset())
    seconds = time.perf_counter() - start
    cases = list(zip(test["user_id"], test["movie_id"], test["rating"], strict=True))
    predictions = algo.test(cases)
    return {
        "rmse": accuracy.rmse(predictions, verbose=False),
        "mae": accuracy.mae(predictions, verbose=False),
        "seconds": seconds,
    }
