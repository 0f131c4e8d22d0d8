"""One switch that moves every seed: ``MFKIT_SEED_OFFSET``, for ``make check-numerics``.

A claim in the prose ("the tuned network beats the base one") must hold for any seed,
not only for the one the chapter happens to use. With ``MFKIT_SEED_OFFSET=N`` in the
environment, importing ``mfkit`` shifts every integer seed by ``N``: those of
``mfkit`` itself and those the chapters set on the page (``torch.manual_seed(0)``,
``torch.Generator().manual_seed(0)``, ``np.random.default_rng(0)``,
``np.random.RandomState(0)``, and so the peers that seed through them, such as
``implicit`` and scikit-learn's t-SNE). Code on the page and in ``mfkit`` stays as a
learner reads it; a page and ``mfkit`` seeded alike stay seeded alike.

Unset or ``0``, nothing is changed. ``None`` seeds (fresh entropy) are never touched.
"""

from __future__ import annotations

import os

__all__ = ["OFFSET_VARIABLE", "seed_offset", "shift_seeds"]

OFFSET_VARIABLE = "MFKIT_SEED_OFFSET"
_installed: int | None = None


def seed_offset() -> int:
    """The offset ``MFKIT_SEED_OFFSET`` asks for (0 when unset).

    Raises
    ------
    ValueError
        If the variable is set to something that is not an integer.
    """
    text = os.environ.get(OFFSET_VARIABLE, "").strip() or "0"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{OFFSET_VARIABLE} must be an integer, got {text!r}") from None


def _shift(seed, offset: int):
    import numpy as np

    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        return seed  # None, SeedSequence, arrays, generators: left as they are
    return int(seed) + offset


def shift_seeds(offset: int | None = None) -> int:
    """Make torch's and numpy's seeding add ``offset`` to every integer seed.

    Called by ``import mfkit`` when ``MFKIT_SEED_OFFSET`` is set; calling it again
    changes nothing (the first offset stays). Returns the offset in force.
    """
    import numpy as np
    import torch

    global _installed
    offset = seed_offset() if offset is None else int(offset)
    if _installed is not None or offset == 0:
        return _installed or 0
    _installed = offset
    manual_seed, default_rng = torch.manual_seed, np.random.default_rng
    base_generator, base_random_state = torch.Generator, np.random.RandomState

    class Generator(base_generator):
        def manual_seed(self, seed):
            return super().manual_seed(_shift(seed, offset))

    class RandomState(base_random_state):
        def __init__(self, seed=None):
            super().__init__(_shift(seed, offset))

        def seed(self, seed=None):
            super().seed(_shift(seed, offset))

    torch.manual_seed = torch.random.manual_seed = lambda seed: manual_seed(_shift(seed, offset))
    torch.Generator = Generator
    np.random.default_rng = lambda seed=None: default_rng(_shift(seed, offset))
    np.random.RandomState = RandomState
    return offset
