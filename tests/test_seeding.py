"""mfkit.seeding: MFKIT_SEED_OFFSET moves every seed, on the page and in mfkit, at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mfkit.seeding import seed_offset

DRAWS = """
import json, numpy as np, torch
import mfkit
from mfkit.models import MatrixFactorization
from sklearn.utils import check_random_state
torch.manual_seed(0)
print(json.dumps({
    "global": torch.rand(3).tolist(),
    "generator": torch.rand(3, generator=torch.Generator().manual_seed(0)).tolist(),
    "numpy": np.random.default_rng(0).random(3).tolist(),
    "random_state": np.random.RandomState(0).rand(3).tolist(),
    "sklearn": check_random_state(0).rand(3).tolist(),
    "model": MatrixFactorization(4, 5, dim=2, seed=0).U.detach().flatten().tolist(),
    "none_is_fresh": bool(np.random.default_rng().random() != np.random.default_rng().random()),
}))
"""


def draws(offset: str | None, code: str = DRAWS) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MFKIT_SEED_OFFSET"}
    if offset is not None:
        env["MFKIT_SEED_OFFSET"] = offset
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_an_offset_moves_every_seed_as_if_the_code_had_said_seed_plus_offset() -> None:
    unset, zero, shifted = draws(None), draws("0"), draws("3")
    assert unset == zero  # unset and 0 change nothing
    assert all(shifted[k] != unset[k] for k in unset if k != "none_is_fresh")
    assert draws(None, DRAWS.replace("(0)", "(3)").replace("seed=0", "seed=3")) == shifted
    assert shifted["none_is_fresh"]  # a seed of None still draws fresh entropy


def test_a_bad_offset_is_named(monkeypatch) -> None:
    monkeypatch.setenv("MFKIT_SEED_OFFSET", "one")
    with pytest.raises(ValueError, match="MFKIT_SEED_OFFSET must be an integer, got 'one'"):
        seed_offset()
    monkeypatch.setenv("MFKIT_SEED_OFFSET", " -2 ")
    assert seed_offset() == -2
