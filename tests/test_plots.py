"""Tests of mfkit.plots (Agg backend, synthetic counts)."""

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from scipy.stats import spearmanr

from mfkit.data import synthetic_movielens
from mfkit.embeddings import norm_popularity
from mfkit.features import Indexer
from mfkit.plots import (
    VEGALITE_MIME,
    chart_bundle,
    interactive_linked_bars,
    interactive_scatter,
    plot_embedding_map,
    plot_history,
    plot_long_tail,
    plot_norm_vs_popularity,
    use_chart_renderer,
)
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


# ---------------------------------------------------------------- norm vs popularity
@pytest.fixture
def norm_table() -> pd.DataFrame:
    """norm_popularity of random embeddings on sparse synthetic data (some unrated movies)."""
    ml = synthetic_movielens(20, 40, 80, seed=2)
    idx = Indexer.from_movielens(ml)
    emb = np.random.default_rng(1).normal(size=(idx.n_movies, 5))
    table = norm_popularity(emb, idx, ml.ratings)
    assert (table["n_ratings"] == 0).any()
    return table


def test_norm_vs_popularity_scatters_norm_against_ratings_plus_one(norm_table) -> None:
    ax = plot_norm_vs_popularity(norm_table)
    (points,) = ax.collections
    offsets = np.asarray(points.get_offsets())
    np.testing.assert_array_equal(offsets[:, 0], norm_table["n_ratings"].to_numpy() + 1)
    np.testing.assert_array_equal(offsets[:, 1], norm_table["norm"].to_numpy())
    assert ax.get_xscale() == "log"
    assert ax.get_title() == "Embedding norm vs popularity"
    assert len(ax.texts) == 0  # annotate=0 by default


def test_norm_vs_popularity_legend_gives_spearman_rho(norm_table) -> None:
    rho = spearmanr(norm_table["norm"], norm_table["n_ratings"]).statistic
    assert np.isfinite(rho)
    ax = plot_norm_vs_popularity(norm_table)
    assert ax.get_legend().get_texts()[0].get_text() == f"Spearman ρ = {rho:.2f}"
    ax = plot_norm_vs_popularity(norm_table, label="trained")
    assert ax.get_legend().get_texts()[0].get_text() == f"trained (Spearman ρ = {rho:.2f})"


def test_norm_vs_popularity_rho_sign_follows_the_data() -> None:
    counts = np.array([0, 3, 1, 50, 7, 7, 20])
    up = pd.DataFrame({"norm": np.sqrt(counts + 1.0), "n_ratings": counts})
    down = pd.DataFrame({"norm": -up["norm"] + 10, "n_ratings": counts})
    text = plot_norm_vs_popularity(up).get_legend().get_texts()[0].get_text()
    assert text == "Spearman ρ = 1.00"
    text = plot_norm_vs_popularity(down).get_legend().get_texts()[0].get_text()
    assert text == "Spearman ρ = -1.00"


@pytest.mark.parametrize("n", [1, 3, 6])
def test_norm_vs_popularity_annotates_the_longest_embeddings(norm_table, n: int) -> None:
    ax = plot_norm_vs_popularity(norm_table, annotate=n)
    assert len(ax.texts) == n
    longest = np.argsort(-norm_table["norm"].to_numpy())[:n]
    assert [t.get_text() for t in ax.texts] == norm_table["title"].to_numpy()[longest].tolist()
    for text, j in zip(ax.texts, longest, strict=True):
        row = norm_table.iloc[j]
        assert text.xy == pytest.approx((row["n_ratings"] + 1, row["norm"]))


def test_norm_vs_popularity_draws_on_given_axes_with_scatter_options(norm_table) -> None:
    fig, ax = plt.subplots()
    out = plot_norm_vs_popularity(norm_table, ax=ax, title=None)
    assert out is ax and len(fig.axes) == 1
    assert ax.get_title() == ""
    assert ax.collections[0].get_sizes().tolist() == [8]
    assert ax.collections[0].get_alpha() == 0.5
    plot_norm_vs_popularity(norm_table, ax=ax, s=30, alpha=0.9, label="second")
    assert ax.collections[1].get_sizes().tolist() == [30]
    assert ax.collections[1].get_alpha() == 0.9
    assert len(ax.get_legend().get_texts()) == 2


def test_norm_vs_popularity_needs_no_title_column_without_annotations() -> None:
    table = pd.DataFrame({"norm": [1.0, 2.0, 0.5], "n_ratings": [0, 4, 2]})
    ax = plot_norm_vs_popularity(table)
    assert len(ax.collections[0].get_offsets()) == 3


@pytest.mark.parametrize("missing", ["norm", "n_ratings"])
def test_norm_vs_popularity_rejects_missing_columns(norm_table, missing: str) -> None:
    with pytest.raises(ValueError, match=r"table needs the columns \['n_ratings', 'norm'\]"):
        plot_norm_vs_popularity(norm_table.drop(columns=missing))


def test_norm_vs_popularity_annotate_needs_titles(norm_table) -> None:
    with pytest.raises(ValueError, match="'title'"):
        plot_norm_vs_popularity(norm_table.drop(columns="title"), annotate=2)


# ----------------------------------------------------------------------- embedding map
def test_embedding_map_draws_one_collection_per_label_other_first() -> None:
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(12, 2))
    labels = np.array(["War", "other", "Horror", "War", "Comedy", "other"] * 2, dtype=object)
    ax = plot_embedding_map(coords, labels)
    names = ["other", "Comedy", "Horror", "War"]
    assert [c.get_label() for c in ax.collections] == names
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    for points, name in zip(ax.collections, names, strict=True):
        np.testing.assert_array_equal(np.asarray(points.get_offsets()), coords[labels == name])
        assert points.get_sizes().tolist() == [10.0] * int((labels == name).sum())
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert ax.get_title() == "t-SNE map of the movie embeddings"


def test_embedding_map_colours_other_grey_and_labels_distinctly() -> None:
    coords = np.arange(16.0).reshape(8, 2)
    labels = ["b", "a", "other", "c", "a", "b", "other", "c"]
    ax = plot_embedding_map(coords, labels)
    other, *named = ax.collections
    np.testing.assert_allclose(other.get_facecolors(), [to_rgba("lightgrey", 0.5)])
    colours = [tuple(c.get_facecolors()[0]) for c in named]
    assert len(set(colours)) == len(named) == 3
    assert all(c != tuple(to_rgba("lightgrey", 0.5)) for c in colours)
    assert all(c.get_alpha() == 0.8 for c in named) and other.get_alpha() == 0.5


def test_embedding_map_without_other_starts_with_the_first_colour() -> None:
    ax = plot_embedding_map([[0, 0], [1, 1]], ["y", "x"])
    assert [c.get_label() for c in ax.collections] == ["x", "y"]
    np.testing.assert_allclose(
        ax.collections[0].get_facecolors()[0], to_rgba(plt.get_cmap("tab10")(0), 0.8)
    )


def test_embedding_map_marker_sizes_grow_with_sqrt_of_sizes() -> None:
    rng = np.random.default_rng(4)
    coords = rng.normal(size=(10, 2))
    labels = np.array(["other", "a"] * 5, dtype=object)
    sizes = np.array([0, 1, 4, 9, 16, 25, 100, 49, 36, 2], dtype=float)
    ax = plot_embedding_map(coords, labels, sizes=sizes, max_size=40.0)
    marker = np.empty(len(coords))
    for points, name in zip(ax.collections, ["other", "a"], strict=True):
        marker[labels == name] = points.get_sizes()
    assert marker.max() == pytest.approx(40.0)
    assert marker[sizes.argmax()] == pytest.approx(40.0)
    assert marker[sizes == 0] == pytest.approx(2.0)  # the smallest marker stays visible
    # ordering follows sizes, and the growth above the minimum is proportional to sqrt(sizes)
    np.testing.assert_array_equal(
        np.argsort(marker, kind="stable"), np.argsort(sizes, kind="stable")
    )
    nonzero = sizes > 0
    ratio = (marker[nonzero] - 2.0) / np.sqrt(sizes[nonzero])
    np.testing.assert_allclose(ratio, ratio[0])


def test_embedding_map_all_zero_sizes_give_the_smallest_markers() -> None:
    ax = plot_embedding_map([[0, 0], [1, 1], [2, 2]], ["a", "a", "b"], sizes=[0, 0, 0])
    assert all(c.get_sizes().tolist() == [2.0] * len(c.get_offsets()) for c in ax.collections)


def test_embedding_map_draws_on_given_axes() -> None:
    fig, ax = plt.subplots()
    out = plot_embedding_map([[0, 0], [1, 1]], ["a", "b"], ax=ax, title=None)
    assert out is ax and len(fig.axes) == 1 and ax.get_title() == ""


@pytest.mark.parametrize(
    ("coords", "labels"),
    [
        (np.zeros((4, 2)), ["a", "b", "c"]),
        (np.zeros((3, 3)), ["a", "b", "c"]),
        (np.zeros(6), ["a"] * 6),
    ],
)
def test_embedding_map_rejects_mismatched_shapes(coords, labels) -> None:
    with pytest.raises(ValueError, match=r"coords must have shape \(n, 2\) with one label per row"):
        plot_embedding_map(coords, labels)


@pytest.mark.parametrize("sizes", [[1, 2, 3], [1, -2]])
def test_embedding_map_rejects_bad_sizes(sizes) -> None:
    with pytest.raises(ValueError, match="sizes must hold one non-negative number per point"):
        plot_embedding_map([[0, 0], [1, 1]], ["a", "b"], sizes=sizes)


# ---------------------------------------------------------------- interactive charts


@pytest.fixture
def renderers():
    """Altair's renderer registry, restored to its state before the test."""
    import altair as alt

    active = alt.renderers.active
    yield alt.renderers
    alt.renderers.enable(active)


@pytest.fixture
def movies_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movie_id": [1, 2, 3, 4],
            "title": ["Star Wars (1977)", "Heat (1995)", "Kika (1993)", "Tainted (1998)"],
            "year": pd.array([1977, 1995, None, 1998], dtype="Int64"),
            "n_ratings": [583, 120, 2, 0],
            "norm": [1.234567891, 2.0, 6.9211445801, 5.5],
            "genre": ["Sci-Fi", "other", "other", "Romance"],
            "unused": ["a", "b", "c", "d"],
        }
    )


def scatter_spec(frame: pd.DataFrame, **kwargs) -> dict:
    kwargs = {"tooltip": ["title", "year", "n_ratings", "norm"], "color": "genre", **kwargs}
    return interactive_scatter(frame, "n_ratings", "norm", **kwargs).to_dict()


def test_interactive_scatter_encodes_axes_scales_and_titles(movies_table, renderers) -> None:
    spec = scatter_spec(movies_table, x_scale="symlog", title="Norm vs popularity", y_title="‖V‖")
    assert spec["mark"]["type"] == "circle"
    x, y = spec["encoding"]["x"], spec["encoding"]["y"]
    assert (x["field"], x["type"], x["scale"]["type"]) == ("n_ratings", "quantitative", "symlog")
    assert (y["field"], y["type"]) == ("norm", "quantitative")
    assert y["scale"] == {"zero": False}  # linear, around the data
    assert x["axis"]["values"] == [0, 1, 10, 100]  # symlog: zero and powers of ten, up to 583
    assert scatter_spec(movies_table, x_scale="log")["encoding"]["x"]["axis"]["values"] == [
        1,
        10,
        100,
    ]
    assert (x["title"], y["title"]) == ("n_ratings", "‖V‖")
    assert spec["title"] == "Norm vs popularity"
    assert "title" not in scatter_spec(movies_table)  # no empty title without one


def test_interactive_scatter_tooltips_keep_their_order_and_format_numbers(
    movies_table, renderers
) -> None:
    tips = scatter_spec(movies_table)["encoding"]["tooltip"]
    assert [t["field"] for t in tips] == ["title", "year", "n_ratings", "norm"]
    assert [t["type"] for t in tips] == ["nominal", "quantitative", "quantitative", "quantitative"]
    # a year (with a missing one) and a count as whole numbers, a norm with 3 digits
    assert [t.get("format") for t in tips] == [None, "d", "d", ".3g"]


def test_interactive_scatter_legend_selects_a_colour(movies_table, renderers) -> None:
    spec = scatter_spec(movies_table)
    params = {p["name"]: p for p in spec["params"]}
    assert params["pick"]["bind"] == "legend"
    assert params["pick"]["select"] == {"type": "point", "fields": ["genre"]}
    assert params["zoom"]["bind"] == "scales"
    assert params["zoom"]["select"]["type"] == "interval"
    color, opacity = spec["encoding"]["color"], spec["encoding"]["opacity"]
    assert color["condition"]["param"] == "pick"
    assert (color["condition"]["field"], color["condition"]["type"]) == ("genre", "nominal")
    assert color["value"] == "lightgray"  # the categories not picked
    # one colour per genre, "other" last in the legend and in light grey
    assert color["condition"]["scale"]["domain"] == ["Romance", "Sci-Fi", "other"]
    assert color["condition"]["scale"]["range"][-1] == "#c8c8c8"
    assert len(set(color["condition"]["scale"]["range"])) == 3
    assert opacity["condition"]["param"] == "pick"
    assert opacity["condition"]["value"] > opacity["value"]


def test_interactive_scatter_without_colour_has_no_legend_selection(
    movies_table, renderers
) -> None:
    spec = scatter_spec(movies_table, color=None)
    assert [p["name"] for p in spec["params"]] == ["zoom"]
    assert "color" not in spec["encoding"] and "opacity" not in spec["encoding"]


def test_interactive_scatter_embeds_only_its_columns_rounded(movies_table, renderers) -> None:
    spec = scatter_spec(movies_table, tooltip="title")
    (rows,) = spec["datasets"].values()
    assert set(rows[0]) == {"n_ratings", "norm", "title", "genre"}
    # "other" rows first (drawn beneath), otherwise in order
    assert [row["title"][:4] for row in rows] == ["Heat", "Kika", "Star", "Tain"]
    assert [row["norm"] for row in rows] == [2.0, 6.9211, 1.2346, 5.5]
    assert [row["n_ratings"] for row in rows] == [120, 2, 583, 0]


def test_interactive_scatter_rejects_a_missing_column(movies_table, renderers) -> None:
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['popularity'\]"):
        interactive_scatter(movies_table, "popularity", "norm")
    with pytest.raises(ValueError, match="lacks"):
        interactive_scatter(movies_table, "n_ratings", "norm", tooltip=["name"])


def test_a_chart_displays_as_its_vega_lite_spec_with_no_cdn(movies_table, renderers) -> None:
    renderers.enable("default")
    chart = interactive_scatter(movies_table, "n_ratings", "norm", title="Norms")
    assert renderers.active == "mfkit"
    bundle, _ = chart._repr_mimebundle_()
    assert set(bundle) == {VEGALITE_MIME, "text/plain"}  # no HTML that loads Vega
    assert bundle[VEGALITE_MIME]["mark"]["type"] == "circle"
    assert "Interactive chart: Norms" in bundle["text/plain"]
    assert "http" not in bundle["text/plain"]


def test_chart_renderer_leaves_a_chosen_renderer_and_colab_alone(renderers, monkeypatch) -> None:
    renderers.enable("svg")
    assert use_chart_renderer() == "svg"
    renderers.enable("default")
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert use_chart_renderer() == "default"  # Colab draws HTML only
    monkeypatch.delitem(sys.modules, "google.colab")
    assert use_chart_renderer() == "mfkit"


def test_chart_bundle_passes_embed_options_as_metadata() -> None:
    bundle, metadata = chart_bundle({"mark": "point", "title": {"text": "T"}}, actions=False)
    assert bundle[VEGALITE_MIME] == {"mark": "point", "title": {"text": "T"}}
    assert bundle["text/plain"].startswith("<Interactive chart: T")
    assert metadata == {VEGALITE_MIME: {"actions": False}}
    assert chart_bundle({"mark": "point"})[1] == {}


def test_interactive_scatter_sizes_points_by_a_column_without_a_legend(
    movies_table, renderers
) -> None:
    spec = scatter_spec(movies_table, tooltip=["title"], size="n_ratings")
    size = spec["encoding"]["size"]
    assert (size["field"], size["type"], size["legend"]) == ("n_ratings", "quantitative", None)
    assert size["scale"]["type"] == "sqrt" and size["scale"]["zero"] is True
    assert "size" not in spec["mark"]  # the encoding, not a fixed size, sets the area
    assert "size" not in scatter_spec(movies_table)["encoding"]
    with pytest.raises(ValueError, match="popularity"):
        interactive_scatter(movies_table, "n_ratings", "norm", size="popularity")


@pytest.fixture
def cells() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "occupation": ["student", "student", "writer"],
            "genre": ["Drama", "War", "Drama"],
            "ratings": [30, 10, 5],
            "mean rating": [3.5, 4.25, 2.0],
        }
    )


def test_linked_bars_each_view_counts_its_category_filtered_by_the_other(cells, renderers) -> None:
    spec = interactive_linked_bars(cells, "occupation", "genre", count="ratings").to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert params["pick_occupation"]["select"] == {"type": "point", "fields": ["occupation"]}
    assert params["pick_genre"]["select"] == {"type": "point", "fields": ["genre"]}
    pairs = [("occupation", "genre"), ("genre", "occupation")]
    for view, (own, other) in zip(spec["hconcat"], pairs, strict=True):
        transforms = view["transform"]
        assert transforms[0] == {"filter": {"param": f"pick_{other}"}}
        assert transforms[1]["aggregate"] == [{"op": "sum", "field": "ratings", "as": "ratings"}]
        assert transforms[1]["groupby"] == [own]
        assert view["encoding"]["y"]["field"] == own and view["encoding"]["x"]["field"] == "ratings"
        assert view["encoding"]["color"]["condition"]["param"] == f"pick_{own}"
        tips = [t["field"] for t in view["encoding"]["tooltip"]]
        assert tips == ["title", "ratings"]  # vega-tooltip heads the tooltip with "title"
        assert transforms[2] == {"calculate": f"datum['{own}']", "as": "title"}


def test_linked_bars_mean_is_weighted_by_the_counts(cells, renderers) -> None:
    spec = interactive_linked_bars(
        cells, "occupation", "genre", count="ratings", mean="mean rating"
    ).to_dict()
    (rows,) = spec["datasets"].values()
    weighted = {(r["occupation"], r["genre"]): r["_weighted"] for r in rows}
    assert weighted == {
        ("student", "Drama"): 105.0,
        ("student", "War"): 42.5,
        ("writer", "Drama"): 10.0,
    }
    view = spec["hconcat"][0]
    sums = {a["field"] for a in view["transform"][1]["aggregate"]}
    assert sums == {"ratings", "_weighted"}
    assert view["transform"][-1] == {
        "calculate": "datum._weighted / datum['ratings']",
        "as": "mean rating",
    }
    # student: (30 * 3.5 + 10 * 4.25) / 40 = 3.6875, which the tooltip shows as 3.69
    assert view["encoding"]["tooltip"][-1]["format"] == ".2f"


@pytest.mark.parametrize(
    "change, message",
    [({"genre": None}, "genre"), ({"ratings": [30, -1, 5]}, ">= 0")],
)
def test_linked_bars_reject_missing_columns_and_negative_counts(
    cells, renderers, change, message
) -> None:
    frame = (
        cells.drop(columns="genre") if change.get("genre", 0) is None else cells.assign(**change)
    )
    with pytest.raises(ValueError, match=message):
        interactive_linked_bars(frame, "occupation", "genre", count="ratings")
