"""Tests for mfkit.torchrec_bridge: feature rows as KJTs, pooled as nn.EmbeddingBag pools them.

TorchRec is an optional extra (see the Makefile): without it, the tests that need it
skip, and the others check the error that says how to install it and the argument checks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch import nn

from mfkit.feature_rows import FeatureRows, multi_hot, one_hot
from mfkit.torchrec_bridge import (
    INSTALL_HINT,
    field_tables,
    keyed_jagged,
    load_batch,
    main,
    save_batch,
    shard_table_wise,
    table_name,
)

NAMES = ["user", "genres", "day"]


@pytest.fixture
def rows() -> FeatureRows:
    """6 rows: a user (of 4), a bag of genres (of 5; one row has none), a day (of 3)."""
    users = one_hot(torch.tensor([0, 3, 1, 1, 2, 0]), 4)
    genres = multi_hot([[0, 2], [4], [], [1, 2, 3], [0], [3, 4]], 5)
    days = one_hot(torch.tensor([2, 0, 1, 2, 2, 0]), 3)
    return FeatureRows.concat(users, genres, days)


def test_missing_torchrec_says_how_to_install(rows, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchrec", None)  # `import torchrec` raises ImportError
    with pytest.raises(ImportError, match="optional extra") as raised:
        keyed_jagged(rows, torch.arange(2), NAMES)
    assert INSTALL_HINT in str(raised.value) and "Makefile" in INSTALL_HINT
    with pytest.raises(ImportError, match="torchrec==1.8.0"):
        field_tables(NAMES, rows.fields, 4)


def test_names_are_checked_before_torchrec_is_needed(rows):
    with pytest.raises(ValueError, match="one name per field"):
        keyed_jagged(rows, torch.arange(2), NAMES[:2])
    with pytest.raises(ValueError, match="distinct"):
        field_tables(["a", "a", "b"], rows.fields, 4)
    with pytest.raises(ValueError, match="sequence of field names"):
        field_tables("abc", rows.fields, 4)
    with pytest.raises(ValueError, match=">= 1"):
        field_tables(NAMES, rows.fields, 0)
    assert table_name("genres") == "genres_table"


@pytest.fixture
def torchrec():
    """TorchRec, or a skip where the optional extra is not installed (see the Makefile)."""
    try:
        return pytest.importorskip("torchrec", exc_type=ImportError)
    except OSError as error:  # installed, but fbgemm's operators do not load against this torch
        pytest.skip(f"TorchRec does not load: {error}")


def plain_pooling(tables, rows: FeatureRows, examples: torch.Tensor) -> torch.Tensor:
    """Each field's weighted sum by a plain nn.EmbeddingBag holding that field's table."""
    indices, offsets, values = rows.batch(examples)
    lengths = torch.diff(offsets, append=torch.tensor([len(indices)]))
    row_of = torch.repeat_interleave(torch.arange(len(examples)), lengths)
    out, start = [], 0
    for name, width in zip(NAMES, rows.fields, strict=True):
        weight = tables.embedding_bags[table_name(name)].weight.detach()
        bag = nn.EmbeddingBag(width, weight.shape[1], mode="sum")
        bag.weight.data.copy_(weight)
        mine = (indices >= start) & (indices < start + width)  # this field's entries, row by row
        counts = torch.bincount(row_of[mine], minlength=len(examples))
        bags = torch.cumsum(counts, 0) - counts
        out.append(bag(indices[mine] - start, bags, per_sample_weights=values[mine]))
        start += width
    return torch.cat(out, dim=1)


def test_keyed_jagged_holds_each_field_with_local_ids(torchrec, rows):
    kjt = keyed_jagged(rows, torch.tensor([3, 2, 0]), NAMES)
    assert kjt.keys() == NAMES and kjt.stride() == 3
    genres = kjt["genres"]
    assert genres.lengths().tolist() == [3, 0, 2]
    assert genres.values().tolist() == [1, 2, 3, 0, 2]  # within the genre field
    torch.testing.assert_close(genres.weights(), torch.tensor([3**-0.5] * 3 + [2**-0.5] * 2))
    assert kjt["day"].values().tolist() == [2, 1, 2]
    assert kjt["user"].weights().tolist() == [1.0, 1.0, 1.0]


def test_pooled_output_equals_plain_embedding_bags(torchrec, rows):
    tables = field_tables(NAMES, rows.fields, 4, seed=1)
    examples = torch.tensor([5, 0, 2, 2, 3, 1, 4])  # any order, with a repeat and an empty bag
    pooled = tables(keyed_jagged(rows, examples, NAMES))
    torch.testing.assert_close(pooled.values(), plain_pooling(tables, rows, examples))
    assert list(pooled.to_dict()) == NAMES
    assert pooled.values().shape == (7, 3 * 4)


def test_field_tables_are_seeded(torchrec, rows):
    one, two = field_tables(NAMES, rows.fields, 3), field_tables(NAMES, rows.fields, 3)
    other = field_tables(NAMES, rows.fields, 3, seed=1)
    for name in NAMES:
        weight = one.embedding_bags[table_name(name)].weight
        assert weight.shape == (rows.fields[NAMES.index(name)], 3)
        assert torch.equal(weight, two.embedding_bags[table_name(name)].weight)
        assert not torch.equal(weight, other.embedding_bags[table_name(name)].weight)


def test_wrong_examples_are_refused(rows):
    with pytest.raises(ValueError, match="row numbers in 0..5"):
        keyed_jagged(rows, torch.tensor([0, 6]), NAMES)
    with pytest.raises(ValueError, match="1-D integer tensor"):
        keyed_jagged(rows, torch.tensor([0.0, 1.0]), NAMES)
    with pytest.raises(ValueError, match="1-D integer tensor"):
        keyed_jagged(rows, torch.zeros(2, 2, dtype=torch.int64), NAMES)


def test_sharding_needs_a_process_group_and_one_rank_per_table(torchrec, rows):
    tables = field_tables(NAMES, rows.fields, 2)
    with pytest.raises(RuntimeError, match="init_process_group"):
        shard_table_wise(tables)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="one rank in 0..0 per table"):
            shard_table_wise(tables, ranks=[0, 1, 0])
        with pytest.raises(ValueError, match="one rank in 0..0 per table"):
            shard_table_wise(tables, ranks=[0])
    finally:
        dist.destroy_process_group()


def test_batch_round_trips_through_a_file(rows, tmp_path):
    path = save_batch(tmp_path / "batch.pt", rows, torch.tensor([4, 1]), NAMES)
    back, names = load_batch(path)
    assert names == NAMES and back.fields == rows.fields
    torch.testing.assert_close(back.dense(), rows.take(torch.tensor([4, 1])).dense())


def test_one_process_shards_to_the_same_output(torchrec, rows, tmp_path):
    path = save_batch(tmp_path / "batch.pt", rows, torch.arange(6), NAMES)
    assert main([str(path), "--dim", "4", "--seed", "2", "--out", str(tmp_path / "out.pt")]) == 0
    record = torch.load(tmp_path / "out.pt", weights_only=True)
    tables = field_tables(NAMES, rows.fields, 4, seed=2)
    torch.testing.assert_close(record["pooled"], plain_pooling(tables, rows, torch.arange(6)))
    assert record["world_size"] == 1 and "table_wise" in record["plan"]


def test_two_processes_shard_table_wise(torchrec, rows, tmp_path):
    path = save_batch(tmp_path / "batch.pt", rows, torch.arange(6), NAMES)
    out = tmp_path / "out.pt"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        + ["-m", "mfkit.torchrec_bridge", str(path), "--dim", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = torch.load(out, weights_only=True)
    tables = field_tables(NAMES, rows.fields, 4)
    torch.testing.assert_close(record["pooled"], plain_pooling(tables, rows, torch.arange(6)))
    assert record["world_size"] == 2
    assert "rank:1/cpu" in record["plan"]  # some tables live on the second process
