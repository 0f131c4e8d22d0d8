"""mfkit: tested building blocks for the course *Recommender Systems with PyTorch*.

Modules, one job each: :mod:`mfkit.data` (MovieLens and synthetic data),
:mod:`mfkit.splits` (train/test splits), :mod:`mfkit.features` (ids to rows, side
features), :mod:`mfkit.tables` (your own interaction table in, recommendations out),
:mod:`mfkit.feature_rows` (sparse feature rows), :mod:`mfkit.models` (the
recommendation models), :mod:`mfkit.losses`,
:mod:`mfkit.train` (one training loop), :mod:`mfkit.metrics` (rating and ranking
metrics), :mod:`mfkit.evaluation` (ranking evaluation), :mod:`mfkit.retrieval`
(recommendations), :mod:`mfkit.sampling` (implicit feedback, negatives),
:mod:`mfkit.sequences` (histories in time order), :mod:`mfkit.ann` (nearest-neighbour
indexes), :mod:`mfkit.sparse` and :mod:`mfkit.als` (sparse data, ALS),
:mod:`mfkit.distributed` (data-parallel training), :mod:`mfkit.embeddings` and
:mod:`mfkit.plots` (inspecting models), :mod:`mfkit.measure` (time and memory),
:mod:`mfkit.claims` (the checks behind the prose), :mod:`mfkit.stats` (the one
rule for "better"), :mod:`mfkit.threads` (threads beside a busy core),
:mod:`mfkit.seeding` (one switch that moves every seed), :mod:`mfkit.saving` (saved
models) and :mod:`mfkit.cli` (the ``mfkit`` command).
"""

import os as _os

# Read once, when torch loads its OpenMP runtime: threads that wait for each other
# sleep instead of spinning, so a core busy with another program does not stall them
# (mfkit.threads). Import mfkit before torch for it to apply.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mfkit.seeding import seed_offset as _seed_offset  # noqa: E402
from mfkit.seeding import shift_seeds as _shift_seeds  # noqa: E402

__version__ = "0.1.0"

if _seed_offset():  # MFKIT_SEED_OFFSET: make check-numerics moves every seed at once
    _shift_seeds()
