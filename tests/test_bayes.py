"""Gibbs sampling: the Gaussian draws against their closed form, the sampler on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mfkit.bayes
from mfkit.bayes import GibbsFM, draw_gaussian_rows
from mfkit.feature_rows import FeatureRows, multi_hot, one_hot


def test_a_multi_hot_field_must_be_a_declared_bag_of_its_key() -> None:
    users = one_hot(torch.tensor([1, 0, 1]), 2)
    bag = FeatureRows.concat(users, multi_hot([[0, 1], [2], [0, 1]], 3))
    with pytest.raises(ValueError, match="bags=.field: key"):
        GibbsFM(bag.fields, dim=2).sample(bag, torch.ones(3), progress=False)
    GibbsFM(bag.fields, dim=2, bags={1: 0}).sample(bag, torch.ones(3), samples=1, progress=False)
    differs = FeatureRows.concat(users, multi_hot([[0, 1], [2], [0]], 3))
    with pytest.raises(ValueError, match="not the same for every row of a key"):
        GibbsFM(bag.fields, dim=2, bags={1: 0}).sample(differs, torch.ones(3), progress=False)
    with pytest.raises(ValueError, match="maps a bag field to a one-hot field"):
        GibbsFM(bag.fields, dim=2, bags={1: 1})


def _mean_only(precision: np.ndarray, rhs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.linalg.solve(precision, rhs)


def test_bag_draws_match_a_brute_force_pass_over_the_rows(monkeypatch) -> None:
    # Without the noise, a pass over a bag field is coordinate descent: feature by
    # feature, the posterior mean of (w_j, v_j) given all else. Compute it from the
    # dense rows and compare.
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, 4, (40,), generator=g), torch.randint(0, 5, (40,), generator=g)
    bags_of = [[0, 2], [1], [1, 3, 4], [0, 1, 2, 3]]
    rows = FeatureRows.concat(
        one_hot(users, 4), one_hot(items, 5), multi_hot([bags_of[u] for u in users.tolist()], 5)
    )
    y = torch.randn(40, generator=g, dtype=torch.float64) + 3
    fm = GibbsFM(rows.fields, dim=3, bags={2: 0}, init_std=0.5, seed=0)
    fm.theta[:, 0] = torch.randn(14, generator=g, dtype=torch.float64)
    fm.precision[2] = torch.tensor([2.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    fm.mean[2] = torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64)
    fm.alpha, fm.w0 = 1.7, 0.4
    expected = fm.theta.clone()
    x = rows.dense().double()
    for j in range(9, 14):  # the bag's features, one after the other
        others = expected[:, 1:] * 1.0
        others[j] = 0.0
        partner = x @ others  # S_r without feature j
        pred_others = (
            fm.w0
            + x @ (expected[:, 0] * (torch.arange(14) != j))
            + 0.5 * (partner.square().sum(1) - (x.square() @ others.square().sum(1)))
        )
        design = x[:, j : j + 1] * torch.cat([torch.ones(40, 1, dtype=torch.float64), partner], 1)
        precision = torch.diag(fm.precision[2]) + fm.alpha * design.T @ design
        rhs = fm.precision[2] * fm.mean[2] + fm.alpha * design.T @ (y - pred_others)
        expected[j] = torch.linalg.solve(precision, rhs)
    monkeypatch.setattr(mfkit.bayes, "_draw_one", _mean_only)
    codes, key_bags = fm._layout(rows)
    linear, factors, squares = fm._parts(codes, key_bags, fm.theta)
    pred = fm.w0 + linear + 0.5 * (factors.square().sum(1) - squares)
    fm._bag_field(2, codes, key_bags, y, pred, factors)
    torch.testing.assert_close(fm.theta, expected, atol=1e-9, rtol=0)


def test_predictions_are_the_factorization_machines() -> None:
    from mfkit.models import FactorizationMachine

    users = one_hot(torch.tensor([0, 1, 1]), 2)
    rows = FeatureRows.concat(
        users, one_hot(torch.tensor([2, 0, 1]), 3), multi_hot([[0], [1, 2], [1, 2]], 3)
    )
    gibbs = GibbsFM(rows.fields, dim=2, bags={2: 0}, init_std=0.7, seed=3)
    gibbs.theta[:, 0] = torch.arange(8, dtype=torch.float64) / 10
    fm = FactorizationMachine(rows.n_features, dim=2, global_mean=0.5)
    with torch.no_grad():
        fm.weights.weight.copy_(gibbs.theta[:, :1].float())
        fm.factors.weight.copy_(gibbs.theta[:, 1:].float())
    codes, key_bags = gibbs._layout(rows)
    mine = gibbs._predict_once(codes, key_bags, 0.5, gibbs.theta).float()
    torch.testing.assert_close(mine, fm(*rows.batch(torch.arange(3))).detach())


def test_draws_have_the_posterior_mean_and_covariance() -> None:
    # One small regression, repeated in 20,000 groups: the draws' mean and covariance
    # must be the closed-form posterior's.
    design = torch.tensor([[1.0, 0.5], [1.0, -1.0], [1.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    copies = 20_000
    groups = torch.arange(copies).repeat_interleave(3)
    prior_mean = torch.tensor([0.5, -0.5], dtype=torch.float64)
    prior_precision = torch.tensor([2.0, 0.5], dtype=torch.float64)
    alpha = 1.5
    drawn = draw_gaussian_rows(
        design.repeat(copies, 1),
        target.repeat(copies),
        groups,
        copies,
        prior_mean,
        prior_precision,
        alpha,
        torch.Generator().manual_seed(0),
    )
    precision = torch.diag(prior_precision) + alpha * design.T @ design
    covariance = torch.linalg.inv(precision)
    mean = covariance @ (prior_precision * prior_mean + alpha * design.T @ target)
    torch.testing.assert_close(drawn.mean(dim=0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(drawn.T.cov(), covariance, atol=0.01, rtol=0)


def test_a_group_without_rows_is_a_draw_from_the_prior() -> None:
    design = torch.ones(2, 1, dtype=torch.float64)
    drawn = draw_gaussian_rows(
        design,
        torch.zeros(2, dtype=torch.float64),
        torch.tensor([0, 0]),
        2,
        torch.tensor([3.0], dtype=torch.float64),
        torch.tensor([1e12], dtype=torch.float64),  # all but certain of the prior mean
        1.0,
    )
    torch.testing.assert_close(
        drawn, torch.full((2, 1), 3.0, dtype=torch.float64), atol=1e-4, rtol=0
    )


def _low_rank_ratings(seed: int = 0) -> tuple[FeatureRows, torch.Tensor, torch.Tensor]:
    """Every (user, item) pair of a rank-2 matrix plus biases and a little noise."""
    g = torch.Generator().manual_seed(seed)
    n_users, n_items = 30, 25
    users = torch.arange(n_users).repeat_interleave(n_items)
    items = torch.arange(n_items).repeat(n_users)
    U, V = torch.randn(n_users, 2, generator=g), torch.randn(n_items, 2, generator=g)
    clean = 3.0 + 0.5 * torch.randn(n_users, generator=g)[users] + (U[users] * V[items]).sum(1)
    noisy = clean + 0.3 * torch.randn(len(users), generator=g)
    rows = FeatureRows.concat(one_hot(users, n_users), one_hot(items, n_items))
    return rows, noisy, clean


def test_gibbs_fm_learns_a_low_rank_matrix_from_part_of_it() -> None:
    rows, noisy, clean = _low_rank_ratings()
    held_out = torch.rand(len(noisy), generator=torch.Generator().manual_seed(1)) < 0.2
    users, items = rows.indices.view(-1, 2).T
    train = FeatureRows.concat(one_hot(users[~held_out], 30), one_hot(items[~held_out] - 30, 25))
    test = FeatureRows.concat(one_hot(users[held_out], 30), one_hot(items[held_out] - 30, 25))
    fm = GibbsFM(train.fields, dim=4, seed=0)
    fm.sample(train, noisy[~held_out], burn_in=20, samples=60, progress=False)
    error = (fm.predict(test) - clean[held_out]).square().mean().sqrt()
    baseline = (noisy[~held_out].mean() - clean[held_out]).square().mean().sqrt()
    assert error < 0.3 * baseline  # the structure is learnt, not just the mean
    assert fm.draws(test).shape == (60, int(held_out.sum()))
    assert 1 / fm.alpha**0.5 == pytest.approx(0.3, rel=0.3)  # the noise level is found


def test_gibbs_fm_is_reproducible_with_a_seed() -> None:
    rows, noisy, _ = _low_rank_ratings()

    def run(seed: int) -> torch.Tensor:
        fm = GibbsFM(rows.fields, dim=2, seed=seed)
        fm.sample(rows, noisy, burn_in=2, samples=3, progress=False)
        return fm.predict(rows)

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_gibbs_fm_rejects_bad_input() -> None:
    rows, noisy, _ = _low_rank_ratings()
    fm = GibbsFM(rows.fields, dim=2)
    with pytest.raises(RuntimeError, match="call sample"):
        fm.predict(rows)
    with pytest.raises(ValueError, match="targets must have shape"):
        fm.sample(rows, noisy[:-1], progress=False)
    with pytest.raises(ValueError, match="fields"):
        GibbsFM((30, 24), dim=2).sample(rows, noisy, progress=False)
    with pytest.raises(ValueError, match="samples >= 1"):
        fm.sample(rows, noisy, samples=0, progress=False)
    with pytest.raises(ValueError, match="dim and every field width"):
        GibbsFM((3, 0), dim=2)
