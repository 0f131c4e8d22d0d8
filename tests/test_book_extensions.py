"""The book's own Sphinx extensions (book/_ext): the notebook rewrites behind the downloads."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from downloads import PLACEHOLDER, with_setup_cell, without_solutions  # noqa: E402
from glued_prose import GLUE_RECORD, glued_outputs, with_glued_values  # noqa: E402
from hidden_checks import without_hidden_checks  # noqa: E402
from launch_local import lab_url  # noqa: E402
from silent_checks import drop_empty_cells  # noqa: E402
from vega_charts import (  # noqa: E402
    SCRIPTS,
    STATIC,
    STYLE,
    VEGALITE_MIME,
    VegaLiteOutput,
    add_scripts,
    chart_html,
    has_chart,
)

md = nbformat.v4.new_markdown_cell
code = nbformat.v4.new_code_cell

EXERCISE = "```{{exercise}}\n:label: ex-{n}\n\nDo thing {n}.\n```\n"
START = "````{{solution-start}} ex-{n}\n:class: dropdown\n````\n"
END = "````{solution-end}\n````\n"


def notebook(*cells) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


def sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_solutions_spanning_cells_become_empty_cells():
    nb = notebook(
        md("# Title"),
        code("x = 1"),
        md("## Exercises\n\n" + EXERCISE.format(n=1) + "\n" + START.format(n=1)),
        code("answer = 1"),
        md("Because it is.\n\n" + END + "\n" + EXERCISE.format(n=2) + "\n" + START.format(n=2)),
        code("answer = 2"),
        md(END + "\n## Further reading"),
    )
    student, replaced = without_solutions(nb)
    assert replaced == 2
    assert sources(student) == [
        ("markdown", "# Title"),
        ("code", "x = 1"),
        ("markdown", "## Exercises\n\n" + EXERCISE.format(n=1).rstrip()),
        ("markdown", PLACEHOLDER),
        ("code", ""),
        ("markdown", EXERCISE.format(n=2).rstrip()),
        ("markdown", PLACEHOLDER),
        ("code", ""),
        ("markdown", "## Further reading"),
    ]
    assert len(nb.cells) == 7 and nb.cells[3].source == "answer = 1"  # the input is untouched


def test_a_solution_inside_one_markdown_cell_and_colon_fences():
    text = (
        "Before.\n\n:::{solution-start} ex-1\n:class: dropdown\n:::\n"
        "Hidden.\n:::{solution-end}\n:::\nAfter."
    )
    student, replaced = without_solutions(notebook(md(text)))
    assert replaced == 1
    assert sources(student) == [
        ("markdown", "Before."),
        ("markdown", PLACEHOLDER),
        ("code", ""),
        ("markdown", "After."),
    ]


def test_a_notebook_without_solutions_is_unchanged():
    nb = notebook(md("# Title\n\n```{exercise}\nNo solution given.\n```"), code("y = 2"))
    student, replaced = without_solutions(nb)
    assert replaced == 0
    assert sources(student) == sources(nb)


def test_an_unclosed_solution_is_an_error():
    with pytest.raises(ValueError, match="solution-end"):
        without_solutions(notebook(md(START.format(n=1)), code("secret = 1")))


def test_setup_cell_follows_the_title_cell_and_names_the_wheel():
    nb = notebook(md("# Title"), code("import mfkit"))
    hosted = with_setup_cell(nb, "mfkit-9.9-py3-none-any.whl")
    assert [c.cell_type for c in hosted.cells] == ["markdown", "markdown", "code", "code"]
    setup = hosted.cells[2].source
    assert 'pathlib.Path("mfkit-9.9-py3-none-any.whl")' in setup
    compile(setup, "setup cell", "exec")  # valid Python once the template is filled in
    assert len(nb.cells) == 2


def test_setup_cell_runs_as_a_no_op_where_mfkit_is_installed():
    hosted = with_setup_cell(notebook(code("pass")), "absent.whl")
    exec(compile(hosted.cells[1].source, "setup cell", "exec"), {})  # no install, no error


def test_lab_url_joins_base_and_source():
    assert lab_url("http://localhost:8888/", "notebooks/01_x.md") == (
        "http://localhost:8888/lab/tree/notebooks/01_x.md"
    )


def test_silent_check_cells_leave_no_empty_box() -> None:
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    doc = new_document("page", get_default_settings(Parser))
    silent = nodes.container(nb_element="cell_code")
    warning = nodes.container(
        "", nodes.paragraph(text="Not so on this machine"), nb_element="cell_code"
    )
    other = nodes.container(nb_element="something else")
    doc += [silent, warning, other]
    drop_empty_cells(None, doc)
    assert list(doc.children) == [warning, other]


# ---------------------------------------------------------------- interactive charts


def chart_output(spec: dict, mime: str = VEGALITE_MIME, inline: bool = False):
    from myst_nb.core.render import MimeData

    return VegaLiteOutput.handle_mime(None, MimeData(mime, spec), inline)


def test_a_vega_lite_output_becomes_its_spec_as_data_on_the_page() -> None:
    spec = {"mark": "point", "title": "Norms", "data": {"values": [{"title": "A&B"}]}}
    (node,) = chart_output(spec)
    html = node.astext()
    assert node["format"] == "html"
    assert html.startswith(
        '<div class="mfkit-chart" role="figure" aria-label="Interactive chart: Norms">'
    )
    data = re.search(r'<script type="application/json">(.*?)</script>', html).group(1)
    assert json.loads(data) == spec
    assert "cdn" not in html and "http" not in html
    assert has_chart(nodes_document(node))


def test_chart_text_cannot_end_the_script_or_be_read_as_markup() -> None:
    spec = {"title": 'x"<b>', "data": {"values": [{"title": "</script><script>alert(1)</script>"}]}}
    html = chart_html(spec)
    data = html.split('<script type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data
    assert json.loads(data) == spec
    assert 'aria-label="Interactive chart: x&quot;&lt;b>"' in html


def test_other_outputs_are_left_to_myst_nb() -> None:
    assert chart_output({"mark": "point"}, mime="text/html") is None
    assert chart_output({"mark": "point"}, inline=True) is None
    assert not has_chart(nodes_document())
    assert not has_chart(None)


def test_only_pages_with_a_chart_load_vega_in_order() -> None:
    class App:
        def __init__(self) -> None:
            self.files: list[str] = []

        def add_js_file(self, name: str) -> None:
            self.files.append(name)

        def add_css_file(self, name: str) -> None:
            self.files.append(name)

    (chart,) = chart_output({"mark": "point"})
    with_chart, without = App(), App()
    add_scripts(with_chart, "page", "page.html", {}, nodes_document(chart))
    add_scripts(without, "other", "page.html", {}, nodes_document())
    assert with_chart.files == [*SCRIPTS, STYLE]
    assert without.files == []
    assert all((STATIC / name).is_file() for name in with_chart.files)


def test_myst_nb_finds_the_chart_renderer_and_prefers_it_in_html() -> None:
    from myst_nb.core.render import get_mime_priority, load_mime_renders

    assert VegaLiteOutput in load_mime_renders.__wrapped__()  # the entry point in book/_ext
    load_mime_renders.cache_clear()
    html = get_mime_priority("html", [])
    assert html.index(VEGALITE_MIME) < html.index("text/html") < html.index("image/png")
    assert VEGALITE_MIME not in get_mime_priority("latex", [])


def test_the_served_libraries_are_the_versions_altair_expects() -> None:
    import altair as alt

    served = {name: (STATIC / name).read_text() for name in SCRIPTS}
    assert list(served) == [
        "vega/vega.min.js", "vega/vega-lite.min.js", "vega/vega-embed.min.js", "vega/charts.js"
    ]  # fmt: skip
    vega = re.search(r'version="(\d+)\.\d+\.\d+"', served["vega/vega.min.js"]).group(1)
    assert vega == alt.VEGA_VERSION
    vegalite = alt.SCHEMA_VERSION.lstrip("v")  # the schema Altair writes specs against
    assert f'var n="{vegalite}"' in served["vega/vega-lite.min.js"][:1000]
    assert re.search(rf'="{alt.VEGAEMBED_VERSION}\.\d+\.\d+"', served["vega/vega-embed.min.js"])
    assert "BSD-3-Clause" in (STATIC / "vega" / "README.md").read_text()
    for name in ("vega", "vega-lite", "vega-embed"):
        assert "Redistribution" in (STATIC / "vega" / f"LICENSE-{name}").read_text()
    assert "http" not in served["vega/charts.js"]  # it draws, and fetches nothing


def nodes_document(*children):
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    doc = new_document("page", get_default_settings(Parser))
    doc += [nodes.paragraph(text="prose"), *children]
    return doc


# ---------------------------------------------------------------- glued values in the prose


def glued(key: str, display: bool = False, **data) -> dict:
    """An output as ``myst_nb.glue(key, value, display=display)`` writes it."""
    prefix = "" if display else GLUE_RECORD
    return nbformat.v4.new_output(
        "display_data",
        data={prefix + mime.replace("_", "/"): value for mime, value in data.items()},
        metadata={"scrapbook": {"name": key, "mime_prefix": prefix}},
    )


def glue_cell(*outputs, source="glue(...)", tags=("remove-cell",)) -> nbformat.NotebookNode:
    cell = code(source, outputs=list(outputs))
    cell.metadata["tags"] = list(tags)
    return cell


def filled(*cells, pages=None) -> tuple[list[str], list[str]]:
    """The Markdown cells of the notebook with its glued values, and the problems."""
    nb, problems = with_glued_values(notebook(*cells), pages)
    return [c.source for c in nb.cells if c.cell_type == "markdown"], problems


def test_glue_text_roles_are_formatted_as_the_role_asks():
    values = glue_cell(
        glued("rmse", text_plain="0.91234"),
        glued("n", text_plain="100000"),
        glued("share", text_plain="0.1234"),
        glued("word", text_plain="'faster'"),
        glued("count", text_plain="943"),
    )
    text = (
        "RMSE {glue:text}`rmse:.3f`, {glue:text}`n:,.0f` ratings ({glue:text}`n:,d`), "
        "{glue:text}`share:.1%` of them, {glue:text}`word` than, {glue}`word` "
        "and {glue:text}`count` users; {glue:text}`rmse` as printed."
    )
    (shown,), problems = filled(values, md(text))
    assert problems == []
    assert shown == (
        "RMSE 0.912, 100,000 ratings (100,000), 12.3% of them, faster than, 'faster' "
        "and 943 users; 0.91234 as printed."
    )


def test_glued_text_matches_myst_nb_and_escapes_markdown():
    from myst_nb.core.variables import format_plain_text

    values = glue_cell(glued("title", text_plain="'*batteries* not_included (1987)'"))
    (shown,), _ = filled(values, md("See {glue:text}`title`."))
    assert format_plain_text("'*batteries* not_included (1987)'", "") in shown.replace("\\", "")
    assert shown == r"See \*batteries\* not\_included (1987)."  # shown as text, not emphasis


def test_glue_md_role_and_directive_paste_the_markdown():
    values = glue_cell(
        glued("verdict", text_markdown="**faster**", text_plain="<Markdown>"),
        glued("result", text_markdown="Spark's ALS: 0.93.\n\n:::{note}\nSkipped.\n:::\n"),
    )
    before = "Intro {glue:md}`verdict:myst`.\n\n```{glue:md} result\n:format: myst\n```\n\nAfter."
    (shown,), problems = filled(values, md(before))
    assert problems == []
    assert shown == "Intro **faster**.\n\nSpark's ALS: 0.93.\n\n:::{note}\nSkipped.\n:::\n\nAfter."


def test_glue_figure_directive_attaches_the_picture_with_its_caption():
    picture = "iVBORw0KGgo="  # base64, as a notebook stores a PNG
    values = glue_cell(glued("map", image_png=picture, text_plain="<Figure>"))
    cells = [md(":::{glue:figure} map\n:name: fig-map\n:width: 80%\n\nThe t-SNE map.\n:::\n")]
    nb, problems = with_glued_values(notebook(values, *cells))
    assert problems == []
    cell = nb.cells[1]
    assert cell.source == "![map](attachment:map.png)\n\n*The t-SNE map.*\n"
    assert cell.attachments == {"map.png": {"image/png": picture}}
    nbformat.validate(nb)


def test_glue_directive_shows_html_or_plain_text_as_the_page_picks():
    values = glue_cell(
        glued("table", text_html="<table><tr><td>1</td></tr></table>", text_plain="   a\n0  1"),
        glued("text", text_plain="   a\n0  1"),
        glued("formula", text_latex="$x^2$", text_plain="x^2"),
    )
    blocks = "```{glue} table\n```\n\n```{glue:any} text\n```\n\n```{glue:math} formula\n```"
    (shown,), problems = filled(values, md(blocks))
    assert problems == []
    assert shown == (
        "\n<table><tr><td>1</td></tr></table>\n\n\n```\n   a\n0  1\n```\n\n$$\nx^2\n$$\n"
    )


def test_a_reference_to_another_page_reads_its_values():
    pages = {"02_other": {"best": {"data": {"text/plain": "0.9312"}, "metadata": {}}}}
    text = "Chapter 2 reached {glue:text}`02_other::best:.2f`, see {glue:text}`nowhere::x`."
    (shown,), problems = filled(md(text), pages=pages.get)
    assert shown == "Chapter 2 reached 0.93, see {glue:text}`nowhere::x`."
    assert problems == ["cell 1: glue reference to 'nowhere': no such page with glued values"]


def test_an_unknown_key_or_unformattable_value_is_left_as_written_and_reported():
    values = glue_cell(glued("rmse", text_plain="np.float64(0.91)"))
    text = "Unknown {glue:text}`nope:.3f`; numpy {glue:text}`rmse:.3f`."
    (shown,), problems = filled(values, md(text))
    assert shown == text
    assert len(problems) == 2
    assert "glue key 'nope' is not among this notebook's glued values" in problems[0]
    assert "cannot format 'np.float64(0.91)' as '.3f'" in problems[1]


def test_the_last_glue_of_a_key_wins_and_display_true_counts():
    nb = notebook(
        glue_cell(glued("x", text_plain="1")),
        glue_cell(glued("x", display=True, text_plain="2"), glued("y", text_plain="3")),
    )
    values = glued_outputs(nb)
    assert values["x"]["data"] == {"text/plain": "2"}
    assert values["y"]["data"] == {"text/plain": "3"}


# ---------------------------------------------------------------- hidden check cells


def hidden(source: str, tag: str = "remove-cell", outputs=()) -> nbformat.NotebookNode:
    return glue_cell(*outputs, source=source, tags=(tag,))


def kept_sources(nb: nbformat.NotebookNode) -> list[str]:
    checked, removed = without_hidden_checks(nb)
    assert removed == len(nb.cells) - len(checked.cells)
    return [c.source for c in checked.cells if c.cell_type == "code"]


IMPORTS = "import mfkit  # noqa: F401"
PLUMBING = "from myst_nb import glue\n\nfrom mfkit.claims import claim"


def test_cells_that_only_glue_or_claim_go_and_their_imports_with_them():
    nb = notebook(
        md("# Title"),
        hidden(IMPORTS),
        hidden(PLUMBING),
        code("rmse = 0.9\nprint(rmse)"),
        hidden('glue("rmse", rmse, display=False)', outputs=[glued("rmse", text_plain="0.9")]),
        md("RMSE {glue:text}`rmse:.1f`."),
        hidden('claim(rmse < 1, "below one")', tag="remove-input"),
        code("plot(rmse)", outputs=[]),
    )
    nb.cells[-1].metadata["tags"] = ["remove-input"]  # a figure with hidden code: it stays
    assert kept_sources(nb) == [IMPORTS, "rmse = 0.9\nprint(rmse)", "plot(rmse)"]


def test_a_hidden_cell_whose_names_a_later_cell_reads_stays():
    nb = notebook(
        hidden(PLUMBING),
        code("data = [3, 1, 2]"),
        hidden("ordered = sorted(data)\nglue('first', ordered[0])"),  # read by a shown cell
        hidden("top = ordered[-1]\nclaim(top == 3, 'three')"),  # read by a kept hidden cell
        hidden("best = top\nglue('best', best)"),
        code("print(best, ordered)"),
    )
    assert kept_sources(nb) == [
        PLUMBING,
        "data = [3, 1, 2]",
        "ordered = sorted(data)\nglue('first', ordered[0])",
        "top = ordered[-1]\nclaim(top == 3, 'three')",
        "best = top\nglue('best', best)",
        "print(best, ordered)",
    ]


def test_names_a_later_cell_binds_before_reading_keep_nothing():
    nb = notebook(
        code("from myst_nb import glue\nscores = {'a': 1.0, 'b': 2.0}"),
        hidden("for name, value in scores.items():\n    glue(name, value)\nbest = max(scores)"),
        code("for name in scores:\n    print(name)\nbest = 'b'\nprint(best)"),
        code("print([value for value in scores.values()])\nf = lambda value: value"),
    )
    assert len(kept_sources(nb)) == 3


def test_a_name_read_inside_a_function_or_after_a_loop_keeps_its_cell():
    nb = notebook(
        hidden("scale = 2\nglue('scale', scale)"),
        hidden("for row in [1, 2]:\n    glue(f'row{row}', row)"),
        code("def scaled(x):\n    return scale * x"),
        code("print(scaled(3), row)"),  # `row` after its own loop would be unbound
    )
    assert len(kept_sources(nb)) == 4


def test_hidden_cells_that_may_change_state_stay():
    changing = [
        "results.loc['x', 'rmse'] = 0.9\nglue('x', 0.9)",
        "model.eval()",
        "history = fit(model, data)\nclaim(history.ok, 'trains')",
        "seen.append(1)",
        "noise = np.random.rand(3)\nclaim(noise.max() < 1, 'small')",
        "torch.manual_seed(0)",
        "table.drop(columns=['x'], inplace=True)",
        "weights.add_(1)",
        "mine = model\nmine.train()",  # an alias of an object made elsewhere
        "import itertools",  # imported for its effect, or read later
        "%timeit f()",
        "display(table)",
    ]
    nb = notebook(*(hidden(source) for source in changing), code("print(model, results)"))
    assert kept_sources(nb) == [*changing, "print(model, results)"]


def test_changes_to_objects_the_cell_makes_and_pure_helpers_leave_it_removable():
    helpers = (
        "def glue_row(prefix, row):\n    for key, value in row.items():\n"
        "        glue(f'{prefix}_{key}', value)\n\n\n"
        "def remember(value):\n    seen.append(value)"
    )
    nb = notebook(
        code(helpers),
        hidden("on_map = {}\non_map['a'] = 1\nnet = Net().eval()\nglue_row('map', on_map)"),
        hidden("g = torch.Generator().manual_seed(0)\nx = torch.randint(5, (3,), generator=g)"),
        hidden("remember(3)"),  # a helper that changes `seen`: stays
    )
    assert kept_sources(nb) == [helpers, "remember(3)"]


def test_a_claim_cell_whose_warning_the_page_shows_stays_and_glue_records_go():
    warning = nbformat.v4.new_output("display_data", data={"text/plain": "Warning: ..."})
    nb = notebook(
        hidden("claim(False, 'fails here')", tag="remove-input", outputs=[warning]),
        hidden("x = 1\nglue('x', x)", outputs=[glued("x", text_plain="1")]),
        code("print(x)", outputs=[glued("y", display=True, text_plain="2")]),
    )
    checked, removed = without_hidden_checks(nb)
    assert removed == 0
    assert checked.cells[0].outputs == [warning]
    assert checked.cells[1].outputs == []  # the glue record, which the page never shows
    assert len(checked.cells[2].outputs) == 1  # a glue(..., display=True) output shows


def test_the_notebook_without_its_hidden_cells_still_runs():
    nb = notebook(
        hidden("import math"),
        hidden("from myst_nb import glue"),
        code("values = [1.0, 4.0, 9.0]"),
        hidden("roots = [math.sqrt(v) for v in values]\nglue('roots', roots)"),
        hidden("assert roots == [1.0, 2.0, 3.0], 'claim: roots'"),
        hidden("total = sum(roots)\nglue('total', total)"),
        code("print(f'{total:.1f}', len(roots))"),
    )
    checked, removed = without_hidden_checks(nb)
    assert removed == 1  # the assert; the rest binds what the last cell prints
    namespace: dict = {}  # myst_nb's glue outside a kernel: prints, harmless
    for cell in checked.cells:
        exec(compile(cell.source, "cell", "exec"), namespace)
    assert namespace["total"] == 6.0
