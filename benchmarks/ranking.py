"""Ranking benchmark: every ranking model of the course on one leave-one-out split.

The protocol is chapter 7's, as chapter 8 sets it up: every ML-100K rating is an
interaction (:func:`mfkit.sampling.implicit`), each user's latest interaction is
the test case and the one before it the validation case
(:func:`mfkit.splits.leave_one_out` twice, ``seed=0``).

**Equal tuning.** Every model gets a grid over the settings that matter for it
(``GRIDS``, listed under the table), searched on the **full ranking** of the
validation cases (the held-out movie among every movie the user has no training
interaction with), with models trained on the training interactions from seed 0.
Every gradient-trained model also chooses its number of epochs there, by early
stopping on validation NDCG@10 (at most ``--max-epochs``, patience
``--patience``). The grids cover the L2 penalty of matrix factorization with
BPR, the hinge loss and binary cross-entropy (over the rows of the user, the
interaction and the sampled negatives), its size and learning rate; the
``implicit`` library's ALS (factors, regularization, alpha) and BPR (factors,
learning rate, regularization, iterations); the networks' learning rates; EASE's
``lambda``; the sequence models' windows, decays and learning rates; the blend's
weights.

**Refit for the test.** With its setting and number of epochs chosen, each model
is trained again on training plus validation interactions (everything before
the test case), from each of ``SEEDS``, and scored once on the test cases: on
the full ranking and among 99 sampled negatives
(:func:`mfkit.evaluation.evaluate_leave_one_out`). The table gives the mean over
the seeds and their standard deviation; each case's numbers are averaged over
the seeds before two models are compared.

**One rule for "better".** Rows are compared with :func:`mfkit.stats.paired`:
the 95% interval of the mean per-case difference in full-ranking test NDCG@10,
and the word it licenses (ahead of / level with / behind). Every row is compared
with the leader (the best row on validation), and issue 30's targets are checked
with met / short by.

**Sequence models** read a user's latest ``MAXLEN`` movies; they train on every
step of every history (longer histories cut into windows,
:func:`mfkit.sequences.history_windows`), with the movies rated in the same
second in a fresh order each epoch.

Run ``make bench-ranking`` (more than two hours on two cores). It prints a
markdown table and writes it to ``book/benchmarks/ranking.md``; ``--groups``
runs some groups of models (``factorizations``, ``networks``, ``sequences``) and
writes ``ranking-<groups>.md``. The sequences group fits EASE for its blend
when no other group does.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from common import machine, write
from implicit.als import AlternatingLeastSquares
from implicit.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from mfkit.data import load_movielens
from mfkit.evaluation import (
    evaluate_leave_one_out,
    model_scorer,
    popularity_scorer,
    scorer,
    top_k_for_users,
)
from mfkit.features import Indexer
from mfkit.losses import (
    bpr_loss,
    hinge_loss,
    implicit_bce,
    next_item_bce,
    next_item_ce,
    softmax_loss,
)
from mfkit.metrics import catalog_coverage, novelty
from mfkit.models import (
    EASE,
    GRU4Rec,
    ImplicitMLP,
    MatrixFactorization,
    NeuMF,
    SASRec,
    SoftmaxModel,
)
from mfkit.sampling import NegativeSampler, implicit
from mfkit.sequences import (
    histories,
    history_windows,
    last_positions,
    next_item_examples,
    recency_weights,
    transition_counts,
)
from mfkit.splits import leave_one_out
from mfkit.stats import paired, seed_spread
from mfkit.train import fit

SEEDS = (0, 1, 2)  # the refits for the test; the search on validation uses seed 0
MAXLEN = 200  # the latest movies a sequence model reads (longer histories train in windows)
MF_GRID = {"dim": (32, 64), "lr": (0.003, 0.01), "l2": (0.0, 1e-4, 1e-3, 1e-2)}
NETWORK_GRID = {"lr": (0.001, 0.003, 0.01)}
GRIDS = {
    "MF-BPR, MF-hinge, MF-BCE": MF_GRID,
    "softmax (ch. 5)": {"lr": (0.003, 0.01)},
    "ImplicitMLP, GMF, MLP, NeuMF": NETWORK_GRID,
    "NeuMF, pre-trained": {"lr": (0.0003, 0.001)},
    "EASE": {"lam": (50, 100, 200, 500, 1000)},
    "implicit ALS": {
        "factors": (32, 64, 128),
        "regularization": (0.01, 0.1, 1.0, 3.0, 10.0, 30.0),
        "alpha": (0.5, 1.0, 2.0, 5.0),
    },
    "implicit BPR": {
        "factors": (64, 128),
        "learning_rate": (0.002, 0.005, 0.01),
        "regularization": (0.001, 0.01),
        "iterations": (100, 300),
    },
    "transitions (ch. 9)": {"last": (1, 5, 10, 20, 40), "decay": (0.7, 0.85, 0.9, 1.0)},
    "recency item-item (ch. 9)": {"decay": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)},
    "GRU4Rec, SASRec (ch. 9)": {"lr": (0.001, 0.003, 0.01)},
    "blend (ch. 9)": {"weight of each part": (0, 0.5, 1)},
}
GRID_GROUPS = {
    "factorizations": ["MF-BPR, MF-hinge, MF-BCE", "EASE", "implicit ALS", "implicit BPR"],
    "networks": ["softmax (ch. 5)", "ImplicitMLP, GMF, MLP, NeuMF", "NeuMF, pre-trained"],
    "sequences": [
        "transitions (ch. 9)",
        "recency item-item (ch. 9)",
        "GRU4Rec, SASRec (ch. 9)",
        "blend (ch. 9)",
    ],
}
NEUMF_SHAPE = {"dim": 32, "hidden": (64, 32, 16)}
CHAPTER_8 = ["MF-BPR", "MF-hinge", "MF-BCE", "GMF", "MLP", "NeuMF", "NeuMF, pre-trained", "EASE"]
# Full-ranking test (HR@10, NDCG@10): chapter 8's target for its best model, and
# issue 30's for the models with an outside reference on this split.
TARGETS = {
    "SASRec, softmax (ch. 9)": (0.195, 0.109),
    "GRU4Rec (ch. 9)": (0.175, 0.090),
    "blend (ch. 9)": (0.215, 0.118),
}
CHAPTER_8_TARGET = (0.155, 0.075)
METRICS = ("HR@10", "NDCG@10")


def settings(grid: dict) -> list[dict]:
    """Every combination of a grid's values, as keyword dicts."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def described(setting: dict) -> str:
    return ", ".join(f"{key} {value:g}" for key, value in setting.items())


class Interactions:
    """One set of training interactions, in every form a model reads them."""

    def __init__(self, idx: Indexer, frame: pd.DataFrame, seed: int = 0) -> None:
        self.idx, self.frame, self.n = idx, frame, idx.n_movies
        self.users, self.movies = idx.pairs(frame)
        self.bags = idx.bags(frame)
        ids = {"users": idx.users.ids, "items": idx.movies.ids}
        self.sampler = NegativeSampler(frame, self.n, **ids, seed=seed)
        self.sequences = histories(frame, idx)  # whole histories, for the counting models
        self.recent = histories(frame, idx, maxlen=MAXLEN)  # what a sequence model reads
        self.draws = torch.Generator().manual_seed(seed)

    def triples(self, epoch):
        """Every interaction with one fresh uniform negative (BPR, hinge)."""
        negatives = torch.from_numpy(self.sampler.sample_for(self.users.numpy()))
        return self.users, self.movies, negatives

    def labelled(self, epoch):
        """Every interaction and four fresh uniform negatives each (binary cross-entropy)."""
        return self.sampler.training_data(ratio=4)

    def pairs(self, epoch):
        return self.users, self.movies

    def next_items(self, epoch):
        """Every step of every history as a next-movie example, ties in a new order.

        Histories longer than the model reads are cut into windows
        (:func:`mfkit.sequences.history_windows`), so their early steps train too;
        interactions rated in the same second are shuffled afresh each epoch.
        """
        seqs = histories(self.frame, self.idx, shuffle_ties=True, seed=epoch)
        return next_item_examples(history_windows(seqs, self.n, MAXLEN + 1))

    def next_items_negatives(self, epoch):
        """Next-item examples and one random negative per step (SASRec's BCE)."""
        inputs, targets = self.next_items(epoch)
        return inputs, targets, torch.randint(self.n, targets.shape, generator=self.draws)


@dataclass
class Split:
    """Chapter 8's split; the training interactions, and training plus validation per seed."""

    idx: Indexer
    genres: torch.Tensor
    before_test: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def __post_init__(self) -> None:
        self.fitting = Interactions(self.idx, self.train)
        self.refitting = {seed: Interactions(self.idx, self.before_test, seed) for seed in SEEDS}

    @classmethod
    def load(cls) -> Split:
        ml = load_movielens(progress=False)
        before_test, test = leave_one_out(implicit(ml.ratings), seed=0)
        train, valid = leave_one_out(before_test, seed=0)
        genres = torch.tensor(ml.movies[ml.genres].to_numpy(), dtype=torch.float32)
        return cls(Indexer.from_movielens(ml), genres, before_test, train, valid, test)

    def cases(self, score, on: str = "valid", negatives: int | None = None) -> pd.DataFrame:
        """HR@10 and NDCG@10 of each validation or test case, a row each."""
        history, held_out = (
            (self.train, self.valid) if on == "valid" else (self.before_test, self.test)
        )
        frame = evaluate_leave_one_out(
            score, self.idx, history, held_out, negatives=negatives, per_case=True
        )
        return frame[["hit_rate@10", "ndcg@10"]].set_axis(METRICS, axis=1)

    def valid_ndcg(self, score) -> float:
        return float(self.cases(score)["NDCG@10"].mean())

    def test_lists(self, score) -> torch.Tensor:
        """Each test user's top 10 on the full ranking (chapter 13's coverage and novelty)."""
        if isinstance(score, torch.nn.Module):
            score = model_scorer(score, self.idx, self.before_test)
        seen_users, seen_movies = self.idx.pairs(self.before_test)
        users = self.idx.pairs(self.test)[0]
        return top_k_for_users(score, users, seen_users, seen_movies, self.idx.n_movies, 10)

    def beyond_accuracy(self, lists: list[torch.Tensor]) -> dict[str, float]:
        """Coverage and novelty of the test lists, averaged over the refit seeds.

        Novelty's popularity is each movie's share of users in the history before the test
        case; a movie nobody rated there counts as rated once, so that it stays finite.
        """
        seen = torch.bincount(self.idx.pairs(self.before_test)[1], minlength=self.idx.n_movies)
        counts, n = seen.clamp(min=1).numpy(), self.idx.n_users
        return {
            "coverage": float(np.mean([catalog_coverage(t, self.idx.n_movies) for t in lists])),
            "novelty (bits)": float(np.mean([novelty(t, counts, n) for t in lists])),
        }


@dataclass
class Row:
    """One model: its choice on validation, and its refits' test results."""

    valid_ndcg: float
    choice: str
    seconds: float
    valid_score: Callable
    test_scores: list  # one scorer per refit seed
    models: list = field(default_factory=list)  # the refits, where a later model needs them
    full: list = field(default_factory=list)  # per seed: the test cases on the full ranking
    sampled: list = field(default_factory=list)  # per seed: among 99 sampled negatives
    beyond: dict = field(default_factory=dict)  # coverage and novelty of the test lists

    def cases(self, protocol: str = "full") -> pd.DataFrame:
        """Each test case's numbers, averaged over the refit seeds."""
        frames = getattr(self, protocol)
        return sum(frames) / len(frames)

    def per_seed(self, metric: str = "NDCG@10") -> list[float]:
        return [float(frame[metric].mean()) for frame in self.full]


@dataclass
class Recipe:
    """How to build, train and score one gradient-trained model."""

    build: Callable  # (setting, seed, interactions) -> model
    loss: Callable  # (setting, interactions) -> loss
    data: str  # the Interactions method that gives each epoch's data
    grid: dict
    batch_size: int = 1024
    score: Callable = lambda model, interactions: model  # noqa: E731


def plain(loss):
    """A loss that reads no interactions; ``l2`` from the setting where it has one."""
    return lambda setting, _: functools.partial(loss, l2=setting["l2"]) if "l2" in setting else loss


class Bench:
    """Tunes every model on validation, refits it for the test, and keeps its row."""

    def __init__(self, split: Split, max_epochs: int, patience: int) -> None:
        self.split, self.max_epochs, self.patience = split, max_epochs, patience
        self.rows: dict[str, Row] = {}
        users, movies = split.idx.pairs(split.valid)
        negatives = torch.from_numpy(split.fitting.sampler.sample_for(users.numpy()))
        labels = torch.cat([torch.ones(len(users)), torch.zeros(len(users))])
        recent = split.fitting.recent
        targets = torch.full_like(recent, split.idx.n_movies)
        targets[users, last_positions(recent, split.idx.n_movies)[users]] = movies
        random_movies = torch.randint(
            split.idx.n_movies, targets.shape, generator=torch.Generator().manual_seed(0)
        )
        self.valid_for = {  # the validation data of each kind of loss, in its own format
            "triples": (users, movies, negatives),
            "labelled": (users.repeat(2), torch.cat([movies, negatives]), labels),
            "pairs": (users, movies),
            "next_items": (recent, targets),
            "next_items_negatives": (recent, targets, random_movies),
        }

    def add(self, name: str, row: Row) -> Row:
        """Score the refits on the test cases and keep the row."""
        for score in row.test_scores:
            row.full.append(self.split.cases(score, "test"))
            row.sampled.append(self.split.cases(score, "test", negatives=99))
        row.beyond = self.split.beyond_accuracy([self.split.test_lists(s) for s in row.test_scores])
        self.rows[name] = row
        test = np.mean(row.per_seed())
        print(
            f"{name:28s} valid {row.valid_ndcg:.4f} test {test:.4f}  {row.choice}", file=sys.stderr
        )
        return row

    def train(self, recipe: Recipe, setting: dict, seed: int, interactions, epochs, valid=None):
        model = recipe.build(setting, seed, interactions)

        def metric(model, *data):
            return self.split.valid_ndcg(recipe.score(model, interactions))

        history = fit(
            model,
            getattr(interactions, recipe.data),
            recipe.loss(setting, interactions),
            valid=valid,
            metric=metric if valid is not None else None,
            minimize=False,
            metric_on_train=False,
            epochs=epochs,
            patience=self.patience if valid is not None else None,
            lr=setting["lr"],
            batch_size=recipe.batch_size,
            seed=seed,
            progress=False,
        )
        return model, history

    def gradient(self, name: str, recipe: Recipe) -> Row:
        """Search the grid and the epochs on validation (seed 0); refit from every seed."""
        start, found = time.perf_counter(), []
        fitting, valid = self.split.fitting, self.valid_for[recipe.data]
        for setting in settings(recipe.grid):
            model, history = self.train(recipe, setting, 0, fitting, self.max_epochs, valid)
            found.append((max(history.valid_metric), setting, history.best_epoch, model))
        ndcg, setting, epochs, model = max(found, key=lambda found: found[0])
        refits = [
            self.train(recipe, setting, seed, self.split.refitting[seed], epochs)[0]
            for seed in SEEDS
        ]
        scores = [
            recipe.score(m, self.split.refitting[s]) for m, s in zip(refits, SEEDS, strict=True)
        ]
        row = Row(ndcg, f"{described(setting)}; {epochs} epochs", time.perf_counter() - start,
                  recipe.score(model, fitting), scores, refits)  # fmt: skip
        return self.add(name, row)

    def fitted(self, name: str, fit_on: Callable, grid: dict, seeds=None) -> Row:
        """A model fit in closed form or by a library: ``fit_on(interactions, setting, seed)``."""
        start = time.perf_counter()
        fits = [(s, fit_on(self.split.fitting, s, 0)) for s in settings(grid)]
        ndcg = [self.split.valid_ndcg(score) for _, score in fits]
        best = int(np.argmax(ndcg))
        setting = fits[best][0]
        scores = [fit_on(self.split.refitting[s], setting, s) for s in seeds or SEEDS]
        choice = described(setting) or "nothing to choose"
        row = Row(ndcg[best], choice, time.perf_counter() - start, fits[best][1], scores)
        return self.add(name, row)


def library(model_class, interactions: Interactions, setting: dict, seed: int):
    """Fit an ``implicit`` model (BPR on one thread: reproducible); score by a dot product."""
    threads = {"num_threads": 1} if model_class is BayesianPersonalizedRanking else {}
    with threadpool_limits(1, "blas"):  # implicit asks for single-threaded BLAS (and checks)
        model = model_class(**setting, random_state=seed, **threads)
        model.fit(sp.csr_matrix(interactions.bags.numpy()), show_progress=False)
    users = torch.from_numpy(np.asarray(model.user_factors))
    items = torch.from_numpy(np.asarray(model.item_factors))
    return lambda rows: users[rows] @ items.T


def matrix_scorer(scores: torch.Tensor):
    return lambda rows: scores[rows]


def factorization_models(bench: Bench) -> None:
    """Chapter 8's factorizations and EASE, the ``implicit`` peers, and most popular."""
    split = bench.split
    n_users, n_movies = split.idx.n_users, split.idx.n_movies
    bench.fitted("most popular", lambda i, s, seed: popularity_scorer(split.idx, i.frame), {}, (0,))

    def mf(setting, seed, _):
        return MatrixFactorization(n_users, n_movies, dim=setting["dim"], init_std=0.1, seed=seed)

    for name, loss, data in [
        ("MF-BPR", bpr_loss, "triples"),
        ("MF-hinge", hinge_loss, "triples"),
        ("MF-BCE", implicit_bce, "labelled"),
    ]:
        bench.gradient(name, Recipe(mf, plain(loss), data, MF_GRID))

    ease(bench)
    bench.fitted(
        "implicit ALS", functools.partial(library, AlternatingLeastSquares), GRIDS["implicit ALS"]
    )
    bench.fitted(
        "implicit BPR",
        functools.partial(library, BayesianPersonalizedRanking),
        GRIDS["implicit BPR"],
    )


def ease(bench: Bench) -> None:
    bench.fitted("EASE", lambda i, s, seed: EASE(i.bags, s["lam"]).score_all, GRIDS["EASE"], (0,))


def network_models(bench: Bench) -> None:
    """Chapters 5, 7 and 8: the softmax model, chapter 7's network, GMF, MLP and NeuMF."""
    split = bench.split
    n_users, n_movies = split.idx.n_users, split.idx.n_movies
    bench.gradient(
        "softmax (ch. 5)",
        Recipe(
            lambda s, seed, i: SoftmaxModel(n_movies, dim=32, seed=seed),
            lambda s, i: functools.partial(softmax_loss, bags=i.bags),
            "pairs",
            GRIDS["softmax (ch. 5)"],
            batch_size=512,
            score=lambda model, i: scorer(model, bags=i.bags),
        ),
    )
    bench.gradient(
        "ImplicitMLP (ch. 7)",
        Recipe(
            lambda s, seed, i: ImplicitMLP(
                n_users, n_movies, split.genres, dim=32, hidden=(64,), dropout=0.2, seed=seed
            ),
            plain(implicit_bce),
            "labelled",
            NETWORK_GRID,
            batch_size=4096,
        ),
    )

    def neumf(branches):
        return lambda s, seed, i: NeuMF(
            n_users, n_movies, branches=branches, **NEUMF_SHAPE, seed=seed
        )

    for name, branches in {"GMF": ("gmf",), "MLP": ("mlp",), "NeuMF": ("gmf", "mlp")}.items():
        bench.gradient(name, Recipe(neumf(branches), plain(implicit_bce), "labelled", NETWORK_GRID))

    def pretrained(setting, seed, interactions):
        """NeuMF from the GMF and MLP trained on the same interactions from the same seed."""
        gmf, mlp = (bench.rows[name] for name in ("GMF", "MLP"))
        if interactions is split.fitting:  # the search on validation: the searched branches
            branches = gmf.valid_score, mlp.valid_score
        else:
            branches = gmf.models[SEEDS.index(seed)], mlp.models[SEEDS.index(seed)]
        return NeuMF.from_pretrained(*branches, alpha=0.5)

    row = bench.gradient(
        "NeuMF, pre-trained",
        Recipe(pretrained, plain(implicit_bce), "labelled", GRIDS["NeuMF, pre-trained"]),
    )
    row.seconds += bench.rows["GMF"].seconds + bench.rows["MLP"].seconds


def sequence_models(bench: Bench) -> None:
    """Chapter 9: the order-aware models and their blend with EASE."""
    n = bench.split.idx.n_movies
    if "EASE" not in bench.rows:  # run without the factorizations group: the blend needs it
        ease(bench)

    def transitions(i, setting, seed):
        counts = transition_counts(i.sequences, n)
        return matrix_scorer(recency_weights(i.sequences, n, **setting) @ counts)

    bench.fitted("transitions (ch. 9)", transitions, GRIDS["transitions (ch. 9)"], (0,))

    def item_item(i, setting, seed):
        columns = i.bags / i.bags.norm(dim=0).clamp(min=1e-9)
        similar = (columns.T @ columns).fill_diagonal_(0.0)
        return matrix_scorer(recency_weights(i.sequences, n, **setting) @ similar)

    bench.fitted("recency item-item (ch. 9)", item_item, GRIDS["recency item-item (ch. 9)"], (0,))

    def next_movie(model, i):
        return lambda rows: model.score_next(i.recent[rows])

    def gru(setting, seed, _):
        return GRU4Rec(n, dim=64, dropout=0.2, seed=seed)

    def sasrec(setting, seed, _):
        return SASRec(n, maxlen=MAXLEN, seed=seed)

    grid = GRIDS["GRU4Rec, SASRec (ch. 9)"]
    for name, build, loss, data in [
        ("GRU4Rec (ch. 9)", gru, next_item_ce, "next_items"),
        ("SASRec, BCE (ch. 9)", sasrec, next_item_bce, "next_items_negatives"),
        ("SASRec, softmax (ch. 9)", sasrec, next_item_ce, "next_items"),
    ]:
        bench.gradient(
            name, Recipe(build, plain(loss), data, grid, batch_size=128, score=next_movie)
        )
    blend(bench)


def blend(bench: Bench) -> None:
    """EASE and the three best order-aware models on validation, standardized per user."""
    everyone = torch.arange(bench.split.idx.n_users)
    order_aware = [name for name in bench.rows if name.endswith("(ch. 9)")]
    best = sorted(order_aware, key=lambda name: bench.rows[name].valid_ndcg, reverse=True)[:3]
    parts = [bench.rows[name] for name in ["EASE", *best]]

    def standardized(score):
        s = score(everyone)
        return (s - s.mean(dim=1, keepdim=True)) / s.std(dim=1, keepdim=True)

    valid = [standardized(part.valid_score) for part in parts]
    test = [[standardized(score) for score in part.test_scores] for part in parts]

    def mixed(weights, scores):
        return matrix_scorer(sum(w * s for w, s in zip(weights, scores, strict=True)))

    start = time.perf_counter()
    grid = [
        w for w in itertools.product(*[GRIDS["blend (ch. 9)"]["weight of each part"]] * 4) if any(w)
    ]
    ndcg = {w: bench.split.valid_ndcg(mixed(w, valid)) for w in grid}
    weights = max(ndcg, key=ndcg.get)
    # EASE and the counting models are fit once (no seed); the networks have a refit per seed.
    per_seed = [[scores[min(k, len(scores) - 1)] for scores in test] for k in range(len(SEEDS))]
    used = [part for part, w in zip(parts, weights, strict=True) if w]
    row = Row(
        ndcg[weights],
        ", ".join(f"{name} {w:g}" for name, w in zip(["EASE", *best], weights, strict=True)),
        time.perf_counter() - start + sum(part.seconds for part in used),
        mixed(weights, valid),
        [mixed(weights, scores) for scores in per_seed],
    )
    bench.add("blend (ch. 9)", row)


def compare(a: Row, b: Row):
    """The paired rule on full-ranking test NDCG@10, each case averaged over the seeds."""
    return paired(a.cases()["NDCG@10"], b.cases()["NDCG@10"])


def summary(rows: dict[str, Row]) -> pd.DataFrame:
    """The table: full and sampled test means, the seeds' spread, validation, seconds."""
    leader = max(rows, key=lambda name: rows[name].valid_ndcg)
    records = {}
    for name, row in rows.items():
        full, sampled = row.cases("full").mean(), row.cases("sampled").mean()
        spread = seed_spread(row.per_seed())[1] if len(row.full) > 1 else float("nan")
        versus = compare(row, rows[leader])
        records[name] = {
            "full HR@10": full["HR@10"],
            "full NDCG@10": full["NDCG@10"],
            "sd over seeds": spread,
            "sampled HR@10": sampled["HR@10"],
            "sampled NDCG@10": sampled["NDCG@10"],
            "valid NDCG@10": row.valid_ndcg,
            **row.beyond,
            "seconds": row.seconds,
            "against the leader": "leader"
            if name == leader
            else f"{versus.word} ({versus.interval()})",
        }
    return pd.DataFrame(records).T.sort_values("full NDCG@10", ascending=False)


def targets(rows: dict[str, Row]) -> list[str]:
    """Issue 30's targets (and chapter 8's), each with met / short by."""

    def against(name, goal):
        if name not in rows:
            return f"| {name} | HR@10 >= {goal[0]} and NDCG@10 >= {goal[1]} | | not in this run |"
        full = rows[name].cases().mean()
        gaps = [(m, float(full[m]) - g) for m, g in zip(METRICS, goal, strict=True)]
        verdict = (
            "met"
            if all(d >= 0 for _, d in gaps)
            else "short by " + " and ".join(f"{-d:.3f} in {m}" for m, d in gaps if d < 0)
        )
        have = " / ".join(f"{full[m]:.3f}" for m in METRICS)
        return f"| {name} | HR@10 >= {goal[0]} and NDCG@10 >= {goal[1]} | {have} | {verdict} |"

    chapter_8 = max((n for n in CHAPTER_8 if n in rows), key=lambda name: rows[name].valid_ndcg)
    lines = ["| model | target (full ranking, test) | HR@10 / NDCG@10 | |", "|---|---|---|---|"]
    lines.append(
        against(chapter_8, CHAPTER_8_TARGET).replace(
            f"| {chapter_8} |",
            f"| {chapter_8} (on validation, the best of chapter 8's models in this run) |",
            1,
        )
    )
    lines += [against(name, goal) for name, goal in TARGETS.items()]
    ndcg = {name: float(row.cases()["NDCG@10"].mean()) for name, row in rows.items()}
    for name, peer, allowance, goal in [
        ("MF-BPR", "implicit BPR", 0.0, "NDCG@10 >= implicit BPR's"),
        ("implicit ALS", "EASE", 0.01, "NDCG@10 within 0.01 of EASE's"),
    ]:
        if name not in rows or peer not in rows:
            lines.append(f"| {name} | {goal} | | not in this run |")
            continue
        versus, gap = compare(rows[name], rows[peer]), ndcg[name] - (ndcg[peer] - allowance)
        lines.append(
            f"| {name} | {goal} | {ndcg[name]:.3f} against {ndcg[peer]:.3f}; "
            f"{versus.word} it ({versus.interval()}) | "
            f"{'met' if gap >= 0 else f'short by {-gap:.3f}'} |"
        )
    return lines


def render(rows: dict[str, Row], split: Split, args) -> str:
    table = summary(rows)
    leader = table.index[table["against the leader"] == "leader"][0]
    columns = list(table.columns)
    lines = [
        f"Machine: {machine()}. ML-100K, every rating an interaction; each user's latest "
        "interaction is the test case and the one before it the validation case "
        f"({len(split.train):,} training interactions, {len(split.valid)} validation and "
        f"{len(split.test)} test cases). Every model searched the grid listed below on the "
        "full-ranking validation NDCG@10 (column `valid NDCG@10`), with epochs by early "
        f"stopping (at most {args.max_epochs}, patience {args.patience}), then was trained "
        "again on training plus validation interactions, from seeds "
        f"{', '.join(map(str, SEEDS))} where a seed matters, and scored once on the test "
        "cases. `full`: the held-out movie ranked among every movie the user has no earlier "
        "interaction with; `sampled`: among 99 sampled negatives. Test columns are means "
        "over the seeds; `sd over seeds`: the standard deviation of full NDCG@10 over "
        "them. `against the leader`: the paired rule (`mfkit.stats.paired`) on each test "
        "case's full NDCG@10, averaged over the seeds, with the 95% interval of the mean "
        "difference. `coverage`: the share of the catalogue in at least one test user's top "
        "10, and `novelty (bits)`: the mean self-information of a recommended movie (chapter "
        "13), both averaged over the seeds. Seconds: the grid search with its validation "
        "rankings, plus the refits.",
        "",
        f"Groups of models in this run: {', '.join(args.groups.split(','))} "
        f"(of {', '.join(GROUPS)}).",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1) + "---|",
    ]
    for name, row in table.iterrows():
        cells = [f"{row[c]:.3f}" for c in columns[:3]]
        cells[2] = "" if np.isnan(row["sd over seeds"]) else f"{row['sd over seeds']:.4f}"
        cells += [f"{row[c]:.3f}" for c in columns[3:8]]
        cells += [f"{row['seconds']:.0f}", row["against the leader"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"The leader on validation is {leader}.", "", "Targets:", "", *targets(rows), ""]
    lines += ["Grids, each searched on validation:", ""]
    shown = [name for group in args.groups.split(",") for name in GRID_GROUPS[group]]
    for name, grid in ((name, GRIDS[name]) for name in shown):
        values = [f"{k} in {{{', '.join(f'{v:g}' for v in vs)}}}" for k, vs in grid.items()]
        lines.append(f"- {name}: " + "; ".join(values))
    lines += ["", "Choices made on validation:", ""]
    lines += [f"- {name}: {row.choice}" for name, row in rows.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-epochs", type=int, default=40, help="most epochs per model")
    parser.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without a better validation NDCG@10 before stopping",
    )
    parser.add_argument(
        "--groups",
        default=",".join(GROUPS),
        help=f"comma-separated groups of models to run (default: all of {', '.join(GROUPS)})",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    groups = args.groups.split(",")
    if unknown := set(groups) - set(GROUPS):
        parser.error(f"unknown group(s) {sorted(unknown)}: expected some of {list(GROUPS)}")
    split = Split.load()
    bench = Bench(split, args.max_epochs, args.patience)
    for group in groups:
        GROUPS[group](bench)
    text = render(bench.rows, split, args)
    print(text)
    if not args.no_write:
        write("ranking" if set(groups) == set(GROUPS) else "-".join(["ranking", *groups]), text)
    return 0


GROUPS = {  # the blend of chapter 9 needs EASE: the sequences group fits it if no group did
    "factorizations": factorization_models,
    "networks": network_models,
    "sequences": sequence_models,
}


if __name__ == "__main__":
    sys.exit(main())
