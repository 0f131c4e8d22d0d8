"""A network for implicit feedback, with user-ID dropout for new users.

Built in chapter 7: :class:`~mfkit.models.ImplicitMLP` scores how likely a user is to
interact with a movie; :func:`~mfkit.models.drop_ids` trains its reserved *new user* row.
The chapter writes the same network by hand (``ImplicitNet``, about 20 lines) and checks
that both give the same logits from the same weights and seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from mfkit.models._layers import check_mlp_args, mlp
from mfkit.threads import on_model_threads

__all__ = ["ImplicitMLP", "drop_ids"]


def drop_ids(
    ids: torch.Tensor,
    p: float,
    reserved: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace each id by ``reserved`` with probability ``p`` (a new tensor).

    *User-ID dropout*: trained this way, the ``reserved`` row of an embedding
    table learns what is common to all users, and stands in at inference for a
    user the model has never seen.

    Examples
    --------
    >>> drop_ids(torch.tensor([3, 1, 4, 1, 5]), 1.0, reserved=9).tolist()
    [9, 9, 9, 9, 9]
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    dropped = torch.rand(ids.shape, generator=generator, device=ids.device) < p
    return ids.masked_fill(dropped, reserved)


class ImplicitMLP(nn.Module):
    """Will user ``i`` interact with movie ``j``? A small network on ids and genres.

    The input is ``[U_i, V_j, G_j]``: a user embedding, a movie embedding and
    the mean of the embeddings of the movie's genres. One or more ``Linear ->
    ReLU -> Dropout`` layers and a last ``Linear`` give a logit;
    ``sigmoid(logit)`` is the probability of an interaction (train with
    :func:`mfkit.losses.implicit_bce`).

    Row ``n_users`` of the user table is reserved for a *new user*. With
    ``user_dropout=p``, training replaces each user id by it with probability
    ``p`` (:func:`drop_ids`), so that row learns the average user; score users
    the model has never seen with :meth:`score_new_user`.

    Parameters
    ----------
    n_users, n_movies : int
    genres : tensor of shape (n_movies, n_genres)
        0/1 genre flags of every movie (the model keeps a copy); ``n_genres`` may be 0,
        for interactions alone.
    dim : int
        Size of the user, movie and genre embeddings.
    hidden : sequence of int
        Hidden layer sizes.
    dropout : float
        Dropout after each hidden layer.
    user_dropout : float
        Probability of replacing a user id by the new-user id during training.
    seed : int or None

    Examples
    --------
    >>> genres = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> model = ImplicitMLP(4, 3, genres, dim=2, hidden=(4,), seed=0)
    >>> model(torch.tensor([0, 3]), torch.tensor([2, 1])).shape
    torch.Size([2])
    >>> model.score_all(torch.tensor([0, 1])).shape, model.new_user
    (torch.Size([2, 3]), 4)
    """

    step_threads = 1  # mini-batch steps and score_all on one thread (mfkit.threads)

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        genres: torch.Tensor,
        *,
        dim: int = 32,
        hidden: Sequence[int] = (64,),
        dropout: float = 0.2,
        user_dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden = check_mlp_args(hidden, dropout)
        if n_users < 1 or n_movies < 1 or dim < 1:
            raise ValueError(
                f"n_users, n_movies and dim must be at least 1, got {n_users}, {n_movies}, {dim}"
            )
        genres = torch.as_tensor(genres, dtype=torch.float32)
        if genres.ndim != 2 or len(genres) != n_movies:
            raise ValueError(
                f"genres must have shape ({n_movies}, n_genres), got {tuple(genres.shape)}"
            )
        if not 0 <= user_dropout < 1:
            raise ValueError(f"user_dropout must be in [0, 1), got {user_dropout}")
        self.config = {
            "n_users": n_users,
            "n_movies": n_movies,
            "dim": dim,
            "hidden": hidden,
            "dropout": dropout,
            "user_dropout": user_dropout,
        }
        self.new_user = n_users
        self.user_dropout = user_dropout
        # Each movie's genre flags, scaled to sum to 1: G_j is the mean genre embedding.
        share = genres / genres.sum(dim=1, keepdim=True).clamp(min=1)
        self.register_buffer("genres", share)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.user_embedding = nn.Embedding(n_users + 1, dim)
            self.movie_embedding = nn.Embedding(n_movies, dim)
            with warnings.catch_warnings():  # no genres, (n_movies, 0): an empty layer
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")
                self.genre_embedding = nn.Linear(genres.shape[1], dim, bias=False)
            for table in (self.user_embedding, self.movie_embedding):
                nn.init.normal_(table.weight, 0.0, 0.1)
            self.mlp = mlp((3 * dim, *hidden), dropout, batch_norm=False)
            self.output = nn.Linear(hidden[-1], 1)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs ``(users[k], movies[k])``; row ``n_users`` is the new user."""
        if self.training and self.user_dropout:
            users = drop_ids(users, self.user_dropout, self.new_user)
        x = torch.cat(
            [
                self.user_embedding(users),
                self.movie_embedding(movies),
                self.genre_embedding(self.genres[movies]),
            ],
            dim=1,
        )
        return self.output(self.mlp(x)).squeeze(-1)

    @on_model_threads
    def score_all(self, users: torch.Tensor, *, chunk: int = 16_384) -> torch.Tensor:
        """Logits of every movie for each of ``users``: ``(len(users), n_movies)``.

        In evaluation mode the first layer is split by its inputs, ``W [U_i, V_j,
        G_j] + b = W_u U_i + (W_v V_j + W_g G_j + b)``: one product per user and one
        per movie instead of one per pair, the same logits (up to rounding) several
        times faster. In training mode (dropout, user-ID dropout) every pair goes
        through :meth:`forward`. ``chunk`` bounds the pairs scored per step (memory).
        """
        n_movies = len(self.genres)
        device = self.genres.device
        users = users.to(device)
        per_step = max(1, chunk // n_movies)
        if self.training:
            movies = torch.arange(n_movies, device=device)
            rows = [
                self(part.repeat_interleave(n_movies), movies.repeat(len(part))).view(-1, n_movies)
                for part in users.split(per_step)
            ]
        else:
            first, rest = self.mlp[0], self.mlp[1:]
            w_user, w_movie, w_genre = first.weight.split(self.config["dim"], dim=1)
            genre_part = self.genre_embedding(self.genres) @ w_genre.T
            movie_part = self.movie_embedding.weight @ w_movie.T + genre_part + first.bias
            user_part = self.user_embedding(users) @ w_user.T
            rows = [
                self.output(rest(part[:, None, :] + movie_part)).squeeze(-1)
                for part in user_part.split(per_step)
            ]
        return torch.cat(rows) if rows else torch.empty(0, n_movies, device=device)

    @torch.no_grad()
    def score_new_user(self) -> torch.Tensor:
        """Logits of every movie for a user the model has never seen: ``(1, n_movies)``."""
        was_training = self.training
        self.eval()
        scores = self.score_all(torch.tensor([self.new_user]))
        self.train(was_training)
        return scores

    @torch.no_grad()
    def predict(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Probabilities of an interaction, ``sigmoid(forward)``, without gradients."""
        return torch.sigmoid(self(users, movies))
