"""How CPU threads run each kind of work, so that a busy core does not stall them.

torch runs an operation on all cores (two here) when it is large enough, and its
OpenMP threads wait for each other at the end of each one. Beside another process
that keeps one core busy (a second notebook, a browser tab, an IDE), the thread that
shares the busy core arrives late at every one of those waits, and by default the
other one spins meanwhile: work made of many mid-sized operations ran up to ten times
slower (chapter 2 once took 17 minutes instead of one). ``make bench-threads`` times
each kind of work the chapters do, quiet and beside a busy core, with each setting
(book/benchmarks/threads.md). mfkit's policy has two parts:

- **waiting threads sleep** (``OMP_WAIT_POLICY=PASSIVE``, set by ``import mfkit``
  unless already set). OpenMP reads it once, when torch loads, so the chapters import
  mfkit first. It kept the large operations that gain from two threads (the softmax,
  sequence and two-tower models, whose steps score the whole catalogue, full-batch
  steps, EASE's solve, faiss, t-SNE) within about 1.1-1.7x of their quiet time
  beside a busy core (spinning threads: up to 3x), at 1-33% more time when quiet;
- **one thread** where it was about as fast as two when quiet, or where sleeping
  threads were slow to wake for many small steps: the mini-batch steps of the models that score
  (user, movie) pairs (``step_threads = 1``: matrix factorization, the feature
  models, ``ImplicitMLP``, ``NeuMF``), their ``score_all`` and ranking evaluations
  (:mod:`mfkit.evaluation`). For the feature models two sleeping threads were the
  slowest choice: chapter 6 took 104 s when quiet, against 76 s on one thread and
  63 s with two spinning ones.

:func:`torch_threads` applies a thread count to a block or a function; a chapter's
own training loop uses it too (chapter 2). :func:`on_model_threads` runs a function
of a model on the model's ``step_threads``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["check_threads", "on_model_threads", "torch_threads"]


def check_threads(n: int | None) -> None:
    """Raise ``ValueError`` unless ``n`` is a positive integer or None."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (``None``: leave the setting alone).

    Also a decorator: ``@torch_threads(1)`` runs each call of a function on one thread.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    check_threads(n)
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def on_model_threads(function: Callable) -> Callable:
    """Decorate ``function(model, ...)`` to run on the model's ``step_threads``.

    One thread for the models that set ``step_threads = 1``, torch's setting for any
    other first argument (another model, a plain scoring function). Used for the
    pair models' ``score_all`` (the model is ``self``) and :mod:`mfkit.evaluation`.
    """

    @functools.wraps(function)
    def run(model, *args, **kwargs):
        with torch_threads(getattr(model, "step_threads", None)):
            return function(model, *args, **kwargs)

    return run
