"""The two-tower retrieval model: a user tower and a movie tower that meet in a dot product.

Built in chapter 11 (retrieval at scale). The score of user ``i`` for movie
``j`` is ``<q_i, v_j>``, where the *user tower* maps what we know about the user (the
bag of movies they rated, as in chapter 5, and their demographics, as in chapter 6) to
``q_i``, and the *movie tower* maps what we know about the movie (its id, genres and
release year) to ``v_j``. The towers never look at each other, so every movie vector can
be computed once and searched with a nearest-neighbour index; training uses the other
movies of a batch as negatives (:func:`mfkit.losses.in_batch_softmax`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mfkit.features import SideFeatures
from mfkit.models._layers import SideFeatureModel, check_mlp_args, mlp, one_hot

__all__ = ["TwoTower"]

# The categorical user features, one-hot encoded at the user tower's input.
_USER_CODES = ("gender", "occupation", "age_group", "zip")


class TwoTower(SideFeatureModel):
    """Two towers, one for users and one for movies, scored by a dot product.

    User tower: the mean of a movie-embedding table over the user's bag of rated
    movies, the one-hot gender, occupation, age group and zip region, the
    standardised age and, with ``user_ids=True``, an embedding of the user id ->
    ``Linear -> ReLU -> Dropout`` layers of ``hidden`` -> a linear layer to ``dim``.
    Movie tower: the one-hot release year, the genre flags and, with
    ``movie_ids=True``, an embedding of the movie id -> the same kind of layers ->
    ``dim``.

    Each id table has one extra, *reserved* row (started at zero) that stands for
    "no id": a movie held out of training entirely (new-item cold start) is embedded
    from its year and genres through it (``movie_vectors(..., with_ids=False)``),
    and a new user through the user one. With ``id_dropout > 0`` each id of a
    training batch is replaced by the reserved row with that probability (chapter
    7's :func:`~mfkit.models.drop_ids`), so the reserved rows learn to stand in for
    unseen ids.

    Parameters
    ----------
    side : SideFeatures
        The encoded users and movies; their rows are the model's user and movie rows.
    dim : int
        Size of the user and movie vectors (and of the id embeddings).
    hidden : sequence of int
        Hidden layer sizes of each tower.
    movie_ids, user_ids : bool
        Whether the movie (user) tower embeds the id.
    id_dropout : float
        Probability of replacing an id by the reserved row while training.
    dropout : float
        Dropout after each hidden layer.
    normalize : bool
        Scale both towers' outputs to unit length: scores are then cosines, and
        the loss's ``temperature`` sets how peaked the softmax can get.
    seed : int or None

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> from mfkit.features import Indexer, SideFeatures
    >>> ds = synthetic_movielens(20, 30, 100, seed=0)
    >>> model = TwoTower(SideFeatures.from_movielens(ds), dim=4, hidden=(8,), seed=0)
    >>> bags = Indexer.from_movielens(ds).bags(ds.ratings)
    >>> users = torch.tensor([0, 1, 2])
    >>> model.score_all(users, bags[users]).shape
    torch.Size([3, 30])
    >>> model.movie_vectors(torch.tensor([7]), with_ids=False).shape  # a cold movie
    torch.Size([1, 4])
    """

    def __init__(
        self,
        side: SideFeatures,
        *,
        dim: int = 64,
        hidden: Sequence[int] = (128,),
        movie_ids: bool = True,
        user_ids: bool = False,
        id_dropout: float = 0.0,
        dropout: float = 0.0,
        normalize: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden = check_mlp_args(hidden, dropout)
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        if not 0 <= id_dropout <= 1:
            raise ValueError(f"id_dropout must be in [0, 1], got {id_dropout}")
        self.config = {
            "dim": dim,
            "hidden": hidden,
            "movie_ids": movie_ids,
            "user_ids": user_ids,
            "id_dropout": id_dropout,
            "dropout": dropout,
            "normalize": normalize,
        }
        self._store_side(side)
        self.id_dropout = id_dropout
        self.normalize = normalize
        sizes = side.sizes
        self._user_sizes = {key: sizes[key] for key in _USER_CODES}
        self._year_size = sizes["year"]
        n_user_in = dim + sum(s - 1 for s in self._user_sizes.values()) + 1 + dim * user_ids
        n_movie_in = self._year_size - 1 + sizes["genres"] + dim * movie_ids
        if n_movie_in == 0:
            raise ValueError(
                "the movie tower has no input: side has no movie features, so keep movie_ids=True"
            )
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.history = nn.Embedding(self.n_movies, dim)  # the bag's movies
            nn.init.normal_(self.history.weight, 0.0, 0.1)
            self.user_id = self._id_table(self.n_users, dim) if user_ids else None
            self.movie_id = self._id_table(self.n_movies, dim) if movie_ids else None
            self.user_tower = nn.Sequential(
                mlp((n_user_in, *hidden), dropout, batch_norm=False), nn.Linear(hidden[-1], dim)
            )
            self.movie_tower = nn.Sequential(
                mlp((n_movie_in, *hidden), dropout, batch_norm=False), nn.Linear(hidden[-1], dim)
            )

    @staticmethod
    def _id_table(n: int, dim: int) -> nn.Embedding:
        """``n`` id rows plus the reserved row ``n`` ("no id"), which starts at zero."""
        table = nn.Embedding(n + 1, dim)
        nn.init.normal_(table.weight, 0.0, 0.1)
        with torch.no_grad():
            table.weight[n] = 0.0
        return table

    def user_features(self, users: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoded side features of user rows ``users``, as the user tower takes them."""
        return self._users(users)

    def _ids(self, table: nn.Embedding, rows: torch.Tensor, keep: torch.Tensor | bool):
        """Embeddings of ``rows``; where ``keep`` is False, and at random while training
        with ``id_dropout``, the reserved row instead."""
        reserved = len(table.weight) - 1
        keep = torch.as_tensor(keep, device=rows.device).expand(rows.shape)
        if self.training and self.id_dropout:
            keep = keep & (torch.rand(rows.shape, device=rows.device) >= self.id_dropout)
        return table(rows.masked_fill(~keep, reserved))

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1) if self.normalize else x

    def user_vectors(
        self,
        bags: torch.Tensor,
        user_features: dict[str, torch.Tensor],
        *,
        users: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The user tower: ``(B, dim)`` query vectors.

        Parameters
        ----------
        bags : tensor (B, n_movies)
            0/1 rows of the movies each user rated (:meth:`mfkit.features.Indexer.bags`);
            an empty bag pools to zeros.
        user_features : dict of tensors
            :meth:`user_features` of known users, or
            :meth:`mfkit.features.SideFeatures.profile` /
            :meth:`~mfkit.features.SideFeatures.encode_users` of new ones.
        users : tensor (B,), optional
            User rows, read only with ``user_ids=True``; ``None`` uses the reserved
            "no id" row (a new user).
        """
        if bags.ndim != 2 or bags.shape[1] != self.n_movies:
            raise ValueError(f"bags must have shape (B, {self.n_movies}), got {tuple(bags.shape)}")
        missing = set(self.side.users) - set(user_features)
        if missing:
            raise KeyError(f"user_features lacks {sorted(missing)}; build it with user_features()")
        n = len(bags)
        if any(len(v) != n for v in user_features.values()):
            raise ValueError(f"user_features must have one row per bag ({n})")
        bags = bags.to(self.history.weight.dtype)
        pooled = bags @ self.history.weight / bags.sum(dim=1, keepdim=True).clamp(min=1)
        return self._user_tower(pooled, user_features, users)

    def _user_tower(
        self,
        pooled: torch.Tensor,
        user_features: dict[str, torch.Tensor],
        users: torch.Tensor | None,
    ) -> torch.Tensor:
        """The user tower from the pooled bags on: features, id, MLP."""
        n = len(pooled)
        parts = [pooled]
        parts += [one_hot(user_features[k], size) for k, size in self._user_sizes.items()]
        parts.append(user_features["age"].unsqueeze(-1))
        if self.user_id is not None:
            if users is None:
                users, keep = torch.zeros(n, dtype=torch.int64, device=pooled.device), False
            else:
                keep = True
            parts.append(self._ids(self.user_id, users, keep))
        return self._out(self.user_tower(torch.cat(parts, dim=1)))

    def movie_vectors(
        self, movies: torch.Tensor | None = None, *, with_ids: bool | torch.Tensor = True
    ) -> torch.Tensor:
        """The movie tower: ``(n, dim)`` vectors of movie rows ``movies`` (default: all).

        ``with_ids=False`` embeds the movies from their year and genres alone,
        through the reserved id row: the vectors of movies the model never trained
        on (new-item cold start). A boolean tensor, one entry per movie, chooses
        movie by movie. Without movie ids in the model, ``with_ids`` changes nothing.
        """
        device = self.movie_year.device
        movies = torch.arange(self.n_movies, device=device) if movies is None else movies
        if movies.ndim != 1:
            raise ValueError(
                f"movies must be a 1-D tensor of rows, got shape {tuple(movies.shape)}"
            )
        parts = [one_hot(self.movie_year[movies], self._year_size), self.movie_genres[movies]]
        if self.movie_id is not None:
            if isinstance(with_ids, torch.Tensor) and with_ids.shape != movies.shape:
                raise ValueError(
                    f"with_ids must be a bool or one bool per movie {tuple(movies.shape)}, "
                    f"got shape {tuple(with_ids.shape)}"
                )
            parts.append(self._ids(self.movie_id, movies, with_ids))
        return self._out(self.movie_tower(torch.cat(parts, dim=1)))

    def forward(
        self, users: torch.Tensor, bags: torch.Tensor, movies: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both towers on a batch: ``(user vectors, movie vectors)``, each ``(B, dim)``.

        ``bags`` are the users' bags, one row per entry of ``users``.
        """
        user_vecs = self.user_vectors(bags, self.user_features(users), users=users)
        return user_vecs, self.movie_vectors(movies)

    def pair_vectors(
        self, users: torch.Tensor, movies: torch.Tensor, bags: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both towers on training pairs, each user's bag *without the pair's movie*.

        The same as ``forward(users, inputs, movies)`` with ``inputs = bags[users]`` and
        ``inputs[k, movies[k]] = 0`` for every pair ``k`` (what
        :func:`mfkit.losses.two_tower_loss` trains on), up to float rounding, but
        cheaper: the bag sums are computed once per *distinct* user of the batch, and
        each pair's movie is then subtracted from its user's sum, instead of copying and
        multiplying a dense ``(B, n_movies)`` bag per pair.

        Parameters
        ----------
        users, movies : tensor (B,)
            User and movie rows of the pairs.
        bags : tensor (n_users, n_movies)
            Every user's bag (:meth:`mfkit.features.Indexer.bags`), row ``u`` for user
            row ``u``; it is not modified.

        Examples
        --------
        >>> from mfkit.data import synthetic_movielens
        >>> from mfkit.features import Indexer, SideFeatures
        >>> ds = synthetic_movielens(10, 12, 40, seed=0)
        >>> model = TwoTower(SideFeatures.from_movielens(ds), dim=4, hidden=(8,), seed=0)
        >>> users, movies, _ = Indexer.from_movielens(ds).tensors(ds.ratings)
        >>> bags = Indexer.from_movielens(ds).bags(ds.ratings)
        >>> inputs = bags[users[:8]]
        >>> inputs[torch.arange(8), movies[:8]] = 0.0
        >>> dense = model(users[:8], inputs, movies[:8])
        >>> cheap = model.pair_vectors(users[:8], movies[:8], bags)
        >>> all(torch.allclose(a, b, atol=1e-6) for a, b in zip(dense, cheap))
        True
        """
        if bags.ndim != 2 or bags.shape[1] != self.n_movies:
            raise ValueError(
                f"bags must be every user's bag, shape (n_users, {self.n_movies}), "
                f"got {tuple(bags.shape)}"
            )
        if users.shape != movies.shape or users.ndim != 1:
            raise ValueError(
                "users and movies must be 1-D and of one length, got shapes "
                f"{tuple(users.shape)} and {tuple(movies.shape)}"
            )
        weight = self.history.weight
        distinct, which = users.unique(return_inverse=True)
        rows = bags[distinct.to(bags.device)].to(weight.device, weight.dtype)
        # index_select, not [which]: its backward adds in a fixed order (reproducible runs)
        sums, sizes = (rows @ weight).index_select(0, which), rows.sum(dim=1)[which]
        inside = bags[users.to(bags.device), movies.to(bags.device)]  # the pair's own movie
        inside = inside.to(weight.device, weight.dtype)  # 1 where it is in the bag: remove it
        sums = sums - inside[:, None] * self.history(movies)
        pooled = sums / (sizes - inside).clamp(min=1)[:, None]
        user_vecs = self._user_tower(pooled, self.user_features(users), users)
        return user_vecs, self.movie_vectors(movies)

    def score_all(
        self, users: torch.Tensor, bags: torch.Tensor, *, with_ids: bool | torch.Tensor = True
    ) -> torch.Tensor:
        """Scores of every movie for each of ``users`` (rows; ``bags`` one row each):
        ``(len(users), n_movies)`` dot products.

        For ranking evaluation: ``lambda rows: model.score_all(rows, bags[rows])`` with
        the training bags is a scorer (:func:`mfkit.evaluation.evaluate_ranking`).
        """
        device = self.history.weight.device
        users, bags = users.to(device), bags.to(device)
        user_vecs = self.user_vectors(bags, self.user_features(users), users=users)
        return user_vecs @ self.movie_vectors(with_ids=with_ids).T
