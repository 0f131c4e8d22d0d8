"""Tests for mfkit.train."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit.features import Indexer
from mfkit.losses import observed_mse
from mfkit.metrics import rmse
from mfkit.models import MatrixFactorization
from mfkit.train import DivergedError, History, evaluate, fit, rating_rmse

N_USERS, N_MOVIES = 30, 40


def low_rank_problem(n_ratings: int = 700, seed: int = 0):
    """Exact rank-2 ratings on random observed pairs (no noise, no repeats)."""
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(N_USERS, 2, generator=g)  # noqa: N806
    V = torch.randn(N_MOVIES, 2, generator=g)  # noqa: N806
    cells = torch.randperm(N_USERS * N_MOVIES, generator=g)[:n_ratings]
    users, movies = cells // N_MOVIES, cells % N_MOVIES
    return users, movies, (U[users] * V[movies]).sum(-1)


def rmse_metric(model, users, movies, ratings) -> float:
    return rmse(ratings, model.predict(users, movies))


def new_model(seed: int = 0, **kwargs) -> MatrixFactorization:
    kwargs = {"dim": 4, "init_std": 0.3} | kwargs
    return MatrixFactorization(N_USERS, N_MOVIES, seed=seed, **kwargs)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def data():
    return low_rank_problem()


@pytest.fixture(scope="module")
def fitted(data):
    model = new_model()
    history = fit(model, data, observed_mse, epochs=25, lr=0.05, batch_size=64, progress=False)
    return model, history


def test_fit_decreases_loss_and_reaches_low_rmse(data, fitted) -> None:
    model, history = fitted
    assert history.epochs == 25
    assert history.train_loss[-1] < 0.05 * history.train_loss[0]
    assert history.train_loss[-1] < 0.01
    assert rmse_metric(model, *data) < 0.1
    assert float(data[2].std()) > 1.0  # so that a low RMSE is not trivial


def test_history_lengths_and_frame(data) -> None:
    users, movies, ratings = data
    valid = (users[:100], movies[:100], ratings[:100])
    history = fit(
        new_model(),
        data,
        observed_mse,
        valid=valid,
        metric=rmse_metric,
        epochs=3,
        lr=0.05,
        batch_size=128,
        progress=False,
    )
    assert isinstance(history, History)
    assert history.epochs == 3
    for record in ("train_loss", "valid_loss", "train_metric", "valid_metric", "seconds"):
        assert len(getattr(history, record)) == 3
    assert all(s >= 0 for s in history.seconds)
    assert history.best_epoch in (1, 2, 3) and not history.stopped_early
    frame = history.to_frame()
    assert list(frame.columns) == [
        "train_loss",
        "valid_loss",
        "train_metric",
        "valid_metric",
        "seconds",
    ]
    assert frame.index.name == "epoch" and frame.index.tolist() == [1, 2, 3]
    assert frame["valid_metric"].tolist() == history.valid_metric


def test_history_frame_without_valid_or_metric(fitted) -> None:
    frame = fitted[1].to_frame()
    assert list(frame.columns) == ["train_loss", "seconds"]
    assert frame.index.tolist() == list(range(1, 26))
    assert fitted[1].best_epoch is None and fitted[1].valid_loss == []
    empty = History()
    assert empty.epochs == 0 and len(empty.to_frame()) == 0


def test_metric_is_recorded_for_train_and_valid(data) -> None:
    users, movies, ratings = data
    train, valid = (
        (users[:500], movies[:500], ratings[:500]),
        (users[500:], movies[500:], ratings[500:]),
    )
    model = new_model()
    history = fit(
        model,
        train,
        observed_mse,
        valid=valid,
        metric=rmse_metric,
        epochs=4,
        lr=0.05,
        batch_size=128,
        progress=False,
    )
    # Without patience the model keeps its last weights: the last records describe it.
    assert history.train_metric[-1] == pytest.approx(rmse_metric(model, *train))
    assert history.valid_metric[-1] == pytest.approx(rmse_metric(model, *valid))
    assert history.valid_loss[-1] == pytest.approx(evaluate(model, valid, observed_mse))
    assert history.train_metric[-1] < history.train_metric[0]
    assert history.best_epoch == int(np.argmin(history.valid_metric)) + 1


def test_metric_on_train_false_records_the_metric_on_validation_only(data) -> None:
    users, movies, ratings = data
    train, valid = (
        (users[:500], movies[:500], ratings[:500]),
        (users[500:], movies[500:], ratings[500:]),
    )
    calls = []

    def counted(model, *columns):
        calls.append(len(columns[0]))
        return rmse_metric(model, *columns)

    options = dict(valid=valid, metric=counted, epochs=3, lr=0.05, batch_size=128, progress=False)
    history = fit(new_model(), train, observed_mse, metric_on_train=False, **options)
    assert history.train_metric == [] and len(history.valid_metric) == 3
    assert calls == [len(valid[0])] * 3  # never called on the 500 training rows
    again = fit(new_model(), train, observed_mse, metric_on_train=False, **options)
    assert again.valid_metric == history.valid_metric  # same seed, same records


def test_train_loss_is_the_example_weighted_mean(data) -> None:
    # With lr=0 nothing moves, so every epoch's loss is the loss on all the data,
    # even though 700 is not a multiple of the batch size.
    model = new_model()
    expected = evaluate(model, data, observed_mse)
    history = fit(model, data, observed_mse, epochs=2, lr=0.0, batch_size=300, progress=False)
    assert history.train_loss == pytest.approx([expected, expected], rel=1e-5)


def test_evaluate_weights_batches_and_restores_mode(data) -> None:
    model = new_model()
    model.train()
    full = observed_mse(model, *data).item()
    assert evaluate(model, data, observed_mse, batch_size=33) == pytest.approx(full, rel=1e-5)
    assert model.training
    model.eval()
    evaluate(model, data, observed_mse)
    assert not model.training


def test_evaluate_tracks_no_gradients(data) -> None:
    seen = []

    def loss(model, *batch):
        seen.append(torch.is_grad_enabled())
        return observed_mse(model, *batch)

    evaluate(new_model(), data, loss, batch_size=100)
    assert seen and not any(seen)


def test_same_seed_same_result_different_seed_different_order(data) -> None:
    runs = []
    for seed in (1, 1, 2):
        model = new_model(seed=0)
        history = fit(
            model, data, observed_mse, epochs=3, lr=0.05, batch_size=64, seed=seed, progress=False
        )
        runs.append((model, history))
    (a, ha), (b, hb), (c, hc) = runs
    assert same_weights(a, b)
    assert ha.train_loss == hb.train_loss
    assert not same_weights(a, c)
    assert ha.train_loss != hc.train_loss


def test_early_stopping_restores_the_best_weights(data) -> None:
    users, movies, ratings = data
    # Validating on the same pairs with halved ratings: the validation loss falls
    # while predictions grow towards ratings/2, then rises as they go on to ratings.
    valid = (users, movies, ratings / 2)
    model = new_model(init_std=0.1)
    history = fit(
        model,
        data,
        observed_mse,
        valid=valid,
        epochs=60,
        lr=0.02,
        batch_size=64,
        patience=3,
        progress=False,
    )
    assert history.stopped_early
    assert history.epochs < 60
    assert 1 < history.best_epoch < history.epochs
    assert history.epochs == history.best_epoch + 3
    assert history.best_epoch == int(np.argmin(history.valid_loss)) + 1
    assert len(history.train_loss) == len(history.valid_loss) == history.epochs
    assert evaluate(model, valid, observed_mse) == pytest.approx(min(history.valid_loss), rel=1e-6)
    assert evaluate(model, valid, observed_mse) < history.valid_loss[-1]
    assert not model.training


def test_early_stopping_on_a_metric_to_maximise(data) -> None:
    users, movies, ratings = data
    valid = (users, movies, ratings / 2)

    def neg_rmse(model, u, m, r) -> float:
        return -rmse_metric(model, u, m, r)

    model = new_model(init_std=0.1)
    history = fit(
        model,
        data,
        observed_mse,
        valid=valid,
        metric=neg_rmse,
        minimize=False,
        epochs=60,
        lr=0.02,
        batch_size=64,
        patience=2,
        progress=False,
    )
    assert history.stopped_early
    assert history.best_epoch == int(np.argmax(history.valid_metric)) + 1
    assert history.epochs == history.best_epoch + 2
    assert neg_rmse(model, *valid) == pytest.approx(max(history.valid_metric), rel=1e-6)


def test_early_stopping_on_a_metric_alone_without_the_validation_loss(data) -> None:
    # Held-out pairs without ratings, which observed_mse cannot read: a metric of its own.
    users, movies, ratings = data
    calls = []

    def mean_score(model, u, m) -> float:
        calls.append(len(u))
        return float(model(u, m).mean())

    def loss_that_must_not_see_valid(model, u, m, r):
        assert len(u) <= 64, "the validation split reached the loss"
        return observed_mse(model, u, m, r)

    model = new_model(init_std=0.1)
    history = fit(
        model,
        data,
        loss_that_must_not_see_valid,
        valid=(users[:100], movies[:100]),
        metric=mean_score,
        metric_on_train=False,
        valid_loss=False,
        minimize=False,
        epochs=4,
        batch_size=64,
        progress=False,
    )
    assert history.valid_loss == [] and len(history.valid_metric) == 4 == len(calls)
    assert history.best_epoch == int(np.argmax(history.valid_metric)) + 1
    with pytest.raises(ValueError, match="valid_loss=False scores the validation data by metric"):
        fit(new_model(), data, observed_mse, valid=data, valid_loss=False, progress=False)


def test_fit_twice_continues_training(data) -> None:
    model = new_model()
    kwargs = {"epochs": 3, "lr": 0.05, "batch_size": 64, "progress": False}
    first = fit(model, data, observed_mse, **kwargs)
    after_three = copy.deepcopy(model)
    second = fit(model, data, observed_mse, **kwargs)
    assert not same_weights(model, after_three)
    assert second.epochs == 3
    assert second.train_loss[0] < first.train_loss[-1]  # did not start over
    restart = new_model()
    fit(restart, data, observed_mse, **kwargs)
    assert same_weights(restart, after_three)


def test_diverged_error_names_the_epoch_and_a_hint(data) -> None:
    model = new_model(init_std=10.0)
    with pytest.raises(DivergedError, match=r"in epoch 1 \(lr=1000000\.0, optimizer='sgd'\)") as e:
        fit(
            model,
            data,
            observed_mse,
            epochs=3,
            lr=1e6,
            optimizer="sgd",
            batch_size=64,
            progress=False,
        )
    assert "smaller learning rate" in str(e.value)
    assert isinstance(e.value, FloatingPointError)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adagrad"])
def test_every_optimizer_reduces_the_loss(data, optimizer: str) -> None:
    lr = {"sgd": 2.0, "adagrad": 0.2}.get(optimizer, 0.05)
    history = fit(
        new_model(),
        data,
        observed_mse,
        epochs=4,
        lr=lr,
        optimizer=optimizer,
        batch_size=64,
        progress=False,
    )
    assert history.train_loss[-1] < 0.9 * history.train_loss[0]


def test_weight_decay_shrinks_the_weights(data) -> None:
    norms = {}
    for decay in (0.0, 0.01):
        model = new_model()
        fit(
            model,
            data,
            observed_mse,
            epochs=3,
            lr=2.0,
            optimizer="sgd",
            weight_decay=decay,
            batch_size=64,
            progress=False,
        )
        norms[decay] = (model.U.norm().item(), model.V.norm().item())
    assert norms[0.01][0] < norms[0.0][0] and norms[0.01][1] < norms[0.0][1]


def test_fit_on_synthetic_movielens(small) -> None:
    idx = Indexer.from_movielens(small)
    tensors = idx.tensors(small.ratings)
    mean = float(tensors[2].mean())
    model = MatrixFactorization(
        idx.n_users, idx.n_movies, 4, bias=True, global_mean=mean, rating_range=(1, 5), seed=0
    )
    before = rmse_metric(model, *tensors)
    history = fit(model, tensors, observed_mse, epochs=5, lr=0.05, batch_size=64, progress=False)
    assert rmse_metric(model, *tensors) < before
    assert history.train_loss[-1] < history.train_loss[0]


def tiny() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((), "data must be a non-empty tuple of tensors"),
        (
            (
                torch.tensor([], dtype=torch.long),
                torch.tensor([], dtype=torch.long),
                torch.tensor([]),
            ),
            "the training data is empty",
        ),
        (
            (torch.tensor([0, 1, 2]), torch.tensor([0, 1]), torch.tensor([1.0, 2.0, 3.0])),
            r"different lengths: \[3, 2, 3\]",
        ),
    ],
)
def test_bad_data_raises(data, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit(new_model(), data, observed_mse, epochs=1, progress=False)


def test_bad_valid_data_raises() -> None:
    bad = (torch.tensor([0]), torch.tensor([0, 1]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"different lengths: \[1, 2, 1\]"):
        fit(new_model(), tiny(), observed_mse, valid=bad, epochs=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"optimizer": "rmsprop"},
            r"unknown optimizer 'rmsprop'; choose one of \['adagrad', 'adam', 'adamw', 'sgd'\]",
        ),
        ({"patience": 2}, r"early stopping \(patience\) needs validation data"),
        ({"epochs": 0}, "epochs and batch_size must be >= 1, got 0 and 1024"),
        ({"batch_size": 0}, "epochs and batch_size must be >= 1, got 10 and 0"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    model = new_model()
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=message):
        fit(model, tiny(), observed_mse, progress=False, **kwargs)
    assert same_weights(model, before)


def test_history_frame_is_a_dataframe(fitted) -> None:
    frame = fitted[1].to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert frame["train_loss"].tolist() == fitted[1].train_loss


# ------------------------------------------------------------------ rating_rmse
def test_rating_rmse_clips_to_the_rating_range() -> None:
    model = MatrixFactorization(2, 3, dim=1, bias=True, rating_range=(1, 5))
    with torch.no_grad():
        model.user_factors.weight.copy_(torch.tensor([[1.0], [2.0]]))
        model.movie_factors.weight.copy_(torch.tensor([[1.0], [-3.0], [0.5]]))
        model.global_mean.fill_(3.0)
    users, movies = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 2, 0, 1])
    ratings = torch.tensor([5.0, 1.0, 3.0, 4.0, 2.0])
    # Raw predictions 3 + u * v: 4, 0, 3.5, 5, -3; clipped to 1..5: 4, 1, 3.5, 5, 1.
    # Errors: -1, 0, 0.5, 1, -1 -> squares 1, 0, 0.25, 1, 1 -> mean 0.65.
    assert rating_rmse(model, users, movies, ratings) == pytest.approx(0.65**0.5, rel=1e-6)
    model.rating_range = None  # no clipping: errors -1, -1, 0.5, 1, -5
    assert rating_rmse(model, users, movies, ratings) == pytest.approx((28.25 / 5) ** 0.5, rel=1e-6)


def test_rating_rmse_accepts_integer_ratings(data) -> None:
    users, movies, ratings = data
    model = new_model()
    whole = ratings.round().long()
    value = rating_rmse(model, users, movies, whole)
    assert isinstance(value, float)
    expected = rmse(whole.numpy(), model.predict(users, movies).numpy())
    assert value == pytest.approx(expected, rel=1e-6)


def test_fit_takes_the_steps_of_a_plain_hand_written_loop(data, monkeypatch) -> None:
    """Same weights and losses as shuffled mini-batches of the plain gathered model."""
    from mfkit.models import factorization

    monkeypatch.setattr(factorization, "_BLOCK", 16)  # the model's dot product in many blocks
    model = new_model(bias=True, global_mean=0.5)
    hand = copy.deepcopy(model)
    history = fit(model, data, observed_mse, epochs=2, batch_size=300, lr=0.05, progress=False)

    def plain(users, movies):
        U, V = hand.user_factors.weight, hand.movie_factors.weight  # noqa: N806
        pred = (U.index_select(0, users) * V.index_select(0, movies)).sum(-1)
        pred = pred + hand.global_mean
        pred = pred + hand.user_bias.weight.index_select(0, users).squeeze(-1)
        return pred + hand.movie_bias.weight.index_select(0, movies).squeeze(-1)

    opt = torch.optim.Adam(hand.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(2):
        order, total = torch.randperm(len(data[0]), generator=generator), 0.0
        for first in range(0, len(order), 300):
            users, movies, ratings = (t[order[first : first + 300]] for t in data)
            loss = torch.nn.functional.mse_loss(plain(users, movies), ratings)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(users)
        losses.append(total / len(order))
    assert same_weights(model, hand)
    assert history.train_loss == pytest.approx(losses, rel=1e-6)
