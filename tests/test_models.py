"""Tests for mfkit.models."""

from __future__ import annotations

import pytest
import torch

from mfkit.models import MatrixFactorization

N_USERS, N_MOVIES, DIM = 5, 7, 3


def set_biases(model: MatrixFactorization, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.global_mean.fill_(3.25)
        model.user_bias.weight.copy_(torch.randn(model.user_bias.weight.shape, generator=g))
        model.movie_bias.weight.copy_(torch.randn(model.movie_bias.weight.shape, generator=g))


def brute_force(model: MatrixFactorization, i: int, j: int) -> float:
    U, V = model.U.detach(), model.V.detach()  # noqa: N806
    value = sum(float(U[i, k]) * float(V[j, k]) for k in range(U.shape[1]))
    if model.bias:
        value += (
            model.global_mean.item()
            + model.user_bias.weight[i, 0].item()
            + model.movie_bias.weight[j, 0].item()
        )
    return value


def all_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    users = torch.arange(N_USERS).repeat_interleave(N_MOVIES)
    movies = torch.arange(N_MOVIES).repeat(N_USERS)
    return users, movies


def test_shapes_and_parameters() -> None:
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, seed=0)
    assert model.U.shape == (N_USERS, DIM) and model.V.shape == (N_MOVIES, DIM)
    assert sum(p.numel() for p in model.parameters()) == (N_USERS + N_MOVIES) * DIM
    biased = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=True, global_mean=3.5, seed=0)
    assert sum(p.numel() for p in biased.parameters()) == (N_USERS + N_MOVIES) * (DIM + 1) + 1
    assert biased.global_mean.item() == 3.5
    assert torch.count_nonzero(biased.user_bias.weight) == 0
    assert torch.count_nonzero(biased.movie_bias.weight) == 0
    users, movies = all_pairs()
    assert model(users, movies).shape == (N_USERS * N_MOVIES,)
    assert model.score_all(torch.tensor([0, 4, 4])).shape == (3, N_MOVIES)


@pytest.mark.parametrize("bias", [False, True])
def test_forward_equals_brute_force_sum(bias: bool) -> None:
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=bias, seed=1, init_std=1.0)
    if bias:
        set_biases(model)
    users = torch.tensor([0, 4, 2, 2, 3])
    movies = torch.tensor([6, 0, 3, 3, 1])
    out = model(users, movies)
    pairs = zip(users.tolist(), movies.tolist(), strict=True)
    expected = torch.tensor([brute_force(model, i, j) for i, j in pairs])
    torch.testing.assert_close(out, expected)


def test_bias_terms_add_up() -> None:
    # With zero factors the prediction is exactly mu + b_i + c_j.
    model = MatrixFactorization(2, 3, 2, bias=True, global_mean=3.0, init_std=0.0, seed=0)
    with torch.no_grad():
        model.user_bias.weight.copy_(torch.tensor([[0.5], [-1.0]]))
        model.movie_bias.weight.copy_(torch.tensor([[0.0], [0.25], [2.0]]))
    out = model(torch.tensor([0, 1, 1]), torch.tensor([2, 1, 0]))
    assert out.tolist() == [5.5, 2.25, 2.0]
    assert model.score_all(torch.tensor([1])).tolist() == [[2.0, 2.25, 4.0]]


@pytest.mark.parametrize("bias", [False, True])
def test_score_all_equals_forward_on_every_pair(bias: bool) -> None:
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=bias, global_mean=3.5, seed=2)
    if bias:
        set_biases(model, seed=1)
    users, movies = all_pairs()
    expected = model(users, movies).reshape(N_USERS, N_MOVIES)
    torch.testing.assert_close(model.score_all(torch.arange(N_USERS)), expected)
    subset = torch.tensor([3, 1])
    torch.testing.assert_close(model.score_all(subset), expected[subset])


def test_predict_clips_and_does_not_track_gradients() -> None:
    model = MatrixFactorization(
        N_USERS, N_MOVIES, DIM, bias=True, init_std=2.0, rating_range=(1.0, 5.0), seed=0
    )
    users, movies = all_pairs()
    with torch.no_grad():
        model.global_mean.fill_(3.0)
    raw = model(users, movies)
    assert raw.requires_grad
    raw = raw.detach()
    assert raw.min() < 1.0 and raw.max() > 5.0  # some values get clipped at each end
    pred = model.predict(users, movies)
    assert not pred.requires_grad and pred.grad_fn is None
    assert pred.min() == 1.0 and pred.max() == 5.0
    torch.testing.assert_close(pred, raw.clamp(1.0, 5.0))
    torch.testing.assert_close(model.predict(users, movies, clip=False), raw)


def test_predict_without_rating_range_does_not_clip() -> None:
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, init_std=3.0, seed=0)
    users, movies = all_pairs()
    raw = model(users, movies).detach()
    assert raw.min() < 1.0 and raw.max() > 5.0
    pred = model.predict(users, movies)
    assert not pred.requires_grad
    torch.testing.assert_close(pred, raw)


def test_same_seed_same_weights_different_seed_different() -> None:
    a = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=True, seed=7)
    b = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=True, seed=7)
    c = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=True, seed=8)
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(tensor, b.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(a.U, c.U) and not torch.equal(a.V, c.V)
    assert not torch.equal(a.U, a.V[:N_USERS])  # U and V are drawn separately


def test_seed_does_not_depend_on_global_generator() -> None:
    torch.manual_seed(0)
    a = MatrixFactorization(N_USERS, N_MOVIES, DIM, seed=3)
    torch.manual_seed(1)
    b = MatrixFactorization(N_USERS, N_MOVIES, DIM, seed=3)
    assert torch.equal(a.U, b.U) and torch.equal(a.V, b.V)


def test_seed_none_uses_global_generator() -> None:
    torch.manual_seed(5)
    a = MatrixFactorization(N_USERS, N_MOVIES, DIM)
    torch.manual_seed(5)
    b = MatrixFactorization(N_USERS, N_MOVIES, DIM)
    c = MatrixFactorization(N_USERS, N_MOVIES, DIM)
    assert torch.equal(a.U, b.U)
    assert not torch.equal(b.U, c.U)


@pytest.mark.parametrize("init_std", [0.01, 0.1, 1.0])
def test_init_std_is_respected(init_std: float) -> None:
    model = MatrixFactorization(2_000, 1_000, 16, init_std=init_std, seed=0)
    for table in (model.U.detach(), model.V.detach()):
        assert float(table.std()) == pytest.approx(init_std, rel=0.03)
        assert abs(float(table.mean())) < 0.02 * init_std


def test_zero_init_std_gives_zero_factors() -> None:
    model = MatrixFactorization(3, 4, 2, init_std=0.0, seed=0)
    assert torch.count_nonzero(model.U) == 0 and torch.count_nonzero(model.V) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "n_users must be at least 1, got 0"),
        ({"n_movies": -3}, "n_movies must be at least 1, got -3"),
        ({"dim": 0}, r"dim must be at least 1 \(or 0 with bias=True"),
        ({"dim": -1, "bias": True}, "got -1"),
        ({"init_std": -0.1}, r"init_std must be >= 0, got -0\.1"),
    ],
)
def test_bad_sizes_raise_value_error(kwargs: dict, message: str) -> None:
    args = {"n_users": 3, "n_movies": 4, "dim": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        MatrixFactorization(**args)


def test_dim_zero_with_bias_is_the_biases_only_baseline() -> None:
    model = MatrixFactorization(3, 4, dim=0, bias=True, global_mean=3.5)
    with torch.no_grad():
        model.user_bias.weight[:, 0] = torch.tensor([0.5, -1.0, 0.0])
        model.movie_bias.weight[:, 0] = torch.tensor([0.25, 0.0, -0.5, 1.0])
    users, movies = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 2, 3, 1])
    expected = torch.tensor([3.5 + 0.5 + 0.25, 3.5 - 1.0 - 0.5, 3.5 + 0.0 + 1.0, 3.5 + 0.5])
    torch.testing.assert_close(model(users, movies), expected)
    torch.testing.assert_close(model.score_all(users)[torch.arange(4), movies], expected)


def test_gradients_flow_to_used_rows_only() -> None:
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=True, seed=0)
    model(torch.tensor([1]), torch.tensor([2])).sum().backward()
    user_grad = model.user_factors.weight.grad
    assert torch.count_nonzero(user_grad[[0, 2, 3, 4]]) == 0
    torch.testing.assert_close(user_grad[1], model.V[2].detach())
    assert model.global_mean.grad.item() == 1.0


@pytest.mark.parametrize("bias", [False, True])
def test_forward_on_index_grids_matches_pair_by_pair(bias: bool) -> None:
    """Index tensors of any shape (here a users-by-candidates grid) give that shape."""
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, bias=bias, seed=2, init_std=1.0)
    if bias:
        set_biases(model, seed=3)
    users = torch.tensor([[0], [3]]).expand(2, 4)
    movies = torch.tensor([[1, 6, 6, 0], [2, 5, 4, 1]])
    out = model(users, movies)
    assert out.shape == (2, 4)
    for r in range(2):
        for c in range(4):
            expected = brute_force(model, int(users[r, c]), int(movies[r, c]))
            assert out[r, c].item() == pytest.approx(expected, rel=1e-5)


def test_repeated_pairs_accumulate_gradients() -> None:
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, seed=0)
    model(torch.tensor([1, 1, 1]), torch.tensor([2, 2, 4])).sum().backward()
    expected = 2 * model.V[2].detach() + model.V[4].detach()
    torch.testing.assert_close(model.user_factors.weight.grad[1], expected)
    torch.testing.assert_close(model.movie_factors.weight.grad[2], 2 * model.U[1].detach())


@pytest.mark.parametrize("dim", [0, 1, 5, 32, 100])
def test_blockwise_pair_dot_equals_the_plain_gathered_product(dim: int, monkeypatch) -> None:
    """The forward and gradients of the blocked dot product are the plain one's (bit for bit
    on one thread)."""
    from mfkit.models import factorization

    monkeypatch.setattr(factorization, "_BLOCK", 200)  # many blocks, a short last one
    g = torch.Generator().manual_seed(dim)
    U, V = torch.randn(40, dim, generator=g), torch.randn(30, dim, generator=g)  # noqa: N806
    users = torch.randint(40, (1_001,), generator=g)
    movies = torch.randint(30, (1_001,), generator=g)
    weights = torch.randn(1_001, generator=g)
    results = []
    for dot in (
        lambda a, b: (a[users] * b[movies]).sum(-1),
        lambda a, b: factorization._pair_dot(a, b, users, movies),
    ):
        a, b = U.clone().requires_grad_(), V.clone().requires_grad_()
        out = dot(a, b)
        (out * weights).sum().backward()
        results.append((out.detach(), a.grad, b.grad))
    for plain, blocked in zip(*results, strict=True):
        if torch.get_num_threads() == 1:
            assert torch.equal(plain, blocked)
        else:  # several threads may add the rows' gradients in another order
            torch.testing.assert_close(plain, blocked)


def test_blockwise_pair_dot_leaves_frozen_tables_without_gradient(monkeypatch) -> None:
    from mfkit.models import factorization

    monkeypatch.setattr(factorization, "_BLOCK", 2)  # three pairs take the blocked path
    model = MatrixFactorization(N_USERS, N_MOVIES, DIM, seed=0)
    model.user_factors.weight.requires_grad_(False)
    model(torch.tensor([1, 1, 3]), torch.tensor([2, 2, 4])).sum().backward()
    assert model.user_factors.weight.grad is None
    torch.testing.assert_close(model.movie_factors.weight.grad[2], 2 * model.U[1])
