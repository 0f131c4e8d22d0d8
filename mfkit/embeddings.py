"""Looking inside learned embeddings: their lengths, popularity, genres, a 2-D map.

Introduced in chapter 3. A movie embedding is a row of numbers with no labels;
these helpers line each row up with what we know about the movie (its title,
how often it was rated, its genres) and squeeze the rows into two dimensions
with t-SNE so that a figure can show which movies the model put together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mfkit.features import Indexer
from mfkit.retrieval import similarity, top_k_unseen

__all__ = ["genre_agreement", "genre_labels", "norm_popularity", "tsne_map"]


def _as_numpy(embeddings: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    embeddings = np.asarray(embeddings, dtype=float)
    if embeddings.ndim != 2:
        raise ValueError(
            f"embeddings must be a 2-D (n_movies, d) array, got shape {embeddings.shape}"
        )
    return embeddings


def norm_popularity(
    embeddings: torch.Tensor | np.ndarray, indexer: Indexer, ratings: pd.DataFrame
) -> pd.DataFrame:
    """One row per movie: its embedding norm and how many ``ratings`` it has.

    Parameters
    ----------
    embeddings : (n_movies, d) tensor or array
        Movie embeddings, row ``j`` for the movie in row ``j`` of ``indexer``.
    indexer : Indexer
    ratings : DataFrame
        The ratings the model was trained on (``movie_id`` column).

    Returns
    -------
    DataFrame with ``movie_id, title, norm, n_ratings``; movies without a
    rating get ``n_ratings == 0``.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ml = synthetic_movielens(5, 4, 12, seed=0)
    >>> idx = Indexer.from_movielens(ml)
    >>> table = norm_popularity(torch.ones(4, 9), idx, ml.ratings)
    >>> table["norm"].tolist(), int(table["n_ratings"].sum())
    ([3.0, 3.0, 3.0, 3.0], 12)
    """
    embeddings = _as_numpy(embeddings)
    if len(embeddings) != indexer.n_movies:
        raise ValueError(
            f"embeddings has {len(embeddings)} rows but the indexer knows {indexer.n_movies} movies"
        )
    rows = indexer.movies.index(ratings["movie_id"].to_numpy())
    return pd.DataFrame(
        {
            "movie_id": indexer.movies.ids_of(np.arange(indexer.n_movies)),
            "title": indexer.titles,
            "norm": np.linalg.norm(embeddings, axis=1),
            "n_ratings": np.bincount(rows, minlength=indexer.n_movies),
        }
    )


def genre_labels(movies: pd.DataFrame, genres: Sequence[str], *, other: str = "other") -> pd.Series:
    """One genre per movie, for colouring a figure: the first of ``genres`` it has.

    MovieLens gives a movie several genre flags; a scatter plot needs one colour.
    List the genres you want to see, most distinctive first; a movie with none
    of them is labelled ``other``.

    Examples
    --------
    >>> movies = pd.DataFrame({"Comedy": [1, 1, 0], "Horror": [0, 1, 0]})
    >>> genre_labels(movies, ["Horror", "Comedy"]).tolist()
    ['Comedy', 'Horror', 'other']
    """
    missing = [g for g in genres if g not in movies.columns]
    if missing:
        raise ValueError(
            f"unknown genre column(s) {missing}; the movies frame has {list(movies.columns)}"
        )
    labels = pd.Series(other, index=movies.index, dtype=object)
    for genre in reversed(list(genres)):
        labels[movies[genre].to_numpy() == 1] = genre
    return labels


@torch.no_grad()
def genre_agreement(
    embeddings: torch.Tensor | np.ndarray,
    genres: np.ndarray | pd.DataFrame,
    *,
    k: int = 10,
    measure: str = "cosine",
) -> float:
    """Share of each movie's ``k`` nearest neighbours that have a genre in common with it.

    A number for "similar embeddings mean similar movies": neighbours are found
    with :func:`mfkit.retrieval.similarity` (the movie itself left out), and
    the shares are averaged over movies. Compare it with the share of *random*
    pairs of movies that have a genre in common.

    Parameters
    ----------
    embeddings : (n, d) tensor or array
    genres : (n, n_genres) 0/1 array or frame, one row per embedding row
    k : int
    measure : {"dot", "cosine"}

    Examples
    --------
    >>> emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> genres = np.array([[1, 0], [1, 0], [0, 1], [1, 1]])
    >>> genre_agreement(emb, genres, k=1)  # 0->1 yes, 1->0 yes, 2->3 yes, 3->2 yes
    1.0
    """
    emb = torch.as_tensor(_as_numpy(embeddings), dtype=torch.float32)
    flags = torch.as_tensor(np.asarray(genres, dtype=np.float32))
    if flags.ndim != 2 or len(flags) != len(emb):
        raise ValueError(
            f"genres must have one row per embedding ({len(emb)}), got shape {tuple(flags.shape)}"
        )
    if not 1 <= k < len(emb):
        raise ValueError(f"k must be between 1 and {len(emb) - 1} (the other movies), got {k}")
    scores = similarity(emb, emb, measure)
    _, neighbours = top_k_unseen(scores, torch.eye(len(emb), dtype=torch.bool), k)
    shared = (flags[:, None, :] * flags[neighbours]).sum(-1) > 0
    return float(shared.float().mean())


def tsne_map(
    embeddings: torch.Tensor | np.ndarray,
    *,
    metric: str = "cosine",
    perplexity: float = 30.0,
    init: str = "pca",
    seed: int = 0,
) -> np.ndarray:
    """2-D t-SNE coordinates of the rows of ``embeddings`` (scikit-learn's ``TSNE``).

    t-SNE keeps *neighbourhoods*: rows that are close in ``metric`` end up close
    on the map. Distances between far-apart groups, and the sizes of groups,
    mean little, and the picture changes with ``perplexity`` (roughly how many
    neighbours each point tries to keep). ``metric="cosine"`` ignores the
    lengths of the embeddings, like cosine scoring; ``"euclidean"`` does not.
    ``init="pca"`` starts from the first two principal components, which makes
    the map deterministic; with ``init="random"``, ``seed`` picks the start and
    different seeds give different maps.

    Returns
    -------
    array of shape (n, 2)
    """
    from sklearn.manifold import TSNE

    embeddings = _as_numpy(embeddings)
    if not 0 < perplexity < len(embeddings):
        raise ValueError(
            f"perplexity must be positive and smaller than the number of rows "
            f"({len(embeddings)}), got {perplexity}"
        )
    tsne = TSNE(
        n_components=2,
        metric=metric,
        perplexity=perplexity,
        init=init,
        random_state=seed,
    )
    return tsne.fit_transform(embeddings)
