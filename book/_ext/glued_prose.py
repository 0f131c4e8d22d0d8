"""Downloaded notebooks read like the page: glue roles and directives become their values.

The chapters' Markdown shows measured numbers through MyST-NB's ``{glue}`` roles and
directives, which Jupyter cannot render. :func:`with_glued_values` replaces each by the
value the executed notebook glued, formatted as the page formats it.
"""

from __future__ import annotations

import copy
import re
import textwrap
from collections.abc import Callable
from typing import Any

import nbformat

GLUE_RECORD = "application/papermill.record/"  # myst_nb.glue(..., display=False)
# A role {glue}`key`, {glue:any}`key`, {glue:text}`key:.3f`, {glue:md}`key`, any with
# `page::key`; a directive ```{glue:figure} key ... ``` or :::{glue} key ... ::: with its
# options (:doc:, :format:, :name:, ...) and body (a figure's caption).
_GLUE_ROLE = re.compile(r"\{glue(?::(?P<kind>[a-z]*))?\}`(?P<content>[^`]+)`")
_GLUE_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{glue(?::(?P<kind>[a-z]*))?\}"
    r"[ \t]+(?P<key>\S+)[ \t]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$\n?",
    re.M | re.S,
)
_OPTION = re.compile(r"^[ \t]*:(?P<name>[\w-]+):[ \t]*(?P<value>.*?)[ \t]*$")
# The page shows a glued text as text: Markdown's own characters are escaped in the
# notebook so that it shows them too (a `*` in a title, a `$` that is not math).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$|])")
_IMAGES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/svg+xml": "svg"}
# The order in which MyST-NB's HTML builder picks a glued value's form (a {glue} role or
# directive; myst_nb.core.render.get_mime_priority("html", [])), less the forms a
# notebook's Markdown cannot show.
_PRIORITY = ["text/html", *_IMAGES, "text/markdown", "text/latex", "text/plain"]

Glued = dict[str, dict[str, Any]]  # key -> {"data": {mime: value}, "metadata": {...}}


class GlueProblem(KeyError):
    """A glue role or directive whose value cannot be put in its place."""

    def __str__(self) -> str:
        return str(self.args[0])


def glued_outputs(notebook: nbformat.NotebookNode) -> Glued:
    """What ``myst_nb.glue`` stored in the executed notebook's outputs: each key's data
    (the ``application/papermill.record/`` prefix taken off) and metadata. A key glued
    twice keeps its last value, as MyST-NB does."""
    values: Glued = {}
    for cell in notebook.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            meta = out.get("metadata", {})
            if "scrapbook" not in meta:
                continue
            prefix = meta["scrapbook"].get("mime_prefix", "")
            data = {
                mime[len(prefix) :] if mime.startswith(prefix) else mime: _joined(value)
                for mime, value in out.get("data", {}).items()
            }
            values[meta["scrapbook"]["name"]] = {"data": data, "metadata": dict(meta)}
    return values


def _joined(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) else value


def _value(key: str, doc: str | None, own: Glued, pages: Callable[[str], Glued | None] | None):
    if doc is None:
        glued = own
    else:
        glued = pages(doc) if pages is not None else None
        if glued is None:
            raise GlueProblem(f"glue reference to {doc!r}: no such page with glued values")
    if key not in glued:
        where = "this notebook's" if doc is None else f"{doc!r}'s"
        raise GlueProblem(f"glue key {key!r} is not among {where} glued values")
    return glued[key]


def _escaped(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _plain(value: dict) -> str:
    text = value["data"]["text/plain"]
    quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
    if value["metadata"].get("strip_text_quotes") and quoted:
        text = text[1:-1]
    return text


def _latex(text: str) -> str:
    from myst_nb.core.render import strip_latex_delimiters

    return strip_latex_delimiters(text)


def _attach(value: dict, mime: str, key: str, attachments: dict) -> str:
    """Attach the glued picture to the Markdown cell; return the link that shows it."""
    name = re.sub(r"[^\w.-]", "_", key) + "." + _IMAGES[mime]
    attachments[name] = {mime: value["data"][mime]}
    return f"attachment:{name}"


def _any(value: dict, key: str, attachments: dict, *, inline: bool) -> str:
    """A glued value in the form the page shows for ``{glue}`` (role or directive)."""
    data = value["data"]
    mime = next((m for m in _PRIORITY if m in data), None)
    if mime is None:
        forms = ", ".join(sorted(data)) or "nothing"
        raise GlueProblem(f"glue key {key!r} holds no form a notebook can show ({forms})")
    if mime == "text/html":
        return data[mime].strip() if inline else f"\n{data[mime].strip()}\n"
    if mime in _IMAGES:
        return f"![{key}]({_attach(value, mime, key, attachments)})"
    if mime == "text/markdown":
        return data[mime].strip("\n")
    if mime == "text/latex":
        math = _latex(data[mime])
        return f"${math}$" if inline else f"$$\n{math.strip()}\n$$"
    text = _plain(value)
    return _escaped(text) if inline else f"```\n{text.rstrip()}\n```"


def _role(kind: str, content: str, own: Glued, pages, attachments: dict) -> str:
    doc, sep, rest = content.partition("::")
    doc, rest = (doc, rest) if sep else (None, content)
    if kind in ("text", "md"):
        key, sep, spec = rest.rpartition(":")
        key, spec = (key, spec) if sep else (rest, "")
    else:
        key, spec = rest, ""
    value = _value(key, doc, own, pages)
    data = value["data"]
    if kind == "text":
        if "text/plain" not in data:
            raise GlueProblem(f"glue key {key!r} has no text/plain value for {{glue:text}}")
        from myst_nb.core.variables import format_plain_text

        try:
            return _escaped(format_plain_text(data["text/plain"], spec))
        except (TypeError, ValueError) as error:
            text = data["text/plain"]
            message = f"glue key {key!r}: cannot format {text!r} as {spec!r}: {error}"
            raise GlueProblem(message) from None
    if kind == "md":
        if "text/markdown" not in data:
            raise GlueProblem(f"glue key {key!r} has no text/markdown value for {{glue:md}}")
        return data["text/markdown"].strip()
    if kind in ("", "any"):
        return _any(value, key, attachments, inline=True)
    raise GlueProblem(f"unknown glue role {{glue:{kind}}}")


def _directive(match: re.Match, own: Glued, pages, attachments: dict) -> str:
    kind, key = match["kind"] or "", match["key"]
    lines = match["body"].splitlines()
    options = {}
    while lines and (option := _OPTION.match(lines[0])):
        options[option["name"]] = option["value"]
        lines.pop(0)
    caption = "\n".join(line.strip() for line in lines).strip()
    value = _value(key, options.get("doc"), own, pages)
    data = value["data"]
    if kind == "md":
        if "text/markdown" not in data:
            raise GlueProblem(f"glue key {key!r} has no text/markdown value for {{glue:md}}")
        shown = data["text/markdown"].strip("\n")
    elif kind == "math" and "text/latex" in data:
        shown = f"$$\n{_latex(data['text/latex']).strip()}\n$$"
    elif kind == "figure" and (mime := next((m for m in _IMAGES if m in data), None)):
        alt = options.get("alt", key).replace("]", "")
        shown = f"![{alt}]({_attach(value, mime, key, attachments)})"
    elif kind in ("", "any", "figure", "math"):
        shown = _any(value, key, attachments, inline=False)
    else:
        raise GlueProblem(f"unknown glue directive {{glue:{kind}}}")
    if kind == "figure" and caption:
        shown += f"\n\n*{caption}*" if "\n" not in caption else f"\n\n{caption}"
    return shown + "\n"


def with_glued_values(
    notebook: nbformat.NotebookNode, pages: Callable[[str], Glued | None] | None = None
) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of the executed ``notebook`` whose Markdown shows the glued values, and the
    glue roles and directives it could not fill in (each left as written).

    ``{glue:text}`key:spec``` becomes the glued text/plain formatted by MyST-NB's own
    ``format_plain_text`` (``.3f``, ``,.0f``, ``.1%``, ...; without a spec, the value as
    the page prints it); ``{glue:md}`key``` the glued Markdown; ``{glue}`key``` the form
    the HTML page picks (HTML, a picture, Markdown, LaTeX or the plain text). Directives
    become blocks: Markdown, a ``$$`` formula, a table, a fenced text or a picture attached
    to the cell (with a ``{glue:figure}``'s caption after it). ``pages(doc)`` gives the
    glued values of another page, for ``{glue:text}`doc::key``` and a directive's
    ``:doc:``; without it such references are problems.
    """
    notebook = copy.deepcopy(notebook)
    own = glued_outputs(notebook)
    problems: list[str] = []
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "markdown" or "{glue" not in cell.source:
            continue
        attachments = dict(cell.get("attachments", {}))
        found: list[str] = []

        def fill(match: re.Match, render: Callable[[re.Match], str], found=found) -> str:
            try:
                return render(match)
            except GlueProblem as error:
                found.append(str(error))
                return match[0]  # left as written

        def block(m: re.Match, attachments=attachments) -> str:
            return textwrap.indent(_directive(m, own, pages, attachments), m["indent"])

        def inline(m: re.Match, attachments=attachments) -> str:
            return _role(m["kind"] or "", m["content"], own, pages, attachments)

        text = _GLUE_DIRECTIVE.sub(lambda m: fill(m, block), cell.source)
        cell.source = _GLUE_ROLE.sub(lambda m: fill(m, inline), text)
        if attachments:
            cell.attachments = attachments
        problems += [f"cell {number}: {problem}" for problem in found]
    return notebook, problems
