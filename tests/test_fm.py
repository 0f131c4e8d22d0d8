"""Sparse feature rows and the factorization machine, against brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from mfkit.feature_rows import FeatureRows, field_offsets, multi_hot, one_hot
from mfkit.models import DCN, DeepFM, FactorizationMachine, MatrixFactorization


def random_rows(seed: int = 0) -> FeatureRows:
    g = torch.Generator().manual_seed(seed)
    users = one_hot(torch.randint(0, 5, (7,), generator=g), 5)
    movies = one_hot(torch.randint(0, 6, (7,), generator=g), 6)
    bags = [torch.randperm(6, generator=g)[: int(n)].tolist() for n in [0, 1, 2, 3, 4, 5, 6]]
    return FeatureRows.concat(users, movies, multi_hot(bags, 6))


def brute_fm(fm: FactorizationMachine, x: torch.Tensor) -> torch.Tensor:
    """The definition: every pair i < j of features, one by one."""
    w, v = fm.weights.weight[:, 0], fm.factors.weight
    out = []
    for row in x:
        y = fm.bias + (w * row).sum()
        for i, j in itertools.combinations(range(len(row)), 2):
            y = y + (v[i] @ v[j]) * row[i] * row[j]
        out.append(y)
    return torch.stack(out)


def test_rows_are_built_field_by_field() -> None:
    rows = FeatureRows.concat(
        one_hot(torch.tensor([2, 0]), 3), multi_hot([[1, 3], []], 4, scale="mean")
    )
    assert rows.n_features == 7 and len(rows) == 2
    expected = torch.tensor([[0, 0, 1, 0, 0.5, 0, 0.5], [1, 0, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(rows.dense(), expected)
    sqrt = multi_hot([[0, 1, 2, 3]], 4).values
    torch.testing.assert_close(sqrt, torch.full((4,), 0.5))


def test_a_batch_is_the_rows_in_embedding_bag_layout() -> None:
    rows = random_rows()
    picked = torch.tensor([6, 0, 3, 3])
    indices, offsets, values = rows.batch(picked)
    rebuilt = torch.zeros(len(picked), rows.n_features)
    ends = torch.cat([offsets[1:], torch.tensor([len(indices)])])
    for r, (start, end) in enumerate(zip(offsets.tolist(), ends.tolist(), strict=True)):
        rebuilt[r].index_put_((indices[start:end],), values[start:end], accumulate=True)
    torch.testing.assert_close(rebuilt, rows.dense()[picked])


def test_the_o_kn_identity_equals_the_double_sum() -> None:
    rows = random_rows()
    fm = FactorizationMachine(rows.n_features, dim=3, init_std=0.5, global_mean=1.5, seed=0)
    with torch.no_grad():
        fm.weights.weight.normal_(generator=torch.Generator().manual_seed(1))
    fast = fm(*rows.batch(torch.arange(len(rows))))
    torch.testing.assert_close(fast, brute_fm(fm, rows.dense()), rtol=1e-5, atol=1e-5)


def test_biased_mf_is_the_fm_of_a_user_and_a_movie_field() -> None:
    mf = MatrixFactorization(4, 5, dim=3, bias=True, global_mean=3.5, init_std=0.3, seed=0)
    with torch.no_grad():
        mf.user_bias.weight.normal_(generator=torch.Generator().manual_seed(1))
        mf.movie_bias.weight.normal_(generator=torch.Generator().manual_seed(2))
    users, movies = torch.tensor([0, 1, 3, 3, 2]), torch.tensor([4, 0, 2, 1, 1])
    rows = FeatureRows.concat(one_hot(users, 4), one_hot(movies, 5))
    fm = FactorizationMachine(rows.n_features, dim=3)
    with torch.no_grad():
        fm.bias.copy_(mf.global_mean)
        fm.weights.weight.copy_(torch.cat([mf.user_bias.weight, mf.movie_bias.weight]))
        fm.factors.weight.copy_(torch.cat([mf.U, mf.V]))
    torch.testing.assert_close(fm(*rows.batch(torch.arange(5))), mf(users, movies))


def test_gradients_reach_only_the_active_features() -> None:
    rows = FeatureRows.concat(one_hot(torch.tensor([0]), 3), one_hot(torch.tensor([2]), 3))
    fm = FactorizationMachine(rows.n_features, dim=2, init_std=0.1, seed=0)
    fm(*rows.batch(torch.tensor([0]))).sum().backward()
    touched = fm.factors.weight.grad.abs().sum(dim=1) > 0
    assert touched.tolist() == [True, False, False, False, False, True]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: FeatureRows(torch.tensor([1, 2]), torch.tensor([0]), torch.ones(1), 3),
            "starts at 0",
        ),
        (lambda: FeatureRows(torch.tensor([0, 1]), torch.tensor([5]), torch.ones(1), 3), "0..2"),
        (
            lambda: FeatureRows(torch.tensor([0, 2]), torch.tensor([0]), torch.ones(1), 3),
            "need indptr",
        ),
        (lambda: multi_hot([[0]], 2, scale="log"), "scale must be one of"),
        (
            lambda: FeatureRows.concat(
                one_hot(torch.tensor([0]), 2), one_hot(torch.tensor([0, 1]), 2)
            ),
            "same number of rows",
        ),
        (lambda: FactorizationMachine(0, 2), "n_features and dim must be >= 1"),
    ],
)
def test_bad_input_raises(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def field_rows() -> FeatureRows:
    """Three fields: a user (4), a movie (5) and a bag of genres (3), six rows."""
    users = one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4)
    movies = one_hot(torch.tensor([4, 3, 2, 1, 0, 0]), 5)
    genres = multi_hot([[0, 2], [], [1], [0, 1, 2], [2], [0]], 3)
    return FeatureRows.concat(users, movies, genres)


def test_each_row_and_field_pools_its_own_entries() -> None:
    rows = field_rows()
    assert rows.fields == (4, 5, 3)
    table = torch.nn.EmbeddingBag(rows.n_features, 2, mode="sum")
    indices, offsets, values = rows.batch(torch.tensor([3, 1, 5]))
    pooled = table(indices, field_offsets(indices, offsets, rows.fields), per_sample_weights=values)
    dense = rows.dense()[[3, 1, 5]]
    starts = [0, 4, 9, 12]
    for f in range(3):
        block = slice(starts[f], starts[f + 1])
        expected = dense[:, block] @ table.weight[block]
        torch.testing.assert_close(pooled.view(3, 3, 2)[:, f], expected)
    assert pooled.view(3, 3, 2)[1, 2].abs().sum() == 0  # row 1 has no genre


def test_deepfm_is_the_fm_plus_an_mlp_of_the_fields() -> None:
    rows = field_rows()
    deepfm = DeepFM(rows.fields, dim=2, hidden=(4,), init_std=0.3, seed=0).eval()
    fm = FactorizationMachine(rows.n_features, dim=2)
    fm.load_state_dict({k: v for k, v in deepfm.state_dict().items() if not k.startswith("deep")})
    batch = rows.batch(torch.arange(len(rows)))
    fields = torch.cat(
        [rows.dense()[:, a:b] @ deepfm.factors.weight[a:b] for a, b in [(0, 4), (4, 9), (9, 12)]],
        dim=1,
    )
    torch.testing.assert_close(deepfm(*batch), fm(*batch) + deepfm.deep(fields).squeeze(-1))


def test_a_dcn_cross_layer_by_hand() -> None:
    rows = field_rows()
    dcn = DCN(rows.fields, dim=2, crosses=1, hidden=(3,), init_std=0.3, seed=0).eval()
    x0 = torch.cat(
        [rows.dense()[:, a:b] @ dcn.embedding.weight[a:b] for a, b in [(0, 4), (4, 9), (9, 12)]],
        dim=1,
    )
    x1 = x0 * (x0 @ dcn.cross[0].weight.T + dcn.cross[0].bias) + x0
    expected = dcn.output(dcn.deep(x1)).squeeze(-1)
    torch.testing.assert_close(dcn(*rows.batch(torch.arange(len(rows)))), expected)
    same = DCN(rows.fields, dim=2, crosses=1, hidden=(3,), init_std=0.3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(dcn.parameters(), same.parameters(), strict=True))


def test_fields_must_cover_the_columns() -> None:
    with pytest.raises(ValueError, match="add up to n_features"):
        FeatureRows(torch.tensor([0, 1]), torch.tensor([0]), torch.ones(1), 3, (1, 1))
