"""Learning to rank: the pairwise losses, NeuMF and EASE^R."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mfkit.losses import bpr_loss, hinge_loss
from mfkit.models import EASE, MatrixFactorization, NeuMF, ease_weights


class FixedScores(torch.nn.Module):
    """Scores read from a table: ``s(u, j) = table[u, j]``."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table))

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.table[users, movies]


SCORES = FixedScores([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
USERS, POS, NEG = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), torch.tensor([2, 0, 2])
GAPS = [2.0 - -1.0, 0.5 - 2.0, 1.0 - 3.0]  # s(u, pos) - s(u, neg), by hand


def test_bpr_loss_is_the_mean_negative_log_sigmoid_of_the_score_gaps() -> None:
    expected = np.mean([math.log(1 + math.exp(-g)) for g in GAPS])
    assert bpr_loss(SCORES, USERS, POS, NEG).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("margin", [1.0, 0.5, 0.0])
def test_hinge_loss_is_the_mean_of_max_0_margin_minus_gap(margin: float) -> None:
    expected = np.mean([max(0.0, margin - g) for g in GAPS])
    loss = hinge_loss(SCORES, USERS, POS, NEG, margin=margin)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_losses_only_see_the_order_of_the_scores() -> None:
    shifted = FixedScores((SCORES.table.detach() + 7.0).tolist())
    for loss in (bpr_loss, hinge_loss):
        assert loss(shifted, USERS, POS, NEG).item() == pytest.approx(
            loss(SCORES, USERS, POS, NEG).item(), rel=1e-6
        )


def test_bpr_gradient_pushes_the_positive_up_and_the_negative_down() -> None:
    model = FixedScores([[0.0, 0.0]])
    bpr_loss(model, torch.tensor([0]), torch.tensor([0]), torch.tensor([1])).backward()
    assert model.table.grad[0, 0] < 0 < model.table.grad[0, 1]


def test_pairwise_losses_reject_mismatched_triples_and_negative_margins() -> None:
    with pytest.raises(ValueError, match="one entry per triple"):
        bpr_loss(SCORES, USERS, POS, NEG[:2])
    with pytest.raises(ValueError, match="margin"):
        hinge_loss(SCORES, USERS, POS, NEG, margin=-1.0)


def test_gmf_branch_with_an_identity_output_is_the_dot_product() -> None:
    gmf = NeuMF(5, 7, dim=3, branches=("gmf",), seed=0)
    with torch.no_grad():
        gmf.output.weight.fill_(1.0)
        gmf.output.bias.zero_()
    mf = MatrixFactorization(5, 7, dim=3)
    mf.load_state_dict(
        {"user_factors.weight": gmf.user_gmf.weight, "movie_factors.weight": gmf.movie_gmf.weight}
    )
    users, movies = torch.tensor([0, 4, 2, 2]), torch.tensor([6, 0, 3, 1])
    torch.testing.assert_close(gmf(users, movies), mf(users, movies))
    torch.testing.assert_close(
        gmf.score_all(torch.tensor([1, 3])), mf.score_all(torch.tensor([1, 3]))
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"branches": ("gmf",)}, {"branches": ("mlp",)}, {"hidden": (6,)}, {"dropout": 0.3}],
)
def test_neumf_score_all_equals_forward_on_every_pair(kwargs: dict) -> None:
    model = NeuMF(5, 7, dim=3, **({"hidden": (8, 4)} | kwargs), seed=0).eval()
    users = torch.tensor([4, 0, 2])
    pairs = model(users.repeat_interleave(7), torch.arange(7).repeat(3)).view(3, 7)
    torch.testing.assert_close(model.score_all(users, chunk=2), pairs)


def test_neumf_score_all_matches_pairwise_scores_and_seeds_reproduce() -> None:
    model = NeuMF(4, 6, dim=2, hidden=(8, 4), seed=1)
    again = NeuMF(4, 6, dim=2, hidden=(8, 4), seed=1)
    users = torch.tensor([0, 3])
    all_scores = model.score_all(users)
    assert all_scores.shape == (2, 6)
    pairs = model(users.repeat_interleave(6), torch.arange(6).repeat(2)).view(2, 6)
    torch.testing.assert_close(all_scores, pairs)
    torch.testing.assert_close(all_scores, again.score_all(users))
    assert not torch.allclose(
        all_scores, NeuMF(4, 6, dim=2, hidden=(8, 4), seed=2).score_all(users)
    )


def test_neumf_from_pretrained_blends_the_two_branches_logits() -> None:
    gmf = NeuMF(4, 5, dim=3, branches=("gmf",), seed=0)
    mlp = NeuMF(4, 5, hidden=(6, 3), branches=("mlp",), seed=1)
    fused = NeuMF.from_pretrained(gmf, mlp, alpha=0.3)
    users, movies = torch.tensor([0, 1, 3]), torch.tensor([4, 2, 0])
    expected = 0.3 * gmf(users, movies) + 0.7 * mlp(users, movies)
    torch.testing.assert_close(fused(users, movies), expected)
    with pytest.raises(ValueError, match="GMF-only and an MLP-only"):
        NeuMF.from_pretrained(mlp, gmf)


@pytest.mark.parametrize(
    "kwargs",
    [{"branches": ()}, {"branches": ("gmf", "deep")}, {"dim": 0}, {"hidden": ()}, {"dropout": 1.0}],
)
def test_neumf_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        NeuMF(3, 4, **kwargs)


def _interactions(seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((12, 6)) < 0.4).astype(np.float32))


def test_ease_weights_are_one_ridge_regression_per_movie_on_the_others() -> None:
    X, lam = _interactions().double(), 2.5  # noqa: N806
    B = ease_weights(X, lam).double()  # noqa: N806
    n = X.shape[1]
    for j in range(n):
        others = [i for i in range(n) if i != j]
        A = X[:, others]  # noqa: N806 - brute force: min ||X_j - A b||^2 + lam ||b||^2
        b = torch.linalg.solve(A.T @ A + lam * torch.eye(n - 1, dtype=torch.float64), A.T @ X[:, j])
        torch.testing.assert_close(B[others, j], b, atol=1e-5, rtol=1e-5)
        assert B[j, j] == 0


def test_ease_scores_are_x_times_b_and_never_self_recommend() -> None:
    X = _interactions(1)  # noqa: N806
    model = EASE(X, lam=1.0)
    users = torch.arange(len(X))
    torch.testing.assert_close(model.score_all(users), X @ model.B)
    movies = torch.arange(X.shape[1]).repeat(len(X))
    pairs = model(users.repeat_interleave(X.shape[1]), movies).view(len(X), -1)
    torch.testing.assert_close(pairs, model.score_all(users))
    # A user who interacted with one movie only gets no score from it: the diagonal is 0.
    lonely = torch.zeros(1, X.shape[1])
    lonely[0, 2] = 1.0
    assert EASE(torch.cat([X, lonely]), lam=1.0).score_all(torch.tensor([len(X)]))[0, 2] == 0


def test_ease_larger_lambda_shrinks_the_weights() -> None:
    X = _interactions(2)  # noqa: N806
    assert ease_weights(X, 100.0).abs().sum() < ease_weights(X, 1.0).abs().sum()


def test_ease_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lam"):
        ease_weights(_interactions(), 0.0)
    with pytest.raises(ValueError, match="matrix"):
        ease_weights(torch.ones(3), 1.0)
