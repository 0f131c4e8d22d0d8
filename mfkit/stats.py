"""The one rule for "model A is better than model B": a paired interval.

Two models evaluated on the same cases (users, held-out interactions) give two
vectors of per-case scores, e.g. NDCG@10 per user. Their difference per case removes
what both share (an easy user is easy for both), so its mean has a much narrower
interval than either model's mean. :func:`paired` returns that mean difference, its
95% interval (paired t) and the word the interval licenses, for a sentence "A is
<word> B":

- ``"ahead of"`` when the whole interval lies above ``margin`` (zero by default),
- ``"behind"`` when it lies below ``-margin``,
- ``"level with"`` otherwise: these cases cannot tell the two apart.

For errors (each user's MSE, chapters 2-6 and 10), ``lower_is_better=True`` turns
the words round: A is "ahead of" B when the interval lies below ``-margin``.

A chapter glues the word into its sentence, so the sentence says what the numbers say
on the reader's machine too. Introduced in chapter 7, where it is first written on the
page; every later comparison of models and the benchmarks use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["WORDS", "Paired", "paired", "seed_spread"]

WORDS = ("ahead of", "level with", "behind")


@dataclass(frozen=True)
class Paired:
    """Mean per-case difference ``a - b``, its interval, and the word it licenses."""

    difference: float
    low: float
    high: float
    cases: int
    level: float
    word: str

    def interval(self, digits: int = 3) -> str:
        """The interval as text, e.g. ``"+0.004 to +0.021"``, for a sentence."""
        return f"{self.low:+.{digits}f} to {self.high:+.{digits}f}"

    def __str__(self) -> str:
        return (
            f"{self.word} (mean difference {self.difference:+.4f}, "
            f"{self.level:.0%} interval {self.interval(4)}, {self.cases} cases)"
        )


def _vector(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one score per case (1-D), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite scores")
    return array


def paired(
    a: Any, b: Any, *, level: float = 0.95, margin: float = 0.0, lower_is_better: bool = False
) -> Paired:
    """Compare two models on the same cases: ``a[i]`` and ``b[i]`` score case ``i``.

    Parameters
    ----------
    a, b : array-like of float, one score per case, in the same order
        E.g. ``ndcg_at_k(top_a, relevant, 10, per_user=True)`` and the same for B.
    level : float
        Coverage of the interval (paired t over the per-case differences).
    margin : float
        How far beyond zero the interval must lie for "ahead of" or "behind".
    lower_is_better : bool
        The scores are errors (e.g. :func:`mfkit.metrics.mse_by_user`): "ahead of"
        when A's are lower. The difference and interval are still ``a - b``.

    Returns
    -------
    Paired, whose ``word`` is "ahead of", "level with" or "behind" (A relative to B).

    Examples
    --------
    >>> paired([0.5, 0.7, 0.9, 0.4], [0.4, 0.6, 0.8, 0.35]).word
    'ahead of'
    >>> paired([0.5, 0.7, 0.9, 0.4], [0.4, 0.6, 0.8, 0.35], lower_is_better=True).word
    'behind'
    """
    a, b = _vector("a", a), _vector("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must score the same cases, got {a.size} and {b.size} scores")
    if a.size < 2:
        raise ValueError(f"a paired interval needs at least 2 cases, got {a.size}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, got {level}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    diff = a - b
    mean = float(diff.mean())
    half = float(
        _scipy_stats.t.ppf((1 + level) / 2, diff.size - 1) * diff.std(ddof=1) / math.sqrt(diff.size)
    )
    low, high = mean - half, mean + half
    above, below = low > margin, high < -margin
    better, worse = (below, above) if lower_is_better else (above, below)
    word = WORDS[0] if better else (WORDS[2] if worse else WORDS[1])
    return Paired(mean, low, high, int(diff.size), level, word)


def seed_spread(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation of one score over several seeds.

    Used for error bars where training choices are compared (chapters 7 and 8).

    Examples
    --------
    >>> mean, sd = seed_spread([0.10, 0.12, 0.11])
    >>> round(mean, 4), round(sd, 4)
    (0.11, 0.01)
    """
    array = _vector("values", values)
    if array.size < 2:
        raise ValueError(f"a spread needs at least 2 seeds, got {array.size}")
    return float(array.mean()), float(array.std(ddof=1))
