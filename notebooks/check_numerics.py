"""``make check-numerics``: every chapter under another machine's numerics, every claim listed.

A trained number depends on the CPU's floating-point path (AVX2 or AVX-512 kernels,
MKL's paths on AMD and Intel), the thread count and the seed, so on a learner's machine
it moves by about a seed's worth of noise. A claim whose margin is smaller than that
holds only where it was written. This script runs each chapter, in collect mode
(``MFKIT_CLAIMS=collect``: a failing claim is recorded, not raised), under conditions
that change the numbers the way another machine does:

- **one thread** (``OMP_NUM_THREADS=1``): reductions split differently;
- **default kernels** (``ATEN_CPU_CAPABILITY=default``): torch's non-vectorised kernels,
  another CPU's rounding;
- **AVX2 kernels** (``ATEN_CPU_CAPABILITY=avx2``): the kernels of a CPU without AVX-512;
- **seeds +1**, **seeds +2** (``MFKIT_SEED_OFFSET``): every seed of the chapters and of
  ``mfkit`` shifted at once (:mod:`mfkit.seeding`).

Every run uses one thread, so two chapters run side by side on two cores. At the end it
prints one table of the claims that failed (claim, chapter, runs, values), one of the
cells that raised, and each chapter's seconds per run; it exits 1 if anything failed.

Usage: ``python notebooks/check_numerics.py [CHAPTER ...] [--runs NAME,...] [--jobs N]``
where a chapter is its number or file name (``07``, ``7``, ``07_implicit_feedback``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
RUNS = {
    "one thread": {},
    "default kernels": {"ATEN_CPU_CAPABILITY": "default"},
    "AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2"},
    "seeds +1": {"MFKIT_SEED_OFFSET": "1"},
    "seeds +2": {"MFKIT_SEED_OFFSET": "2"},
}


def chapters(wanted: list[str], folder: Path = NOTEBOOKS) -> list[Path]:
    """The chapter files ``wanted`` names (all of them when empty).

    Raises
    ------
    ValueError
        If a name matches no chapter, with the chapters there are.
    """
    every = sorted(folder.glob("[0-9][0-9]_*.md"))
    if not wanted:
        return every
    found = []
    for name in wanted:
        stem = Path(name).stem
        match = [p for p in every if p.stem == stem or p.stem.split("_")[0] == stem.zfill(2)]
        if not match:
            known = ", ".join(p.stem for p in every)
            raise ValueError(f"no chapter {name!r}: expected a number or one of {known}")
        found += match
    return found


def run_one(chapter: Path, run: str, workdir: Path) -> dict:
    """Execute one chapter under one run's conditions; what failed, and how long it took."""
    tag = f"{chapter.stem}-{run.replace(' ', '-').replace('+', 'plus')}"
    log, report = workdir / f"{tag}.jsonl", workdir / f"{tag}.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY",)}
    env.update(ONE_THREAD, MFKIT_CLAIMS="collect", MFKIT_CLAIMS_LOG=str(log), **RUNS[run])
    command = [sys.executable, "-m", "pytest", "--nbval", str(chapter), "-q"]
    command += ["-p", "no:cacheprovider", f"--junitxml={report}"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    claims = []
    if log.exists():
        claims = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    errors = []
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if failure is not None:
                text = (failure.get("message") or "") + "\n" + (failure.text or "")
                errors.append(f"{case.get('name')}: {_last_error_line(text)}")
    elif done.returncode:
        errors.append(done.stdout[-500:] + done.stderr[-500:])
    print(
        f"{chapter.stem:32s} {run:16s} {seconds:6.0f} s  "
        f"{len(claims)} claim(s) failed, {len(errors)} error(s)",
        flush=True,
    )
    return {
        "chapter": chapter.stem,
        "run": run,
        "seconds": seconds,
        "claims": claims,
        "errors": errors,
    }


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if "Error" in line]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "")[:300]


def table(results: list[dict], runs: list[str]) -> str:
    """The report: failing claims, cells that raised, seconds per chapter and run."""
    out = []
    failed: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for r in results:
        for c in r["claims"]:
            failed.setdefault((r["chapter"], c["statement"]), []).append((r["run"], c["values"]))
    out.append(f"\n## Claims that failed ({len(failed)})\n")
    if failed:
        out.append("| chapter | claim | run: values |\n|---|---|---|")
        for (chapter, statement), where in sorted(failed.items()):
            cells = "<br>".join(
                f"{run}: " + ", ".join(f"{k}={v}" for k, v in values.items())
                for run, values in where
            )
            out.append(f"| {chapter} | {statement} | {cells} |")
    errors = [(r["chapter"], r["run"], e) for r in results for e in r["errors"]]
    out.append(f"\n## Cells that raised ({len(errors)})\n")
    out += [f"- {chapter}, {run}: {e}" for chapter, run, e in errors]
    out.append("\n## Seconds per chapter\n")
    out.append("| chapter | " + " | ".join(runs) + " |\n|---|" + "---|" * len(runs))
    seconds = {(r["chapter"], r["run"]): r["seconds"] for r in results}
    for chapter in sorted({r["chapter"] for r in results}):
        cells = [
            f"{seconds[chapter, run]:.0f}" if (chapter, run) in seconds else "" for run in runs
        ]
        out.append(f"| {chapter} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    parser.add_argument(
        "--runs", default=",".join(RUNS), help="comma-separated, of: " + ", ".join(RUNS)
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="chapters at once")
    parser.add_argument("--report", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args(argv)
    runs = [name.strip() for name in args.runs.split(",") if name.strip()]
    unknown = [name for name in runs if name not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {unknown}: expected some of {list(RUNS)}")
    try:
        todo = chapters(args.chapters)
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    # Later chapters (the longer ones) first, so that the workers finish together.
    jobs = [(chapter, run) for chapter in reversed(todo) for run in runs]
    with tempfile.TemporaryDirectory(prefix="check-numerics-") as tmp:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(lambda job: run_one(*job, Path(tmp)), jobs))
    report = table(results, runs)
    report += f"\n\nWhole run: {time.perf_counter() - start:.0f} s, {args.jobs} chapter(s) at once."
    print(report)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report + "\n", encoding="utf-8")
    return 1 if any(r["claims"] or r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
