"""mfkit.measure: wall time and peak memory."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from mfkit import measure as measure_module
from mfkit.measure import measure, speed_verdict


@pytest.mark.skipif(sys.platform != "linux", reason="peak memory is read from /proc")
def test_peak_memory_sees_a_large_allocation() -> None:
    small = measure(lambda: np.ones(1_000), repeat=1)
    big = measure(lambda: np.ones(25_000_000), repeat=1)  # 200 MB of float64
    assert big.peak_bytes >= 190_000_000
    assert small.peak_bytes < 20_000_000


def test_time_is_the_fastest_of_the_runs() -> None:
    delays = iter([0.0, 0.0, 0.05, 0.01, 0.03])  # warm-up, peak run, then 3 timed runs

    cost = measure(lambda: time.sleep(next(delays)), repeat=3)
    assert 0.01 <= cost.seconds < 0.03


def test_peak_memory_is_none_where_the_os_cannot_tell(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(measure_module, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    assert measure(lambda: None, repeat=1).peak_bytes is None


def test_repeat_must_be_positive() -> None:
    with pytest.raises(ValueError, match="repeat must be >= 1, got 0"):
        measure(lambda: None, repeat=0)


@pytest.mark.parametrize(
    ("seconds", "other", "word"),
    [(1.0, 1.3, "faster than"), (1.0, 1.29, "about as fast as"), (1.29, 1.0, "about as fast as"),
     (1.3, 1.0, "slower than"), (1.0, 1.0, "about as fast as")],
)  # fmt: skip
def test_speed_verdict_states_an_order_only_beyond_the_margin(seconds, other, word) -> None:
    assert speed_verdict(seconds, other) == word


def test_speed_verdict_margin_one_always_orders() -> None:
    assert speed_verdict(1.0, 1.01, margin=1.0) == "faster than"


@pytest.mark.parametrize(
    ("seconds", "other", "margin"), [(0.0, 1.0, 1.3), (1.0, -1.0, 1.3), (1.0, 2.0, 0.5)]
)
def test_speed_verdict_rejects_bad_input(seconds, other, margin) -> None:
    with pytest.raises(ValueError, match="must be"):
        speed_verdict(seconds, other, margin=margin)
