"""What the benchmark scripts share: the machine line and where tables go."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

BOOK = Path(__file__).resolve().parents[1] / "book" / "benchmarks"


def machine(device: str = "cpu") -> str:
    """One line naming the hardware and software a table was measured on."""
    cpu = platform.processor() or platform.machine()
    line = (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    if device == "cuda":
        line += f", {torch.cuda.get_device_name()}"
    return line


def write(name: str, text: str) -> Path:
    """Save a benchmark's markdown to ``book/benchmarks/<name>.md`` and return the path."""
    BOOK.mkdir(parents=True, exist_ok=True)
    path = BOOK / f"{name}.md"
    path.write_text(text)
    return path
