"""Ranking evaluation: does a model put the movies a user liked at the top?

Introduced in chapter 4. For every test user with at least one *relevant* test
movie (rated ``min_rating`` or more), rank all movies the user did not rate in the
training data, take the top ``k``, and compare them with the relevant ones:
precision, recall, NDCG and hit rate at ``k`` (:mod:`mfkit.metrics`), plus how
much of the catalogue the top-``k`` lists cover and how popular their movies are.

Introduced in chapter 7: :func:`evaluate_leave_one_out`, the protocol of
implicit-feedback papers (NCF): rank each user's held-out interaction among
99 sampled movies the user never interacted with, or among all unseen movies.

Scores come in batches of users as ``(batch, n_movies)`` matrices, so the
ranking is a few matrix products and one ``topk`` per batch, never a Python loop
over movies. Both protocols run on the threads the model asks for (``step_threads``,
:mod:`mfkit.threads`): one for the models that score (user, movie) pairs, whose
mid-sized steps gain little from a second thread and wait for it at every step
when another program keeps a core busy; torch's setting for the others.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from mfkit.features import Indexer
from mfkit.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from mfkit.models import SoftmaxModel, TwoTower
from mfkit.models.sequential import SequenceModel
from mfkit.retrieval import similarity, top_k_unseen
from mfkit.sampling import NegativeSampler
from mfkit.sequences import histories
from mfkit.splits import MissingColumnsError
from mfkit.threads import on_model_threads

__all__ = [
    "evaluate_leave_one_out",
    "evaluate_ranking",
    "known_cases",
    "model_scorer",
    "popularity_scorer",
    "scorer",
    "top_k_for_users",
]

Scorer = Callable[[torch.Tensor], torch.Tensor]


def scorer(
    model: torch.nn.Module,
    measure: str | None = None,
    *,
    bags: torch.Tensor | None = None,
    sequences: torch.Tensor | None = None,
) -> Scorer:
    """A function ``user_rows -> (len(user_rows), n_movies)`` scores for ``model``.

    For matrix factorization, ``measure=None`` uses the model's ``score_all``
    (e.g. predicted ratings with biases), and ``"dot"`` or ``"cosine"`` compare the
    embeddings ``U`` and ``V``. A :class:`~mfkit.models.SoftmaxModel` needs the
    users' ``bags`` (:meth:`mfkit.features.Indexer.bags` of the training data)
    and scores by its logits, or by ``measure`` between ``psi(x)`` and ``V``; so
    does a :class:`~mfkit.models.TwoTower`, scored by its towers' dot products. A
    sequence model (:class:`~mfkit.models.GRU4Rec`, :class:`~mfkit.models.SASRec`)
    reads the users' ``sequences`` (:func:`mfkit.sequences.histories`) and scores the
    movie after each one's latest. A
    model solved in closed form, such as :class:`~mfkit.models.EASE`, has buffers
    but no parameters; it is scored where its buffers are.
    """
    tensors = itertools.chain(model.parameters(), model.buffers())
    device = next(tensors, torch.empty(0)).device
    if isinstance(model, SoftmaxModel):
        if bags is None:
            raise ValueError("a SoftmaxModel is scored from the users' bags: pass bags=")
        if measure is None:
            return lambda rows: model(bags[rows].to(device))
        return lambda rows: similarity(model.user_vectors(bags[rows].to(device)), model.V, measure)
    if isinstance(model, SequenceModel):
        if sequences is None or measure is not None:
            raise ValueError("a sequence model is scored from the users' sequences=")
        return lambda rows: model.score_next(sequences[rows].to(device))
    if isinstance(model, TwoTower):
        if bags is None or measure is not None:
            raise ValueError("a TwoTower is scored from the users' bags (bags=), by its own dot")
        return lambda rows: model.score_all(rows.to(device), bags[rows].to(device))
    if measure is None:
        return lambda rows: model.score_all(rows.to(device))
    return lambda rows: similarity(model.U[rows.to(device)], model.V, measure)


def model_scorer(
    model: torch.nn.Module, indexer: Indexer, history: pd.DataFrame, measure: str | None = None
) -> Scorer:
    """:func:`scorer` of ``model`` with what it reads built from ``history``: the users'
    bags for a softmax or two-tower model, their sequences (in time order, so
    ``history`` needs a ``timestamp``) for a sequence model."""
    model.eval()
    reads = {}
    if isinstance(model, SoftmaxModel | TwoTower):
        reads["bags"] = indexer.bags(history)
    elif isinstance(model, SequenceModel):
        reads["sequences"] = histories(history, indexer, maxlen=model.config.get("maxlen"))
    return scorer(model, measure, **reads)


def popularity_scorer(indexer: Indexer, train: pd.DataFrame) -> Scorer:
    """The baseline that ignores the user: every movie scores its number of training ratings."""
    movies = torch.from_numpy(indexer.movies.index(train["movie_id"].to_numpy()))
    counts = torch.bincount(movies, minlength=indexer.n_movies).float()
    return lambda rows: counts.expand(len(rows), -1)


def known_cases(test: pd.DataFrame, indexer: Indexer, unknown: str) -> tuple[pd.DataFrame, int]:
    """``test`` and how many of its rows were skipped for an id ``indexer`` does not know.

    ``unknown="raise"`` keeps every row (an unknown id then raises
    :class:`~mfkit.features.UnknownIdError`, which names it); ``"skip"`` drops the rows
    whose user or movie has no row in the model, e.g. the new users of a temporal split.
    """
    if unknown not in ("raise", "skip"):
        raise ValueError(f"unknown must be 'raise' or 'skip', got {unknown!r}")
    if unknown == "raise":
        return test, 0
    known = test["user_id"].isin(indexer.users.ids) & test["movie_id"].isin(indexer.movies.ids)
    return test[known], int((~known).sum())


@torch.no_grad()
def top_k_for_users(
    score: Scorer,
    user_rows: torch.Tensor,
    seen_users: torch.Tensor,
    seen_movies: torch.Tensor,
    n_movies: int,
    k: int,
    *,
    batch_size: int = 512,
    with_scores: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` movie rows for each of ``user_rows``, skipping the seen pairs.

    ``(seen_users, seen_movies)`` are the rows of the training pairs. A user with
    fewer than ``k`` unseen movies gets a shorter list, padded with ``-1``. With
    ``with_scores``, returns ``(scores, rows)``, the padding scored ``-inf``.
    """
    position = torch.full((int(max(seen_users.max(), user_rows.max())) + 1,), -1)
    tops, scores = [], []
    for start in range(0, len(user_rows), batch_size):
        batch, inverse = torch.unique(user_rows[start : start + batch_size], return_inverse=True)
        position[batch] = torch.arange(len(batch))
        in_batch = position[seen_users] >= 0
        mask = torch.zeros(len(batch), n_movies, dtype=torch.bool)
        mask[position[seen_users[in_batch]], seen_movies[in_batch]] = True
        position[batch] = -1
        values, cols = top_k_unseen(score(batch).cpu()[inverse], mask[inverse], k)
        tops.append(cols.masked_fill(values == float("-inf"), -1))
        scores.append(values)
    return (torch.cat(scores), torch.cat(tops)) if with_scores else torch.cat(tops)


@on_model_threads
def evaluate_ranking(
    score: Scorer | torch.nn.Module,
    indexer: Indexer,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    k: int = 10,
    min_rating: float | None,
    measure: str | None = None,
    per_user: bool = False,
    unknown: str = "raise",
) -> pd.Series | pd.DataFrame:
    """Ranking metrics at ``k`` of a model (or a scoring function) on ``test``.

    Parameters
    ----------
    score : nn.Module or callable
        A model (scored through :func:`scorer` with ``measure``; a softmax model
        gets its input bags from ``train``) or a function ``user_rows -> (n,
        n_movies)`` scores, such as :func:`popularity_scorer`.
    indexer : Indexer
    train, test : DataFrame
        Ratings; training pairs are never recommended, and test movies rated at
        least ``min_rating`` are the relevant ones.
    min_rating : float or None
        The relevance threshold. ``None`` makes every test interaction relevant
        (implicit data, no ``rating`` column needed); 4 keeps only the test movies
        rated 4 or 5. It has no default: each threshold is another protocol with
        other numbers, so every call says which one it measures.
    k : int
        Length of the recommendation lists.
    per_user : bool
        Return each evaluated user's precision, recall, NDCG and hit rate instead
        of the means: what :func:`mfkit.stats.paired` compares between two models.
    unknown : {"raise", "skip"}
        What to do with test rows whose user or movie the indexer does not know
        (:func:`known_cases`): raise, or leave them out and count them.

    Returns
    -------
    Series with ``users`` (how many were evaluated), ``precision@k``,
    ``recall@k``, ``ndcg@k``, ``hit_rate@k``, ``coverage@k`` (share of the
    catalogue recommended to someone) and ``popularity@k`` (mean number of
    training ratings of the recommended movies). With ``per_user``, a DataFrame
    indexed by ``user_id`` (users with a relevant test movie, in row order) with
    the four per-user metrics, whose means are the Series' values. With
    ``unknown="skip"``, the Series also holds ``skipped`` (the test rows left out), and
    the DataFrame's ``attrs["skipped"]``.
    """
    test, skipped = known_cases(test, indexer, unknown)
    if isinstance(score, torch.nn.Module):
        score = model_scorer(score, indexer, train, measure)
    if min_rating is None:
        liked = test
    elif "rating" not in test.columns:
        raise MissingColumnsError(
            f"test has no 'rating' column, so min_rating={min_rating} cannot choose the "
            "relevant movies; for implicit data, where every test interaction is relevant, "
            "pass min_rating=None"
        )
    else:
        liked = test[test["rating"] >= min_rating]
    if liked.empty:
        raise ValueError(
            "test is empty: nothing is relevant"
            if min_rating is None
            else f"no test rating is >= min_rating={min_rating}: nothing is relevant"
        )
    liked_users = indexer.users.index(liked["user_id"].to_numpy())
    liked_movies = indexer.movies.index(liked["movie_id"].to_numpy())
    relevant = pd.Series(liked_movies).groupby(liked_users).agg(list)
    seen_users, seen_movies = indexer.pairs(train)
    top = top_k_for_users(
        score,
        torch.tensor(relevant.index.to_numpy()),
        seen_users,
        seen_movies,
        indexer.n_movies,
        k,
    ).numpy()
    counts = np.bincount(seen_movies.numpy(), minlength=indexer.n_movies)
    shown = top[top >= 0]  # drop the padding of users with fewer than k unseen movies
    lists = relevant.to_list()
    metrics = {"precision": precision_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k}
    metrics["hit_rate"] = hit_rate_at_k
    extra = {} if unknown == "raise" else {"skipped": skipped}
    if per_user:
        rows = pd.DataFrame(
            {f"{name}@{k}": f(top, lists, k, per_user=True) for name, f in metrics.items()},
            index=pd.Index(indexer.users.ids_of(relevant.index.to_numpy()), name="user_id"),
        )
        rows.attrs.update(extra)
        return rows
    return pd.Series(
        {
            "users": len(lists),  # stored as a float, like every entry
            **{f"{name}@{k}": f(top, lists, k) for name, f in metrics.items()},
            f"coverage@{k}": catalog_coverage([shown], indexer.n_movies),
            f"popularity@{k}": float(counts[shown].mean()) if shown.size else 0.0,
            **extra,
        }
    )


@torch.no_grad()
@on_model_threads
def evaluate_leave_one_out(
    score: Scorer | torch.nn.Module,
    indexer: Indexer,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    k: int = 10,
    negatives: int | None = 99,
    seed: int = 0,
    batch_size: int = 512,
    per_case: bool = False,
    unknown: str = "raise",
) -> pd.Series | pd.DataFrame:
    """Hit rate and NDCG at ``k`` of held-out interactions (the NCF protocol).

    Every row of ``test`` (usually each user's latest interaction, from
    :func:`mfkit.splits.leave_one_out`) is one case: the held-out movie is
    ranked among ``negatives`` movies drawn uniformly, without replacement, from
    those the user never interacted with (in ``train`` or ``test``); it is a hit
    if it lands in the top ``k``. Ties are broken at random. ``negatives=None``
    ranks it among *all* movies the user has no training interaction with:
    harder, and the number a real system would see.

    Parameters
    ----------
    score : nn.Module or callable
        A model (scored by :func:`scorer`) or ``user_rows -> (n, n_movies)`` scores.
    indexer : Indexer
    train, test : DataFrame
        Interactions with ``user_id, movie_id`` columns.
    k : int
    negatives : int or None
        Sampled negatives per case, or None for the full ranking.
    seed : int
        Seed of the negatives and of the tie-breaking.
    per_case : bool
        Return one row per case instead of the means: what :func:`mfkit.stats.paired`
        compares between two models.
    unknown : {"raise", "skip"}
        Test rows whose user or movie the indexer does not know: raise, or leave them
        out and count them (:func:`known_cases`).

    Returns
    -------
    Series with ``cases``, ``hit_rate@k`` and ``ndcg@k``; with ``per_case``, a
    DataFrame with ``user_id``, ``hit_rate@k`` and ``ndcg@k``, one row per row of
    ``test``, in its order. With ``unknown="skip"``, also ``skipped`` (in the
    DataFrame's ``attrs``).
    """
    if isinstance(score, torch.nn.Module):
        score = model_scorer(score, indexer, train)
    test, skipped = known_cases(test, indexer, unknown)
    if test.empty:
        raise ValueError("test is empty: there is nothing to evaluate")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    users, held_out = indexer.pairs(test)
    if negatives is None:  # every movie without a training interaction is a candidate
        seen = torch.zeros(indexer.n_users, indexer.n_movies, dtype=torch.bool)
        seen[indexer.pairs(train)] = True
        candidates = None
    else:
        sampler = NegativeSampler(
            pd.concat([train, test])[["user_id", "movie_id"]],
            indexer.n_movies,
            users=indexer.users.ids,
            items=indexer.movies.ids,
            seed=seed,
        )
        candidates = sampler.sample_distinct(users, negatives)
    generator = torch.Generator().manual_seed(seed)
    ranks = []
    for start in range(0, len(users), batch_size):
        rows = slice(start, start + batch_size)
        scores = score(users[rows]).cpu()
        target = scores.gather(1, held_out[rows, None])
        if candidates is None:
            others = scores.masked_fill(seen[users[rows]], float("-inf"))
            others[torch.arange(len(target)), held_out[rows]] = float("-inf")
        else:
            others = scores.gather(1, candidates[rows])
        above = (others > target).sum(dim=1)
        ties = (others == target).sum(dim=1)
        # The held-out movie takes a uniformly random place among the movies it ties with.
        ranks.append(above + (torch.rand(len(ties), generator=generator) * (ties + 1)).long())
    rank = torch.cat(ranks).double()
    hit = rank < k
    cases = pd.DataFrame(
        {
            f"hit_rate@{k}": hit.double().numpy(),
            f"ndcg@{k}": torch.where(hit, 1 / torch.log2(rank + 2), 0.0).numpy(),
        }
    )
    extra = {} if unknown == "raise" else {"skipped": skipped}
    if per_case:
        rows = cases.assign(user_id=test["user_id"].to_numpy())[["user_id", *cases.columns]]
        rows.attrs.update(extra)
        return rows
    return pd.Series({"cases": len(users), **cases.mean().to_dict(), **extra})
