import pytest
import torch

from mfkit.losses import observed_mse
from mfkit.models import MatrixFactorization
from mfkit.threads import torch_threads
from mfkit.train import fit


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", "all"])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="threads"), torch_threads(bad):
        pass
    with pytest.raises(ValueError, match="threads"):
        fit(MatrixFactorization(2, 2, dim=2), DATA, observed_mse, threads=bad, progress=False)


DATA = (torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1]), torch.tensor([4.0, 3.0, 5.0]))


def spy_loss(seen):
    def loss(model, *batch):
        seen.append(torch.get_num_threads())
        return observed_mse(model, *batch)

    return loss


@pytest.mark.parametrize(
    "batch_size, threads, expected",
    [(2, 1, 1), (2, None, "default"), (None, 1, "default"), (2, 2, 2), (2, "auto", 1)],
)
def test_fit_takes_mini_batch_steps_on_the_threads_asked_for(batch_size, threads, expected):
    default = torch.get_num_threads()
    seen = []
    model = MatrixFactorization(2, 2, dim=2, seed=0)
    fit(
        model,
        DATA,
        spy_loss(seen),
        epochs=2,
        batch_size=batch_size,
        threads=threads,
        progress=False,
    )
    assert set(seen) == {default if expected == "default" else expected}
    assert torch.get_num_threads() == default


def test_torch_threads_as_a_decorator():
    before = torch.get_num_threads()

    @torch_threads(1)
    def threads_inside():
        return torch.get_num_threads()

    assert threads_inside() == 1
    assert threads_inside() == 1  # reusable
    assert torch.get_num_threads() == before


class _PlainNet(torch.nn.Module):
    """A model without step_threads: "auto" leaves torch's setting alone."""

    def __init__(self):
        super().__init__()
        self.inner = MatrixFactorization(2, 2, dim=2, seed=0)

    def forward(self, users, movies):
        return self.inner(users, movies)


def test_auto_threads_follow_the_model():
    default = torch.get_num_threads()
    seen = []
    fit(_PlainNet(), DATA, spy_loss(seen), epochs=1, batch_size=2, progress=False)
    assert set(seen) == {default}
    assert MatrixFactorization.step_threads == 1


@pytest.mark.parametrize("kind", ["implicit", "neumf"])
def test_score_all_of_pair_models_runs_on_one_thread(kind, monkeypatch):
    from mfkit.models import ImplicitMLP, NeuMF

    model = (
        ImplicitMLP(3, 4, torch.zeros(4, 2), hidden=(4,), seed=0)
        if kind == "implicit"
        else NeuMF(3, 4, dim=2, seed=0)
    )
    seen = []
    original = torch.Tensor.__matmul__

    def spy(a, b):
        seen.append(torch.get_num_threads())
        return original(a, b)

    monkeypatch.setattr(torch.Tensor, "__matmul__", spy)
    model.eval().score_all(torch.arange(3))
    assert seen and set(seen) == {1}


def test_evaluation_runs_on_the_threads_the_model_asks_for():
    import pandas as pd

    from mfkit.evaluation import evaluate_leave_one_out
    from mfkit.features import IdIndex, Indexer

    default = torch.get_num_threads()
    seen = []

    class Spied(MatrixFactorization):
        def score_all(self, users):
            seen.append(torch.get_num_threads())
            return super().score_all(users)

    idx = Indexer(IdIndex([1, 2], "user"), IdIndex([10, 20, 30], "movie"), ["a", "b", "c"])
    train = pd.DataFrame({"user_id": [1, 2], "movie_id": [10, 20]})
    test = pd.DataFrame({"user_id": [1, 2], "movie_id": [20, 30]})
    model = Spied(2, 3, dim=2, seed=0)
    evaluate_leave_one_out(model, idx, train, test, negatives=None)
    evaluate_leave_one_out(model.score_all, idx, train, test, negatives=None)
    assert seen == [1, default]  # a model asks for one; a bare function keeps torch's setting
    assert torch.get_num_threads() == default


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_mfkit_makes_waiting_threads_sleep_unless_told_otherwise(preset, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os, mfkit; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == expected
