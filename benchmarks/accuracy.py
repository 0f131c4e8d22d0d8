"""Accuracy benchmark: mfkit's rating models against Surprise on the official folds.

On each fold u1..u5 of ML-100K, side by side in one run:

* peers from Surprise, with their defaults: ``BaselineOnly``, ``SVD`` and
  ``SVDpp`` (``--no-svdpp`` skips the slow one);
* mfkit, every choice made on a 10% validation split of the fold's base file
  (never on its test file), then refit on the whole base file:

  - biased MF trained by gradient (:func:`mfkit.train.fit`, Adam, L2 penalty;
    the penalty and the number of epochs chosen on validation);
  - ALS (:mod:`mfkit.als`; factors and ``reg`` chosen on validation);
  - chapter 6's hybrid network (:class:`mfkit.models.HybridModel`: ids plus side
    features; the number of epochs chosen on validation);
  - a blend of the three: the weights of a least-squares fit of the validation
    ratings on the models' validation predictions. The gradient-trained members
    (MF and the hybrid network) are each the average of ``SEEDS`` runs from
    different initialisations; on a 2-fold split of u1's validation ratings this
    seed averaging took the blend's RMSE from 0.9037 to 0.9014.

Run ``make bench-accuracy`` (it installs the ``bench`` extra). It prints a
markdown table (mean over folds, and each fold's RMSE) and writes it to
``book/benchmarks/accuracy.md``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import numpy as np
import pandas as pd
import torch
from common import machine, write
from peers import surprise
from surprise import SVD, BaselineOnly, SVDpp

from mfkit.als import als_fit
from mfkit.data import load_movielens, load_split
from mfkit.features import Indexer, SideFeatures
from mfkit.losses import observed_mse
from mfkit.models import HybridModel, MatrixFactorization
from mfkit.splits import random_split
from mfkit.train import fit, rating_rmse

ALS_GRID = [(dim, reg) for dim in (32, 64) for reg in (0.08, 0.1, 0.15)]
ALS_SWEEPS = 15
MF_GRID = [0.05, 0.1, 0.2]  # L2 penalty of the gradient-trained MF
MF = {"dim": 64, "lr": 3e-3, "batch_size": 512, "epochs": 40, "patience": 3}
BLEND = "mfkit blend (ALS + MF + hybrid)"
SEEDS = (0, 1, 2)  # the gradient-trained members average runs from these seeds
HYBRID = {"lr": 1e-3, "batch_size": 256, "epochs": 10, "patience": 2}  # chapter 6's settings


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
    indexer: Indexer, side: SideFeatures, base: pd.DataFrame, test: pd.DataFrame
) -> dict:
    """Choose on validation, refit on the whole base file, evaluate on test."""
    fit_part, valid = random_split(base, 0.1, seed=0)
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
        }
        for name, p in preds.items()
    }
    rows["mfkit ALS"]["choice"] = f"{als_choice[0]} factors, reg {als_choice[1]}"
    rows["mfkit biased MF (gradient)"]["choice"] = f"l2 {mf_choice}, {mf_epochs} epochs"
    rows["mfkit hybrid network"]["choice"] = f"{hybrid_epochs} epochs"
    rows[BLEND]["choice"] = "intercept and weights " + ", ".join(f"{w:.2f}" for w in weights)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    parser.add_argument("--no-svdpp", action="store_true", help="skip Surprise SVD++ (slow)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    ml = load_movielens(progress=False)
    indexer, side = Indexer.from_movielens(ml), SideFeatures.from_movielens(ml)
    peers = {"Surprise BaselineOnly": BaselineOnly, "Surprise SVD": SVD}
    if not args.no_svdpp:
        peers["Surprise SVD++"] = SVDpp
    results = []
    for fold in args.folds:
        base, test = load_split(fold)
        rows = {name: surprise(cls(**({"random_state": 0} if cls is not BaselineOnly else {})),
                               base, test) for name, cls in peers.items()}  # fmt: skip
        rows.update(mfkit_fold(indexer, side, base, test))
        for name, row in rows.items():
            results.append({"fold": fold, "model": name, **row})
            print(f"{fold} {name:28s} {row['rmse']:.4f} ({row['seconds']:.1f} s) "
                  f"{row.get('choice', '')}", file=sys.stderr)  # fmt: skip
    table = render(pd.DataFrame(results), args.folds)
    print(table)
    if not args.no_write:
        write("accuracy", table)
    return 0


def render(results: pd.DataFrame, folds: list[str]) -> str:
    mean = results.groupby("model", sort=False)[["rmse", "mae", "seconds"]].mean()
    per_fold = results.pivot(index="model", columns="fold", values="rmse").loc[mean.index]
    lines = [
        f"Machine: {machine()}. Folds: {', '.join(folds)} (official base/test files). "
        "Surprise models use their defaults. mfkit's settings are chosen on 10% of each "
        "base file and refit on all of it; its seconds cover the whole choice and refit. "
        f"The gradient-trained rows (biased MF, hybrid network) average {len(SEEDS)} seeds.",
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
    choices = results.dropna(subset=["choice"]) if "choice" in results else results.iloc[:0]
    if len(choices):
        lines += ["", "Choices made on validation data:", ""]
        lines += [f"- {r.fold}, {r.model}: {r.choice}" for r in choices.itertuples()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
