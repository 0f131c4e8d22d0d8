"""Tests for mfkit.metrics: hand-computed values, brute-force references, sklearn."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, ndcg_score, root_mean_squared_error

from mfkit.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    mae,
    mse_by_user,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
)

RANKING = [precision_at_k, recall_at_k, ndcg_at_k, hit_rate_at_k]


# --------------------------------------------------------------------------- rating metrics


def test_mse_by_user_by_hand_and_against_rmse():
    # user 3: errors 0 and 2 -> (0 + 4) / 2 = 2; user 1: error -1 -> 1; sorted by user id
    assert mse_by_user([3, 1, 3], [4, 2, 5], [4, 3, 3]).tolist() == [1.0, 2.0]
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 500)
    y_true, y_pred = rng.integers(1, 6, 500), rng.normal(3.5, 1, 500)
    per_user = mse_by_user(torch.from_numpy(users), y_true, y_pred)
    counts = np.bincount(users)[np.unique(users)]
    assert per_user.shape == (len(np.unique(users)),)
    # weighted by each user's ratings, the per-user MSEs give back the overall MSE
    assert np.average(per_user, weights=counts) == pytest.approx(rmse(y_true, y_pred) ** 2)
    with pytest.raises(ValueError, match="users and y_true"):
        mse_by_user([1, 2], [1, 2, 3], [1, 2, 3])


def test_rating_metrics_hand_computed():
    # errors = [1-2, 2-2, 3-5, 4-4] = [-1, 0, -2, 0]
    # rmse = sqrt((1 + 0 + 4 + 0) / 4) = sqrt(1.25); mae = (1 + 0 + 2 + 0) / 4 = 0.75
    assert rmse([1, 2, 3, 4], [2, 2, 5, 4]) == pytest.approx(math.sqrt(1.25))
    assert mae([1, 2, 3, 4], [2, 2, 5, 4]) == pytest.approx(0.75)
    assert rmse([3.5], [3.5]) == 0.0
    assert isinstance(rmse([1, 2], [1, 3]), float) and isinstance(mae([1, 2], [1, 3]), float)


def test_rating_metrics_match_sklearn_and_accept_tensors():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.uniform(1, 5, 200), rng.uniform(1, 5, 200)
    expected_rmse = root_mean_squared_error(y_true, y_pred)
    expected_mae = mean_absolute_error(y_true, y_pred)
    pred_tensor = torch.tensor(y_pred, dtype=torch.float64, requires_grad=True)
    for t, p in [
        (y_true, y_pred),
        (y_true.tolist(), y_pred.tolist()),
        (torch.tensor(y_true), pred_tensor),
        (y_true.reshape(20, 10), y_pred.reshape(20, 10)),
    ]:
        assert rmse(t, p) == pytest.approx(expected_rmse)
        assert mae(t, p) == pytest.approx(expected_mae)


@pytest.mark.parametrize("metric", [rmse, mae])
def test_rating_metric_errors(metric):
    with pytest.raises(ValueError, match=r"different shapes: \(3,\) and \(2,\)"):
        metric([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"\(2, 2\) and \(4,\)"):
        metric(np.ones((2, 2)), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match="y_true contains NaN"):
        metric([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        metric(torch.tensor([1.0, 2.0]), torch.tensor([float("nan"), 2.0]))


# -------------------------------------------------------------------------- ranking metrics

# k = 3. Top 3 lists and hits (a repeated item counts once):
#   user 0: [1, 2, 3] vs {2, 4, 10} -> hits [0, 1, 0]
#   user 1: [5, 6, 7] vs {8}        -> hits [0, 0, 0]
#   user 2: [9, 1, 9] vs {9, 1}     -> hits [1, 1, 0] (the second 9 does not count)
#   user 3: [1, 2, 3] vs {}         -> skipped
HAND_REC = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 9, 2], [1, 2, 3, 4]]
HAND_REL = [{2, 4, 10}, {8}, {9, 1}, set()]
L2, L3 = 1 / math.log2(3), 1 / math.log2(4)  # discounts of ranks 1 and 2 (rank 0: 1)
HAND_EXPECTED = {
    # precision = hits / 3
    precision_at_k: [1 / 3, 0, 2 / 3],
    # recall = hits / |relevant|
    recall_at_k: [1 / 3, 0 / 1, 2 / 2],
    # ndcg: user 0 DCG = L2, IDCG = 1 + L2 + L3 (min(3, 3) = 3 relevant);
    #       user 2 DCG = 1 + L2 = IDCG (min(3, 2) = 2 relevant)
    ndcg_at_k: [L2 / (1 + L2 + L3), 0, 1],
    hit_rate_at_k: [1, 0, 1],
}


@pytest.mark.parametrize("metric", RANKING)
def test_ranking_hand_computed(metric):
    expected = HAND_EXPECTED[metric]
    per_user = metric(HAND_REC, HAND_REL, 3, per_user=True)
    assert per_user.shape == (4,)
    assert per_user[:3] == pytest.approx(expected)
    assert np.isnan(per_user[3])
    mean = metric(HAND_REC, HAND_REL, 3)
    assert isinstance(mean, float)
    assert mean == pytest.approx(sum(expected) / 3)  # the empty user is left out of the mean


def test_short_list_has_fewer_hits():
    # one recommended item, a hit, with k = 3 and 2 relevant items:
    # precision = 1/3, recall = 1/2, hit = 1, ndcg = 1 / (1 + 1/log2(3))
    rec, rel = [[7]], [[7, 8]]
    assert precision_at_k(rec, rel, 3) == pytest.approx(1 / 3)
    assert recall_at_k(rec, rel, 3) == pytest.approx(1 / 2)
    assert hit_rate_at_k(rec, rel, 3) == 1.0
    assert ndcg_at_k(rec, rel, 3) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # an array narrower than k behaves like the same lists given as a ragged sequence
    for metric in RANKING:
        assert metric(np.array([[7, 1]]), rel, 5) == pytest.approx(metric([[7, 1]], rel, 5))


def test_scalar_relevant_is_one_item_per_user():
    # leave-one-out: a 1-D array of held-out items, one per user
    rec = np.array([[1, 2, 3], [4, 5, 6]])
    assert hit_rate_at_k(rec, np.array([3, 9]), 3) == pytest.approx(0.5)
    assert ndcg_at_k(rec, np.array([3, 9]), 3) == pytest.approx((1 / math.log2(4) + 0) / 2)


def _reference(recommended, relevant, k):
    """Pure-Python per-user precision, recall, ndcg and hit rate (nan when nothing is relevant)."""
    out = {metric: [] for metric in RANKING}
    for rec, rel in zip(recommended, relevant, strict=True):
        rel = set(rel)
        if not rel:
            for values in out.values():
                values.append(math.nan)
            continue
        seen, hits = set(), []
        for item in list(rec)[:k]:
            hits.append(item in rel and item not in seen)
            seen.add(item)
        dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
        out[precision_at_k].append(sum(hits) / k)
        out[recall_at_k].append(sum(hits) / len(rel))
        out[ndcg_at_k].append(dcg / idcg)
        out[hit_rate_at_k].append(float(any(hits)))
    return out


def _random_lists(seed, n_users=60, n_items=25):
    """Ragged recommended lists and relevant lists, both with repeats, some of them empty."""
    rng = np.random.default_rng(seed)
    rec = [rng.integers(0, n_items, rng.integers(0, 15)).tolist() for _ in range(n_users)]
    rel = [rng.integers(0, n_items, rng.integers(0, 8)).tolist() for _ in range(n_users)]
    rel[0] = [rec[0][0]] * 2 if rec[0] else [0]  # at least one user with a relevant item
    return rec, rel


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 2, 5, 10, 20])
def test_ranking_matches_brute_force(seed, k):
    rec, rel = _random_lists(seed)
    expected = _reference(rec, rel, k)
    for metric in RANKING:
        per_user = metric(rec, rel, k, per_user=True)
        np.testing.assert_allclose(per_user, expected[metric], rtol=1e-12, equal_nan=True)
        assert metric(rec, rel, k) == pytest.approx(np.nanmean(expected[metric]))


@pytest.mark.parametrize("k", [1, 3, 5, 10, 40])
def test_ndcg_matches_sklearn(k):
    rng = np.random.default_rng(k)
    n_users, n_items = 30, 40
    y_score = np.array([rng.permutation(n_items) for _ in range(n_users)], dtype=float)  # no ties
    y_true = (rng.random((n_users, n_items)) < 0.2).astype(int)
    y_true[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1  # >= 1 relevant each
    recommended = np.argsort(-y_score, axis=1)
    relevant = [np.flatnonzero(row) for row in y_true]
    assert ndcg_at_k(recommended, relevant, k) == pytest.approx(ndcg_score(y_true, y_score, k=k))
    per_user = ndcg_at_k(recommended, relevant, k, per_user=True)
    expected = [ndcg_score(y_true[[u]], y_score[[u]], k=k) for u in range(n_users)]
    assert per_user == pytest.approx(expected)


@pytest.mark.parametrize("metric", RANKING)
def test_list_array_and_tensor_inputs_agree(metric):
    rng = np.random.default_rng(1)
    rec = rng.integers(0, 30, (20, 8))
    rel = [rng.choice(30, rng.integers(0, 6), replace=False) for _ in range(20)]
    rel[0] = rec[0, :2]
    expected = metric(rec.tolist(), [set(r.tolist()) for r in rel], 5, per_user=True)
    inputs = [
        (rec, rel),
        (rec.tolist(), [r.tolist() for r in rel]),
        (torch.from_numpy(rec), [torch.from_numpy(r) for r in rel]),
        ([torch.from_numpy(r) for r in rec], rel),
        (list(rec), tuple(frozenset(r.tolist()) for r in rel)),
    ]
    for recommended, relevant in inputs:
        got = metric(recommended, relevant, 5, per_user=True)
        assert isinstance(got, np.ndarray) and got.shape == (20,)
        np.testing.assert_array_equal(got, expected)  # NaN at the same places, same values


def test_large_and_negative_item_ids():
    rec = np.array([[10**12, -3], [5, 10**12]], dtype=np.int64)
    rel = [{10**12}, {-3}]
    assert precision_at_k(rec, rel, 2, per_user=True) == pytest.approx([0.5, 0.0])


@pytest.mark.parametrize("metric", RANKING)
def test_ranking_errors(metric):
    rec, rel = [[1, 2, 3], [4, 5, 6]], [{1}, {5}]
    for bad_k in [0, -1, 2.5, True]:
        with pytest.raises(ValueError, match="k must be a positive integer"):
            metric(rec, rel, bad_k)
    with pytest.raises(ValueError, match="recommended has 2 users but relevant has 3"):
        metric(rec, rel + [{7}], 2)
    with pytest.raises(ValueError, match="recommended has 3 users but relevant has 2"):
        metric(np.arange(9).reshape(3, 3), rel, 2)
    with pytest.raises(ValueError, match="every user has an empty relevant set"):
        metric(rec, [set(), []], 2)
    with pytest.raises(ValueError, match="every user has an empty relevant set"):
        metric([], [], 2)
    with pytest.raises(ValueError, match="must be 2-D"):
        metric(np.array([1, 2, 3]), [{1}, {2}, {3}], 2)
    with pytest.raises(ValueError, match="one 1-D list of item ids per user"):
        metric([1, 2, 3], [{1}, {2}, {3}], 2)


# ------------------------------------------------------------------------- catalog coverage


def test_catalog_coverage():
    rec = [[0, 1, 2], [2, 3, 4]]
    # whole lists: {0, 1, 2, 3, 4} -> 5/10; k=1: {0, 2} -> 2/10; k=2: {0, 1, 2, 3} -> 4/10
    for recommended in [rec, np.array(rec), torch.tensor(rec), [[0, 1, 2], [2, 3, 4, 4]]]:
        assert catalog_coverage(recommended, 10) == pytest.approx(0.5)
        assert catalog_coverage(recommended, 10, k=1) == pytest.approx(0.2)
        assert catalog_coverage(recommended, 10, k=2) == pytest.approx(0.4)
    assert catalog_coverage([[0, 1], [1]], 2) == 1.0
    assert catalog_coverage([], 5) == 0.0


def test_catalog_coverage_errors():
    for bad in [0, -3, 2.0]:
        with pytest.raises(ValueError, match="n_items must be a positive integer"):
            catalog_coverage([[1, 2]], bad)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        catalog_coverage([[1, 2]], 5, k=0)
    with pytest.raises(ValueError, match="3 distinct items, more than n_items=2"):
        catalog_coverage([[1, 2], [3]], 2)


def test_import_does_not_import_torch():
    code = "import sys, mfkit.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
