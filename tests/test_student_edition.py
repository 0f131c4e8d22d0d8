"""Each chapter's "no solutions" download runs top to bottom with its exercise cells empty.

The download (book/_ext/downloads.py) replaces each solution with an empty cell. A cell
outside the solutions that uses a name only a solution defines (a hidden claim checking a
solution's result, say) then raises ``NameError`` for the student. This checks it
statically, without executing every chapter a second time; ``make check-robust``
executes the downloads for real.
"""

from __future__ import annotations

import ast
import builtins
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from downloads import without_solutions  # noqa: E402

CHAPTERS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.md"))


def _tree(source: str) -> ast.Module:
    """A code cell's AST, with IPython's magics and shell lines left out."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines))


def names(notebook: nbformat.NotebookNode) -> tuple[set[str], list[tuple[int, str]]]:
    """The names the code cells define anywhere, and (cell, name) of each name they read."""
    defined, used = set(), []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code):
        for node in ast.walk(_tree(cell.source)):
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load):
                    used.append((number, node.id))
                else:
                    defined.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.arg):  # a function's or a lambda's parameter
                defined.add(node.arg)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                defined.add(node.name)
    return defined, used


def solution_only_names_used(notebook: nbformat.NotebookNode) -> list[str]:
    """Names a cell outside the solutions reads that only the solutions define."""
    student, _ = without_solutions(notebook)
    everywhere, _ = names(notebook)
    outside, used = names(student)
    only_in_solutions = everywhere - outside - set(dir(builtins))
    code = [cell for cell in student.cells if cell.cell_type == "code"]
    return sorted(
        {
            f"{name!r} (code cell {n + 1}: {code[n].source.splitlines()[0][:60]!r})"
            for n, name in used
            if name in only_in_solutions
        }
    )


def _notebook(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    new = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    return nbformat.v4.new_notebook(cells=[new[kind](source) for kind, source in cells])


def test_a_name_only_a_solution_defines_is_found() -> None:
    notebook = _notebook(
        ("code", "import numpy as np\nx = 1"),
        ("md", "````{solution-start} s1\n:class: dropdown\n````"),
        ("code", "def helper(k):\n    return k\nbest = helper(x)\nfor i in range(3): pass"),
        ("md", "````{solution-end}\n````"),
        ("code", "claim(best > 0, 'the solution works')\nprint(np.pi, x, i)"),
    )
    found = solution_only_names_used(notebook)
    assert [entry.split(" ")[0] for entry in found] == ["'best'", "'i'"]


def test_names_defined_outside_the_solutions_too_are_fine() -> None:
    notebook = _notebook(
        ("md", "````{solution-start} s1\n````"),
        ("code", "y = 2\n%time z = 3"),
        ("md", "````{solution-end}\n````"),
        ("code", "y = 5\nprint(y, len([y]))"),
    )
    assert solution_only_names_used(notebook) == []


def test_there_are_chapters() -> None:
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_no_solutions_download_uses_no_solution_only_name(chapter: Path) -> None:
    found = solution_only_names_used(jupytext.read(chapter))
    assert not found, (
        "outside the exercise solutions, cells use names only the solutions define (the "
        "'no solutions' download would raise NameError): " + "; ".join(found)
    )
