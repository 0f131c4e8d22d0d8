"""Argument checks shared by several mfkit modules."""

from __future__ import annotations

from numbers import Integral
from typing import Any


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
