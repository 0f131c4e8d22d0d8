"""Speed benchmark: how long mfkit's ALS takes to match Surprise SVD's accuracy.

On each official fold (u1..u5 of ML-100K), every choice is made on a 10%
validation split of the fold's base file (``random_split(base, 0.1, seed=0)``,
the split of ``make bench-accuracy``), never on its test file:

1. the target: Surprise's ``SVD`` with its defaults, trained on the other 90%,
   and its validation RMSE;
2. the sweep count: mfkit's ALS (:mod:`mfkit.als`) trained on the same 90% for
   1, 2, 3, ... sweeps, each from scratch, until its validation RMSE is at least
   as good as the target; the fewest such sweeps are kept.

Then both are refit on the whole base file with those settings, each timed from
the raw ratings (ALS: from rating tensors) to a trained model, the best of
``REPEAT`` identical fits, and tested once on the fold's test file. The table
reports the two fit times, their ratio mfkit / Surprise (below 1: mfkit is
faster), each method's ratings per second per epoch (ALS: per sweep), and both
test RMSEs. Under it, the total times are put in words by
:func:`mfkit.measure.speed_verdict` (an order only beyond 1.3 times), and the
two models' test errors are compared with :func:`mfkit.stats.paired`
(per-user squared error over the folds run), so a reader sees whether "as
accurate" held on test.

The race is against ``SVD`` with its defaults (``random_state=0``), the row
"Surprise SVD, defaults" of ``make bench-accuracy`` (the same model fit on the
same file, so the same test RMSE): a fixed, documented configuration of the
library, whose speed is what a user of Surprise gets out of the box. The tuned
SVD of the accuracy benchmark changes size and epochs from fold to fold (and so
its time), which would make this a race against whatever its grid picked.

ALS's settings (32 factors with biases, ``reg=0.15``) were chosen on a 10%
validation split of ``u1.base``, never on a test file: a grid of 16-128 factors
and ``reg`` 0.05-0.2 (15 sweeps) put 32 factors within 0.002 validation RMSE of
the best (64 factors, ``reg=0.1``), at about a quarter of its time.

Run ``make bench-speed`` (it installs the ``bench`` extra, scikit-surprise).
It prints a markdown table and writes it to ``book/benchmarks/speed.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
from common import machine, write
from peers import surprise
from surprise import SVD

from mfkit.als import als_fit
from mfkit.data import load_movielens, load_split
from mfkit.features import Indexer
from mfkit.measure import speed_verdict
from mfkit.models import MatrixFactorization
from mfkit.splits import random_split
from mfkit.stats import paired
from mfkit.train import rating_rmse

DIM, REG, MAX_SWEEPS = 32, 0.15, 30
REPEAT = 3  # each timed refit: the best of this many identical fits
VALID_FRAC, SPLIT_SEED = 0.1, 0  # the validation split of make bench-accuracy


def als(indexer, train: pd.DataFrame, sweeps: int) -> tuple[MatrixFactorization, float]:
    """ALS trained on ``train`` for ``sweeps`` sweeps from scratch, and its seconds."""
    data = indexer.tensors(train)
    model = MatrixFactorization(indexer.n_users, indexer.n_movies, DIM, bias=True,
                                global_mean=float(train["rating"].mean()),
                                rating_range=(1, 5), seed=0)  # fmt: skip
    start = time.perf_counter()
    als_fit(model, *data, reg=REG, iterations=sweeps, progress=False)
    return model, time.perf_counter() - start


def sweeps_to_target(indexer, train, valid, target: float) -> tuple[int, float, bool]:
    """Fewest ALS sweeps on ``train`` whose RMSE on ``valid`` is at most ``target``.

    Returns (sweeps, that validation RMSE, reached); at ``MAX_SWEEPS`` without
    reaching the target, reached is False.
    """
    valid_data = indexer.tensors(valid)
    for sweeps in range(1, MAX_SWEEPS + 1):
        error = rating_rmse(als(indexer, train, sweeps)[0], *valid_data)
        if error <= target:
            return sweeps, error, True
    return MAX_SWEEPS, error, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]  # other work on the machine slows every timing
    ml = load_movielens(progress=False)
    indexer = Indexer.from_movielens(ml)
    als(indexer, ml.ratings.head(1000), 1)  # warm up torch's kernels once, outside the timings
    rows, errors = [], []
    for fold in args.folds:
        base, test = load_split(fold, progress=False)
        fit_part, valid = random_split(base, VALID_FRAC, seed=SPLIT_SEED)
        # Choices on validation: the target, then the sweep count that reaches it.
        target = surprise(SVD(random_state=0), fit_part, valid)["rmse"]
        sweeps, als_valid, reached = sweeps_to_target(indexer, fit_part, valid, target)
        # Refit both on the whole base file, timed (best of REPEAT), and test once.
        svds = [surprise(SVD(random_state=0), base, test) for _ in range(REPEAT)]  # defaults
        svd = {**svds[0], "seconds": min(run["seconds"] for run in svds)}
        fits = [als(indexer, base, sweeps) for _ in range(REPEAT)]
        model, als_seconds = fits[0][0], min(seconds for _, seconds in fits)
        test_data = indexer.tensors(test)
        als_pred = model.predict(*test_data[:2]).numpy()
        als_rmse = float(np.sqrt(np.mean((als_pred - test_data[2].numpy()) ** 2)))
        truth = test["rating"].to_numpy()
        errors.append(test[["user_id"]].assign(
            svd=(svd["prediction"] - truth) ** 2, als=(als_pred - truth) ** 2))  # fmt: skip
        rows.append((fold, len(base), target, sweeps, als_valid, reached,
                     svd["seconds"], svd["rmse"], als_seconds, als_rmse))  # fmt: skip
        print(f"{fold}: validation SVD {target:.4f}, ALS {sweeps} sweeps {als_valid:.4f}; "
              f"test SVD {svd['seconds']:.2f} s {svd['rmse']:.4f}, "
              f"ALS {als_seconds:.2f} s {als_rmse:.4f}", file=sys.stderr)  # fmt: skip
    per_user = pd.concat(errors).groupby("user_id").mean()
    table = render(rows, per_user, args.folds, load)
    print(table)
    if not args.no_write:
        write("speed", table)
    return 0


def render(rows, per_user: pd.DataFrame, folds: list[str], load: float) -> str:
    lines = [
        f"Machine: {machine()}, load average {load:.1f} at the start. "
        "Surprise SVD: defaults (20 epochs, 100 factors), "
        f"`random_state=0`. mfkit: ALS with {DIM} factors and biases, `reg={REG}`. "
        f"Chosen on validation ({VALID_FRAC:.0%} of the base file; both models trained "
        "on the other 90%): the number of ALS sweeps, the fewest whose validation RMSE is "
        "at most SVD's. Then both refit on the whole base file with those settings, timed "
        f"(ALS from rating tensors to a trained model; best of {REPEAT} identical fits), "
        "and tested once.",
        "",
        "| fold | SVD validation RMSE (target) | ALS sweeps | ALS validation RMSE | "
        "Surprise SVD fit (s) | SVD test RMSE | ALS time (s) | ALS test RMSE | "
        "time ratio ALS / SVD | ratings/s per epoch, SVD | ratings/s per sweep, ALS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios, totals = [], np.zeros(2)
    for fold, n, target, sweeps, als_valid, reached, svd_s, svd_rmse, als_s, als_rmse in rows:
        ratios.append(als_s / svd_s)
        totals += (als_s, svd_s)
        mark = "" if reached else f" (target not reached in {MAX_SWEEPS})"
        lines.append(
            f"| {fold} | {target:.4f} | {sweeps}{mark} | {als_valid:.4f} | {svd_s:.3f} | "
            f"{svd_rmse:.4f} | {als_s:.3f} | {als_rmse:.4f} | {als_s / svd_s:.2f} | "
            f"{n * 20 / svd_s:,.0f} | {n * sweeps / als_s:,.0f} |"
        )
    lines.append(f"| mean | | | | | | | | {np.mean(ratios):.2f} | | |")
    # Lower error is better: minus the squared error, so "ahead of" means lower error.
    result = paired(-per_user["als"].to_numpy(), -per_user["svd"].to_numpy())
    lines += [
        "",
        f"Over the folds, ALS's fits take {totals[0]:.2f} s in all and are "
        f"**{speed_verdict(*totals)}** Surprise SVD's ({totals[1]:.2f} s; "
        "`mfkit.measure.speed_verdict`, an order only beyond 1.3 times).",
        "",
        f"On the test files, mfkit's ALS with the sweeps chosen on validation is "
        f"**{result.word}** Surprise SVD (`mfkit.stats.paired` over users, a user's "
        f"squared error being the mean over their test ratings in folds {', '.join(folds)}): "
        f"SVD's per-user squared error minus ALS's averages {result.difference:+.4f} "
        f"(95% interval {result.interval(4)}, {result.cases} users).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
