"""Accuracy benchmark: mfkit's rating models against Surprise on the official folds.

On each fold u1..u5 of ML-100K, side by side in one run, every model is tested
once on the fold's test file and every choice is made on one validation split:
10% of the fold's base file (``random_split(base, 0.1, seed=0)``), the same
split for mfkit and for Surprise. The test file never influences a choice.

* Surprise's ``BaselineOnly``, ``SVD`` and ``SVDpp`` (``--no-svdpp`` skips the
  slow one), each twice:

  - **defaults**: the library's settings, fit on the whole base file;
  - **tuned**: Surprise's own ``GridSearchCV`` over the grid in ``SURPRISE``, given
    the one validation split as its ``cv`` (:class:`peers.OneSplit`, not
    Surprise's k-fold), then the best setting by validation RMSE refit on the
    whole base file (``refit=True``).

  The defaults rows stay because they cost about a minute in all and show how
  much the grid is worth; ``make bench-speed`` races the SVD defaults row.
* mfkit, every choice made on the same validation split, then refit on the
  whole base file:

  - biased MF trained by gradient (:func:`mfkit.train.fit`, Adam, L2 penalty;
    the penalty from ``MF_GRID`` and the number of epochs by early stopping);
  - ALS (:mod:`mfkit.als`; factors and ``reg`` from ``ALS_GRID``);
  - chapter 6's hybrid network (:class:`mfkit.models.HybridModel`: ids plus side
    features; the number of epochs by early stopping);
  - a blend of the three: the weights of a least-squares fit of the validation
    ratings on the models' validation predictions. The gradient-trained members
    (MF and the hybrid network) are each the average of ``SEEDS`` runs from
    different initialisations; on a 2-fold split of u1's validation ratings this
    seed averaging took the blend's RMSE from 0.9037 to 0.9014.

* chapter 12's factorization machine learned by Gibbs sampling
  (:class:`mfkit.bayes.GibbsFM`), with every field the chapter teaches: the ids, the
  bags of rated movies and of raters, the day and hour, and the side features (the
  movie's genres are a bag of the movie, as the rated movies are a bag of the user). It
  is sampled on the whole base file with nothing chosen on validation: its penalties and
  noise level are drawn from hyperpriors, and its size and number of draws are fixed
  (``GIBBS``).
  The table says whether the best mfkit row meets issue 33's target (``TARGET``).

The grids were sized on u1's validation split only, for a run of about half an
hour on a quiet 2-core machine (other work on the machine lengthens it; the
table's first line gives the saved run's time and the load average at its
start). One SVD++ fit of 20 epochs takes about 12 s there (SVD: about 1 s), so
SVD++'s grid covers only its epochs and regularisation, at its default 20
factors and learning rate, in six settings (on u1, 80 epochs did no better than
60 at ``reg_all`` 0.1), while SVD's covers size, epochs, learning rate and
regularisation in 36; BaselineOnly's covers its two regularisations (ALS
method) in 16. Surprise's searches run ``SURPRISE_JOBS`` fits at a time, as
torch uses both cores for mfkit.

The best mfkit row and the best Surprise row (lowest mean RMSE) are compared
with :func:`mfkit.stats.paired` on per-user squared error: each user's mean
squared error over all their test ratings in the folds run (each rating is in
exactly one test file), so the cases are the users, not the correlated ratings
of one user. Each Surprise model's tuned row is compared with its defaults row
the same way.

Run ``make bench-accuracy`` (it installs the ``bench`` extra). It prints a
markdown table (mean over folds, and each fold's RMSE), the grids, the choices
and the paired comparisons, and writes them to ``book/benchmarks/accuracy.md``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np
import pandas as pd
import torch
from common import machine, write
from peers import surprise, surprise_tuned
from surprise import SVD, BaselineOnly, SVDpp

from mfkit.als import als_fit
from mfkit.bayes import GibbsFM
from mfkit.data import load_movielens, load_split
from mfkit.feature_rows import interaction_rows
from mfkit.features import Indexer, SideFeatures
from mfkit.losses import observed_mse
from mfkit.models import HybridModel, MatrixFactorization
from mfkit.splits import random_split
from mfkit.stats import paired
from mfkit.train import fit, rating_rmse

ALS_GRID = [(dim, reg) for dim in (32, 64) for reg in (0.08, 0.1, 0.15)]
ALS_SWEEPS = 15
MF_GRID = [0.05, 0.1, 0.2]  # L2 penalty of the gradient-trained MF
MF = {"dim": 64, "lr": 3e-3, "batch_size": 512, "epochs": 40, "patience": 3}
BLEND = "mfkit blend (ALS + MF + hybrid)"
SEEDS = (0, 1, 2)  # the gradient-trained members average runs from these seeds
HYBRID = {"lr": 1e-3, "batch_size": 256, "epochs": 10, "patience": 2}  # chapter 6's settings
VALID_FRAC, SPLIT_SEED = 0.1, 0  # the one validation split of each base file
# Chapter 12's factorization machine by Gibbs sampling, with every field it teaches. Its
# penalties and noise level are drawn from hyperpriors, so nothing is chosen on the
# validation split; the size and the number of draws are fixed (more draws only help).
GIBBS_FM = "mfkit Bayesian FM (Gibbs: ids, bags, day, hour, side)"
GIBBS_FIELDS = ["user", "movie", "user_bag", "movie_bag", "day", "hour", "gender",
                "age_group", "occupation", "year", "genres"]  # fmt: skip
# Fields that are the same for every row of one key: the bag and the field of its key.
GIBBS_BAGS = {"user_bag": "user", "movie_bag": "movie", "genres": "movie"}
GIBBS = {"dim": 10, "burn_in": 20, "samples": 400}
#: Issue 33's target for the best model the book teaches: mean RMSE over u1..u5, and u1's.
TARGET = {"mean": 0.878, "u1": 0.886}
SURPRISE_JOBS = 2  # GridSearchCV's n_jobs: fits run in parallel on the 2 cores
# Surprise: name -> (class, its defaults, the grid GridSearchCV searches on the validation
# split). A value list of one is a fixed setting. Sized on u1's validation split only.
SURPRISE = {
    "Surprise BaselineOnly": (
        BaselineOnly,
        {"verbose": False},
        {
            "bsl_options": {"method": ["als"], "reg_u": [2, 5, 10, 15], "reg_i": [1, 3, 5, 10]},
            "verbose": [False],
        },
    ),
    "Surprise SVD": (
        SVD,
        {"random_state": 0},
        {
            "n_factors": [50, 100, 200],
            "n_epochs": [20, 40],
            "lr_all": [0.005, 0.01],
            "reg_all": [0.05, 0.1, 0.15],
            "random_state": [0],
        },
    ),
    "Surprise SVD++": (
        SVDpp,
        {"random_state": 0, "cache_ratings": True},
        {
            "n_epochs": [40, 60],
            "reg_all": [0.05, 0.1, 0.15],
            "random_state": [0],
            "cache_ratings": [True],
        },
    ),
}


def new_model(indexer: Indexer, dim: int, mean: float, seed: int = 0) -> MatrixFactorization:
    return MatrixFactorization(indexer.n_users, indexer.n_movies, dim, bias=True,
                               global_mean=mean, rating_range=(1, 5), seed=seed)  # fmt: skip


def train_als(indexer, data, dim, reg, mean) -> MatrixFactorization:
    model = new_model(indexer, dim, mean)
    als_fit(model, *data, reg=reg, iterations=ALS_SWEEPS, progress=False)
    return model


def train(model, data, loss, settings: dict, *, valid=None, epochs=None, seed=0):
    """Train with ``settings``; with ``valid``, stop early on its RMSE (best weights kept)."""
    history = fit(
        model,
        data,
        loss,
        valid=valid,
        metric=rating_rmse if valid is not None else None,
        epochs=epochs or settings["epochs"],
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        patience=settings["patience"] if valid is not None else None,
        seed=seed,
        progress=False,
    )
    return model, history


def train_mf(indexer, data, l2, mean, seed=0, **kwargs):
    loss = functools.partial(observed_mse, l2=l2)
    return train(new_model(indexer, MF["dim"], mean, seed), data, loss, MF, seed=seed, **kwargs)


def train_hybrid(side, data, mean, seed=0, **kwargs):
    model = HybridModel(side, global_mean=mean, seed=seed)
    return train(model, data, observed_mse, HYBRID, seed=seed, **kwargs)


@torch.no_grad()
def predictions(models, data) -> np.ndarray:
    """The mean prediction of one model or of a list of models (a seed average)."""
    models = models if isinstance(models, list) else [models]
    return np.mean([m.predict(data[0], data[1]).numpy() for m in models], axis=0)


def mfkit_fold(
    indexer: Indexer,
    side: SideFeatures,
    base: pd.DataFrame,
    split: tuple[pd.DataFrame, pd.DataFrame],
    test: pd.DataFrame,
) -> dict:
    """Choose on the validation ``split`` of ``base``, refit on all of it, evaluate on test."""
    fit_part, valid = split
    fit_data, valid_data = indexer.tensors(fit_part), indexer.tensors(valid)
    base_data, test_data = indexer.tensors(base), indexer.tensors(test)
    start = time.perf_counter()
    mean = float(fit_part["rating"].mean())
    als_runs = {(dim, reg): train_als(indexer, fit_data, dim, reg, mean) for dim, reg in ALS_GRID}
    als_choice = min(als_runs, key=lambda key: rating_rmse(als_runs[key], *valid_data))
    mf_runs = {l2: train_mf(indexer, fit_data, l2, mean, valid=valid_data) for l2 in MF_GRID}
    mf_choice = min(mf_runs, key=lambda l2: min(mf_runs[l2][1].valid_metric))
    mf_epochs = mf_runs[mf_choice][1].best_epoch
    hybrid, hybrid_history = train_hybrid(side, fit_data, mean, valid=valid_data)
    hybrid_epochs = hybrid_history.best_epoch
    # Blend weights from the validation predictions of the models trained without it,
    # the gradient-trained members averaged over seeds as in the final blend.
    mfs = [mf_runs[mf_choice][0]] + [
        train_mf(indexer, fit_data, mf_choice, mean, seed, epochs=mf_epochs)[0]
        for seed in SEEDS[1:]
    ]
    hybrids = [hybrid] + [
        train_hybrid(side, fit_data, mean, seed, epochs=hybrid_epochs)[0] for seed in SEEDS[1:]
    ]
    valid_models = [als_runs[als_choice], mfs, hybrids]
    features = np.column_stack(
        [np.ones(len(valid))] + [predictions(m, valid_data) for m in valid_models]
    )
    weights, *_ = np.linalg.lstsq(features, valid_data[2].numpy(), rcond=None)
    # Refit on the whole base file with the chosen settings.
    mean = float(base["rating"].mean())
    final = {
        "mfkit ALS": train_als(indexer, base_data, *als_choice, mean),
        "mfkit biased MF (gradient)": [
            train_mf(indexer, base_data, mf_choice, mean, seed, epochs=mf_epochs)[0]
            for seed in SEEDS
        ],
        "mfkit hybrid network": [
            train_hybrid(side, base_data, mean, seed, epochs=hybrid_epochs)[0] for seed in SEEDS
        ],
    }
    seconds = time.perf_counter() - start
    truth = test_data[2].numpy()
    preds = {name: predictions(model, test_data) for name, model in final.items()}
    blend = np.column_stack([np.ones(len(truth)), *preds.values()]) @ weights
    preds[BLEND] = np.clip(blend, 1, 5)
    rows = {
        name: {
            "rmse": float(np.sqrt(np.mean((p - truth) ** 2))),
            "mae": float(np.mean(np.abs(p - truth))),
            "seconds": seconds,
            "prediction": p,
        }
        for name, p in preds.items()
    }
    rows["mfkit ALS"]["choice"] = f"{als_choice[0]} factors, reg {als_choice[1]}"
    rows["mfkit biased MF (gradient)"]["choice"] = f"l2 {mf_choice}, {mf_epochs} epochs"
    rows["mfkit hybrid network"]["choice"] = f"{hybrid_epochs} epochs"
    rows[BLEND]["choice"] = "intercept and weights " + ", ".join(f"{w:.2f}" for w in weights)
    return rows


def gibbs_fold(indexer: Indexer, side: SideFeatures, base: pd.DataFrame, test: pd.DataFrame):
    """Chapter 12's Bayesian factorization machine, sampled on the whole base file."""
    start = time.perf_counter()
    rows = {
        name: interaction_rows(table, indexer, base, GIBBS_FIELDS, side=side)
        for name, table in (("base", base), ("test", test))
    }
    bags = {GIBBS_FIELDS.index(bag): GIBBS_FIELDS.index(key) for bag, key in GIBBS_BAGS.items()}
    model = GibbsFM(rows["base"].fields, dim=GIBBS["dim"], bags=bags, seed=0)
    model.sample(
        rows["base"],
        torch.tensor(base["rating"].to_numpy(), dtype=torch.float32),
        burn_in=GIBBS["burn_in"],
        samples=GIBBS["samples"],
        progress=False,
    )
    predicted = model.predict(rows["test"]).numpy()
    truth = test["rating"].to_numpy()
    return {
        GIBBS_FM: {
            "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
            "mae": float(np.mean(np.abs(predicted - truth))),
            "seconds": time.perf_counter() - start,
            "prediction": predicted,
            "choice": f"fixed: {GIBBS['dim']} factors, {GIBBS['burn_in']} burn-in sweeps, "
            f"{GIBBS['samples']} kept draws",
        }
    }


def surprise_fold(base: pd.DataFrame, valid_rows, test: pd.DataFrame, names) -> dict:
    """Each Surprise model of ``names`` with its defaults and tuned on the validation rows."""
    rows = {}
    for name in names:
        cls, defaults, grid = SURPRISE[name]
        rows[f"{name}, defaults"] = surprise(cls(**defaults), base, test)
        tuned = surprise_tuned(cls, grid, base, valid_rows, test, n_jobs=SURPRISE_JOBS)
        best, valid_rmse = tuned.pop("best"), tuned.pop("valid_rmse")
        tuned["choice"] = f"{chosen(grid, best)} (validation RMSE {valid_rmse:.4f})"
        rows[f"{name}, tuned"] = tuned
    return rows


def searched(grid: dict) -> dict:
    """The searched values of a Surprise grid, ``bsl_options`` flattened into it."""
    flat = {}
    for key, values in grid.items():
        flat.update(values if isinstance(values, dict) else {key: values})
    return flat


def chosen(grid: dict, best: dict) -> str:
    """The best setting of ``grid``, naming only the parameters with several values."""
    flat, best = searched(grid), searched(best)
    return ", ".join(f"{k} {best[k]}" for k, values in flat.items() if len(values) > 1)


def grids(names) -> list[str]:
    """One line per model: every value tried on the validation split, and what is fixed."""

    def values(items) -> str:
        return "; ".join(f"`{k}` {', '.join(map(str, v))}" for k, v in items.items())

    lines = []
    for name in names:
        flat = searched(SURPRISE[name][2])
        size = int(np.prod([len(v) for v in flat.values()]))
        lines.append(f"- {name}, tuned ({size} settings): {values(flat)}.")
    dims, regs = sorted({d for d, _ in ALS_GRID}), sorted({r for _, r in ALS_GRID})
    lines += [
        f"- mfkit ALS ({len(ALS_GRID)} settings): factors {', '.join(map(str, dims))}; "
        f"`reg` {', '.join(map(str, regs))}; {ALS_SWEEPS} sweeps, with biases.",
        f"- mfkit biased MF ({len(MF_GRID)} settings): `l2` {', '.join(map(str, MF_GRID))}; "
        f"epochs by early stopping on validation RMSE (at most {MF['epochs']}, patience "
        f"{MF['patience']}); fixed: {MF['dim']} factors, Adam `lr` {MF['lr']}, batch "
        f"{MF['batch_size']}.",
        f"- mfkit hybrid network: epochs by early stopping on validation RMSE (at most "
        f"{HYBRID['epochs']}, patience {HYBRID['patience']}); fixed: chapter 6's network, "
        f"`lr` {HYBRID['lr']}, batch {HYBRID['batch_size']}.",
        "- mfkit blend: an intercept and one weight per model, least squares on the "
        f"validation ratings; MF and the hybrid network each average seeds "
        f"{', '.join(map(str, SEEDS))} with the epochs chosen for seed {SEEDS[0]}.",
        f"- {GIBBS_FM}: nothing searched (penalties and noise drawn from hyperpriors); "
        f"fixed: {GIBBS['dim']} factors, {GIBBS['burn_in']} burn-in sweeps, "
        f"{GIBBS['samples']} kept draws, fields {', '.join(GIBBS_FIELDS)}.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    parser.add_argument("--no-svdpp", action="store_true", help="skip Surprise SVD++ (slow)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]  # other work on the machine slows every timing
    start = time.perf_counter()
    ml = load_movielens(progress=False)
    indexer, side = Indexer.from_movielens(ml), SideFeatures.from_movielens(ml)
    names = [name for name in SURPRISE if not (args.no_svdpp and name == "Surprise SVD++")]
    results, errors = [], []
    for fold in args.folds:
        base, test = load_split(fold, progress=False)
        # One split, kept as row positions in the base file for Surprise's GridSearchCV.
        numbered = base.assign(row=np.arange(len(base)))
        fit_part, valid = random_split(numbered, VALID_FRAC, seed=SPLIT_SEED)
        rows = surprise_fold(base, valid["row"].to_numpy(), test, names)
        rows.update(mfkit_fold(indexer, side, base, (fit_part, valid), test))
        rows.update(gibbs_fold(indexer, side, base, test))
        truth = test["rating"].to_numpy()
        errors.append(
            test[["user_id"]].assign(
                **{name: (row.pop("prediction") - truth) ** 2 for name, row in rows.items()}
            )
        )
        for name, row in rows.items():
            results.append({"fold": fold, "model": name, **row})
            print(f"{fold} {name:34s} {row['rmse']:.4f} ({row['seconds']:.1f} s) "
                  f"{row.get('choice', '')}", file=sys.stderr)  # fmt: skip
    # Per-user squared error: each user's mean over their test ratings in every fold run.
    per_user = pd.concat(errors).groupby("user_id").mean()
    minutes = (time.perf_counter() - start) / 60
    table = render(pd.DataFrame(results), args.folds, per_user, names, minutes, load)
    print(table)
    if not args.no_write:
        write("accuracy", table)
    return 0


def compare(per_user: pd.DataFrame, a: str, b: str) -> str:
    """One sentence: ``a`` against ``b`` by :func:`mfkit.stats.paired` on per-user error."""
    # Lower error is better: score each user by minus their squared error, so that
    # "ahead of" means a lower error and the difference is b's error minus a's.
    result = paired(-per_user[a].to_numpy(), -per_user[b].to_numpy())
    return (
        f"{a} is **{result.word}** {b}: {b}'s per-user squared error minus {a}'s averages "
        f"{result.difference:+.4f} (95% interval {result.interval(4)}, {result.cases} users)."
    )


def render(
    results: pd.DataFrame,
    folds: list[str],
    per_user: pd.DataFrame,
    names,
    minutes: float,
    load: float,
) -> str:
    mean = results.groupby("model", sort=False)[["rmse", "mae", "seconds"]].mean()
    per_fold = results.pivot(index="model", columns="fold", values="rmse").loc[mean.index]
    lines = [
        f"Machine: {machine()}, load average {load:.1f} at the start. "
        f"Folds: {', '.join(folds)} (official base/test files). "
        f"Every choice is made on one validation split per fold ({VALID_FRAC:.0%} of the "
        "base file, the same rows for every model), then the model is refit on the whole "
        "base file and tested once. Surprise's tuned rows: its `GridSearchCV` on that one "
        f"split, {SURPRISE_JOBS} fits at a time; defaults rows: the library's settings. "
        "Seconds per fold: fit for defaults "
        "rows, the whole search and refit for the others (mfkit's ALS, MF, hybrid and blend "
        "rows share one figure; the Bayesian FM's is its sampling alone). "
        f"The gradient-trained mfkit rows average {len(SEEDS)} seeds. "
        f"The whole run took {minutes:.0f} minutes.",
        "",
        "| model | mean RMSE | mean MAE | mean seconds per fold | "
        + " | ".join(f"RMSE {f}" for f in folds)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(folds),
    ]
    for name, row in mean.iterrows():
        cells = " | ".join(f"{per_fold.loc[name, f]:.4f}" for f in folds)
        lines.append(
            f"| {name} | {row['rmse']:.4f} | {row['mae']:.4f} | {row['seconds']:.1f} | {cells} |"
        )
    best_mfkit = mean.loc[mean.index.str.startswith("mfkit"), "rmse"].idxmin()
    best_peer = mean.loc[mean.index.str.startswith("Surprise"), "rmse"].idxmin()
    best = mean.loc[best_mfkit, "rmse"]
    goals = [("mean RMSE", best, TARGET["mean"])]
    if "u1" in folds:
        goals.append(("RMSE on u1", per_fold.loc[best_mfkit, "u1"], TARGET["u1"]))
    verdicts = [
        f"{what} {value:.4f} against {goal}: "
        + ("met" if value <= goal else f"short by {value - goal:.4f}")
        for what, value, goal in goals
    ]
    lines += [
        "",
        f"Target for the best model the book teaches (issue 33; here {best_mfkit}): "
        + "; ".join(verdicts)
        + ".",
    ]
    lines += [
        "",
        "Paired comparisons (`mfkit.stats.paired`, paired t over users; a user's squared "
        f"error is the mean over their test ratings in folds {', '.join(folds)}):",
        "",
        f"- Best of each library by mean RMSE: {compare(per_user, best_mfkit, best_peer)}",
    ]
    lines += [f"- {compare(per_user, f'{n}, tuned', f'{n}, defaults')}" for n in names]
    lines += ["", "Grids searched on the validation split:", "", *grids(names)]
    choices = results.dropna(subset=["choice"]) if "choice" in results else results.iloc[:0]
    if len(choices):
        lines += ["", "Choices made on validation data:", ""]
        lines += [f"- {r.fold}, {r.model}: {r.choice}" for r in choices.itertuples()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
