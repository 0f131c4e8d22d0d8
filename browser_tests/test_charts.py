"""The book's interactive charts in a real browser, offline: drawn, hover, legend.

Run with ``make check-book`` (after ``make book``), like test_book.py, whose local server,
Chromium and skip rules these tests share: every request off the local site is refused.

A chart is a ``<div class="mfkit-chart">`` that ``book/_ext/vega_charts.py`` writes for
each Vega-Altair output, drawn as SVG by ``_static/vega/charts.js`` with the book's own
Vega, Vega-Lite and vega-embed. On each page that holds one, each chart must

- draw: ``charts.js`` reports it drawn, and its SVG holds marks;
- show a tooltip headed by a title when the mouse rests on a point (vega-tooltip writes
  the datum's ``title`` field as the tooltip's heading);
- change what is drawn when an entry of its legend is clicked (the legend selects), where
  it has a legend, or, where a click on a mark selects (linked bars), when a mark is
  clicked;

and no page with a chart may raise a JavaScript error or ask for anything off the site.
Each chapter whose code cells call an ``interactive_*`` function of ``mfkit.plots`` must
have a chart on its page. After hovering, each chart's screenshot is saved as
``screenshots/chart-<page>-<n>.png``.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from test_book import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HTML,
    PAGE_TIMEOUT_MS,
    ROOT,
    SCREENSHOTS,
    chapters,
    listing,
    require_book,
    require_browser,
    server,  # noqa: F401 (the local site, a fixture shared with test_book.py)
    site_pages,
)

DRAW_TIMEOUT_MS = 20_000
TOOLTIP_TIMEOUT_MS = 3_000
HOVER_TRIES = 8  # points to rest on until one shows its tooltip (points may overlap)


def chart_pages() -> list[str]:
    """Site paths of the pages that hold a chart ('notebooks/03_x.html', ...)."""
    return [p for p in site_pages() if 'class="mfkit-chart"' in (HTML / p).read_text()]


def interactive_source(file: str) -> bool:
    """Whether a chapter's code cells call an interactive chart of mfkit.plots."""
    for source in (HTML / "_sources" / f"{file}.md", ROOT / f"{file}.md"):
        if source.is_file():
            break
    else:
        return False
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", source.read_text(), re.M | re.S)
    return any(re.search(r"\binteractive_\w+\(", cell) for cell in cells)


@dataclasses.dataclass
class ChartReport:
    """What one chart did in the browser."""

    page: str
    index: int
    drawn: str | None = None  # charts.js: "yes", "failed", "pending" or None (never ran)
    marks: int = 0
    tooltip_title: str | None = None
    has_legend: bool = False
    selects_on_click: bool = False  # a point selection on the marks, not on a legend
    legend_changed: bool | None = None
    click_changed: bool | None = None
    problem: str | None = None


@dataclasses.dataclass
class ChartCrawl:
    charts: list[ChartReport]
    page_errors: list[str]  # "page: uncaught error"
    offsite_requests: list[str]


# The state of one chart's SVG: how many data marks, and how each is painted.
MARKS_JS = """
(box) => {
  const marks = [...box.querySelectorAll("svg .role-mark > *")];
  return {
    count: marks.length,
    paint: marks.map((m) => ["fill", "fill-opacity", "opacity", "d", "transform"]
                     .map((a) => m.getAttribute(a)).join("/")).join(";"),
    legend: box.querySelectorAll("svg .role-legend-symbol > *").length > 0,
  };
}
"""
TOOLTIP_JS = """
() => {
  const tip = document.getElementById("vg-tooltip-element");
  if (!tip || !tip.classList.contains("visible")) return null;
  const heading = tip.querySelector("h2");
  return heading ? heading.textContent.trim() : "";
}
"""


def selects_on_click(spec: dict) -> bool:
    """Whether a chart's spec has a point selection that a click on a mark makes."""
    return any(
        p.get("select", {}).get("type") == "point" and "bind" not in p
        for p in spec.get("params", [])
    )


def changes_marks(page, box, before: str, action) -> bool:
    """Whether ``action`` changes how the chart's marks are drawn."""
    from playwright.sync_api import TimeoutError as Timeout

    action()
    try:
        page.wait_for_function(
            "([box, paint]) => (" + MARKS_JS + ")(box).paint !== paint",
            arg=[box, before],
            timeout=TOOLTIP_TIMEOUT_MS,
        )
        return True
    except Timeout:
        return False


def check_chart(page, box, report: ChartReport, shot: str) -> None:
    """Hover points of one drawn chart, then click its first legend entry or mark."""
    from playwright.sync_api import TimeoutError as Timeout

    before = box.evaluate(MARKS_JS)
    report.marks, report.has_legend = before["count"], before["legend"]
    spec = json.loads(box.query_selector('script[type="application/json"]').text_content())
    report.selects_on_click = selects_on_click(spec)
    if not report.marks:
        return
    box.scroll_into_view_if_needed()
    marks = box.query_selector_all("svg .role-mark > *")
    for mark in marks[:: max(1, report.marks // HOVER_TRIES)]:
        mark.hover(force=True)
        try:
            page.wait_for_function(f"({TOOLTIP_JS})() !== null", timeout=TOOLTIP_TIMEOUT_MS)
        except Timeout:
            continue  # covered by another point, or between two: try the next one
        report.tooltip_title = page.evaluate(TOOLTIP_JS)
        if report.tooltip_title:
            break
    box.screenshot(path=str(SCREENSHOTS / shot))
    page.mouse.move(0, 0)
    if report.has_legend:
        legend = box.query_selector("svg .role-legend-symbol > *")
        report.legend_changed = changes_marks(
            page, box, before["paint"], lambda: legend.click(force=True)
        )
    elif report.selects_on_click:
        report.click_changed = changes_marks(
            page, box, before["paint"], lambda: marks[0].click(force=True)
        )


@pytest.fixture(scope="session")
def chart_crawl(server: str) -> ChartCrawl:  # noqa: F811
    sync_playwright, PlaywrightError = require_browser()
    offsite: list[str] = []
    errors: list[str] = []
    charts: list[ChartReport] = []

    def route(r) -> None:
        url = r.request.url
        if url.startswith(server) or url.startswith("data:"):
            r.continue_()
        else:
            offsite.append(url)
            r.abort()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", route)
        try:
            for path in chart_pages():
                page = context.new_page()
                page.on("pageerror", lambda exc, path=path: errors.append(f"{path}: {exc}"))
                try:
                    page.goto(server + path, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_function(
                        "[...document.querySelectorAll('div.mfkit-chart')]"
                        ".every((b) => ['yes', 'failed'].includes(b.dataset.drawn))",
                        timeout=DRAW_TIMEOUT_MS,
                    )
                except PlaywrightError as exc:
                    errors.append(f"{path}: charts not drawn: {str(exc).splitlines()[0]}")
                for i, box in enumerate(page.query_selector_all("div.mfkit-chart")):
                    report = ChartReport(page=path, index=i, drawn=box.get_attribute("data-drawn"))
                    charts.append(report)
                    if report.drawn != "yes":
                        continue
                    shot = f"chart-{path.removesuffix('.html').replace('/', '-')}-{i}.png"
                    try:
                        check_chart(page, box, report, shot)
                    except PlaywrightError as exc:
                        report.problem = str(exc).splitlines()[0]
                page.close()
        finally:
            context.close()
            browser.close()
    return ChartCrawl(charts, errors, offsite)


def test_chapters_with_interactive_charts_show_them() -> None:
    """Each chapter that makes an interactive chart has one on its built page."""
    require_book()
    pages = set(chart_pages())
    lacking = [f for f in chapters() if interactive_source(f) and f"{f}.html" not in pages]
    assert not lacking, listing("chapters whose interactive charts are not on the page", lacking)


def test_charts_draw_offline(chart_crawl: ChartCrawl) -> None:
    assert chart_crawl.charts, "no page of the book holds a chart"
    problems = list(chart_crawl.page_errors)
    for c in chart_crawl.charts:
        where = f"{c.page} chart {c.index + 1}"
        if c.drawn != "yes":
            problems.append(f"{where}: not drawn (charts.js: {c.drawn})")
        elif not c.marks:
            problems.append(f"{where}: drawn, but its SVG holds no marks")
        if c.problem:
            problems.append(f"{where}: {c.problem}")
    assert not problems, listing("charts that did not draw", problems)


def test_charts_ask_nothing_off_the_site(chart_crawl: ChartCrawl) -> None:
    offsite = sorted(set(chart_crawl.offsite_requests))
    assert not offsite, listing("requests off the local site from chart pages (refused)", offsite)


def test_hovering_a_point_shows_a_tooltip_with_a_title(chart_crawl: ChartCrawl) -> None:
    missing = [
        f"{c.page} chart {c.index + 1}: no tooltip heading after resting on {HOVER_TRIES} points"
        for c in chart_crawl.charts
        if c.marks and not c.tooltip_title
    ]
    assert not missing, listing("charts without a titled tooltip", missing)


def test_clicking_a_legend_entry_changes_what_is_drawn(chart_crawl: ChartCrawl) -> None:
    unchanged = [
        f"{c.page} chart {c.index + 1}: the marks look the same after the click"
        for c in chart_crawl.charts
        if c.has_legend and c.legend_changed is False
    ]
    assert not unchanged, listing("legends that do not select", unchanged)


def test_clicking_a_mark_that_selects_changes_what_is_drawn(chart_crawl: ChartCrawl) -> None:
    unchanged = [
        f"{c.page} chart {c.index + 1}: the marks look the same after clicking one"
        for c in chart_crawl.charts
        if not c.has_legend and c.selects_on_click and c.click_changed is False
    ]
    assert not unchanged, listing("charts whose marks do not select", unchanged)
