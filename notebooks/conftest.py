"""Let nbval collect the chapters, which are jupytext MyST-markdown notebooks.

nbval only collects ``.ipynb`` files and reads them with ``nbformat.read``. Here a
``.md`` file whose jupytext header names a kernel is handed to nbval's own
collector, with ``nbformat.read`` swapped for ``jupytext.read`` while it collects.
Text notebooks store no outputs (every cell is "unrun"), so nbval runs each cell
and fails on any error but has no outputs to compare: ``--nbval`` behaves like
``--nbval-lax``. Cells tagged ``raises-exception`` must raise, as in the book.

Run: ``pytest --nbval notebooks`` (pass the folder, not a single ``.md``).
"""

from __future__ import annotations

import types
from pathlib import Path

import jupytext
import nbval.plugin


def _is_text_notebook(path: Path) -> bool:
    """A Markdown file counts only if its jupytext header declares a kernelspec."""
    if path.suffix != ".md":
        return False
    with path.open(encoding="utf-8") as f:
        if f.readline().strip() != "---":
            return False
    return "kernelspec" in jupytext.read(path).metadata


class TextNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, reading the notebook with jupytext."""

    def collect(self):
        reader = types.SimpleNamespace(read=lambda path, as_version: jupytext.read(path))
        original = nbval.plugin.nbformat
        nbval.plugin.nbformat = reader
        try:
            yield from super().collect()
        finally:
            nbval.plugin.nbformat = original


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and _is_text_notebook(file_path):
        return TextNotebook.from_parent(parent, path=file_path)
    return None
