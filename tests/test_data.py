"""mfkit.data on synthetic files: formats, verification, download, clear errors."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fake_variant

from mfkit import data
from mfkit.data import (
    GENRES,
    ChecksumError,
    DataNotFoundError,
    DownloadError,
    UnknownSplitError,
    UnknownVariantError,
    load_movielens,
    load_split,
    read_movielens,
    sha256_of,
    synthetic_movielens,
    write_movielens,
)

pytestmark = pytest.mark.usefixtures("no_data_dir")


# ---------------------------------------------------------------- synthetic data
def test_synthetic_has_the_movielens_frames(small: data.MovieLens) -> None:
    assert list(small.ratings.columns) == ["user_id", "movie_id", "rating", "timestamp"]
    assert list(small.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert list(small.movies.columns) == ["movie_id", "title", "release_date", "year", *GENRES]
    assert (len(small.ratings), len(small.users), len(small.movies)) == (300, 30, 40)
    assert small.ratings["rating"].between(1, 5).all()
    assert small.ratings["user_id"].between(1, 30).all()
    assert small.ratings["movie_id"].between(1, 40).all()
    assert not small.ratings.duplicated(["user_id", "movie_id"]).any()
    assert (small.movies[list(GENRES)].sum(axis=1) >= 1).all()


def test_synthetic_is_reproducible_with_a_seed() -> None:
    a, b, c = (synthetic_movielens(20, 30, 200, seed=s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.movies, b.movies)
    assert not a.ratings.equals(c.ratings)


def test_synthetic_can_fill_the_whole_matrix() -> None:
    full = synthetic_movielens(7, 9, 63, seed=0)
    assert len(full.ratings.drop_duplicates(["user_id", "movie_id"])) == 63


def test_synthetic_ratings_follow_the_low_rank_signal() -> None:
    ds = synthetic_movielens(300, 200, 20_000, seed=0)
    # Movie means vary far more than sampling noise would allow if ratings were iid.
    counts = ds.ratings.groupby("movie_id")["rating"].agg(["mean", "count"])
    counts = counts[counts["count"] >= 50]
    assert counts["mean"].std() > 0.3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 5, 0), "n_users must be at least 1"),
        ((5, 0, 0), "n_movies must be at least 1"),
        ((3, 3, 10), "n_ratings must be between 0 and n_users \\* n_movies = 9"),
        ((3, 3, -1), "n_ratings must be between"),
    ],
)
def test_synthetic_rejects_bad_sizes(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthetic_movielens(*args)


# --------------------------------------------------------------------- file formats
def test_write_then_read_round_trips(small: data.MovieLens, tmp_path: Path) -> None:
    back = read_movielens(write_movielens(small, tmp_path / "ml"))
    pd.testing.assert_frame_equal(back.ratings, small.ratings)
    pd.testing.assert_frame_equal(back.users, small.users)
    pd.testing.assert_frame_equal(back.movies, small.movies, check_dtype=False)


def test_ml100k_item_file_is_latin1_and_keeps_missing_dates(tmp_path: Path) -> None:
    ds = synthetic_movielens(3, 2, 4, seed=0)
    folder = write_movielens(ds, tmp_path / "ml")
    flags = "|".join(["1"] + ["0"] * 18)
    (folder / "u.item").write_bytes(
        f"1|Cité des enfants perdus, La (1995)|01-Jan-1995|||{flags}\n"
        f"2|unknown||||{flags}\n".encode("latin-1")
    )
    movies = read_movielens(folder).movies
    assert movies.loc[0, "title"] == "Cité des enfants perdus, La (1995)"
    assert movies.loc[0, "year"] == 1995
    assert pd.isna(movies.loc[1, "release_date"]) and pd.isna(movies.loc[1, "year"])


def test_ml1m_layout_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::5::978300760\n2::20::3::978302109\n")
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (tmp_path / "movies.dat").write_bytes(
        "10::Toy Story (1995)::Animation|Children's|Comedy\n20::Déjà Vu (1997)::(no genres)\n"
        .encode("latin-1")
    )  # fmt: skip
    ds = read_movielens(tmp_path, layout="ml-1m")
    assert ds.ratings.to_numpy().tolist() == [[1, 10, 5, 978300760], [2, 20, 3, 978302109]]
    assert ds.users["occupation"].tolist() == ["K-12 student", "self-employed"]
    assert ds.users["age"].tolist() == [1, 56]
    toy = ds.movies.iloc[0]
    assert [g for g in GENRES if toy[g]] == ["Animation", "Children's", "Comedy"]
    assert ds.movies.iloc[1]["unknown"] == 1 and ds.movies.iloc[1]["title"] == "Déjà Vu (1997)"
    assert ds.movies["year"].tolist() == [1995, 1997]


def test_read_reports_missing_files_and_bad_layout(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="missing u.data, u.user, u.item"):
        read_movielens(tmp_path)
    with pytest.raises(ValueError, match="unknown layout 'ml-2m'"):
        read_movielens(tmp_path, layout="ml-2m")


# ------------------------------------------------------- MFKIT_DATA_DIR + checksums
def test_loads_verified_files_from_the_data_dir(data_dir: Path, small: data.MovieLens) -> None:
    ds = load_movielens("fake")
    assert ds.name == "fake"
    pd.testing.assert_frame_equal(ds.ratings, small.ratings)


def test_an_edited_file_fails_its_checksum(data_dir: Path) -> None:
    text = (data_dir / "u.data").read_text()
    (data_dir / "u.data").write_text(text.replace("\t5\t", "\t4\t", 1))  # same size
    with pytest.raises(ChecksumError, match=r"u\.data failed its checksum: expected sha256 "):
        load_movielens("fake")


def test_a_truncated_file_is_reported_with_sizes(data_dir: Path) -> None:
    full = (data_dir / "u.item").read_bytes()
    (data_dir / "u.item").write_bytes(full[:100])
    with pytest.raises(ChecksumError, match=rf"u\.item has 100 bytes, expected {len(full):,}"):
        load_movielens("fake")


def test_a_missing_file_is_named(data_dir: Path) -> None:
    (data_dir / "u.user").unlink()
    with pytest.raises(DataNotFoundError, match=r"missing u\.user\. Re-extract the official"):
        load_movielens("fake")


def test_a_data_dir_without_the_variant_says_how_to_fix(data_dir: Path) -> None:
    with pytest.raises(DataNotFoundError, match="has no ml-1m/ folder.*unset MFKIT_DATA_DIR"):
        load_movielens("ml-1m")


def test_the_real_pins_reject_other_files(small: data.MovieLens, tmp_path, monkeypatch) -> None:
    write_movielens(small, tmp_path / "ml-100k")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ChecksumError, match=r"u\.data has .* bytes, expected 1,979,173"):
        load_movielens("ml-100k")


def test_load_split_reads_the_fold(data_dir: Path, small: data.MovieLens) -> None:
    train, test = load_split("u1", variant="fake")
    assert len(train) + len(test) == len(small.ratings)
    pd.testing.assert_frame_equal(pd.concat([train, test], ignore_index=True), small.ratings)


def test_load_split_errors() -> None:
    with pytest.raises(UnknownSplitError, match="unknown split 'u9'.*u1, u2, u3, u4, u5, ua, ub"):
        load_split("u9")
    with pytest.raises(UnknownSplitError, match="ml-1m ships no official splits"):
        load_split("u1", variant="ml-1m")
    with pytest.raises(UnknownVariantError, match="unknown MovieLens variant 'ml-5k'"):
        load_split("u1", variant="ml-5k")


def test_unknown_variant_message_is_not_quoted() -> None:
    with pytest.raises(KeyError) as info:
        load_movielens("ml-20k")
    assert str(info.value) == "unknown MovieLens variant 'ml-20k'; known variants: ml-100k, ml-1m"


# ------------------------------------------------------------------- downloading
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def archive_server(small: data.MovieLens, tmp_path: Path):
    """Serve a zip of small's files (top folder ``fake/``) on loopback; count requests."""
    folder = write_movielens(small, tmp_path / "src" / "fake")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"fake/{path.name}")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "fake.zip").write_bytes(buffer.getvalue())
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            hits.append(self.path)

    handler = functools.partial(Handler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/fake.zip"
    yield url, folder, buffer.getvalue(), hits
    server.shutdown()


def test_download_checks_caches_and_extracts(archive_server, tmp_path, monkeypatch) -> None:
    url, folder, payload, hits = archive_server
    variant = dataclasses.replace(
        fake_variant(folder, url=url), sha256=data.hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )  # fmt: skip
    monkeypatch.setitem(data.VARIANTS, "fake", variant)
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    first = load_movielens("fake", progress=False)
    second = load_movielens("fake", progress=False)
    assert len(hits) == 1  # the second load used the cache
    assert (tmp_path / "cache" / "fake" / "u.data").is_file()
    pd.testing.assert_frame_equal(first.ratings, second.ratings)


def test_a_download_with_the_wrong_hash_is_rejected(archive_server, tmp_path, monkeypatch):
    url, folder, _, _ = archive_server
    monkeypatch.setitem(data.VARIANTS, "fake", fake_variant(folder, url=url))  # sha "000..."
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    with pytest.raises(ChecksumError, match="does not match the pinned sha256 0000"):
        load_movielens("fake", progress=False)


def test_no_network_gives_the_manual_fallback(tmp_path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{_free_port()}/ml.zip"  # nothing listens there
    variant = dataclasses.replace(data.VARIANTS["ml-100k"], name="fake", url=url)
    monkeypatch.setitem(data.VARIANTS, "fake", variant)
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    with pytest.raises(DownloadError, match=r"could not download .*set MFKIT_DATA_DIR=DIR"):
        load_movielens("fake", progress=False)


def test_unpinned_files_get_a_manifest_from_the_verified_archive(
    archive_server, tmp_path, monkeypatch
) -> None:
    url, folder, payload, _ = archive_server
    variant = dataclasses.replace(
        fake_variant(folder, url=url), files=None,
        sha256=data.hashlib.sha256(payload).hexdigest(),
    )  # fmt: skip
    monkeypatch.setitem(data.VARIANTS, "fake", variant)
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    load_movielens("fake", progress=False)
    manifest = (tmp_path / "cache" / "fake.sha256").read_text()
    assert f"{sha256_of(folder / 'u.data')}  u.data" in manifest
    extracted = tmp_path / "cache" / "fake" / "u.data"
    extracted.write_bytes(extracted.read_bytes()[:-2] + b"9\n")
    with pytest.raises(ChecksumError, match="u.data"):
        load_movielens("fake", progress=False)


def test_ratings_frame_is_integer_typed(small: data.MovieLens) -> None:
    assert all(np.issubdtype(t, np.integer) for t in small.ratings.dtypes)


def test_unpinned_data_dir_uses_a_manifest_or_warns(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setitem(
        data.VARIANTS, "fake", dataclasses.replace(data.VARIANTS["fake"], files=None)
    )
    with pytest.warns(UserWarning, match="loaded unverified"):
        load_movielens("fake")
    data._write_manifest(data_dir, data_dir.parent / "fake.sha256")
    load_movielens("fake")  # verified against the manifest, no warning
    (data_dir / "u.user").write_text("1|20|M|other|00000\n")
    with pytest.raises(ChecksumError, match=r"u\.user failed its checksum"):
        load_movielens("fake")
