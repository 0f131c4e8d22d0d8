"""Data-parallel training: matrix factorization on several processes with DDP.

Used in chapter 11 (retrieval at scale). Every process (*rank*) holds a full copy of a
:class:`~mfkit.models.MatrixFactorization` wrapped in
:class:`torch.nn.parallel.DistributedDataParallel`, on the ``gloo`` backend (CPU). In
each epoch every rank draws the same seeded permutation of the ratings and cuts it
into the same *global* batches; rank ``r`` takes the ``r``-th of ``world_size`` equal
shards of each (:func:`shard`), computes :func:`mfkit.losses.observed_mse` on it, and
DDP averages the gradients over the ranks during ``backward``. The average of the
shards' mean gradients is the mean gradient of the global batch, so 2 processes take
the same steps as 1 process with the same ``--batch-size``, up to the order in which
floats are summed. Only full global batches are used: the ``n % batch_size`` ratings
left over (different ones every epoch) wait for a later epoch.

One machine, 2 processes (``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and the
rendezvous for each process)::

    torchrun --standalone --nproc_per_node=2 -m mfkit.distributed --epochs 5 --out run.json

One process: ``--nproc_per_node=1``, or plain ``python -m mfkit.distributed ...``
(a process group of one, without ``torchrun``). ``--synthetic`` trains on
:func:`mfkit.data.synthetic_movielens` data instead of ML-100K (``MFKIT_DATA_DIR``).

Two machines, 2 processes each: run the same command on both; ``HOST:PORT`` is an
address of the first machine that the second can reach, and ``--rdzv_id`` any name
the two share::

    torchrun --nnodes=2 --nproc_per_node=2 --rdzv_id=mf --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29400 -m mfkit.distributed --out run.json

The c10d rendezvous numbers the machines itself as they join (torchrun ignores
``--node_rank`` with it, and says so). With the static rendezvous instead, each
machine states its rank: ``--nnodes=2 --node_rank=0`` on the first and
``--node_rank=1`` on the second, both with ``--master_addr=HOST --master_port=PORT``.

Rank 0 prints one line per epoch and, with ``--out PATH``, writes a JSON record
(per-epoch mean training loss, seconds per epoch, world size, ratings per second)
and the final ``state_dict`` to ``PATH`` with the suffix ``.pt``.

Why large embedding tables are sharded, not replicated: data parallelism keeps a
full copy of every parameter on every rank and all-reduces a gradient as large as
the model at each step. That is cheap for ML-100K's few thousand rows, but a
production catalogue has hundreds of millions of users and items, whose tables do
not fit in one machine's memory, and a batch touches only a tiny fraction of their
rows. Libraries such as TorchRec therefore split the embedding tables across the
ranks (model parallelism by rows or by tables), send each rank's lookups to the
rank that owns the rows (an all-to-all exchange), and replicate only the small
dense layers with DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mfkit.losses import observed_mse
from mfkit.models import MatrixFactorization
from mfkit.train import OPTIMIZERS

__all__ = ["global_batches", "init_gloo", "main", "shard", "train"]


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s equal share of a global batch: the ``rank``-th of ``world_size`` slices.

    The slices of ranks ``0..world_size-1`` are disjoint, equally long and, in rank
    order, make up ``batch``.

    Examples
    --------
    >>> batch = torch.tensor([7, 3, 5, 1, 0, 9])
    >>> shard(batch, 0, 2).tolist(), shard(batch, 1, 2).tolist()
    ([7, 3, 5], [1, 0, 9])
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..world_size-1, got rank {rank} of {world_size}")
    if len(batch) % world_size:
        raise ValueError(
            f"a global batch of {len(batch)} cannot be split into {world_size} equal shards: "
            f"choose a batch size divisible by the number of processes"
        )
    size = len(batch) // world_size
    return batch[rank * size : (rank + 1) * size]


def global_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch's global batches: a permutation of ``0..n-1`` cut into full batches.

    Every rank calls it with a generator seeded alike, so all ranks see the same
    batches; the last ``n % batch_size`` rows of the permutation are left out.

    Examples
    --------
    >>> [b.tolist() for b in global_batches(5, 2, torch.Generator().manual_seed(0))]
    [[4, 0], [1, 3]]
    """
    order = torch.randperm(n, generator=generator)
    for first in range(0, n - batch_size + 1, batch_size):
        yield order[first : first + batch_size]


def train(
    users: torch.Tensor,
    movies: torch.Tensor,
    ratings: torch.Tensor,
    n_users: int,
    n_movies: int,
    *,
    epochs: int = 5,
    batch_size: int = 1024,
    lr: float = 0.01,
    dim: int = 32,
    optimizer: str = "adam",
    bias: bool = False,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[MatrixFactorization, dict]:
    """Train a matrix factorization with DDP in the current process group.

    Every rank calls it with the same data and arguments (``torch.distributed``
    must be initialised, on ``gloo``). Returns the trained model (the same on
    every rank) and a record: ``train_loss`` (mean over the epoch's global
    batches), ``seconds`` per epoch, ``ratings_per_second`` and the sizes.
    ``log`` (rank 0 only) receives one line per epoch.
    """
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} must be a multiple of the number of processes "
            f"({world_size}): each process takes an equal share of every global batch"
        )
    if batch_size > len(ratings):
        raise ValueError(
            f"the global batch ({batch_size}) is larger than the data ({len(ratings)} ratings)"
        )
    model = MatrixFactorization(
        n_users, n_movies, dim, bias=bias, global_mean=float(ratings.mean()), seed=seed
    )
    ddp = DistributedDataParallel(model)  # broadcasts rank 0's weights to every rank
    opt = OPTIMIZERS[optimizer](ddp.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    record: dict = {"train_loss": [], "seconds": []}
    n_batches = len(ratings) // batch_size
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        total = torch.zeros(())
        for batch in global_batches(len(ratings), batch_size, generator):
            rows = shard(batch, rank, world_size)
            loss = observed_mse(ddp, users[rows], movies[rows], ratings[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            total += loss.detach()
        dist.all_reduce(total)  # sum of every shard's mean loss
        seconds = time.perf_counter() - start
        record["train_loss"].append(float(total) / (world_size * n_batches))
        record["seconds"].append(seconds)
        if log is not None and rank == 0:
            log(
                f"epoch {epoch}/{epochs}  train MSE {record['train_loss'][-1]:.4f}  "
                f"{seconds:.2f} s  {n_batches * batch_size / seconds:,.0f} ratings/s  "
                f"({world_size} process{'es' if world_size > 1 else ''})"
            )
    record.update(
        world_size=world_size,
        n_ratings=len(ratings),
        ratings_per_epoch=n_batches * batch_size,
        ratings_per_second=epochs * n_batches * batch_size / sum(record["seconds"]),
    )
    return model.eval(), record


def init_gloo() -> None:
    """Join the process group on the CPU's ``gloo`` backend.

    Started by ``torchrun`` (``RANK`` is set), the processes meet through the
    environment; otherwise this process is a group of one.
    """
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    else:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mfkit.distributed",
        description="Train matrix factorization (observed MSE) with DistributedDataParallel "
        "on gloo; launch with torchrun for several processes.",
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024, help="global batch (all ranks)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    parser.add_argument("--bias", action="store_true", help="add global, user and movie biases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument(
        "--synthetic", action="store_true", help="synthetic MovieLens-shaped data, not ML-100K"
    )
    parser.add_argument(
        "--synthetic-size",
        type=int,
        nargs=3,
        default=(200, 300, 5000),
        metavar=("USERS", "MOVIES", "RATINGS"),
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON record; the state_dict goes to PATH.pt"
    )
    return parser


def _load(args: argparse.Namespace, rank: int):
    from mfkit.data import load_movielens, synthetic_movielens
    from mfkit.features import Indexer

    if args.synthetic:
        ds = synthetic_movielens(*args.synthetic_size, seed=args.seed)
    else:
        if rank != 0:  # rank 0 alone downloads and verifies; the others then read its cache
            dist.barrier()
        ds = load_movielens("ml-100k", progress=False)
        if rank == 0:
            dist.barrier()
    indexer = Indexer.from_movielens(ds)
    return (*indexer.tensors(ds.ratings), indexer.n_users, indexer.n_movies)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size < 1 or args.batch_size % world_size:
        parser.error(
            f"--batch-size {args.batch_size} must be a positive multiple of the number of "
            f"processes ({world_size}): each process takes an equal share of every global batch"
        )
    if args.out is not None and args.out.suffix == ".pt":
        parser.error("--out names the JSON record; the weights go next to it with suffix .pt")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    init_gloo()
    try:
        rank = dist.get_rank()
        users, movies, ratings, n_users, n_movies = _load(args, rank)
        model, record = train(
            users,
            movies,
            ratings,
            n_users,
            n_movies,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            dim=args.dim,
            optimizer=args.optimizer,
            bias=args.bias,
            seed=args.seed,
            log=lambda line: print(line, flush=True),
        )
        if rank == 0 and args.out is not None:
            weights = args.out.with_suffix(".pt")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), weights)
            record.update(
                data="synthetic" if args.synthetic else "ml-100k",
                n_users=n_users,
                n_movies=n_movies,
                config=model.config,
                settings={k: v for k, v in vars(args).items() if k != "out"},
                state_dict=weights.name,
            )
            args.out.write_text(json.dumps(record, indent=2, default=list) + "\n")
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
