"""Histories as sequences, the order-aware baselines, and the sequence models (chapter 9)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mfkit.data import synthetic_movielens
from mfkit.features import Indexer
from mfkit.losses import next_item_bce, next_item_ce
from mfkit.models import GRU4Rec, SASRec
from mfkit.sampling import implicit
from mfkit.sequences import (
    histories,
    history_windows,
    last_positions,
    next_item_examples,
    recency_weights,
    transition_counts,
)
from mfkit.splits import leave_one_out


@pytest.fixture(scope="module")
def data():
    ml = synthetic_movielens(30, 40, 600, seed=3)
    return ml, Indexer.from_movielens(ml)


def brute_histories(frame, idx):
    """Each user's movie rows sorted by timestamp, ties in frame order, by plain Python."""
    rows = []
    for user in idx.users.ids:
        mine = [
            (t, k, m)
            for k, (u, m, t) in enumerate(
                zip(frame["user_id"], frame["movie_id"], frame["timestamp"], strict=True)
            )
            if u == user
        ]
        rows.append([int(idx.movies.index([m])[0]) for _, _, m in sorted(mine)])
    return rows


def test_histories_match_a_plain_python_sort(data):
    ml, idx = data
    seqs = histories(ml.ratings, idx)
    for row, expected in zip(seqs.tolist(), brute_histories(ml.ratings, idx), strict=True):
        assert row[: len(expected)] == expected
        assert set(row[len(expected) :]) <= {idx.n_movies}


def test_maxlen_keeps_the_latest_interactions(data):
    ml, idx = data
    full, short = histories(ml.ratings, idx), histories(ml.ratings, idx, maxlen=5)
    assert short.shape == (idx.n_users, 5)
    for row_full, row_short in zip(full.tolist(), short.tolist(), strict=True):
        real = [m for m in row_full if m != idx.n_movies]
        assert [m for m in row_short if m != idx.n_movies] == real[-5:]


def test_ties_keep_input_order_unless_shuffled():
    ml = synthetic_movielens(1, 30, 30, seed=0)
    idx = Indexer.from_movielens(ml)
    ratings = ml.ratings.assign(timestamp=7)  # one sitting: every interaction ties
    in_order = histories(ratings, idx)[0].tolist()
    assert in_order == idx.movies.index(ratings["movie_id"].to_numpy()).tolist()
    shuffled = histories(ratings, idx, shuffle_ties=True, seed=1)[0].tolist()
    assert sorted(shuffled) == sorted(in_order) and shuffled != in_order
    assert shuffled == histories(ratings, idx, shuffle_ties=True, seed=1)[0].tolist()


def test_histories_errors(data):
    ml, idx = data
    with pytest.raises(KeyError, match="timestamp"):
        histories(ml.ratings.drop(columns="timestamp"), idx)
    with pytest.raises(ValueError, match="maxlen"):
        histories(ml.ratings, idx, maxlen=0)


def test_held_out_movie_never_in_a_training_example(data):
    ml, idx = data
    train, test = leave_one_out(implicit(ml.ratings), seed=0)
    inputs, targets = next_item_examples(histories(train, idx, maxlen=8))
    users = idx.users.index(test["user_id"].to_numpy())
    held_out = idx.movies.index(test["movie_id"].to_numpy())
    for user, movie in zip(users, held_out, strict=True):
        assert movie not in inputs[user].tolist() and movie not in targets[user].tolist()


def test_next_item_examples_shift_by_one():
    seqs = torch.tensor([[3, 1, 2, 9], [4, 9, 9, 9]])
    inputs, targets = next_item_examples(seqs)
    assert inputs.tolist() == [[3, 1, 2], [4, 9, 9]]
    assert targets.tolist() == [[1, 2, 9], [9, 9, 9]]
    with pytest.raises(ValueError, match="width"):
        next_item_examples(torch.tensor([[1], [2]]))


def transitions_of(seqs, pad):
    """The (movie, next movie) pairs of right-padded rows, as a sorted list."""
    inputs, targets = next_item_examples(seqs)
    real = targets != pad
    return sorted(zip(inputs[real].tolist(), targets[real].tolist(), strict=True))


@pytest.mark.parametrize("width", [2, 3, 5, 40])
def test_history_windows_hold_every_step_once(data, width):
    ml, idx = data
    pad = idx.n_movies
    whole = histories(ml.ratings, idx)
    windows = history_windows(whole, pad, width)
    assert windows.shape[1] == width
    assert transitions_of(windows, pad) == transitions_of(whole, pad)
    # Each user's first window is its row of histories(maxlen=width).
    latest = histories(ml.ratings, idx, maxlen=width)
    lengths = (whole != pad).sum(dim=1)
    count = (lengths - width).clamp(min=0).add(width - 2) // (width - 1) + 1
    first = torch.cumsum(count, 0) - count
    assert torch.equal(windows[first], latest)
    # Padding only ever follows the movies of a window.
    real = windows != pad
    assert torch.equal(real, real.cummin(dim=1).values)


def test_history_windows_by_hand():
    seqs = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [7, 8, 9, 9, 9, 9, 9], [9] * 7])
    assert history_windows(seqs, 9, 3).tolist() == [[4, 5, 6], [2, 3, 4], [0, 1, 2], [7, 8, 9]]
    overlapping = history_windows(seqs[:1], 9, 4, stride=2)
    assert overlapping.tolist() == [[3, 4, 5, 6], [1, 2, 3, 4], [0, 1, 2, 9]]
    for bad in ({"width": 1}, {"width": 3, "stride": 3}, {"width": 3, "stride": 0}):
        with pytest.raises(ValueError):
            history_windows(seqs, 9, **{"stride": None, **bad})


def test_last_positions():
    assert last_positions(torch.tensor([[3, 1, 9], [4, 9, 9], [9, 9, 9]]), 9).tolist() == [1, 0, -1]


def test_transition_counts_match_a_loop():
    generator = torch.Generator().manual_seed(0)
    seqs = torch.randint(0, 6, (20, 9), generator=generator)  # 5 is the padding
    counts = torch.zeros(5, 5)
    for row in seqs.tolist():
        for a, b in zip(row[:-1], row[1:], strict=True):
            if a != 5 and b != 5:
                counts[a, b] += 1
    assert torch.equal(transition_counts(seqs, 5), counts)


def test_recency_weights_by_hand():
    seqs = torch.tensor([[2, 0, 2, 1, 4], [3, 4, 4, 4, 4]])  # 4 is the padding
    weights = recency_weights(seqs, 4, last=3, decay=0.5)
    # user 0: latest 1 (age 0), then 2 (age 1), 0 (age 2); the first 2 is too old.
    assert torch.allclose(weights[0], torch.tensor([0.25, 1.0, 0.5, 0.0]))
    assert torch.allclose(weights[1], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    everything = recency_weights(seqs, 4)  # decay 1, no limit: counts
    assert torch.equal(everything[0], torch.tensor([1.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="decay"):
        recency_weights(seqs, 4, decay=0.0)


MODELS = {
    "SASRec": lambda: SASRec(12, dim=8, maxlen=6, heads=2, dropout=0.0, seed=0),
    "GRU4Rec": lambda: GRU4Rec(12, dim=8, dropout=0.0, seed=0),
}


@pytest.mark.parametrize("name", MODELS)
def test_a_position_never_sees_a_later_one(name):
    model = MODELS[name]().eval()
    seqs = torch.tensor([[1, 5, 7, 2, 3, 11]])
    changed = seqs.clone()
    changed[0, 4] = 9  # perturb step 4: steps 0-3 must not move, step 4 must
    with torch.no_grad():
        before, after = model(seqs), model(changed)
    assert torch.allclose(before[0, :4], after[0, :4], atol=1e-6)
    assert not torch.allclose(before[0, 4], after[0, 4], atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_padding_never_changes_scores(name):
    model = MODELS[name]()
    pad = model.pad
    short = torch.tensor([[1, 5, 7]])
    padded = torch.tensor([[1, 5, 7, pad, pad, pad]])
    assert torch.allclose(model.score_next(short), model.score_next(padded), atol=1e-5)
    # A batch mixing lengths scores each row as if it were alone.
    batch = torch.tensor([[1, 5, 7, pad, pad, pad], [2, 3, 4, 6, 8, 10]])
    alone = model.score_next(torch.tensor([[2, 3, 4, 6, 8, 10]]))
    assert torch.allclose(model.score_next(batch)[1], alone[0], atol=1e-5)


def test_padding_row_stays_zero_and_is_not_scored():
    model = SASRec(12, dim=8, maxlen=4, seed=0)
    assert torch.count_nonzero(model.items.weight[model.pad]) == 0
    assert model.score_next(torch.tensor([[1, 2, 12, 12]])).shape == (1, 12)


def test_score_next_restores_training_mode():
    model = SASRec(12, dim=8, maxlen=4, seed=0).train()
    model.score_next(torch.tensor([[1, 2, 3, 4]]))
    assert model.training


def test_sasrec_rejects_histories_longer_than_maxlen():
    with pytest.raises(ValueError, match="maxlen"):
        SASRec(12, dim=8, maxlen=3)(torch.tensor([[1, 2, 3, 4]]))


def test_sasrec_attention_is_causal_and_sums_to_one():
    model = SASRec(12, dim=8, maxlen=5, seed=0)
    weights = model.attention(torch.tensor([[1, 2, 3, 4, 5]]))
    assert len(weights) == 2
    for w in weights:
        assert torch.allclose(w.sum(-1), torch.ones(1, 5), atol=1e-6)
        assert torch.count_nonzero(torch.triu(w[0], diagonal=1)) == 0


def test_constructor_errors():
    with pytest.raises(ValueError, match="dim must divide"):
        SASRec(10, dim=6, heads=4)
    with pytest.raises(ValueError, match="dropout"):
        GRU4Rec(10, dropout=1.0)
    with pytest.raises(ValueError, match="n_items"):
        GRU4Rec(0)


def test_same_seed_same_model():
    a, b = SASRec(10, dim=8, seed=4), SASRec(10, dim=8, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_next_item_ce_is_cross_entropy_over_real_steps():
    model = GRU4Rec(6, dim=4, dropout=0.0, seed=0)
    inputs, targets = torch.tensor([[0, 1, 2]]), torch.tensor([[1, 2, 6]])  # 6 pads
    logits = model.logits(model(inputs))[0, :2]
    expected = -(logits.log_softmax(-1)[[0, 1], [1, 2]]).mean()
    assert torch.allclose(next_item_ce(model, inputs, targets), expected)


def test_next_item_bce_by_hand():
    model = GRU4Rec(6, dim=4, dropout=0.0, seed=0)
    inputs, targets = torch.tensor([[0, 1, 2]]), torch.tensor([[1, 2, 6]])
    negatives = torch.tensor([[4, 5, 0]])
    logits = model.logits(model(inputs))[0]
    positive, negative = logits[[0, 1], [1, 2]], logits[[0, 1], [4, 5]]
    expected = (F.softplus(-positive).sum() + F.softplus(negative).sum()) / 4
    assert torch.allclose(next_item_bce(model, inputs, targets, negatives), expected)
    with pytest.raises(ValueError, match="shape"):
        next_item_bce(model, inputs, targets, negatives[:, :2])


def test_a_trained_sasrec_learns_a_cycle():
    """Histories that walk 0 -> 1 -> ... -> 7 -> 0: the next movie is always predictable."""
    from mfkit.train import fit

    starts = torch.arange(64) % 8
    seqs = (starts[:, None] + torch.arange(7)) % 8
    model = SASRec(8, dim=16, maxlen=6, dropout=0.0, seed=0)
    fit(
        model,
        next_item_examples(seqs),
        next_item_ce,
        epochs=30,
        lr=0.01,
        batch_size=16,
        progress=False,
    )
    predicted = model.score_next(seqs[:, :6]).argmax(dim=1)
    assert torch.equal(predicted, seqs[:, 6])


def test_histories_of_an_empty_user_are_padding(data):
    ml, idx = data
    some = ml.ratings[ml.ratings["user_id"] != idx.users.ids[0]]
    seqs = histories(some, idx)
    assert (seqs[0] == idx.n_movies).all()
    counts = some.groupby("user_id").size().reindex(idx.users.ids, fill_value=0).to_numpy()
    assert np.array_equal(last_positions(seqs, idx.n_movies).numpy(), counts - 1)
