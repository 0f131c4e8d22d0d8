"""The book's launch buttons open each chapter, as a notebook, in the reader's JupyterLab.

Each chapter page's launch menu links ``http://localhost:8888/lab/tree/notebooks/<chapter>.md``
(book/_ext/launch_local.py), where ``make lab`` serves the repository. Here JupyterLab is
started the way ``make lab`` starts it (the repository's ``.jupyter`` settings: Markdown
opens as a Jupytext notebook), on a free port with no token, and every chapter's launch
link is followed in headless Chromium: the chapter must open as a notebook with all its
code cells, and chapter 1's first code cell must run in a kernel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import jupytext
import pytest
from test_book import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HTML,
    ROOT,
    chapters,
    listing,
    require_book,
    require_browser,
    scan,
)

LAB_BASE = "http://localhost:8888/"  # the launch links' target, as made by `make lab`
START_TIMEOUT_S = 90
OPEN_TIMEOUT_MS = 60_000


# JupyterLab's own objects (``--LabApp.expose_app_in_browser``): the open notebook's
# model, rather than its DOM, which JupyterLab renders lazily.
OPENED_JS = """
(path) => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return Boolean(widget && widget.context && widget.context.path === path
                 && widget.context.isReady && widget.content && widget.content.model);
}
"""
NOTEBOOK_JS = """
async (run) => {
  const widget = window.jupyterapp.shell.currentWidget;
  await widget.context.ready;
  const cells = widget.content.model.cells;
  if (!cells) return { notebook: false };  // e.g. opened in the text editor
  const types = [];
  for (let i = 0; i < cells.length; i++) types.push(cells.get(i).type);
  let ran = "not asked";
  if (run) {
    const first = types.indexOf("code");
    await widget.sessionContext.ready;
    widget.content.activeCellIndex = first;
    await window.jupyterapp.commands.execute("notebook:run-cell");
    const cell = cells.get(first);
    const start = Date.now();
    while (cell.executionCount === null && Date.now() - start < 60000) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const errors = cell.outputs.toJSON().filter((o) => o.output_type === "error");
    ran = errors.length ? `${errors[0].ename}: ${errors[0].evalue}`
        : cell.executionCount === null ? "no result after 60 s" : "ok";
  }
  return { notebook: true, code: types.filter((t) => t === "code").length, ran };
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A JupyterLab on the repository, as ``make lab`` runs it; yields its base URL."""
    require_book()
    state = tmp_path_factory.mktemp("lab")
    port = free_port()
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = str(ROOT / ".jupyter")  # what `make lab` installs
    env["JUPYTER_RUNTIME_DIR"] = str(state / "runtime")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser"]
    command += [f"--ServerApp.root_dir={ROOT}", f"--ServerApp.port={port}"]
    command += ["--ServerApp.port_retries=0", "--IdentityProvider.token="]
    command += [f"--LabApp.workspaces_dir={state}", f"--LabApp.user_settings_dir={state}"]
    command += ["--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    log = (state / "lab.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(base + "api/status", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(state / 'lab.log').read_text()}")
                time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def launch_links(chapter: str) -> list[str]:
    return [h for h in scan(HTML / f"{chapter}.html").links if h.startswith(LAB_BASE)]


def test_every_chapter_page_links_its_source_in_jupyterlab() -> None:
    require_book()
    problems = []
    for chapter in chapters():
        links = launch_links(chapter)
        wanted = f"{LAB_BASE}lab/tree/{chapter}.md"
        if links != [wanted]:
            problems.append(f"{chapter}.html: launch links {links}, expected [{wanted}]")
        elif not (ROOT / f"{chapter}.md").is_file():
            problems.append(f"{chapter}.html: links {chapter}.md, which is not in the repository")
    assert not problems, listing("launch buttons", problems)


def test_launch_links_open_each_chapter_as_a_runnable_notebook(lab: str) -> None:
    sync_playwright, PlaywrightError = require_browser()

    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            for i, chapter in enumerate(chapters()):
                (link,) = launch_links(chapter) or [None]
                if link is None:
                    problems.append(f"{chapter}: no launch link")
                    continue
                source = jupytext.read(ROOT / f"{chapter}.md")
                expected = sum(c.cell_type == "code" for c in source.cells)
                # a workspace of its own per chapter: no tab of the last one is restored
                url = lab + link.removeprefix(LAB_BASE).replace("lab/", f"lab/workspaces/ch{i}/", 1)
                try:
                    page.goto(url, timeout=OPEN_TIMEOUT_MS)
                    page.wait_for_function(OPENED_JS, arg=f"{chapter}.md", timeout=OPEN_TIMEOUT_MS)
                    found = page.evaluate(NOTEBOOK_JS, i == 0)
                except PlaywrightError as exc:
                    problems.append(
                        f"{chapter}: did not open as a notebook: {str(exc).splitlines()[0]}"
                    )
                    continue
                if not found["notebook"]:
                    problems.append(f"{chapter}: opened, but not as a notebook (a text editor?)")
                elif found["code"] != expected:
                    problems.append(
                        f"{chapter}: {found['code']} code cells shown, {expected} in the source"
                    )
                if found["notebook"] and i == 0 and found["ran"] != "ok":  # chapter 1, in a kernel
                    problems.append(f"{chapter}: the first code cell did not run: {found['ran']}")
        finally:
            browser.close()
    assert not problems, listing("chapters that did not open in JupyterLab", problems)
