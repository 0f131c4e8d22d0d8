"""Scale benchmark: seconds per epoch and peak memory as the number of ratings grows.

Synthetic ratings at 0.1M, 1M and 10M (users and movies scaled like
MovieLens 100K, 1M and 10M), one training epoch per method (the best of
``--repeat`` runs, 3 by default), each method in its own process so that its
peak memory is its own:

* ``torch sparse SGD loop`` (the peer): ``nn.Embedding(sparse=True)`` and
  ``torch.optim.SGD``, batches of 65,536, a plain Python loop;
* ``mfkit fit, gathered``: :func:`mfkit.train.fit` on a
  :class:`~mfkit.models.MatrixFactorization` with :func:`mfkit.losses.observed_mse`
  (Adam, batches of 2^18);
* ``mfkit fit, sparse full batch``: the same model and optimizer, one full-batch
  step per epoch with :func:`mfkit.losses.mse_sparse` on a
  :class:`mfkit.sparse.RatingMatrix` (``batch_size=None``); sorting the ratings
  into the matrix happens once, and is timed on its own row;
* ``mfkit ALS sweep``: one user and one movie solve of :mod:`mfkit.als`;
* ``dense U V^T``: one step of :func:`mfkit.losses.mse_dense`, under a memory cap.

Run ``make bench-scale`` (or ``python benchmarks/scale.py --help``). It prints
a markdown table and writes it to ``book/benchmarks/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from common import machine, write

SIZES = {  # ratings: (users, movies), as MovieLens 100K, 1M and 10M
    100_000: (943, 1_682),
    1_000_000: (6_040, 3_706),
    10_000_000: (69_878, 10_677),
}
METHODS = (
    "torch sparse SGD loop",
    "mfkit fit, gathered",
    "RatingMatrix sort (once)",
    "mfkit fit, sparse full batch",
    "mfkit ALS sweep",
    "dense U V^T",
)
DIM = 32


def synthetic(n_ratings: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Users uniform, movies with a long tail (Zipf-like), ratings 1-5."""
    n_users, n_movies = SIZES[n_ratings]
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(n_users, (n_ratings,), generator=g)
    popularity = 1.0 / torch.arange(1, n_movies + 1).float() ** 0.8
    movies = torch.multinomial(popularity, n_ratings, replacement=True, generator=g)
    ratings = torch.randint(1, 6, (n_ratings,), generator=g).float()
    return users, movies, ratings


def peer_epoch(users, movies, ratings, n_users, n_movies, device) -> None:
    user_table = torch.nn.Embedding(n_users, DIM, sparse=True).to(device)
    movie_table = torch.nn.Embedding(n_movies, DIM, sparse=True).to(device)
    opt = torch.optim.SGD([*user_table.parameters(), *movie_table.parameters()], lr=0.05)
    order = torch.randperm(len(users), device=device)
    for start in range(0, len(users), 65_536):
        batch = order[start : start + 65_536]
        pred = (user_table(users[batch]) * movie_table(movies[batch])).sum(1)
        loss = torch.nn.functional.mse_loss(pred, ratings[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()


def fit_epoch(users, movies, ratings, n_users, n_movies, device) -> None:
    from mfkit.losses import observed_mse
    from mfkit.models import MatrixFactorization
    from mfkit.train import fit

    model = MatrixFactorization(n_users, n_movies, DIM, bias=True, global_mean=3.0, seed=0)
    fit(model, (users, movies, ratings), observed_mse, epochs=1, batch_size=2**18, lr=0.01,
        device=device, progress=False)  # fmt: skip


def sort_matrix(users, movies, ratings, n_users, n_movies, device) -> None:
    from mfkit.sparse import RatingMatrix

    RatingMatrix(users, movies, ratings, n_users, n_movies)


def sparse_epoch(users, movies, ratings, n_users, n_movies, device) -> float:
    """Seconds of the epoch alone (the sort is the row above)."""
    from mfkit.losses import mse_sparse
    from mfkit.models import MatrixFactorization
    from mfkit.sparse import RatingMatrix
    from mfkit.train import fit

    matrix = RatingMatrix(users, movies, ratings, n_users, n_movies)
    model = MatrixFactorization(n_users, n_movies, DIM, bias=True, global_mean=3.0, seed=0)
    history = fit(model, (matrix,), mse_sparse, epochs=1, batch_size=None, lr=0.01,
                  device=device, progress=False)  # fmt: skip
    return history.seconds[0]


def als_sweep(users, movies, ratings, n_users, n_movies, device) -> None:
    from mfkit.als import als_fit
    from mfkit.models import MatrixFactorization

    model = MatrixFactorization(n_users, n_movies, DIM, bias=True, global_mean=3.0, seed=0)
    als_fit(model.to(device), users, movies, ratings, reg=0.1, iterations=1, progress=False)


def dense_step(users, movies, ratings, n_users, n_movies, device) -> None:
    from mfkit.losses import mse_dense

    U = torch.randn(n_users, DIM, device=device, requires_grad=True)  # noqa: N806
    V = torch.randn(n_movies, DIM, device=device, requires_grad=True)  # noqa: N806
    mse_dense(U, V, users, movies, ratings).backward()


RUN = {
    "torch sparse SGD loop": peer_epoch,
    "mfkit fit, gathered": fit_epoch,
    "RatingMatrix sort (once)": sort_matrix,
    "mfkit fit, sparse full batch": sparse_epoch,
    "mfkit ALS sweep": als_sweep,
    "dense U V^T": dense_step,
}


def worker(method: str, n_ratings: int, device: str, cap_gib: float | None, repeat: int) -> dict:
    """Time one method ``repeat`` times in this process; return the best time and peak memory."""
    torch.set_num_threads(torch.get_num_threads())
    users, movies, ratings = (t.to(device) for t in synthetic(n_ratings))
    n_users, n_movies = SIZES[n_ratings]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if cap_gib is not None:
        cap = int(cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    warm = slice(0, 10_000)  # first calls pay for imports, thread pools and kernel set-up
    times = []
    try:
        RUN[method](users[warm], movies[warm], ratings[warm], n_users, n_movies, device)
        for _ in range(repeat):
            start = time.perf_counter()
            inner = RUN[method](users, movies, ratings, n_users, n_movies, device)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(inner if inner is not None else time.perf_counter() - start)
    except (MemoryError, RuntimeError) as err:
        return {"error": f"out of memory ({type(err).__name__})"}
    seconds = min(times)  # the least disturbed run: shared machines add noise, never speed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {"seconds": seconds, "peak_gib": peak, "data_gib": before}
    if device == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.1, 1, 10],
                        help="millions of ratings (0.1, 1, 10)")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cap-gib", type=float, default=2.0,
                        help="memory cap of the dense method (GiB of heap)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (best kept)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        method, n, cap = json.loads(args.worker)
        print(json.dumps(worker(method, n, args.device, cap, args.repeat)))
        return 0
    rows = []
    for millions in args.sizes:
        n = int(round(millions * 1e6))
        if n not in SIZES:
            parser.error(f"sizes must be among {[s / 1e6 for s in SIZES]}")
        for method in METHODS:
            cap = args.cap_gib if method == "dense U V^T" else None
            job = [sys.executable, __file__, "--device", args.device, "--repeat",
                   str(args.repeat), "--worker", json.dumps([method, n, cap])]  # fmt: skip
            done = subprocess.run(job, capture_output=True, text=True, check=False)
            lines = done.stdout.strip().splitlines()
            result = json.loads(lines[-1]) if done.returncode == 0 and lines else {
                "error": f"crashed (exit {done.returncode})"
            }  # fmt: skip
            rows.append((n, method, result))
            print(f"{n:>11,} {method:<24} {result}", file=sys.stderr)
    table = render(rows, args.device, args.cap_gib, args.repeat)
    print(table)
    if not args.no_write:
        write("scale", table)
    return 0


def render(rows, device: str, cap_gib: float, repeat: int) -> str:
    lines = [
        f"Device: {device} ({machine(device)}). Best of {repeat} timed runs of one epoch "
        f"(ALS: one sweep, including its sort; "
        f"dense: one step) on synthetic ratings, embedding size {DIM}. An epoch of the SGD "
        f"loop and of gathered `fit` takes many mini-batch steps; the sparse full-batch "
        f"epoch takes one step, so it needs more epochs to converge (the accuracy and speed "
        f"benchmarks measure time to a target RMSE). Peak memory is the process's peak "
        f"resident set (GPU: peak allocated), including the data; the dense method runs "
        f"under a {cap_gib:g} GiB heap cap.",
        "",
        "| ratings | users | movies | method | seconds | ratings/s | peak memory (GiB) |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for n, method, result in rows:
        users, movies = SIZES[n]
        if "error" in result:
            cells = [result["error"], "", ""]
        else:
            s = result["seconds"]
            cells = [f"{s:.3f}", f"{n / s:,.0f}", f"{result['peak_gib']:.2f}"]
        lines.append(f"| {n:,} | {users:,} | {movies:,} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
