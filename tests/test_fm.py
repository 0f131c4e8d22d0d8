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


def test_feature_losses_train_a_factorization_machine_with_fit() -> None:
    from functools import partial

    from mfkit.losses import feature_bce, feature_mse
    from mfkit.train import fit

    g = torch.Generator().manual_seed(0)
    users, movies = (
        torch.randint(0, 6, (200,), generator=g),
        torch.randint(0, 7, (200,), generator=g),
    )
    rows = FeatureRows.concat(one_hot(users, 6), one_hot(movies, 7))
    ratings = 3.0 + (users - 2.5) * 0.3 - (movies - 3.0) * 0.2
    fm = FactorizationMachine(rows.n_features, dim=2, global_mean=3.0)
    loss = partial(feature_mse, rows=rows)
    examples = torch.arange(200)
    before = float(loss(fm, examples, ratings).detach())
    fit(fm, (examples, ratings), loss, epochs=30, batch_size=50, lr=0.05, progress=False)
    assert float(loss(fm, examples, ratings).detach()) < 0.05 * before
    penalised = partial(feature_mse, rows=rows, l2=0.1)
    # The batch L2 term: the squared weights and factors of the features the batch touches.
    indices, _, _ = rows.batch(examples[:3])
    by_hand = (
        fm.weights.weight[indices].square().sum() + fm.factors.weight[indices].square().sum()
    ) / 3
    gap = penalised(fm, examples[:3], ratings[:3]) - loss(fm, examples[:3], ratings[:3])
    torch.testing.assert_close(gap, 0.1 * by_hand)
    labels = (ratings > 3).float()
    bce = feature_bce(fm, examples, labels, rows=rows)
    logits = fm(*rows.batch(examples))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(bce, expected)

    class NoTables(torch.nn.Module):
        def forward(self, indices, offsets, values):
            return torch.zeros(len(offsets))

    with pytest.raises(TypeError, match="no embedding tables"):
        feature_mse(NoTables(), examples, ratings, rows=rows, l2=0.1)


def test_interaction_rows_build_each_field_from_the_history() -> None:
    from mfkit.data import synthetic_movielens
    from mfkit.feature_rows import interaction_rows
    from mfkit.features import Indexer, SideFeatures

    ds = synthetic_movielens(5, 6, 20, seed=0)
    idx, side = Indexer.from_movielens(ds), SideFeatures.from_movielens(ds)
    history, held_out = ds.ratings.iloc[:15], ds.ratings.iloc[15:]
    fields = ["user", "movie", "user_bag", "movie_bag", "day", "gender", "genres", "hour"]
    rows = interaction_rows(held_out, idx, history, fields, side=side)
    first_day = int(history["timestamp"].min()) // 86_400
    n_days = int(history["timestamp"].max()) // 86_400 - first_day + 1
    assert rows.fields == (5, 6, 6, 5, n_days, side.sizes["gender"], len(side.genres), 24)
    dense = rows.dense()
    starts = torch.cumsum(torch.tensor((0, *rows.fields)), 0)
    for r, (_, case) in enumerate(held_out.iterrows()):
        user = int(idx.users.index([int(case["user_id"])])[0])
        movie = int(idx.movies.index([int(case["movie_id"])])[0])
        assert dense[r, starts[0] + user] == 1 and dense[r, starts[1] + movie] == 1
        rated = idx.movies.index(history.loc[history["user_id"] == case["user_id"], "movie_id"])
        bag = dense[r, starts[2] : starts[3]]
        assert set(bag.nonzero().flatten().tolist()) == set(rated.tolist())  # history only
        torch.testing.assert_close(bag[rated], torch.full((len(rated),), len(rated) ** -0.5))
        day = min(int(case["timestamp"]) // 86_400 - first_day, n_days - 1)
        assert dense[r, starts[4] + day] == 1
        assert dense[r, starts[7] + int(case["timestamp"]) // 3600 % 24] == 1
    with pytest.raises(ValueError, match="unknown fields"):
        interaction_rows(held_out, idx, history, ["user", "colour"])
    with pytest.raises(ValueError, match="need side"):
        interaction_rows(held_out, idx, history, ["user", "gender"])


def test_take_picks_rows_in_any_order() -> None:
    rows = FeatureRows.concat(one_hot(torch.tensor([0, 1, 2]), 3), multi_hot([[0], [], [1, 2]], 3))
    taken = rows.take(torch.tensor([2, 0, 2]))
    torch.testing.assert_close(taken.dense(), rows.dense()[[2, 0, 2]])
    assert taken.fields == rows.fields
