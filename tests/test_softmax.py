"""Tests for the softmax model (mfkit.models.SoftmaxModel) and its loss (mfkit.losses)."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch

from mfkit.losses import softmax_loss
from mfkit.models import SoftmaxModel
from mfkit.train import fit

# Hand-set weights: 4 movies, dim 2, separate input (E) and output (W) tables.
E = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0], [0.5, -0.5]]
W = [[0.3, -0.2], [1.0, 0.5], [-0.4, 0.8], [0.0, -1.0]]
BAGS = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]  # user 0: {0, 1, 2}; user 1: {1, 3}


def hand_model(pooling: str = "mean", **kwargs) -> SoftmaxModel:
    model = SoftmaxModel(4, dim=2, pooling=pooling, share_embeddings=False, seed=0, **kwargs)
    with torch.no_grad():
        model.input_embedding.data = torch.tensor(E)
        model.output_embedding.data = torch.tensor(W)
    return model


def hand_cross_entropy(bag: set[int], target: int, pooling: str) -> float:
    """-log softmax(pooled @ W^T)[target] with the target left out of ``bag``, in floats."""
    inputs = sorted(bag - {target})
    pooled = [sum(E[j][c] for j in inputs) for c in range(2)]
    if pooling == "mean" and inputs:
        pooled = [x / len(inputs) for x in pooled]
    logits = [sum(p * w for p, w in zip(pooled, row, strict=True)) for row in W]
    return math.log(sum(math.exp(x) for x in logits)) - logits[target]


def as_sets(bags: list[list[float]]) -> list[set[int]]:
    return [{j for j, x in enumerate(row) if x} for row in bags]


# ------------------------------------------------------------------ softmax_loss
@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_softmax_loss_equals_hand_computed_cross_entropy(pooling: str) -> None:
    model = hand_model(pooling)
    bags = torch.tensor(BAGS)
    # User 0 twice (each example removes only its own target); user 1 with a target
    # that is not in the bag at all (the bag is then used as it is).
    users, targets = [0, 0, 1, 1], [1, 2, 3, 0]
    loss = softmax_loss(model, torch.tensor(users), torch.tensor(targets), bags=bags)
    sets = as_sets(BAGS)
    each = [hand_cross_entropy(sets[u], t, pooling) for u, t in zip(users, targets, strict=True)]
    assert loss.shape == ()
    assert loss.item() == pytest.approx(sum(each) / len(each), rel=1e-6)
    for u, t, expected in zip(users, targets, each, strict=True):
        one = softmax_loss(model, torch.tensor([u]), torch.tensor([t]), bags=bags)
        assert one.item() == pytest.approx(expected, rel=1e-6)


def test_mean_and_sum_pooling_give_different_losses() -> None:
    bags = torch.tensor(BAGS)
    users, targets = torch.tensor([0, 1]), torch.tensor([1, 0])
    mean = softmax_loss(hand_model("mean"), users, targets, bags=bags)
    total = softmax_loss(hand_model("sum"), users, targets, bags=bags)
    assert mean.item() != pytest.approx(total.item(), rel=1e-3)


def test_softmax_loss_removes_the_target_from_the_input() -> None:
    # The only evidence of user 0 is the target itself, whose input and output embeddings
    # point the same way: if the target stayed in the input, the loss would be small.
    model = SoftmaxModel(5, dim=5, share_embeddings=True, seed=0)
    with torch.no_grad():
        model.input_embedding.data = 4.0 * torch.eye(5)
    bags = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    users, targets = torch.tensor([0]), torch.tensor([2])
    loss = softmax_loss(model, users, targets, bags=bags)
    # Without the target, the bag is empty: every logit is 0 and the loss is log(5).
    assert loss.item() == pytest.approx(math.log(5), rel=1e-6)
    copied = torch.nn.functional.cross_entropy(model(bags[users]), targets)
    assert copied.item() < 0.1 < loss.item()


def test_softmax_loss_leaves_the_bags_alone_and_has_gradients() -> None:
    model = hand_model()
    bags = torch.tensor(BAGS)
    before = bags.clone()
    loss = softmax_loss(model, torch.tensor([0, 0, 1]), torch.tensor([0, 1, 3]), bags=bags)
    assert torch.equal(bags, before)
    loss.backward()
    assert model.input_embedding.grad is not None and model.output_embedding.grad is not None
    assert model.output_embedding.grad.abs().sum() > 0


# --------------------------------------------------------------- parameter counts
def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def psi_parameters(dim: int, hidden: tuple[int, ...], n_features: int) -> int:
    """Weights and biases of Linear(dim + f, h1), ..., Linear(h_last, dim); 0 if no layer."""
    if not hidden and not n_features:
        return 0
    sizes = [dim + n_features, *hidden, dim]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


@pytest.mark.parametrize(
    ("hidden", "n_features"), [((), 0), ((), 3), ((7,), 0), ((6, 5), 0), ((6, 5), 4)]
)
@pytest.mark.parametrize("share", [True, False])
def test_parameter_counts(hidden: tuple[int, ...], n_features: int, share: bool) -> None:
    n_movies, dim = 11, 3
    model = SoftmaxModel(
        n_movies, dim, hidden=hidden, share_embeddings=share, n_features=n_features, seed=0
    )
    tables = (1 if share else 2) * n_movies * dim
    assert n_parameters(model) == tables + psi_parameters(dim, hidden, n_features)
    assert n_parameters(model.psi) == psi_parameters(dim, hidden, n_features)
    assert (model.V is model.input_embedding) == share
    assert model.V.shape == model.input_embedding.shape == (n_movies, dim)


def test_hand_computed_parameter_counts() -> None:
    # 20 movies, dim 4, hidden (8, 6), 2 features:
    # psi = (4 + 2) * 8 + 8 + 8 * 6 + 6 + 6 * 4 + 4 = 56 + 54 + 28 = 138.
    shared = SoftmaxModel(20, 4, hidden=(8, 6), n_features=2, share_embeddings=True)
    unshared = SoftmaxModel(20, 4, hidden=(8, 6), n_features=2, share_embeddings=False)
    assert n_parameters(shared) == 80 + 138
    assert n_parameters(unshared) == 160 + 138


def test_shared_embeddings_move_together_in_a_gradient_step() -> None:
    model = SoftmaxModel(6, 3, hidden=(5,), share_embeddings=True, init_std=0.5, seed=1)
    before = model.input_embedding.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    bags = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 1, 1, 0, 0, 0]])
    softmax_loss(model, torch.tensor([0, 1]), torch.tensor([2, 4]), bags=bags).backward()
    opt.step()
    assert model.V is model.input_embedding
    assert torch.equal(model.V, model.input_embedding)
    assert not torch.equal(model.input_embedding.detach(), before)


def test_shared_gradient_is_the_sum_of_the_input_and_output_gradients() -> None:
    shared = SoftmaxModel(6, 3, hidden=(5,), share_embeddings=True, init_std=0.5, seed=2)
    split = SoftmaxModel(6, 3, hidden=(5,), share_embeddings=False, seed=3)
    with torch.no_grad():
        split.input_embedding.copy_(shared.input_embedding)
        split.output_embedding.copy_(shared.input_embedding)
        split.psi.load_state_dict(shared.psi.state_dict())
    start = shared.input_embedding.detach().clone()
    bags = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 1, 1, 0, 0, 0]])
    args = (torch.tensor([0, 1, 1]), torch.tensor([2, 4, 1]))
    softmax_loss(shared, *args, bags=bags).backward()
    softmax_loss(split, *args, bags=bags).backward()
    both = split.input_embedding.grad + split.output_embedding.grad
    torch.testing.assert_close(shared.input_embedding.grad, both)
    # One SGD step: the shared table takes both updates, the unshared tables one each.
    for model in (shared, split):
        torch.optim.SGD(model.parameters(), lr=0.5).step()
    with torch.no_grad():
        both_steps = split.input_embedding + split.output_embedding - start
        torch.testing.assert_close(shared.input_embedding, both_steps)
    assert not torch.equal(split.input_embedding, split.output_embedding)


def test_shared_model_survives_a_state_dict_round_trip() -> None:
    model = SoftmaxModel(6, 3, hidden=(4,), share_embeddings=True, seed=4)
    copy = SoftmaxModel(6, 3, hidden=(4,), share_embeddings=True, seed=5)
    copy.load_state_dict(model.state_dict())
    assert copy.V is copy.input_embedding
    bags = torch.tensor([[1.0, 0, 1, 0, 0, 1]])
    torch.testing.assert_close(copy(bags), model(bags))


def test_shared_tables_stay_shared_when_converted_or_copied() -> None:
    model = SoftmaxModel(6, 3, share_embeddings=True, seed=6).double()
    assert model.V is model.input_embedding and model.V.dtype == torch.float64
    assert n_parameters(model) == 6 * 3
    clone = copy.deepcopy(model)
    assert clone.V is clone.input_embedding and clone.V is not model.V


# -------------------------------------------------------------- the model itself
def random_bags(n: int, n_movies: int, seed: int, p: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, n_movies, generator=g) < p).float()


@pytest.mark.parametrize(("hidden", "n_features"), [((), 0), ((5,), 0), ((5, 4), 2), ((), 2)])
def test_forward_and_user_vector_shapes(hidden: tuple[int, ...], n_features: int) -> None:
    model = SoftmaxModel(9, 3, hidden=hidden, n_features=n_features, seed=0)
    bags = random_bags(4, 9, seed=1)
    features = torch.randn(4, n_features) if n_features else None
    assert model.user_vectors(bags, features).shape == (4, 3)
    logits = model(bags, features)
    assert logits.shape == (4, 9)
    torch.testing.assert_close(logits, model.user_vectors(bags, features) @ model.V.T)


def brute_pooled(model: SoftmaxModel, bag: torch.Tensor, pooling: str) -> torch.Tensor:
    emb = model.input_embedding.detach().double()
    rows = [j for j in range(len(bag)) if bag[j] == 1]
    total = torch.zeros(emb.shape[1], dtype=torch.float64)
    for j in rows:
        total += emb[j]
    return total / len(rows) if pooling == "mean" and rows else total


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_pooling_without_psi_is_the_bag_average_or_sum(pooling: str) -> None:
    model = SoftmaxModel(10, 4, pooling=pooling, init_std=1.0, seed=2)
    assert len(model.psi) == 0  # no hidden layers, no features: psi is the identity
    bags = random_bags(6, 10, seed=3)
    vectors = model.user_vectors(bags).detach().double()
    for i in range(6):
        torch.testing.assert_close(
            vectors[i], brute_pooled(model, bags[i], pooling), rtol=1e-5, atol=1e-6
        )
    logits = model(bags).detach().double()
    V = model.V.detach().double()  # noqa: N806
    for i in range(6):
        expected = [float(brute_pooled(model, bags[i], pooling) @ V[j]) for j in range(10)]
        torch.testing.assert_close(
            logits[i], torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_pooling_feeds_psi(pooling: str) -> None:
    model = SoftmaxModel(8, 3, hidden=(6,), pooling=pooling, init_std=1.0, seed=4)
    bags = random_bags(5, 8, seed=5)
    with torch.no_grad():
        pooled = torch.stack([brute_pooled(model, b, pooling).float() for b in bags])
        torch.testing.assert_close(model.user_vectors(bags), model.psi(pooled))


def test_mean_and_sum_pooling_differ_on_bags_of_several_movies() -> None:
    mean = SoftmaxModel(8, 3, pooling="mean", seed=6)
    total = SoftmaxModel(8, 3, pooling="sum", seed=6)
    bags = torch.tensor([[1.0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]])
    torch.testing.assert_close(total.user_vectors(bags)[0], 3 * mean.user_vectors(bags)[0])
    torch.testing.assert_close(total.user_vectors(bags)[1], mean.user_vectors(bags)[1])


@pytest.mark.parametrize("pooling", ["mean", "sum"])
@pytest.mark.parametrize("hidden", [(), (4,)])
def test_empty_bag_gives_finite_output(pooling: str, hidden: tuple[int, ...]) -> None:
    model = SoftmaxModel(6, 3, hidden=hidden, pooling=pooling, seed=7)
    bags = torch.zeros(2, 6)
    logits = model(bags)
    assert torch.isfinite(logits).all()
    with torch.no_grad():
        expected = model.psi(torch.zeros(1, 3)) @ model.V.T
    torch.testing.assert_close(logits, expected.expand(2, -1))
    if not hidden:
        assert torch.equal(logits, torch.zeros(2, 6))


def test_features_are_required_with_the_right_shape() -> None:
    model = SoftmaxModel(6, 3, n_features=2, seed=8)
    bags = random_bags(3, 6, seed=9)
    with pytest.raises(ValueError, match=r"expects features of shape \(3, 2\)"):
        model(bags)
    with pytest.raises(ValueError, match=r"expects features of shape \(3, 2\)"):
        model(bags, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"expects features of shape \(3, 2\)"):
        model(bags, torch.zeros(2, 2))
    features = torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, 0.5]])
    out = model(bags, features)
    assert out.shape == (3, 6)
    changed = model(bags, features + 1.0)
    assert not torch.allclose(out, changed)
    # psi is one linear layer on [pooled, features].
    with torch.no_grad():
        pooled = torch.stack([brute_pooled(model, b, "mean").float() for b in bags])
        expected = model.psi[0](torch.cat([pooled, features], dim=1)) @ model.V.T
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("shape", [(3, 5), (3, 7), (6,), (1, 2, 6)])
def test_bags_of_the_wrong_shape_are_rejected(shape: tuple[int, ...]) -> None:
    model = SoftmaxModel(6, 3, seed=0)
    with pytest.raises(ValueError, match=r"bags must have shape \(n, 6\)"):
        model(torch.zeros(shape))


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


@pytest.mark.parametrize("share", [True, False])
def test_same_seed_same_weights_different_seed_different(share: bool) -> None:
    kwargs = {"hidden": (5, 4), "n_features": 2, "share_embeddings": share}
    first = weights(SoftmaxModel(7, 3, seed=11, **kwargs))
    torch.manual_seed(123)  # the global generator does not matter with a seed
    again = weights(SoftmaxModel(7, 3, seed=11, **kwargs))
    other = weights(SoftmaxModel(7, 3, seed=12, **kwargs))
    assert len(first) == len(again) == len(other)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_seed_does_not_disturb_the_global_generator() -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    SoftmaxModel(7, 3, hidden=(5,), n_features=2, share_embeddings=False, seed=3)
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_none_uses_the_global_generator() -> None:
    torch.manual_seed(21)
    first = weights(SoftmaxModel(7, 3, hidden=(5,)))
    after = torch.get_rng_state()
    torch.manual_seed(21)
    again = weights(SoftmaxModel(7, 3, hidden=(5,)))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    torch.manual_seed(21)
    assert not torch.equal(after, torch.get_rng_state())  # it drew from the generator


@pytest.mark.parametrize("init_std", [0.0, 0.05, 1.0])
def test_init_std_scales_the_embeddings(init_std: float) -> None:
    model = SoftmaxModel(400, 25, share_embeddings=False, init_std=init_std, seed=0)
    for table in (model.input_embedding, model.output_embedding):
        assert table.detach().std().item() == pytest.approx(init_std, rel=0.05, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_movies": 0}, "n_movies and dim must be at least 1, got 0 and 3"),
        ({"dim": 0}, "n_movies and dim must be at least 1, got 5 and 0"),
        ({"pooling": "max"}, "pooling must be 'mean' or 'sum', got 'max'"),
        ({"pooling": "Mean"}, "pooling must be 'mean' or 'sum'"),
        ({"hidden": (4, 0)}, r"hidden sizes must be >= 1 and n_features >= 0, got \(4, 0\)"),
        ({"hidden": (-2,)}, "hidden sizes must be >= 1"),
        ({"n_features": -1}, "n_features >= 0"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    args = {"n_movies": 5, "dim": 3} | kwargs
    with pytest.raises(ValueError, match=message):
        SoftmaxModel(args.pop("n_movies"), args.pop("dim"), **args)


# -------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def clustered():
    """60 users in 3 taste groups, each rating 6 of their group's 10 movies (of 30)."""
    g = torch.Generator().manual_seed(0)
    bags = torch.zeros(60, 30)
    for user in range(60):
        group = user % 3
        bags[user, group * 10 + torch.randperm(10, generator=g)[:6]] = 1.0
    users, movies = bags.nonzero(as_tuple=True)
    return bags, users, movies


def train(model: SoftmaxModel, data, epochs: int = 3):
    bags, users, movies = data
    loss = functools.partial(softmax_loss, bags=bags)
    return fit(
        model, (users, movies), loss, epochs=epochs, batch_size=32, lr=0.05, seed=0, progress=False
    )


def make_model() -> SoftmaxModel:
    return SoftmaxModel(30, 8, hidden=(16,), seed=0)


def test_training_reduces_the_loss_and_continues_from_the_current_state(clustered) -> None:
    bags = clustered[0]
    before = bags.clone()
    model = make_model()
    first = train(model, clustered)
    assert first.epochs == 3
    assert first.train_loss[-1] < first.train_loss[0] - 0.3
    second = train(model, clustered)
    # A restart from fresh weights would repeat the first history exactly.
    assert second.train_loss[0] < first.train_loss[-1] < first.train_loss[0]
    assert second.train_loss != first.train_loss
    assert torch.equal(bags, before)
    # A fresh model with the same seed reproduces the first call exactly.
    assert train(make_model(), clustered).train_loss == first.train_loss


def test_trained_model_learns_the_taste_groups(clustered) -> None:
    bags, users, movies = clustered
    model = make_model()
    train(model, clustered, epochs=6)
    with torch.no_grad():
        loss = softmax_loss(model, users, movies, bags=bags).item()
        logits = model(bags)
    assert loss < math.log(30) - 0.5  # much better than a uniform guess
    # Each user's ten best-scored movies are mostly from their own group.
    top = logits.topk(10, dim=1).indices // 10
    own = torch.arange(60)[:, None] % 3
    assert (top == own).float().mean() > 0.8
