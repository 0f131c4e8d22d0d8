"""Models for ranking from implicit feedback: NeuMF and EASE^R.

Built in chapter 8 (learning to rank): :class:`~mfkit.models.NeuMF` (He et al. 2017)
fuses a generalized matrix factorization (GMF) branch and an MLP branch into one
logit, and can start from a trained GMF and MLP
(:meth:`~mfkit.models.NeuMF.from_pretrained`); :class:`~mfkit.models.EASE` (Steck
2019) is a linear item-item model with a closed-form solution
(:func:`~mfkit.models.ease_weights`), no gradient descent at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mfkit.models._layers import check_mlp_args, mlp
from mfkit.threads import on_model_threads

__all__ = ["EASE", "NeuMF", "ease_weights"]

BRANCHES = ("gmf", "mlp")


class NeuMF(nn.Module):
    """Neural matrix factorization: a GMF branch and an MLP branch, fused.

    The GMF branch is the element-wise product ``p_i * q_j`` of a user and a movie
    embedding; the MLP branch runs ``[p'_i, q'_j]`` (separate embeddings) through
    ``Linear -> ReLU -> Dropout`` layers. One last ``Linear`` reads both and gives a
    logit. ``branches=("gmf",)`` is GMF alone: with an output weight of ones and no
    bias, its logit is matrix factorization's dot product ``<p_i, q_j>``.

    Parameters
    ----------
    n_users, n_movies : int
    dim : int
        Size of the GMF embeddings (the paper's "predictive factors").
    hidden : sequence of int
        Sizes of the MLP branch's layers; its embeddings have ``hidden[0] // 2``
        entries each, so that their concatenation is ``hidden[0]`` wide.
    dropout : float
        Dropout after each MLP layer.
    branches : tuple of {"gmf", "mlp"}
        Which branches the model has.
    seed : int or None

    Examples
    --------
    >>> model = NeuMF(3, 4, dim=2, hidden=(4, 2), seed=0)
    >>> model(torch.tensor([0, 2]), torch.tensor([1, 3])).shape
    torch.Size([2])
    >>> model.score_all(torch.tensor([0, 1])).shape
    torch.Size([2, 4])
    """

    step_threads = 1  # mini-batch steps and score_all on one thread (mfkit.threads)

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        *,
        dim: int = 8,
        hidden: Sequence[int] = (32, 16, 8),
        dropout: float = 0.0,
        branches: Sequence[str] = BRANCHES,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden = check_mlp_args(hidden, dropout)
        branches = tuple(branches)
        if not branches or set(branches) - set(BRANCHES) or len(set(branches)) < len(branches):
            raise ValueError(f"branches must be one or both of {BRANCHES}, got {branches}")
        if n_users < 1 or n_movies < 1 or dim < 1:
            raise ValueError(
                f"n_users, n_movies and dim must be at least 1, got {n_users}, {n_movies}, {dim}"
            )
        if "mlp" in branches and hidden[0] < 2:
            raise ValueError(f"hidden[0] must be at least 2 (two embeddings), got {hidden[0]}")
        self.config = {
            "n_users": n_users,
            "n_movies": n_movies,
            "dim": dim,
            "hidden": hidden,
            "dropout": dropout,
            "branches": branches,
        }
        self.branches = branches
        width = 0
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            if "gmf" in branches:
                self.user_gmf = nn.Embedding(n_users, dim)
                self.movie_gmf = nn.Embedding(n_movies, dim)
                width += dim
            if "mlp" in branches:
                self.user_mlp = nn.Embedding(n_users, hidden[0] // 2)
                self.movie_mlp = nn.Embedding(n_movies, hidden[0] // 2)
                self.mlp = mlp((2 * (hidden[0] // 2), *hidden[1:]), dropout, batch_norm=False)
                width += hidden[-1] if len(hidden) > 1 else 2 * (hidden[0] // 2)
            for table in self._embeddings():
                nn.init.normal_(table.weight, 0.0, 0.01)  # the paper's initialisation
            self.output = nn.Linear(width, 1)

    def _embeddings(self) -> list[nn.Embedding]:
        names = {"gmf": ("user_gmf", "movie_gmf"), "mlp": ("user_mlp", "movie_mlp")}
        return [getattr(self, n) for b in self.branches for n in names[b]]

    def features(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """What the output layer reads: ``[p_i * q_j, MLP(p'_i, q'_j)]`` per pair."""
        parts = []
        if "gmf" in self.branches:
            parts.append(self.user_gmf(users) * self.movie_gmf(movies))
        if "mlp" in self.branches:
            pair = torch.cat([self.user_mlp(users), self.movie_mlp(movies)], dim=-1)
            parts.append(self.mlp(pair))
        return torch.cat(parts, dim=-1)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs ``(users[k], movies[k])``."""
        return self.output(self.features(users, movies)).squeeze(-1)

    @on_model_threads
    def score_all(self, users: torch.Tensor, *, chunk: int = 128) -> torch.Tensor:
        """Logits of every movie for each of ``users``: ``(len(users), n_movies)``.

        The same numbers as ``forward`` on every pair, computed without building the
        pairs: the GMF part is one matrix product, and the MLP's first layer is split
        into a user half and a movie half (``W [p; q] = W_p p + W_q q``), added by
        broadcasting, ``chunk`` users at a time.
        """
        weight = self.output.weight[0]
        scores = self.output.bias.expand(len(users), self.config["n_movies"])
        if "gmf" in self.branches:
            dim = self.config["dim"]
            scores = scores + (self.user_gmf(users) * weight[:dim]) @ self.movie_gmf.weight.T
            weight = weight[dim:]
        if "mlp" in self.branches:
            half = self.user_mlp.embedding_dim
            if len(self.mlp):  # the first Linear, split into its user and movie halves
                first, rest = self.mlp[0], self.mlp[1:]
                user_part = self.user_mlp(users) @ first.weight[:, :half].T + first.bias
                movie_part = self.movie_mlp.weight @ first.weight[:, half:].T
            else:  # no hidden layer: the output reads the two embeddings directly
                rest = self.mlp
                user_part = self.user_mlp(users) @ weight[:half, None]
                movie_part = self.movie_mlp.weight @ weight[half:, None]
                weight = torch.ones(1, device=weight.device)
            rows = [
                rest(part[:, None, :] + movie_part[None, :, :]) @ weight
                for part in user_part.split(chunk)
            ]
            scores = scores + torch.cat(rows)
        return scores

    @classmethod
    def from_pretrained(cls, gmf: NeuMF, mlp_model: NeuMF, alpha: float = 0.5) -> NeuMF:
        """NeuMF started from a trained GMF and a trained MLP (the paper's pre-training).

        The embeddings and MLP layers are copied; the output layer concatenates the two
        output layers, weighted ``alpha`` and ``1 - alpha``.
        """
        if gmf.branches != ("gmf",) or mlp_model.branches != ("mlp",):
            raise ValueError("from_pretrained needs a GMF-only and an MLP-only NeuMF")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        g, m = gmf.config, mlp_model.config
        if (g["n_users"], g["n_movies"]) != (m["n_users"], m["n_movies"]):
            raise ValueError("the GMF and the MLP were built for different users or movies")
        model = cls(
            g["n_users"], g["n_movies"], dim=g["dim"], hidden=m["hidden"], dropout=m["dropout"]
        )
        with torch.no_grad():
            for name in ("user_gmf", "movie_gmf"):
                getattr(model, name).weight.copy_(getattr(gmf, name).weight)
            for name in ("user_mlp", "movie_mlp"):
                getattr(model, name).weight.copy_(getattr(mlp_model, name).weight)
            model.mlp.load_state_dict(mlp_model.mlp.state_dict())
            weights = [alpha * gmf.output.weight, (1 - alpha) * mlp_model.output.weight]
            model.output.weight.copy_(torch.cat(weights, dim=1))
            model.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp_model.output.bias)
        return model


def ease_weights(interactions: torch.Tensor, lam: float) -> torch.Tensor:
    """EASE^R's item-item weights ``B`` for a 0/1 ``(n_users, n_movies)`` matrix ``X``.

    ``B`` minimizes ``||X - X B||^2 + lam ||B||^2`` with a zero diagonal (a movie may
    not recommend itself). The closed form: ``P = (X^T X + lam I)^-1`` and
    ``B = I - P / diag(P)`` (each column ``j`` divided by ``P_jj``), computed in
    float64.

    Examples
    --------
    >>> X = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    >>> B = ease_weights(X, lam=1.0)
    >>> B.shape, bool((B.diagonal() == 0).all())
    (torch.Size([3, 3]), True)
    """
    X = torch.as_tensor(interactions, dtype=torch.float64)  # noqa: N806 - the paper's X
    if X.ndim != 2:
        raise ValueError(f"interactions must be a (n_users, n_movies) matrix, got {X.ndim} dims")
    if not lam > 0:
        raise ValueError(f"lam must be > 0 (it makes X^T X invertible), got {lam}")
    gram = X.T @ X
    gram.diagonal().add_(lam)
    P = torch.linalg.inv(gram)  # noqa: N806
    B = -P / P.diagonal()  # noqa: N806 - column j divided by P_jj
    B.diagonal().zero_()
    return B.to(torch.float32)


class EASE(nn.Module):
    """EASE^R (Steck 2019): score movie ``j`` for user ``i`` as ``X_i B_j``.

    ``X`` is the 0/1 matrix of training interactions and ``B`` the item-item weights
    of :func:`~mfkit.models.ease_weights`. Nothing is learned by gradient descent: the model is
    solved once, in closed form, when it is built.

    Parameters
    ----------
    interactions : tensor of shape (n_users, n_movies)
        1 where a user interacted with a movie in the training data, else 0 (e.g.
        :meth:`mfkit.features.Indexer.bags`).
    lam : float
        The L2 penalty on ``B``; larger values shrink the weights of rare movies.

    Examples
    --------
    >>> X = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    >>> model = EASE(X, lam=1.0)
    >>> model.score_all(torch.tensor([0])).shape
    torch.Size([1, 3])
    """

    def __init__(self, interactions: torch.Tensor, lam: float = 100.0) -> None:
        super().__init__()
        X = torch.as_tensor(interactions, dtype=torch.float32)  # noqa: N806
        self.config = {"n_users": X.shape[0], "n_movies": X.shape[-1], "lam": lam}
        self.register_buffer("B", ease_weights(X, lam))
        self.register_buffer("X", X)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Scores of the pairs ``(users[k], movies[k])``."""
        return (self.X[users] * self.B[:, movies].T).sum(dim=-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every movie for each of ``users``: ``(len(users), n_movies)``."""
        return self.X[users] @ self.B
