"""Thread settings beside a busy core: which one keeps every kind of work fast?

On a 2-core machine, a second process that keeps one core busy (another notebook, a
browser tab, an IDE) makes torch's OpenMP threads spin-wait for each other: two threads
can run several times slower than one. This script times the kinds of work the chapters
do, each in a fresh process, quiet and beside a process that spins on one core, with

- torch's default threads (one per core),
- the same with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning),
- one thread (``OMP_NUM_THREADS=1``).

The named peer is the default setting; the table gives seconds (median of ``--repeat``
runs), each setting's time beside the busy core relative to its quiet time, and the
setting :mod:`mfkit.threads` applies to that kind of work. The timed code bypasses
mfkit's own choice (``fit(threads=None)``, the undecorated evaluation), so every column
measures what it names.

Usage: ``python benchmarks/threads.py [--repeat 3]`` (``make bench-threads``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import machine, write

MF = """
from mfkit.data import synthetic_movielens
from mfkit.features import Indexer
from mfkit.losses import observed_mse
from mfkit.models import MatrixFactorization
from mfkit.train import fit
ds = synthetic_movielens(943, 1682, {ratings}, seed=0)
idx = Indexer.from_movielens(ds)
data = idx.pairs(ds.ratings) + (torch.tensor(ds.ratings.rating.to_numpy(), dtype=torch.float32),)
model = MatrixFactorization(idx.n_users, idx.n_movies, dim=32, bias=True, seed=0)
START()
fit(model, data, observed_mse, epochs={epochs}, batch_size={batch}, progress=False, threads=None)
"""

WORK = {
    "small-batch MF (batch 64, 1 epoch of 20K ratings)": MF.format(
        ratings=20_000, epochs=1, batch=64
    ),
    "MF batch 1024 (3 epochs of 80K ratings)": MF.format(ratings=80_000, epochs=3, batch=1024),
    "softmax batch 512 (1 epoch of 20K (user, movie) examples)": """
import functools
from mfkit.losses import softmax_loss
from mfkit.models import SoftmaxModel
from mfkit.train import fit
g = torch.Generator().manual_seed(0)
bags = (torch.rand(943, 1682, generator=g) < 0.0126).float()
users, movies = bags.nonzero(as_tuple=True)
model = SoftmaxModel(1682, dim=64, seed=0)
START()
fit(
    model, (users, movies), functools.partial(softmax_loss, bags=bags),
    epochs=1, batch_size=512, progress=False, threads=None,
)
""",
    "full-ranking evaluation (leave-one-out, 943 users x 1682 movies, 5 times)": """
import inspect
from mfkit.data import synthetic_movielens
from mfkit.evaluation import evaluate_leave_one_out
from mfkit.features import Indexer
from mfkit.models import MatrixFactorization
from mfkit.splits import leave_one_out
ds = synthetic_movielens(943, 1682, 80_000, seed=0)
idx = Indexer.from_movielens(ds)
train, test = leave_one_out(ds.ratings)
model = MatrixFactorization(idx.n_users, idx.n_movies, dim=32, seed=0)
evaluate = inspect.unwrap(evaluate_leave_one_out)  # without mfkit's one-thread decorator
START()
with torch.no_grad():
    for _ in range(5):
        evaluate(model, idx, train, test, negatives=None)
""",
    "t-SNE map (1682 x 32)": """
import numpy as np
from sklearn.manifold import TSNE
x = np.random.default_rng(0).normal(size=(1682, 32)).astype(np.float32)
START()
TSNE(n_components=2, metric="cosine", init="pca", random_state=0).fit_transform(x)
""",
    "full-batch steps (943 x 1682 bags, 20 Adam steps)": """
g = torch.Generator().manual_seed(0)
bags = (torch.rand(943, 1682, generator=g) < 0.06).float()
V = torch.randn(1682, 64, generator=g).requires_grad_()
W = torch.randn(1682, 64, generator=g).requires_grad_()
opt = torch.optim.Adam([V, W], lr=0.01)
START()
for _ in range(20):
    logits = (bags @ V) @ W.T
    loss = -(torch.log_softmax(logits, 1) * bags).sum() / bags.sum()
    opt.zero_grad(); loss.backward(); opt.step()
""",
    "EASE solve (1682 x 1682)": """
from mfkit.models.ranking import ease_weights
g = torch.Generator().manual_seed(0)
X = (torch.rand(943, 1682, generator=g) < 0.06).float()
START()
for _ in range(3):
    ease_weights(X, 100.0)
""",
    "faiss IVF build + search (100K x 64)": """
from mfkit.ann import build_index, synthetic_catalogue
items, queries = synthetic_catalogue(100_000, 2_000, seed=0)
START()
index = build_index(items, "ivf")
index.search(queries, 10)
""",
}

# The setting mfkit applies to each kind of work (mfkit.threads): `import mfkit` sets
# the passive wait policy, and the kinds that are as fast on one thread run on one.
MFKIT_USES = dict(
    zip(
        WORK,
        ["one thread", "one thread", "PASSIVE wait", "one thread"] + ["PASSIVE wait"] * 4,
        strict=True,
    )
)

PRELUDE = """
import time, torch
_t = [None]
def START():
    _t[0] = time.perf_counter()
"""
EPILOGUE = "\nprint(time.perf_counter() - _t[0])\n"

SETTINGS = {
    "default threads": {},
    "PASSIVE wait": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one thread": {"OMP_NUM_THREADS": "1"},
}
SPIN = "while True:\n    pass\n"


def seconds(code: str, env: dict[str, str], repeat: int) -> float:
    """Median seconds of the timed part of ``code``, each run in a fresh process."""
    times = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", PRELUDE + code + EPILOGUE],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    base["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(__file__)), base.get("PYTHONPATH", "")]
    )
    rows = []
    for work, code in WORK.items():
        quiet = {
            name: seconds(code, {**base, **extra}, args.repeat) for name, extra in SETTINGS.items()
        }
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        try:
            time.sleep(0.5)
            busy = {
                name: seconds(code, {**base, **extra}, args.repeat)
                for name, extra in SETTINGS.items()
            }
        finally:
            spinner.kill()
        cells = [f"{quiet[n]:.2f} / {busy[n]:.2f} ({busy[n] / quiet[n]:.1f}x)" for n in SETTINGS]
        rows.append(f"| {work} | " + " | ".join(cells) + f" | {MFKIT_USES[work]} |")
        print(rows[-1], flush=True)
    text = (
        f"Seconds, quiet / beside one busy core (slowdown), median of {args.repeat} runs; "
        f"{machine()}.\n\n| work | " + " | ".join(SETTINGS) + " | mfkit uses |\n|---|"
        + "---|" * (len(SETTINGS) + 1) + "\n" + "\n".join(rows) + "\n"
    )  # fmt: skip
    print("\n" + text)
    print(f"written to {write('threads', text)}")


if __name__ == "__main__":
    main()
