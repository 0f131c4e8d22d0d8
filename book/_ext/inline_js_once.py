"""Write each inline script of a page once.

Sphinx before 8.2 writes inline scripts that an extension adds after the builder
starts (here, myst-nb's thebe settings: ``const THEBE_JS_URL = ...``) twice into
every page, and browsers then stop at "Identifier 'THEBE_JS_URL' has already
been declared" (sphinx-doc/sphinx#13402). Jupyter Book 1.x pins Sphinx 7, so the
duplicates, which have no file name, are dropped before pages are written.
"""

from __future__ import annotations


def _drop_unnamed_inline_js(app, env, docnames) -> None:
    files = getattr(app.builder, "_js_files", None)
    if files is not None:
        files[:] = [js for js in files if js.filename is not None]


def setup(app):
    app.connect("env-before-read-docs", _drop_unnamed_inline_js, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
