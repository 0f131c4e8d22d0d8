"""The ``mfkit`` command line."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mfkit import cli, data
from mfkit.cli import main
from mfkit.data import synthetic_movielens
from mfkit.features import Indexer, SideFeatures
from mfkit.models import HybridModel
from mfkit.saving import load_model, save_model
from mfkit.splits import random_split
from mfkit.train import rating_rmse

pytestmark = pytest.mark.usefixtures("no_data_dir")


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mfkit.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "usage: mfkit" in result.stdout and "data" in result.stdout


def test_data_summarizes_a_verified_dataset(data_dir: Path, small, capsys) -> None:
    assert main(["data", "--variant", "fake", "--quiet"]) == 0
    out = capsys.readouterr().out
    density = len(small.ratings) / (
        small.ratings["user_id"].nunique() * small.ratings["movie_id"].nunique()
    )
    assert f"in {data_dir} (from MFKIT_DATA_DIR)" in out
    assert f"checksums: {len(list(data_dir.iterdir()))} files OK" in out
    assert f"{len(small.ratings):,} ratings by 30 users of 40 movies; {density:.2%}" in out


def test_data_reports_a_corrupt_file_without_a_traceback(data_dir: Path, capsys) -> None:
    (data_dir / "u1.test").write_text("corrupt\n")
    assert main(["data", "--variant", "fake"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mfkit: error: ") and "u1.test has 8 bytes" in err
    assert "Traceback" not in err


def test_unknown_variant_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "--variant", "ml-20m"])
    assert info.value.code == 2
    assert "invalid choice: 'ml-20m'" in capsys.readouterr().err
    assert "ml-100k" in data.VARIANTS


# ------------------------------------------------------------ chapter 6 commands
TINY_RECIPES = {
    "hybrid": {
        "model": {"dim": 4, "hidden": (8,), "dropout": 0.1},
        "fit": {"lr": 1e-2, "batch_size": 64, "epochs": 2, "weight_decay": 0.0},
    },
    "demographics": {
        "model": {"dim": 3, "movie_dim": 2, "hidden": (8,), "dropout": 0.1},
        "fit": {"lr": 1e-2, "batch_size": 64, "epochs": 2, "weight_decay": 1e-4},
    },
    "sequence": {
        "model": {"dim": 8, "maxlen": 6, "blocks": 1, "heads": 2, "dropout": 0.1},
        "fit": {"lr": 1e-2, "batch_size": 16, "epochs": 2},
    },
    "two-tower": {
        "model": {"dim": 4, "hidden": (8,), "normalize": True},
        "loss": {"temperature": 0.1, "mask_duplicates": True},
        "fit": {"lr": 1e-2, "batch_size": 64, "epochs": 2},
    },
}
MIN_RATINGS = 8  # of the 40 movies of `small`, those with 8+ of its 300 ratings


@pytest.fixture
def cli_env(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake variant, an empty model cache and tiny models; returns the cache folder."""
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "RECIPES", TINY_RECIPES)
    return tmp_path / "cache"


def run(*args: str) -> int:
    return main([*args, "--variant", "fake", "-q"])


def hybrid_path() -> Path:
    return cli.model_path("hybrid", "fake", "all")


def allowed_movies(small, min_ratings: int = MIN_RATINGS) -> set[int]:
    counts = small.ratings["movie_id"].value_counts()
    return set(counts.index[counts >= min_ratings])


def rated_by(small, user: int) -> set[int]:
    return set(small.ratings.loc[small.ratings["user_id"] == user, "movie_id"])


def pick_user(small) -> int:
    """The most active user who has 5+ unrated movies among the allowed ones."""
    counts = small.ratings["user_id"].value_counts()
    users = [u for u in counts.index if len(allowed_movies(small) - rated_by(small, u)) >= 5]
    return int(users[0])


def known_occupations(small) -> list[str]:
    """Occupations of the users with ratings: the vocabulary of a model trained on them."""
    users = small.users[small.users["user_id"].isin(small.ratings["user_id"])]
    return sorted(users["occupation"].unique())


def top_ids(scores: torch.Tensor, indexer, allowed: set[int], k: int) -> list[int]:
    ids = indexer.movies.ids_of(np.arange(indexer.n_movies)).tolist()
    return sorted((m for m in ids if m in allowed), key=lambda m: -scores[ids.index(m)].item())[:k]


ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(.+?)\s+(\d\.\d\d)$")


def table_rows(out: str, heading: str) -> list[tuple[int, int, str, float]]:
    lines = out.splitlines()
    start = lines.index(heading)
    assert lines[start + 1].split() == ["rank", "movie_id", "title", "predicted"]
    rows = []
    for line in lines[start + 2 :]:
        match = ROW.match(line)
        if not match:
            break
        rank, movie, title, predicted = match.groups()
        rows.append((int(rank), int(movie), title, float(predicted)))
    return rows


def test_train_saves_both_models_and_prints_the_validation_rmse(cli_env, small, capsys) -> None:
    assert run("train") == 0
    out = capsys.readouterr().out
    _, valid = random_split(small.ratings, 0.05, seed=0)  # what train holds out
    for kind in ("hybrid", "demographics"):
        path = cli.model_path(kind, "fake", "all")
        assert path == cli_env / "models" / f"{kind}-fake-all.pt" and path.is_file()
        pattern = (
            rf"^{kind}: 2 epochs, best validation RMSE (\d\.\d{{4}}) \(epoch [12]\); "
            rf"saved to {re.escape(str(path))}$"
        )
        printed = re.search(pattern, out, re.MULTILINE)
        assert printed, out
        saved = load_model(path)
        assert saved.meta["kind"] == kind and saved.meta["split"] == "all"
        assert saved.meta["variant"] == "fake" and saved.meta["epochs"] == 2
        recomputed = rating_rmse(saved.model, *saved.indexer.tensors(valid))
        assert float(printed.group(1)) == pytest.approx(recomputed, abs=6e-5)
    assert sorted(p.name for p in (cli_env / "models").iterdir()) == [
        "demographics-fake-all.pt",
        "hybrid-fake-all.pt",
    ]


def test_train_one_model_on_a_split_for_some_epochs(cli_env, capsys) -> None:
    assert run("train", "--model", "demographics", "--split", "u1", "--epochs", "1") == 0
    assert capsys.readouterr().out.startswith("demographics: 1 epochs")
    assert [p.name for p in (cli_env / "models").iterdir()] == ["demographics-fake-u1.pt"]
    meta = load_model(cli.model_path("demographics", "fake", "u1")).meta
    assert (meta["split"], meta["epochs"]) == ("u1", 1)


def test_recommend_for_an_existing_user_prints_unseen_movies(cli_env, small, capsys) -> None:
    user = pick_user(small)
    assert run("recommend", "--user", str(user), "-k", "3", "--min-ratings", str(MIN_RATINGS)) == 0
    out = capsys.readouterr().out
    seen = rated_by(small, user)
    heading = f"Top 3 unseen movies for user {user} (who rated {len(seen)}), hybrid model:"
    rows = table_rows(out, heading)
    assert [r[0] for r in rows] == [1, 2, 3]
    titles = small.movies.set_index("movie_id")["title"]
    allowed = allowed_movies(small) - seen
    for _, movie, title, predicted in rows:
        assert movie in allowed and title == titles[movie]
        assert 1 <= predicted <= 5
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
    saved = load_model(hybrid_path())
    with torch.no_grad():
        scores = saved.model.score_all(torch.as_tensor(saved.indexer.users.index(user)))[0]
    assert [r[1] for r in rows] == top_ids(scores, saved.indexer, allowed, 3)


def test_recommend_json_for_an_existing_user(cli_env, small, capsys) -> None:
    user = pick_user(small)
    argv = ["recommend", "--user", str(user), "-k", "4", "--min-ratings", str(MIN_RATINGS)]
    assert run(*argv, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["user"] == user and answer["model"] == "hybrid"
    results = answer["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    titles = small.movies.set_index("movie_id")["title"]
    for r in results:
        assert set(r) == {"rank", "movie_id", "title", "predicted"}
        assert isinstance(r["movie_id"], int) and isinstance(r["predicted"], float)
        assert r["movie_id"] in allowed_movies(small) - rated_by(small, user)
        assert r["title"] == titles[r["movie_id"]]
        assert 1 <= r["predicted"] <= 5


def test_recommend_json_predictions_have_two_decimals(cli_env, small, capsys) -> None:
    argv = ["recommend", "--user", str(pick_user(small)), "-k", "5", "--min-ratings", "1"]
    assert run(*argv, "--json") == 0
    for r in json.loads(capsys.readouterr().out)["results"]:
        assert r["predicted"] == round(r["predicted"], 2)


def test_recommend_for_a_new_user(cli_env, small, capsys) -> None:
    occupation = known_occupations(small)[0]
    profile = {"age": 24, "gender": "M", "occupation": occupation, "zip_code": "10003"}
    argv = ["recommend", "--age", "24", "--gender", "M", "--occupation", occupation]
    argv += ["--zip", "10003", "-k", "3", "--min-ratings", str(MIN_RATINGS)]
    assert run(*argv, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["profile"] == profile and answer["model"] == "demographics"
    ids = [r["movie_id"] for r in answer["results"]]
    assert [r["rank"] for r in answer["results"]] == [1, 2, 3]
    assert all(1 <= r["predicted"] <= 5 for r in answer["results"])
    saved = load_model(cli.model_path("demographics", "fake", "all"))
    scores = saved.model.score_profile(saved.model.side.profile(**profile))[0]
    assert ids == top_ids(scores, saved.indexer, allowed_movies(small), 3)

    assert run(*argv) == 0  # the same as a table
    out = capsys.readouterr().out
    who = f"24-year-old M {occupation}, zip 10003"
    heading = f"Top 3 movies for a new user ({who}), demographics model:"
    assert [r[1] for r in table_rows(out, heading)] == ids


def test_unknown_occupation_lists_the_valid_ones(cli_env, small, capsys) -> None:
    argv = ["recommend", "--age", "24", "--gender", "M", "--occupation", "astronaut"]
    assert run(*argv) == 1
    captured = capsys.readouterr()
    valid = ", ".join(known_occupations(small))
    last = captured.err.splitlines()[-1]  # after the notes on training the model
    assert last == f"mfkit: error: unknown occupation 'astronaut'; choose one of: {valid}"
    assert captured.out == "" and "Traceback" not in captured.err


def test_bad_age_is_an_error_without_a_traceback(cli_env, capsys) -> None:
    assert run("recommend", "--age", "0", "--gender", "M", "--occupation", "writer") == 1
    err = capsys.readouterr().err
    message = "mfkit: error: age must be a whole number of years from 1 to 120, got 0"
    assert err.splitlines()[-1] == message
    assert "Traceback" not in err


def test_unknown_user_names_the_id_range(cli_env, capsys) -> None:
    assert run("recommend", "--user", "999") == 1
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("mfkit: error: unknown user id(s): 999")
    assert "known user ids run from 1 to 30" in last and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["recommend", "--user", "3", "--age", "24"], "--user cannot be combined with --age"),
        (["recommend", "--user", "3", "--zip", "10003"], "--user cannot be combined with --zip"),
        (["recommend", "--age", "24", "--gender", "M"], "missing --occupation"),
        (["recommend"], "missing --age, --gender, --occupation"),
        (["recommend", "--user", "3", "-k", "0"], "-k must be at least 1, got 0"),
        (["recommend", "--user", "3", "--min-ratings", "-1"], "--min-ratings must be at least 0"),
        (["recommend", "--user", "three"], "MovieLens user ids are numbers, got --user three"),
        (["train", "--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["menu", "-k", "-2"], "-k must be at least 1, got -2"),
    ],
)
def test_usage_errors_exit_2_before_any_training(cli_env, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        run(*argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err and "Traceback" not in err
    assert not cli_env.exists()  # nothing was trained or saved


def test_evaluate_reports_both_models_and_the_mean_rating(cli_env, data_dir, capsys) -> None:
    names = ["user_id", "movie_id", "rating", "timestamp"]
    base = pd.read_csv(data_dir / "u1.base", sep="\t", names=names)
    test = pd.read_csv(data_dir / "u1.test", sep="\t", names=names)
    errors = test["rating"] - base["rating"].mean()
    expected = {"mean rating": (np.sqrt((errors**2).mean()), errors.abs().mean())}

    assert run("evaluate", "--split", "u1") == 0
    out = capsys.readouterr().out
    assert out.startswith("Test ratings of fake u1 (models trained on u1.base):\n")
    for kind in ("hybrid", "demographics"):
        saved = load_model(cli.model_path(kind, "fake", "u1"))
        assert saved.meta["split"] == "u1"
        users, movies, ratings = saved.indexer.tensors(test)
        predicted = saved.model.predict(users, movies).numpy()
        errors = ratings.numpy() - predicted
        expected[kind] = (np.sqrt((errors**2).mean()), np.abs(errors).mean())
    for name, (rmse, mae) in expected.items():
        assert re.search(rf"^\s*{name} {rmse:.4f} {mae:.4f}\s+{len(test)}$", out, re.MULTILINE)

    assert run("evaluate", "--split", "u1", "--json") == 0  # the saved u1 models are reused
    answer = json.loads(capsys.readouterr().out)
    assert answer["split"] == "u1"
    rows = {r["model"]: r for r in answer["results"]}
    assert list(rows) == ["hybrid", "demographics", "mean rating"]
    for name, (rmse, mae) in expected.items():
        assert rows[name]["RMSE"] == pytest.approx(rmse, rel=1e-5)
        assert rows[name]["MAE"] == pytest.approx(mae, rel=1e-5)
        assert rows[name]["test ratings"] == len(test) == 60


def test_recommend_trains_a_model_once_then_reuses_it(cli_env, small, capsys) -> None:
    argv = ["recommend", "--user", str(pick_user(small)), "-k", "3", "--min-ratings", "1"]
    assert not hybrid_path().exists()
    assert run(*argv) == 0
    first = capsys.readouterr()
    assert "No saved hybrid model for fake (all ratings) yet; training one..." in first.err
    assert f"Saved it to {hybrid_path()}" in first.err
    assert [p.name for p in (cli_env / "models").iterdir()] == ["hybrid-fake-all.pt"]
    stamp = hybrid_path().stat().st_mtime_ns

    assert run(*argv) == 0
    second = capsys.readouterr()
    assert second.err == "" and second.out == first.out
    assert hybrid_path().stat().st_mtime_ns == stamp


def test_corrupt_model_is_reported_then_replaced_by_train(cli_env, small, capsys) -> None:
    argv = ["recommend", "--user", str(pick_user(small)), "-k", "3", "--min-ratings", "1"]
    assert run("train", "--model", "hybrid") == 0
    hybrid_path().write_bytes(b"not a model at all")
    capsys.readouterr()

    assert run(*argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"mfkit: error: {hybrid_path()} is not a readable mfkit model")
    assert "mfkit train" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""

    assert run("train", "--model", "hybrid") == 0
    assert run(*argv) == 0
    assert "Top 3 unseen movies" in capsys.readouterr().out


def test_model_saved_for_other_data_is_refused(cli_env, small, capsys) -> None:
    other = synthetic_movielens(12, 15, 60, seed=1)
    model = HybridModel(SideFeatures.from_movielens(other), dim=2, hidden=(3,), seed=0)
    save_model(model, hybrid_path(), Indexer.from_movielens(other))
    assert run("recommend", "--user", "3") == 1
    err = capsys.readouterr().err
    assert f"{hybrid_path()} was trained on other data (12 users, 15 movies)" in err
    assert "retrain it with `mfkit train --model hybrid --split all --variant fake`" in err
    assert hybrid_path().stat().st_size > 0  # left alone


def test_menu_re_asks_until_the_answers_are_valid(cli_env, small, capsys, monkeypatch) -> None:
    user, occupation = pick_user(small), known_occupations(small)[0]
    answers = ["7", "abc", "2", "abc", "999", str(user)]  # menu choices, then a user id
    answers += ["1", "abc", "0", "24", "X", "M", "astronaut", occupation, "10003"]  # new user
    answers += ["3", "4"]  # RMSE on u1, exit
    stdin = io.StringIO("\n".join(answers) + "\n")
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["menu", "-k", "3", "--min-ratings", "1", "--variant", "fake", "-q"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    expected = [
        "please type 1, 2, 3 or 4, got '7'",
        "please type 1, 2, 3 or 4, got 'abc'",
        "please type a whole number for the user id, got 'abc'",
        "the user id must be from 1 to 30",
        f"Top 3 unseen movies for user {user} (who rated {len(rated_by(small, user))})",
        "please type a whole number for the age, got 'abc'",
        "the age must be from 1 to 120",
        "unknown gender 'X'; choose one of: F, M",
        f"unknown occupation 'astronaut'; choose one of: {', '.join(known_occupations(small))}",
        f"Top 3 movies for a new user (24-year-old M {occupation}, zip 10003)",
        "Test ratings of fake u1 (models trained on u1.base):",
        "mean rating",
    ]
    positions = [out.find(text) for text in expected]
    assert -1 not in positions, [t for t, p in zip(expected, positions, strict=True) if p < 0]
    assert positions == sorted(positions)  # in the order of the answers
    assert out.count("choose 1-4: ") == 6
    assert out.endswith("bye\n")
    assert stdin.read() == ""  # every answer was read
    assert "Traceback" not in out + captured.err


@pytest.mark.parametrize("script", ["", "7\n", "2\n", "2\n4x\n", "1\n30\n", "1\n30\nF\n"])
def test_menu_leaves_quietly_when_input_ends(cli_env, capsys, monkeypatch, script) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["menu", "--variant", "fake", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("bye\n")
    assert "Traceback" not in captured.out + captured.err


# ------------------------------------------------------- chapter 9: recommend --next


def sequence_path() -> Path:
    return cli.model_path("sequence", "fake", "all")


def latest_of(small, user: int) -> tuple[int, str]:
    """The user's latest movie (the synthetic timestamps have no ties) and its title."""
    mine = small.ratings[small.ratings["user_id"] == user].sort_values("timestamp")
    movie = int(mine["movie_id"].iloc[-1])
    return movie, small.movies.set_index("movie_id")["title"][movie]


def next_scores(saved, small, user: int) -> torch.Tensor:
    """The saved sequence model's probabilities of each movie after the user's history."""
    mine = small.ratings[small.ratings["user_id"] == user].sort_values("timestamp")
    rows = saved.indexer.movies.index(mine["movie_id"].to_numpy())
    maxlen = saved.model.config["maxlen"]
    seq = torch.as_tensor(rows[-maxlen:], dtype=torch.long)[None]
    return saved.model.score_next(seq)[0].softmax(-1)


def test_train_sequence_and_all(cli_env, small, capsys) -> None:
    assert run("train", "--model", "sequence", "--epochs", "1") == 0
    out = capsys.readouterr().out
    saved_to = re.escape(str(sequence_path()))
    pattern = rf"^sequence: 1 epochs, final training loss \d+\.\d{{4}}; saved to {saved_to}$"
    assert re.match(pattern, out), out
    saved = load_model(sequence_path())
    assert type(saved.model).__name__ == "SASRec"
    assert saved.model.config == {"n_items": 40, **TINY_RECIPES["sequence"]["model"]}
    assert saved.meta["kind"] == "sequence" and saved.meta["epochs"] == 1
    assert saved.meta["split"] == "all" and saved.meta["variant"] == "fake"

    assert run("train", "--model", "sequence", "--split", "u1", "--epochs", "1") == 0
    assert load_model(cli.model_path("sequence", "fake", "u1")).meta["split"] == "u1"
    capsys.readouterr()

    assert run("train", "--model", "all") == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()] == list(cli.KINDS)
    assert "sequence: 2 epochs" in out and "two-tower: 2 epochs" in out  # the recipes' epochs
    assert sorted(p.name for p in (cli_env / "models").iterdir()) == [
        "demographics-fake-all.pt",
        "hybrid-fake-all.pt",
        "sequence-fake-all.pt",
        "sequence-fake-u1.pt",
        "two-tower-fake-all.pt",
    ]


def test_recommend_next_prints_unwatched_movies_after_the_latest(cli_env, small, capsys) -> None:
    user = pick_user(small)
    argv = ["recommend", "--user", str(user), "--next", "-k", "3"]
    assert run(*argv, "--min-ratings", str(MIN_RATINGS)) == 0
    captured = capsys.readouterr()
    assert "No saved sequence model for fake (all ratings) yet; training one..." in captured.err
    _, title = latest_of(small, user)
    heading = f"Top 3 movies to watch next for user {user} (latest: {title}), sequence model:"
    lines = captured.out.splitlines()
    assert lines[0] == heading
    assert lines[1].split() == ["rank", "movie_id", "title", "probability"]
    rows = [re.match(r"^\s*(\d+)\s+(\d+)\s+(.+?)\s+(0\.\d{4})$", line) for line in lines[2:]]
    assert len(rows) == 3 and all(rows), lines
    assert [int(r.group(1)) for r in rows] == [1, 2, 3]
    ids = [int(r.group(2)) for r in rows]
    allowed = allowed_movies(small) - rated_by(small, user)
    assert set(ids) <= allowed and len(set(ids)) == 3
    probabilities = [float(r.group(4)) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    saved = load_model(sequence_path())
    assert ids == top_ids(next_scores(saved, small, user), saved.indexer, allowed, 3)

    assert run(*argv, "--min-ratings", "0") == 0  # every movie the user has not rated
    out = capsys.readouterr().out
    ids = [int(line.split()[1]) for line in out.splitlines()[2:]]
    assert len(ids) == 3 and not set(ids) & rated_by(small, user)
    unrated = set(small.movies["movie_id"]) - rated_by(small, user)
    assert ids == top_ids(next_scores(saved, small, user), saved.indexer, unrated, 3)


def test_recommend_next_json(cli_env, small, capsys) -> None:
    user = pick_user(small)
    argv = ["recommend", "--user", str(user), "--next", "-k", "4", "--min-ratings", "1"]
    assert run(*argv, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert set(answer) == {"user", "model", "latest", "results"}
    assert answer["user"] == user and answer["model"] == "sequence"
    movie, title = latest_of(small, user)
    assert answer["latest"] == {"movie_id": movie, "title": title}
    results = answer["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    titles = small.movies.set_index("movie_id")["title"]
    for r in results:
        assert set(r) == {"rank", "movie_id", "title", "probability"}
        assert isinstance(r["movie_id"], int) and isinstance(r["probability"], float)
        assert r["movie_id"] not in rated_by(small, user)
        assert r["title"] == titles[r["movie_id"]]
        assert 0 <= r["probability"] <= 1 and r["probability"] == round(r["probability"], 4)


def test_recommend_next_for_an_unknown_user_fails_before_training(cli_env, capsys) -> None:
    assert run("recommend", "--user", "999", "--next") == 1
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("mfkit: error: unknown user id(s): 999")
    assert "known user ids run from 1 to 30" in last and "Traceback" not in err
    assert not cli_env.exists()


def test_recommend_next_for_a_user_without_ratings(cli_env, small, capsys) -> None:
    (user,) = set(small.users["user_id"]) - set(small.ratings["user_id"])
    assert run("recommend", "--user", str(user), "--next") == 1
    err = capsys.readouterr().err
    assert err == (
        f"mfkit: error: user {user} has no ratings in fake: the sequence model needs a "
        "history; try `mfkit recommend --user` without --next\n"
    )
    assert not cli_env.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--user", "3", "--next", "--age", "24"], "--next cannot be combined with --age"),
        (
            ["--next", "--age", "24", "--gender", "M"],
            "--next cannot be combined with --age, --gender",
        ),
        (["--user", "3", "--next", "--zip", "10003"], "--next cannot be combined with --zip"),
        (["--next"], "--next needs --user ID"),
        (["--user", "3", "--next", "-k", "0"], "-k must be at least 1, got 0"),
        (["--user", "3", "--next", "--min-ratings", "-1"], "--min-ratings must be at least 0"),
    ],
)
def test_next_usage_errors_exit_2_before_any_training(cli_env, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        run("recommend", *argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err and "Traceback" not in err
    assert not cli_env.exists()


# ------------------------------------------------------- chapter 11: mfkit similar


@pytest.fixture
def needs_faiss() -> None:
    pytest.importorskip("faiss")


def two_tower_path() -> Path:
    return cli.model_path("two-tower", "fake", "all")


def most_rated(small) -> int:
    return int(small.ratings["movie_id"].value_counts().index[0])


def cosines_to(movie: int) -> dict[int, float]:
    """Exact cosines of every movie's vector (by the saved two-tower model) with ``movie``'s."""
    saved = load_model(two_tower_path())
    with torch.no_grad():
        vectors = torch.nn.functional.normalize(saved.model.movie_vectors(), dim=1)
    cosines = vectors @ vectors[int(saved.indexer.movies.index(movie)[0])]
    ids = saved.indexer.movies.ids_of(np.arange(saved.indexer.n_movies)).tolist()
    return dict(zip(ids, cosines.tolist(), strict=True))


def assert_nearest(ids: list[int], movie: int, allowed: set[int], k: int) -> list[float]:
    """``ids`` are the ``k`` allowed movies nearest to ``movie``, nearest first, as an exact
    search finds them (HNSW is exact on 40 movies; float32 near-ties may swap); returns
    their cosines."""
    cosines = cosines_to(movie)
    assert len(ids) == len(set(ids)) == min(k, len(allowed)) and set(ids) <= allowed
    found = [cosines[m] for m in ids]
    assert all(a >= b - 1e-5 for a, b in zip(found, found[1:], strict=False)), found
    rest = [cosines[m] for m in allowed - set(ids)]
    assert not rest or min(found) >= max(rest) - 1e-5
    return found


def test_train_two_tower(cli_env, small, capsys) -> None:
    assert run("train", "--model", "two-tower", "--epochs", "1") == 0
    out = capsys.readouterr().out
    saved_to = re.escape(str(two_tower_path()))
    pattern = rf"^two-tower: 1 epochs, final training loss \d+\.\d{{4}}; saved to {saved_to}$"
    assert re.match(pattern, out), out
    saved = load_model(two_tower_path())
    assert type(saved.model).__name__ == "TwoTower"
    assert {k: saved.model.config[k] for k in ("dim", "hidden", "normalize")} == {
        "dim": 4,
        "hidden": (8,),
        "normalize": True,
    }
    assert saved.meta["kind"] == "two-tower" and saved.meta["epochs"] == 1
    assert saved.meta["split"] == "all" and saved.meta["variant"] == "fake"
    assert [p.name for p in (cli_env / "models").iterdir()] == ["two-tower-fake-all.pt"]


def test_similar_prints_the_nearest_movies_with_enough_ratings(
    cli_env, small, capsys, needs_faiss
) -> None:
    movie = most_rated(small)
    argv = ["similar", "--movie", str(movie), "-k", "3", "--min-ratings", str(MIN_RATINGS)]
    assert run(*argv) == 0
    captured = capsys.readouterr()
    assert "No saved two-tower model for fake (all ratings) yet; training one..." in captured.err
    titles = small.movies.set_index("movie_id")["title"]
    heading = (
        f"Top 3 movies most similar to {titles[movie]} (movie {movie}), "
        "two-tower movie tower, HNSW index:"
    )
    lines = captured.out.splitlines()
    assert lines[0] == heading
    assert lines[1].split() == ["rank", "movie_id", "title", "similarity"]
    rows = [re.match(r"^\s*(\d+)\s+(\d+)\s+(.+?)\s+(-?[01]\.\d{3})$", line) for line in lines[2:]]
    assert len(rows) == 3 and all(rows), lines
    assert [int(r.group(1)) for r in rows] == [1, 2, 3]
    ids = [int(r.group(2)) for r in rows]
    allowed = allowed_movies(small) - {movie}
    assert movie not in ids and set(ids) <= allowed and len(set(ids)) == 3
    assert [r.group(3) for r in rows] == [titles[m] for m in ids]
    similarities = [float(r.group(4)) for r in rows]
    assert similarities == sorted(similarities, reverse=True)
    cosines = assert_nearest(ids, movie, allowed, 3)
    assert similarities == pytest.approx(cosines, abs=6e-4)

    assert run(*argv) == 0  # the saved model is reused
    again = capsys.readouterr()
    assert again.err == "" and again.out == captured.out


def test_similar_json(cli_env, small, capsys, needs_faiss) -> None:
    movie = most_rated(small)
    argv = ["similar", "--movie", str(movie), "-k", "4", "--min-ratings", "1"]
    assert run(*argv, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert list(answer) == ["movie", "model", "index", "results"]
    titles = small.movies.set_index("movie_id")["title"]
    assert answer["movie"] == {"movie_id": movie, "title": titles[movie]}
    assert answer["model"] == "two-tower" and answer["index"] == "hnsw"
    results = answer["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    for r in results:
        assert set(r) == {"rank", "movie_id", "title", "similarity"}
        assert isinstance(r["movie_id"], int) and isinstance(r["similarity"], float)
        assert r["movie_id"] != movie and r["movie_id"] in allowed_movies(small, 1)
        assert r["title"] == titles[r["movie_id"]]
        assert -1 <= r["similarity"] <= 1 and r["similarity"] == round(r["similarity"], 3)
    similarities = [r["similarity"] for r in results]
    assert similarities == sorted(similarities, reverse=True)


def test_similar_searches_further_until_k_movies_are_allowed(
    cli_env, small, capsys, needs_faiss
) -> None:
    movie = most_rated(small)
    # Only the 16 movies with 8+ ratings count; the 10 nearest movies overall may not do.
    argv = ["similar", "--movie", str(movie), "-k", "10", "--min-ratings", str(MIN_RATINGS)]
    assert run(*argv, "--json") == 0
    ids = [r["movie_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    allowed = allowed_movies(small) - {movie}
    assert_nearest(ids, movie, allowed, 10)

    # More than there are: every other movie, once, nearest first.
    assert run("similar", "--movie", str(movie), "-k", "100", "--min-ratings", "0", "--json") == 0
    ids = [r["movie_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    others = set(small.movies["movie_id"]) - {movie}
    assert len(others) == 39
    assert_nearest(ids, movie, others, 100)  # all 39


def test_similar_takes_a_piece_of_a_title(cli_env, capsys, needs_faiss) -> None:
    assert run("similar", "--movie", "synthetic MOVIE 7 (", "-k", "2", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["movie"]["movie_id"] == 7
    assert 7 not in [r["movie_id"] for r in answer["results"]]


@pytest.mark.parametrize(
    ("movie", "message"),
    [
        ("999", "unknown movie id(s): 999 (1 in all); known movie ids run from 1 to 40"),
        ("0", "unknown movie id(s): 0 (1 in all); known movie ids run from 1 to 40"),
        ("no such film", "no movie title contains 'no such film'"),
        ("synthetic movie 1", "'synthetic movie 1' matches 11 titles: Synthetic Movie 1 (1930)"),
    ],
)
def test_similar_to_an_unknown_movie_fails_before_training(cli_env, capsys, movie, message) -> None:
    assert run("similar", "--movie", movie) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"mfkit: error: {message}"), captured.err
    assert len(captured.err.splitlines()) == 1 and captured.out == ""
    assert not cli_env.exists()  # no model was trained or saved


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--movie", "3", "-k", "0"], "-k must be at least 1, got 0"),
        (["--movie", "3", "-k", "-5"], "-k must be at least 1, got -5"),
        (["--movie", "3", "--min-ratings", "-1"], "--min-ratings must be at least 0"),
        (["--movie", "3", "-k", "two"], "argument -k: invalid int value: 'two'"),
        (["--movie", " "], "--movie needs a movie id or a piece of a title"),
        ([], "the following arguments are required: --movie"),
    ],
)
def test_similar_usage_errors_exit_2_before_any_training(cli_env, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        run("similar", *argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: mfkit similar" in err and message in err and "Traceback" not in err
    assert not cli_env.exists()


# ---------------------------------------------------------------- your own data
def own_clicks(folder: Path, with_ratings: bool = False) -> Path:
    """A small click log with another library's column names and text ids."""
    rng = np.random.default_rng(0)
    rows = {
        "customer": [f"c{u}" for u in rng.integers(0, 12, 200)],
        "sku": [f"p{i}" for i in rng.integers(0, 15, 200)],
        "when": rng.integers(0, 10**6, 200),
    }
    if with_ratings:
        rows["stars"] = rng.integers(1, 6, 200)
    path = folder / "clicks.csv"
    pd.DataFrame(rows).drop_duplicates(["customer", "sku"]).to_csv(path, index=False)
    return path


OWN = ["--user-col", "customer", "--item-col", "sku", "--time-col", "when"]


def test_train_and_recommend_on_any_csv(cli_env, tmp_path, capsys) -> None:
    path = own_clicks(tmp_path)
    assert main(["train", "--interactions", str(path), *OWN, "--epochs", "2", "-q"]) == 0
    assert "2 epochs, final training loss" in capsys.readouterr().out
    assert (
        main(
            [
                "recommend",
                "--interactions",
                str(path),
                *OWN,
                "--user",
                "c3",
                "-k",
                "4",
                "--json",
                "-q",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    clicks = pd.read_csv(path)
    seen = set(clicks.loc[clicks["customer"] == "c3", "sku"])
    items = [row["sku"] for row in result["results"]]
    assert result["user"] == "c3" and len(items) == min(4, 15 - len(seen))
    assert not seen & set(items)  # nothing the customer already has
    assert [row["rank"] for row in result["results"]] == list(range(1, len(items) + 1))


def test_own_ratings_train_a_rating_model(cli_env, tmp_path, capsys) -> None:
    path = own_clicks(tmp_path, with_ratings=True)
    argv = ["train", "--interactions", str(path), *OWN, "--rating-col", "stars", "-q"]
    assert main([*argv, "--epochs", "3"]) == 0
    assert "best validation RMSE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--user-col", "userID"], "lacks column(s) ['userID']"),
        (["--user", "c99"], "unknown user id(s): c99"),
    ],
)
def test_own_data_errors_exit_1_without_a_traceback(
    cli_env, tmp_path, capsys, extra, message
) -> None:
    path = own_clicks(tmp_path)
    argv = ["recommend", "--interactions", str(path), *OWN, "--user", "c1", *extra, "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mfkit: error: ") and message in err and "Traceback" not in err


def test_own_data_usage_errors_exit_2(cli_env, tmp_path, capsys) -> None:
    path = own_clicks(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["recommend", "--interactions", str(path), *OWN, "--user", "c1", "--age", "30"])
    assert info.value.code == 2
    assert "drop --age" in capsys.readouterr().err
