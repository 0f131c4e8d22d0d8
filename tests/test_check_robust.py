import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "notebooks" / "check_robust.py"


def load():
    spec = importlib.util.spec_from_file_location("check_robust", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_names_survive_the_comma_separated_option():
    runs = load().RUNS
    assert all("," not in name for name in runs)
    assert [name.strip() for name in ",".join(runs).split(",")] == list(runs)
