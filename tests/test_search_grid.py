"""Search-time grids and the trained-model cache: one build, many settings, no retraining.

A counting plugin (tests/plugins/counting_plugins.py) logs each fit to a file, so the
tests can tell a trained model from a cached one across the child processes.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchpq.checks import InputError
from benchpq.measure import search_grid
from benchpq.store.model_cache import ARRAYS_FILE, STATE_FILE
from benchpq.sweep import runner

from compose import REPO, TEST_PLUGINS, compose_config

SMALL = ["dataset=synthetic", "++dataset.n_learn=2000", "++dataset.n_base=2000",
         "++dataset.n_query=30"]


@pytest.fixture(autouse=True)
def _plugins_on_path(test_plugins, monkeypatch):
    """Child processes import the test plugins from tests/plugins."""
    monkeypatch.delenv("HOLD_STORE", raising=False)


# A small LOPQ whose training takes a fraction of a second (what it searches is under
# test here, not how well it trained)
QUICK_LOPQ = ["algorithm.V=8", "algorithm.M=4", "algorithm.Ks=16", "algorithm.coarse_iter=8",
              "algorithm.iter=8"]


def config_for(tmp_path, algorithm=None, *overrides):
    config = compose_config([*SMALL, "algorithm=faiss_pq", f"results_dir={tmp_path / 'results'}",
                             f"cache_dir={tmp_path / 'cache'}", *overrides])
    if algorithm is not None:
        config["algorithm"] = algorithm
        config["plugins"] = ["counting_plugins"]
    return config


def counting(tmp_path, **extra):
    return {"name": "test_counting", "log": str(tmp_path / "fits.log"), **extra}


def fits(tmp_path) -> int:
    path = tmp_path / "fits.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


# -- grids ---------------------------------------------------------------------------------

def test_expand_one_parameter_keeps_the_order_of_its_values():
    assert search_grid.expand({"nprobe": [16, 1, 4]}) == [{"nprobe": 16}, {"nprobe": 1},
                                                          {"nprobe": 4}]
    assert search_grid.expand({"nprobe": 8}) == [{"nprobe": 8}]
    assert search_grid.expand(None) == [{}] == search_grid.expand({})


def test_expand_two_parameters_is_their_product_and_a_list_concatenates():
    assert search_grid.expand({"quota": [10, 20], "max_cells": [None, 4]}) == [
        {"max_cells": None, "quota": 10}, {"max_cells": None, "quota": 20},
        {"max_cells": 4, "quota": 10}, {"max_cells": 4, "quota": 20}]
    paired = [{"max_codes": 100, "nprobe": 16}, {"max_codes": 1000, "nprobe": [64, 64]}]
    assert search_grid.expand(paired) == [{"max_codes": 100, "nprobe": 16},
                                         {"max_codes": 1000, "nprobe": 64}]


@pytest.mark.parametrize("grid, message", [
    ({"nprobe": []}, "algorithm.search.nprobe is an empty list"),
    ({"nprobe": {"a": 1}}, "must be a value or a list of values"),
    ([1, 2], "as a list must hold one or more mappings"),
    ("nprobe=4", "must be a mapping"),
])
def test_malformed_grids_are_named(grid, message):
    with pytest.raises(InputError, match=message):
        search_grid.expand(grid)


def test_grid_of_one_parameter_gives_one_record_per_setting_from_one_build(tmp_path):
    config = config_for(tmp_path, counting(tmp_path, search={"budget": [100, 500, 0]}))
    records = runner.execute(config)
    assert [r["status"] for r in records] == ["ok"] * 3, [r["message"] for r in records]
    assert fits(tmp_path) == 1
    assert [r["search"] for r in records] == [{"budget": 100}, {"budget": 500}, {"budget": 0}]
    assert [r["params"]["budget"] for r in records] == [100, 500, 0]
    assert len({r["run_id"] for r in records}) == 3
    assert len({r["build_id"] for r in records}) == 1
    recall = [r["metrics"]["recall@10"] for r in records]
    assert recall[0] < recall[1] < recall[2] == 1.0  # exact search over all of base
    train = {r["metrics"]["train_s"] for r in records}
    assert len(train) == 1  # every setting carries the one build's metrics
    for r in records:
        m = r["metrics"]
        assert m["search_repeats"] == 3 and m["search_s"] <= m["search_s_median"]
        assert m["qps"] == pytest.approx(30 / m["search_s"])


def test_grid_of_two_parameters_on_lopq(tmp_path):
    config = config_for(tmp_path, None, "algorithm=lopq", *QUICK_LOPQ,
                        "algorithm.search.quota=[50,400]",
                        "algorithm.search.max_cells=[null,2]", "algorithm.search.exact_quota=true")
    records = runner.execute(config)
    assert [r["status"] for r in records] == ["ok"] * 4, [r["message"] for r in records]
    cand = {(r["search"]["quota"], r["search"]["max_cells"]): r["metrics"]["mean_candidates"]
            for r in records}
    assert cand[(50, None)] == 50 and cand[(400, None)] == 400  # exact quota, pinned
    assert cand[(400, 2)] < 400 and cand[(50, 2)] <= 50
    assert len({r["build_id"] for r in records}) == 1


@pytest.mark.parametrize("name, overrides, grid", [
    ("lopq", QUICK_LOPQ, {"quota": [60, 300], "exact_quota": True}),
    ("faiss_ivfpq", ["algorithm.nlist=16", "algorithm.M=4", "algorithm.nbits=6"],
     {"nprobe": [1, 4]}),
])
def test_a_grid_equals_runs_of_one_setting_each(tmp_path, name, overrides, grid):
    """At a fixed seed, every setting of a grid measures what its own run measures."""
    def config(folder, search):
        out = config_for(folder, None, f"algorithm={name}", *overrides, "cache_models=false")
        out["algorithm"]["search"] = search
        return out

    together = runner.execute(config(tmp_path / "grid", grid))
    assert [r["status"] for r in together] == ["ok"] * 2
    for record in together:
        (alone,) = runner.execute(config(tmp_path / "alone", dict(record["search"])))
        assert alone["run_id"] == record["run_id"]
        for metric in ("recall@1", "recall@10", "recall@100", "10-recall@10", "mean_candidates",
                       "mse"):
            assert alone["metrics"][metric] == record["metrics"][metric], metric


def test_unknown_search_parameter_is_an_error_before_training(tmp_path):
    config = config_for(tmp_path, counting(tmp_path, search={"budget": 10, "nprobe": [1, 2]}))
    records = runner.execute(config)
    assert {r["status"] for r in records} == {"error"}
    assert "unknown search parameter nprobe; it accepts budget" in records[0]["message"]
    assert fits(tmp_path) == 0


def test_bad_search_value_is_an_error_before_training(tmp_path):
    config = config_for(tmp_path, counting(tmp_path, search={"budget": [10, -1]}))
    records = runner.execute(config)
    assert {r["status"] for r in records} == {"error"}
    assert "budget: must be a whole number >= 0, got -1" in records[1]["message"]
    assert fits(tmp_path) == 0


def test_plugin_without_search_parameters_given_a_grid(tmp_path):
    (record,) = runner.execute(config_for(tmp_path, None, "algorithm=faiss_pq",
                                          "+algorithm.search.nprobe=4"))
    assert record["status"] == "error"
    assert ("'faiss_pq': unknown search parameter nprobe; it has no search-time parameters"
            in record["message"])


def test_a_search_parameter_set_twice_is_refused(tmp_path):
    (record,) = runner.execute(config_for(tmp_path, None, "experiment=none",
                                          "algorithm=faiss_ivfpq", "+algorithm.nprobe=4"))
    assert record["status"] == "error"
    assert "nprobe set both as an option and in algorithm.search" in record["message"]


def test_non_deterministic_search_is_an_error(tmp_path):
    (record,) = runner.execute(config_for(tmp_path, counting(tmp_path, shuffle=True)))
    assert record["status"] == "error"
    assert "different ids on repeated searches" in record["message"]


def test_cluster_task_refuses_a_search_grid(tmp_path):
    (record,) = runner.execute(config_for(tmp_path, None, "algorithm=kmeans", "task=cluster",
                                          "task.n_clusters=4", "+algorithm.search.nprobe=4"))
    assert record["status"] == "error"


# -- the trained-model cache ---------------------------------------------------------------

def test_new_search_values_reuse_the_cached_build(tmp_path):
    first = runner.execute(config_for(tmp_path, counting(tmp_path, search={"budget": [100, 0]})))
    again = runner.execute(config_for(tmp_path, counting(
        tmp_path, search={"budget": [100, 0, 300, 700]}), "task.k=50", "task.recall_at=[1,10]"))
    assert fits(tmp_path) == 1
    assert all(r["status"] == "ok" and r["build_cached"] for r in again)
    assert {r["metrics"]["train_s"] for r in again} == {first[0]["metrics"]["train_s"]}
    assert {r["build_id"] for r in again} == {first[0]["build_id"]}
    # the same sweep again skips every recorded setting
    third = runner.execute(config_for(tmp_path, counting(tmp_path, search={"budget": [100, 0]})))
    assert all(r.get("skipped") for r in third)


def test_cache_misses_when_the_build_changes(tmp_path):
    """One build, then each change on its own (a constructor option, the seed, threads, the
    data's content, the cache turned off, force) trains again; a new k alone does not."""
    import numpy as np
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for part, n in (("base", 1000), ("query", 20)):
        np.save(data / f"{part}.npy", rng.normal(size=(n, 16)).astype(np.float32))

    def run(k, *overrides, **options):
        """A run whose search differs by k (a new record), whose build by the rest."""
        config = compose_config(["dataset=files", f"dataset.base={data / 'base.npy'}",
                                 f"dataset.query={data / 'query.npy'}", "dataset.name=tiny",
                                 f"results_dir={tmp_path / 'results'}",
                                 f"cache_dir={tmp_path / 'cache'}", f"task.k={k}",
                                 "task.recall_at=[1,10]", *overrides])
        config["algorithm"] = counting(tmp_path, **options)
        config["plugins"] = ["counting_plugins"]
        (record,) = runner.execute(config)
        assert record["status"] == "ok", record["message"]
        return record

    def change_content():
        base = np.load(data / "base.npy")
        base[500, 3] += 1.0  # same file, size and config: only the content differs
        np.save(data / "base.npy", base)
        return run(17)

    assert not run(10)["build_cached"]
    assert run(11)["build_cached"] and fits(tmp_path) == 1
    changes = {"option": lambda: run(12, budget=500),  # a constructor option, not a setting
               "seed": lambda: run(13, "seed=3"),
               "threads": lambda: run(14, "threads=2"),
               "cache off": lambda: run(15, "cache_models=false"),
               "force": lambda: run(11, "force=true"),
               "dataset content": change_content}  # last: it changes the file for good
    for n, (change, rerun) in enumerate(changes.items(), start=2):
        assert not rerun()["build_cached"], change
        assert fits(tmp_path) == n, change


def _entries(cache: Path) -> list[Path]:
    models = cache / "models"
    return [p for p in models.iterdir() if not p.name.startswith(".")] if models.is_dir() else []


def test_corrupt_cached_model_is_rebuilt_with_a_warning(tmp_path):
    config = config_for(tmp_path, counting(tmp_path))
    runner.execute(config)
    (entry,) = _entries(tmp_path / "cache")
    (entry / ARRAYS_FILE).write_bytes(b"not NPY records")
    (record,) = runner.execute({**config, "force": False,
                                "task": {**config["task"], "k": 20, "recall_at": [1, 10]}})
    assert record["status"] == "ok" and not record["build_cached"]
    assert fits(tmp_path) == 2
    assert "since it was sealed" in Path(record["log"]).read_text()
    (entry,) = _entries(tmp_path / "cache")
    assert (entry / STATE_FILE).is_file() and (entry / ARRAYS_FILE).is_file()  # stored again


def test_a_run_killed_while_storing_its_model_leaves_nothing_to_load(tmp_path):
    hold = tmp_path / "holding"
    env = dict(os.environ, HOLD_STORE=str(hold))
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchpq", f"hydra.searchpath=[file://{TEST_PLUGINS / 'conf'}]",
         "plugins=[counting_plugins]", *SMALL, "algorithm=test_counting",
         f"algorithm.log={tmp_path / 'fits.log'}", f"results_dir={tmp_path / 'results'}",
         f"cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not (hold.exists() and hold.read_text()):
            assert time.time() < deadline and proc.poll() is None, "the run never stored its model"
            time.sleep(0.2)
        os.kill(int(hold.read_text()), signal.SIGKILL)  # the run, while it writes its model
        assert proc.wait(timeout=120) == 1  # a crashed run: the sweep says so
    finally:
        proc.kill()
    assert fits(tmp_path) == 1
    models = tmp_path / "cache" / "models"
    assert _entries(tmp_path / "cache") == []  # a temporary folder, never loaded
    assert [p for p in models.iterdir() if p.is_dir()], "the killed store left its folder"
    (record,) = runner.execute(config_for(tmp_path, counting(tmp_path)))
    assert record["status"] == "ok" and not record["build_cached"]
    assert fits(tmp_path) == 2
    (entry,) = _entries(tmp_path / "cache")  # the next store removed the leftover
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == [entry.name]
