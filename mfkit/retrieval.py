"""From scores to recommendations: top-k movies a user has not seen yet.

Introduced in chapter 2 (:func:`recommend`). Any model with a
``score_all(user_rows) -> (n_users, n_movies)`` method works.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mfkit.features import Indexer

__all__ = ["recommend", "top_k_unseen"]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


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


@torch.no_grad()
def recommend(
    model: torch.nn.Module,
    user_id: int,
    indexer: Indexer,
    *,
    seen: pd.DataFrame | None = None,
    k: int = 10,
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

    Returns
    -------
    DataFrame with ``movie_id, title, score``, best first (fewer than ``k`` rows
    if the user has seen almost everything).
    """
    _check_k(k)
    device = next(model.parameters()).device
    row = torch.as_tensor(indexer.users.index(user_id), device=device)
    model.eval()
    scores = model.score_all(row).cpu()
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if seen is not None:
        watched = seen.loc[seen["user_id"] == user_id, "movie_id"].to_numpy()
        mask[0, indexer.movies.index(watched)] = True
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
