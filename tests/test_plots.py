"""Tests of mfkit.plots (Agg backend, synthetic counts)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mfkit.plots import plot_history, plot_long_tail
from mfkit.train import History


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_long_tail_draws_sorted_counts_against_rank():
    counts = pd.Series([3, 50, 0, 7, 1, 7], index=[10, 11, 12, 13, 14, 15])
    ax = plot_long_tail(counts)
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4, 5])
    # zero dropped, largest first, index ignored
    np.testing.assert_array_equal(line.get_ydata(), [50, 7, 7, 3, 1])


def test_long_tail_axes_are_log_scaled_and_labelled():
    ax = plot_long_tail([4, 2, 1], xlabel="rank", ylabel="count", title="tail")
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "rank"
    assert ax.get_ylabel() == "count"
    assert ax.get_title() == "tail"


def test_long_tail_draws_on_given_axes_and_overlays_with_legend():
    fig, ax = plt.subplots()
    out = plot_long_tail([5, 1], ax=ax, label="ratings")
    out = plot_long_tail((c for c in [9, 3, 2]), ax=ax, label="recommendations", title=None)
    assert out is ax
    assert len(fig.axes) == 1
    assert [line.get_label() for line in ax.lines] == ["ratings", "recommendations"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ratings", "recommendations"]
    assert ax.get_title() == "The long tail of popularity"  # title=None kept the first


@pytest.mark.parametrize("bad", [[1, -2, 3], [1, np.nan], [0, 0]])
def test_long_tail_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="counts"):
        plot_long_tail(bad)


def test_history_plot_draws_metric_curves_and_best_epoch():
    h = History(
        train_loss=[9.0, 8.0, 7.0],
        valid_loss=[9.5, 8.5, 8.9],
        train_metric=[1.2, 1.0, 0.9],
        valid_metric=[1.3, 1.1, 1.15],
        best_epoch=2,
    )
    ax = plot_history(h, ylabel="RMSE")
    train, valid, best = ax.lines
    assert train.get_ydata().tolist() == [1.2, 1.0, 0.9]
    assert valid.get_ydata().tolist() == [1.3, 1.1, 1.15]
    assert best.get_xdata()[0] == 2
    assert ax.get_ylabel() == "RMSE" and ax.get_xlabel() == "epoch"
    loss_ax = plot_history(h, metric=False)
    assert loss_ax.lines[0].get_ydata().tolist() == [9.0, 8.0, 7.0]
    plt.close("all")


def test_history_plot_rejects_an_empty_history():
    with pytest.raises(ValueError, match="history is empty"):
        plot_history(History())
