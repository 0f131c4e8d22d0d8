"""``make check-robust``: every chapter, run the ways another build machine may differ.

1. **quiet**: nothing else running, the reference for the next one;
2. **a busy core**: a process that keeps one core fully busy, as a second notebook, a
   browser tab or an IDE does on a learner's laptop; the table gives each chapter's
   time relative to its quiet time, which should stay under 1.5x. torch's threads wait
   for each other beside such a process (chapter 2 once took 17 minutes instead of
   one), which is why mfkit runs small steps on one thread (:mod:`mfkit.threads`);
3. **one core** (``taskset -c 0``): another machine's timings, and a single thread;
4. **a noisy neighbour**: a process that spins 15 ms and sleeps 35 ms in a loop, so
   about a third of one core is taken at random moments (run-to-run noise);
5. **no Java, ``CI`` unset**: chapter 10's Spark section must skip itself and say so;
6. **the "no solutions" downloads**: each chapter as the book's download menu offers it
   to students (book/_ext/downloads.py), every exercise solution an empty cell, must run
   top to bottom.

Each run is ``pytest --nbval notebooks`` with the collector's glue-key checks, so it
fails on any cell that raises and on any glue key the prose uses but no cell defined.
Prints the seconds each chapter took in each run and exits 1 if any run failed.
Usage: ``python notebooks/check_robust.py [FOLDER] [--runs NAME,...]`` (default: this
folder, every run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
BUSY = "while True:\n    pass\n"
NOISE = """
import time
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < 0.015:
        pass
    time.sleep(0.035)
"""


def path_without(program: str, workdir: Path) -> str:
    """``$PATH`` with ``program`` hidden: each folder holding it is replaced by a
    folder of links to everything else in it."""
    folders = []
    for i, folder in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if folder and (Path(folder) / program).exists():
            shadow = workdir / f"path{i}"
            shadow.mkdir()
            for entry in Path(folder).iterdir():
                if not entry.name.startswith(program):
                    (shadow / entry.name).symlink_to(entry)
            folder = str(shadow)
        folders.append(folder)
    return os.pathsep.join(folders)


def student_editions(folder: Path, workdir: Path) -> Path:
    """Each chapter of ``folder`` without its solutions, as ``.ipynb`` in a new folder."""
    import jupytext
    import nbformat

    sys.path.insert(0, str(NOTEBOOKS.parent / "book" / "_ext"))
    from downloads import without_solutions

    out = workdir / "no-solutions"
    out.mkdir()
    for chapter in sorted(folder.glob("[0-9][0-9]_*.md")):
        student, _ = without_solutions(jupytext.read(chapter))
        nbformat.write(student, out / f"{chapter.stem}.ipynb")
    return out


def run(name: str, prefix: list[str], env: dict[str, str], folder: Path, workdir: Path):
    """One ``pytest --nbval notebooks`` run: (passed, seconds per chapter)."""
    report = workdir / f"{name.replace(' ', '-')}.xml"
    command = [
        *prefix,
        sys.executable,
        "-m",
        "pytest",
        # The downloads are .ipynb without outputs: nothing to compare, only to run.
        "--nbval-lax" if folder.name == "no-solutions" else "--nbval",
        str(folder),
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
    ]
    print(f"== {name}: {' '.join(command)}", flush=True)
    passed = subprocess.run(command, env=env).returncode == 0
    seconds: dict[str, float] = defaultdict(float)
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            classname = case.get("classname", "").removesuffix(".md").removesuffix(".ipynb")
            chapter = classname.rpartition(".")[2]
            seconds[chapter] += float(case.get("time", 0))
    return passed, seconds


RUNS = (
    "quiet",
    "busy core",
    "one core",
    "noisy neighbour",
    "no Java and CI unset",
    "no-solutions downloads",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=NOTEBOOKS)
    parser.add_argument("--runs", default=",".join(RUNS), help="of: " + ", ".join(RUNS))
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.runs.split(",") if name.strip()]
    if unknown := [name for name in wanted if name not in RUNS]:
        parser.error(f"unknown run(s) {unknown}: expected some of {list(RUNS)}")
    folder = args.folder
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "JAVA_HOME")}
    with tempfile.TemporaryDirectory(prefix="check-robust-") as tmp:
        workdir = Path(tmp)
        no_java = {**base, "PATH": path_without("java", workdir)}
        assert shutil.which("java", path=no_java["PATH"]) is None
        students = student_editions(folder, workdir)
        runs = {  # name: (command prefix, environment, neighbour process, folder)
            "quiet": ([], base, None, folder),
            "busy core": ([], base, BUSY, folder),
            "one core": (["taskset", "-c", "0"], base, None, folder),
            "noisy neighbour": ([], base, NOISE, folder),
            "no Java and CI unset": ([], no_java, None, folder),
            "no-solutions downloads": ([], base, None, students),
        }
        results = {}
        for name in wanted:
            prefix, env, neighbour, chapters = runs[name]
            noise = subprocess.Popen([sys.executable, "-c", neighbour]) if neighbour else None
            start = time.perf_counter()
            try:
                passed, seconds = run(name, prefix, env, chapters, workdir)
            finally:
                if noise is not None:
                    noise.kill()
            results[name] = (passed, seconds, time.perf_counter() - start)
    chapters = sorted({chapter for _, seconds, _ in results.values() for chapter in seconds})
    ratio = "quiet" in results and "busy core" in results
    print("\n| chapter | " + " | ".join(results) + (" | busy / quiet |" if ratio else " |"))
    print("|---|" + "---|" * (len(results) + ratio))
    for chapter in chapters:
        cells = [f"{seconds.get(chapter, 0):.0f} s" for _, seconds, _ in results.values()]
        if ratio:
            quiet, busy = results["quiet"][1].get(chapter), results["busy core"][1].get(chapter)
            cells.append(f"{busy / quiet:.2f}x" if quiet and busy else "")
        print(f"| {chapter} | " + " | ".join(cells) + " |")
    print("| **whole run** | " + " | ".join(f"{t:.0f} s" for *_, t in results.values()) + " |")
    print(
        "| **result** | "
        + " | ".join("passed" if p else "FAILED" for p, *_ in results.values())
        + " |"
    )
    return 0 if all(p for p, *_ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
