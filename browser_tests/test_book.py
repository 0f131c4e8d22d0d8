"""The built book in a real browser: pages, figures, math, sidebar, links, screenshots.

Run with ``make check-book`` (after ``make book``); the default ``pytest`` run (testpaths
tests and mfkit) does not collect this folder.

The site is served by a local ``http.server`` on 127.0.0.1 (a random free port) and opened
with Playwright in Debian's Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``); nothing else
is reached: every request off the local site is refused and recorded, and a page that makes
one fails the offline check. The book serves MathJax 3 itself (``sphinx-mathjax-offline``
copies it into ``_static/mathjax``), so its formulas typeset without a network.

``BOOK_HTML`` points the check at another build folder (default ``_build/html``; the
screenshots go next to it, in ``screenshots/``), ``BOOK_TOC`` at another table of contents.
Without a built book the tests are skipped, except where ``CI`` is set: there they fail.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
TOC = Path(os.environ.get("BOOK_TOC", ROOT / "_toc.yml"))
SCREENSHOTS = HTML.parent / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags that work on these machines (closed network, root, no GPU).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
PAGE_TIMEOUT_MS = 30_000
MATHJAX_TIMEOUT_MS = 20_000


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, where a skipped browser check would pass unnoticed."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser check must run)", pytrace=False)
    pytest.skip(reason)


def require_book() -> None:
    """Skip (fail under CI) without a built book."""
    if not (HTML / "index.html").is_file():
        unavailable(f"no built book at {HTML / 'index.html'}: run `make book` first")


def require_browser():
    """Playwright's ``sync_playwright`` and ``Error``; skip (fail under CI) without Chromium."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("no playwright: `make check-book` installs it (the browser extra)")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian)")
    return sync_playwright, Error


# ---------------------------------------------------------------- the table of contents


def toc_files() -> list[str]:
    """``root`` and every ``file:`` of _toc.yml, in order (no suffix)."""
    import yaml

    toc = yaml.safe_load(TOC.read_text())
    files = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(md|ipynb|rst)$", "", f) for f in files]


def chapters() -> list[str]:
    """The chapters (the notebooks) of _toc.yml, in order."""
    return [f for f in toc_files() if f.startswith("notebooks/")]


def plotting_source(file: str) -> bool:
    """Whether a chapter's code cells draw a figure (matplotlib, seaborn or mfkit.plots)."""
    for source in (HTML / "_sources" / f"{file}.md", ROOT / f"{file}.md"):
        if source.is_file():
            break
    else:
        return False
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", source.read_text(), re.M | re.S)
    draws = re.compile(r"\bplt\.|\bsns\.\w*plot|\bplot_\w+\(|\.plot\(|\.imshow\(|\bfig\b")
    return any(draws.search(cell) for cell in cells)


# ---------------------------------------------------------------- static HTML parsing


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            m = re.search(r"url\s*=\s*['\"]?([^'\"]+)", a.get("content") or "", re.I)
            if m:
                self.links.append(m.group(1).strip())


@functools.cache
def scan(path: Path) -> _Scan:
    parser = _Scan()
    parser.feed(path.read_text(errors="replace"))
    return parser


def site_pages() -> list[str]:
    """Every HTML page of the site, relative to its root ('book/intro.html', ...)."""
    skip = {"_static", "_sources", "_images", "_downloads"}
    return sorted(
        p.relative_to(HTML).as_posix()
        for p in HTML.rglob("*.html")
        if not skip & set(p.relative_to(HTML).parts)
    )


# ---------------------------------------------------------------- the local server


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def server():
    require_book()
    handler = functools.partial(_Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------- the crawl


@dataclasses.dataclass
class PageReport:
    """What one chapter page looked like in the browser."""

    file: str  # as in _toc.yml
    url: str
    status: int | None = None
    errors: list[str] = dataclasses.field(default_factory=list)  # uncaught JS errors
    load_error: str | None = None
    images: list[dict] = dataclasses.field(default_factory=list)
    output_images: int = 0
    wants_figures: bool = False
    math: dict = dataclasses.field(default_factory=dict)
    sidebar: list[str] = dataclasses.field(default_factory=list)  # site paths, no fragment
    links: list[str] = dataclasses.field(default_factory=list)  # absolute hrefs
    ids: set[str] = dataclasses.field(default_factory=set)
    screenshot: Path | None = None


@dataclasses.dataclass
class Crawl:
    base: str
    pages: list[PageReport]
    offsite_requests: list[str]  # refused: the book must not need the network


# Run in the page once it has loaded: load every image now (lazy ones too), wait for
# MathJax's first typesetting, then report images, math, sidebar, links and ids.
INSPECT_JS = """
async (mathjaxTimeout) => {
  const imgs = [...document.images];
  imgs.forEach((img) => { img.loading = "eager"; });
  await Promise.all(imgs.map((img) => img.decode().catch(() => null)));

  const mathNodes = [...document.querySelectorAll(".math")];
  let mathjax = "absent";
  if (mathNodes.length) {
    // MathJax is a deferred script: after "load" it has run, or failed to load.
    const start = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)
           && Date.now() - start < 1000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await Promise.race([MathJax.startup.promise,
                          new Promise((r) => setTimeout(r, mathjaxTimeout))]);
      mathjax = "ready";
    } else {
      mathjax = window.MathJax ? "no startup" : "not loaded";
    }
  }
  const unrendered = mathNodes.filter((n) => !n.querySelector("mjx-container"))
    .map((n) => n.textContent.trim().slice(0, 80));
  // TeX errors (merror) and undefined macros (noundefined shows them as red text).
  const mathErrors = [];
  if (mathjax === "ready" && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) {
      item.root.walkTree((node) => {
        const text = () => node.childNodes.map((c) => c.text || "").join("");
        if (node.isKind("merror")) {
          mathErrors.push(`${node.attributes.get("data-mjx-error") || "error"} in ${item.math}`);
        } else if (node.isKind("mtext") && node.attributes.get("mathcolor") === "red"
                   && text().startsWith("\\\\")) {
          mathErrors.push(`undefined ${text()} in ${item.math}`);
        }
      });
    }
  }

  // Visible prose that still holds TeX delimiters: math that was never typeset.
  const article = document.querySelector("article") || document.body;
  const skip = "pre, code, script, style, textarea, .math, mjx-container, .highlight,"
    + " .cell_output, .MathJax";
  const prose = "p, li, td, th, dd, dt, h1, h2, h3, h4, h5, h6, figcaption, caption, blockquote";
  const raw = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const tex = /\\$\\$|\\\\\\(|\\\\\\)|\\\\\\[|\\\\\\]|\\$[^$\\s][^$\\n]*[\\\\^_{}][^$\\n]*\\$/;
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!el || el.closest(skip)) continue;
    if (!el.closest(prose)) continue;
    if (!el.offsetParent && getComputedStyle(el).position !== "fixed") continue;
    const m = t.textContent.match(tex);
    if (m) {
      const i = Math.max(0, m.index - 30);
      raw.push(t.textContent.slice(i, m.index + 50).replace(/\\s+/g, " ").trim());
    }
  }

  return {
    images: imgs.map((img) => ({
      src: img.currentSrc || img.src,
      alt: img.alt,
      complete: img.complete,
      naturalWidth: img.naturalWidth,
    })),
    outputImages: document.querySelectorAll(".cell_output img, .output img").length,
    math: { nodes: mathNodes.length, mathjax, unrendered, errors: mathErrors, raw,
            containers: document.querySelectorAll("mjx-container").length },
    sidebar: [...document.querySelectorAll("nav.bd-docs-nav a[href]")].map((a) => a.href),
    links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
    ids: [...document.querySelectorAll("[id]")].map((e) => e.id)
      .concat([...document.querySelectorAll("a[name]")].map((a) => a.name)),
  };
}
"""


def screenshot_name(file: str, taken: set[str]) -> str:
    name = Path(file).name
    if name in taken:
        name = file.replace("/", "-")
    taken.add(name)
    return name


@pytest.fixture(scope="session")
def crawl(server: str) -> Crawl:
    sync_playwright, PlaywrightError = require_browser()

    offsite_requests: list[str] = []

    def route(r) -> None:
        url = r.request.url
        if url.startswith(server) or url.startswith("data:"):
            r.continue_()
            return
        offsite_requests.append(url)
        r.abort()  # the network is closed: refuse at once instead of waiting

    def site_path(url: str) -> str | None:
        """The site path of a URL on the local server, without its fragment, else None."""
        url = urldefrag(url)[0]
        return unquote(urlsplit(url).path).lstrip("/") if url.startswith(server) else None

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()  # no stale screenshot of a page that is gone or failed
    reports: list[PageReport] = []
    taken: set[str] = set()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", route)
        try:
            for file in toc_files():
                report = PageReport(file=file, url=server + f"{file}.html")
                report.wants_figures = file.startswith("notebooks/") and plotting_source(file)
                reports.append(report)
                page = context.new_page()
                page.on("pageerror", lambda exc, report=report: report.errors.append(str(exc)))
                try:
                    response = page.goto(report.url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    report.status = response.status if response else None
                    found = page.evaluate(INSPECT_JS, MATHJAX_TIMEOUT_MS)
                    report.images = found["images"]
                    report.output_images = found["outputImages"]
                    report.math = found["math"]
                    report.sidebar = [p for p in map(site_path, found["sidebar"]) if p]
                    report.links = found["links"]
                    report.ids = set(found["ids"])
                    if report.status != 200:
                        continue
                    report.screenshot = SCREENSHOTS / f"{screenshot_name(file, taken)}.png"
                    page.screenshot(
                        path=str(report.screenshot), full_page=True, timeout=PAGE_TIMEOUT_MS
                    )
                except PlaywrightError as exc:
                    report.load_error = str(exc).splitlines()[0]
                finally:
                    page.close()
        finally:
            context.close()
            browser.close()
    return Crawl(server, reports, offsite_requests)


def fetch_status(url: str) -> int:
    """The HTTP status of a GET on the local server."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


# ---------------------------------------------------------------- the checks


def listing(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n  " + "\n  ".join(problems)


def test_every_chapter_loads_without_javascript_errors(crawl: Crawl) -> None:
    problems = []
    for page in crawl.pages:
        if page.load_error:
            problems.append(f"{page.file}.html: did not load: {page.load_error}")
        elif page.status != 200:
            problems.append(f"{page.file}.html: HTTP {page.status}")
        for error in page.errors:
            problems.append(f"{page.file}.html: uncaught JavaScript error: {error}")
    assert not problems, listing("chapter pages that failed in the browser", problems)


def test_figures_load(crawl: Crawl) -> None:
    problems = []
    for page in crawl.pages:
        if page.status != 200:
            continue  # reported by the loading test
        for img in page.images:
            if not (img["complete"] and img["naturalWidth"] > 0):
                problems.append(f"{page.file}.html: image did not load: {img['src']}")
        if page.wants_figures and page.output_images == 0:
            problems.append(
                f"{page.file}.html: its code cells draw figures, but no cell output holds an image"
            )
    assert not problems, listing("missing figures", problems)


def test_math_is_rendered(crawl: Crawl) -> None:
    problems = []
    for page in crawl.pages:
        math = page.math
        if page.status != 200 or not math:
            continue
        if math["nodes"] and math["mathjax"] != "ready":
            problems.append(f"{page.file}.html: MathJax {math['mathjax']}")
        for tex in math["unrendered"]:
            problems.append(f"{page.file}.html: formula not typeset: {tex!r}")
        for error in math["errors"]:
            problems.append(f"{page.file}.html: MathJax error: {error!r}")
        for text in math["raw"]:
            problems.append(f"{page.file}.html: raw TeX in the text: {text!r}")
    assert not problems, listing("math not rendered", problems)


def test_the_book_reads_offline(crawl: Crawl) -> None:
    """No page asks for anything off the local site: MathJax, fonts and scripts included."""
    offsite = sorted(set(crawl.offsite_requests))
    assert not offsite, listing("requests off the local site (refused)", offsite)


def test_sidebar_lists_every_page_of_the_toc(crawl: Crawl) -> None:
    shown = [page for page in crawl.pages if page.status == 200]
    problems = []
    for file in toc_files():
        lacking = [page.file + ".html" for page in shown if f"{file}.html" not in page.sidebar]
        if lacking == [page.file + ".html" for page in shown]:
            problems.append(f"{file}.html: in no page's sidebar")
        elif lacking:
            problems.append(f"{file}.html: not in the sidebar of {', '.join(lacking)}")
    assert not problems, listing("incomplete sidebars", problems)


def test_no_broken_internal_links(crawl: Crawl) -> None:
    base = crawl.base
    loaded = {f"{page.file}.html": page for page in crawl.pages if page.status == 200}
    # Every link of every page: as written in the HTML, and as the browser resolved them
    # (links added by scripts too), keyed by the page they are on and the absolute URL.
    links: set[tuple[str, str]] = set()
    for path in site_pages():
        links.update((path, urljoin(base + path, href.strip())) for href in scan(HTML / path).links)
    for path, page in loaded.items():
        links.update((path, href) for href in page.links)

    status: dict[str, int] = {}
    broken: dict[str, set[str]] = {}  # "target: what is wrong" -> pages that link to it
    for source, url in sorted(links):
        if urlsplit(url).scheme not in {"http", "https"} or not url.startswith(base):
            continue  # mailto:, javascript:, other sites
        target, fragment = urldefrag(url)
        path = unquote(urlsplit(target).path).lstrip("/")
        if path == "" or path.endswith("/") or (HTML / path).is_dir():
            path = f"{path.rstrip('/')}/index.html".lstrip("/")
        if path not in status:
            status[path] = fetch_status(base + path) if (HTML / path).is_file() else 404
        if status[path] != 200:
            broken.setdefault(f"{path}: HTTP {status[path]}", set()).add(source)
            continue
        fragment = unquote(fragment)
        if not fragment or fragment.startswith(":~:") or not path.endswith(".html"):
            continue
        ids = scan(HTML / path).ids | (loaded[path].ids if path in loaded else set())
        if fragment not in ids and fragment != "top":
            broken.setdefault(f"{path}#{fragment}: no element with that id", set()).add(source)
    problems = [
        f"{target}, linked from {', '.join(sorted(sources))}"
        for target, sources in sorted(broken.items())
    ]
    assert not problems, listing("broken internal links", problems)


def test_screenshots_saved(crawl: Crawl) -> None:
    missing = [
        f"{page.file}.html -> {page.screenshot}"
        for page in crawl.pages
        if page.status == 200 and not (page.screenshot and page.screenshot.is_file())
    ]
    assert not missing, listing("screenshots not written", missing)
