"""Shared fixtures: small synthetic MovieLens data, never the network."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from mfkit import data
from mfkit.data import sha256_of, synthetic_movielens, write_movielens

# Tests fail on a claim that does not hold (mfkit.claims; a learner's build only warns).
os.environ.setdefault("MFKIT_CLAIMS", "strict")


@pytest.fixture
def small() -> data.MovieLens:
    return synthetic_movielens(30, 40, 300, seed=3)


@pytest.fixture
def no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ignore a MFKIT_DATA_DIR set by the caller (tests that use the real data set it)."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def fake_variant(folder: Path, name: str = "fake", url: str = "http://unused") -> data.Variant:
    """A variant whose pins are the checksums of the files in ``folder``."""
    pins = {p.name: (sha256_of(p), p.stat().st_size) for p in folder.iterdir()}
    return dataclasses.replace(
        data.VARIANTS["ml-100k"], name=name, url=url, files=pins, sha256="0" * 64, size=None
    )


def write_fold(ds: data.MovieLens, folder: Path, name: str = "u1") -> None:
    train = ds.ratings.iloc[: len(ds.ratings) * 4 // 5]
    test = ds.ratings.iloc[len(ds.ratings) * 4 // 5 :]
    for frame, ext in ((train, "base"), (test, "test")):
        frame.to_csv(folder / f"{name}.{ext}", sep="\t", header=False, index=False)


@pytest.fixture
def data_dir(small: data.MovieLens, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$MFKIT_DATA_DIR/fake/`` holding small's files, pinned by a fake variant."""
    folder = write_movielens(small, tmp_path / "fake")
    write_fold(small, folder)
    monkeypatch.setitem(data.VARIANTS, "fake", fake_variant(folder))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    return folder
