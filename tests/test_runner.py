"""The runner: records, failures in plugins, timeouts, reruns, threads, Hydra sweeps."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchpq.store import records
from benchpq.sweep import runner

from compose import REPO, TEST_PLUGINS, compose_config

SMALL = ["dataset=synthetic", "++dataset.n_learn=3000", "++dataset.n_base=3000",
         "++dataset.n_query=20"]


def run_cli(args, tmp_path, timeout=600):
    env = dict(os.environ, BENCHPQ_CACHE=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(TEST_PLUGINS),
                                                        os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "benchpq", *args,
                           f"results_dir={tmp_path / 'results'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def execute(tmp_path, *overrides):
    """The record of a run with one search setting."""
    config = compose_config([*SMALL, f"results_dir={tmp_path / 'results'}",
                             f"cache_dir={tmp_path / 'cache'}", *overrides])
    (record,) = runner.execute(config)
    return record


def test_plugin_failures_are_recorded_and_the_sweep_completes(tmp_path):
    """A raise, an abort, a segfault and a timeout each become a record; faiss_pq still runs.

    Runs through the joblib launcher, two jobs at a time.
    """
    proc = run_cli(["-m", f"hydra.searchpath=[file://{TEST_PLUGINS / 'conf'}]",
                    "plugins=[failing_plugins]", "timeout_s=10",
                    "algorithm=test_raises,test_aborts,test_segfaults,test_sleeps,faiss_pq",
                    "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "name=failures", *SMALL],
                   tmp_path)
    # the sweep goes on past every failure, then says so in its exit status
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "4 of 5 runs failed (2 crashed, 1 error, 1 timeout)" in proc.stderr, proc.stderr[-3000:]
    found = {r["algorithm"]: r for _, r in
             records.iter_records(tmp_path / "results" / "failures")}
    assert set(found) == {"test_raises", "test_aborts", "test_segfaults", "test_sleeps",
                          "faiss_pq"}
    assert found["test_raises"]["status"] == "error"
    assert found["test_raises"]["message"] == "RuntimeError: boom from plugin"
    assert "failing_plugins.py" in found["test_raises"]["traceback"]
    assert found["test_aborts"]["status"] == "crashed"
    assert "SIGABRT" in found["test_aborts"]["message"]
    assert found["test_segfaults"]["status"] == "crashed"
    assert "SIGSEGV" in found["test_segfaults"]["message"]
    # the interpreter's fatal-error line leads, however long the log's tail is
    assert "Fatal Python error: Segmentation fault" in found["test_segfaults"]["message"]
    assert found["test_sleeps"]["status"] == "timeout"
    assert "timeout_s=10" in found["test_sleeps"]["message"]
    assert found["faiss_pq"]["status"] == "ok"
    assert 0.2 < found["faiss_pq"]["metrics"]["recall@100"] <= 1.0
    # the end-of-sweep table shows the good run and names every failure
    assert "faiss_pq" in proc.stdout
    for name in ("test_raises", "test_aborts", "test_segfaults", "test_sleeps"):
        assert name in proc.stdout


def test_record_holds_config_metrics_and_provenance(tmp_path):
    record = execute(tmp_path, "algorithm=faiss_pq", "threads=2")
    assert record["status"] == "ok", record["message"]
    path = records.record_path(tmp_path / "results" / "search-synthetic", record["run_id"])
    assert records.read_record(path) == json.loads(json.dumps(record))
    m = record["metrics"]
    for key in ("recall@1", "recall@10", "recall@100", "10-recall@10", "mse", "train_s",
                "add_s", "search_s", "encode_s", "qps", "peak_rss_bytes"):
        assert key in m, key
    assert m["recall@1"] <= m["recall@10"] <= m["recall@100"] <= 1.0
    assert m["qps"] == pytest.approx(20 / m["search_s"])
    assert m["code_bits"] == 64 and m["codes_bytes"] == 3000 * 8
    assert m["model_bytes"] == 8 * 256 * 16 * 4
    assert m["peak_rss_bytes"] >= m["train_peak_rss_bytes"] > 10 * 2**20
    assert record["config"]["algorithm"] == {"name": "faiss_pq", "M": 8, "nbits": 8, "seed": None}
    assert record["params"] == {"M": 8, "nbits": 8, "seed": None}
    prov = record["provenance"]
    assert prov["packages"]["faiss-cpu"] and prov["packages"]["numpy"] == np.__version__
    assert prov["cpu_model"] and prov["started_at"] and prov["seed"] == 0
    assert record["threads"] == 2 and prov["thread_env"]["OMP_NUM_THREADS"] == "2"
    assert prov["faiss_omp_max_threads"] == 2


def test_rerun_skips_recorded_runs_unless_forced(tmp_path):
    first = execute(tmp_path, "algorithm=faiss_pq")
    path = records.record_path(tmp_path / "results" / "search-synthetic", first["run_id"])
    stamp = path.stat().st_mtime_ns
    again = execute(tmp_path, "algorithm=faiss_pq")
    assert again.get("skipped") and again["run_id"] == first["run_id"]
    assert path.stat().st_mtime_ns == stamp
    forced = execute(tmp_path, "algorithm=faiss_pq", "force=true")
    assert not forced.get("skipped") and forced["run_id"] == first["run_id"]
    assert path.stat().st_mtime_ns != stamp
    other = execute(tmp_path, "algorithm=faiss_pq", "algorithm.M=4")
    assert other["run_id"] != first["run_id"]


@pytest.mark.parametrize("overrides, message", [
    (["algorithm=faiss_pq", "algorithm.M=7"], "M=7 does not divide the dimension D=128"),
    (["algorithm=nanopq_pq", "++dataset.n_learn=100"],
     r"more codewords (256) than training vectors (100)"),
    (["algorithm=faiss_pq", "task.k=5000"], "k=5000 is larger than the database (3000 vectors)"),
    (["algorithm=faiss_kmeans"], "cannot run task 'search': it needs a searcher"),
])
def test_bad_parameters_are_recorded_with_their_message(tmp_path, overrides, message):
    record = execute(tmp_path, *overrides)
    assert record["status"] == "error"
    assert message in record["message"]


@pytest.fixture
def vecs_files(tmp_path):
    """base.fvecs with a NaN, a truncated query file, a 64-d query file, good files."""
    from benchpq.datasets import write_vecs
    rng = np.random.default_rng(0)
    good = rng.random((1000, 32), dtype=np.float32)
    write_vecs(tmp_path / "base.fvecs", good)
    write_vecs(tmp_path / "query.fvecs", good[:10])
    write_vecs(tmp_path / "query64.fvecs", rng.random((10, 64), dtype=np.float32))
    rows = np.hstack([np.full((1000, 1), 32, np.int32).view(np.float32), good])
    rows[123, 5] = np.nan  # write_vecs refuses NaN, so the file is made by hand
    rows.tofile(tmp_path / "nan.fvecs")
    raw = (tmp_path / "query.fvecs").read_bytes()
    (tmp_path / "truncated.fvecs").write_bytes(raw[:-7])
    return tmp_path


@pytest.mark.parametrize("base, query, message", [
    ("nan.fvecs", "query.fvecs", "contains NaN (first in row 123)"),
    ("base.fvecs", "truncated.fvecs", "truncated.fvecs"),
    ("base.fvecs", "query64.fvecs", "dimension mismatch"),
    ("missing.fvecs", "query.fvecs", "missing.fvecs"),
])
def test_bad_data_is_recorded_with_its_message(tmp_path, vecs_files, base, query, message):
    record = execute(tmp_path, "algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4",
                     "dataset=files", f"data_dir={vecs_files}", f"dataset.base={base}",
                     f"dataset.query={query}", "~dataset.n_learn", "~dataset.n_base",
                     "~dataset.n_query")
    assert record["status"] == "error"
    assert message in record["message"]


def test_unknown_algorithm_dataset_or_option_fail_at_composition():
    from hydra.errors import ConfigCompositionException, MissingConfigException
    with pytest.raises(MissingConfigException, match="(?s)dataset/nope.*siftsmall"):
        compose_config(["dataset=nope"])
    with pytest.raises(MissingConfigException, match="(?s)algorithm/nope.*faiss_pq"):
        compose_config(["algorithm=nope"])
    with pytest.raises(ConfigCompositionException, match="Could not override 'algorithm.Mx'"):
        compose_config(["algorithm.Mx=3"])


def test_a_dataset_loader_is_one_module_and_one_yaml(tmp_path):
    """A loader added from outside the core: one module registering it
    (tests/plugins/grid_dataset.py) and one YAML naming it (conf/dataset/test_grid.yaml on
    the search path); the command runs on it like on a shipped dataset."""
    proc = run_cli([f"hydra.searchpath=[file://{TEST_PLUGINS / 'conf'}]",
                    "plugins=[grid_dataset]", "dataset=test_grid", "algorithm=faiss_pq",
                    "algorithm.M=2", "task.k=10", "task.recall_at=[1,10]", "name=grid"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ((_, record),) = records.iter_records(tmp_path / "results" / "grid")
    assert record["status"] == "ok" and record["dataset"] == "test_grid"
    assert record["config"]["dataset"]["side"] == 20
    assert 0 < record["metrics"]["recall@1"] <= record["metrics"]["recall@10"] <= 1
