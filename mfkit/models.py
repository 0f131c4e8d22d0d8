"""Recommendation models, as plain ``torch.nn.Module`` s.

Every model scores ``(user row, movie row)`` pairs with ``forward`` and all movies
for some users with ``score_all``, so the training loop (:mod:`mfkit.train`) and
retrieval (:mod:`mfkit.retrieval`) work with any of them.

Introduced in chapter 2: :class:`MatrixFactorization`; chapter 5:
:class:`SoftmaxModel`, which scores all movies for users described by the bags
of movies they rated; chapter 6: :class:`HybridModel` (ids plus side features)
and :class:`DemographicsModel` (side features only, for brand-new users);
chapter 7: :class:`ImplicitMLP`, which scores how likely a user is to interact
with a movie, with user-ID dropout (:func:`drop_ids`) for new users.

Every model keeps the arguments it needs to be rebuilt in ``config``, which
:mod:`mfkit.saving` stores next to its weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mfkit.features import SideFeatures

__all__ = [
    "DemographicsModel",
    "HybridModel",
    "ImplicitMLP",
    "MatrixFactorization",
    "SoftmaxModel",
    "drop_ids",
]


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` through ``index_select``, whose backward (one ``index_add_``)
    is about a quarter faster on CPU than an embedding lookup's."""
    return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[1])


class MatrixFactorization(nn.Module):
    """Approximate the rating matrix as ``A ~ U V^T``, optionally with biases.

    The predicted rating of user ``i`` for movie ``j`` is ``<U_i, V_j>``, or, with
    ``bias=True``, ``mu + b_i + c_j + <U_i, V_j>`` where ``mu`` is a global mean
    (a parameter, started at ``global_mean``) and ``b``, ``c`` are per-user and
    per-movie offsets (started at zero).

    Parameters
    ----------
    n_users, n_movies : int
        Number of rows of ``U`` and ``V``.
    dim : int
        Embedding dimension ``d``; 0 with ``bias=True`` gives the biases-only
        baseline ``mu + b_i + c_j``.
    bias : bool
        Add the global mean and user/movie biases.
    global_mean : float
        Starting value of ``mu`` (use the mean training rating).
    init_std : float
        Standard deviation of the normal initialisation of ``U`` and ``V``.
    rating_range : (float, float) or None
        Where :meth:`predict` clips its output, e.g. ``(1, 5)``.
    seed : int or None
        Seed for the initialisation (``None``: torch's global generator).

    Examples
    --------
    >>> model = MatrixFactorization(3, 4, dim=2, bias=True, global_mean=3.5, seed=0)
    >>> model(torch.tensor([0, 2]), torch.tensor([1, 3])).shape
    torch.Size([2])
    >>> model.score_all(torch.tensor([0])).shape
    torch.Size([1, 4])
    """

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        dim: int = 32,
        *,
        bias: bool = False,
        global_mean: float = 0.0,
        init_std: float = 0.1,
        rating_range: tuple[float, float] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_movies", n_movies)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if dim < (0 if bias else 1):
            raise ValueError(
                f"dim must be at least 1 (or 0 with bias=True: a biases-only model), got {dim}"
            )
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.user_factors = nn.Embedding(n_users, dim)
        self.movie_factors = nn.Embedding(n_movies, dim)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for table in (self.user_factors, self.movie_factors):
                table.weight.normal_(0.0, init_std, generator=generator)
        self.config = {
            "n_users": n_users,
            "n_movies": n_movies,
            "dim": dim,
            "bias": bias,
            "rating_range": rating_range,
        }
        self.bias = bias
        if bias:
            self.global_mean = nn.Parameter(torch.tensor(float(global_mean)))
            self.user_bias = nn.Embedding(n_users, 1)
            self.movie_bias = nn.Embedding(n_movies, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.movie_bias.weight)
        self.rating_range = rating_range

    @property
    def U(self) -> torch.Tensor:  # noqa: N802 - the course's notation
        """User embeddings, shape ``(n_users, dim)``."""
        return self.user_factors.weight

    @property
    def V(self) -> torch.Tensor:  # noqa: N802
        """Movie embeddings, shape ``(n_movies, dim)``."""
        return self.movie_factors.weight

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of the pairs ``(users[k], movies[k])``: O(batch * dim)."""
        pred = (_rows(self.U, users) * _rows(self.V, movies)).sum(dim=-1)
        if self.bias:
            pred = (
                pred
                + self.global_mean
                + _rows(self.user_bias.weight, users).squeeze(-1)
                + _rows(self.movie_bias.weight, movies).squeeze(-1)
            )
        return pred

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of every movie for each of ``users``: ``(len(users), n_movies)``."""
        scores = self.user_factors(users) @ self.V.T
        if self.bias:
            scores = scores + self.global_mean + self.user_bias(users) + self.movie_bias.weight.T
        return scores

    @torch.no_grad()
    def predict(
        self, users: torch.Tensor, movies: torch.Tensor, *, clip: bool = True
    ) -> torch.Tensor:
        """Like ``forward`` without gradients, clipped to ``rating_range`` if set."""
        pred = self(users, movies)
        if clip and self.rating_range is not None:
            pred = pred.clamp(*self.rating_range)
        return pred


class SoftmaxModel(nn.Module):
    """Softmax recommender: a user is a function of the movies they rated.

    The input is a *bag* of movies, a row of a ``(n_users, n_movies)`` 0/1
    matrix such as :meth:`mfkit.features.Indexer.bags`. The bag is pooled into one
    vector through the movie input embeddings (``mean`` or ``sum``), optional
    user features are appended, and ``psi`` (hidden layers with ReLU, or none)
    maps the result to a query vector in the output embedding space. The logits
    are ``psi(x) V^T``, one per movie; a softmax over them gives the probability
    that the user watches each movie.

    Parameters
    ----------
    n_movies : int
    dim : int
        Size of the movie embeddings and of ``psi``'s output.
    hidden : sequence of int
        Sizes of the hidden layers of ``psi``; ``()`` for none (``psi`` is the
        identity, or one linear layer when there are user features).
    pooling : {"mean", "sum"}
    share_embeddings : bool
        Use one embedding table for the input bag and the output layer (as in
        the Google course), or two.
    n_features : int
        Number of extra user features appended to the pooled bag.
    init_std : float
        Standard deviation of the normal initialisation of the embeddings.
    seed : int or None

    Examples
    --------
    >>> model = SoftmaxModel(5, dim=4, hidden=(8,), seed=0)
    >>> bags = torch.tensor([[1.0, 1.0, 0, 0, 0], [0, 0, 0, 0, 1.0]])
    >>> model(bags).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        n_movies: int,
        dim: int = 32,
        *,
        hidden: Sequence[int] = (),
        pooling: str = "mean",
        share_embeddings: bool = True,
        n_features: int = 0,
        init_std: float = 0.1,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if n_movies < 1 or dim < 1:
            raise ValueError(f"n_movies and dim must be at least 1, got {n_movies} and {dim}")
        hidden = tuple(hidden)
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        if pooling not in ("mean", "sum"):
            raise ValueError(f"pooling must be 'mean' or 'sum', got {pooling!r}")
        if any(h < 1 for h in hidden) or n_features < 0:
            raise ValueError(
                f"hidden sizes must be >= 1 and n_features >= 0, got {hidden}, {n_features}"
            )
        self.pooling = pooling
        self.n_features = n_features
        self.config = {
            "n_movies": n_movies,
            "dim": dim,
            "hidden": hidden,
            "pooling": pooling,
            "share_embeddings": share_embeddings,
            "n_features": n_features,
        }
        # Seed torch's global generator (used by nn.Linear) without disturbing it outside.
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.input_embedding = nn.Parameter(torch.randn(n_movies, dim) * init_std)
            self.output_embedding = (
                self.input_embedding
                if share_embeddings
                else nn.Parameter(torch.randn(n_movies, dim) * init_std)
            )
            sizes = [dim + n_features, *hidden]
            layers: list[nn.Module] = []
            for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [nn.Linear(size_in, size_out), nn.ReLU()]
            if hidden or n_features:
                layers.append(nn.Linear(sizes[-1], dim))
            self.psi = nn.Sequential(*layers)

    @property
    def V(self) -> torch.Tensor:  # noqa: N802 - the course's notation
        """Output movie embeddings, shape ``(n_movies, dim)``."""
        return self.output_embedding

    def user_vectors(
        self, bags: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``psi(x)`` for each bag: the query vectors, shape ``(n, dim)``."""
        if bags.ndim != 2 or bags.shape[1] != len(self.input_embedding):
            raise ValueError(
                f"bags must have shape (n, {len(self.input_embedding)}), got {tuple(bags.shape)}"
            )
        pooled = bags @ self.input_embedding
        if self.pooling == "mean":
            pooled = pooled / bags.sum(dim=1, keepdim=True).clamp(min=1)
        if features is not None and not self.n_features:
            raise ValueError("features given, but the model was built with n_features=0")
        if self.n_features:
            if features is None or features.shape != (len(bags), self.n_features):
                raise ValueError(
                    f"the model expects features of shape ({len(bags)}, {self.n_features})"
                )
            pooled = torch.cat([pooled, features], dim=1)
        return self.psi(pooled)

    def forward(self, bags: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every movie for each bag: ``(n, n_movies)``."""
        return self.user_vectors(bags, features) @ self.V.T


class _FeatureModel(nn.Module):
    """Plumbing shared by the feature models: side features as buffers, scoring by rows.

    The encoded features of every user and movie (:class:`mfkit.features.SideFeatures`)
    are stored as buffers, so ``forward(users, movies)`` takes row indices like
    :class:`MatrixFactorization` does and the training loop, :func:`score_all`-based
    evaluation and recommendation work unchanged.
    """

    def __init__(self, side: SideFeatures, rating_range: tuple[float, float]) -> None:
        super().__init__()
        low, high = rating_range
        if not low < high:
            raise ValueError(
                f"rating_range must be (low, high) with low < high, got {rating_range}"
            )
        self.side = side
        self.rating_range = (float(low), float(high))
        self._user_keys, self._movie_keys = tuple(side.users), tuple(side.movies)
        for key, table in side.users.items():
            self.register_buffer(f"user_{key}", table.clone(), persistent=False)
        for key, table in side.movies.items():
            self.register_buffer(f"movie_{key}", table.clone(), persistent=False)

    @property
    def n_users(self) -> int:
        return len(self.side.users["age"])

    @property
    def n_movies(self) -> int:
        return len(self.side.movies["year"])

    def _users(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {key: getattr(self, f"user_{key}")[rows] for key in self._user_keys}

    def _movies(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {key: getattr(self, f"movie_{key}")[rows] for key in self._movie_keys}

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


def _mlp(sizes: Sequence[int], dropout: float, batch_norm: bool) -> nn.Sequential:
    """Linear layers of ``sizes``, each followed by [BatchNorm,] ReLU and dropout."""
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(nn.Linear(size_in, size_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size_out))
        layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def _check_mlp_args(hidden: Sequence[int], dropout: float) -> tuple[int, ...]:
    hidden = tuple(hidden)
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden must be one or more layer sizes >= 1, got {hidden}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return hidden


def _one_hot(codes: torch.Tensor, size: int) -> torch.Tensor:
    """One-hot rows without the *unknown* column: code 0 becomes all zeros."""
    return nn.functional.one_hot(codes, size)[:, 1:].float()


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
        hidden = _check_mlp_args(hidden, dropout)
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
            self.mlp = _mlp((n_in, *hidden), dropout, batch_norm=False)
            self.output = nn.Linear(hidden[-1], 1)
            nn.init.constant_(self.output.bias, global_mean)

    def _rate(self, users, user_x, movies, movie_x):
        parts = [self.user_embedding(users), self.movie_embedding(movies)]
        for key, size in self._one_hot_sizes.items():
            codes = movie_x[key] if key == "year" else user_x[key]
            parts.append(_one_hot(codes, size))
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
        hidden = _check_mlp_args(hidden, dropout)
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
            self.mlp = _mlp((n_in, *hidden), dropout, batch_norm=True)
            self.output = nn.Linear(hidden[-1], 1)
            nn.init.constant_(self.output.bias, float(torch.logit(torch.tensor(start))))

    def _rate(self, users, user_x, movies, movie_x):
        parts = [
            self.zip_embedding(user_x["zip"]),
            self.occupation_embedding(user_x["occupation"]),
            self.age_projection(user_x["age"].unsqueeze(-1)),
            self.gender_projection(_one_hot(user_x["gender"], self._gender_codes)),
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


def drop_ids(
    ids: torch.Tensor, p: float, reserved: int, *, generator: torch.Generator | None = None
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
        0/1 genre flags of every movie (the model keeps a copy).
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
        hidden = _check_mlp_args(hidden, dropout)
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
            self.genre_embedding = nn.Linear(genres.shape[1], dim, bias=False)
            for table in (self.user_embedding, self.movie_embedding):
                nn.init.normal_(table.weight, 0.0, 0.1)
            self.mlp = _mlp((3 * dim, *hidden), dropout, batch_norm=False)
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

    def score_all(self, users: torch.Tensor, *, chunk: int = 262_144) -> torch.Tensor:
        """Logits of every movie for each of ``users``: ``(len(users), n_movies)``."""
        n_movies = len(self.genres)
        movies = torch.arange(n_movies, device=self.genres.device)
        per_step = max(1, chunk // n_movies)
        rows = [
            self(part.repeat_interleave(n_movies), movies.repeat(len(part))).view(-1, n_movies)
            for part in users.to(self.genres.device).split(per_step)
        ]
        return torch.cat(rows) if rows else torch.empty(0, n_movies, device=self.genres.device)

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
