"""Measure what a computation costs: wall time and peak memory.

Introduced in chapter 2 (dense versus gathered observed MSE); chapter 10 reuses it.
Peak memory is the rise of the process's resident set (Linux: the high-water
mark ``VmHWM``, reset through ``/proc/self/clear_refs``), so it counts torch's CPU
allocations, which Python's ``tracemalloc`` cannot see.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cost", "measure", "speed_verdict"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class Cost:
    """The best wall time of ``repeat`` runs, and the peak extra memory of one run."""

    seconds: float
    peak_bytes: int | None  # None where the OS cannot tell (not Linux)


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so they count again when reused."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _peak_bytes(fn: Callable[[], object]) -> int | None:
    _release_free_memory()
    try:
        _CLEAR_REFS.write_text("5")  # reset VmHWM to the current resident size
        before = _status_kib("VmRSS")
    except OSError:
        return None
    fn()
    return max(0, _status_kib("VmHWM") - before) * 1024


def measure(fn: Callable[[], object], *, repeat: int = 3) -> Cost:
    """Run ``fn`` ``repeat`` times; return the fastest time and the peak extra memory.

    One warm-up call comes first (and is not timed), so one-off set-up costs such as
    thread pools count in neither number.

    Examples
    --------
    >>> cost = measure(lambda: bytearray(50_000_000), repeat=1)
    >>> cost.seconds > 0
    True
    >>> cost.peak_bytes is None or cost.peak_bytes > 40_000_000
    True
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    fn()  # warm-up
    peak = _peak_bytes(fn)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Cost(min(times), peak)


def speed_verdict(seconds: float, other: float, *, margin: float = 1.3) -> str:
    """Compare two timings in words that another run cannot contradict.

    Timings vary by 10-30% from run to run, so an ordering is only stated when one
    time beats the other by at least ``margin`` times: the result reads "``seconds``
    is ... ``other``", for prose such as "the dense pass is {glue:text}`verdict`
    the gathered one".

    Returns
    -------
    str
        ``"faster than"`` when ``seconds * margin <= other``, ``"slower than"`` when
        ``seconds >= other * margin``, else ``"about as fast as"``.

    Examples
    --------
    >>> speed_verdict(1.0, 2.0)
    'faster than'
    >>> speed_verdict(1.0, 1.2)
    'about as fast as'
    >>> speed_verdict(3.0, 1.0, margin=2.0)
    'slower than'
    """
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    if not (seconds > 0 and other > 0):
        raise ValueError(f"timings must be positive, got {seconds} and {other}")
    if seconds * margin <= other:
        return "faster than"
    if seconds >= other * margin:
        return "slower than"
    return "about as fast as"
