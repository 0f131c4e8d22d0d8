"""Ranking benchmark: every ranking model of the course on one leave-one-out split.

The protocol is chapter 7's, as chapter 8 sets it up: every ML-100K rating is an
interaction (:func:`mfkit.sampling.implicit`), each user's latest interaction is
the test case and the one before it the validation case
(:func:`mfkit.splits.leave_one_out` twice, ``seed=0``). Models train on the
remaining interactions. Every choice is made on the **full ranking** of the
validation cases (the held-out movie among every movie the user has no training
interaction with): the number of epochs of every gradient-trained model (early
stopping on validation NDCG@10, best weights restored) and EASE's ``lambda``
(a grid). The test cases are scored once, on the full ranking and among 99
sampled negatives (:func:`mfkit.evaluation.evaluate_leave_one_out`).

Rows, with the settings of the chapter that teaches each model:

* most popular (:func:`mfkit.evaluation.popularity_scorer`);
* chapter 5's softmax model (:class:`mfkit.models.SoftmaxModel`) with the base
  setting of that chapter's sweep (32 dimensions, Adam at 0.01, batches of 512,
  :func:`mfkit.losses.softmax_loss`; the sweep itself ran on u1): its input
  bags are the training interactions, and at test time the interactions before
  the test case (so the validation case is in the bag, as it is for EASE);
* chapter 7's MF-BCE (biases, 32 dimensions, Adam at 0.01, batches of 4,096, four
  uniform negatives per interaction) and its tuned network
  (:class:`mfkit.models.ImplicitMLP`, one hidden layer of 64, 32 dimensions,
  dropout 0.2, Adam at 0.01: the settings its studies keep);
* chapter 8's matrix factorization trained with BPR, the hinge loss and binary
  cross-entropy (32 dimensions, no biases, Adam at 0.003), GMF, the MLP branch,
  NeuMF from scratch (Adam at 0.003) and from the pre-trained branches (Adam at
  0.001), and EASE (``lambda`` from the grid; test scores from the interactions
  before the test case, as in the chapter);
* chapter 9's order-aware models, on histories in time order
  (:func:`mfkit.sequences.histories`): transition counts of the last few movies
  with a recency decay, a recency-weighted item-item (cosine) model, both with
  their settings from a grid on validation; GRU4Rec (:class:`mfkit.models.GRU4Rec`)
  and SASRec (:class:`mfkit.models.SASRec`: 64 dimensions, 2 blocks, 1 head, the
  latest 50 movies, dropout 0.2) trained with the full softmax
  (:func:`mfkit.losses.next_item_ce`), and SASRec with one sampled negative
  (:func:`mfkit.losses.next_item_bce`), Adam at 0.01, batches of 128 histories;
  and the chapter's blend: EASE and the three best of these on validation,
  scores standardized per user and added with weights in {0, 1/2, 1} chosen on
  validation;
* the named peers, the ``implicit`` library's ALS and BPR with chapter 8's
  settings: 64 factors and the library's defaults otherwise (ALS: regularization
  0.01, 15 iterations; BPR: learning rate 0.01, 100 iterations), BPR on one thread
  (``num_threads=1``), since its parallel updates vary from run to run.

The chapters cap their epochs to stay quick; here every gradient-trained model
may run up to ``--max-epochs`` epochs and stops after ``--patience`` epochs
without a better validation NDCG@10. Seconds cover training with the
validation rankings after each epoch (for EASE, the whole ``lambda`` grid; for
NeuMF pre-trained, its two branches too).

Run ``make bench-ranking``. It prints a markdown table and writes it to
``book/benchmarks/ranking.md``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from common import machine, write
from implicit.als import AlternatingLeastSquares
from implicit.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from mfkit.data import load_movielens
from mfkit.evaluation import evaluate_leave_one_out, popularity_scorer, scorer
from mfkit.features import Indexer
from mfkit.losses import (
    bpr_loss,
    hinge_loss,
    implicit_bce,
    next_item_bce,
    next_item_ce,
    softmax_loss,
)
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
    last_positions,
    next_item_examples,
    recency_weights,
    transition_counts,
)
from mfkit.splits import leave_one_out
from mfkit.train import fit

EASE_GRID = (50, 100, 200, 500, 1000)
NEUMF_SHAPE = {"dim": 32, "hidden": (64, 32, 16), "seed": 0}
TARGET = {"HR@10": 0.155, "NDCG@10": 0.075}  # issue 21's target on the full ranking
SEQUENCE_TARGET = {"HR@10": 0.21, "NDCG@10": 0.115}  # issue 22's, for chapter 9's best model
MAXLEN = 50  # the latest movies a sequence model reads
TRANSITION_GRID = ((1, 1.0), (5, 0.7), (10, 0.8), (20, 0.85), (20, 0.9), (40, 0.9))
ITEM_DECAY_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
COLUMNS = ["full HR@10", "full NDCG@10", "sampled HR@10", "sampled NDCG@10", "seconds"]


@dataclass
class Split:
    """The data every model shares: chapter 8's split, its index and tensors."""

    idx: Indexer
    genres: torch.Tensor
    before_test: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    @classmethod
    def load(cls) -> Split:
        ml = load_movielens(progress=False)
        before_test, test = leave_one_out(implicit(ml.ratings), seed=0)
        train, valid = leave_one_out(before_test, seed=0)
        genres = torch.tensor(ml.movies[ml.genres].to_numpy(), dtype=torch.float32)
        return cls(Indexer.from_movielens(ml), genres, before_test, train, valid, test)

    def rows(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        return self.idx.pairs(frame)

    def sampler(self) -> NegativeSampler:
        """Uniform negatives for the training users, never one of their interactions."""
        ids = {"users": self.idx.users.ids, "items": self.idx.movies.ids}
        return NegativeSampler(self.train, self.idx.n_movies, **ids, seed=0)

    def full_ranking(self, score, history=None, held_out=None) -> tuple[float, float]:
        """HR@10 and NDCG@10 among all unseen movies (validation cases by default)."""
        history = self.train if history is None else history
        held_out = self.valid if held_out is None else held_out
        result = evaluate_leave_one_out(score, self.idx, history, held_out, negatives=None)
        return result["hit_rate@10"], result["ndcg@10"]

    def report(self, score, seconds: float, valid_score=None) -> dict:
        """One row: full and sampled test numbers, seconds, full validation NDCG@10."""
        valid_ndcg = self.full_ranking(valid_score or score)[1]
        full_hr, full_ndcg = self.full_ranking(score, self.before_test, self.test)
        sampled = evaluate_leave_one_out(score, self.idx, self.before_test, self.test)
        values = [full_hr, full_ndcg, sampled["hit_rate@10"], sampled["ndcg@10"], seconds]
        return {**dict(zip(COLUMNS, values, strict=True)), "valid NDCG@10": valid_ndcg}


class Trainer:
    """Train with early stopping on full-ranking validation NDCG@10 (best weights kept)."""

    def __init__(self, split: Split, max_epochs: int, patience: int) -> None:
        self.split, self.max_epochs, self.patience = split, max_epochs, patience
        self.user_ix, self.movie_ix = split.rows(split.train)
        valid_users, valid_movies = split.rows(split.valid)
        negatives = torch.from_numpy(split.sampler().sample_for(valid_users.numpy()))
        self.valid_triples = valid_users, valid_movies, negatives
        labels = torch.cat([torch.ones(len(valid_users)), torch.zeros(len(valid_users))])
        self.valid_pairs = valid_users.repeat(2), torch.cat([valid_movies, negatives]), labels

    def train(self, model, data, loss, valid, *, lr, batch_size=1024, ranker=None):
        """Train ``model``; ``ranker(model)`` scores users (default: the model itself)."""

        def valid_ndcg(model, *data):
            return self.split.full_ranking(ranker(model) if ranker else model)[1]

        start = time.perf_counter()
        history = fit(
            model,
            data,
            loss,
            valid=valid,
            metric=valid_ndcg,
            minimize=False,
            metric_on_train=False,
            epochs=self.max_epochs,
            patience=self.patience,
            lr=lr,
            batch_size=batch_size,
            seed=0,
            progress=False,
        )
        seconds = time.perf_counter() - start
        choice = f"{history.best_epoch} of {history.epochs} epochs"
        print(f"  {choice}, {seconds:.1f} s", file=sys.stderr)
        return model, seconds, choice

    def triples(self):
        """Every training interaction with one fresh uniform negative, every epoch."""
        sampler = self.split.sampler()
        return lambda epoch: (
            self.user_ix,
            self.movie_ix,
            torch.from_numpy(sampler.sample_for(self.user_ix.numpy())),
        )

    def bce_data(self):
        """Every training interaction and four fresh uniform negatives each, every epoch."""
        sampler = self.split.sampler()
        return lambda epoch: sampler.training_data(ratio=4)


def library_model(model, X: torch.Tensor):
    """Fit an ``implicit`` model on the interactions ``X``; score by a dot product."""
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):  # implicit asks for single-threaded BLAS
        model.fit(sp.csr_matrix(X.numpy()), show_progress=False)
    users = torch.from_numpy(np.asarray(model.user_factors))
    items = torch.from_numpy(np.asarray(model.item_factors))
    return (lambda rows: users[rows] @ items.T), time.perf_counter() - start


def sequence_models(split: Split, t: Trainer, ease: EASE, add) -> list[str]:
    """Chapter 9's rows (and their blend); returns the names of the rows it added."""
    idx, n = split.idx, split.idx.n_movies
    everyone = torch.arange(idx.n_users)
    valid_seqs, test_seqs = histories(split.train, idx), histories(split.before_test, idx)
    scores = {"EASE": (ease.score_all(everyone), idx.bags(split.before_test) @ ease.B)}
    seconds = {"EASE": 0.0}

    def add_scores(name, valid_scores, test_scores, took, choice):
        scores[name], seconds[name] = (valid_scores, test_scores), took
        add(name, lambda rows: test_scores[rows], took, choice, lambda rows: valid_scores[rows])

    def best(grid, valid_scores_of):
        ndcg = {g: split.full_ranking(lambda rows, g=g: valid_scores_of(g)[rows])[1] for g in grid}
        return max(ndcg, key=ndcg.get)

    start = time.perf_counter()
    counts = transition_counts(valid_seqs, n)

    def transitions(seqs, last, decay):
        return recency_weights(seqs, n, last=last, decay=decay) @ counts

    last, decay = best(TRANSITION_GRID, lambda g: transitions(valid_seqs, *g))
    add_scores(
        "transitions (ch. 9)",
        transitions(valid_seqs, last, decay),
        transitions(test_seqs, last, decay),
        time.perf_counter() - start,
        f"last {last} movies, decay {decay}",
    )
    start = time.perf_counter()
    X = idx.bags(split.train)
    columns = X / X.norm(dim=0).clamp(min=1e-9)
    similar = (columns.T @ columns).fill_diagonal_(0.0)
    decay = best(ITEM_DECAY_GRID, lambda d: recency_weights(valid_seqs, n, decay=d) @ similar)
    add_scores(
        "recency item-item (ch. 9)",
        recency_weights(valid_seqs, n, decay=decay) @ similar,
        recency_weights(test_seqs, n, decay=decay) @ similar,
        time.perf_counter() - start,
        f"decay {decay}",
    )

    inputs, targets = next_item_examples(histories(split.train, idx, maxlen=MAXLEN + 1))
    valid_inputs = histories(split.train, idx, maxlen=MAXLEN)
    test_inputs = histories(split.before_test, idx, maxlen=MAXLEN)
    valid_users, valid_movies = split.rows(split.valid)
    valid_targets = torch.full_like(valid_inputs, n)
    valid_targets[valid_users, last_positions(valid_inputs, n)[valid_users]] = valid_movies
    sampling = torch.Generator().manual_seed(0)
    valid_negatives = torch.randint(n, valid_targets.shape, generator=sampling)

    def with_negatives(epoch):
        return inputs, targets, torch.randint(n, targets.shape, generator=sampling)

    def ranker(model):
        return lambda rows: model.score_next(valid_inputs[rows])

    runs = {
        "GRU4Rec (ch. 9)": (GRU4Rec(n, dim=64, dropout=0.2, seed=0), next_item_ce),
        "SASRec, BCE (ch. 9)": (SASRec(n, maxlen=MAXLEN, seed=0), next_item_bce),
        "SASRec, softmax (ch. 9)": (SASRec(n, maxlen=MAXLEN, seed=0), next_item_ce),
    }
    for name, (model, loss) in runs.items():
        data = with_negatives if loss is next_item_bce else (inputs, targets)
        valid = (valid_inputs, valid_targets, valid_negatives)[: 3 if loss is next_item_bce else 2]
        model, took, choice = t.train(
            model, data, loss, valid, lr=0.01, batch_size=128, ranker=ranker
        )
        add_scores(
            name, model.score_next(valid_inputs), model.score_next(test_inputs), took, choice
        )

    def standardized(s):
        return (s - s.mean(dim=1, keepdim=True)) / s.std(dim=1, keepdim=True)

    def blend(names, weights, which):
        return sum(w * standardized(scores[m][which]) for w, m in zip(weights, names, strict=True))

    valid_ndcg = {m: split.full_ranking(lambda rows, m=m: scores[m][0][rows])[1] for m in scores}
    order_aware = sorted(valid_ndcg.keys() - {"EASE"}, key=valid_ndcg.get, reverse=True)
    parts = ["EASE", *order_aware[:3]]
    grid = [w for w in itertools.product((0, 0.5, 1), repeat=len(parts)) if any(w)]
    weights = best(grid, lambda w: blend(parts, w, 0))
    took = sum(seconds[m] for m, w in zip(parts, weights, strict=True) if w)
    recipe = ", ".join(f"{m} {w:g}" for m, w in zip(parts, weights, strict=True))
    add_scores("blend (ch. 9)", blend(parts, weights, 0), blend(parts, weights, 1), took, recipe)
    return [name for name in scores if name != "EASE"]


def run_all(split: Split, max_epochs: int, patience: int) -> tuple[pd.DataFrame, dict, list]:
    """Train every model, make its choices on validation, score it on the test cases.

    Returns the table, the choices made on validation, and the names of chapter 9's rows.
    """
    idx, t = split.idx, Trainer(split, max_epochs, patience)
    n_users, n_movies = idx.n_users, idx.n_movies
    rows, choices = {}, {}

    def add(name, score, seconds, choice=None, valid_score=None):
        rows[name] = split.report(score, seconds, valid_score)
        if choice:
            choices[name] = choice
        print(f"{name:28s} full NDCG@10 {rows[name]['full NDCG@10']:.3f}", file=sys.stderr)

    start = time.perf_counter()
    popular = popularity_scorer(idx, split.train)
    add("most popular", popular, time.perf_counter() - start)

    # Chapter 5: the softmax model reads each user's bag of interactions.
    bags = idx.bags(split.train)
    softmax = SoftmaxModel(n_movies, dim=32, seed=0)
    loss = functools.partial(softmax_loss, bags=bags)
    model, seconds, choice = t.train(
        softmax,
        (t.user_ix, t.movie_ix),
        loss,
        t.valid_triples[:2],
        lr=0.01,
        batch_size=512,
        ranker=functools.partial(scorer, bags=bags),
    )
    test_bags = idx.bags(split.before_test)
    add("softmax (ch. 5)", scorer(model, bags=test_bags), seconds, choice, scorer(model, bags=bags))

    # Chapter 7: MF-BCE with biases, and the tuned network.
    mf = MatrixFactorization(n_users, n_movies, dim=32, bias=True, seed=0)
    trained = t.train(mf, t.bce_data(), implicit_bce, t.valid_pairs, lr=0.01, batch_size=4096)
    add("MF-BCE (ch. 7)", *trained)
    net = ImplicitMLP(n_users, n_movies, split.genres, dim=32, hidden=(64,), dropout=0.2, seed=0)
    trained = t.train(net, t.bce_data(), implicit_bce, t.valid_pairs, lr=0.01, batch_size=4096)
    add("ImplicitMLP, tuned (ch. 7)", *trained)

    # Chapter 8: matrix factorization with three losses.
    def new_mf():
        return MatrixFactorization(n_users, n_movies, dim=32, init_std=0.1, seed=0)

    for name, loss in {"MF-BPR": bpr_loss, "MF-hinge": hinge_loss}.items():
        add(f"{name} (ch. 8)", *t.train(new_mf(), t.triples(), loss, t.valid_triples, lr=0.003))
    add("MF-BCE (ch. 8)", *t.train(new_mf(), t.bce_data(), implicit_bce, t.valid_pairs, lr=0.003))

    # Chapter 8: GMF, the MLP branch, NeuMF from scratch and pre-trained.
    branches = {}
    for name, parts in {"GMF": ("gmf",), "MLP": ("mlp",), "NeuMF": ("gmf", "mlp")}.items():
        model = NeuMF(n_users, n_movies, branches=parts, **NEUMF_SHAPE)
        branches[name] = t.train(model, t.bce_data(), implicit_bce, t.valid_pairs, lr=0.003)
        add(f"{name} (ch. 8)", *branches[name])
    pretrained = NeuMF.from_pretrained(branches["GMF"][0], branches["MLP"][0], alpha=0.5)
    model, seconds, choice = t.train(
        pretrained, t.bce_data(), implicit_bce, t.valid_pairs, lr=0.001
    )
    seconds += branches["GMF"][1] + branches["MLP"][1]
    add("NeuMF, pre-trained (ch. 8)", model, seconds, choice)

    # Chapter 8: EASE, lambda chosen on validation; test scores from the rows before test.
    start = time.perf_counter()
    X = idx.bags(split.train)
    fits = {lam: EASE(X, lam) for lam in EASE_GRID}
    ndcg = {lam: split.full_ranking(m.score_all)[1] for lam, m in fits.items()}
    lam = max(ndcg, key=ndcg.get)
    seconds = time.perf_counter() - start
    ease, X_test = fits[lam], idx.bags(split.before_test)
    grid = ", ".join(str(g) for g in EASE_GRID)
    add(
        f"EASE (ch. 8, lambda {lam})",
        lambda rows: X_test[rows] @ ease.B,
        seconds,
        f"lambda {lam} from {{{grid}}}",
        ease.score_all,
    )

    # Chapter 9: the order-aware models and their blend.
    sequence_rows = sequence_models(split, t, ease, add)

    # The named peers: the implicit library's ALS and BPR, chapter 8's settings (64
    # factors, the library's defaults otherwise; BPR on one thread: reproducible).
    als = AlternatingLeastSquares(factors=64, random_state=0)
    add("implicit ALS", *library_model(als, X))
    bpr = BayesianPersonalizedRanking(factors=64, num_threads=1, random_state=0)
    add("implicit BPR", *library_model(bpr, X))
    table = pd.DataFrame(rows).T.sort_values("full NDCG@10", ascending=False)
    return table, choices, sequence_rows


def verdict(row: pd.Series, target: dict) -> str:
    """Whether ``row``'s full-ranking test numbers meet ``target``, and by how much not."""
    gaps = {m: float(row[f"full {m}"]) - goal for m, goal in target.items()}
    words = [f"{'above' if g >= 0 else 'short'} by {abs(g):.3f} in {m}" for m, g in gaps.items()]
    return "meets it" if all(g >= 0 for g in gaps.values()) else "is " + " and ".join(words)


def render(table: pd.DataFrame, choices: dict, sequence_rows: list, split: Split, args) -> str:
    leader = table.index[0]
    best = table.iloc[0]
    chosen = table.loc[sequence_rows, "valid NDCG@10"].idxmax()
    target = " and ".join(f"{m} >= {goal}" for m, goal in SEQUENCE_TARGET.items())
    lines = [
        f"Machine: {machine()}. ML-100K, every rating an interaction; each user's latest "
        "interaction is the test case and the one before it the validation case "
        f"({len(split.train):,} training interactions, {len(split.valid)} validation and "
        f"{len(split.test)} test cases). `full`: the held-out movie ranked among every "
        "movie the user has no earlier interaction with; `sampled`: among 99 sampled "
        "negatives. Each model keeps its chapter's settings (listed in "
        "`benchmarks/ranking.py`); every choice is made on the full-ranking validation "
        f"NDCG@10 (last column): epochs by early stopping (at most {args.max_epochs}, patience "
        f"{args.patience}), EASE's lambda from a grid; the test cases are scored once. "
        "Seconds: training with the validation rankings after each epoch (EASE: the "
        "whole grid; NeuMF pre-trained: its branches too).",
        "",
        "| model | " + " | ".join(COLUMNS) + " | valid NDCG@10 |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for name, row in table.iterrows():
        cells = [f"{row[c]:.3f}" for c in COLUMNS[:-1]]
        cells += [f"{row['seconds']:.1f}", f"{row['valid NDCG@10']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Leader on the full ranking: {leader}, with test HR@10 {best['full HR@10']:.3f} "
        f"and NDCG@10 {best['full NDCG@10']:.3f}. Against chapter 8's target, full-ranking test "
        f"HR@10 >= {TARGET['HR@10']} and NDCG@10 >= {TARGET['NDCG@10']}, it "
        f"{verdict(best, TARGET)}.",
        "",
        f"Chapter 9's best model on validation is {chosen} (test HR@10 "
        f"{table.loc[chosen, 'full HR@10']:.3f}, NDCG@10 {table.loc[chosen, 'full NDCG@10']:.3f}). "
        f"Against chapter 9's target, full-ranking test {target}, it "
        f"{verdict(table.loc[chosen], SEQUENCE_TARGET)}.",
        "",
        "Choices made on validation data:",
        "",
    ]
    lines += [f"- {name}: {choice}" for name, choice in choices.items()]
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
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    split = Split.load()
    table, choices, sequence_rows = run_all(split, args.max_epochs, args.patience)
    text = render(table, choices, sequence_rows, split, args)
    print(text)
    if not args.no_write:
        write("ranking", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
