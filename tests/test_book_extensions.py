"""The book's own Sphinx extensions (book/_ext): the notebook rewrites behind the downloads."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from downloads import PLACEHOLDER, with_setup_cell, without_solutions  # noqa: E402
from launch_local import lab_url  # noqa: E402
from silent_checks import drop_empty_cells  # noqa: E402

md = nbformat.v4.new_markdown_cell
code = nbformat.v4.new_code_cell

EXERCISE = "```{{exercise}}\n:label: ex-{n}\n\nDo thing {n}.\n```\n"
START = "````{{solution-start}} ex-{n}\n:class: dropdown\n````\n"
END = "````{solution-end}\n````\n"


def notebook(*cells) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


def sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_solutions_spanning_cells_become_empty_cells():
    nb = notebook(
        md("# Title"),
        code("x = 1"),
        md("## Exercises\n\n" + EXERCISE.format(n=1) + "\n" + START.format(n=1)),
        code("answer = 1"),
        md("Because it is.\n\n" + END + "\n" + EXERCISE.format(n=2) + "\n" + START.format(n=2)),
        code("answer = 2"),
        md(END + "\n## Further reading"),
    )
    student, replaced = without_solutions(nb)
    assert replaced == 2
    assert sources(student) == [
        ("markdown", "# Title"),
        ("code", "x = 1"),
        ("markdown", "## Exercises\n\n" + EXERCISE.format(n=1).rstrip()),
        ("markdown", PLACEHOLDER),
        ("code", ""),
        ("markdown", EXERCISE.format(n=2).rstrip()),
        ("markdown", PLACEHOLDER),
        ("code", ""),
        ("markdown", "## Further reading"),
    ]
    assert len(nb.cells) == 7 and nb.cells[3].source == "answer = 1"  # the input is untouched


def test_a_solution_inside_one_markdown_cell_and_colon_fences():
    text = (
        "Before.\n\n:::{solution-start} ex-1\n:class: dropdown\n:::\n"
        "Hidden.\n:::{solution-end}\n:::\nAfter."
    )
    student, replaced = without_solutions(notebook(md(text)))
    assert replaced == 1
    assert sources(student) == [
        ("markdown", "Before."),
        ("markdown", PLACEHOLDER),
        ("code", ""),
        ("markdown", "After."),
    ]


def test_a_notebook_without_solutions_is_unchanged():
    nb = notebook(md("# Title\n\n```{exercise}\nNo solution given.\n```"), code("y = 2"))
    student, replaced = without_solutions(nb)
    assert replaced == 0
    assert sources(student) == sources(nb)


def test_an_unclosed_solution_is_an_error():
    with pytest.raises(ValueError, match="solution-end"):
        without_solutions(notebook(md(START.format(n=1)), code("secret = 1")))


def test_setup_cell_follows_the_title_cell_and_names_the_wheel():
    nb = notebook(md("# Title"), code("import mfkit"))
    hosted = with_setup_cell(nb, "mfkit-9.9-py3-none-any.whl")
    assert [c.cell_type for c in hosted.cells] == ["markdown", "markdown", "code", "code"]
    setup = hosted.cells[2].source
    assert 'pathlib.Path("mfkit-9.9-py3-none-any.whl")' in setup
    compile(setup, "setup cell", "exec")  # valid Python once the template is filled in
    assert len(nb.cells) == 2


def test_setup_cell_runs_as_a_no_op_where_mfkit_is_installed():
    hosted = with_setup_cell(notebook(code("pass")), "absent.whl")
    exec(compile(hosted.cells[1].source, "setup cell", "exec"), {})  # no install, no error


def test_lab_url_joins_base_and_source():
    assert lab_url("http://localhost:8888/", "notebooks/01_x.md") == (
        "http://localhost:8888/lab/tree/notebooks/01_x.md"
    )


def test_silent_check_cells_leave_no_empty_box() -> None:
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    doc = new_document("page", get_default_settings(Parser))
    silent = nodes.container(nb_element="cell_code")
    warning = nodes.container(
        "", nodes.paragraph(text="Not so on this machine"), nb_element="cell_code"
    )
    other = nodes.container(nb_element="something else")
    doc += [silent, warning, other]
    drop_empty_cells(None, doc)
    assert list(doc.children) == [warning, other]
