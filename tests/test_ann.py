"""Tests for mfkit.ann: exact top-k, faiss indexes, MIPS augmentation, recall."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from mfkit.ann import (
    KINDS,
    build_index,
    exact_top_k,
    mips_augment,
    mips_query,
    recall_at_k,
    synthetic_catalogue,
)


def embeddings(n: int, d: int, seed: int) -> torch.Tensor:
    """Gaussian vectors with varying norms (continuous, so scores have no ties)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x * torch.empty(n, 1).uniform_(0.2, 3.0, generator=g)


def brute(queries: torch.Tensor, items: torch.Tensor, k: int) -> np.ndarray:
    scores = (queries.double() @ items.double().T).numpy()
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return embeddings(2_000, 16, seed=0), embeddings(50, 16, seed=1)


@pytest.mark.parametrize("batch_size", [None, 1, 7, 1000])
def test_exact_top_k_is_brute_force(data, batch_size):
    items, queries = data
    scores, ids = exact_top_k(queries, items, 10, batch_size=batch_size)
    np.testing.assert_array_equal(ids.numpy(), brute(queries, items, 10))
    expected = torch.gather(queries @ items.T, 1, ids)
    torch.testing.assert_close(scores, expected)
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    assert ids.dtype == torch.int64 and scores.dtype == torch.float32


def test_exact_top_k_k_equal_to_catalogue():
    items, queries = embeddings(5, 3, seed=2), embeddings(4, 3, seed=3)
    _, ids = exact_top_k(queries, items, 5)
    np.testing.assert_array_equal(ids.numpy(), brute(queries, items, 5))


def test_exact_top_k_cosine_is_inner_product_of_unit_vectors(data):
    items, queries = data
    unit = torch.nn.functional.normalize
    scores, ids = exact_top_k(queries, items, 10, metric="cosine")
    expected_scores, expected_ids = exact_top_k(unit(queries, dim=1), unit(items, dim=1), 10)
    assert torch.equal(ids, expected_ids)
    torch.testing.assert_close(scores, expected_scores)
    assert scores.max() <= 1 + 1e-5


def test_exact_top_k_accepts_numpy_and_double(data):
    items, queries = data
    _, ids = exact_top_k(queries.double().numpy(), items.double(), 5)
    assert torch.equal(ids, exact_top_k(queries, items, 5)[1])


def test_mips_augmentation_turns_inner_product_order_into_l2_order(data):
    items, queries = data
    big, small = mips_augment(items), mips_query(queries)
    assert big.shape == (2_000, 17) and small.shape == (50, 17)
    norms = big.double().norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, norms.max().item()), rtol=1e-6, atol=0)
    distances = torch.cdist(small.double(), big.double()) ** 2
    l2_order = np.argsort(distances.numpy(), axis=1, kind="stable")
    np.testing.assert_array_equal(l2_order[:, :50], brute(queries, items, 50))
    # |q - x|^2 = |q|^2 + M^2 - 2 <q, x>
    expected = (queries.double() ** 2).sum(1, keepdim=True) + norms.max() ** 2
    expected = expected - 2 * queries.double() @ items.double().T
    torch.testing.assert_close(distances, expected, rtol=1e-5, atol=1e-3)


def test_mips_augment_with_a_larger_bound_and_a_too_small_one():
    items = torch.tensor([[3.0, 4.0]])
    assert mips_augment(items, max_norm=13.0).tolist() == [[3.0, 4.0, 12.0]]
    with pytest.raises(ValueError, match="below the largest item norm"):
        mips_augment(items, max_norm=4.0)


def test_recall_at_k_by_hand():
    exact = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(torch.tensor([[4, 3, 2, 1], [9, 9, 9, 9]]), exact) == 0.5
    assert recall_at_k(torch.tensor([[1, 9, -1, -1], [8, 7, 0, 0]]), exact) == (1 / 4 + 2 / 4) / 2
    assert recall_at_k(np.array([[-1]]), np.array([[-1]])) == 0.0


@pytest.mark.parametrize(
    ("approx", "exact"),
    [([[1, 2]], [[1, 2, 3]]), ([1, 2], [1, 2]), ([[1, 2]], [[1], [2]]), ([[]], [[]])],
)
def test_recall_at_k_rejects_mismatched_shapes(approx, exact):
    with pytest.raises(ValueError, match="n_queries, k"):
        recall_at_k(torch.tensor(approx), torch.tensor(exact))


@pytest.mark.parametrize(
    ("queries", "items", "k", "kwargs", "message"),
    [
        (torch.zeros(2, 3), torch.zeros(5, 4), 1, {}, "dimension 3 but the items have 4"),
        (torch.zeros(3), torch.zeros(5, 3), 1, {}, "queries must be a 2-D"),
        (torch.zeros(2, 3), torch.zeros(0, 3), 1, {}, "items is empty"),
        (torch.zeros(2, 3), torch.zeros(5, 3), 0, {}, "k must be a positive integer"),
        (torch.zeros(2, 3), torch.zeros(5, 3), 6, {}, "k=6 is more than the 5 items"),
        (torch.zeros(2, 3), torch.zeros(5, 3), True, {}, "k must be a positive integer"),
        (torch.zeros(2, 3), torch.zeros(5, 3), 1, {"metric": "l2"}, "unknown metric 'l2'"),
        (torch.zeros(2, 3), torch.zeros(5, 3), 1, {"batch_size": 0}, "batch_size must"),
        (torch.full((2, 3), float("nan")), torch.zeros(5, 3), 1, {}, "queries contains NaN"),
        (
            torch.ones(2, 3),
            torch.eye(3).index_fill(0, torch.tensor([1]), float("nan")),
            1,
            {},
            "items contain NaN or infinite",
        ),
        (
            torch.ones(2, 3),
            torch.eye(3).index_fill(0, torch.tensor([2]), float("inf")),
            3,
            {},
            "items contain NaN or infinite",
        ),
    ],
)
def test_exact_top_k_errors(queries, items, k, kwargs, message):
    with pytest.raises(ValueError, match=message):
        exact_top_k(queries, items, k, **kwargs)


def test_synthetic_catalogue_shapes_seed_and_norms():
    items, queries = synthetic_catalogue(3_000, 40, dim=24, rank=6, clusters=20, seed=3)
    assert items.shape == (3_000, 24) and queries.shape == (40, 24)
    again = synthetic_catalogue(3_000, 40, dim=24, rank=6, clusters=20, seed=3)
    assert torch.equal(items, again[0]) and torch.equal(queries, again[1])
    assert not torch.equal(items, synthetic_catalogue(3_000, 40, dim=24, rank=6, seed=4)[0])
    norms = items.norm(dim=1)
    assert norms.std() / norms.mean() > 0.25  # log-normal norms: lengths vary
    flat = synthetic_catalogue(3_000, 40, dim=24, rank=6, norm_sigma=0.0, noise=0.0)[0]
    # without noise every vector lies in the rank-6 subspace
    assert torch.linalg.matrix_rank(flat.double(), rtol=1e-4) == 6
    # clustered: an item's nearest neighbour is closer than a random other item
    d = torch.cdist(items[:200], items)
    d[torch.arange(200), torch.arange(200)] = float("inf")
    assert d.min(dim=1).values.median() < 0.5 * d.median()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_items": 0}, "must be >= 1"),
        ({"rank": 65}, "rank <= dim"),
        ({"noise": -0.1}, "noise and norm_sigma"),
    ],
)
def test_synthetic_catalogue_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_catalogue(**{"n_items": 10, "n_queries": 2, **kwargs})


# faiss indexes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def faiss():
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(1)
    return faiss


def test_flat_index_equals_exact(faiss, data):
    items, queries = data
    index = build_index(items, "flat")
    assert (index.kind, index.metric, index.ntotal, index.dim) == ("flat", "ip", 2_000, 16)
    scores, ids = index.search(queries, 10)
    exact_scores, exact_ids = exact_top_k(queries, items, 10)
    assert torch.equal(ids, exact_ids)
    torch.testing.assert_close(scores, exact_scores, rtol=1e-5, atol=1e-4)
    assert 2_000 * 16 * 4 <= index.memory_bytes < 2_000 * 16 * 4 + 10_000


def test_ivf_scanning_every_cell_equals_exact(faiss, data):
    items, queries = data
    index = build_index(items, "ivf", nlist=20, seed=0)
    gc.collect()  # the coarse quantizer must outlive this function's references to it
    assert index.nlist == 20
    _, ids = index.search(queries, 10, nprobe=20)
    assert torch.equal(ids, exact_top_k(queries, items, 10)[1])
    few_scores, few = index.search(queries, 10, nprobe=1)  # faster, may miss some
    assert recall_at_k(few, ids) < 1.0
    assert torch.isfinite(few_scores[few >= 0]).all()


def test_ivf_default_nlist_and_seed(faiss, data):
    items, queries = data
    index = build_index(items, "ivf")
    assert index.nlist == round(2_000**0.5)
    again = build_index(items, "ivf")
    assert torch.equal(index.search(queries, 5)[1], again.search(queries, 5)[1])


def test_hnsw_recall(faiss, data):
    items, queries = data
    index = build_index(items, "hnsw")  # M = 32
    exact_scores, exact_ids = exact_top_k(queries, items, 10)
    scores, ids = index.search(queries, 10, ef_search=64)
    assert recall_at_k(ids, exact_ids) >= 0.9
    # scores are inner products, recovered from the augmented L2 distances
    torch.testing.assert_close(scores, torch.gather(queries @ items.T, 1, ids), atol=1e-3, rtol=0)
    assert recall_at_k(ids, exact_ids) >= recall_at_k(index.search(queries, 10)[1], exact_ids)


@pytest.mark.parametrize("kind", KINDS)
def test_cosine_is_inner_product_of_unit_vectors(faiss, data, kind):
    items, queries = data
    options = {"ivf": {"nprobe": 20}, "hnsw": {"ef_search": 200}, "flat": {}}[kind]
    index = build_index(items, kind, metric="cosine", nlist=20)
    scores, ids = index.search(queries, 10, **options)
    unit = torch.nn.functional.normalize
    reference = build_index(unit(items, dim=1), "flat")
    ref_scores, ref_ids = reference.search(unit(queries, dim=1), 10)
    assert recall_at_k(ids, ref_ids) >= (0.98 if kind == "hnsw" else 1.0)
    torch.testing.assert_close(
        scores, torch.gather(unit(queries, dim=1) @ unit(items, dim=1).T, 1, ids), atol=1e-4, rtol=0
    )
    assert ref_scores.max() <= 1 + 1e-5


def test_missing_results_are_minus_one_with_minus_infinity(faiss):
    g = torch.Generator().manual_seed(0)
    items = torch.cat([torch.randn(40, 4, generator=g) + 10, torch.randn(40, 4, generator=g) - 10])
    index = build_index(items, "ivf", nlist=2)
    scores, ids = index.search(torch.full((1, 4), -10.0), 50, nprobe=1)
    missing = ids < 0  # the query's cell holds the 40 items near it
    assert missing.sum() == 10 and torch.isneginf(scores[missing]).all()
    assert set(ids[~missing].tolist()) == set(range(40, 80))
    assert torch.isfinite(scores[~missing]).all()


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("annoy", {}, "unknown kind 'annoy'"),
        ("flat", {"metric": "l2"}, "unknown metric 'l2'"),
        ("ivf", {"nlist": 0}, "nlist must be an integer between 1 and 2000"),
        ("ivf", {"nlist": 5_000}, "nlist must be an integer"),
        ("hnsw", {"m": 0}, "m must be a positive integer"),
        ("hnsw", {"ef_construction": 2.5}, "ef_construction must be a positive integer"),
    ],
)
def test_build_index_errors(faiss, data, kind, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_index(data[0], kind, **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_build_index_rejects_non_finite_items(faiss, data, kind):
    items = data[0].clone()
    items[7, 3] = float("nan")
    with pytest.raises(ValueError, match="items contains NaN or infinite values"):
        build_index(items, kind)
    with pytest.raises(ValueError, match="items must be a 2-D"):
        build_index(items[0], kind)


def test_search_errors(faiss, data):
    items, queries = data
    flat, ivf, hnsw = (build_index(items, kind, nlist=20) for kind in KINDS)
    with pytest.raises(ValueError, match="nprobe applies to kind 'ivf', not 'flat'"):
        flat.search(queries, 3, nprobe=4)
    with pytest.raises(ValueError, match="ef_search applies to kind 'hnsw', not 'ivf'"):
        ivf.search(queries, 3, ef_search=4)
    with pytest.raises(ValueError, match="nprobe must be a positive integer"):
        ivf.search(queries, 3, nprobe=0)
    with pytest.raises(ValueError, match="ef_search must be a positive integer"):
        hnsw.search(queries, 3, ef_search=-1)
    with pytest.raises(ValueError, match="k=2001 is more than the 2000 items"):
        flat.search(queries, 2_001)
    with pytest.raises(ValueError, match="dimension 8 but the items have 16"):
        hnsw.search(queries[:, :8], 3)


def test_missing_faiss_gives_a_clear_error(monkeypatch, data):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        build_index(data[0], "flat")
    assert exact_top_k(data[1], data[0], 3)[1].shape == (50, 3)  # works without faiss
