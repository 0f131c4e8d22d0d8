"""The course's recurring figures.

Each ``plot_*`` function draws on a matplotlib ``Axes`` (a new one when ``ax`` is
None), returns it, and never calls ``plt.show()``, so a notebook can combine several
in one figure and a test can inspect what was drawn.

Each ``interactive_*`` function returns a Vega-Altair chart a reader can explore
(tooltips, a legend that selects, zoom); the chapters show it beside the static
figure, which the printed page and a notebook viewer without JavaScript still show.
The chart displays as its Vega-Lite spec (:func:`use_chart_renderer`), which
JupyterLab draws offline and the book draws with its own copy of Vega
(``book/_ext/vega_charts.py``): no chart asks a CDN for anything.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

__all__ = [
    "chart_bundle",
    "interactive_linked_bars",
    "interactive_scatter",
    "plot_embedding_map",
    "plot_history",
    "plot_long_tail",
    "plot_norm_vs_popularity",
    "plot_study",
    "use_chart_renderer",
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


# ---------------------------------------------------------------- interactive charts


VEGALITE_MIME = "application/vnd.vegalite.v5+json"


def chart_bundle(spec: dict, **options) -> tuple[dict, dict]:
    """Altair renderer ``"mfkit"``: a chart's output is its Vega-Lite spec, and a line of text.

    Altair's ``mimetype`` renderer with a text that says what the output is, for a
    notebook viewer that cannot draw it (GitHub's, say), in place of Altair's "the
    renderer has not been properly enabled".
    """
    title = spec.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    name = (
        f"Interactive chart: {title}" if isinstance(title, str) and title else "Interactive chart"
    )
    text = f"<{name}: JupyterLab, VS Code and the course's book draw it.>"
    return {VEGALITE_MIME: spec, "text/plain": text}, ({VEGALITE_MIME: options} if options else {})


def use_chart_renderer() -> str:
    """Display Altair charts as their Vega-Lite spec; returns the renderer in use.

    Altair's default renderer writes HTML that loads Vega from a CDN: blank without a
    network, and in an untrusted notebook. :func:`chart_bundle` outputs the spec alone
    (``application/vnd.vegalite.v5+json``): JupyterLab, Notebook 7 and VS Code draw it
    with their own copy of Vega, and the book with its own (``book/_ext/vega_charts.py``).
    Google Colab draws only HTML, so there Altair's default stays; a renderer chosen with
    ``alt.renderers.enable`` is left alone. Every ``interactive_*`` function calls this.
    """
    import altair as alt

    if "mfkit" not in alt.renderers.names():
        alt.renderers.register("mfkit", chart_bundle)
    if alt.renderers.active == "default" and "google.colab" not in sys.modules:
        alt.renderers.enable("mfkit")
    return alt.renderers.active


# Vega's category10, as matplotlib's tab10 (plot_embedding_map); "other" in light grey.
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
_OTHER_GREY = "#c8c8c8"


def _rounded(values: pd.Series, digits: int = 5) -> pd.Series:
    """Floats to ``digits`` significant digits: the chart embeds its data as text."""
    if values.dtype.kind != "f":
        return values
    return values.map(lambda v: float(f"{v:.{digits}g}"))


def _encoding_type(frame: pd.DataFrame, column: str) -> str:
    """Vega-Lite's type for a column: quantitative for numbers, nominal otherwise."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    values = frame[column]
    return "quantitative" if is_numeric_dtype(values) and not is_bool_dtype(values) else "nominal"


def interactive_scatter(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    tooltip: Sequence[str] = (),
    color: str | None = None,
    size: str | None = None,
    title: str | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    x_scale: str = "linear",
    y_scale: str = "linear",
    other: str = "other",
    width: int = 480,
    height: int = 360,
) -> alt.Chart:
    """A scatter of ``frame[y]`` against ``frame[x]`` to explore: tooltips, legend, zoom.

    Introduced in chapter 3 (embedding norm against popularity). Hover a point to read
    its ``tooltip`` columns (a column named ``title`` heads the tooltip); with ``color``
    (a category column), click a legend entry to keep that category in colour and grey
    out the others (shift-click adds one); scroll to zoom, drag to pan, double-click to
    show everything again. Only the columns the chart uses are embedded in it,
    floats to 5 significant digits.

    Parameters
    ----------
    frame : DataFrame
        One row per point.
    x, y : str
        Columns for the axes.
    tooltip : sequence of str
        Columns shown on hover, in order; whole numbers show as such (a year, a
        count), others with 3 significant digits.
    color : str, optional
        A category column: one colour per category, and the legend that selects.
    size : str, optional
        A column of counts: each point's area grows with it (a square-root scale, as
        :func:`plot_embedding_map`), with no legend of its own; add it to ``tooltip`` to
        read the value.
    other : str
        The category drawn in light grey beneath the others (as
        :func:`mfkit.embeddings.genre_labels` names the movies of no listed genre).
    title, x_title, y_title : str, optional
        The chart's title and the axis titles (default: the column names).
    x_scale, y_scale : str
        Vega-Lite scale types: ``"linear"`` (not forced to include zero), ``"log"``, or
        ``"symlog"`` (a log scale that also shows zeros: counts); the log scales have
        their ticks at 0 (symlog), 1, 10, 100, ...
    width, height : int
        Size in pixels.

    Returns
    -------
    altair.Chart
        The chart; it displays as its Vega-Lite spec (:func:`use_chart_renderer`).
        Selections are named ``pick`` (the legend) and ``zoom``.

    Raises
    ------
    ValueError
        If a column is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"norm": [1.0, 2.5], "n": [3, 40], "title": ["A", "B"],
    ...                   "genre": ["Drama", "War"]})
    >>> spec = interactive_scatter(t, "n", "norm", tooltip=["title", "n"], color="genre").to_dict()
    >>> [field["field"] for field in spec["encoding"]["tooltip"]]
    ['title', 'n']
    >>> spec["params"][0]["bind"]
    'legend'
    """
    import altair as alt

    tooltip = [tooltip] if isinstance(tooltip, str) else list(tooltip)
    extra = [c for c in (color, size) if c is not None]
    columns = list(dict.fromkeys([x, y, *tooltip, *extra]))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the column(s) {missing}; it has {list(frame.columns)}")
    use_chart_renderer()
    data = frame[columns].reset_index(drop=True).apply(_rounded)
    if color is not None:  # the ``other`` points first, so that they are drawn beneath
        data = data.sort_values(color, key=lambda c: c != other, kind="stable")

    def tip(column: str) -> alt.Tooltip:
        kind = _encoding_type(data, column)
        if kind != "quantitative":
            return alt.Tooltip(column, type=kind)
        whole = np.all(np.mod(data[column].dropna().to_numpy(dtype=float), 1) == 0)
        return alt.Tooltip(column, type=kind, format="d" if whole else ".3g")

    def axis(column: str, scale: str, title: str | None) -> dict:
        kwargs = {"type": _encoding_type(data, column), "title": title or column}
        if scale == "linear":
            return {**kwargs, "scale": alt.Scale(zero=False)}
        kwargs["scale"] = alt.Scale(type=scale)
        if scale in ("log", "symlog"):  # ticks at 0 (symlog), 1, 10, 100, ...: no crowding
            top = float(np.nanmax(data[column]))
            ticks = [10**k for k in range(int(np.floor(np.log10(top))) + 1)] if top >= 1 else []
            ticks = [0, *ticks] if scale == "symlog" else ticks
            kwargs["axis"] = alt.Axis(values=ticks) if ticks else alt.Undefined
        return kwargs

    zoom = alt.selection_interval(bind="scales", name="zoom")
    encoding = {
        "x": alt.X(x, **axis(x, x_scale, x_title)),
        "y": alt.Y(y, **axis(y, y_scale, y_title)),
        "tooltip": [tip(c) for c in tooltip],
    }
    if size is not None:
        area = alt.Scale(type="sqrt", zero=True, range=[6, 160])
        encoding["size"] = alt.Size(size, type="quantitative", scale=area, legend=None)
    params = [zoom]
    if color is not None:
        pick = alt.selection_point(fields=[color], bind="legend", name="pick")
        names = sorted(data[color].dropna().unique(), key=lambda n: (n == other, str(n)))
        palette = [_PALETTE[i % len(_PALETTE)] for i in range(len(names))]
        if names and names[-1] == other:
            palette[-1] = _OTHER_GREY
        scale = alt.Scale(domain=names, range=palette)
        colour = alt.Color(color, type="nominal", scale=scale, legend=alt.Legend(title=color))
        encoding["color"] = alt.condition(pick, colour, alt.value("lightgray"))
        encoding["opacity"] = alt.condition(pick, alt.value(0.8), alt.value(0.15))
        params.insert(0, pick)
    marks = alt.Chart(data).mark_circle(**({} if size else {"size": 28}))
    chart = marks.encode(**encoding).add_params(*params)
    chart = chart.properties(width=width, height=height)
    return chart.properties(title=title) if title else chart


def interactive_linked_bars(
    cells: pd.DataFrame,
    left: str,
    right: str,
    *,
    count: str = "n",
    mean: str | None = None,
    width: int = 260,
    height: int = 360,
) -> alt.HConcatChart:
    """Two bar charts of counts, by ``left`` and by ``right``, each filtering the other.

    Introduced in chapter 1 (ratings by occupation and by genre). ``cells`` holds one
    row per pair of categories with its ``count`` (and, with ``mean``, the mean of some
    value over that count). Each chart sums the counts by its category; click a bar to
    keep only that category's cells in the other chart (shift-click adds one, a
    double-click shows everything again). A bar's tooltip is headed by its category
    and gives its count and, with ``mean``, the mean weighted by the counts.

    Returns
    -------
    altair.HConcatChart
        Selections are named ``pick_<left>`` and ``pick_<right>``.

    Raises
    ------
    ValueError
        If a column is missing or a count is negative.

    Examples
    --------
    >>> import pandas as pd
    >>> cells = pd.DataFrame({"job": ["a", "a", "b"], "genre": ["x", "y", "x"], "n": [3, 1, 2]})
    >>> spec = interactive_linked_bars(cells, "job", "genre").to_dict()
    >>> [param["name"] for param in spec["params"]]
    ['pick_job', 'pick_genre']
    """
    import altair as alt

    columns = [left, right, count, *([mean] if mean else [])]
    missing = [c for c in columns if c not in cells.columns]
    if missing:
        raise ValueError(f"cells lacks the column(s) {missing}; it has {list(cells.columns)}")
    if (cells[count] < 0).any():
        raise ValueError(f"counts in {count!r} must be >= 0")
    use_chart_renderer()
    data = cells[columns].reset_index(drop=True).apply(_rounded)
    picks = {
        side: alt.selection_point(fields=[side], name=f"pick_{side}") for side in (left, right)
    }
    if mean:
        data = data.assign(_weighted=data[mean] * data[count])

    def bars(side: str, other: str) -> alt.Chart:
        totals = {count: "sum", **({"_weighted": "sum"} if mean else {})}
        chart = alt.Chart(data).transform_filter(picks[other])
        chart = chart.transform_aggregate(
            **{f"{c}": f"{how}({c})" for c, how in totals.items()}, groupby=[side]
        ).transform_calculate(title=f"datum[{side!r}]")
        tips = [alt.Tooltip("title:N"), alt.Tooltip(f"{count}:Q", format=",d")]
        if mean:
            chart = chart.transform_calculate(**{mean: f"datum._weighted / datum[{count!r}]"})
            tips.append(alt.Tooltip(f"{mean}:Q", format=".2f"))
        colour = alt.condition(picks[side], alt.value("#1f77b4"), alt.value("lightgray"))
        return (
            chart.mark_bar()
            .encode(
                x=alt.X(f"{count}:Q", title=count),
                y=alt.Y(f"{side}:N", sort="-x", title=None),
                color=colour,
                tooltip=tips,
            )
            .add_params(picks[side])
            .properties(width=width, height=height, title=f"by {side}")
        )

    return alt.hconcat(bars(left, right), bars(right, left))
