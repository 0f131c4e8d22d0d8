"""mfkit's sparse feature rows as TorchRec's inputs and embedding tables.

Used in chapter 12 ("Sparse features the production way"), which runs only where
TorchRec is installed: it is an optional extra that ``make venv`` tries to install and
goes on without. TorchRec is PyTorch's library for the embedding tables of large
recommenders. It takes a batch of sparse features as a ``KeyedJaggedTensor`` (KJT):
for every *key* (a field), the ids of every example one after the other, how many ids
each example has (the *lengths*), and optional weights.

- :func:`keyed_jagged` turns a batch of :class:`~mfkit.feature_rows.FeatureRows` into
  a KJT, one key per field, with each id counted from its field's first column;
- :func:`field_tables` builds an ``EmbeddingBagCollection`` (EBC) with one table per
  field, which pools each example's ids of a field into one vector as
  ``nn.EmbeddingBag(mode="sum")`` with ``per_sample_weights`` does;
- :func:`shard_table_wise` spreads the tables over the processes of a
  ``torch.distributed`` group with ``DistributedModelParallel``.

On 2 processes (``gloo``, CPU), from a batch that :func:`save_batch` wrote, rank 0
writes the pooled embeddings of the whole batch to ``OUT`` (see :func:`main`)::

    torchrun --standalone --nproc_per_node=2 -m mfkit.torchrec_bridge BATCH --dim 8 --out OUT

TorchRec is imported inside the functions, so ``import mfkit.torchrec_bridge`` works
without it; a function that needs it raises an ``ImportError`` saying how to get it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from mfkit.feature_rows import FeatureRows

__all__ = [
    "INSTALL_HINT",
    "field_tables",
    "keyed_jagged",
    "load_batch",
    "main",
    "save_batch",
    "shard_table_wise",
    "table_name",
]

#: What the ``ImportError`` of a function that needs TorchRec says, after the cause.
INSTALL_HINT = (
    "TorchRec is an optional extra of the course: `make venv` installs it where it can "
    "(the Makefile's TorchRec line: fbgemm-gpu-cpu==1.8.0, tensordict, torchmetrics==1.0.3 "
    "and pyre-extensions, then torchrec==1.8.0 with --no-deps, beside torch==2.13.0)."
)


def _torchrec():
    """The ``torchrec`` module, or an ``ImportError`` that says how to install it."""
    try:
        import torchrec
    except (ImportError, OSError) as error:  # missing, or fbgemm's operators fail to load
        raise ImportError(
            f"this needs TorchRec, which did not import ({error}). {INSTALL_HINT}"
        ) from (error)
    return torchrec


def table_name(field: str) -> str:
    """The name of field ``field``'s embedding table in :func:`field_tables`.

    Examples
    --------
    >>> table_name("genres")
    'genres_table'
    """
    return f"{field}_table"


def _check_names(names: Sequence[str], widths: Sequence[int]) -> list[str]:
    """``names`` as a list, if it gives each of the ``widths`` fields a distinct name."""
    if isinstance(names, str):
        raise ValueError(f"names must be a sequence of field names, got the string {names!r}")
    names = list(names)
    if len(names) != len(widths):
        raise ValueError(
            f"{len(names)} field names {names} for {len(widths)} fields of widths "
            f"{tuple(widths)}: give one name per field"
        )
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"field names must be distinct, non-empty strings, got {names}")
    return names


def keyed_jagged(rows: FeatureRows, examples: torch.Tensor, names: Sequence[str]):
    """Rows ``examples`` of ``rows`` as a TorchRec ``KeyedJaggedTensor``.

    One key per field of ``rows``, named by ``names`` in the order of ``rows.fields``.
    Key ``names[f]`` holds, example after example, the columns that the example has
    on in field ``f``, counted from the field's first column (so that they index the
    field's own table), with the feature values as weights.

    Parameters
    ----------
    rows : FeatureRows
        Feature rows with one or more fields.
    examples : torch.Tensor
        1-D integer tensor of row numbers: the batch (any order, repeats allowed).
    names : sequence of str
        One distinct name per field.

    Returns
    -------
    torchrec.KeyedJaggedTensor
        Keys ``names``, stride ``len(examples)``; ``lengths()`` has
        ``len(names) * len(examples)`` entries, key after key.

    Raises
    ------
    ValueError
        If ``names`` does not name each field once, or ``examples`` is not a 1-D
        integer tensor of row numbers of ``rows``.
    ImportError
        If TorchRec cannot be imported.
    """
    names = _check_names(names, rows.fields)
    examples = torch.as_tensor(examples)
    if examples.ndim != 1 or examples.is_floating_point() or examples.is_complex():
        raise ValueError(
            f"examples must be a 1-D integer tensor of row numbers, got shape "
            f"{tuple(examples.shape)} and dtype {examples.dtype}"
        )
    if len(examples) and not 0 <= int(examples.min()) <= int(examples.max()) < len(rows):
        raise ValueError(f"examples must be row numbers in 0..{len(rows) - 1}")
    torchrec = _torchrec()
    indices, offsets, values = rows.batch(examples)
    n, widths = len(examples), torch.tensor(rows.fields)
    starts = torch.cumsum(widths, 0) - widths  # each field's first column
    field_of = torch.bucketize(indices, starts, right=True) - 1
    lengths = torch.diff(offsets, append=torch.tensor([len(indices)]))
    row_of = torch.repeat_interleave(torch.arange(n), lengths)
    # The batch runs example by example; the KJT runs key by key, examples in order.
    key_major = torch.argsort(field_of * n + row_of, stable=True)
    return torchrec.KeyedJaggedTensor(
        keys=names,
        values=(indices - starts[field_of])[key_major],
        weights=values[key_major],
        lengths=torch.bincount(field_of * n + row_of, minlength=len(names) * n),
        stride=n,
    )


def field_tables(names: Sequence[str], widths: Sequence[int], dim: int, *, seed: int = 0):
    """A TorchRec ``EmbeddingBagCollection`` with one ``dim``-wide table per field.

    Field ``names[f]`` gets a table of ``widths[f]`` rows, named
    :func:`table_name` of the field, that pools the ids of key ``names[f]`` of a
    :func:`keyed_jagged` batch by their weighted sum, as ``nn.EmbeddingBag(mode="sum")``
    with ``per_sample_weights`` does. The weights are drawn from a normal distribution
    with standard deviation 0.1 by a generator seeded with ``seed``, table after
    table, so every process that calls it with the same arguments builds the same
    tables.

    Parameters
    ----------
    names : sequence of str
        One distinct name per field: the KJT's keys.
    widths : sequence of int
        Each field's number of columns, e.g. ``rows.fields``.
    dim : int
        Embedding dimension, the same for every table.
    seed : int
        Seed of the weights.

    Returns
    -------
    torchrec.EmbeddingBagCollection
        On the CPU, weighted (``is_weighted=True``). Called on a KJT it returns a
        ``KeyedTensor``: ``.values()`` is ``(batch, len(names) * dim)``, the fields
        side by side in the order of ``names``; ``.to_dict()`` maps each field to its
        ``(batch, dim)`` block.

    Raises
    ------
    ValueError
        If ``names`` and ``widths`` do not match, or a width or ``dim`` is below 1.
    ImportError
        If TorchRec cannot be imported.
    """
    widths = [int(width) for width in widths]
    names = _check_names(names, widths)
    if not widths or min(widths) < 1 or dim < 1:
        raise ValueError(f"widths and dim must be >= 1, got widths {widths} and dim {dim}")
    torchrec = _torchrec()
    configs = [
        torchrec.EmbeddingBagConfig(
            name=table_name(name),
            embedding_dim=dim,
            num_embeddings=width,
            feature_names=[name],
            pooling=torchrec.PoolingType.SUM,
        )
        for name, width in zip(names, widths, strict=True)
    ]
    tables = torchrec.EmbeddingBagCollection(configs, is_weighted=True, device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in names:
            tables.embedding_bags[table_name(name)].weight.normal_(0.0, 0.1, generator=generator)
    return tables


def shard_table_wise(tables, *, ranks: Sequence[int] | None = None):
    """``tables`` spread table by table over the current process group, weights kept.

    Every process calls it with the same ``tables`` (e.g. :func:`field_tables` with
    the same arguments). Table ``t`` goes whole to rank ``ranks[t]`` (by default ``t``
    modulo the world size). The returned ``DistributedModelParallel`` takes each
    process's own examples as a KJT; it sends every key's ids to the rank that holds
    its table (an all-to-all exchange), pools them there, and sends the pooled vectors
    back, so that each process gets its own examples' embeddings of every field.

    Parameters
    ----------
    tables : torchrec.EmbeddingBagCollection
        The tables, the same in every process.
    ranks : sequence of int, optional
        The rank that holds each table, in the order of ``tables``' configs.

    Returns
    -------
    torchrec.distributed.DistributedModelParallel
        On the CPU; its ``plan`` says where each table went. Calling it returns an
        awaitable: ``.wait()`` gives the ``KeyedTensor``.

    Raises
    ------
    ValueError
        If ``ranks`` does not give one rank of the group per table.
    RuntimeError
        If ``torch.distributed`` is not initialised.
    ImportError
        If TorchRec cannot be imported.
    """
    _torchrec()
    import torch.distributed as dist
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_wise
    from torchrec.distributed.types import ShardingEnv, ShardingPlan

    if not dist.is_initialized():
        raise RuntimeError("shard_table_wise needs torch.distributed.init_process_group first")
    world_size = dist.get_world_size()
    names = [config.name for config in tables.embedding_bag_configs()]
    ranks = [t % world_size for t in range(len(names))] if ranks is None else list(ranks)
    if len(ranks) != len(names) or not all(0 <= rank < world_size for rank in ranks):
        raise ValueError(f"need one rank in 0..{world_size - 1} per table of {names}, got {ranks}")
    plan = construct_module_sharding_plan(
        tables,
        {name: table_wise(rank=rank) for name, rank in zip(names, ranks, strict=True)},
        local_size=world_size,
        world_size=world_size,
        device_type="cpu",
    )
    model = DistributedModelParallel(
        tables,
        env=ShardingEnv.from_process_group(dist.group.WORLD),
        device=torch.device("cpu"),
        plan=ShardingPlan({"": plan}),
    )
    # The sharded tables start from fresh weights: copy in the shards this rank holds.
    with torch.no_grad():
        for key, sharded in model.state_dict().items():
            weight = tables.embedding_bags[key.split(".")[-2]].weight
            for shard in sharded.local_shards():
                (row, col), (height, width) = (
                    shard.metadata.shard_offsets,
                    shard.metadata.shard_sizes,
                )
                shard.tensor.copy_(weight[row : row + height, col : col + width])
    return model


def save_batch(
    path: str | os.PathLike, rows: FeatureRows, examples: torch.Tensor, names: Sequence[str]
) -> Path:
    """Write rows ``examples`` of ``rows`` and the field names to ``path``; return the path.

    For :func:`main`, whose processes read the batch back with :func:`load_batch`.

    Raises
    ------
    ValueError
        If ``names`` does not name each field of ``rows`` once.
    """
    names = _check_names(names, rows.fields)
    batch = rows.take(torch.as_tensor(examples, dtype=torch.int64))
    arrays = {"indptr": batch.indptr, "indices": batch.indices, "values": batch.values}
    torch.save(arrays | {"fields": list(batch.fields), "names": names}, path)
    return Path(path)


def load_batch(path: str | os.PathLike) -> tuple[FeatureRows, list[str]]:
    """The feature rows and the field names that :func:`save_batch` wrote to ``path``."""
    saved = torch.load(path, weights_only=True)
    fields = tuple(saved["fields"])
    rows = FeatureRows(saved["indptr"], saved["indices"], saved["values"], sum(fields), fields)
    return rows, list(saved["names"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mfkit.torchrec_bridge",
        description="Pool a batch of feature rows through TorchRec tables sharded table by "
        "table over the processes (gloo, CPU); launch with torchrun for several processes.",
    )
    parser.add_argument("batch", type=Path, help="a batch written by mfkit's save_batch")
    parser.add_argument("--dim", type=int, default=8, help="embedding dimension of every table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tables' weights")
    parser.add_argument("--out", type=Path, required=True, help="where rank 0 saves the result")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module's docstring); returns the exit status.

    Every process builds the same :func:`field_tables`, shards them with
    :func:`shard_table_wise`, pools its equal share of the batch and sends the result
    to rank 0, which saves a dict to ``--out`` with ``torch.save``: ``pooled`` (the
    batch's rows by ``fields * dim``, in the batch's order), ``plan`` (the sharding
    plan as text), ``world_size`` and ``seconds`` (rank 0's sharded forward pass).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    import torch.distributed as dist

    from mfkit.distributed import init_gloo

    rows, names = load_batch(args.batch)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if len(rows) % world_size:
        parser.error(f"a batch of {len(rows)} rows cannot be split equally over {world_size}")
    tables = field_tables(names, rows.fields, args.dim, seed=args.seed)
    init_gloo()
    try:
        rank = dist.get_rank()
        model = shard_table_wise(tables)
        share = len(rows) // world_size
        mine = keyed_jagged(rows, torch.arange(rank * share, (rank + 1) * share), names)
        start = time.perf_counter()
        pooled = model(mine).wait().to_dict()  # keyed by field, in the plan's order
        seconds = time.perf_counter() - start
        local = torch.cat([pooled[name] for name in names], dim=1).detach()
        gathered = [torch.empty_like(local) for _ in range(world_size)]
        dist.all_gather(gathered, local)
        if rank == 0:
            record = {"pooled": torch.cat(gathered), "plan": str(model.plan)}
            torch.save(record | {"world_size": world_size, "seconds": seconds}, args.out)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
