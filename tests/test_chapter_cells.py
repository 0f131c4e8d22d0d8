"""The chapters' visible code cells stay short (STYLE.md, issue 20): a median of at most
6 non-blank lines per chapter, none over 25, and no ``# fmt: skip``. Hidden cells (tags
``remove-cell``, ``remove-input``: glue and claim checks) do not count."""

from __future__ import annotations

import statistics
from pathlib import Path

import jupytext
import pytest

CHAPTERS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.md"))
HIDDEN = {"remove-cell", "remove-input"}
MEDIAN_MAX, CELL_MAX = 6, 25


def visible_cell_sizes(text: str) -> list[int]:
    """Non-blank lines of each code cell a reader sees, for a MyST text notebook."""
    notebook = jupytext.reads(text, fmt="md:myst")
    return [
        sum(1 for line in cell.source.splitlines() if line.strip())
        for cell in notebook.cells
        if cell.cell_type == "code" and not HIDDEN & set(cell.metadata.get("tags", []))
    ]


def test_visible_cell_sizes_count_non_blank_lines_of_shown_cells() -> None:
    fence = "```"
    text = (
        f"# T\n\n{fence}{{code-cell}} ipython3\na = 1\n\nb = 2\n{fence}\n\n"
        f"{fence}{{code-cell}} ipython3\n:tags: [remove-cell]\nglue('a', a)\n{fence}\n\n"
        f"{fence}{{code-cell}} ipython3\n:tags: [hide-input]\nc = 3\n{fence}\n"
    )
    assert visible_cell_sizes(text) == [2, 1]


def test_there_are_chapters() -> None:
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_visible_code_cells_are_short(chapter: Path) -> None:
    text = chapter.read_text()
    sizes = visible_cell_sizes(text)
    long_cells = [n for n in sizes if n > CELL_MAX]
    assert statistics.median(sizes) <= MEDIAN_MAX, f"median visible cell: {sorted(sizes)}"
    assert not long_cells, f"visible cells over {CELL_MAX} lines: {long_cells}"
    assert "fmt: skip" not in text, "a `# fmt: skip` in a chapter: let ruff format the code"
