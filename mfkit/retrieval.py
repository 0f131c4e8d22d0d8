"""From embeddings to recommendations: similarity, neighbours, top-k unseen movies.

Introduced in chapter 2 (:func:`recommend`) and chapter 3 (:func:`similarity`,
:func:`find_movie`, :func:`nearest_movies`, dot versus cosine). Any model with a
``score_all(user_rows) -> (n_users, n_movies)`` method works with
:func:`recommend`; the ``measure`` option also needs its embeddings ``U`` and ``V``.
Chapter 5 adds :func:`recommend_from_movies` for a new user given a few liked
movies, with a model that scores bags of movies; chapter 6 adds
:func:`recommend_new_user` for a new user given only age, gender, occupation and
zip code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mfkit.features import Indexer

__all__ = [
    "MEASURES",
    "AmbiguousTitleError",
    "MovieNotFoundError",
    "find_movie",
    "nearest_movies",
    "recommend",
    "recommend_from_movies",
    "recommend_new_user",
    "similarity",
    "top_k_unseen",
]

#: The similarity measures between a query embedding and the movie embeddings.
MEASURES = ("dot", "cosine")


class MovieNotFoundError(KeyError):
    """Raised when no movie matches an id or a title search."""

    def __str__(self) -> str:
        return str(self.args[0])


class AmbiguousTitleError(ValueError):
    """Raised when a title search matches several movies."""


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def similarity(query: torch.Tensor, items: torch.Tensor, measure: str = "dot") -> torch.Tensor:
    """Scores of every item for each query: dot product or cosine similarity.

    ``dot`` is ``<q, v_j>``, so items with long embeddings score high for every
    query; ``cosine`` is ``<q, v_j> / (||q|| ||v_j||)``, which ignores the lengths
    and lies in [-1, 1].

    Parameters
    ----------
    query : tensor (d,) or (n_queries, d)
    items : tensor (n_items, d)
    measure : {"dot", "cosine"}

    Returns
    -------
    tensor (n_items,) or (n_queries, n_items)

    Examples
    --------
    >>> q, items = torch.tensor([1.0, 0.0]), torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    >>> similarity(q, items).tolist()
    [2.0, 1.0]
    >>> [round(x, 3) for x in similarity(q, items, "cosine").tolist()]
    [1.0, 0.707]
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {MEASURES}")
    if query.shape[-1] != items.shape[-1]:
        raise ValueError(f"query has dimension {query.shape[-1]} but items have {items.shape[-1]}")
    if measure == "cosine":
        query = torch.nn.functional.normalize(query, dim=-1)
        items = torch.nn.functional.normalize(items, dim=-1)
    return query @ items.T


def find_movie(indexer: Indexer, movie: int | str) -> int:
    """The ``movie_id`` of ``movie``: an id, or a case-insensitive piece of its title.

    A title search must match one movie; an exact (case-insensitive) title wins
    over partial matches. The errors say which titles matched.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> idx = Indexer.from_movielens(synthetic_movielens(3, 12, 10, seed=0))
    >>> find_movie(idx, "synthetic movie 7 (")
    7
    """
    if isinstance(movie, int | np.integer) and not isinstance(movie, bool):
        if movie not in indexer.movies:
            raise MovieNotFoundError(f"there is no movie with movie_id {movie}")
        return int(movie)
    if not isinstance(movie, str) or not movie.strip():
        raise TypeError(f"movie must be a movie_id or a piece of a title, got {movie!r}")
    titles = pd.Series(indexer.titles)
    needle = movie.strip().casefold()
    folded = titles.str.casefold()
    exact = folded == needle
    hits = titles[exact] if exact.sum() == 1 else titles[folded.str.contains(needle, regex=False)]
    if len(hits) == 0:
        raise MovieNotFoundError(f"no movie title contains {movie!r}")
    if len(hits) > 1:
        shown = "; ".join(hits.head(10)) + ("; ..." if len(hits) > 10 else "")
        raise AmbiguousTitleError(
            f"{movie!r} matches {len(hits)} titles: {shown}. "
            "Use more of the title, or the movie_id."
        )
    return int(indexer.movies.ids_of(hits.index[0])[0])


@torch.no_grad()
def nearest_movies(
    embeddings: torch.Tensor,
    movie: int | str,
    indexer: Indexer,
    *,
    measure: str = "dot",
    k: int = 10,
) -> pd.DataFrame:
    """The ``k`` movies whose embeddings score highest against ``movie``'s.

    ``movie`` is a ``movie_id`` or a piece of a title (see :func:`find_movie`);
    the movie itself is left out. The frame's ``attrs["query"]`` holds the
    matched title.

    Returns
    -------
    DataFrame with ``movie_id, title, score``, best first.
    """
    _check_k(k)
    movie_id = find_movie(indexer, movie)
    row = int(indexer.movies.index(movie_id)[0])
    scores = similarity(embeddings[row], embeddings, measure).cpu()
    itself = torch.zeros(1, len(scores), dtype=torch.bool)
    itself[0, row] = True
    result = _top_movies(scores[None], itself, k, indexer)
    result.attrs["query"] = indexer.titles[row]
    return result


def top_k_unseen(
    scores: torch.Tensor, seen: torch.Tensor | None, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` columns of each row of ``scores``, skipping cells where ``seen`` is True.

    Parameters
    ----------
    scores : tensor (n_users, n_movies)
    seen : bool tensor of the same shape, or None
    k : int
        At most the number of columns; rows with fewer unseen movies get ``-inf``
        scores in their last places.

    Returns
    -------
    (values, indices) : tensors (n_users, k), best first.

    Examples
    --------
    >>> scores = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    >>> top_k_unseen(scores, torch.tensor([[False, True, False, False]]), 2)[1].tolist()
    [[3, 2]]
    """
    _check_k(k)
    k = min(k, scores.shape[-1])
    if seen is not None:
        scores = scores.masked_fill(seen, float("-inf"))
    return torch.topk(scores, k, dim=-1)


def _top_movies(scores: torch.Tensor, mask: torch.Tensor, k: int, indexer: Indexer) -> pd.DataFrame:
    """The ``k`` best unmasked movies of one row of scores, as ``movie_id, title, score``.

    Masked movies never appear, even when fewer than ``k`` are left.
    """
    values, cols = top_k_unseen(scores, mask, k)
    keep = torch.isfinite(values[0])
    cols = cols[0][keep].numpy()
    return pd.DataFrame(
        {
            "movie_id": indexer.movies.ids_of(cols),
            "title": indexer.titles[cols],
            "score": values[0][keep].numpy(),
        }
    )


def _excluded(indexer: Indexer, candidates: Sequence[int] | None) -> torch.Tensor:
    """A ``(1, n_movies)`` mask, True for movies outside ``candidates`` (None: none)."""
    mask = torch.zeros(1, indexer.n_movies, dtype=torch.bool)
    if candidates is not None:
        mask[0] = True
        mask[0, indexer.movies.index(np.asarray(candidates, dtype=np.int64))] = False
    return mask


@torch.no_grad()
def recommend(
    model: torch.nn.Module,
    user_id: int,
    indexer: Indexer,
    *,
    seen: pd.DataFrame | None = None,
    k: int = 10,
    measure: str | None = None,
    candidates: Sequence[int] | None = None,
) -> pd.DataFrame:
    """The ``k`` best-scored movies for ``user_id`` among those not in ``seen``.

    Parameters
    ----------
    model : nn.Module with ``score_all``
    user_id : int
        A raw MovieLens user id.
    indexer : Indexer
        Maps ids to the model's rows and gives the titles.
    seen : DataFrame, optional
        Ratings (``user_id, movie_id``) to exclude, normally the training data.
    k : int
        How many movies.
    measure : {None, "dot", "cosine"}
        ``None`` ranks by the model's own scores (``score_all``, e.g. predicted
        ratings with biases); ``"dot"``/``"cosine"`` by :func:`similarity` of the
        user's embedding ``U[i]`` with the movie embeddings ``V``.
    candidates : sequence of int, optional
        The movie ids that may be recommended (default: all), e.g. only movies
        with enough ratings to trust their predicted rating.

    Returns
    -------
    DataFrame with ``movie_id, title, score``, best first (fewer than ``k`` rows
    if the user has seen almost everything).
    """
    _check_k(k)
    device = next(model.parameters()).device
    row = torch.as_tensor(indexer.users.index(user_id), device=device)
    model.eval()
    if measure is None:
        scores = model.score_all(row).cpu()
    else:
        scores = similarity(model.U[row], model.V, measure).cpu()
    mask = _excluded(indexer, candidates)
    if seen is not None:
        watched = seen.loc[seen["user_id"] == user_id, "movie_id"].to_numpy()
        mask[0, indexer.movies.index(watched)] = True
    return _top_movies(scores, mask, k, indexer)


@torch.no_grad()
def recommend_from_movies(
    model: torch.nn.Module,
    movies: Sequence[int | str],
    indexer: Indexer,
    *,
    k: int = 10,
) -> pd.DataFrame:
    """Top-``k`` movies for a *new* user described only by movies they liked.

    For models that score a bag of movies, such as
    :class:`mfkit.models.SoftmaxModel`: no user id and no retraining. ``movies``
    are ids or pieces of titles (see :func:`find_movie`); they are left out of
    the result, and the frame's ``attrs["liked"]`` lists the matched titles.

    Returns
    -------
    DataFrame with ``movie_id, title, score``, best first.
    """
    _check_k(k)
    if isinstance(movies, str | int):
        raise TypeError("movies must be a list of ids or titles, e.g. ['Toy Story']")
    if len(movies) == 0:
        raise ValueError("give at least one movie the new user liked")
    rows = indexer.movies.index([find_movie(indexer, movie) for movie in movies])
    bag = torch.zeros(1, indexer.n_movies)
    bag[0, rows] = 1.0
    model.eval()
    device = next(model.parameters()).device
    scores = model(bag.to(device)).cpu()
    result = _top_movies(scores, bag.bool(), k, indexer)
    result.attrs["liked"] = list(indexer.titles[rows])
    return result


@torch.no_grad()
def recommend_new_user(
    model: torch.nn.Module,
    indexer: Indexer,
    *,
    age: int,
    gender: str,
    occupation: str,
    zip_code: str = "",
    k: int = 10,
    candidates: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Top-``k`` movies for a brand-new user known only by their demographics.

    For :class:`mfkit.models.DemographicsModel`, which never uses a user id.
    The answers are checked by :meth:`mfkit.features.SideFeatures.profile`
    (an unknown occupation lists the valid ones; an unknown zip code is allowed).
    ``candidates`` are the movie ids that may be recommended, as in :func:`recommend`.

    Returns
    -------
    DataFrame with ``movie_id, title, score`` (the predicted rating), best first.
    """
    _check_k(k)
    if not hasattr(model, "score_profile"):
        raise TypeError(
            f"a {type(model).__name__} needs a user id; new users need a model that "
            "scores a profile, such as DemographicsModel"
        )
    profile = model.side.profile(age=age, gender=gender, occupation=occupation, zip_code=zip_code)
    model.eval()
    scores = model.score_profile(profile).cpu()
    return _top_movies(scores, _excluded(indexer, candidates), k, indexer)
