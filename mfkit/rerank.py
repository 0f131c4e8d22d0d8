"""Re-ranking a model's top candidates for diversity, less popularity, or calibration.

Introduced in chapter 13. A model ranks by relevance alone; a re-ranker trades some of
it for another property of the whole list. Each one here takes a model's ``scores``,
a float tensor ``(n_users, n_items)`` in which excluded items (the seen ones) are
``-inf``, and works on each user's top ``candidates`` items only. It rescales those
candidates' scores per user to [0, 1] (min-max: the best candidate scores 1, the
worst 0), so that ``weight`` means the same for any model, whatever the scale of its
scores. It returns ``(n_users, k)`` item ids as an int64 tensor, never an excluded
item. With ``weight=0`` every re-ranker gives back the plain top ``k``.

- :func:`mmr`: maximal marginal relevance, for lists of items unlike each other.
- :func:`popularity_penalty`: relevance minus popularity, for less-known items.
- :func:`calibrate`: Steck's calibrated lists, whose genre mix matches a target mix.

The work is batched over users; only the ``k`` picks of the greedy ones are a loop.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import torch

from mfkit._checks import positive_int

__all__ = ["calibrate", "mmr", "popularity_penalty"]


def _weight(weight: Any, upper: float = 1.0) -> float:
    if isinstance(weight, bool) or not isinstance(weight, Real) or not 0 <= weight <= upper:
        allowed = "from 0 to 1" if upper == 1 else "a number >= 0"
        raise ValueError(f"weight must be {allowed}, got {weight!r}")
    return float(weight)


def _table(
    name: str, values: Any, shape: tuple[int | None, ...], device: torch.device
) -> torch.Tensor:
    """``values`` as a finite float64 tensor of ``shape`` (None: any size) on ``device``."""
    table = torch.as_tensor(values.detach() if hasattr(values, "detach") else values)
    table = table.to(device=device, dtype=torch.float64)
    fits = table.ndim == len(shape) and all(
        want in (None, got) for want, got in zip(shape, table.shape, strict=True)
    )
    if not fits:
        wanted = ", ".join("any" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape ({wanted}), got {tuple(table.shape)}")
    if not torch.isfinite(table).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return table


def _candidates(
    scores: Any, k: Any, candidates: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each user's top candidates: ``(items, relevance in [0, 1], allowed)``, best first.

    Ties keep item order. A user with fewer allowed items than ``candidates`` has
    excluded ones at the end of the row, marked not allowed.
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError("scores must be a float tensor (n_users, n_items), -inf where excluded")
    k, candidates = positive_int("k", k), positive_int("candidates", candidates)
    if torch.isnan(scores).any() or (scores == float("inf")).any():
        raise ValueError("scores holds NaN or +inf; mark excluded items with -inf")
    if k > candidates:
        raise ValueError(f"k={k} is more than candidates={candidates}")
    allowed = (scores > float("-inf")).sum(1)
    if len(allowed) and k > allowed.min():
        row = int(allowed.argmin())
        raise ValueError(f"k={k} but user row {row} has only {int(allowed[row])} items allowed")
    values, items = torch.sort(scores.detach().double(), dim=1, descending=True, stable=True)
    values, items = values[:, :candidates], items[:, :candidates]
    ok = values > float("-inf")
    high = values[:, :1]
    low = values.masked_fill(~ok, float("inf")).min(1, keepdim=True).values
    spread = high - low
    relevance = torch.where(spread > 0, (values - low) / spread.where(spread > 0, 1), 1.0)
    return items, relevance.masked_fill(~ok, 0), ok


def _best(objective: torch.Tensor, open_: torch.Tensor) -> torch.Tensor:
    """Per row, the first position of the highest objective among the open ones."""
    return objective.masked_fill(~open_, float("-inf")).argmax(1)


def mmr(
    scores: torch.Tensor,
    item_vectors: Any,
    k: int,
    weight: float,
    candidates: int = 100,
) -> torch.Tensor:
    """Maximal marginal relevance (Carbonell and Goldstein, 1998): relevant but unlike.

    Picks ``k`` of each user's top ``candidates``, one at a time, each time the one
    that maximises ``(1 - weight) * relevance - weight * s``, where ``s`` is its highest
    cosine similarity to the items already picked. Relevance is the score rescaled to
    [0, 1] per user over the candidates (min-max), so ``weight`` means the same for any
    model.

    Parameters
    ----------
    scores : float tensor (n_users, n_items)
        A model's scores, ``-inf`` for excluded items.
    item_vectors : 2-D array or tensor (n_items, d)
        What "unlike" means: genre flags or embeddings. A zero vector has similarity
        0 to everything.
    k : int
        Length of each list, at most ``candidates`` and each user's allowed items.
    weight : float
        From 0 (the plain top ``k``) to 1 (diversity alone, after the first item).
    candidates : int
        How many of each user's best items are re-ranked.

    Returns
    -------
    int64 tensor (n_users, k) of item ids.

    Examples
    --------
    >>> scores = torch.tensor([[0.9, 0.8, 0.1]])
    >>> genres = [[1, 0], [1, 0], [0, 1]]  # items 0 and 1 are alike
    >>> mmr(scores, genres, k=2, weight=0.0).tolist(), mmr(scores, genres, k=2, weight=0.5).tolist()
    ([[0, 1]], [[0, 2]])
    """
    weight = _weight(weight)
    items, relevance, ok = _candidates(scores, k, candidates)
    vectors = _table("item_vectors", item_vectors, (scores.shape[1], None), scores.device)
    length = vectors.norm(dim=1, keepdim=True)
    unit = torch.where(length > 0, vectors / length.where(length > 0, 1), 0)[items]
    rows = torch.arange(len(items), device=items.device)
    closest = torch.zeros_like(relevance)  # highest similarity to a picked item
    picked = torch.zeros_like(ok)
    picks = []
    for step in range(k):
        position = _best((1 - weight) * relevance - weight * closest, ok & ~picked)
        picked[rows, position] = True
        picks.append(position)
        similarity = torch.einsum("ucd,ud->uc", unit, unit[rows, position])
        closest = similarity if step == 0 else torch.maximum(closest, similarity)
    return items.gather(1, torch.stack(picks, 1))


def popularity_penalty(
    scores: torch.Tensor,
    counts: Any,
    k: int,
    weight: float,
    candidates: int = 100,
) -> torch.Tensor:
    """Re-score the candidates by ``relevance - weight * popularity``, best first.

    Relevance is the score rescaled to [0, 1] per user over the candidates (min-max),
    so ``weight`` means the same for any model; popularity is ``log1p(counts)`` rescaled
    to [0, 1] over the catalogue (min-max). Both span [0, 1], so ``weight=1`` counts
    them alike, and a large weight ranks the candidates least popular first.

    Parameters
    ----------
    scores : float tensor (n_users, n_items)
        A model's scores, ``-inf`` for excluded items.
    counts : 1-D array or tensor (n_items,)
        Each item's training count (>= 0).
    k, candidates : int
        As for :func:`mmr`.
    weight : float
        At least 0; 0 gives the plain top ``k``.

    Examples
    --------
    >>> scores = torch.tensor([[0.9, 0.8, 0.1]])
    >>> popularity_penalty(scores, [500, 3, 40], k=2, weight=0.5).tolist()
    [[1, 0]]
    """
    weight = _weight(weight, upper=float("inf"))
    items, relevance, ok = _candidates(scores, k, candidates)
    count = _table("counts", counts, (scores.shape[1],), scores.device)
    if (count < 0).any():
        raise ValueError("counts must be >= 0")
    popularity = torch.log1p(count)
    spread = popularity.max() - popularity.min()
    popularity = (popularity - popularity.min()) / spread if spread > 0 else popularity * 0
    objective = (relevance - weight * popularity[items]).masked_fill(~ok, float("-inf"))
    order = torch.sort(objective, dim=1, descending=True, stable=True).indices[:, :k]
    return items.gather(1, order)


def _kl(target: torch.Tensor, mix: torch.Tensor, alpha: float) -> torch.Tensor:
    """``sum_g p_g log(p_g / ((1 - alpha) q_g + alpha p_g))`` over the last axis."""
    mixed = (1 - alpha) * mix + alpha * target
    some = target > 0
    ratio = torch.where(some, target / mixed.where(some, 1), 1)
    return (target * torch.log(ratio)).sum(-1)


def calibrate(
    scores: torch.Tensor,
    genres: Any,
    target: Any,
    k: int,
    weight: float,
    candidates: int = 100,
    alpha: float = 0.01,
) -> torch.Tensor:
    """Steck's (2018) calibrated re-ranking: lists whose genre mix matches ``target``.

    Picks ``k`` of each user's top ``candidates``, one at a time, each time the one
    that maximises ``(1 - weight) * (sum of the list's relevance) - weight *
    miscalibration(target, genre mix of the list)``, as in
    :func:`mfkit.metrics.genre_mix` and :func:`mfkit.metrics.miscalibration`.
    Relevance is the score rescaled to [0, 1] per user over the candidates (min-max),
    so ``weight`` means the same for any model.

    Parameters
    ----------
    scores : float tensor (n_users, n_items)
        A model's scores, ``-inf`` for excluded items.
    genres : 2-D array or tensor (n_items, n_genres)
        0/1 genre flags (or weights >= 0); an item's row is shared out to sum 1.
    target : 2-D array or tensor (n_users, n_genres)
        The mix each user's list should have, e.g. ``genre_mix`` of their history.
    k, candidates : int
        As for :func:`mmr`.
    weight : float
        From 0 (the plain top ``k``) to 1 (calibration alone).
    alpha : float
        Above 0 and at most 1: the smoothing of :func:`mfkit.metrics.miscalibration`.

    Examples
    --------
    >>> scores = torch.tensor([[0.9, 0.8, 0.1]])
    >>> genres = [[1, 0], [1, 0], [0, 1]]
    >>> target = [[0.5, 0.5]]  # the user likes both genres equally
    >>> calibrate(scores, genres, target, k=2, weight=0.5).tolist()
    [[0, 2]]
    """
    weight = _weight(weight)
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be above 0 and at most 1, got {alpha}")
    items, relevance, ok = _candidates(scores, k, candidates)
    flags = _table("genres", genres, (scores.shape[1], None), scores.device)
    goal = _table("target", target, (scores.shape[0], flags.shape[1]), scores.device)
    if (flags < 0).any() or (goal < 0).any():
        raise ValueError("genres and target must hold values >= 0")
    total = flags.sum(1, keepdim=True)
    share = (flags / total.where(total > 0, 1))[items]  # (n_users, candidates, n_genres)
    rows = torch.arange(len(items), device=items.device)
    chosen = torch.zeros_like(goal)  # the picked items' genre shares, summed
    gained = torch.zeros_like(relevance[:, :1])  # the picked items' relevance, summed
    picked = torch.zeros_like(ok)
    picks = []
    for _ in range(k):
        mix = chosen[:, None, :] + share
        mass = mix.sum(-1, keepdim=True)
        mix = mix / mass.where(mass > 0, 1)
        off = _kl(goal[:, None, :], mix, alpha)
        position = _best((1 - weight) * (gained + relevance) - weight * off, ok & ~picked)
        picked[rows, position] = True
        picks.append(position)
        chosen += share[rows, position]
        gained += relevance[rows, position, None]
    return items.gather(1, torch.stack(picks, 1))
