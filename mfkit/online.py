"""From offline to online: A/B test sizes, interleaving, off-policy estimates, bandits.

Introduced in chapter 13. An offline metric is a guess at what users will do; these
are the tools that check it against what they do, or estimate it from logs:

- :func:`ab_test_users` and :func:`paired_test_users`: how many users a test needs.
- :func:`team_draft` and :func:`interleaving_winner`: team-draft interleaving
  (Radlinski, Kurup and Joachims, 2008), one user comparing two rankers at once.
- :func:`ips`: inverse propensity scoring, the mean reward a new policy would have
  had, from the logs of another (self-normalised: SNIPS).
- :class:`EpsilonGreedy`, :class:`ThompsonSampling` and :func:`replay`: bandits,
  evaluated offline on uniformly logged events by replay (Li, Chu, Langford and
  Wang, 2011).
"""

from __future__ import annotations

import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Protocol

import numpy as np
from scipy.stats import norm

from mfkit._checks import positive_int

__all__ = [
    "EpsilonGreedy",
    "Policy",
    "ReplayResult",
    "ThompsonSampling",
    "ab_test_users",
    "interleaving_winner",
    "ips",
    "paired_test_users",
    "replay",
    "team_draft",
]


# ----------------------------------------------------------------------- test sizes


def _z_sum(alpha: float, power: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must lie between 0 and 1, got {power}")
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def _cases(sd: float, effect: float, alpha: float, power: float, arms: int) -> int:
    if not sd > 0:
        raise ValueError(f"the standard deviation must be above 0, got {sd}")
    if effect == 0 or not math.isfinite(effect):
        raise ValueError(f"effect must be a finite difference other than 0, got {effect}")
    n = arms * (_z_sum(alpha, power) * sd / effect) ** 2
    return math.ceil(n - 1e-9)  # no extra user for a rounding error in the last digit


def ab_test_users(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users needed in EACH arm of an A/B test to detect a difference ``effect`` in means.

    A two-sided two-sample z test on a per-user metric with standard deviation ``sd``:
    ``ceil(2 (z_{1 - alpha/2} + z_power)^2 sd^2 / effect^2)``. Halving the effect
    takes four times the users.

    Examples
    --------
    >>> ab_test_users(sd=1.0, effect=0.2)  # the textbook case: 392.4 rounded up
    393
    """
    return _cases(sd, effect, alpha, power, arms=2)


def paired_test_users(
    sd_diff: float, effect: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Cases needed when each case sees both A and B (interleaving, a paired comparison).

    ``ceil((z_{1 - alpha/2} + z_power)^2 sd_diff^2 / effect^2)``, where ``sd_diff`` is
    the standard deviation of the per-case difference ``A - B``: what both share cancels,
    so ``sd_diff`` is often far below the ``sd`` of :func:`ab_test_users`.

    Examples
    --------
    >>> paired_test_users(sd_diff=0.5, effect=0.2)
    50
    """
    return _cases(sd_diff, effect, alpha, power, arms=1)


# --------------------------------------------------------------------- interleaving


def _ranking(name: str, items: Any) -> list:
    array = np.asarray(items)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be one ranked list of item ids (1-D), got shape {array.shape}"
        )
    return array.tolist()


def team_draft(
    a: Any, b: Any, k: int, generator: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Team-draft interleaving of two rankings for one user (Radlinski et al., 2008).

    Like captains picking teams: the team with fewer picks so far picks next, and when
    both have picked equally often a fair coin says which goes first. A team picks
    its highest-ranked item not yet in the list; when a ranking has nothing new left,
    the other team picks.

    Parameters
    ----------
    a, b : 1-D array-like
        Ranked item ids from rankers A and B, best first.
    k : int
        Length of the interleaved list, at most the number of distinct items in ``a``
        and ``b`` together.
    generator : numpy.random.Generator
        The coin, e.g. ``np.random.default_rng(seed)``.

    Returns
    -------
    (items, teams) : arrays of length ``k``; ``teams`` is 0 where A picked, 1 for B.

    Examples
    --------
    >>> items, teams = team_draft([1, 2, 3], [3, 4, 5], 4, np.random.default_rng(0))
    >>> sorted(items[:2].tolist()), teams.tolist().count(0)  # each top item, 2 picks each
    ([1, 3], 2)
    """
    k = positive_int("k", k)
    if not isinstance(generator, np.random.Generator):
        raise ValueError("generator must be a numpy Generator, e.g. np.random.default_rng(0)")
    rankings = (_ranking("a", a), _ranking("b", b))
    distinct = len(set(rankings[0]) | set(rankings[1]))
    if k > distinct:
        raise ValueError(f"k={k} but a and b hold only {distinct} distinct items")
    items: list = []
    teams: list[int] = []
    taken: set = set()
    picks, next_rank = [0, 0], [0, 0]
    while len(items) < k:
        if picks[0] == picks[1]:
            team = int(generator.integers(2))
        else:
            team = int(picks[1] < picks[0])
        for side in (team, 1 - team):  # the other team picks if this one has nothing new
            ranking, rank = rankings[side], next_rank[side]
            while rank < len(ranking) and ranking[rank] in taken:
                rank += 1
            next_rank[side] = rank
            if rank < len(ranking):
                break
        items.append(ranking[rank])
        teams.append(side)
        taken.add(ranking[rank])
        picks[side] += 1
    return np.asarray(items), np.asarray(teams, dtype=np.int64)


def interleaving_winner(teams: Any, items: Any, clicked: Any) -> int:
    """Which ranker won one interleaved list: +1 for A, -1 for B, 0 for a tie.

    A team scores one for each clicked item it put in the list.

    Examples
    --------
    >>> interleaving_winner([0, 1, 0, 1], [7, 3, 9, 4], clicked={3, 4, 9})  # A 1, B 2
    -1
    """
    team, shown = np.asarray(teams), np.asarray(items)
    if team.ndim != 1 or team.shape != shown.shape:
        raise ValueError(
            f"teams and items must be 1-D of one length, got {team.shape}, {shown.shape}"
        )
    if not np.isin(team, (0, 1)).all():
        raise ValueError("teams must hold 0 (ranker A) or 1 (ranker B)")
    hit = np.isin(shown, list(clicked) if isinstance(clicked, AbstractSet) else clicked)
    a, b = int((hit & (team == 0)).sum()), int((hit & (team == 1)).sum())
    return int(np.sign(a - b))


# ----------------------------------------------------------------- off-policy value


def ips(
    rewards: Any,
    logged_propensity: Any,
    target_propensity: Any,
    self_normalised: bool = False,
) -> float:
    """Inverse propensity scoring: a new policy's mean reward, estimated from logs.

    Each logged event ``i`` had reward ``r_i`` for an action the logging policy chose
    with probability ``pi_old_i``; the new policy would choose it with ``pi_new_i``.
    IPS is ``mean(r * pi_new / pi_old)``, unbiased when every action the new policy may
    take had ``pi_old > 0``. ``self_normalised=True`` (SNIPS) divides by the sum of the
    weights ``pi_new / pi_old`` instead of the number of events: a little biased, often
    far less variable.

    Examples
    --------
    >>> rewards, logged, new = [1, 0, 1, 1], [0.5, 0.5, 0.5, 0.25], [1, 0, 0, 0.5]
    >>> ips(rewards, logged, new)  # (2 + 0 + 0 + 2) / 4
    1.0
    >>> ips(rewards, logged, new, self_normalised=True)  # (2 + 0 + 0 + 2) / (2 + 0 + 0 + 2)
    1.0
    """
    r, old, new = (
        np.asarray(x, dtype=np.float64) for x in (rewards, logged_propensity, target_propensity)
    )
    if r.ndim != 1 or r.shape != old.shape or r.shape != new.shape:
        raise ValueError(
            "rewards, logged_propensity and target_propensity must be 1-D of one length, "
            f"got shapes {r.shape}, {old.shape}, {new.shape}"
        )
    if r.size == 0:
        raise ValueError("there are no logged events")
    if not np.isfinite(r).all():
        raise ValueError("rewards holds NaN or infinite values")
    if not ((old > 0) & (old <= 1)).all():
        raise ValueError("logged_propensity must lie in (0, 1]: the logger must have chosen each")
    if not ((new >= 0) & (new <= 1)).all():
        raise ValueError("target_propensity must lie in [0, 1]")
    weight = new / old
    if not self_normalised:
        return float(np.mean(r * weight))
    if weight.sum() == 0:
        raise ValueError("the target policy gives probability 0 to every logged action")
    return float((r * weight).sum() / weight.sum())


# ------------------------------------------------------------------------- bandits


class Policy(Protocol):
    """What :func:`replay` needs from a bandit: choose an arm, learn from its reward."""

    def choose(self) -> int: ...

    def update(self, arm: int, reward: float) -> None: ...


def _check_arm(arm: Any, n_arms: int) -> int:
    if isinstance(arm, bool) or not isinstance(arm, Integral) or not 0 <= arm < n_arms:
        raise ValueError(f"arm must be an integer from 0 to {n_arms - 1}, got {arm!r}")
    return int(arm)


class EpsilonGreedy:
    """Epsilon-greedy: a random arm with probability ``epsilon``, else the best so far.

    Each arm's estimate is the mean reward it has received, 0 before its first pull;
    ties are broken at random. With rewards >= 0, an untried arm is therefore only
    tried by exploration or while no arm has paid anything. ``epsilon=0`` always
    exploits; ``epsilon=1`` is the uniformly random policy.

    Attributes
    ----------
    estimates : numpy.ndarray
        Each arm's mean reward so far.
    pulls : numpy.ndarray
        How often each arm was updated.

    Examples
    --------
    >>> policy = EpsilonGreedy(3, epsilon=0.0, seed=0)
    >>> policy.update(2, 1.0)
    >>> policy.choose()
    2
    """

    def __init__(self, n_arms: int, epsilon: float, seed: int | None = None) -> None:
        self.n_arms = positive_int("n_arms", n_arms)
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must lie between 0 and 1, got {epsilon}")
        self.epsilon = float(epsilon)
        self.pulls = np.zeros(self.n_arms, dtype=np.int64)
        self.estimates = np.zeros(self.n_arms)
        self._rng = np.random.default_rng(seed)

    def choose(self) -> int:
        """An arm: random with probability ``epsilon``, else one of the best estimates."""
        if self._rng.random() < self.epsilon:
            return int(self._rng.integers(self.n_arms))
        best = np.flatnonzero(self.estimates == self.estimates.max())
        return int(self._rng.choice(best))

    def update(self, arm: int, reward: float) -> None:
        """Add ``reward`` to ``arm``'s running mean."""
        arm = _check_arm(arm, self.n_arms)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be a finite number, got {reward}")
        self.pulls[arm] += 1
        self.estimates[arm] += (reward - self.estimates[arm]) / self.pulls[arm]


class ThompsonSampling:
    """Thompson sampling for rewards 0 or 1, with a Beta prior on each arm's mean.

    Each choice draws one plausible mean per arm from its Beta posterior and picks
    the highest: arms are tried as often as they may be the best.

    Attributes
    ----------
    successes, failures : numpy.ndarray
        Each arm's Beta posterior parameters: the prior plus the rewards and misses.

    Examples
    --------
    >>> policy = ThompsonSampling(2, seed=0)
    >>> for _ in range(20):
    ...     policy.update(1, 1.0)
    >>> policy.choose()
    1
    """

    def __init__(
        self, n_arms: int, seed: int | None = None, prior: tuple[float, float] = (1.0, 1.0)
    ) -> None:
        self.n_arms = positive_int("n_arms", n_arms)
        if len(prior) != 2 or not min(prior) > 0:
            raise ValueError(f"prior must be two Beta parameters above 0, got {prior!r}")
        self.successes = np.full(self.n_arms, float(prior[0]))
        self.failures = np.full(self.n_arms, float(prior[1]))
        self._rng = np.random.default_rng(seed)

    def choose(self) -> int:
        """The arm with the highest draw from its posterior."""
        return int(np.argmax(self._rng.beta(self.successes, self.failures)))

    def update(self, arm: int, reward: float) -> None:
        """Count ``reward`` (between 0 and 1) as a success and ``1 - reward`` as a failure."""
        arm = _check_arm(arm, self.n_arms)
        if not 0 <= reward <= 1:
            raise ValueError(f"reward must lie between 0 and 1, got {reward}")
        self.successes[arm] += reward
        self.failures[arm] += 1 - reward


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """What :func:`replay` measured: the mean reward over the events it could use.

    Attributes
    ----------
    mean_reward : float
        Mean reward over the matched events, ``nan`` when none matched.
    matched : int
        How many logged events matched the policy's choice.
    curve : numpy.ndarray
        The running mean reward after each matched event: how the policy learned.
    """

    mean_reward: float
    matched: int
    curve: np.ndarray


def replay(policy: Policy, logged_arms: Any, rewards: Any) -> ReplayResult:
    """Evaluate a bandit policy offline on events logged by a uniformly random policy.

    The replay method of Li, Chu, Langford and Wang (2011): walk the events in order;
    where the policy chooses the arm that was logged, count the reward and let the
    policy learn from it; otherwise skip the event, unseen by the policy. With a uniform
    logger, the matched events are an unbiased sample of what the policy would have met
    online; about one event in ``n_arms`` matches.

    Parameters
    ----------
    policy : object with ``choose() -> int`` and ``update(arm, reward)``
        E.g. :class:`EpsilonGreedy` or :class:`ThompsonSampling`; it is updated in place.
    logged_arms : 1-D array-like of int
        The arm shown at each event, chosen uniformly at random.
    rewards : 1-D array-like of float
        The reward observed at each event.

    Returns
    -------
    ReplayResult, with ``mean_reward`` ``nan`` when no event matched.

    Examples
    --------
    >>> class AlwaysFirst:  # the simplest policy: always arm 0, learns nothing
    ...     def choose(self):
    ...         return 0
    ...     def update(self, arm, reward):
    ...         pass
    >>> result = replay(AlwaysFirst(), logged_arms=[0, 1, 0, 2], rewards=[1, 1, 0, 1])
    >>> result.mean_reward, result.matched, result.curve.tolist()
    (0.5, 2, [1.0, 0.5])
    """
    arms, reward = np.asarray(logged_arms), np.asarray(rewards, dtype=np.float64)
    if arms.ndim != 1 or arms.shape != reward.shape:
        raise ValueError(
            f"logged_arms and rewards must be 1-D of one length, got {arms.shape}, {reward.shape}"
        )
    if arms.size and (not np.issubdtype(arms.dtype, np.integer) or arms.min() < 0):
        raise ValueError("logged_arms must hold arm numbers: integers >= 0")
    if not np.isfinite(reward).all():
        raise ValueError("rewards holds NaN or infinite values")
    gained = []
    for arm, r in zip(arms.tolist(), reward.tolist(), strict=True):
        if policy.choose() == arm:
            policy.update(arm, r)
            gained.append(r)
    curve = np.cumsum(gained) / np.arange(1, len(gained) + 1)
    mean = float(curve[-1]) if len(curve) else math.nan
    return ReplayResult(mean, len(gained), curve)
