"""Networks on side features: the hybrid (ids plus features) and demographics-only models.

Built in chapter 6: :class:`~mfkit.models.HybridModel` adds one-hot side features to id
embeddings; :class:`~mfkit.models.DemographicsModel` uses side features only, so it
scores brand-new users.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mfkit.features import SideFeatures
from mfkit.models._layers import SideFeatureModel, check_mlp_args, mlp, one_hot
from mfkit.threads import on_model_threads

__all__ = ["DemographicsModel", "HybridModel"]


class _FeatureModel(SideFeatureModel):
    """Plumbing shared by the feature models: side features as buffers, scoring by rows.

    The encoded features of every user and movie (:class:`mfkit.features.SideFeatures`)
    are stored as buffers, so ``forward(users, movies)`` takes row indices like
    :class:`MatrixFactorization` does and the training loop, :func:`score_all`-based
    evaluation and recommendation work unchanged.
    """

    step_threads = 1  # mini-batch steps and score_all on one thread (mfkit.threads)

    def __init__(self, side: SideFeatures, rating_range: tuple[float, float]) -> None:
        super().__init__()
        low, high = rating_range
        if not low < high:
            raise ValueError(
                f"rating_range must be (low, high) with low < high, got {rating_range}"
            )
        self._store_side(side)
        self.rating_range = (float(low), float(high))

    def _rate(
        self,
        users: torch.Tensor | None,
        user_x: dict[str, torch.Tensor],
        movies: torch.Tensor,
        movie_x: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of the pairs ``(users[k], movies[k])``."""
        return self._rate(users, self._users(users), movies, self._movies(movies))

    def _score_grid(
        self, users: torch.Tensor | None, user_x: dict[str, torch.Tensor], chunk: int
    ) -> torch.Tensor:
        """Every movie for every user described by ``user_x``, ``chunk`` pairs at a time."""
        n_users = len(next(iter(user_x.values())))
        device = self.user_age.device
        if n_users == 0:
            return torch.empty(0, self.n_movies, device=device)
        movies = torch.arange(self.n_movies, device=device)
        per_step = max(1, chunk // self.n_movies)
        rows = []
        for start in range(0, n_users, per_step):
            part = slice(start, start + per_step)
            n = len(range(n_users)[part])
            pair_users = None if users is None else users[part].repeat_interleave(self.n_movies)
            pair_x = {k: v[part].repeat_interleave(self.n_movies, dim=0) for k, v in user_x.items()}
            pair_movies = movies.repeat(n)
            rows.append(
                self._rate(pair_users, pair_x, pair_movies, self._movies(pair_movies)).view(n, -1)
            )
        return torch.cat(rows)

    @on_model_threads
    def score_all(self, users: torch.Tensor, *, chunk: int = 65_536) -> torch.Tensor:
        """Predicted ratings of every movie for each of ``users``: ``(len(users), n_movies)``."""
        users = users.to(self.user_age.device)
        return self._score_grid(users, self._users(users), chunk)

    @torch.no_grad()
    def predict(
        self, users: torch.Tensor, movies: torch.Tensor, *, clip: bool = True
    ) -> torch.Tensor:
        """Like ``forward`` without gradients, clipped to ``rating_range``."""
        pred = self(users, movies)
        return pred.clamp(*self.rating_range) if clip else pred


class HybridModel(_FeatureModel):
    """A deep hybrid: user and movie id embeddings plus one-hot side features -> MLP.

    The input of the network is ``[U_i, V_j, gender, occupation, age group,
    release year, genres]`` (ids as embeddings, features as one-hot or multi-hot
    rows); fully connected layers with ReLU and dropout map it to a rating.

    Parameters
    ----------
    side : SideFeatures
        The encoded users and movies; rows match :class:`mfkit.features.Indexer`.
    dim : int
        Size of the user and movie id embeddings.
    hidden : sequence of int
        Hidden layer sizes (each Linear -> ReLU -> Dropout); a last linear layer
        outputs the rating.
    dropout : float
    global_mean : float
        Starting value of the output bias (use the mean training rating).
    rating_range : (float, float)
        Where :meth:`predict` clips.
    seed : int or None

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> from mfkit.features import SideFeatures
    >>> ds = synthetic_movielens(20, 30, 100, seed=0)
    >>> model = HybridModel(SideFeatures.from_movielens(ds), dim=4, hidden=(8,), seed=0)
    >>> model(torch.tensor([0, 1]), torch.tensor([5, 6])).shape
    torch.Size([2])
    >>> model.score_all(torch.tensor([0, 1, 2])).shape
    torch.Size([3, 30])
    """

    def __init__(
        self,
        side: SideFeatures,
        *,
        dim: int = 128,
        hidden: Sequence[int] = (128, 64, 32),
        dropout: float = 0.2,
        global_mean: float = 3.5,
        rating_range: tuple[float, float] = (1.0, 5.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(side, rating_range)
        hidden = check_mlp_args(hidden, dropout)
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.config = {
            "dim": dim,
            "hidden": hidden,
            "dropout": dropout,
            "rating_range": rating_range,
        }
        sizes = side.sizes
        self._one_hot_sizes = {
            "gender": sizes["gender"],
            "occupation": sizes["occupation"],
            "age_group": sizes["age_group"],
            "year": sizes["year"],
        }
        n_in = 2 * dim + sum(s - 1 for s in self._one_hot_sizes.values()) + sizes["genres"]
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.user_embedding = nn.Embedding(self.n_users, dim)
            self.movie_embedding = nn.Embedding(self.n_movies, dim)
            for table in (self.user_embedding, self.movie_embedding):
                nn.init.normal_(table.weight, 0.0, 0.1)
            self.mlp = mlp((n_in, *hidden), dropout, batch_norm=False)
            self.output = nn.Linear(hidden[-1], 1)
            nn.init.constant_(self.output.bias, global_mean)

    def _rate(self, users, user_x, movies, movie_x):
        parts = [self.user_embedding(users), self.movie_embedding(movies)]
        for key, size in self._one_hot_sizes.items():
            codes = movie_x[key] if key == "year" else user_x[key]
            parts.append(one_hot(codes, size))
        parts.append(movie_x["genres"])
        return self.output(self.mlp(torch.cat(parts, dim=1))).squeeze(-1)


class DemographicsModel(_FeatureModel):
    """Rate a movie from who the user is, never from their id: cold start for new users.

    Users enter only through their features: embeddings of zip prefix and
    occupation, and linear projections of (standardised) age and of gender.
    Movies enter through an embedding of their release year, their genre flags
    and, with ``movie_dim > 0``, an embedding of their id. Fully connected
    layers with BatchNorm, ReLU and dropout follow; a sigmoid scaled to
    ``rating_range`` gives the rating. Since no user id is used, a user who has
    never rated anything gets predictions from :meth:`score_profile`.

    Parameters
    ----------
    side : SideFeatures
    dim : int
        Size of each feature embedding and projection.
    movie_dim : int
        Size of the movie id embedding; 0 leaves movie ids out (then new movies
        can be scored from their year and genres too).
    hidden : sequence of int
    dropout : float
    global_mean : float
        Where the output starts (the sigmoid's bias is set to reach it).
    rating_range : (float, float)
    seed : int or None

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> from mfkit.features import SideFeatures
    >>> ds = synthetic_movielens(20, 30, 100, seed=0)
    >>> side = SideFeatures.from_movielens(ds)
    >>> model = DemographicsModel(side, dim=4, hidden=(8,), seed=0).eval()
    >>> new_user = side.profile(age=30, gender="F", occupation="student", zip_code="94110")
    >>> model.score_profile(new_user).shape
    torch.Size([1, 30])
    """

    def __init__(
        self,
        side: SideFeatures,
        *,
        dim: int = 16,
        movie_dim: int = 32,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.2,
        global_mean: float = 3.5,
        rating_range: tuple[float, float] = (1.0, 5.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(side, rating_range)
        hidden = check_mlp_args(hidden, dropout)
        if dim < 1 or movie_dim < 0:
            raise ValueError(f"dim must be >= 1 and movie_dim >= 0, got {dim} and {movie_dim}")
        self.config = {
            "dim": dim,
            "movie_dim": movie_dim,
            "hidden": hidden,
            "dropout": dropout,
            "rating_range": rating_range,
        }
        sizes = side.sizes
        low, high = self.rating_range
        start = min(max((global_mean - low) / (high - low), 0.01), 0.99)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.zip_embedding = nn.Embedding(sizes["zip"], dim, padding_idx=0)
            self.occupation_embedding = nn.Embedding(sizes["occupation"], dim, padding_idx=0)
            self.year_embedding = nn.Embedding(sizes["year"], dim, padding_idx=0)
            self.age_projection = nn.Linear(1, dim)
            self._gender_codes = sizes["gender"]
            self.gender_projection = nn.Linear(sizes["gender"] - 1, dim)
            self.movie_embedding = nn.Embedding(self.n_movies, movie_dim) if movie_dim else None
            n_in = 5 * dim + movie_dim + sizes["genres"]
            self.mlp = mlp((n_in, *hidden), dropout, batch_norm=True)
            self.output = nn.Linear(hidden[-1], 1)
            nn.init.constant_(self.output.bias, float(torch.logit(torch.tensor(start))))

    def _rate(self, users, user_x, movies, movie_x):
        parts = [
            self.zip_embedding(user_x["zip"]),
            self.occupation_embedding(user_x["occupation"]),
            self.age_projection(user_x["age"].unsqueeze(-1)),
            self.gender_projection(one_hot(user_x["gender"], self._gender_codes)),
            self.year_embedding(movie_x["year"]),
            movie_x["genres"],
        ]
        if self.movie_embedding is not None:
            parts.append(self.movie_embedding(movies))
        low, high = self.rating_range
        logit = self.output(self.mlp(torch.cat(parts, dim=1))).squeeze(-1)
        return low + (high - low) * torch.sigmoid(logit)

    @torch.no_grad()
    def score_profile(
        self, profile: dict[str, torch.Tensor], *, chunk: int = 65_536
    ) -> torch.Tensor:
        """Predicted ratings of every movie for users given only by their features.

        ``profile`` is :meth:`mfkit.features.SideFeatures.profile` (one new user)
        or :meth:`~mfkit.features.SideFeatures.encode_users` (several); returns
        ``(n, n_movies)``.
        """
        missing = set(self._user_keys) - set(profile)
        if missing:
            raise KeyError(f"profile lacks {sorted(missing)}; build it with SideFeatures.profile")
        device = self.user_age.device
        return self._score_grid(None, {k: v.to(device) for k, v in profile.items()}, chunk)
