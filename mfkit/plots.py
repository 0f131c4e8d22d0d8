"""The course's recurring figures.

Each function draws on a matplotlib ``Axes`` (a new one when ``ax`` is None),
returns it, and never calls ``plt.show()``, so a notebook can combine several
in one figure and a test can inspect what was drawn.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

__all__ = [
    "plot_embedding_map",
    "plot_history",
    "plot_long_tail",
    "plot_norm_vs_popularity",
    "plot_study",
]


def plot_long_tail(
    counts: Iterable[float],
    *,
    ax: Axes | None = None,
    label: str | None = None,
    xlabel: str = "rank of movie (most rated = 1)",
    ylabel: str = "number of ratings",
    title: str | None = "The long tail of popularity",
    **line_kwargs,
) -> Axes:
    """Rank-frequency ("long tail") plot of counts on log-log axes.

    The counts are sorted from largest to smallest and drawn against their
    rank 1, 2, 3, ... Introduced in chapter 1 for the number of ratings per
    movie; later chapters draw how often each movie is *recommended* on the
    same axes to see whether a model favours popular movies.

    Parameters
    ----------
    counts : iterable of float
        One non-negative count per item, in any order (for example
        ``ratings.groupby("movie_id").size()``). Zeros cannot be drawn on a
        log axis and are left out; report them separately (as coverage).
    ax : matplotlib Axes, optional
        Where to draw. A new figure and axes are made when None.
    label : str, optional
        Legend label of the curve, to compare several curves on one axes.
    xlabel, ylabel, title : str
        Axis labels and title. ``title=None`` leaves the title untouched, so
        a second curve drawn on the same axes keeps the first one's title.
    **line_kwargs
        Passed on to :meth:`matplotlib.axes.Axes.plot` (``color``, ``lw``, ...).

    Returns
    -------
    matplotlib Axes
        The axes drawn on, with both axes log-scaled.

    Raises
    ------
    ValueError
        If a count is negative or not finite, or if no count is positive.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = plot_long_tail([5, 1, 20, 3], label="toy")
    >>> ax.lines[0].get_ydata().tolist()
    [20.0, 5.0, 3.0, 1.0]
    """
    if not hasattr(counts, "__array__"):
        counts = list(counts)  # a generator or a dict's values
    values = np.asarray(counts, dtype=float).ravel()
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("counts must be finite and non-negative (one count per item)")
    values = np.sort(values[values > 0])[::-1]
    if values.size == 0:
        raise ValueError("counts has no positive value: nothing to draw on log axes")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ranks = np.arange(1, values.size + 1)
    ax.plot(ranks, values, label=label, **line_kwargs)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if label is not None:
        ax.legend()
    return ax


def plot_history(
    history,
    *,
    ax: Axes | None = None,
    metric: bool = True,
    label: str | None = None,
    ylabel: str | None = None,
    title: str | None = "Learning curves",
) -> Axes:
    """Train and validation curves per epoch from a :class:`mfkit.train.History`.

    Introduced in chapter 2. Draws the metric (e.g. RMSE) when the history has
    one and ``metric`` is True, else the loss; marks the best validation epoch.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from mfkit.train import History
    >>> h = History(train_loss=[3.0, 2.0, 1.0], valid_loss=[3.5, 2.5, 2.8], best_epoch=2)
    >>> [line.get_label() for line in plot_history(h).lines]
    ['train', 'validation', 'best epoch (2)']
    """
    use_metric = metric and bool(history.train_metric)
    train = history.train_metric if use_metric else history.train_loss
    valid = history.valid_metric if use_metric else history.valid_loss
    if not train:
        raise ValueError("the history is empty: nothing to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    prefix = f"{label}: " if label else ""
    epochs = np.arange(1, len(train) + 1)
    (line,) = ax.plot(epochs, train, label=f"{prefix}train")
    if valid:
        ax.plot(epochs[: len(valid)], valid, ls="--", color=line.get_color(),
                label=f"{prefix}validation")  # fmt: skip
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch, color="grey", lw=0.8, ls=":",
                       label=f"{prefix}best epoch ({history.best_epoch})")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or ("metric" if use_metric else "loss"))
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_study(
    histories: dict,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    log: bool = False,
) -> Axes:
    """Train (solid) and validation (dashed) loss of several runs, one colour per run.

    Introduced in chapter 7 for hyperparameter studies: ``histories`` maps a
    label (e.g. ``"lr=0.01"``) to the :class:`mfkit.train.History` of that run.
    ``log=True`` puts the loss on a log scale, for runs that differ by orders
    of magnitude.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from mfkit.train import History
    >>> runs = {"a": History(train_loss=[2.0, 1.0], valid_loss=[2.5, 1.5]),
    ...         "b": History(train_loss=[3.0, 2.0], valid_loss=[3.1, 2.9])}
    >>> [line.get_label() for line in plot_study(runs).lines]
    ['a', '_a valid', 'b', '_b valid']
    """
    if not histories:
        raise ValueError("no runs to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, history in histories.items():
        epochs = np.arange(1, history.epochs + 1)
        (line,) = ax.plot(epochs, history.train_loss, label=str(label))
        if history.valid_loss:
            ax.plot(epochs[: len(history.valid_loss)], history.valid_loss, ls="--",
                    color=line.get_color(), label=f"_{label} valid")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (solid: train, dashed: validation)")
    if log:
        ax.set_yscale("log")
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_norm_vs_popularity(
    table,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    annotate: int = 0,
    title: str | None = "Embedding norm vs popularity",
    **scatter_kwargs,
) -> Axes:
    """Scatter of each movie's embedding norm against its number of ratings.

    Introduced in chapter 3. ``table`` has ``norm`` and ``n_ratings`` columns
    (and ``title`` when ``annotate`` > 0), as made by
    :func:`mfkit.embeddings.norm_popularity`. The x axis is logarithmic
    (``n_ratings + 1``, so unrated movies still show); the legend gives
    Spearman's rank correlation. ``annotate=n`` writes the titles of the ``n``
    longest embeddings next to their points.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> t = pd.DataFrame({"norm": [1.0, 2.0, 3.0], "n_ratings": [0, 10, 100]})
    >>> plot_norm_vs_popularity(t, label="toy").get_legend().get_texts()[0].get_text()
    'toy (Spearman ρ = 1.00)'
    """
    needed = {"norm", "n_ratings"} | ({"title"} if annotate else set())
    if not needed <= set(table.columns):
        raise ValueError(
            f"table needs the columns {sorted(needed)} (see mfkit.embeddings.norm_popularity)"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    rho = table["norm"].corr(table["n_ratings"], method="spearman")
    text = f"Spearman ρ = {rho:.2f}"
    scatter_kwargs = {"s": 8, "alpha": 0.5, **scatter_kwargs}
    ax.scatter(table["n_ratings"] + 1, table["norm"], label=f"{label} ({text})" if label else text,
               **scatter_kwargs)  # fmt: skip
    for _, row in table.nlargest(annotate, "norm").iterrows():
        ax.annotate(row["title"], (row["n_ratings"] + 1, row["norm"]), fontsize=7,
                    xytext=(3, 0), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("number of training ratings + 1 (log scale)")
    ax.set_ylabel(r"embedding norm $\|V_j\|$")
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def plot_embedding_map(
    coords,
    labels,
    *,
    sizes=None,
    ax: Axes | None = None,
    title: str | None = "t-SNE map of the movie embeddings",
    max_size: float = 60.0,
) -> Axes:
    """Scatter of 2-D coordinates (e.g. :func:`mfkit.embeddings.tsne_map`), one colour per label.

    Introduced in chapter 3. ``labels`` gives a category per point (e.g. from
    :func:`mfkit.embeddings.genre_labels`); the label ``"other"`` is drawn in
    light grey underneath. ``sizes`` (e.g. numbers of ratings) scale the markers
    by their square root, up to ``max_size``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = plot_embedding_map([[0, 0], [1, 1], [2, 0]], ["a", "other", "a"])
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['other', 'a']
    """
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels, dtype=object)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(labels):
        raise ValueError(
            f"coords must have shape (n, 2) with one label per row; got {coords.shape} "
            f"and {len(labels)} labels"
        )
    if sizes is None:
        marker = np.full(len(coords), 10.0)
    else:
        sizes = np.asarray(sizes, dtype=float)
        if sizes.shape != (len(coords),) or not np.all(sizes >= 0):
            raise ValueError(
                f"sizes must hold one non-negative number per point ({len(coords)}), "
                f"got shape {sizes.shape}"
            )
        root = np.sqrt(sizes)
        marker = 2 + (max_size - 2) * root / max(root.max(), 1e-12)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 6))
    names = sorted(set(labels), key=lambda name: (name != "other", str(name)))
    palette = plt.get_cmap("tab10")
    colour = 0
    for name in names:
        chosen = labels == name
        if name == "other":
            style = {"color": "lightgrey", "alpha": 0.5}
        else:
            style = {"color": palette(colour % 10), "alpha": 0.8}
            colour += 1
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=marker[chosen], label=name,
                   edgecolors="none", **style)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    ax.legend(markerscale=1.5, fontsize=8, loc="best")
    return ax
