"""Let nbval run the chapters, check their glue keys, and hand the book their outputs.

nbval only collects ``.ipynb`` files and reads them with ``nbformat.read``. Here a
``.md`` file whose jupytext header names a kernel is handed to nbval's own
collector, read exactly as the book reads it (MyST-NB's text-notebook reader, with
the book's MyST extensions from ``_config.yml``). Text notebooks store no outputs
(every cell is "unrun"), so nbval runs each cell and fails on any error but has no
outputs to compare: ``--nbval`` behaves like ``--nbval-lax``. Cells tagged
``raises-exception`` must raise, as in the book.

After a notebook's cells, one more test item, ``glue keys``, fails where the book
build would show a glued value wrongly or fail: when the notebook's Markdown uses a
``{glue}`` key that no executed cell defined (MyST-NB renders it as empty text), when a
cell glues the same key twice, or when a glued value cannot be shown in the format the
Markdown asks for (``{glue:text}`rmse:.3f``` of a ``np.float64``, whose text is
``np.float64(0.91)``: MyST-NB cannot read it as a number).

With ``--book-cache DIR`` (``make test`` passes the book's ``_build/.jupyter_cache``),
each notebook whose cells all passed is stored in that jupyter-cache with the
outputs nbval recorded, keyed as MyST-NB keys it, so that ``jupyter-book build``
finds it executed instead of running it a second time.

Run: ``pytest --nbval notebooks`` (pass the folder, not a single ``.md``); ``make test``
adds ``-n 2 --dist loadfile`` (pytest-xdist): two chapters at a time, each in its own
kernel, with the cache written by one worker at a time.
"""

from __future__ import annotations

import copy
import os
import re
import types
from pathlib import Path

import jupytext
import nbformat
import nbval.plugin
import pytest
import yaml
from filelock import FileLock

from mfkit.claims import WARNING_TEXT

# {glue}`key`, {glue:text}`key:.3f`, ... and ```{glue:figure} key / :::{glue} key
GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")
GLUE_TEXT_ROLE = re.compile(r"\{glue(?::text)?\}`([^`]+)`")  # the roles that take a format
GLUE_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|:{3,})\{glue(?::[a-z]+)?\}[ \t]+(\S+)", re.MULTILINE)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # no widget state: cannot render

# A test of the chapters fails on a claim that no longer holds (mfkit.claims), unless the
# caller asked for another mode (make check-numerics collects them instead).
os.environ.setdefault("MFKIT_CLAIMS", "strict")


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--book-cache",
        metavar="DIR",
        default=None,
        help="store each notebook that ran without error in this jupyter-cache, "
        "as the book build (MyST-NB, execute_notebooks: cache) looks it up",
    )


def _is_text_notebook(path: Path) -> bool:
    """A Markdown file counts only if its jupytext header declares a kernelspec."""
    if path.suffix != ".md":
        return False
    with path.open(encoding="utf-8") as f:
        if f.readline().strip() != "---":
            return False
    return "kernelspec" in jupytext.read(path).metadata


def _book_config(path: Path) -> dict:
    """The ``_config.yml`` of the book that holds ``path``, or {} outside a book."""
    for folder in path.resolve().parents:
        if (folder / "_config.yml").is_file():
            return yaml.safe_load((folder / "_config.yml").read_text(encoding="utf-8")) or {}
    return {}


def read_as_the_book_does(path: Path) -> nbformat.NotebookNode:
    """The notebook as MyST-NB reads it in the book build: same cells, same metadata."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    extensions = _book_config(path).get("parse", {}).get("myst_enable_extensions", [])
    config = MdParserConfig(enable_extensions=set(extensions))
    text = path.read_text(encoding="utf-8")
    return read_myst_markdown_notebook(text, config=config, add_source_map=True, path=path)


def glue_keys_used(notebook: nbformat.NotebookNode) -> set[str]:
    """The glue keys the notebook's Markdown refers to (references to other pages excluded)."""
    used = set()
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            found = [m.split(":")[0] for m in GLUE_ROLE.findall(cell.source) if "::" not in m]
            used.update(found + GLUE_DIRECTIVE.findall(cell.source))
    return used


def glue_formats_used(notebook: nbformat.NotebookNode) -> set[tuple[str, str]]:
    """``(key, format)`` of each ``{glue}`` / ``{glue:text}`` role with a format, e.g. ``.3f``."""
    used = set()
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for content in GLUE_TEXT_ROLE.findall(cell.source):
                key, _, spec = content.partition(":")
                if spec and "::" not in content:
                    used.add((key, spec))
    return used


def glued_values(outputs: list[list[dict]]) -> dict[str, list[dict]]:
    """Each key that ``myst_nb.glue`` stored in these cells' outputs, with its data (once per
    ``glue`` call)."""
    values: dict[str, list[dict]] = {}
    for cell_outputs in outputs:
        for out in cell_outputs:
            if "scrapbook" in out.get("metadata", {}):
                name = out["metadata"]["scrapbook"]["name"]
                values.setdefault(name, []).append(out.get("data", {}))
    return values


def glue_keys_defined(outputs: list[list[dict]]) -> set[str]:
    """The keys that ``myst_nb.glue`` stored in these cells' outputs."""
    return set(glued_values(outputs))


def glue_problems(notebook: nbformat.NotebookNode, outputs: list[list[dict]]) -> list[str]:
    """What the book build would warn about (and, under ``-W``, fail on) in the glued values."""
    from myst_nb.core.variables import format_plain_text

    values = glued_values(outputs)
    problems = []
    missing = glue_keys_used(notebook) - set(values)
    if missing:
        problems.append(
            "uses glue keys that no executed cell defined (the book would show them as "
            "empty text): " + ", ".join(sorted(missing))
        )
    twice = sorted(key for key, data in values.items() if len(data) > 1)
    if twice:
        problems.append("glues these keys more than once: " + ", ".join(twice))
    unformatted = []
    for key, spec in sorted(glue_formats_used(notebook)):
        data = values.get(key, [{}])[-1]  # stored as "application/papermill.record/text/plain"
        text = next((v for mime, v in data.items() if mime.endswith("text/plain")), None)
        if text is None:
            continue  # missing keys are reported above
        try:
            format_plain_text(text, spec)
        except (TypeError, ValueError):
            unformatted.append(f"{key} ({text!r} as {spec!r})")
    if unformatted:
        problems.append(
            "glues values the book cannot show in the format its text asks for (glue a "
            "float or int, not a numpy scalar): " + ", ".join(unformatted)
        )
    return problems


CLAIM_CALL = re.compile(r"\bclaim(?:_speed)?\(")
WARNING_BOX = "Warning: " + WARNING_TEXT  # how mfkit.claims' warning box reads as text


def shown_check_outputs(notebook: nbformat.NotebookNode, outputs: list[list[dict]]) -> list[str]:
    """The claim cells (tag ``remove-input``: the page shows their output, not their code)
    that printed or displayed something. A claim that holds must leave no trace on the page;
    only a claim that fails on a reader's machine shows its warning box there. (A figure
    cell with hidden code, and no claim, is meant to show its figure.)"""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    shown = []
    for number, (cell, cell_outputs) in enumerate(zip(code, outputs, strict=True), 1):
        tags = cell.metadata.get("tags", [])
        # A glued value is stored as an output that the page never shows; the warning box
        # of a claim that failed in warn or collect mode (mfkit.claims) is meant to show.
        visible = [
            out
            for out in cell_outputs
            if "scrapbook" not in out.get("metadata", {})
            and not str(out.get("data", {}).get("text/plain", "")).startswith(WARNING_BOX)
        ]
        checks = CLAIM_CALL.search(cell.source)
        if checks and "remove-input" in tags and "remove-output" not in tags and visible:
            first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
            shown.append(f"code cell {number} ({first!r})")
    if not shown:
        return []
    return [
        "has hidden check cells (remove-input) whose output would show on the page; make "
        "them silent or tag them remove-cell: " + ", ".join(shown)
    ]


def _as_cached_output(out: dict, count: int) -> dict | None:
    """An output as nbval recorded it, in the form nbclient would have stored it."""
    out = nbformat.from_dict(copy.deepcopy(dict(out)))
    if "data" in out:
        out.data.pop(WIDGET_VIEW, None)
        if not out.data:
            return None
    if out.output_type == "execute_result":
        out.execution_count = count
    return out


class GlueKeys(pytest.Item):
    """Fails where the book would show a glued value wrongly (see :func:`glue_problems`)."""

    def runtest(self) -> None:
        notebook: TextNotebook = self.parent
        cells = notebook.cell_items
        if not all(getattr(cell, "passed", False) for cell in cells):
            pytest.skip("not every cell ran and passed, so the glue keys were not checked")
        outputs = [c.test_outputs for c in cells]
        problems = glue_problems(notebook.nb, outputs) + shown_check_outputs(notebook.nb, outputs)
        if problems:
            raise GlueKeyError(problems)
        cache = self.config.getoption("book_cache")
        if cache:
            notebook.store_in_cache(Path(cache))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, GlueKeyError):
            name = self.parent.path.name
            return "\n".join(f"{name} {problem}" for problem in excinfo.value.args[0])
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{self.parent.path.name}::glue keys"


class GlueKeyError(Exception):
    """Glued values the book would not show as the Markdown asks (undefined, twice, format)."""


class TextNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, reading the notebook as the book does."""

    def collect(self):
        reader = types.SimpleNamespace(
            read=lambda path, as_version: read_as_the_book_does(self.path)
        )
        original = nbval.plugin.nbformat
        nbval.plugin.nbformat = reader
        try:
            self.cell_items = list(super().collect())
        finally:
            nbval.plugin.nbformat = original
        yield from self.cell_items
        yield GlueKeys.from_parent(self, name="glue keys")

    def store_in_cache(self, cache_path: Path) -> None:
        """Put the executed notebook in the book's jupyter-cache, keyed by its code cells."""
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        executed = copy.deepcopy(self.nb)
        code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
        for count, (cell, item) in enumerate(zip(code_cells, self.cell_items, strict=True), 1):
            cell.execution_count = count
            outputs = (_as_cached_output(out, count) for out in item.test_outputs)
            cell.outputs = [out for out in outputs if out is not None]
        seconds = sum(item.seconds for item in self.cell_items)
        bundle = CacheBundleIn(executed, str(self.path), data={"execution_seconds": seconds})
        cache_path.mkdir(parents=True, exist_ok=True)
        # Chapters run side by side (pytest -n 2) write the one cache: one at a time.
        with FileLock(cache_path / "write.lock"):
            get_cache(str(cache_path)).cache_notebook_bundle(
                bundle, check_validity=False, overwrite=True
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Note on each cell whether it passed, and how long it ran."""
    outcome = yield
    report = outcome.get_result()
    if isinstance(item, nbval.plugin.IPyNbCell) and report.when == "call":
        item.passed = report.passed
        item.seconds = report.duration


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and _is_text_notebook(file_path):
        return TextNotebook.from_parent(parent, path=file_path)
    return None
