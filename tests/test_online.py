"""Tests for mfkit.online: test sizes, team-draft interleaving, IPS, bandits and replay."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from mfkit.online import (
    EpsilonGreedy,
    ReplayResult,
    ThompsonSampling,
    ab_test_users,
    interleaving_winner,
    ips,
    paired_test_users,
    replay,
    team_draft,
)

# ----------------------------------------------------------------------- test sizes


def test_ab_test_users_textbook_case_and_scaling():
    # (1.959964 + 0.841621)^2 = 7.84888; 2 * 7.84888 / 0.2^2 = 392.44 -> 393 per arm
    assert ab_test_users(1.0, 0.2) == 393
    assert ab_test_users(1.0, -0.2) == 393  # the direction does not matter
    exact = 2 * (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 / 0.2**2
    for factor in (2, 3, 10):  # n grows as 1 / effect^2 (and as sd^2)
        assert ab_test_users(1.0, 0.2 / factor) == math.ceil(exact * factor**2)
        assert ab_test_users(float(factor), 0.2) == math.ceil(exact * factor**2)
    assert ab_test_users(1.0, 0.2, alpha=0.01) > 393
    assert ab_test_users(1.0, 0.2, power=0.9) > 393
    # alpha = 0.05, power = 0.5: z_power = 0, so n = 2 * 1.96^2 / 1 = 7.68 -> 8
    assert ab_test_users(1.0, 1.0, power=0.5) == 8


def test_paired_test_users():
    # half the two-sample size at the same sd: 392.44 / 2 = 196.2 -> 197
    assert paired_test_users(1.0, 0.2) == 197
    assert paired_test_users(0.5, 0.2) == math.ceil(392.443 / 8)


@pytest.mark.parametrize("size", [ab_test_users, paired_test_users])
def test_test_size_errors(size):
    with pytest.raises(ValueError, match="standard deviation must be above 0"):
        size(0.0, 0.2)
    with pytest.raises(ValueError, match="effect must be a finite difference other than 0"):
        size(1.0, 0.0)
    with pytest.raises(ValueError, match="alpha must lie between 0 and 1"):
        size(1.0, 0.2, alpha=1.0)
    with pytest.raises(ValueError, match="power must lie between 0 and 1"):
        size(1.0, 0.2, power=0.0)


# --------------------------------------------------------------------- interleaving


def test_team_draft_basics():
    a, b = [10, 11, 12, 13, 14, 15], [20, 11, 21, 10, 22, 23]
    for seed in range(50):
        items, teams = team_draft(a, b, 6, np.random.default_rng(seed))
        assert len(items) == len(teams) == 6
        assert len(set(items.tolist())) == 6  # no duplicates
        assert set(items[:2].tolist()) == {10, 20}  # the two lists' top items first
        assert abs(int((teams == 0).sum()) - int((teams == 1).sum())) <= 1
        for team, ranking in ((0, a), (1, b)):  # each team's picks follow its ranking
            ranks = [ranking.index(i) for i in items[teams == team]]
            assert ranks == sorted(ranks)


def test_team_draft_is_reproducible_and_fair():
    a, b = list(range(10)), list(range(10, 20))
    first = team_draft(a, b, 8, np.random.default_rng(7))
    again = team_draft(a, b, 8, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    rng = np.random.default_rng(0)
    a_first = np.mean([team_draft(a, b, 4, rng)[1][0] == 0 for _ in range(2000)])
    assert abs(a_first - 0.5) < 4 * math.sqrt(0.25 / 2000)


def test_team_draft_when_one_list_runs_out():
    # A has nothing new left after its two items; B fills the rest
    items, teams = team_draft([1, 2], [1, 3, 4, 5], 5, np.random.default_rng(0))
    assert sorted(items.tolist()) == [1, 2, 3, 4, 5]
    assert set(items[teams == 0].tolist()) <= {1, 2}
    with pytest.raises(ValueError, match="k=6 but a and b hold only 5 distinct items"):
        team_draft([1, 2], [1, 3, 4, 5], 6, np.random.default_rng(0))


def test_identical_rankings_tie_on_average():
    # Team draft ties identical rankings in expectation, not at every impression: a click
    # lands on whichever team the coin gave that rank to.
    ranking = [5, 3, 8, 1, 9, 2]
    rng = np.random.default_rng(1)
    outcomes = []
    for _ in range(2000):
        items, teams = team_draft(ranking, ranking, 6, rng)
        assert items.tolist() == ranking
        assert sorted(teams[:2]) == sorted(teams[2:4]) == sorted(teams[4:]) == [0, 1]
        assert interleaving_winner(teams, items, {5, 3}) == 0  # both of a pair: a tie
        outcomes.append(interleaving_winner(teams, items, {5}))
    assert abs(np.mean(outcomes)) < 4 * math.sqrt(1 / 2000)


def test_interleaving_prefers_the_ranker_users_click():
    rng = np.random.default_rng(2)
    liked = set(range(5))
    good = [0, 1, 2, 3, 4, 20, 21, 22]
    poor = [30, 31, 0, 32, 33, 1, 34, 35]
    wins = [
        interleaving_winner(*team_draft(good, poor, 6, rng)[::-1], clicked=liked)
        for _ in range(200)
    ]
    assert np.mean(wins) > 0.5


def test_interleaving_winner_by_hand_and_errors():
    items, teams = [7, 3, 9, 4], [0, 1, 0, 1]
    assert interleaving_winner(teams, items, {3, 4, 9}) == -1  # A 1 click, B 2
    assert interleaving_winner(teams, items, np.array([7, 9])) == 1
    assert interleaving_winner(teams, items, [7, 3]) == 0
    assert interleaving_winner(teams, items, set()) == 0
    assert interleaving_winner(teams, items, frozenset({7})) == 1
    assert interleaving_winner(teams, items, 3) == -1  # one clicked item
    with pytest.raises(ValueError, match="teams and items must be 1-D of one length"):
        interleaving_winner([0, 1], [7, 3, 9], {3})
    with pytest.raises(ValueError, match="teams must hold 0"):
        interleaving_winner([0, 2], [7, 3], {3})
    with pytest.raises(ValueError, match="generator must be a numpy Generator"):
        team_draft([1], [2], 1, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        team_draft([1], [2], 0, np.random.default_rng(0))


# ----------------------------------------------------------------------------- IPS


def test_ips_by_hand():
    rewards, logged, target = [1.0, 0.0, 1.0, 0.5], [0.5, 0.25, 0.5, 0.2], [1.0, 1.0, 0.0, 0.4]
    # weights 2, 4, 0, 2; weighted rewards 2, 0, 0, 1
    assert ips(rewards, logged, target) == pytest.approx(3 / 4)
    assert ips(rewards, logged, target, self_normalised=True) == pytest.approx(3 / 8)
    # the target is the logger: both give the plain mean reward
    assert ips(rewards, logged, logged) == pytest.approx(np.mean(rewards))
    assert ips(rewards, logged, logged, self_normalised=True) == pytest.approx(np.mean(rewards))


def _bandit_logs(rng, n_logs, n_events, means=(0.3, 0.7)):
    """Logs of a uniform logger on a two-armed Bernoulli bandit: arms and rewards."""
    arms = rng.integers(0, 2, (n_logs, n_events))
    rewards = (rng.random((n_logs, n_events)) < np.asarray(means)[arms]).astype(float)
    return arms, rewards


def test_ips_is_unbiased_for_a_deterministic_target():
    rng = np.random.default_rng(3)
    arms, rewards = _bandit_logs(rng, 1000, 100)
    logged = np.full(100, 0.5)
    estimates = np.array(
        [ips(r, logged, (a == 1).astype(float)) for a, r in zip(arms, rewards, strict=True)]
    )
    se = estimates.std(ddof=1) / math.sqrt(len(estimates))
    assert abs(estimates.mean() - 0.7) < 4 * se  # the truth: always arm 1, mean reward 0.7
    assert se < 0.01  # so the check above is tight enough to fail for a biased estimator


def test_snips_is_the_mean_reward_of_the_matched_events():
    rng = np.random.default_rng(4)
    arms, rewards = _bandit_logs(rng, 5, 60)
    for a, r in zip(arms, rewards, strict=True):
        target = (a == 1).astype(float)
        snips = ips(r, np.full(60, 0.5), target, self_normalised=True)
        assert snips == pytest.approx(r[a == 1].mean())


def test_ips_errors():
    with pytest.raises(ValueError, match="must be 1-D of one length"):
        ips([1, 0], [0.5, 0.5, 0.5], [1, 0])
    with pytest.raises(ValueError, match=r"logged_propensity must lie in \(0, 1\]"):
        ips([1, 0], [0.5, 0.0], [1, 0])
    with pytest.raises(ValueError, match=r"logged_propensity must lie in \(0, 1\]"):
        ips([1, 0], [0.5, -0.5], [1, 0])
    with pytest.raises(ValueError, match=r"target_propensity must lie in \[0, 1\]"):
        ips([1, 0], [0.5, 0.5], [1.5, 0])
    with pytest.raises(ValueError, match="no logged events"):
        ips([], [], [])
    with pytest.raises(ValueError, match="probability 0 to every logged action"):
        ips([1, 0], [0.5, 0.5], [0, 0], self_normalised=True)
    assert ips([1, 0], [0.5, 0.5], [0, 0]) == 0.0  # plain IPS is defined: nothing matched


# -------------------------------------------------------------------- bandits, replay


def test_epsilon_greedy_rules():
    policy = EpsilonGreedy(3, epsilon=0.0, seed=0)
    # before any reward every estimate is 0: ties broken at random, so every arm comes up
    assert {policy.choose() for _ in range(100)} == {0, 1, 2}
    policy.update(1, 1.0)
    policy.update(1, 0.0)
    policy.update(2, 0.2)
    assert policy.estimates == pytest.approx([0.0, 0.5, 0.2])
    assert policy.pulls.tolist() == [0, 2, 1]
    assert {policy.choose() for _ in range(100)} == {1}  # epsilon = 0 always exploits
    explorer = EpsilonGreedy(4, epsilon=1.0, seed=1)
    explorer.update(0, 1.0)
    picks = np.bincount([explorer.choose() for _ in range(4000)], minlength=4)
    assert np.all(np.abs(picks / 4000 - 0.25) < 0.03)  # epsilon = 1: uniform
    with pytest.raises(ValueError, match="arm must be an integer from 0 to 3"):
        explorer.update(4, 1.0)
    with pytest.raises(ValueError, match="reward must be a finite number"):
        explorer.update(0, float("nan"))
    with pytest.raises(ValueError, match="epsilon must lie between 0 and 1"):
        EpsilonGreedy(3, epsilon=1.5)
    with pytest.raises(ValueError, match="n_arms must be a positive integer"):
        EpsilonGreedy(0, epsilon=0.1)


def test_thompson_sampling_rules():
    policy = ThompsonSampling(3, seed=0, prior=(2.0, 1.0))
    policy.update(0, 1.0)
    policy.update(0, 0.0)
    policy.update(2, 1.0)
    assert policy.successes.tolist() == [3.0, 2.0, 3.0]
    assert policy.failures.tolist() == [2.0, 1.0, 1.0]
    for _ in range(200):
        policy.update(1, 1.0)
    assert np.mean([policy.choose() == 1 for _ in range(200)]) > 0.9
    with pytest.raises(ValueError, match="reward must lie between 0 and 1"):
        policy.update(0, 2.0)
    with pytest.raises(ValueError, match="prior must be two Beta parameters above 0"):
        ThompsonSampling(2, prior=(0.0, 1.0))


class _Fixed:
    """Always the same arm; records its updates."""

    def __init__(self, arm):
        self.arm, self.updates = arm, []

    def choose(self):
        return self.arm

    def update(self, arm, reward):
        self.updates.append((arm, reward))


def test_replay_of_a_fixed_policy():
    rng = np.random.default_rng(5)
    arms, rewards = rng.integers(0, 4, 500), rng.random(500)
    policy = _Fixed(0)
    result = replay(policy, arms, rewards)
    assert isinstance(result, ReplayResult)
    assert result.matched == int((arms == 0).sum())
    assert result.mean_reward == pytest.approx(rewards[arms == 0].mean())
    expected_curve = np.cumsum(rewards[arms == 0]) / np.arange(1, result.matched + 1)
    assert result.curve == pytest.approx(expected_curve)
    # the policy learns from the matched events only, in order
    assert policy.updates == [(0, r) for r in rewards[arms == 0].tolist()]
    nothing = replay(_Fixed(9), arms, rewards)
    assert nothing.matched == 0 and math.isnan(nothing.mean_reward) and nothing.curve.size == 0


def _simulated_log(seed, n_arms=20, n_events=20_000):
    rng = np.random.default_rng(seed)
    means = np.full(n_arms, 0.1)
    means[n_arms // 2] = 0.6  # one clearly best arm
    arms = rng.integers(0, n_arms, n_events)
    return arms, (rng.random(n_events) < means[arms]).astype(float)


def test_learning_policies_beat_random_in_replay():
    arms, rewards = _simulated_log(6)
    uniform = replay(EpsilonGreedy(20, epsilon=1.0, seed=0), arms, rewards)
    greedy = replay(EpsilonGreedy(20, epsilon=0.1, seed=0), arms, rewards)
    thompson = replay(ThompsonSampling(20, seed=0), arms, rewards)
    assert abs(uniform.mean_reward - 0.125) < 0.04  # (19 * 0.1 + 0.6) / 20
    assert greedy.mean_reward > uniform.mean_reward + 0.2
    assert thompson.mean_reward > uniform.mean_reward + 0.2
    assert 800 < thompson.matched < 1200  # about one event in 20 matches


def test_replay_is_reproducible_and_checks_input():
    arms, rewards = _simulated_log(7, n_arms=5, n_events=3000)
    for make in (lambda: EpsilonGreedy(5, 0.1, seed=3), lambda: ThompsonSampling(5, seed=3)):
        first, again = replay(make(), arms, rewards), replay(make(), arms, rewards)
        assert first.matched == again.matched
        assert np.array_equal(first.curve, again.curve)
    other = replay(ThompsonSampling(5, seed=4), arms, rewards)
    assert not np.array_equal(other.curve, first.curve)
    with pytest.raises(ValueError, match="must be 1-D of one length"):
        replay(_Fixed(0), [0, 1], [1.0])
    with pytest.raises(ValueError, match="integers >= 0"):
        replay(_Fixed(0), [0.5, 1], [1.0, 0.0])
    with pytest.raises(ValueError, match="rewards holds NaN"):
        replay(_Fixed(0), [0, 1], [1.0, np.nan])
