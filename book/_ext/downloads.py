"""The chapter downloads: the executed notebook, a student edition, and mfkit's wheel.

Every chapter page's download menu offers

- ``.ipynb``: the chapter as executed in this build, as it reads on the page (glued
  values in the prose, no hidden check cells: see below), with a first code cell that
  installs mfkit in a hosted notebook (Colab, a JupyterHub, any fresh Python) from the
  wheel below;
- ``.ipynb (no solutions)``: the same notebook with each exercise's solution replaced by
  an empty cell to fill in;
- ``mfkit .whl``: the package the chapters import, built from this checkout.

Why the executed notebook needs this extension: sphinx-book-theme adds an ``.ipynb``
download only when a Binder/JupyterHub/Colab/Thebe launch button is configured (this
book has no public repository to launch from), and it copies
``<build>/jupyter_execute/<page>.ipynb``, which MyST-NB (1.4) writes without outputs
when the notebook came from the jupyter-cache. So the notebook is merged with its
cached outputs here and written to ``_sources/<page>.ipynb``; ``ipynb_source`` in the
page context makes the theme list it.

Both notebooks read like the page:

- **glued values in the prose**: each ``{glue}`` / ``{glue:text}`` / ``{glue:md}`` role in
  a Markdown cell becomes the value the executed notebook glued, formatted as the role
  asks (``{glue:text}`rmse:.3f``` with MyST-NB's own ``format_plain_text``, so the text
  is the page's), and each ``{glue}`` / ``{glue:any}`` / ``{glue:md}`` / ``{glue:figure}``
  / ``{glue:math}`` directive becomes its Markdown, table, formula or picture (an image
  is attached to the Markdown cell; a figure's caption follows it). A reference to
  another page's value (``{glue:text}`other_page::key```, a directive's ``:doc:``) is
  read from that page's glue data. A key that no executed cell glued (or a value that
  cannot be shown as asked) is **left as it is written and reported**: the build logs a
  warning, which fails it under ``-W``.
- **no hidden check cells**: a code cell tagged ``remove-cell``, or ``remove-input``
  whose code calls ``claim(``, is left out when it only checks and glues
  (:func:`without_hidden_checks` says exactly when); a hidden cell that defines a name
  a later cell of the download reads, imports a module for its effect (the first
  ``import mfkit``, which sets the thread policy before torch loads) or may change state
  that later cells see stays, so the notebook still runs top to bottom. The glue
  records that kept cells stored (``display=False``: never shown on the page; older
  JupyterLab and VS Code list them as outputs they cannot render) are dropped.

The two rewrites have modules of their own, ``glued_prose`` and ``hidden_checks``; this
one builds the downloads and the menu.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import nbformat
from glued_prose import Glued, with_glued_values
from hidden_checks import without_hidden_checks
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

WHEEL_FOLDER = "_downloads/mfkit"  # in the HTML output
STUDENT_SUFFIX = "-no-solutions"

SETUP_NOTE = """\
**Running this notebook outside the course's environment?** On Colab, a JupyterHub or \
any fresh Python, the next cell installs `mfkit` and the packages the chapters import \
from the wheel `{wheel}` (the book's download menu offers it; put it next to this \
notebook, on Colab with *Files > Upload*). The MovieLens data is downloaded on first \
use. In the course's own environment (`make venv`) the cell does nothing."""

SETUP_CODE = """\
import importlib
import importlib.util
import pathlib
import subprocess
import sys

if importlib.util.find_spec("mfkit") is None:
    wheel = pathlib.Path("{wheel}")
    if not wheel.is_file():
        raise FileNotFoundError(
            f"mfkit is not installed and {{wheel}} is not next to this notebook: download it"
            " from the download menu of any chapter of the book, upload it, run this again"
        )
    pip = [sys.executable, "-m", "pip", "install", "--quiet", f"{{wheel.resolve()}}[notebooks]"]
    subprocess.run(pip, check=True)
    importlib.invalidate_caches()"""

PLACEHOLDER = "*Your solution.*"

# A solution's opening and closing directives, as sphinx-exercise writes them in MyST:
# a fence of backticks or colons around {solution-start} LABEL (plus options) or
# {solution-end}.
_DIRECTIVE = r"^(?P<fence>`{{3,}}|:{{3,}})\{{{name}\}}.*?^(?P=fence)[ \t]*$\n?"
_SOLUTION_START = re.compile(_DIRECTIVE.format(name="solution-start"), re.M | re.S)
_SOLUTION_END = re.compile(_DIRECTIVE.format(name="solution-end"), re.M | re.S)


# ---------------------------------------------------------------- the notebooks


def with_setup_cell(notebook: nbformat.NotebookNode, wheel: str) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with the hosted-install note and cell after its first cell."""
    notebook = copy.deepcopy(notebook)
    cells = [
        nbformat.v4.new_markdown_cell(SETUP_NOTE.format(wheel=wheel)),
        nbformat.v4.new_code_cell(SETUP_CODE.format(wheel=wheel)),
    ]
    at = 1 if notebook.cells and notebook.cells[0].cell_type == "markdown" else 0
    notebook.cells[at:at] = cells
    return notebook


def without_solutions(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``notebook`` whose solutions are empty cells, and how many it replaced.

    Everything between a ``{solution-start}`` and its ``{solution-end}`` goes (markdown
    and code cells, and the directives themselves); in its place come a markdown cell
    saying "Your solution" and an empty code cell.
    """
    notebook = copy.deepcopy(notebook)
    kept: list[nbformat.NotebookNode] = []
    inside, replaced = False, 0

    def keep_markdown(text: str, like: nbformat.NotebookNode) -> None:
        if text.strip():
            cell = nbformat.v4.new_markdown_cell(text.strip("\n"))
            cell.metadata = copy.deepcopy(like.metadata)
            kept.append(cell)

    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            if not inside:
                kept.append(cell)
            continue
        text, pos = cell.source, 0
        while True:
            if not inside:
                start = _SOLUTION_START.search(text, pos)
                if start is None:
                    keep_markdown(text[pos:], cell)
                    break
                keep_markdown(text[pos : start.start()], cell)
                kept += [nbformat.v4.new_markdown_cell(PLACEHOLDER), nbformat.v4.new_code_cell()]
                inside, pos, replaced = True, start.end(), replaced + 1
            else:
                end = _SOLUTION_END.search(text, pos)
                if end is None:
                    break  # the rest of this cell is solution
                inside, pos = False, end.end()
    if inside:
        raise ValueError("a {solution-start} has no {solution-end}")
    notebook.cells = kept
    return notebook, replaced


def _executed_notebook(app: Sphinx, pagename: str) -> nbformat.NotebookNode | None:
    written = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not written.is_file():
        return None
    notebook = nbformat.read(written, as_version=4)
    config = app.env.mystnb_config
    if config.execution_mode == "cache" and config.execution_cache_path:
        from jupyter_cache import get_cache

        with suppress(KeyError):  # not in the cache, e.g. excluded from execution
            _, notebook = get_cache(config.execution_cache_path).merge_match_into_notebook(notebook)
    return notebook


def _glued_on(app: Sphinx, pagename: str, doc: str) -> Glued | None:
    """The values another page glued (``{glue:text}`doc::key```), found as MyST-NB finds
    them: the path relative to this page, the page's ``<page>.glue.json``."""
    env = app.env
    refdoc = env.path2doc(env.relfn2path(doc, pagename)[1])
    if refdoc is None:
        return None
    path = Path(env.mystnb_config.output_folder, *refdoc.split("/"))
    path = path.with_name(path.name + ".glue.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# ---------------------------------------------------------------- the wheel


def _build_wheel(app: Sphinx) -> None:
    """Build mfkit's wheel from the checkout into the HTML output (``app.mfkit_wheel``)."""
    root = Path(app.srcdir)
    target = Path(app.outdir) / WHEEL_FOLDER
    with tempfile.TemporaryDirectory() as tmp:
        # Build from a copy, so that setuptools leaves no build/ folder in the checkout.
        source = Path(tmp) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(root / name, source / name)
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(root / "mfkit", source / "mfkit", ignore=skip)
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        command += ["--no-build-isolation", "--wheel-dir", str(Path(tmp) / "dist"), str(source)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise ExtensionError(f"could not build mfkit's wheel:\n{done.stderr}")
        (wheel,) = (Path(tmp) / "dist").glob("mfkit-*.whl")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy2(wheel, target / wheel.name)
    app.mfkit_wheel = wheel.name


# ---------------------------------------------------------------- the download menu


def _write_notebooks(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    if doctree is None or context.get("ipynb_source"):
        return
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return  # not a notebook
    if context.get("page_source_suffix", "") == ".ipynb":
        return  # the source itself is a notebook; the theme offers it already
    notebook = _executed_notebook(app, pagename)
    if notebook is None:
        logger.warning(f"no executed notebook to offer as a download for {pagename}")
        return
    notebook, problems = with_glued_values(notebook, lambda doc: _glued_on(app, pagename, doc))
    for problem in problems:
        logger.warning(f"the downloaded notebook of {pagename}, {problem}", location=pagename)
    # the solutions go before the hidden cells, so that cells only a solution needed go too
    student, solutions = without_solutions(notebook)
    notebook, _ = without_hidden_checks(notebook)
    student, _ = without_hidden_checks(student)
    notebook = with_setup_cell(notebook, app.mfkit_wheel)
    student = with_setup_cell(student, app.mfkit_wheel)
    folder = Path(app.outdir) / "_sources"
    (folder / pagename).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / f"{pagename}.ipynb")
    context["ipynb_source"] = f"{pagename}.ipynb"
    if solutions:
        nbformat.write(student, folder / f"{pagename}{STUDENT_SUFFIX}.ipynb")
        context["ipynb_student_source"] = f"{pagename}{STUDENT_SUFFIX}.ipynb"


def _extend_download_menu(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    if not context.get("ipynb_source"):
        return
    menu = next(
        (b for b in context.get("header_buttons", []) if b.get("label") == "download-buttons"),
        None,
    )
    if menu is None:
        return
    pathto = context["pathto"]
    after = 1 + next(
        (i for i, b in enumerate(menu["buttons"]) if b.get("label") == "download-notebook-button"),
        -1,
    )
    extra = []
    if context.get("ipynb_student_source"):
        extra.append(
            {
                "type": "link",
                "url": f"{pathto('_sources', 1)}/{context['ipynb_student_source']}",
                "text": ".ipynb (no solutions)",
                "icon": "fas fa-pen",
                "tooltip": "Download the notebook with empty cells for the exercise solutions",
                "label": "download-student-notebook-button",
            }
        )
    extra.append(
        {
            "type": "link",
            "url": f"{pathto(WHEEL_FOLDER, 1)}/{app.mfkit_wheel}",
            "text": "mfkit .whl",
            "icon": "fas fa-box",
            "tooltip": "Download mfkit, to install next to the notebook in a hosted Jupyter",
            "label": "download-wheel-button",
        }
    )
    menu["buttons"][after:after] = extra


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _build_wheel)
    # before sphinx-book-theme's add_header_buttons (priority 501) reads ipynb_source ...
    app.connect("html-page-context", _write_notebooks, priority=500)
    # ... and after it has made the download menu
    app.connect("html-page-context", _extend_download_menu, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
