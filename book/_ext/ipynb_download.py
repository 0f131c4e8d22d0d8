"""Offer each executed chapter as an ``.ipynb`` download.

The chapters are jupytext MyST-markdown notebooks. sphinx-book-theme adds an
``.ipynb`` entry to a page's download menu only when a Binder/JupyterHub/Colab/
Thebe launch button is configured (``add_launch_buttons`` in its
``header_buttons/launch.py``), and this book has no public repository to launch
from. The theme then copies ``<build>/jupyter_execute/<page>.ipynb``, but with
``execute_notebooks: cache`` MyST-NB (1.4) writes that file without outputs when
the notebook came from the cache (it writes the notebook it read, not the one
merged with the cached outputs).

So, for every page that is a notebook with a text source, this extension merges
that notebook with its executed copy in the jupyter-cache, writes the result to
``_sources/<page>.ipynb`` in the HTML folder, and sets ``ipynb_source``, which
the theme's download menu turns into an ``.ipynb`` link.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

import nbformat
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


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


def _add_ipynb_download(
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
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> dict[str, Any]:
    # before sphinx-book-theme's add_header_buttons (priority 501) reads ipynb_source
    app.connect("html-page-context", _add_ipynb_download, priority=500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
