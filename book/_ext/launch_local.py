"""A launch button that opens the chapter in the reader's own JupyterLab.

``make lab`` serves the repository with JupyterLab on ``http://localhost:8888``, set up
so that the chapters' ``.md`` files open as notebooks (jupytext). Each chapter page
gets a launch menu whose "JupyterLab" entry opens that chapter there. (The theme's own
Binder/Colab/JupyterHub buttons need a public repository, which this book does not
name; they appear beside this one once ``repository.url`` and ``launch_buttons`` are
set in ``_config.yml``.)

Config: ``local_lab_url`` (default ``http://localhost:8888``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx


def lab_url(base: str, source: str) -> str:
    """The JupyterLab URL that opens ``source`` (a path from the repository root)."""
    return f"{base.rstrip('/')}/lab/tree/{source}"


def _add_launch_button(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    if doctree is None or "kernelspec" not in app.env.metadata.get(pagename, {}):
        return  # not a notebook
    source = Path(app.env.doc2path(pagename)).relative_to(app.srcdir).as_posix()
    button = {
        "type": "link",
        "text": "JupyterLab (make lab)",
        "tooltip": "Open in your JupyterLab (run `make lab` in your clone first)",
        "icon": "fas fa-laptop-code",
        "url": lab_url(app.config.local_lab_url, source),
        "label": "launch-local-lab-button",
    }
    buttons = context.setdefault("header_buttons", [])
    menu = next((b for b in buttons if b.get("label") == "launch-buttons"), None)
    if menu is None:
        menu = {
            "type": "group",
            "tooltip": "Launch interactive content",
            "icon": "fas fa-rocket",
            "buttons": [],
            "label": "launch-buttons",
        }
        buttons.append(menu)
    menu["buttons"].insert(0, button)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("local_lab_url", "http://localhost:8888", "html", types=[str])
    # after sphinx-book-theme's own launch buttons (priority 501)
    app.connect("html-page-context", _add_launch_button, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
