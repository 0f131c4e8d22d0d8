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
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import nbformat
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


# ---------------------------------------------------------------- glued values in the prose

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


# ---------------------------------------------------------------- hidden check cells

CHECK_CALLS = frozenset({"glue", "claim", "claim_speed", "print"})
# Calls that may change what a later cell sees: in-place methods (and torch's `x.add_()`),
# training, the global random streams. A hidden cell that makes one stays in the download.
_STATEFUL_METHODS = frozenset(
    "append extend insert remove pop popitem clear update setdefault add discard sort "
    "reverse fit fit_transform partial_fit train eval step backward zero_grad to "
    "load_state_dict register_buffer manual_seed seed shuffle write close".split()
)
_STATEFUL_FUNCTIONS = frozenset("fit train manual_seed seed shuffle setattr delattr exec".split())
_GLOBAL_RANDOM = re.compile(
    r"^(np\.random|numpy\.random|random|torch\.random|torch\.cuda)\."
    r"(?!default_rng$|Generator$|fork_rng$)"
    r"|^torch\.(rand|randn|randint|randperm|normal|bernoulli|multinomial|poisson)$"
)
_IDENTIFIER = re.compile(r"[^\W\d]\w*")
_SCOPES = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
_COMPREHENSIONS = ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _bound_names(statements: list[ast.stmt]) -> set[str]:
    """The names these statements bind in their own scope (not in the functions they
    define, not a comprehension's loop variables)."""
    bound: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
            return  # its body binds its own locals
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.NamedExpr):
            bound.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global):
            bound.update(node.names)
        if isinstance(node, ast.Lambda | _COMPREHENSIONS):
            # their variables are their own; a walrus in a comprehension binds outside
            bound.update(n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in statements:
        visit(statement)
    return bound


def _reads(node: ast.AST) -> set[str]:
    """The names an expression or statement reads from the scope it runs in; a function
    it defines reads, when called, the names its body uses and does not bind."""
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load | ast.Del) else set()
    if isinstance(node, _COMPREHENSIONS):
        first, *rest = node.generators
        inner = _reads(first.iter)
        own = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        parts = [*first.ifs, *(p for g in rest for p in (g.iter, *g.ifs))]
        parts += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        return inner | set().union(*map(_reads, parts)) - own
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        outside = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
        if not isinstance(node, ast.Lambda):
            outside += node.decorator_list
        arguments = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        body = node.body if isinstance(node.body, list) else [ast.Expr(node.body)]
        declared = {n for s in ast.walk(node) if isinstance(s, ast.Global) for n in s.names}
        local = (_bound_names(body) | arguments) - declared
        inside = set().union(*map(_reads, body)) - local
        return set().union(*map(_reads, outside)) | inside
    return set().union(*map(_reads, ast.iter_child_nodes(node)))


def _free_names(statements: list[ast.stmt], bound: frozenset[str] = frozenset()) -> set[str]:
    """The names these statements read before they bind them (so from earlier cells).
    Only a simple statement binds for the statements after it; a loop's, a branch's or a
    ``try``'s names may be unbound after it, so a later read of them counts."""
    free: set[str] = set()
    bound = set(bound)
    for statement in statements:
        if isinstance(statement, ast.For | ast.AsyncFor):
            free |= _reads(statement.iter) - bound
            inner = frozenset(bound | _bound_names([ast.Expr(statement.target)]))
            free |= _free_names(statement.body, inner) | _free_names(statement.orelse, inner)
        elif isinstance(statement, ast.If | ast.While):
            free |= _reads(statement.test) - bound
            inner = frozenset(bound)
            free |= _free_names(statement.body, inner) | _free_names(statement.orelse, inner)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            free |= set().union(*(_reads(item.context_expr) for item in statement.items)) - bound
            names = [ast.Expr(i.optional_vars) for i in statement.items if i.optional_vars]
            free |= _free_names(statement.body, frozenset(bound | _bound_names(names)))
        else:  # a simple statement, or one read whole (try, match, class)
            free |= _reads(statement) - bound
            target = getattr(statement, "target", None)
            if isinstance(statement, ast.AugAssign) and isinstance(target, ast.Name):
                free |= {target.id} - bound  # x += 1 reads x
            if not isinstance(statement, ast.Try | ast.Match):
                bound |= _bound_names([statement])
    return free


def _root(node: ast.AST) -> ast.AST:
    """``a`` of ``a.b[c].d``, or the call that ``f(x).y`` starts from."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node


def _fresh(node: ast.AST) -> bool:
    """A new object made right there: ``Net(...)``, ``torch.Generator()`` (a class)."""
    return isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1][:1].isupper()


def _made_here(statements: list[ast.stmt]) -> set[str]:
    """The names these statements bind only to objects they make: a literal, a
    comprehension, ``Net(...)``, a ``.copy()`` (changing them changes nothing else)."""

    def new(value: ast.expr) -> bool:
        if isinstance(value, ast.Dict | ast.List | ast.Set | _COMPREHENSIONS):
            return True
        copies = ("copy", "deepcopy", "clone")
        return _fresh(value) or (
            isinstance(value, ast.Call) and _dotted(value.func).split(".")[-1] in copies
        )

    made: dict[str, bool] = {}
    simple: set[int] = set()  # the Name nodes of `name = value`
    nodes = [n for s in statements for n in ast.walk(s)]
    for node in nodes:
        if isinstance(node, ast.Assign) and [type(t) for t in node.targets] == [ast.Name]:
            name = node.targets[0].id
            made[name] = made.get(name, True) and new(node.value)
            simple.add(id(node.targets[0]))
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            if id(node) not in simple:
                made[node.id] = False  # bound another way too: a loop, an unpacking
    return {name for name, only in made.items() if only}


def _changes_state(statements: list[ast.stmt], local: set[str], impure: set[str]) -> bool:
    """Whether these statements may change an object that is not in ``local``: assign to
    an attribute or item of it, call an in-place method on it, train, draw from a global
    random stream, or call one of the notebook's ``impure`` functions."""

    def outside(node: ast.AST) -> bool:
        root = _root(node)
        if isinstance(root, ast.Name):
            return root.id not in local
        return not _fresh(root)

    def visit(node: ast.AST) -> bool:
        if isinstance(node, _SCOPES):
            return False  # runs when called; judged as the function it is
        if isinstance(node, ast.Global | ast.Nonlocal):
            return True
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute | ast.Subscript) and not isinstance(
                        part.ctx, ast.Load
                    ):
                        if outside(part):
                            return True
        if isinstance(node, ast.Call):
            name, func = _dotted(node.func), node.func
            if isinstance(func, ast.Attribute) and outside(func.value):
                method = func.attr
                if method in _STATEFUL_METHODS or (method.endswith("_") and method[0] != "_"):
                    return True
            if name in _STATEFUL_FUNCTIONS or name in impure:
                return True
            if _GLOBAL_RANDOM.search(name) and not any(k.arg == "generator" for k in node.keywords):
                return True
            if any(k.arg == "inplace" for k in node.keywords):
                return True
        return any(visit(child) for child in ast.iter_child_nodes(node))

    return any(visit(statement) for statement in statements)


def _only_checks(statements: list[ast.stmt], checks: set[str]) -> bool:
    """Whether these statements only compute, glue and check: each bare call is to one of
    ``checks`` (``glue``, ``claim``, the notebook's own functions that change nothing),
    and no plain ``import module`` (imported for its effect, or read later)."""
    for statement in statements:
        if isinstance(statement, ast.Expr):
            value = statement.value
            if not isinstance(value, ast.Constant) and not (
                isinstance(value, ast.Call) and _dotted(value.func) in checks
            ):
                return False  # model.fit(), display(...), plt.plot(...): effects
        elif isinstance(statement, ast.Import):
            if any(alias.asname is None for alias in statement.names):
                return False  # the first `import mfkit` sets the thread policy
        elif isinstance(statement, ast.For | ast.AsyncFor | ast.While | ast.If):
            if not _only_checks(statement.body + statement.orelse, checks):
                return False
        elif isinstance(statement, ast.With | ast.AsyncWith):
            if not _only_checks(statement.body, checks):
                return False
        elif isinstance(statement, ast.Try):
            parts = [s for h in statement.handlers for s in h.body]
            parts += statement.body + statement.orelse + statement.finalbody
            if not _only_checks(parts, checks):
                return False
        elif not isinstance(
            statement,
            ast.Assign
            | ast.AnnAssign
            | ast.AugAssign
            | ast.FunctionDef
            | ast.AsyncFunctionDef
            | ast.ClassDef
            | ast.ImportFrom
            | ast.Assert
            | ast.Raise
            | ast.Return
            | ast.Pass,
        ):
            return False  # del, global, match, ...
    return True


def _check_functions(trees: list[ast.Module]) -> tuple[set[str], set[str]]:
    """The notebook's functions that only compute, glue and check (like ``glue_row``) and
    those that may change something (``impure``); a name defined twice must be both times."""
    defined: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for tree in trees:
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                defined.setdefault(statement.name, []).append(statement)
    checks = set(CHECK_CALLS)
    while True:
        impure = set(defined) - checks
        more = {
            name
            for name, functions in defined.items()
            if name not in checks
            and all(
                _only_checks(f.body, checks)
                and not _changes_state(f.body, _bound_names(f.body), impure)
                for f in functions
            )
        }
        if not more:
            return checks, impure
        checks |= more


def _is_hidden_check(cell: nbformat.NotebookNode) -> bool:
    """A code cell the page hides that checks or glues: ``remove-cell``, or ``remove-input``
    with a ``claim(`` (a ``remove-input`` cell without one shows its output: a figure)."""
    tags = cell.metadata.get("tags", [])
    if "remove-cell" in tags:
        return True
    return "remove-input" in tags and re.search(r"\bclaim(?:_speed)?\(", cell.source) is not None


def _shows_output(cell: nbformat.NotebookNode) -> bool:
    """Whether the page shows an output of this cell (not for ``remove-cell``): a claim
    that failed on the build machine, in warn mode, leaves its warning box there."""
    if "remove-cell" in cell.metadata.get("tags", []):
        return False
    return any(not _is_glue_record(out) for out in cell.get("outputs", []))


def _is_glue_record(output: dict) -> bool:
    """An output of ``glue(..., display=False)``: data for the prose, never shown."""
    return bool(output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix"))


def _parsed(cell: nbformat.NotebookNode) -> ast.Module | None:
    try:
        return ast.parse(cell.source)
    except SyntaxError:  # IPython's %magic or !shell
        return None


def without_hidden_checks(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``notebook`` without the hidden cells that only check and glue, and how
    many went.

    A hidden check cell (tag ``remove-cell``, or ``remove-input`` with a ``claim(``) goes
    when all of these hold, and stays otherwise:

    - it binds no name that a later cell of the download reads (before binding it
      itself): the cells are walked from the last, so a cell that stays for a name keeps
      the cells that the names it reads come from, inside its functions too;
    - its bare calls are to ``glue``, ``claim``, ``claim_speed``, ``print`` or a function
      of the notebook that only does the same (``glue_row``): not ``model.fit()``,
      ``display(...)``; and it has no plain ``import module`` (imported for its effect, as
      the first ``import mfkit`` that sets the thread policy before torch loads);
    - it changes no object that it did not make: no ``x[i] = ...`` or ``x.a = ...``, no
      in-place method (``append``, ``update``, ``fit``, ``train``, ``eval``, ``step``,
      torch's ``x.add_()``, ``inplace=``, ...), no draw from a global random stream
      (``np.random.*``, ``torch.randn``, ``torch.manual_seed``), no call of a notebook
      function that does any of these;
    - Python parses it (no ``%magic``), and the page shows none of its outputs (a claim
      that failed on the build machine shows its warning box there).

    What it cannot see: a library function called for its value is taken to leave its
    arguments alone, and a draw from a global random stream inside a library call (a
    torch module built without a seed) goes unnoticed; ``browser_tests/test_downloads.py``
    runs a downloaded chapter to check the rule. In the cells that stay, the glue records
    (``display=False``: outputs the page never shows) are dropped.
    """
    notebook = copy.deepcopy(notebook)
    trees = [_parsed(c) if c.cell_type == "code" else None for c in notebook.cells]
    checks, impure = _check_functions([t for t in trees if t is not None])
    kept: list[nbformat.NotebookNode] = []
    needed: set[str] = set()  # the names that the cells after this one read
    removed = 0
    for cell, tree in zip(reversed(notebook.cells), reversed(trees), strict=True):
        if cell.cell_type != "code":
            kept.append(cell)
            continue
        if (
            tree is not None
            and _is_hidden_check(cell)
            and not _shows_output(cell)
            and _only_checks(tree.body, checks)
            and not _changes_state(tree.body, _made_here(tree.body), impure)
            and not _bound_names(tree.body) & needed
        ):
            removed += 1
            continue
        needed |= _free_names(tree.body) if tree else set(_IDENTIFIER.findall(cell.source))
        cell.outputs = [out for out in cell.get("outputs", []) if not _is_glue_record(out)]
        kept.append(cell)
    notebook.cells = kept[::-1]
    return notebook, removed


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
