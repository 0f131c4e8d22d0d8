"""Training objectives.

Introduced in chapter 2: the mean squared error over the *observed* ratings only,
computed two ways that give the same number:

* :func:`mse_dense` builds the full ``N x M`` matrix ``U V^T`` and reads off the
  observed cells: O(N M d) time and O(N M) memory.
* :func:`mse_gathered` gathers only the rows ``U_i``, ``V_j`` of the observed pairs:
  ``O(|Omega| d)`` time and memory, independent of how many cells are empty.

:func:`observed_mse` is the gathered loss of any model, in the form the training
loop (:func:`mfkit.train.fit`) expects: ``loss(model, users, movies, ratings)``.

Introduced in chapter 4: the regularizers :func:`l2_regularizer` and
:func:`gravity` (in closed form), and :func:`regularized_mse`, the objective
``MSE_obs + lambda_r r(U, V) + lambda_g g(U, V)``.

Introduced in chapter 5: :func:`softmax_loss`, the cross-entropy of the softmax
model on held-out movies of each user's bag.

Introduced in chapter 7: :func:`implicit_bce`, the binary cross-entropy of
interactions (label 1) against sampled negatives (label 0).

Introduced in chapter 8 (learning to rank): the pairwise losses :func:`bpr_loss`
and :func:`hinge_loss`, which compare the score of an interaction with the score of a
sampled negative for the same user.

Introduced in chapter 9 (sequences): :func:`next_item_ce`, the full softmax
cross-entropy of each next movie of a history, and :func:`next_item_bce`, SASRec's
binary cross-entropy of each next movie against one sampled movie.

Introduced in chapter 11 (retrieval at scale): :func:`in_batch_softmax` with the
logQ correction of :func:`batch_log_q`, and :func:`two_tower_loss`, the same loss of a
two-tower model.

Introduced in chapter 12 (factorization machines): :func:`feature_mse` and
:func:`feature_bce`, the losses of the models that read feature rows
(:mod:`mfkit.feature_rows`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

__all__ = [
    "batch_l2",
    "batch_log_q",
    "bpr_loss",
    "feature_bce",
    "feature_mse",
    "gravity",
    "hinge_loss",
    "implicit_bce",
    "in_batch_softmax",
    "l2_regularizer",
    "mse_sparse",
    "mse_dense",
    "mse_gathered",
    "next_item_bce",
    "next_item_ce",
    "observed_mse",
    "regularized_mse",
    "softmax_loss",
    "two_tower_loss",
]


def mse_dense(
    U: torch.Tensor,  # noqa: N803 - the course's notation
    V: torch.Tensor,  # noqa: N803
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
) -> torch.Tensor:
    """Observed MSE via the full prediction matrix ``U V^T`` (O(N M) memory).

    Examples
    --------
    >>> U, V = torch.ones(2, 3), torch.ones(4, 3)     # every prediction is 3
    >>> mse_dense(U, V, torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1.0, 3.0]))
    tensor(2.)
    """
    full = U @ V.T  # (N, M): every cell, observed or not
    return F.mse_loss(full[users, movies], ratings)


def mse_gathered(
    U: torch.Tensor,  # noqa: N803
    V: torch.Tensor,  # noqa: N803
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
) -> torch.Tensor:
    """Observed MSE from the gathered rows of the observed pairs (``O(|Omega| d)`` memory).

    Examples
    --------
    >>> U, V = torch.ones(2, 3), torch.ones(4, 3)
    >>> mse_gathered(U, V, torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1.0, 3.0]))
    tensor(2.)
    """
    pred = (U[users] * V[movies]).sum(dim=-1)
    return F.mse_loss(pred, ratings)


def _movie_l2(model: torch.nn.Module, movies: torch.Tensor) -> torch.Tensor:
    penalty = model.movie_factors(movies).pow(2).sum(-1)
    if getattr(model, "bias", False):
        penalty = penalty + model.movie_bias(movies).squeeze(-1) ** 2
    return penalty


def batch_l2(
    model: torch.nn.Module, users: torch.Tensor, movies: torch.Tensor, *more: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of ``||U_i||^2 + ||V_j||^2`` (and squared biases, if any).

    Penalising only the rows a batch touches regularises frequent users and movies
    more often, in proportion to their number of ratings. Further movie columns
    (``more``) add their rows too: a BPR triple (user, positive, negative) is
    penalised by ``||U_u||^2 + ||V_i||^2 + ||V_j||^2``, BPR-Opt's L2 term.
    """
    if not (hasattr(model, "user_factors") and hasattr(model, "movie_factors")):
        raise TypeError(
            f"l2 penalises the embedding rows of a factorization model; {type(model).__name__} "
            "has no user_factors / movie_factors: use fit(..., weight_decay=...) instead"
        )
    penalty = model.user_factors(users).pow(2).sum(-1)
    if getattr(model, "bias", False):
        penalty = penalty + model.user_bias(users).squeeze(-1) ** 2
    for column in (movies, *more):
        penalty = penalty + _movie_l2(model, column)
    return penalty.mean()


def observed_mse(
    model: torch.nn.Module,
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    *,
    l2: float = 0.0,
) -> torch.Tensor:
    """MSE of ``model(users, movies)`` against ``ratings``, plus ``l2 * batch_l2``.

    Use ``functools.partial(observed_mse, l2=0.05)`` to pass a penalty to ``fit``.
    """
    loss = F.mse_loss(model(users, movies), ratings)
    if l2:
        loss = loss + l2 * batch_l2(model, users, movies)
    return loss


def mse_sparse(model: torch.nn.Module, matrix, *, l2: float = 0.0) -> torch.Tensor:
    """Full-batch MSE of a :class:`~mfkit.models.MatrixFactorization` on a rating matrix.

    The same number as :func:`observed_mse` over all the ratings of ``matrix`` (a
    :class:`mfkit.sparse.RatingMatrix`), computed with sparse products that read
    memory in order (chapter 10). ``l2`` adds ``l2 * batch_l2`` over all ratings:
    each row's squared norm weighted by its number of ratings.
    """
    pred = matrix.dot(model.U, model.V)
    if model.bias:
        pred = pred + model.global_mean
        pred = pred + model.user_bias.weight[:, 0][matrix.users]
        pred = pred + model.movie_bias.weight[:, 0][matrix.movies]
    loss = F.mse_loss(pred, matrix.ratings)
    if l2:
        penalty = 0.0
        tables = [
            (model.user_factors, matrix.user_counts),
            (model.movie_factors, matrix.movie_counts),
        ]
        if model.bias:
            tables += [
                (model.user_bias, matrix.user_counts),
                (model.movie_bias, matrix.movie_counts),
            ]
        for table, counts in tables:
            penalty = penalty + (counts.to(table.weight.dtype) * table.weight.square().sum(1)).sum()
        loss = loss + l2 * penalty / len(matrix)
    return loss


def l2_regularizer(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """``r(U, V) = 1/N sum_i ||U_i||^2 + 1/M sum_j ||V_j||^2``: the mean squared row norms.

    Examples
    --------
    >>> l2_regularizer(torch.ones(2, 3), torch.zeros(5, 3))
    tensor(3.)
    """
    return U.pow(2).sum() / len(U) + V.pow(2).sum() / len(V)


def gravity(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """``g(U, V) = 1/(N M) sum_i sum_j <U_i, V_j>^2`` without building ``U V^T``.

    Since ``sum_ij <U_i, V_j>^2 = ||U V^T||_F^2 = sum((U^T U) * (V^T V))``, two
    ``d x d`` Gram matrices suffice: O((N + M) d^2) time and O(d^2) memory
    instead of O(N M d) and O(N M). It pulls *every* prediction, observed or not,
    towards 0, which stops unobserved pairs from drifting to large scores.

    Examples
    --------
    >>> U, V = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    >>> gravity(U, V)  # (<U_0,V_0>^2 + <U_0,V_1>^2) / 2 = (9 + 9) / 2
    tensor(9.)
    """
    return ((U.T @ U) * (V.T @ V)).sum() / (len(U) * len(V))


def regularized_mse(
    model: torch.nn.Module,
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    *,
    lambda_r: float = 0.0,
    lambda_g: float = 0.0,
) -> torch.Tensor:
    """``MSE_obs + lambda_r * r(U, V) + lambda_g * g(U, V)`` for a model with ``U``, ``V``.

    The regularizers see the *whole* embedding tables at every step, not just the
    rows of the batch. Pass it to ``fit`` with ``functools.partial``.
    """
    loss = F.mse_loss(model(users, movies), ratings)
    if lambda_r:
        loss = loss + lambda_r * l2_regularizer(model.U, model.V)
    if lambda_g:
        loss = loss + lambda_g * gravity(model.U, model.V)
    return loss


def softmax_loss(
    model: torch.nn.Module,
    users: torch.Tensor,
    targets: torch.Tensor,
    *,
    bags: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy of predicting ``targets`` from each user's bag *without* the target.

    One example is a (user row, movie row) pair from the training data: the
    input is row ``users[k]`` of ``bags`` with ``targets[k]`` removed (so the model
    cannot just copy its input), and the label is ``targets[k]``. Pass it to
    ``fit`` as ``functools.partial(softmax_loss, bags=bags)``.

    Examples
    --------
    >>> from mfkit.models import SoftmaxModel
    >>> model = SoftmaxModel(4, dim=2, seed=0)
    >>> bags = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> loss = softmax_loss(model, torch.tensor([0]), torch.tensor([1]), bags=bags)
    >>> bool(loss > 0)
    True
    """
    inputs = bags[users]  # advanced indexing copies
    inputs[torch.arange(len(users)), targets] = 0.0
    return F.cross_entropy(model(inputs), targets)


def implicit_bce(
    model: torch.nn.Module,
    users: torch.Tensor,
    movies: torch.Tensor,
    labels: torch.Tensor,
    *,
    l2: float = 0.0,
) -> torch.Tensor:
    """Binary cross-entropy of ``sigmoid(model(users, movies))`` against 0/1 ``labels``.

    The model returns logits (any score works: a matrix factorization's
    ``<U_i, V_j> + b_i + c_j`` too); the sigmoid is applied here, in the
    numerically stable ``binary_cross_entropy_with_logits``. ``l2`` adds
    ``l2 * batch_l2`` over every row of the batch, the sampled negatives' included.

    Examples
    --------
    >>> from mfkit.models import MatrixFactorization
    >>> model = MatrixFactorization(2, 2, dim=1, init_std=0.0)   # every logit is 0
    >>> implicit_bce(model, torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
    tensor(0.6931, grad_fn=<BinaryCrossEntropyWithLogitsBackward0>)
    """
    loss = F.binary_cross_entropy_with_logits(model(users, movies), labels.float())
    return loss + l2 * batch_l2(model, users, movies) if l2 else loss


def _score_gap(
    model: torch.nn.Module, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """``score(user, positive) - score(user, negative)`` for each triple."""
    if not users.shape == positives.shape == negatives.shape:
        raise ValueError(
            "users, positives and negatives must have one entry per triple, got shapes "
            f"{tuple(users.shape)}, {tuple(positives.shape)}, {tuple(negatives.shape)}"
        )
    return model(users, positives) - model(users, negatives)


def bpr_loss(
    model: torch.nn.Module,
    users: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    l2: float = 0.0,
) -> torch.Tensor:
    """Bayesian personalized ranking: mean ``-log sigmoid(s(u, i) - s(u, j))``.

    Each triple says that user ``users[k]`` prefers ``positives[k]`` (an interaction)
    to ``negatives[k]`` (a sampled movie). The loss only cares about the *order* of
    the two scores, not their values (Rendle et al. 2009). ``l2`` adds BPR-Opt's
    penalty, ``l2 * batch_l2`` over the user, positive and negative rows.

    Examples
    --------
    >>> from mfkit.models import MatrixFactorization
    >>> model = MatrixFactorization(1, 2, dim=1, init_std=0.0)   # every score is 0
    >>> bpr_loss(model, torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))  # log 2
    tensor(0.6931, grad_fn=<NegBackward0>)
    """
    loss = -F.logsigmoid(_score_gap(model, users, positives, negatives)).mean()
    return loss + l2 * batch_l2(model, users, positives, negatives) if l2 else loss


def hinge_loss(
    model: torch.nn.Module,
    users: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    margin: float = 1.0,
    l2: float = 0.0,
) -> torch.Tensor:
    """Pairwise hinge loss: mean ``max(0, margin - (s(u, i) - s(u, j)))``.

    Zero once every positive beats its negative by ``margin``; pass another margin
    with ``functools.partial(hinge_loss, margin=0.5)``. ``l2`` adds ``l2 *
    batch_l2`` over the user, positive and negative rows, as in :func:`bpr_loss`.

    Examples
    --------
    >>> from mfkit.models import MatrixFactorization
    >>> model = MatrixFactorization(1, 2, dim=1, init_std=0.0)   # every score is 0
    >>> hinge_loss(model, torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    tensor(1., grad_fn=<MeanBackward0>)
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    loss = F.relu(margin - _score_gap(model, users, positives, negatives)).mean()
    return loss + l2 * batch_l2(model, users, positives, negatives) if l2 else loss


def next_item_ce(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Full softmax cross-entropy of each next movie over the whole catalogue.

    ``inputs`` and ``targets`` come from :func:`mfkit.sequences.next_item_examples`;
    every step whose target is a movie (not padding) is one example, scored by a
    sequence model's :meth:`~mfkit.models.SASRec.logits` against
    all ``n_items`` movies (Klenitskiy and Vasilev 2023).

    Examples
    --------
    >>> from mfkit.models import GRU4Rec
    >>> model = GRU4Rec(4, dim=2, seed=0)
    >>> inputs, targets = torch.tensor([[0, 1, 4]]), torch.tensor([[1, 4, 4]])  # 4 pads
    >>> bool(next_item_ce(model, inputs, targets) > 0)
    True
    """
    real = targets != model.pad
    return F.cross_entropy(model.logits(model(inputs)[real]), targets[real])


def next_item_bce(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """SASRec's loss: binary cross-entropy, each next movie against one sampled movie.

    At every step whose target is a movie, the target's score should be high (label
    1) and the score of ``negatives`` at that step low (label 0); both scores are dot
    products of the step's hidden state with the movies' embeddings (Kang and
    McAuley 2018).
    """
    if negatives.shape != targets.shape:
        raise ValueError(
            f"negatives must have the shape of targets, {tuple(targets.shape)}, "
            f"got {tuple(negatives.shape)}"
        )
    real = targets != model.pad
    hidden = model(inputs)[real]
    table = model.items.weight
    positive = (hidden * table[targets[real]]).sum(-1)
    negative = (hidden * table[negatives[real]]).sum(-1)
    labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)])
    return F.binary_cross_entropy_with_logits(torch.cat([positive, negative]), labels)


def in_batch_softmax(
    user_vecs: torch.Tensor,
    movie_vecs: torch.Tensor,
    *,
    log_q: torch.Tensor | None = None,
    temperature: float = 1.0,
    movies: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-batch softmax: each user's own movie against the other movies of the batch.

    Row ``i`` of ``user_vecs`` and of ``movie_vecs`` is one training pair. The logits
    are the ``B x B`` matrix ``U V^T / temperature``: in row ``i`` column ``i`` is the
    positive and the other columns, the other pairs' movies, are the negatives, so
    no negatives are sampled. Popular movies appear in more batches and so are
    pushed down more often than a full softmax would; with ``log_q``, the log of
    the probability that each column's movie is drawn into a batch
    (:func:`batch_log_q`), column ``j`` is shifted by ``-log_q[j]`` before the
    softmax: the *logQ correction* of Yi et al. (2019). Returns the mean
    cross-entropy with targets ``0..B-1``.

    A movie that is in the batch twice is, as it stands, a negative of its own
    other pair. Given the batch's movie rows ``movies``, such *accidental hits* are
    masked out of the softmax instead.

    Examples
    --------
    >>> U = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> in_batch_softmax(U, U)  # log(1 + e^-1)
    tensor(0.3133)
    >>> in_batch_softmax(U, U, log_q=torch.log(torch.tensor([0.5, 0.5])))  # a constant shift
    tensor(0.3133)
    """
    if user_vecs.ndim != 2 or user_vecs.shape != movie_vecs.shape:
        raise ValueError(
            "user_vecs and movie_vecs must both be (B, dim), one row per pair, got shapes "
            f"{tuple(user_vecs.shape)} and {tuple(movie_vecs.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = user_vecs @ movie_vecs.T / temperature
    if log_q is not None:
        if log_q.shape != (len(movie_vecs),):
            raise ValueError(
                f"log_q must have one entry per batch movie, shape ({len(movie_vecs)},), "
                f"got {tuple(log_q.shape)}"
            )
        logits = logits - log_q.to(logits.dtype)
    if movies is not None:
        if movies.shape != (len(movie_vecs),):
            raise ValueError(
                f"movies must have one row per pair, shape ({len(movie_vecs)},), "
                f"got {tuple(movies.shape)}"
            )
        same = movies[:, None] == movies[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same.to(logits.device), float("-inf"))
    targets = torch.arange(len(logits), device=logits.device)
    return F.cross_entropy(logits, targets)


def batch_log_q(movies: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Log of each batch movie's probability of being drawn: ``log(counts[j] / counts.sum())``.

    ``counts`` holds every movie's number of training pairs (e.g.
    ``torch.bincount(movie_rows, minlength=n_movies)``): when batches are drawn
    uniformly from the pairs, a batch entry is movie ``j`` with that probability.

    Examples
    --------
    >>> batch_log_q(torch.tensor([0, 2]), torch.tensor([1, 0, 3])).exp()
    tensor([0.2500, 0.7500])
    """
    counts = counts.to(torch.float64)
    chosen = counts[movies]
    if (chosen <= 0).any():
        raise ValueError(
            "every batch movie needs a positive count; count the pairs the batches are drawn from"
        )
    return (chosen / counts.sum()).log().float()


def two_tower_loss(
    model: torch.nn.Module,
    users: torch.Tensor,
    movies: torch.Tensor,
    *,
    bags: torch.Tensor,
    counts: torch.Tensor | None = None,
    temperature: float = 1.0,
    mask_duplicates: bool = False,
) -> torch.Tensor:
    """:func:`in_batch_softmax` of a :class:`~mfkit.models.TwoTower` on (user, movie) pairs.

    Each user's bag (row of ``bags``) enters the user tower without the pair's movie,
    so the model cannot just copy its input (as in :func:`softmax_loss`). With
    ``counts`` (each movie's number of training pairs), the logQ correction is
    applied; with ``mask_duplicates``, a movie that is in the batch twice is not a
    negative of its own other pair. Pass it to ``fit`` as
    ``functools.partial(two_tower_loss, bags=bags)``. ``bags`` is every user's bag
    (row ``u`` for user row ``u``); a :class:`~mfkit.models.TwoTower` pools them with
    :meth:`~mfkit.models.TwoTower.pair_vectors` (the same numbers, up to float
    rounding, as ``model(users, inputs, movies)`` on the dense bags ``inputs``
    without each pair's movie, which is what any other model is given).

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> from mfkit.features import Indexer, SideFeatures
    >>> from mfkit.models import TwoTower
    >>> ds = synthetic_movielens(10, 12, 40, seed=0)
    >>> model = TwoTower(SideFeatures.from_movielens(ds), dim=4, hidden=(8,), seed=0)
    >>> users, movies, _ = Indexer.from_movielens(ds).tensors(ds.ratings)
    >>> bags = Indexer.from_movielens(ds).bags(ds.ratings)
    >>> bool(two_tower_loss(model, users[:8], movies[:8], bags=bags) > 0)
    True
    """
    if hasattr(model, "pair_vectors"):  # TwoTower: the same bags, one product per distinct user
        user_vecs, movie_vecs = model.pair_vectors(users, movies, bags)
    else:
        inputs = bags[users]  # advanced indexing copies
        inputs[torch.arange(len(users)), movies] = 0.0
        user_vecs, movie_vecs = model(users, inputs, movies)
    log_q = None if counts is None else batch_log_q(movies, counts).to(user_vecs.device)
    return in_batch_softmax(
        user_vecs,
        movie_vecs,
        log_q=log_q,
        temperature=temperature,
        movies=movies if mask_duplicates else None,
    )


def _feature_l2(model: torch.nn.Module, indices: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Batch L2 of a feature-row model: squared rows of every embedding table that the
    batch's features touch, per example."""
    tables = [m for m in model.modules() if isinstance(m, torch.nn.EmbeddingBag)]
    if not tables:
        raise TypeError(f"{type(model).__name__} has no embedding tables to penalise")
    return sum(table.weight[indices].square().sum() for table in tables) / n_rows


def feature_mse(
    model: torch.nn.Module,
    examples: torch.Tensor,
    targets: torch.Tensor,
    *,
    rows,
    l2: float = 0.0,
) -> torch.Tensor:
    """MSE of a feature-row model (:mod:`mfkit.models.fm`) on rows ``examples`` of ``rows``.

    ``rows`` (:class:`mfkit.feature_rows.FeatureRows`) holds every example, training
    and held out; the training loop passes example numbers, so bind ``rows`` with
    ``functools.partial(feature_mse, rows=rows)``. ``l2`` adds the batch L2 penalty of
    the features the batch touches (their weights and factors), per example.

    Examples
    --------
    >>> from mfkit.feature_rows import one_hot
    >>> from mfkit.models import FactorizationMachine
    >>> rows = one_hot(torch.tensor([0, 1]), 2)
    >>> fm = FactorizationMachine(2, dim=1, init_std=0.0, global_mean=3.0)
    >>> feature_mse(fm, torch.tensor([0, 1]), torch.tensor([4.0, 2.0]), rows=rows)
    tensor(1., grad_fn=<MseLossBackward0>)
    """
    indices, offsets, values = rows.batch(examples)
    loss = F.mse_loss(model(indices, offsets, values), targets.to(values.dtype))
    return loss + l2 * _feature_l2(model, indices, len(examples)) if l2 else loss


def feature_bce(
    model: torch.nn.Module,
    examples: torch.Tensor,
    labels: torch.Tensor,
    *,
    rows,
    l2: float = 0.0,
) -> torch.Tensor:
    """Binary cross-entropy of a feature-row model's logits against 0/1 ``labels``.

    As :func:`feature_mse`, for click prediction (the model returns logits).
    """
    indices, offsets, values = rows.batch(examples)
    logits = model(indices, offsets, values)
    loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return loss + l2 * _feature_l2(model, indices, len(examples)) if l2 else loss
