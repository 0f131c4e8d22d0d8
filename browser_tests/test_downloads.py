"""The built book's downloads: each chapter's notebooks and mfkit's wheel, as a learner gets them.

Every chapter page's download menu links the executed ``.ipynb``, the ``.ipynb`` without
solutions and mfkit's wheel (book/_ext/downloads.py). Both notebooks read like the page:
every value the page glued into its prose is in their Markdown, no glue role is left, and
the hidden check cells are gone but for those later cells need. The last test plays a
learner on a hosted Jupyter: a fresh Python without mfkit, the downloaded chapter 1 and
the wheel in one folder; the notebook's first code cell installs mfkit from the wheel,
and the whole chapter, without its hidden cells, then runs. (The fresh environment
borrows the course environment's other packages through a ``.pth`` file, so nothing is
downloaded; MovieLens comes from ``MFKIT_DATA_DIR`` as everywhere in CI.)
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sysconfig
import venv
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
from test_book import HTML, chapters, listing, require_book, scan

WHEELS = HTML / "_downloads" / "mfkit"


def wheel() -> Path:
    require_book()
    found = sorted(WHEELS.glob("mfkit-*.whl"))
    assert len(found) == 1, f"expected one mfkit wheel in {WHEELS}, found {found}"
    return found[0]


def exercises(notebook: nbformat.NotebookNode) -> int:
    return sum(
        len(re.findall(r"^`{3,}\{exercise\}", c.source, re.M))
        for c in notebook.cells
        if c.cell_type == "markdown"
    )


def test_every_chapter_page_offers_both_notebooks_and_the_wheel() -> None:
    name = wheel().name
    problems = []
    for chapter in chapters():
        hrefs = {h.split("#")[0] for h in scan(HTML / f"{chapter}.html").links}
        for wanted in (
            f"../_sources/{chapter}.ipynb",
            f"../_sources/{chapter}-no-solutions.ipynb",
            f"../_downloads/mfkit/{name}",
        ):
            if wanted not in hrefs:
                problems.append(f"{chapter}.html: no link to {wanted}")
            elif not (HTML / chapter).parent.joinpath(wanted).resolve().is_file():
                problems.append(f"{chapter}.html: {wanted} is missing from the build")
    assert not problems, listing("download menus", problems)


def test_the_wheel_holds_the_package() -> None:
    with zipfile.ZipFile(wheel()) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert {"mfkit/__init__.py", "mfkit/models/__init__.py", "mfkit/cli.py"} <= names
    assert "Provides-Extra: notebooks" in text


def test_executed_notebooks_start_with_the_install_cell_and_keep_their_outputs() -> None:
    name = wheel().name
    for chapter in chapters():
        notebook = nbformat.read(HTML / "_sources" / f"{chapter}.ipynb", as_version=4)
        first_code = next(c for c in notebook.cells if c.cell_type == "code")
        assert f'pathlib.Path("{name}")' in first_code.source, chapter
        assert any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), chapter


def test_student_notebooks_have_an_empty_cell_per_exercise_and_no_solution() -> None:
    counts = {}
    for chapter in chapters():
        full = nbformat.read(HTML / "_sources" / f"{chapter}.ipynb", as_version=4)
        student = nbformat.read(HTML / "_sources" / f"{chapter}-no-solutions.ipynb", as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "{solution-start}" not in text and "{solution-end}" not in text, chapter
        placeholders = sum(c.source == "*Your solution.*" for c in student.cells)
        assert placeholders == exercises(full) == exercises(student) >= 2, chapter
        # every code cell outside the solutions is still there, with its outputs
        kept = [c.source for c in student.cells if c.cell_type == "code" and c.source]
        assert kept and all(s in [c.source for c in full.cells] for s in kept), chapter
        assert len(kept) < sum(c.cell_type == "code" for c in full.cells), chapter
        counts[chapter] = placeholders
    print("exercises per chapter:", counts)


PASTED = re.compile(r'<span class="pasted-text">(.*?)</span>', re.S)
SMART_QUOTES = str.maketrans("\u2018\u2019\u201c\u201d", "''\"\"")  # Sphinx's, on the page


def hidden_checks(notebook: nbformat.NotebookNode) -> list[str]:
    """The code cells the page hides that check or glue (``remove-cell``, or
    ``remove-input`` with a claim)."""
    return [
        c.source
        for c in notebook.cells
        if c.cell_type == "code"
        and (
            "remove-cell" in (tags := c.metadata.get("tags", []))
            or ("remove-input" in tags and "claim(" in c.source)
        )
    ]


def test_downloaded_notebooks_read_like_the_page() -> None:
    """Glued values in the prose as the page shows them, and no hidden check cells, except
    the ones later cells need (the first ``import mfkit``, which sets the thread policy)."""
    problems, counts = [], {}
    for chapter in chapters():
        page = (HTML / f"{chapter}.html").read_text(encoding="utf-8")
        pasted = {html.unescape(text).translate(SMART_QUOTES) for text in PASTED.findall(page)}
        source = jupytext.read(HTML / "_sources" / f"{chapter}.md")
        before = hidden_checks(source)
        for edition in ("", "-no-solutions"):
            name = f"{chapter}{edition}.ipynb"
            notebook = nbformat.read(HTML / "_sources" / name, as_version=4)
            prose = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
            if "{glue" in prose:
                problems.append(f"{name}: a glue role or directive is left in the Markdown")
            shown = re.sub(r"\\(.)", r"\1", prose)  # Markdown's escapes, as Jupyter shows them
            missing = sorted(text for text in pasted if text not in shown)
            if missing and not edition:  # (the student edition has no solutions' prose)
                problems.append(f"{name}: the page's glued values {missing[:5]} are not in it")
            kept = hidden_checks(notebook)
            if before and len(kept) >= len(before):
                problems.append(f"{name}: keeps all {len(before)} hidden check cells")
            first = next(c for c in source.cells if c.cell_type == "code")
            if "import mfkit" in first.source and first.source not in kept:
                problems.append(f"{name}: the first hidden `import mfkit` cell is gone")
            for cell in notebook.cells:
                for out in cell.get("outputs", []):
                    if out.get("metadata", {}).get("scrapbook", {}).get("mime_prefix"):
                        problems.append(f"{name}: keeps a glue record among its outputs")
                        break
            if not edition:
                counts[Path(chapter).name[:2]] = f"{len(kept)}/{len(before)}"
    print("hidden check cells kept in each download, of the page's:", counts)
    assert not problems, listing("downloaded notebooks", problems)


def test_a_hosted_notebook_installs_mfkit_from_the_wheel_and_runs(tmp_path: Path) -> None:
    if not os.environ.get("MFKIT_DATA_DIR"):
        pytest.skip("needs MFKIT_DATA_DIR (the data, without a download)")
    chapter = chapters()[0]
    work = tmp_path / "hosted"
    work.mkdir()
    shutil.copy2(wheel(), work)
    shutil.copy2(HTML / "_sources" / f"{chapter}.ipynb", work / "chapter.ipynb")

    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_NO_INDEX"] = "1"  # everything it needs is already here

    def fresh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the fresh environment's python in the notebook's folder."""
        command = [str(env_dir / "bin" / "python"), *args]
        return subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, check=check
        )

    fresh_site = fresh("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    # the course environment's packages, but not its (editable) mfkit: a plain path in a
    # .pth file does not run the editable install's own .pth hook
    purelib = sysconfig.get_paths()["purelib"]
    Path(fresh_site.strip(), "course-packages.pth").write_text(purelib + "\n")
    # ensurepip's old setuptools would shadow the newer one that torch asks for
    fresh("-m", "pip", "uninstall", "--quiet", "--yes", "setuptools")
    absent = fresh("-c", "import importlib.util as u; print(u.find_spec('mfkit') is None)")
    assert absent.stdout.strip() == "True", "mfkit leaked into the fresh environment"

    run = fresh(
        *("-m", "nbconvert", "--to", "notebook", "--execute", "--output", "ran.ipynb"),
        *("--ExecutePreprocessor.timeout=600", "chapter.ipynb"),
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    installed = fresh("-c", "import mfkit; print(mfkit.__file__)").stdout.strip()
    assert installed.startswith(fresh_site.strip()), installed
