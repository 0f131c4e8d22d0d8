"""The nbval collector in notebooks/conftest.py: text notebooks run, failures fail,
undefined glue keys fail, and executed notebooks reach the book's jupyter-cache."""

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
    """A text notebook; a cell starting with "md:" is Markdown, the others code."""
    fence = "```"
    body = "\n".join(
        c.removeprefix("md:") + "\n" if c.startswith("md:") else
        f"{fence}{{code-cell}} ipython3\n{c.strip()}\n{fence}\n"
        for c in cells
    )  # fmt: skip
    return HEADER + "# A notebook\n\n" + body


def _run_nbval(folder: Path, *options: str) -> subprocess.CompletedProcess:
    shutil.copy(CONFTEST, folder / "conftest.py")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(folder), "-p", "no:cacheprovider",
         "-q", "--rootdir", str(folder), *options],
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
    assert "4 passed" in result.stdout  # three cells and the glue keys; README.md is not collected


GLUED = ("from myst_nb import glue", 'glue("rmse", 0.912, display=False)')


def test_failing_cells_and_undefined_glue_keys_fail_the_run(folder: Path) -> None:
    (folder / "good.md").write_text(_notebook(*GLUED, "md:The RMSE is {glue:text}`rmse:.3f`."))
    (folder / "broken.md").write_text(_notebook("y = 1", "y = 1 / 0", "md:{glue:text}`y`"))
    (folder / "typo.md").write_text(
        _notebook(*GLUED, "md:The RMSE is {glue:text}`rsme:.3f`.\n\n```{glue:figure} plot\n```")
    )
    (folder / "branch.md").write_text(  # a key glued only where a branch is taken
        _notebook(GLUED[0], 'if False:\n    glue("spark_rmse", 0.93)', "md:{glue:text}`spark_rmse`")
    )
    result = _run_nbval(folder, "-rfs")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "FAILED" in out and "broken.md::Cell 1" in out and "ZeroDivisionError" in out
    assert "typo.md::glue keys" in out and "branch.md::glue keys" in out
    assert "no executed cell defined (the book would show them as empty text): plot, rsme" in out
    assert "(the book would show them as empty text): spark_rmse" in out
    # broken.md's glue keys are not checked (a cell failed); good.md's pass
    assert "not every cell ran and passed" in out and "good.md::glue keys" not in out
    assert "3 failed, 8 passed, 1 skipped" in out
    assert not (folder / "cache").exists()  # no --book-cache: nothing written


def test_glue_values_the_book_cannot_show_fail_the_run(folder: Path) -> None:
    numpy_scalar = ("import numpy as np", GLUED[0], 'glue("share", np.float64(0.5), display=False)')
    (folder / "scalar.md").write_text(_notebook(*numpy_scalar, "md:Half: {glue:text}`share:.0%`."))
    (folder / "plain.md").write_text(  # the same value without a format is fine
        _notebook(*numpy_scalar, "md:Half: {glue:text}`share`.")
    )
    (folder / "twice.md").write_text(_notebook(*GLUED, GLUED[1], "md:{glue:text}`rmse:.3f`"))
    (folder / "floats.md").write_text(
        _notebook(
            GLUED[0], 'glue("n", 3, display=False)', GLUED[1], "md:{glue}`n:d`, {glue}`rmse:.2f`"
        )
    )
    result = _run_nbval(folder, "-rfs")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "scalar.md glues values the book cannot show in the format its text asks for" in out
    assert "share ('np.float64(0.5)' as '.0%')" in out
    assert "twice.md glues these keys more than once: rmse" in out
    assert "plain.md::glue keys" not in out and "floats.md::glue keys" not in out
    assert "2 failed" in out


def test_check_cells_must_be_silent_and_claims_fail_the_run(folder: Path) -> None:
    claims = "from mfkit.claims import claim"
    (folder / "quiet.md").write_text(  # a glued value is no output on the page
        _notebook(claims, GLUED[0], ":tags: [remove-input]\n" + GLUED[1] + "\nclaim(2 > 1, 'ok')")
    )
    (folder / "loud.md").write_text(
        _notebook(claims, ":tags: [remove-input]\nclaim(2 > 1, 'holds')\nprint('debug')")
    )
    (folder / "figure.md").write_text(  # a figure whose code is hidden is meant to show
        _notebook(":tags: [remove-input]\nprint('a figure')")
    )
    (folder / "wrong.md").write_text(
        _notebook(claims, ":tags: [remove-input]\nclaim(1 > 2, 'one beats two', a=1)")
    )
    result = _run_nbval(folder, "-rfs")  # no MFKIT_CLAIMS: the collector makes claims strict
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "loud.md has hidden check cells (remove-input) whose output would show" in out
    assert "code cell 2 (\"claim(2 > 1, 'holds')\")" in out
    assert "ClaimError" in out and "claim no longer holds: one beats two (a=1)" in out
    assert "quiet.md::glue keys" not in out and "figure.md::glue keys" not in out
    assert "2 failed" in out


def _book_lookup(folder: Path, name: str):
    """What MyST-NB finds in the cache for this notebook, read as the book reads it."""
    from jupyter_cache import get_cache
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    text = (folder / name).read_text()
    notebook = read_myst_markdown_notebook(
        text, MdParserConfig(enable_extensions={"colon_fence"}), add_source_map=True
    )
    return get_cache(str(folder / "cache")).merge_match_into_notebook(notebook)[1]


def test_executed_notebooks_are_stored_where_the_book_looks_them_up(folder: Path) -> None:
    (folder / "_config.yml").write_text("parse:\n  myst_enable_extensions: [colon_fence]\n")
    (folder / "ch.md").write_text(
        _notebook(
            *GLUED,
            "md:::::{note}\nColon fences are parsed as the book parses them.\n::::",
            ":tags: [remove-cell]\nprint('hidden')",
            "md:RMSE {glue:text}`rmse:.3f`.",
            "6 * 7",
        )
    )
    (folder / "broken.md").write_text(_notebook("x = 1", "1 / 0"))
    result = _run_nbval(folder, "--book-cache", str(folder / "cache"))
    assert result.returncode == 1 and "1 failed, 6 passed" in result.stdout, result.stdout
    cells = [c for c in _book_lookup(folder, "ch.md").cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4]
    assert cells[1].outputs[0].metadata["scrapbook"]["name"] == "rmse"
    assert cells[2].metadata["tags"] == ["remove-cell"]
    assert cells[2].outputs[0].text == "hidden\n"
    assert cells[3].outputs[0].data["text/plain"] == "42"
    assert cells[3].outputs[0].execution_count == 4
    with pytest.raises(KeyError):  # a notebook with a failing cell is not cached
        _book_lookup(folder, "broken.md")
