"""The nbval collector in notebooks/conftest.py: text notebooks run, failures fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).parents[1] / "notebooks" / "conftest.py"

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def _notebook(*cells: str) -> str:
    fence = "```"
    body = "\n".join(f"{fence}{{code-cell}} ipython3\n{c.strip()}\n{fence}\n" for c in cells)
    return HEADER + "# A notebook\n\n" + body


def _run_nbval(folder: Path) -> subprocess.CompletedProcess:
    shutil.copy(CONFTEST, folder / "conftest.py")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(folder), "-p", "no:cacheprovider",
         "-q", "--rootdir", str(folder)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "README.md").write_text("# Not a notebook\n\nNo jupytext header.\n")
    return tmp_path


def test_text_notebooks_are_collected_and_run(folder: Path) -> None:
    (folder / "good.md").write_text(
        _notebook("x = 21", "assert x * 2 == 42", ":tags: [raises-exception]\nraise ValueError")
    )
    result = _run_nbval(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout  # three cells; README.md is not collected


def test_a_raising_cell_fails_the_run(folder: Path) -> None:
    (folder / "good.md").write_text(_notebook("x = 1"))
    (folder / "broken.md").write_text(_notebook("y = 1", "y = 1 / 0", "z = 2"))
    result = _run_nbval(folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout and "broken.md::Cell 1" in result.stdout
    assert "ZeroDivisionError" in result.stdout
