"""Interactive charts (Vega-Altair) drawn by the book itself, offline.

How a chart goes from a code cell to the page:

1. In the notebook, an Altair chart displays as its Vega-Lite spec, under the MIME type
   ``application/vnd.vegalite.v5+json`` (``mfkit.plots`` enables Altair's ``mimetype``
   renderer): JupyterLab and VS Code draw that type themselves, offline, and the executed
   notebook the book offers for download carries the spec.
2. MyST-NB has no renderer for that type. :class:`VegaLiteOutput` is one (a MyST-NB MIME
   render plugin, found through the entry point in ``mfkit_book_charts-0.dist-info`` beside
   this file: visible only while ``book/_ext`` is on ``sys.path``, that is in the book
   build). In HTML it is preferred to the output's other types, and writes the spec as data,
   ``<div class="mfkit-chart">`` holding ``<script type="application/json">``: no code, no
   address of a CDN.
3. This extension serves ``book/_static`` (``vega/``: Vega, Vega-Lite, vega-embed, their
   licences, ``charts.js``, which draws every ``div.mfkit-chart`` of a page, and
   ``charts.css``) as the book's ``_static``, and adds the four scripts, in that order, and
   the style sheet to each page that holds a chart and to no other page (the libraries
   weigh about 0.8 MB).
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes

VEGALITE_MIME = "application/vnd.vegalite.v5+json"
STATIC = Path(__file__).resolve().parents[1] / "_static"
# In the order they must load: vega-lite needs vega, vega-embed both, charts.js all three.
SCRIPTS = ("vega/vega.min.js", "vega/vega-lite.min.js", "vega/vega-embed.min.js", "vega/charts.js")
STYLE = "vega/charts.css"  # margins; on paper, the chart without its menu of actions
CHART_CLASS = "mfkit-chart"
HTML_BUILDERS = ("html", "dirhtml", "singlehtml")


def chart_html(spec: dict) -> str:
    """The page's HTML for one chart: its spec as JSON data, drawn later by charts.js.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no text of the spec (a movie
    title, say) can end the script element or be read as markup.
    """
    text = json.dumps(spec, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    label = f"Interactive chart: {title}" if isinstance(title, str) else "Interactive chart"
    label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (
        f'<div class="{CHART_CLASS}" role="figure" aria-label="{label}">'
        f'<script type="application/json">{text}</script>'
        '<div class="mfkit-chart-view">'
        "<noscript>This interactive chart needs JavaScript.</noscript></div></div>"
    )


class VegaLiteOutput:
    """MyST-NB MIME render plugin: a Vega-Lite output becomes :func:`chart_html`."""

    # Before text/html (30) and the images: the chart, not its fallbacks.
    mime_priority_overrides = [(builder, VEGALITE_MIME, 1) for builder in HTML_BUILDERS]

    @staticmethod
    def handle_mime(renderer, data, inline: bool):
        if inline or data.mime_type != VEGALITE_MIME:
            return None
        return [
            nodes.raw("", chart_html(data.content), format="html", classes=["output", "text_html"])
        ]


def has_chart(doctree: nodes.Node | None) -> bool:
    """Whether a page holds a chart written by :class:`VegaLiteOutput`."""
    if doctree is None:
        return False
    return any(
        "html" in node.get("format", "").split() and f'class="{CHART_CLASS}"' in node.astext()
        for node in doctree.findall(nodes.raw)
    )


def add_scripts(app, pagename, templatename, context, doctree) -> None:
    if has_chart(doctree):
        for script in SCRIPTS:
            app.add_js_file(script)  # this page only (Sphinx >= 3.5)
        app.add_css_file(STYLE)


def serve_static(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def setup(app):
    app.connect("config-inited", serve_static)
    app.connect("html-page-context", add_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
