"""Downloaded notebooks leave out the page's hidden check cells that nothing else needs.

A chapter's hidden cells (tag ``remove-cell``, or ``remove-input`` cells that call
``claim``) glue values and check claims. :func:`without_hidden_checks` drops each one
that defines nothing a later kept cell reads and changes no state, found by reading the
cells' code with :mod:`ast`.
"""

from __future__ import annotations

import ast
import copy
import re

import nbformat

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
