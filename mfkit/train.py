"""One training loop for every model of the course.

Introduced in chapter 2. :func:`fit` shuffles index tensors (no per-row Python),
takes mini-batches, steps an optimizer, records a :class:`History` per epoch,
evaluates on validation data, stops early, and is reproducible with ``seed``.

The model is any ``nn.Module``; the data is a tuple of tensors with one row per
example (or, from chapter 7, a function of the epoch that returns one, for
freshly sampled negatives every epoch), and ``loss(model, *batch)`` returns a
scalar to minimise. Calling :func:`fit` again continues from the model's
current weights.

Examples
--------
>>> import torch
>>> from mfkit.losses import observed_mse
>>> from mfkit.models import MatrixFactorization
>>> users, movies = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2])
>>> ratings = torch.tensor([5.0, 3.0, 4.0, 1.0])
>>> model = MatrixFactorization(3, 3, dim=2, seed=0)
>>> history = fit(model, (users, movies, ratings), observed_mse, epochs=3, lr=0.1,
...               progress=False)
>>> len(history.train_loss)
3
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from mfkit.threads import check_threads, torch_threads

__all__ = ["DivergedError", "History", "evaluate", "fit", "rating_rmse"]

Loss = Callable[..., torch.Tensor]
Metric = Callable[..., float]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
}


class DivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclass
class History:
    """What happened during :func:`fit`, one entry per epoch.

    ``train_loss`` is the mean training objective over the epoch's batches;
    ``valid_loss`` the objective on the validation data at the end of the epoch;
    ``train_metric``/``valid_metric`` the ``metric`` on all training/validation
    data at the end of the epoch (empty when not asked for).
    """

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    valid_metric: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def to_frame(self) -> pd.DataFrame:
        """The history as a frame indexed by epoch (1-based), one column per record."""
        columns = ("train_loss", "valid_loss", "train_metric", "valid_metric", "seconds")
        data = {c: getattr(self, c) for c in columns if getattr(self, c)}
        return pd.DataFrame(data, index=pd.RangeIndex(1, self.epochs + 1, name="epoch"))


def _to(data: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    # Tensors and RatingMatrix objects move themselves; arrays and lists become tensors.
    tensors = tuple((t if hasattr(t, "to") else torch.as_tensor(t)).to(device) for t in data)
    if not tensors:
        raise ValueError("data must be a non-empty tuple of tensors")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"data tensors have different lengths: {[len(t) for t in tensors]}")
    if n == 0:
        raise ValueError("the training data is empty: there is nothing to fit")
    return tensors


def _batches(data: tuple, batch_size: int | None, generator: torch.Generator | None):
    """Shuffled mini-batches of ``data``, or all of it at once when ``batch_size`` is None.

    Rows are gathered with ``index_select``: the same rows as ``t[rows]``, about twice
    as fast on CPU for the large random gathers of a big dataset.
    """
    if batch_size is None:
        yield data
        return
    n = len(data[0])
    order = torch.randperm(n, generator=generator).to(data[0].device)
    for first in range(0, n, batch_size):
        rows = order[first : first + batch_size]
        yield tuple(t.index_select(0, rows) for t in data)


@torch.no_grad()
def rating_rmse(
    model: nn.Module, users: torch.Tensor, movies: torch.Tensor, ratings: torch.Tensor
) -> float:
    """RMSE of ``model.predict(users, movies)`` (clipped predictions) against ``ratings``.

    The usual ``metric=`` of :func:`fit` for a rating model.
    """
    error = model.predict(users, movies).float() - ratings.float()
    return float(error.square().mean().sqrt())


def _columns(data):
    """The data as metrics take it: a lone rating matrix gives ``(users, movies, ratings)``."""
    if len(data) == 1 and hasattr(data[0], "ratings"):
        return data[0].users, data[0].movies, data[0].ratings
    return data


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Sequence[torch.Tensor], loss: Loss, *, batch_size: int = 65_536
) -> float:
    """Mean of ``loss(model, *batch)`` over ``data`` in eval mode, weighted by batch size.

    Data that is not made of tensors (a :class:`mfkit.sparse.RatingMatrix`) is
    evaluated in one call.
    """
    was_training = model.training
    model.eval()
    tensors = tuple(data)
    n = len(tensors[0]) if tensors else 0
    if n == 0:
        raise ValueError("cannot evaluate on empty data")
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        value = float(loss(model, *tensors))
        model.train(was_training)
        return value
    total = 0.0
    for start in range(0, n, batch_size):
        batch = tuple(t[start : start + batch_size] for t in tensors)
        total += float(loss(model, *batch)) * len(batch[0])
    model.train(was_training)
    return total / n


def fit(
    model: nn.Module,
    data: Sequence[torch.Tensor] | Callable[[int], Sequence[torch.Tensor]],
    loss: Loss,
    *,
    valid: Sequence[torch.Tensor] | None = None,
    metric: Metric | None = None,
    epochs: int = 10,
    batch_size: int | None = 1024,
    lr: float = 0.01,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    patience: int | None = None,
    minimize: bool = True,
    metric_on_train: bool = True,
    valid_loss: bool = True,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    threads: int | None | str = "auto",
) -> History:
    """Train ``model`` on ``data`` with mini-batches; return the :class:`History`.

    Parameters
    ----------
    model : nn.Module
        Trained in place (moved to ``device``).
    data : tuple of tensors, or a function of the epoch that returns one
        One row per example, e.g. ``(users, movies, ratings)``. A function
        ``data(epoch)`` (epochs count from 1) gives fresh data every epoch, e.g.
        newly sampled negatives (chapter 7).
    loss : callable
        ``loss(model, *batch) -> scalar tensor``, e.g. :func:`mfkit.losses.observed_mse`.
    valid : tuple of tensors, optional
        Validation data, evaluated with ``loss`` (and ``metric``) after every epoch.
    metric : callable, optional
        ``metric(model, *data) -> float`` on whole datasets (e.g. RMSE), recorded for
        the training and validation data after every epoch.
    epochs, batch_size, lr : int, int or None, float
        Length of training, examples per step, learning rate. ``batch_size=None``
        takes one full-batch step per epoch on all the data, unshuffled; the data
        may then be a :class:`mfkit.sparse.RatingMatrix` with
        :func:`mfkit.losses.mse_sparse` (chapter 10).
    optimizer : {"adam", "sgd", "adamw", "adagrad"}
        The optimizer; ``weight_decay`` is passed to it (an L2 penalty on every
        parameter at every step).
    patience : int, optional
        Stop when the validation score (``metric`` if given, else the loss) has not
        improved for this many epochs, and restore the best weights.
    minimize : bool
        Whether a lower validation score is better.
    metric_on_train : bool
        Also record ``metric`` on the training data. Turn it off where the metric
        is expensive or only means something on validation data (chapter 8 ranks
        every movie for every validation user after each epoch).
    valid_loss : bool
        Also record ``loss`` on ``valid`` after every epoch. Turn it off to stop on
        ``metric`` alone: where ``valid`` is not in the loss's format (held-out pairs
        for a ranking metric), or where the loss of a whole split is large (an
        in-batch softmax over 18,695 validation pairs is an 18,695 x 18,695 matrix).
    seed : int or None
        Seeds the batch order and torch's global generator (dropout).
    device : str or torch.device
        Where to train, e.g. ``"cuda"``.
    progress : bool
        Show a progress bar over epochs.
    threads : int, None or "auto"
        torch threads while training with mini-batches, evaluation after each epoch
        included (``None``: torch's setting). ``"auto"`` takes the model's
        ``step_threads``: one for the models that score (user, movie) pairs (matrix
        factorization, the feature models, ``ImplicitMLP``, ``NeuMF``), whose small
        steps keep their speed on one thread beside a busy core
        (:mod:`mfkit.threads`); torch's setting for the others. Full-batch steps
        always use torch's setting.

    Raises
    ------
    DivergedError
        When the loss becomes NaN or infinite (with the epoch and what to try).
    """
    if epochs < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError(
            f"epochs and batch_size must be >= 1, got {epochs} and {batch_size} "
            "(batch_size=None takes full-batch steps)"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
    if threads == "auto":
        threads = getattr(model, "step_threads", None)
    check_threads(threads)
    if patience is not None and valid is None:
        raise ValueError("early stopping (patience) needs validation data (valid=...)")
    if not valid_loss and metric is None and valid is not None:
        raise ValueError("valid_loss=False scores the validation data by metric=: pass one")
    device = torch.device(device)
    model.to(device)
    fresh = callable(data)
    train = None if fresh else _to(data, device)
    valid = _to(valid, device) if valid is not None else None
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)

    history = History()
    best_score, best_state = math.inf, None
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, leave=False)
    with torch_threads(threads if batch_size is not None else None):
        for epoch in bar:
            start = time.perf_counter()
            if fresh:
                train = _to(data(epoch), device)
            n = len(train[0])
            model.train()
            total = torch.zeros((), device=device)
            for batch in _batches(train, batch_size, generator):
                value = loss(model, *batch)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                total += value.detach() * len(batch[0])
            train_loss = float(total) / n
            if not math.isfinite(train_loss):
                raise DivergedError(
                    f"the training loss became {train_loss} in epoch {epoch} (lr={lr}, "
                    f"optimizer={optimizer!r}): try a smaller learning rate, a smaller "
                    "initialisation scale, or some weight decay"
                )
            history.train_loss.append(train_loss)
            history.seconds.append(time.perf_counter() - start)
            model.eval()
            with torch.no_grad():
                if metric is not None and metric_on_train:
                    history.train_metric.append(float(metric(model, *_columns(train))))
                if valid is not None:
                    if valid_loss:
                        history.valid_loss.append(evaluate(model, valid, loss))
                    if metric is not None:
                        history.valid_metric.append(float(metric(model, *_columns(valid))))
            if valid is not None:
                score = (history.valid_metric or history.valid_loss)[-1]
                score = score if minimize else -score
                if score < best_score:
                    best_score, history.best_epoch = score, epoch
                    if patience is not None:
                        best_state = copy.deepcopy(model.state_dict())
                elif patience is not None and epoch - (history.best_epoch or 0) >= patience:
                    history.stopped_early = True
                    break
            postfix = {"train": f"{train_loss:.4f}"}
            if valid is not None:
                postfix["valid"] = f"{(history.valid_metric or history.valid_loss)[-1]:.4f}"
            bar.set_postfix(postfix)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
