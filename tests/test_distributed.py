"""Tests for mfkit.distributed: sharding, and 2 processes following 1 under DDP on gloo."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from mfkit.distributed import global_batches, main, shard

# A tiny problem: 40 users, 50 movies, 810 ratings; global batches of 100 (8 an epoch,
# 10 ratings left over), Adam with biases so that every kind of parameter moves.
ARGS = [
    "--synthetic",
    "--synthetic-size", "40", "50", "810",
    "--epochs", "4",
    "--batch-size", "100",
    "--lr", "0.05",
    "--dim", "8",
    "--bias",
    "--seed", "3",
]  # fmt: skip
EPOCHS = 4
# Two processes sum the gradients of the two halves of a batch in another order than
# one process does; float32 rounding of that order is all that may differ.
ATOL = 1e-5

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available())
    or importlib.util.find_spec("torch.distributed.run") is None,
    reason="torch.distributed with the gloo backend and torchrun are not available",
)


def torchrun(nproc: int, out: Path) -> subprocess.Popen:
    """Start ``python -m torch.distributed.run`` with ``nproc`` processes, writing ``out``."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", "-m", "mfkit.distributed", *ARGS, "--out", str(out)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def load(out: Path) -> tuple[dict, dict]:
    """The JSON record of a run and its final weights."""
    record = json.loads(out.read_text())
    return record, torch.load(out.with_suffix(".pt"), weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, tuple[tuple[dict, dict], str]]:
    """The 2-process and the 1-process run (started together), by number of processes."""
    folder = tmp_path_factory.mktemp("ddp")
    started = {n: torchrun(n, folder / f"run{n}.json") for n in (2, 1)}
    done = {}
    for n, process in started.items():
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for each in started.values():
                each.terminate()  # torchrun passes it on to its workers
                each.communicate()
            pytest.fail(f"the {n}-process run took over 120 s")
        assert process.returncode == 0, stderr[-3000:]
        done[n] = load(folder / f"run{n}.json"), stdout
    return done


# ------------------------------------------------------------------ sharding


@pytest.mark.parametrize(("size", "world_size"), [(6, 1), (6, 2), (6, 3), (12, 4), (0, 2)])
def test_rank_shards_partition_the_global_batch(size: int, world_size: int) -> None:
    batch = torch.randperm(100, generator=torch.Generator().manual_seed(size))[:size]
    shards = [shard(batch, rank, world_size) for rank in range(world_size)]
    assert all(len(s) == size // world_size for s in shards)
    assert torch.equal(torch.cat(shards), batch)  # disjoint, in rank order, nothing left out


@pytest.mark.parametrize(
    ("size", "rank", "world_size"), [(5, 0, 2), (6, 2, 2), (6, -1, 2), (6, 0, 0)]
)
def test_shard_refuses_uneven_splits_and_bad_ranks(size: int, rank: int, world_size: int) -> None:
    with pytest.raises(ValueError, match="equal shards|rank must be"):
        shard(torch.arange(size), rank, world_size)


def test_global_batches_are_full_disjoint_and_seeded() -> None:
    first = list(global_batches(23, 5, torch.Generator().manual_seed(1)))
    again = list(global_batches(23, 5, torch.Generator().manual_seed(1)))
    assert [len(b) for b in first] == [5, 5, 5, 5]  # the 3 left over wait for another epoch
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    rows = torch.cat(first)
    assert len(rows.unique()) == 20 and 0 <= int(rows.min()) and int(rows.max()) < 23


def test_batch_not_divisible_by_world_size_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exit_info:
        main(["--synthetic", "--batch-size", "101"])
    assert exit_info.value.code == 2
    assert "multiple of the number of processes (2)" in capsys.readouterr().err


def test_out_must_not_be_the_weights_file(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--synthetic", "--out", str(tmp_path / "run.pt")])
    assert "suffix .pt" in capsys.readouterr().err


# ------------------------------------------------------------------ DDP, 2 processes against 1


@needs_gloo
def test_two_processes_follow_one_process(runs) -> None:
    (two, two_weights), _ = runs[2]
    (one, one_weights), _ = runs[1]
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert two_weights.keys() == one_weights.keys()
    for name in one_weights:
        assert not torch.equal(one_weights[name], torch.zeros_like(one_weights[name]))
        gap = float((two_weights[name] - one_weights[name]).abs().max())
        assert gap <= ATOL, f"{name} differs by up to {gap:.2e}"
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
    assert one["train_loss"][-1] < one["train_loss"][0]  # it trains


@needs_gloo
def test_record_and_log_of_a_run(runs) -> None:
    (record, weights), stdout = runs[2]
    assert len(record["train_loss"]) == len(record["seconds"]) == EPOCHS
    assert all(s > 0 for s in record["seconds"]) and record["ratings_per_second"] > 0
    assert (record["n_ratings"], record["ratings_per_epoch"]) == (810, 800)
    assert record["config"]["n_users"] == 40 and record["state_dict"] == "run2.pt"
    lines = [line for line in stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == EPOCHS and "(2 processes)" in lines[-1]  # rank 0 logs, alone


@needs_gloo
def test_plain_python_is_the_one_process_run(runs, tmp_path: Path, monkeypatch, capsys) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main([*ARGS, "--out", str(tmp_path / "plain.json")]) == 0
    assert not dist.is_initialized()  # the process group is torn down
    record, weights = load(tmp_path / "plain.json")
    (one, one_weights), _ = runs[1]
    assert record["train_loss"] == pytest.approx(one["train_loss"], rel=1e-6)
    for name in one_weights:
        assert torch.allclose(weights[name], one_weights[name], atol=1e-6, rtol=0), name
    assert capsys.readouterr().out.count("(1 process)") == EPOCHS
