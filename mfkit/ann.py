"""Nearest-neighbour search over embeddings: exact in torch, approximate with faiss.

Built in chapter 11 (retrieval at scale). Recommending from a two-tower or
factorization model means finding, for a query embedding ``q``, the ``k`` items
``v_j`` with the highest score ``<q, v_j>`` (or cosine). :func:`exact_top_k` does
it exactly, a block of queries at a time (a matrix product and ``torch.topk``):
its cost grows with the number of items. :func:`build_index` builds a faiss
index (``pip install faiss-cpu``) that answers the same question approximately
and much faster on large catalogues:

* ``"flat"``: faiss's exact search (``IndexFlatIP``), the reference;
* ``"ivf"``: an inverted file (``IndexIVFFlat``): k-means splits the items into
  ``nlist`` cells and a query scans only the ``nprobe`` cells whose centroids
  score highest;
* ``"hnsw"``: a hierarchical navigable small-world graph (``IndexHNSWFlat``)
  searched greedily with a candidate list of ``ef_search`` entries. It runs on
  L2 distances: inner products are served through :func:`mips_augment` and
  :func:`mips_query`, cosine through unit vectors.

:func:`recall_at_k` says how much of the exact top ``k`` an index finds, and
:func:`synthetic_catalogue` makes seeded item and query embeddings of any size to
try them on.
faiss is imported only when an index is built, so this module and
:func:`exact_top_k` work without it.

A faiss index used from Python looks like this::

    index = build_index(V, "hnsw", metric="ip")
    scores, ids = index.search(U[:5], 10, ef_search=64)
    recall_at_k(ids, exact_top_k(U[:5], V, 10)[1])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "KINDS",
    "METRICS",
    "AnnIndex",
    "build_index",
    "exact_top_k",
    "mips_augment",
    "mips_query",
    "recall_at_k",
    "synthetic_catalogue",
]

#: The index kinds :func:`build_index` builds.
KINDS = ("flat", "ivf", "hnsw")
#: The scores an index ranks by (inner product, or cosine similarity).
METRICS = ("ip", "cosine")

# Scores of one block of exact_top_k hold at most this many floats (256 MB).
_BLOCK_FLOATS = 2**26


def _faiss() -> Any:
    """Import faiss, or say how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "mfkit.ann's indexes need faiss: pip install faiss-cpu (exact_top_k works without it)"
        ) from error
    return faiss


def _matrix(x: torch.Tensor | np.ndarray, name: str, check_finite: bool = True) -> torch.Tensor:
    """``x`` as a non-empty, float32, CPU, contiguous (n, d) tensor, finite if checked.

    A non-finite value makes the sum non-finite, so one sum checks most inputs.
    """
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) tensor, got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        x = x.float()
    x = x.detach().to("cpu", torch.float32).contiguous()
    if check_finite and not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _numpy_matrix(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """``x`` as a non-empty, finite, float32, C-contiguous (n, d) numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) tensor, got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_k(k: int, n_items: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > n_items:
        raise ValueError(f"k={k} is more than the {n_items} items")


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {allowed}")


def _check_dims(queries: torch.Tensor | np.ndarray, dim: int) -> None:
    if queries.shape[1] != dim:
        raise ValueError(f"queries have dimension {queries.shape[1]} but the items have {dim}")


@torch.no_grad()
def exact_top_k(
    queries: torch.Tensor,
    items: torch.Tensor,
    k: int,
    *,
    metric: str = "ip",
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact ``k`` best items for each query: a matrix product and ``topk``.

    Parameters
    ----------
    queries : tensor (n_queries, d)
    items : tensor (n_items, d)
    k : int
        Between 1 and ``n_items``.
    metric : {"ip", "cosine"}
        Inner product, or cosine similarity (both sides scaled to unit length).
    batch_size : int, optional
        Queries scored at a time; by default as many as keep one block of
        scores under 256 MB (64 queries against a million items).

    Returns
    -------
    (scores, ids) : tensors (n_queries, k), float32 and int64, best first.

    Examples
    --------
    >>> items = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    >>> scores, ids = exact_top_k(torch.tensor([[1.0, 1.0], [1.0, -1.0]]), items, 2)
    >>> ids.tolist(), scores.tolist()
    ([[2, 1], [2, 0]], [[4.0, 2.0], [2.0, 1.0]])
    """
    _check_choice(metric, METRICS, "metric")
    # Items are checked through the scores: a non-finite item scores NaN or inf and,
    # but for -inf, ranks first; checking them up front would double the cost of a query.
    queries, items = _matrix(queries, "queries"), _matrix(items, "items", check_finite=False)
    _check_dims(queries, items.shape[1])
    _check_k(k, items.shape[0])
    if batch_size is None:
        batch_size = max(1, _BLOCK_FLOATS // items.shape[0])
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if metric == "cosine":
        queries = torch.nn.functional.normalize(queries, dim=1)
        items = torch.nn.functional.normalize(items, dim=1)
    if queries.shape[0] <= batch_size:
        scores, ids = torch.topk(queries @ items.T, k, dim=1)
    else:
        blocks = [torch.topk(block @ items.T, k, dim=1) for block in queries.split(batch_size)]
        scores, ids = torch.cat([s for s, _ in blocks]), torch.cat([i for _, i in blocks])
    if not torch.isfinite(scores).all():
        raise ValueError("items contain NaN or infinite values (their scores are not finite)")
    return scores, ids


def mips_augment(items: torch.Tensor, max_norm: float | None = None) -> torch.Tensor:
    """Items with one extra coordinate that turns inner-product search into L2 search.

    Each item ``x`` becomes ``(x, sqrt(M^2 - |x|^2))``, with ``M`` the largest
    item norm, so every augmented item has length ``M``. For a query ``q``
    augmented with a zero (:func:`mips_query`), the squared distance is
    ``|q|^2 + M^2 - 2 <q, x>``: the nearest items in L2 are the items with the
    largest inner product, in the same order.

    Parameters
    ----------
    items : tensor (n_items, d)
    max_norm : float, optional
        ``M``; by default the largest norm in ``items``. It must be at least that.

    Returns
    -------
    tensor (n_items, d + 1)

    Examples
    --------
    >>> mips_augment(torch.tensor([[3.0, 4.0], [0.0, 3.0]])).tolist()
    [[3.0, 4.0, 0.0], [0.0, 3.0, 4.0]]
    """
    items = _matrix(items, "items")
    squares = (items.double() ** 2).sum(dim=1)
    largest = float(squares.max().sqrt())
    if max_norm is None:
        max_norm = largest
    elif max_norm < largest * (1 - 1e-6):
        raise ValueError(f"max_norm {max_norm} is below the largest item norm {largest}")
    extra = (max_norm**2 - squares).clamp_min(0).sqrt().to(torch.float32)
    return torch.cat([items, extra[:, None]], dim=1)


def mips_query(queries: torch.Tensor) -> torch.Tensor:
    """Queries with a zero appended, to search items made by :func:`mips_augment`.

    Examples
    --------
    >>> mips_query(torch.tensor([[1.0, 2.0]])).tolist()
    [[1.0, 2.0, 0.0]]
    """
    queries = _matrix(queries, "queries")
    return torch.cat([queries, queries.new_zeros(queries.shape[0], 1)], dim=1)


def recall_at_k(approx_ids: torch.Tensor, exact_ids: torch.Tensor) -> float:
    """Mean share of each query's exact top ``k`` that the approximate top ``k`` found.

    Both are (n_queries, k) item ids; order inside a row does not matter, and
    ``-1`` (no result, as faiss reports it) never counts as found.

    Examples
    --------
    >>> recall_at_k(torch.tensor([[1, 2, 3], [4, 5, -1]]), torch.tensor([[3, 2, 9], [4, 5, 6]]))
    0.6666666666666666
    """
    approx, exact = torch.as_tensor(approx_ids), torch.as_tensor(exact_ids)
    if approx.ndim != 2 or approx.shape != exact.shape or exact.shape[1] == 0:
        raise ValueError(
            "approx_ids and exact_ids must both be (n_queries, k) with k >= 1, got shapes "
            f"{tuple(approx.shape)} and {tuple(exact.shape)}"
        )
    k = exact.shape[1]
    found = (approx[:, :, None] == exact[:, None, :]) & (approx[:, :, None] >= 0)
    return float(found.any(dim=1).sum(dim=1).double().mean() / k)


@dataclass
class AnnIndex:
    """A faiss index over item embeddings, searched with torch tensors.

    Made by :func:`build_index`; ``ids`` are rows of the items it was built on.
    """

    kind: str
    metric: str
    dim: int
    index: Any = field(repr=False)
    nlist: int | None = None
    max_norm: float | None = None  # M of mips_augment (hnsw with metric "ip")

    @property
    def ntotal(self) -> int:
        """How many items the index holds."""
        return int(self.index.ntotal)

    @property
    def memory_bytes(self) -> int:
        """Size of the index as ``faiss.serialize_index`` writes it (vectors and structure).

        It copies the index once to measure it.
        """
        return int(_faiss().serialize_index(self.index).nbytes)

    def search(
        self,
        queries: torch.Tensor,
        k: int,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best items for each query, as the index finds them.

        Parameters
        ----------
        queries : tensor (n_queries, d)
        k : int
            Between 1 and ``ntotal``.
        nprobe : int, optional
            ``"ivf"`` only: how many of the ``nlist`` cells to scan (faiss's
            default is 1); ``nprobe = nlist`` scans them all and is exact.
        ef_search : int, optional
            ``"hnsw"`` only: the candidate list's length (faiss's default is 16;
            faiss uses at least ``k``). Longer is slower and finds more.

        Returns
        -------
        (scores, ids) : tensors (n_queries, k), float32 and int64, best first.
            Scores are inner products or cosines (for ``"hnsw"``, computed from
            its L2 distances, so to float32 rounding). Where an IVF search finds
            fewer than ``k`` items in its cells, ids are ``-1`` and scores ``-inf``.
        """
        faiss = _faiss()
        x = _numpy_matrix(queries, "queries")  # numpy: a single query pays little overhead
        _check_dims(x, self.dim)
        _check_k(k, self.ntotal)
        params = None
        if nprobe is not None:
            if self.kind != "ivf":
                raise ValueError(f"nprobe applies to kind 'ivf', not {self.kind!r}")
            if isinstance(nprobe, bool) or not isinstance(nprobe, int) or nprobe < 1:
                raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}")
            params = faiss.SearchParametersIVF(nprobe=min(nprobe, self.nlist))
        if ef_search is not None:
            if self.kind != "hnsw":
                raise ValueError(f"ef_search applies to kind 'hnsw', not {self.kind!r}")
            if isinstance(ef_search, bool) or not isinstance(ef_search, int) or ef_search < 1:
                raise ValueError(f"ef_search must be a positive integer, got {ef_search!r}")
            params = faiss.SearchParametersHNSW(efSearch=ef_search)
        if self.metric == "cosine":  # as torch's normalize: lengths below 1e-12 count as 1e-12
            norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]
            x = (x / np.maximum(norms, 1e-12)).astype(np.float32)
        elif self.kind == "hnsw":
            x = np.hstack([x, np.zeros((x.shape[0], 1), np.float32)])  # mips_query
        found, ids = self.index.search(x, k, params=params)
        if self.kind == "hnsw":  # squared L2 distances to scores
            if self.metric == "cosine":  # |q - v|^2 = 2 - 2 cos for unit vectors
                found = 1.0 - found / 2.0
            else:  # |q|^2 + M^2 - 2 <q, v>
                q2 = np.einsum("ij,ij->i", x, x, dtype=np.float64)[:, None]
                found = ((q2 + self.max_norm**2 - found) / 2.0).astype(np.float32)
        missing = ids < 0
        if missing.any():
            found[missing] = -np.inf
        return torch.from_numpy(found), torch.from_numpy(ids)


def build_index(
    items: torch.Tensor,
    kind: str = "flat",
    *,
    metric: str = "ip",
    nlist: int | None = None,
    m: int = 32,
    ef_construction: int = 40,
    seed: int = 0,
) -> AnnIndex:
    """A faiss index over ``items`` (see the module's description of each kind).

    Parameters
    ----------
    items : tensor (n_items, d)
        Item embeddings; a search returns their row numbers.
    kind : {"flat", "ivf", "hnsw"}
    metric : {"ip", "cosine"}
        Inner product, or cosine similarity (items and queries scaled to unit length).
    nlist : int, optional
        ``"ivf"``: the number of k-means cells; by default ``sqrt(n_items)``, at
        most ``n_items / 39`` (faiss wants 39 training points per cell).
    m : int
        ``"hnsw"``: links per node (faiss's ``M``); more is more memory and recall.
    ef_construction : int
        ``"hnsw"``: candidate list while building (faiss's default, 40).
    seed : int
        ``"ivf"``: the k-means seed. The graph of ``"hnsw"`` is the same from run
        to run when faiss builds it on one thread.

    Returns
    -------
    AnnIndex
    """
    _check_choice(kind, KINDS, "kind")
    _check_choice(metric, METRICS, "metric")
    for name, value in (("m", m), ("ef_construction", ef_construction)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    faiss = _faiss()
    items = _matrix(items, "items")
    n, dim = items.shape
    if metric == "cosine":
        items = torch.nn.functional.normalize(items, dim=1)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(items.numpy())
        return AnnIndex(kind, metric, dim, index)
    if kind == "ivf":
        if nlist is None:
            nlist = max(1, min(round(math.sqrt(n)), n // 39))
        elif isinstance(nlist, bool) or not isinstance(nlist, int) or not 1 <= nlist <= n:
            raise ValueError(f"nlist must be an integer between 1 and {n} items, got {nlist!r}")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(items.numpy())
        index.add(items.numpy())
        return AnnIndex(kind, metric, dim, index, nlist=nlist)
    max_norm = None
    if metric == "ip":
        max_norm = float((items.double() ** 2).sum(dim=1).max().sqrt())
        items = mips_augment(items, max_norm)
    index = faiss.IndexHNSWFlat(items.shape[1], m)  # L2
    index.hnsw.efConstruction = ef_construction
    index.add(items.numpy())
    return AnnIndex(kind, metric, dim, index, max_norm=max_norm)


def synthetic_catalogue(
    n_items: int,
    n_queries: int,
    *,
    dim: int = 64,
    rank: int = 16,
    clusters: int = 512,
    noise: float = 0.15,
    norm_sigma: float = 0.35,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded item and query embeddings shaped like learned ones: ``(items, queries)``.

    Independent Gaussian vectors in 64 dimensions have almost no neighbourhood
    structure, which makes approximate search unrealistically hard; a few tight
    clusters would make it too easy. Here every vector belongs to one of
    ``clusters`` "genres" of long-tailed sizes (weights ``1 / rank^0.8``); the
    centres and the spread within a genre live in a ``rank``-dimensional subspace
    mapped into ``dim`` dimensions with decaying singular values (most of the
    variance in a few directions, as in a trained factorization), plus isotropic
    noise at ``noise`` times the signal's scale. Item norms are then scaled by a
    log-normal factor (``norm_sigma``), as learned embeddings differ in length
    (chapter 3), so inner-product and cosine rankings differ. Queries
    (users) come from the same mixture with their own seed (``seed + 1``).

    Examples
    --------
    >>> items, queries = synthetic_catalogue(1000, 5, seed=0)
    >>> items.shape, queries.shape
    (torch.Size([1000, 64]), torch.Size([5, 64]))
    """
    if min(n_items, n_queries, dim, rank, clusters) < 1 or rank > dim:
        raise ValueError(
            "n_items, n_queries, dim, rank and clusters must be >= 1 and rank <= dim, got "
            f"{n_items}, {n_queries}, {dim}, {rank}, {clusters}"
        )
    if noise < 0 or norm_sigma < 0:
        raise ValueError(f"noise and norm_sigma must be >= 0, got {noise} and {norm_sigma}")
    g = torch.Generator().manual_seed(seed)
    singular = 1.0 / torch.arange(1, rank + 1).float() ** 0.5
    basis = torch.linalg.qr(torch.randn(dim, rank, generator=g))[0]  # orthonormal columns
    projection = (basis * singular).T  # (rank, dim)
    centres = torch.randn(clusters, rank, generator=g)
    weights = 1.0 / torch.arange(1, clusters + 1).float() ** 0.8
    scale = float(singular.norm() / rank**0.5)  # typical size of one signal coordinate

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        genre = torch.multinomial(weights, n, replacement=True, generator=generator)
        latent = centres[genre] + 0.5 * torch.randn(n, rank, generator=generator)
        return latent @ projection + noise * scale * torch.randn(n, dim, generator=generator)

    items = draw(n_items, g)
    items *= torch.exp(norm_sigma * torch.randn(n_items, 1, generator=g))
    queries = draw(n_queries, torch.Generator().manual_seed(seed + 1))
    return items, queries
