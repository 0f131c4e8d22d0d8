"""The ``mfkit`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mfkit import data
from mfkit.cli import main

pytestmark = pytest.mark.usefixtures("no_data_dir")


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mfkit.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "usage: mfkit" in result.stdout and "data" in result.stdout


def test_data_summarizes_a_verified_dataset(data_dir: Path, small, capsys) -> None:
    assert main(["data", "--variant", "fake", "--quiet"]) == 0
    out = capsys.readouterr().out
    density = len(small.ratings) / (
        small.ratings["user_id"].nunique() * small.ratings["movie_id"].nunique()
    )
    assert f"in {data_dir} (from MFKIT_DATA_DIR)" in out
    assert f"checksums: {len(list(data_dir.iterdir()))} files OK" in out
    assert f"{len(small.ratings):,} ratings by 30 users of 40 movies; {density:.2%}" in out


def test_data_reports_a_corrupt_file_without_a_traceback(data_dir: Path, capsys) -> None:
    (data_dir / "u1.test").write_text("corrupt\n")
    assert main(["data", "--variant", "fake"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mfkit: error: ") and "u1.test has 8 bytes" in err
    assert "Traceback" not in err


def test_unknown_variant_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "--variant", "ml-20m"])
    assert info.value.code == 2
    assert "invalid choice: 'ml-20m'" in capsys.readouterr().err
    assert "ml-100k" in data.VARIANTS
