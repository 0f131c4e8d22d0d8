"""Download, verify, cache and load MovieLens; synthetic data in the same format.

Introduced in chapter 1 (*Exploring MovieLens*).

Where the data comes from, in order:

1. ``$MFKIT_DATA_DIR/<variant>/`` when the environment variable ``MFKIT_DATA_DIR``
   is set (an offline machine, or CI): a folder holding the extracted dataset.
2. Otherwise the official archive is downloaded once with :mod:`pooch`, checked
   against its pinned SHA-256 and size, and extracted into the cache
   (``$MFKIT_CACHE_DIR``, default: the OS cache folder, e.g. ``~/.cache/mfkit``).

Every file is checked against a pinned SHA-256 before it is read, so a
truncated or edited file is reported instead of silently loaded.

Examples
--------
>>> from mfkit.data import load_movielens, load_split
>>> ml = load_movielens("ml-100k")          # doctest: +SKIP
>>> ml.ratings.shape                         # doctest: +SKIP
(100000, 4)
>>> train, test = load_split("u1")           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "GENRES",
    "OCCUPATIONS",
    "SPLITS",
    "VARIANTS",
    "ChecksumError",
    "DataNotFoundError",
    "DownloadError",
    "MovieLens",
    "UnknownSplitError",
    "UnknownVariantError",
    "data_path",
    "load_movielens",
    "load_split",
    "read_movielens",
    "sha256_of",
    "synthetic_movielens",
    "verify",
    "write_movielens",
]

DATA_DIR_ENV = "MFKIT_DATA_DIR"
CACHE_DIR_ENV = "MFKIT_CACHE_DIR"

#: The 19 genre flags of ML-100K, in file order (ML-1M has the same minus "unknown").
GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

#: The 21 occupations of ML-100K (``u.occupation``).
OCCUPATIONS: tuple[str, ...] = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment",
    "executive", "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none",
    "other", "programmer", "retired", "salesman", "scientist", "student", "technician",
    "writer",
)  # fmt: skip

# ML-1M stores occupations as codes 0-20 (its README).
_ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer",
    "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)  # fmt: skip

#: The official train/test splits shipped with ML-100K.
SPLITS: tuple[str, ...] = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


@dataclass(frozen=True)
class Variant:
    """An official MovieLens archive: where it lives and how to check it."""

    name: str
    url: str
    sha256: str
    size: int | None
    #: file name -> (sha256, size in bytes) of the extracted files; ``None`` when
    #: not pinned (then the manifest written at extraction time is used).
    files: dict[str, tuple[str, int]] | None
    layout: str  # "ml-100k" (tab/pipe files) or "ml-1m" ("::" files)
    needed: tuple[str, ...]  # files that load_movielens reads


_ML100K_FILES = {
    "README": ("4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52", 6750),
    "allbut.pl": ("bfc6a75cbd65c74bb38a0b580dbe866af252733dfa9a65a2c4b93258774ee8a3", 716),
    "mku.sh": ("7929735c375e89a04340e34de621bf2ea643cd04b0bcda2c6f458e4be961ae71", 643),
    "u.data": ("06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490", 1979173),
    "u.genre": ("9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb", 202),
    "u.info": ("5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b", 36),
    "u.item": ("553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701", 236344),
    "u.occupation": ("cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d", 193),
    "u.user": ("f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c", 22628),
    "u1.base": ("ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a", 1586544),
    "u1.test": ("18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950", 392629),
    "u2.base": ("6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e", 1583948),
    "u2.test": ("4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3", 395225),
    "u3.base": ("afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d", 1582546),
    "u3.test": ("0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d", 396627),
    "u4.base": ("219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca", 1581878),
    "u4.test": ("7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9", 397295),
    "u5.base": ("a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485", 1581776),
    "u5.test": ("351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634", 397397),
    "ua.base": ("67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2", 1792501),
    "ua.test": ("d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42", 186672),
    "ub.base": ("237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881", 1792476),
    "ub.test": ("d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da", 186697),
}

#: The datasets ``load_movielens`` knows, by name.
VARIANTS: dict[str, Variant] = {
    "ml-100k": Variant(
        name="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size=4_924_029,
        files=_ML100K_FILES,
        layout="ml-100k",
        needed=("u.data", "u.user", "u.item"),
    ),
    "ml-1m": Variant(
        name="ml-1m",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        size=None,
        files=None,
        layout="ml-1m",
        needed=("ratings.dat", "users.dat", "movies.dat"),
    ),
}


# --------------------------------------------------------------------------- errors
class UnknownVariantError(KeyError):
    """Raised for a dataset name that ``mfkit.data`` does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownSplitError(KeyError):
    """Raised for a split name that the dataset does not ship."""

    def __str__(self) -> str:
        return str(self.args[0])


class ChecksumError(ValueError):
    """Raised when a file's size or SHA-256 differs from the pinned value."""


class DataNotFoundError(FileNotFoundError):
    """Raised when the data folder is missing or lacks files."""


class DownloadError(ConnectionError):
    """Raised when the archive cannot be downloaded (no network, server down)."""


def _variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(sorted(VARIANTS))
        raise UnknownVariantError(
            f"unknown MovieLens variant {name!r}; known variants: {known}"
        ) from None


# ------------------------------------------------------------------ verification
def sha256_of(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict[str, tuple[str, int | None]]:
    """Read a ``sha256sum``-style manifest (``<hex>  <name>`` per line)."""
    pins: dict[str, tuple[str, int | None]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            pins[name.strip().lstrip("*")] = (digest.lower(), None)
    return pins


def _write_manifest(folder: Path, manifest: Path) -> None:
    lines = [f"{sha256_of(p)}  {p.name}" for p in sorted(folder.iterdir()) if p.is_file()]
    manifest.write_text("\n".join(lines) + "\n")


_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def _verify(folder: Path, names: Iterable[str], pins: dict, fix: str) -> None:
    """Check that each file exists and matches its pin; raise a clear error if not."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataNotFoundError(f"{folder} is missing {', '.join(missing)}. {fix}")
    for name in names:
        if name not in pins:
            continue
        expected, size = pins[name]
        path = folder / name
        stat = path.stat()
        if size is not None and stat.st_size != size:
            raise ChecksumError(
                f"{path} has {stat.st_size:,} bytes, expected {size:,} "
                f"(the file is truncated or edited). {fix}"
            )
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _verified:
            _verified[key] = sha256_of(path)
        if _verified[key] != expected:
            raise ChecksumError(
                f"{path} failed its checksum: expected sha256 {expected}, "
                f"got {_verified[key]} (the file is corrupt or edited). {fix}"
            )


# ------------------------------------------------------------------ locating data
def _cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    import pooch

    return Path(pooch.os_cache("mfkit"))


def _download(variant: Variant, cache: Path, progress: bool) -> Path:
    """Download and check the official archive with pooch; return the zip's path."""
    import pooch
    import requests

    cache.mkdir(parents=True, exist_ok=True)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=60)
    fallback = (
        f"Download {variant.url} by hand, extract it into a folder DIR (so that "
        f"DIR/{variant.name}/ holds its files) and set {DATA_DIR_ENV}=DIR."
    )
    try:
        zip_path = pooch.retrieve(
            variant.url,
            known_hash=f"sha256:{variant.sha256}",
            fname=f"{variant.name}.zip",
            path=cache,
            downloader=downloader,
            progressbar=progress,
        )
    except requests.exceptions.RequestException as err:
        raise DownloadError(
            f"could not download {variant.url} ({type(err).__name__}: {err}). "
            f"Is the network reachable? {fallback}"
        ) from err
    except ValueError as err:  # pooch: hash mismatch
        raise ChecksumError(
            f"the downloaded {variant.name}.zip does not match the pinned sha256 "
            f"{variant.sha256}: {err}. {fallback}"
        ) from err
    size = Path(zip_path).stat().st_size
    if variant.size is not None and size != variant.size:
        raise ChecksumError(f"{zip_path} has {size:,} bytes, expected {variant.size:,}. {fallback}")
    return Path(zip_path)


def data_path(variant: str = "ml-100k", *, progress: bool = True) -> Path:
    """Return the folder holding the extracted ``variant``, downloading it if needed.

    Uses ``$MFKIT_DATA_DIR/<variant>`` when ``MFKIT_DATA_DIR`` is set, else the
    cache (download once, check SHA-256 and size, extract).
    """
    spec = _variant(variant)
    if os.environ.get(DATA_DIR_ENV):
        root = Path(os.environ[DATA_DIR_ENV]).expanduser()
        folder = root / spec.name
        if not folder.is_dir():
            raise DataNotFoundError(
                f"{DATA_DIR_ENV}={root} has no {spec.name}/ folder. Extract the official "
                f"{spec.name}.zip there, or unset {DATA_DIR_ENV} to download into the cache."
            )
        return folder
    cache = _cache_dir()
    folder = cache / spec.name
    manifest = cache / f"{spec.name}.sha256"
    if not (folder.is_dir() and all((folder / n).is_file() for n in spec.needed)):
        zip_path = _download(spec, cache, progress)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(cache)
        if spec.files is None:  # pin what came out of the verified archive
            _write_manifest(folder, manifest)
    return folder


def _pins(spec: Variant, folder: Path) -> dict:
    """Per-file pins: built into mfkit, else the manifest beside the folder."""
    if spec.files is not None:
        return spec.files
    manifest = folder.parent / f"{spec.name}.sha256"
    if manifest.is_file():
        return _read_manifest(manifest)
    import warnings

    warnings.warn(
        f"no checksums for {folder} (mfkit pins none for {spec.name} and there is no "
        f"{manifest.name} beside it); its files are loaded unverified",
        stacklevel=3,
    )
    return {}


def _fix_hint(spec: Variant, folder: Path) -> str:
    if os.environ.get(DATA_DIR_ENV):
        return (
            f"Re-extract the official {spec.name}.zip into {folder.parent} "
            f"({DATA_DIR_ENV}), or unset {DATA_DIR_ENV} to download it."
        )
    return f"Delete {folder} and run again to download it afresh."


def _checked_folder(variant: str, names: Iterable[str], progress: bool) -> Path:
    spec = _variant(variant)
    folder = data_path(variant, progress=progress)
    _verify(folder, list(names), _pins(spec, folder), _fix_hint(spec, folder))
    return folder


def verify(variant: str = "ml-100k", *, progress: bool = True) -> list[str]:
    """Check every file of ``variant`` that has a pinned checksum; return their names.

    Raises :class:`ChecksumError` or :class:`DataNotFoundError` on the first bad file.
    """
    spec = _variant(variant)
    folder = data_path(variant, progress=progress)
    names = sorted(_pins(spec, folder)) or list(spec.needed)
    _verify(folder, names, _pins(spec, folder), _fix_hint(spec, folder))
    return names


# ------------------------------------------------------------------------ loading
@dataclass
class MovieLens:
    """A MovieLens dataset as three frames.

    Attributes
    ----------
    ratings : pandas.DataFrame
        ``user_id, movie_id, rating, timestamp`` (Unix seconds), one row per rating.
    users : pandas.DataFrame
        ``user_id, age, gender, occupation, zip_code``.
    movies : pandas.DataFrame
        ``movie_id, title, release_date, year`` and one 0/1 column per genre in
        :data:`GENRES`.
    name : str
        ``"ml-100k"``, ``"ml-1m"`` or ``"synthetic"``.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    name: str = "ml-100k"

    @property
    def genres(self) -> list[str]:
        """The genre columns of :attr:`movies`."""
        return [g for g in GENRES if g in self.movies.columns]

    def __repr__(self) -> str:
        return (
            f"MovieLens({self.name!r}: {len(self.ratings):,} ratings, "
            f"{len(self.users):,} users, {len(self.movies):,} movies)"
        )


_RATING_COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]


def _read_ratings(path: Path, sep: str) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep=sep,
        names=_RATING_COLUMNS,
        engine="python" if len(sep) > 1 else "c",
        dtype="int64",
    )


def _year_from_title(titles: pd.Series) -> pd.Series:
    return titles.str.extract(r"\((\d{4})\)\s*$")[0].astype("Int64")


def _read_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_ratings(folder / "u.data", "\t")
    users = pd.read_csv(
        folder / "u.user",
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"zip_code": str},
    )
    item_columns = ["movie_id", "title", "release_date", "video_release_date", "imdb_url"]
    movies = pd.read_csv(
        folder / "u.item",
        sep="|",
        names=item_columns + list(GENRES),
        encoding="latin-1",
        keep_default_na=False,
    )
    movies["release_date"] = pd.to_datetime(
        movies["release_date"], format="%d-%b-%Y", errors="coerce"
    )
    year = movies["release_date"].dt.year.astype("Int64")
    movies["year"] = year.fillna(_year_from_title(movies["title"]))
    movies = movies[["movie_id", "title", "release_date", "year", *GENRES]]
    return ratings, users, movies


def _read_ml1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_ratings(folder / "ratings.dat", "::")
    users = pd.read_csv(
        folder / "users.dat",
        sep="::",
        engine="python",
        names=["user_id", "gender", "age", "occupation", "zip_code"],
        dtype={"zip_code": str},
    )
    users["occupation"] = users["occupation"].map(dict(enumerate(_ML1M_OCCUPATIONS)))
    users = users[["user_id", "age", "gender", "occupation", "zip_code"]]
    raw = pd.read_csv(
        folder / "movies.dat",
        sep="::",
        engine="python",
        names=["movie_id", "title", "genres"],
        encoding="latin-1",
    )
    flags = raw["genres"].str.get_dummies(sep="|").reindex(columns=GENRES, fill_value=0)
    flags["unknown"] = (flags.sum(axis=1) == 0).astype("int64")
    year = _year_from_title(raw["title"])
    movies = pd.DataFrame(
        {
            "movie_id": raw["movie_id"],
            "title": raw["title"],
            "release_date": pd.to_datetime(year.astype("string"), format="%Y", errors="coerce"),
            "year": year,
        }
    )
    movies = pd.concat([movies, flags.astype("int64")], axis=1)
    return ratings, users, movies


def read_movielens(folder: str | os.PathLike, layout: str = "ml-100k") -> MovieLens:
    """Read an extracted MovieLens folder *without* checking checksums.

    ``layout`` is ``"ml-100k"`` (``u.data``, ``u.user``, ``u.item``) or ``"ml-1m"``
    (``ratings.dat``, ``users.dat``, ``movies.dat``). Prefer :func:`load_movielens`,
    which verifies the files first; this is for your own folders, e.g. one written
    by :func:`write_movielens`.
    """
    folder = Path(folder)
    readers = {"ml-100k": _read_ml100k, "ml-1m": _read_ml1m}
    if layout not in readers:
        raise ValueError(f"unknown layout {layout!r}; use 'ml-100k' or 'ml-1m'")
    needed = _variant(layout).needed
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        raise DataNotFoundError(f"{folder} is missing {', '.join(missing)}")
    ratings, users, movies = readers[layout](folder)
    return MovieLens(ratings, users, movies, name=folder.name)


def load_movielens(variant: str = "ml-100k", *, progress: bool = True) -> MovieLens:
    """Load a MovieLens dataset, downloading and verifying it if needed.

    Parameters
    ----------
    variant : {"ml-100k", "ml-1m"}
        Which dataset. ML-1M is downloaded only when asked for.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    MovieLens
        ``.ratings``, ``.users`` and ``.movies`` frames.

    Raises
    ------
    UnknownVariantError, DataNotFoundError, ChecksumError, DownloadError
    """
    spec = _variant(variant)
    folder = _checked_folder(variant, spec.needed, progress)
    ds = read_movielens(folder, spec.layout)
    ds.name = spec.name
    return ds


def load_split(
    name: str, variant: str = "ml-100k", *, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the official ``(train, test)`` ratings of split ``name``.

    ML-100K ships ``u1`` to ``u5`` (five disjoint 80/20 folds for cross-validation)
    and ``ua``/``ub`` (exactly 10 test ratings per user).

    Examples
    --------
    >>> train, test = load_split("u1")   # doctest: +SKIP
    >>> len(train), len(test)            # doctest: +SKIP
    (80000, 20000)
    """
    if _variant(variant).layout != "ml-100k":
        raise UnknownSplitError(f"{variant} ships no official splits; use mfkit.splits to make one")
    if name not in SPLITS:
        raise UnknownSplitError(
            f"unknown split {name!r} for {variant}; known splits: {', '.join(SPLITS)}"
        )
    files = (f"{name}.base", f"{name}.test")
    folder = _checked_folder(variant, files, progress)
    return tuple(_read_ratings(folder / f, "\t") for f in files)  # type: ignore[return-value]


# ---------------------------------------------------------------------- synthetic
def _unique_pairs(
    rng: np.random.Generator, user_p: np.ndarray, movie_p: np.ndarray, n: int
) -> np.ndarray:
    """Draw ``n`` distinct (user, movie) index pairs, popular ones more often."""
    n_users, n_movies = len(user_p), len(movie_p)
    keys = np.empty(0, dtype=np.int64)
    weighted = True
    while len(keys) < n:
        need = n - len(keys)
        draw = int(need * 1.3) + 16
        if weighted:
            u = rng.choice(n_users, size=draw, p=user_p)
            m = rng.choice(n_movies, size=draw, p=movie_p)
        else:  # the popular cells are used up: fill the rest uniformly
            u = rng.integers(0, n_users, size=draw)
            m = rng.integers(0, n_movies, size=draw)
        before = len(keys)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_movies + m]))
        weighted = weighted and (len(keys) - before) > need // 4
    keys = rng.choice(keys, size=n, replace=False)
    return np.stack([keys // n_movies, keys % n_movies], axis=1)


def synthetic_movielens(
    n_users: int = 100,
    n_movies: int = 200,
    n_ratings: int = 2_000,
    *,
    rank: int = 4,
    seed: int = 0,
) -> MovieLens:
    """Make a MovieLens-shaped dataset of any size from a low-rank model.

    Users and movies get long-tailed activity/popularity, ratings are
    ``round(3.5 + biases + <u_i, v_j> + noise)`` clipped to 1..5, timestamps span
    seven months of 1997-98, and users/movies have ML-100K-style side features.
    The same ``seed`` gives the same frames.

    Examples
    --------
    >>> ds = synthetic_movielens(50, 80, 400, seed=1)
    >>> ds.ratings.shape, len(ds.users), len(ds.movies)
    ((400, 4), 50, 80)
    """
    for label, value in (("n_users", n_users), ("n_movies", n_movies), ("rank", rank)):
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value}")
    if not 0 <= n_ratings <= n_users * n_movies:
        raise ValueError(
            f"n_ratings must be between 0 and n_users * n_movies = {n_users * n_movies}, "
            f"got {n_ratings}"
        )
    rng = np.random.default_rng(seed)
    user_p = rng.lognormal(0.0, 1.0, n_users)
    user_p /= user_p.sum()
    movie_p = 1.0 / (rng.permutation(n_movies) + 5.0)  # Zipf-like popularity
    movie_p /= movie_p.sum()
    pairs = _unique_pairs(rng, user_p, movie_p, n_ratings)
    u, m = pairs[:, 0], pairs[:, 1]

    scale = 1.0 / np.sqrt(rank)
    user_f = rng.normal(0, 1, (n_users, rank)) * scale
    movie_f = rng.normal(0, 1, (n_movies, rank)) * scale
    score = (
        3.5
        + rng.normal(0, 0.4, n_users)[u]
        + rng.normal(0, 0.5, n_movies)[m]
        + np.einsum("ij,ij->i", user_f[u], movie_f[m])
        + rng.normal(0, 0.6, n_ratings)
    )
    start = 874_724_710  # 1997-09-20, as in ML-100K
    ratings = pd.DataFrame(
        {
            "user_id": u + 1,
            "movie_id": m + 1,
            "rating": np.clip(np.rint(score), 1, 5).astype(np.int64),
            "timestamp": rng.integers(start, start + 214 * 86_400, n_ratings),
        }
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1),
            "age": rng.integers(7, 74, n_users),
            "gender": rng.choice(["M", "F"], n_users, p=[0.71, 0.29]),
            "occupation": rng.choice(OCCUPATIONS, n_users),
            "zip_code": [f"{z:05d}" for z in rng.integers(0, 100_000, n_users)],
        }
    )
    years = rng.integers(1930, 1999, n_movies)
    release = pd.to_datetime([f"{y}-01-01" for y in years])
    flags = np.zeros((n_movies, len(GENRES)), dtype=np.int64)
    for j in range(n_movies):  # 1-3 genres per movie, never "unknown"
        flags[j, rng.choice(np.arange(1, len(GENRES)), rng.integers(1, 4), replace=False)] = 1
    movies = pd.DataFrame(
        {
            "movie_id": np.arange(1, n_movies + 1),
            "title": [f"Synthetic Movie {j} ({y})" for j, y in enumerate(years, 1)],
            "release_date": release,
            "year": pd.array(years, dtype="Int64"),
        }
    )
    movies = pd.concat([movies, pd.DataFrame(flags, columns=list(GENRES))], axis=1)
    return MovieLens(ratings, users, movies, name="synthetic")


def write_movielens(ds: MovieLens, folder: str | os.PathLike) -> Path:
    """Write ``ds`` in the ML-100K file format (``u.data``, ``u.user``, ``u.item``).

    Handy to test code that reads files, on synthetic data; read it back with
    :func:`read_movielens`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ds.ratings[_RATING_COLUMNS].to_csv(folder / "u.data", sep="\t", header=False, index=False)
    ds.users[["user_id", "age", "gender", "occupation", "zip_code"]].to_csv(
        folder / "u.user", sep="|", header=False, index=False
    )
    items = ds.movies[["movie_id", "title"]].copy()
    items["release_date"] = ds.movies["release_date"].dt.strftime("%d-%b-%Y").fillna("")
    items["video_release_date"] = ""
    items["imdb_url"] = ""
    items = pd.concat([items, ds.movies[list(GENRES)]], axis=1)
    items.to_csv(folder / "u.item", sep="|", header=False, index=False, encoding="latin-1")
    return folder
