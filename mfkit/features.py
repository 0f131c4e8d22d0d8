"""Turn MovieLens frames into model inputs: ids to row indices, ratings to tensors.

Introduced in chapter 2 (*Matrix factorization*): an embedding table has one row
per user (or movie), so raw ids such as ``movie_id`` must become contiguous row
indices ``0..n-1``. :class:`IdIndex` does that mapping in both directions and
refuses ids it has never seen, instead of silently reading a wrong row.

Chapter 6 adds :class:`SideFeatures`: who the users are (age, gender, occupation,
zip code) and what the movies are (year, genres) as codes and flags, with a
reserved *unknown* code so a category never seen in training cannot crash a model.

Examples
--------
>>> movies = IdIndex([10, 20, 30])
>>> movies.index([30, 10]).tolist(), movies.ids_of([1]).tolist()
([2, 0], [20])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mfkit.data import GENRES
from mfkit.splits import MissingColumnsError

__all__ = [
    "AGE_GROUPS",
    "IdIndex",
    "Indexer",
    "SideFeatures",
    "UnknownCategoryError",
    "UnknownIdError",
    "Vocabulary",
    "rating_tensors",
    "require_columns",
]


class UnknownIdError(KeyError):
    """Raised for ids that an :class:`IdIndex` does not contain."""

    def __str__(self) -> str:
        return str(self.args[0])


class IdIndex:
    """A bijection between raw ids and row indices ``0..len-1`` (in the given order).

    Parameters
    ----------
    ids : iterable of int
        The known ids, without duplicates, e.g. ``ml.movies["movie_id"]``.
    name : str
        What the ids are ("user", "movie"), used in error messages.
    """

    def __init__(self, ids: Iterable[int], name: str = "id") -> None:
        self.ids = pd.Index(ids)
        self.name = name
        if self.ids.has_duplicates:
            dupes = self.ids[self.ids.duplicated()].unique()[:5].tolist()
            raise ValueError(f"{name} ids must be unique; repeated: {dupes}")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item: object) -> bool:
        return item in self.ids

    def __repr__(self) -> str:
        return f"IdIndex({len(self)} {self.name} ids)"

    def index(self, ids: Iterable[int] | int) -> np.ndarray:
        """Row indices of ``ids``; :class:`UnknownIdError` names any unknown id."""
        values = np.atleast_1d(np.asarray(ids))
        rows = self.ids.get_indexer(values)
        if (rows < 0).any():
            unknown = pd.unique(values[rows < 0])
            shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
            raise UnknownIdError(
                f"unknown {self.name} id(s): {shown} ({len(unknown)} in all); "
                f"known {self.name} ids run from {self.ids.min()} to {self.ids.max()} "
                f"({len(self)} ids)"
            )
        return rows.astype(np.int64)

    def ids_of(self, rows: Iterable[int] | int) -> np.ndarray:
        """The ids at row indices ``rows`` (the inverse of :meth:`index`)."""
        rows = np.atleast_1d(np.asarray(rows))
        if not len(rows):  # np.asarray([]) is float64, which cannot index
            rows = rows.astype(np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row indices must lie in 0..{len(self) - 1}")
        return self.ids.to_numpy()[rows]


def rating_tensors(
    ratings: pd.DataFrame, users: IdIndex, movies: IdIndex
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(user_rows, movie_rows, ratings)`` tensors (int64, int64, float32).

    Examples
    --------
    >>> frame = pd.DataFrame({"user_id": [7, 5], "movie_id": [30, 10], "rating": [4, 1]})
    >>> u, m, r = rating_tensors(frame, IdIndex([5, 7]), IdIndex([10, 20, 30]))
    >>> u.tolist(), m.tolist(), r.tolist()
    ([1, 0], [2, 0], [4.0, 1.0])
    """
    require_columns(ratings, ("user_id", "movie_id", "rating"), "ratings")
    return (
        torch.from_numpy(users.index(ratings["user_id"].to_numpy())),
        torch.from_numpy(movies.index(ratings["movie_id"].to_numpy())),
        torch.tensor(ratings["rating"].to_numpy(), dtype=torch.float32),  # a copy
    )


@dataclass(frozen=True)
class Indexer:
    """The user and movie :class:`IdIndex` of a dataset, plus movie titles.

    Row ``i`` of a model's user table is ``users.ids_of(i)``; likewise for movies.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ds = synthetic_movielens(5, 8, 20, seed=0)
    >>> idx = Indexer.from_movielens(ds)
    >>> idx.n_users, idx.n_movies
    (5, 8)
    >>> [t.shape[0] for t in idx.tensors(ds.ratings)]
    [20, 20, 20]
    """

    users: IdIndex
    movies: IdIndex
    titles: np.ndarray

    @classmethod
    def from_movielens(cls, ml) -> Indexer:
        """Rows in the order of ``ml.users`` and ``ml.movies``."""
        if not all(hasattr(ml, name) for name in ("users", "movies")):
            raise TypeError(
                f"from_movielens takes a MovieLens dataset (mfkit.data.load_movielens), got "
                f"a {type(ml).__name__}; for a table of interactions use "
                "Indexer.from_interactions"
            )
        return cls(
            IdIndex(ml.users["user_id"], "user"),
            IdIndex(ml.movies["movie_id"], "movie"),
            ml.movies["title"].to_numpy(),
        )

    @classmethod
    def from_interactions(
        cls, interactions: pd.DataFrame, titles: pd.Series | None = None
    ) -> Indexer:
        """Users and items from an interaction table alone (``user_id, movie_id``).

        Ids of any hashable type (numbers, strings), rows in sorted id order (in order
        of first appearance where ids do not sort). ``titles`` maps item ids to names;
        without it an item's title is its id as text. For a table with other column
        names, see :class:`mfkit.tables.Columns`.

        Examples
        --------
        >>> table = pd.DataFrame({"user_id": ["u2", "u1"], "movie_id": [30, 10]})
        >>> idx = Indexer.from_interactions(table)
        >>> idx.users.ids.tolist(), idx.titles.tolist()
        (['u1', 'u2'], ['10', '30'])
        """
        require_columns(interactions, ("user_id", "movie_id"), "interactions")

        def ids(column: str) -> pd.Index:
            unique = pd.Index(pd.unique(interactions[column]))
            try:
                return unique.sort_values()
            except TypeError:  # ids of mixed types: keep the order of first appearance
                return unique

        users, items = ids("user_id"), ids("movie_id")
        if titles is None:
            names = items.astype(str).to_numpy(dtype=object)
        else:
            missing = items.difference(titles.index)
            if len(missing):
                raise UnknownIdError(f"titles lacks item id(s) {missing[:5].tolist()}")
            names = titles.reindex(items).to_numpy(dtype=object)
        return cls(IdIndex(users, "user"), IdIndex(items, "item"), names)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    def tensors(self, ratings: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`rating_tensors` with this indexer's users and movies."""
        return rating_tensors(ratings, self.users, self.movies)

    def pairs(self, interactions: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """``(user_rows, movie_rows)`` int64 tensors of a frame of ``user_id, movie_id`` pairs.

        Like :meth:`tensors` without the ratings, for implicit feedback.

        Examples
        --------
        >>> idx = Indexer(IdIndex([5, 7]), IdIndex([10, 20, 30]), np.array(["a", "b", "c"]))
        >>> users, movies = idx.pairs(pd.DataFrame({"user_id": [7, 5], "movie_id": [30, 10]}))
        >>> users.tolist(), movies.tolist()
        ([1, 0], [2, 0])
        """
        require_columns(interactions, ("user_id", "movie_id"), "ratings")
        users = torch.from_numpy(self.users.index(interactions["user_id"].to_numpy()))
        return users, torch.from_numpy(self.movies.index(interactions["movie_id"].to_numpy()))

    def bags(self, ratings: pd.DataFrame) -> torch.Tensor:
        """The rated movies of every user as a 0/1 matrix ``(n_users, n_movies)``.

        Row ``i`` is the "bag of movies" that user ``i`` rated in ``ratings``: the
        input of the softmax model (chapter 5), and the interaction matrix ``X`` of
        the ranking models (chapter 8). Only the ``user_id`` and ``movie_id`` columns
        are read, so implicit interactions (:func:`mfkit.sampling.implicit`) work too.
        Dense float32, 4 bytes a cell (6 MB for ML-100K).

        Examples
        --------
        >>> from mfkit.data import synthetic_movielens
        >>> ds = synthetic_movielens(3, 4, 6, seed=0)
        >>> idx = Indexer.from_movielens(ds)
        >>> bags = idx.bags(ds.ratings)
        >>> bags.shape, int(bags.sum())
        (torch.Size([3, 4]), 6)
        """
        users, movies = self.pairs(ratings)
        bags = torch.zeros(self.n_users, self.n_movies)
        bags[users, movies] = 1.0
        return bags


# ------------------------------------------------------------------ side features
#: Age groups (lower bounds) of the feature models, as ML-1M buckets ages:
#: under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56 and over.
AGE_GROUPS: tuple[int, ...] = (0, 18, 25, 35, 45, 50, 56)


class UnknownCategoryError(ValueError):
    """Raised by :meth:`SideFeatures.profile` for a value outside a vocabulary."""


class Vocabulary:
    """Categories to codes ``1..n``; code 0 means *unknown*.

    A value never seen when the vocabulary was built (or seen fewer than
    ``min_count`` times, or missing) encodes as 0 instead of raising, so a new
    zip code or a typo cannot crash a model; the models turn code 0 into a zero
    vector, "no information".

    Examples
    --------
    >>> vocab = Vocabulary(["M", "F", "M"], "gender")
    >>> vocab.values, len(vocab)
    (('F', 'M'), 3)
    >>> vocab.encode(["M", "X", None]).tolist()
    [2, 0, 0]
    """

    def __init__(self, values: Iterable, name: str, *, min_count: int = 1) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counts = pd.Series(list(values), dtype=object).dropna().astype(str).value_counts()
        self.values: tuple[str, ...] = tuple(sorted(counts.index[counts >= min_count]))
        self.name = name
        self._index = pd.Index(self.values)

    def __len__(self) -> int:
        """Number of codes, including 0 for unknown."""
        return len(self.values) + 1

    def __contains__(self, value: object) -> bool:
        return str(value) in self._index

    def __repr__(self) -> str:
        return f"Vocabulary({self.name!r}, {len(self.values)} values + unknown)"

    def encode(self, values: Iterable) -> np.ndarray:
        """Codes of ``values`` (int64); unknown or missing values get 0."""
        series = pd.Series(list(values), dtype=object)
        text = series.where(series.isna(), series.astype(str))
        return (self._index.get_indexer(text) + 1).astype(np.int64)


def _zip_prefix(zip_codes: Iterable, digits: int) -> list[str | None]:
    """The first ``digits`` characters of US zip codes; None for non-numeric ones."""
    out: list[str | None] = []
    for code in zip_codes:
        text = "" if code is None or pd.isna(code) else str(code).strip()
        out.append(text[:digits] if text[:digits].isdigit() and len(text) >= digits else None)
    return out


class SideFeatures:
    """Encode who the users are and what the movies are, for the feature models.

    Introduced in chapter 6. Built from the ``users`` and ``movies`` frames of a
    :class:`~mfkit.data.MovieLens`; the rows of its encoded ``users`` and ``movies``
    follow the rows of those frames, as :meth:`Indexer.from_movielens` does, so
    row ``i`` of a model's tables is the same user everywhere.

    Users: ``gender``, ``occupation``, ``age_group`` (:data:`AGE_GROUPS`) and
    ``zip`` (the first ``zip_digits`` digits: 1 is a region of the US, 3 an area
    of a city) as codes, and ``age`` standardised. Movies: release ``year`` as a
    code and ``genres`` as a multi-hot row. Values never seen here (and zip
    prefixes shared by fewer than ``min_count`` users) encode as 0, *unknown*.

    Parameters
    ----------
    users, movies : DataFrame
        As in :class:`~mfkit.data.MovieLens`.
    zip_digits : int
        How many leading digits of the zip code to keep (1-5).
    min_count : int
        Zip prefixes with fewer users are *unknown*: an embedding for a prefix
        that one user has is a user id in disguise.
    known_users : iterable of int, optional
        Build the vocabularies and the age scaling from these ``user_id`` s only,
        e.g. the users of the training ratings; a category that only held-out
        users have is then *unknown* to the model, as it would be for a real
        newcomer. Default: all users.

    Examples
    --------
    >>> from mfkit.data import synthetic_movielens
    >>> ds = synthetic_movielens(20, 30, 100, seed=0)
    >>> side = SideFeatures(ds.users, ds.movies)
    >>> side.users["occupation"].shape, side.movies["genres"].shape
    (torch.Size([20]), torch.Size([30, 19]))
    >>> new = side.profile(age=24, gender="M", occupation="student", zip_code="10003")
    >>> int(new["age_group"])
    2
    """

    USER_COLUMNS = ("age", "gender", "occupation", "zip_code")

    def __init__(
        self,
        users: pd.DataFrame,
        movies: pd.DataFrame,
        *,
        zip_digits: int = 1,
        min_count: int = 1,
        known_users: Iterable[int] | None = None,
    ) -> None:
        if not 1 <= zip_digits <= 5:
            raise ValueError(f"zip_digits must be between 1 and 5, got {zip_digits}")
        require_columns(users, self.USER_COLUMNS, "users")
        require_columns(movies, ("year",), "movies")
        self.zip_digits = zip_digits
        self.genres: tuple[str, ...] = tuple(g for g in GENRES if g in movies.columns)
        known = users if known_users is None else users[users["user_id"].isin(list(known_users))]
        if known.empty:
            raise ValueError("known_users matches no user_id of users")
        self.vocab = {
            "gender": Vocabulary(known["gender"], "gender"),
            "occupation": Vocabulary(known["occupation"], "occupation"),
            "zip": Vocabulary(
                _zip_prefix(known["zip_code"], zip_digits), "zip", min_count=min_count
            ),
            "year": Vocabulary(movies["year"].astype("Int64").astype("string"), "year"),
        }
        age = known["age"].astype(float).dropna()
        self.age_mean = float(age.mean()) if len(age) else 0.0
        self.age_std = (float(age.std(ddof=0)) if len(age) else 0.0) or 1.0
        self.users = self.encode_users(users)
        self.movies = self.encode_movies(movies)

    @classmethod
    def from_movielens(cls, ml, **kwargs) -> SideFeatures:
        """Side features of ``ml.users`` and ``ml.movies``, rows as in :class:`Indexer`."""
        return cls(ml.users, ml.movies, **kwargs)

    @classmethod
    def for_indexer(
        cls,
        users: pd.DataFrame | None,
        movies: pd.DataFrame | None,
        indexer: Indexer,
        *,
        user_key: str = "user_id",
        item_key: str = "movie_id",
        **kwargs,
    ) -> SideFeatures:
        """Side features keyed by id, put in ``indexer``'s row order and checked.

        ``users`` needs a ``user_key`` column and ``movies`` an ``item_key`` column
        (your own ids, as in the interactions), one row per id, in any order: row
        ``i`` of the result is ``indexer``'s user (movie) ``i``. An id the indexer
        knows but a table lacks, an id twice, or a non-numeric age, year or genre
        flag is an error; rows of ids the indexer does not know are dropped.
        ``None`` for a table means no features of that side: every user (movie)
        is then *unknown* in each feature, and the models learn from ids and
        histories alone. ``kwargs`` go to the constructor.

        Examples
        --------
        >>> import pandas as pd
        >>> clicks = pd.DataFrame({"user_id": ["a", "b"], "movie_id": ["x", "y"]})
        >>> side = SideFeatures.for_indexer(None, None, Indexer.from_interactions(clicks))
        >>> side.sizes
        {'gender': 1, 'occupation': 1, 'zip': 1, 'year': 1, 'age_group': 8, 'genres': 0}
        """
        aligned = []
        for table, key, ids, what, numeric in (
            (users, user_key, indexer.users, "user", ("age",)),
            (movies, item_key, indexer.movies, "movie", ("year",)),
        ):
            if table is None:
                unknown = dict.fromkeys(cls.USER_COLUMNS if what == "user" else ("year",), np.nan)
                aligned.append(pd.DataFrame({f"{what}_id": ids.ids, **unknown}))
                continue
            require_columns(table, (key,), f"the {what} table")
            repeated = table[key][table[key].duplicated()].unique()[:5].tolist()
            if repeated:
                raise ValueError(f"the {what} table has {key} more than once: {repeated}")
            flags = [g for g in GENRES if g in table.columns] if what == "movie" else []
            for column in [c for c in (*numeric, *flags) if c in table.columns]:
                if not pd.api.types.is_numeric_dtype(table[column]):
                    raise TypeError(
                        f"the {what} table's {column!r} column must be numeric, "
                        f"got {table[column].dtype}"
                    )
            keyed = table.set_index(key)
            missing = ids.ids.difference(keyed.index)
            if len(missing):
                raise UnknownIdError(
                    f"the {what} table lacks {len(missing)} {key}(s) the indexer knows, "
                    f"e.g. {missing[:5].tolist()}"
                )
            aligned.append(keyed.loc[ids.ids].reset_index(names=f"{what}_id"))
        return cls(*aligned, **kwargs)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of codes of each categorical feature (0 = unknown included)."""
        sizes = {name: len(vocab) for name, vocab in self.vocab.items()}
        return {**sizes, "age_group": len(AGE_GROUPS) + 1, "genres": len(self.genres)}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        n_users, n_movies = len(self.users["age"]), len(self.movies["year"])
        return f"SideFeatures({n_users} users, {n_movies} movies; {sizes})"

    def encode_users(self, users: pd.DataFrame) -> dict[str, torch.Tensor]:
        """Codes (int64) and standardised age (float32) of each row of ``users``.

        A missing age gets age group 0 (*unknown*) and the average age.
        """
        require_columns(users, self.USER_COLUMNS, "users")
        age = users["age"].to_numpy(dtype=float)
        missing = np.isnan(age)
        groups = np.where(missing, 0, np.searchsorted(AGE_GROUPS, age, side="right"))
        standardised = np.where(missing, 0.0, (age - self.age_mean) / self.age_std)
        return {
            "gender": torch.from_numpy(self.vocab["gender"].encode(users["gender"])),
            "occupation": torch.from_numpy(self.vocab["occupation"].encode(users["occupation"])),
            "age_group": torch.from_numpy(groups.astype(np.int64)),
            "zip": torch.from_numpy(
                self.vocab["zip"].encode(_zip_prefix(users["zip_code"], self.zip_digits))
            ),
            "age": torch.tensor(standardised, dtype=torch.float32),
        }

    def encode_movies(self, movies: pd.DataFrame) -> dict[str, torch.Tensor]:
        """Release-year codes (int64) and genre flags (float32) of each row of ``movies``."""
        require_columns(movies, ("year", *self.genres), "movies")
        year = movies["year"].astype("Int64").astype("string")
        return {
            "year": torch.from_numpy(self.vocab["year"].encode(year)),
            "genres": torch.tensor(movies[list(self.genres)].to_numpy(dtype=np.float32)),
        }

    def profile(
        self, *, age: int, gender: str, occupation: str, zip_code: str = ""
    ) -> dict[str, torch.Tensor]:
        """Encode one brand-new user, checking every answer.

        Unlike :meth:`encode_users`, which is lenient, this raises
        :class:`UnknownCategoryError` for a gender or occupation outside the
        vocabulary (listing the valid ones) and ``ValueError`` for an age outside
        1-120. An unknown zip code is allowed: it encodes as *unknown*.
        """
        if isinstance(age, bool) or not isinstance(age, int | np.integer) or not 1 <= age <= 120:
            raise ValueError(f"age must be a whole number of years from 1 to 120, got {age!r}")
        for name, value in (("gender", gender), ("occupation", occupation)):
            if value not in self.vocab[name]:
                valid = ", ".join(self.vocab[name].values)
                raise UnknownCategoryError(f"unknown {name} {value!r}; choose one of: {valid}")
        frame = pd.DataFrame(
            {"age": [age], "gender": [gender], "occupation": [occupation], "zip_code": [zip_code]}
        )
        return self.encode_users(frame)

    def state(self) -> dict:
        """Everything needed to rebuild this object: plain lists, numbers and tensors."""
        return {
            "zip_digits": self.zip_digits,
            "genres": list(self.genres),
            "vocab": {name: list(v.values) for name, v in self.vocab.items()},
            "age": [self.age_mean, self.age_std],
            "users": self.users,
            "movies": self.movies,
        }

    @classmethod
    def from_state(cls, state: dict) -> SideFeatures:
        """The inverse of :meth:`state`."""
        side = cls.__new__(cls)
        side.zip_digits = int(state["zip_digits"])
        side.genres = tuple(state["genres"])
        side.vocab = {name: Vocabulary(values, name) for name, values in state["vocab"].items()}
        side.age_mean, side.age_std = (float(x) for x in state["age"])
        side.users, side.movies = dict(state["users"]), dict(state["movies"])
        return side


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """:class:`~mfkit.splits.MissingColumnsError` naming the ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingColumnsError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
