"""Speed benchmark: how long mfkit takes to reach Surprise SVD's test RMSE.

On each official fold (u1..u5 of ML-100K) this fits Surprise's ``SVD`` with
its defaults (the peer), notes its fit time and test RMSE, then runs mfkit's
ALS (:mod:`mfkit.als`) for 1, 2, 3, ... sweeps, each from scratch and timed
from the raw rating tensors, until its test RMSE is at least as good. It prints
the time ratio mfkit / Surprise (below 1: mfkit is faster) and each method's
ratings per second per epoch (ALS: per sweep).

ALS's settings (32 factors with biases, ``reg=0.15``) were chosen on a 10%
validation split of ``u1.base``, never on a test file: a grid of 16-128 factors
and ``reg`` 0.05-0.2 (15 sweeps) put 32 factors within 0.002 validation RMSE of
the best (64 factors, ``reg=0.1``), at about a quarter of its time.

Run ``make bench-speed`` (it installs the ``bench`` extra, scikit-surprise).
It prints a markdown table and writes it to ``book/benchmarks/speed.md``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from common import machine, write
from peers import surprise
from surprise import SVD

from mfkit.als import als_fit
from mfkit.data import load_movielens, load_split
from mfkit.features import Indexer
from mfkit.models import MatrixFactorization
from mfkit.train import rating_rmse

DIM, REG, MAX_SWEEPS = 32, 0.15, 30


def als_to_target(indexer, train, test, target: float) -> tuple[int, float, float]:
    """Fewest ALS sweeps that reach ``target`` test RMSE: (sweeps, seconds, RMSE)."""
    train_data, test_data = indexer.tensors(train), indexer.tensors(test)
    mean = float(train["rating"].mean())
    for sweeps in range(1, MAX_SWEEPS + 1):
        model = MatrixFactorization(indexer.n_users, indexer.n_movies, DIM, bias=True,
                                    global_mean=mean, rating_range=(1, 5), seed=0)  # fmt: skip
        start = time.perf_counter()
        als_fit(model, *train_data, reg=REG, iterations=sweeps, progress=False)
        seconds = time.perf_counter() - start
        error = rating_rmse(model, *test_data)
        if error <= target:
            return sweeps, seconds, error
    return MAX_SWEEPS, float("nan"), error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    ml = load_movielens(progress=False)
    indexer = Indexer.from_movielens(ml)
    als_fit(  # warm up torch's kernels once, outside the timings
        MatrixFactorization(indexer.n_users, indexer.n_movies, DIM, bias=True),
        *indexer.tensors(ml.ratings.head(1000)), reg=REG, iterations=1, progress=False,
    )  # fmt: skip
    rows = []
    for fold in args.folds:
        train, test = load_split(fold)
        svd = surprise(SVD(random_state=0), train, test)  # Surprise's defaults, seeded
        svd_seconds, svd_rmse = svd["seconds"], svd["rmse"]
        sweeps, als_seconds, als_rmse = als_to_target(indexer, train, test, svd_rmse)
        rows.append((fold, len(train), svd_seconds, svd_rmse, sweeps, als_seconds, als_rmse))
        print(f"{fold}: SVD {svd_seconds:.2f} s {svd_rmse:.4f}; ALS {sweeps} sweeps "
              f"{als_seconds:.2f} s {als_rmse:.4f}", file=sys.stderr)  # fmt: skip
    table = render(rows)
    print(table)
    if not args.no_write:
        write("speed", table)
    return 0


def render(rows) -> str:
    lines = [
        f"Machine: {machine()}. Surprise SVD: defaults (20 epochs, 100 factors), "
        f"`random_state=0`. mfkit: ALS with {DIM} factors and biases, `reg={REG}`, timed "
        "from rating tensors to a trained model, with the fewest sweeps that reach "
        "Surprise SVD's test RMSE on the same fold.",
        "",
        "| fold | Surprise SVD fit (s) | its test RMSE | ALS sweeps | ALS time (s) | "
        "ALS test RMSE | time ratio ALS / SVD | ratings/s per epoch, SVD | "
        "ratings/s per sweep, ALS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for fold, n, svd_s, svd_rmse, sweeps, als_s, als_rmse in rows:
        ratios.append(als_s / svd_s)
        lines.append(
            f"| {fold} | {svd_s:.3f} | {svd_rmse:.4f} | {sweeps} | {als_s:.3f} | "
            f"{als_rmse:.4f} | {als_s / svd_s:.2f} | {n * 20 / svd_s:,.0f} | "
            f"{n * sweeps / als_s:,.0f} |"
        )
    lines.append(f"| mean | | | | | | {np.nanmean(ratios):.2f} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
