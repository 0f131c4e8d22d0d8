"""Leave no empty box on the page for a check cell that said nothing.

The chapters' claim cells are tagged ``remove-input``: the page never shows their code,
but it shows their output, which is empty while the claim holds and a warning box when a
claim fails on the reader's machine (``mfkit.claims``). MyST-NB still writes an empty
``<div class="cell ...">`` for each silent one; this drops those empty cell containers.
"""

from __future__ import annotations

from docutils import nodes


def drop_empty_cells(app, doctree: nodes.document) -> None:
    """Remove the code-cell containers that hold neither code nor output."""
    for node in list(doctree.findall(nodes.container)):
        if node.get("nb_element") == "cell_code" and not node.children:
            node.parent.remove(node)


def setup(app):
    app.connect("doctree-read", drop_empty_cells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
