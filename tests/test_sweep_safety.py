"""Sweeps that fail loudly and never orphan work.

Each test here reproduces a defect of an earlier runner and fails on it: runs that
outlive a killed sweep, sweeps that share a folder, records not tied to their data,
plugins that overwrite measured metrics, stored codes that crash C++, a damaged
cached library, failing sweeps that exit 0, option errors that name nothing.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from benchpq.checks import InputError
from benchpq.datasets import write_ann_hdf5, write_vecs
from benchpq.store import records
from benchpq.sweep import runner
from benchpq.sweep.options import check_run_options

from compose import REPO, TEST_PLUGINS, compose_config

SMALL = ["dataset=synthetic", "++dataset.n_learn=2000", "++dataset.n_base=2000",
         "++dataset.n_query=20"]
PLUGIN_CONF = f"hydra.searchpath=[file://{TEST_PLUGINS / 'conf'}]"


pytestmark = pytest.mark.usefixtures("test_plugins")


def cli(tmp_path, *args, **popen):
    """Start ``benchpq`` on the small set with the test plugins; results in tmp_path."""
    return subprocess.Popen([sys.executable, "-m", "benchpq", PLUGIN_CONF,
                             "plugins=[failing_plugins,counting_plugins]", *SMALL, *args,
                             f"results_dir={tmp_path / 'results'}",
                             f"cache_dir={tmp_path / 'cache'}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def run_cli(tmp_path, *args, timeout=600):
    proc = cli(tmp_path, *args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def execute(tmp_path, *overrides, algorithm=None):
    config = compose_config([*SMALL, "algorithm=faiss_pq", f"results_dir={tmp_path / 'results'}",
                             f"cache_dir={tmp_path / 'cache'}", *overrides])
    if algorithm is not None:
        config["algorithm"] = algorithm
        config["plugins"] = ["counting_plugins"]
    return runner.execute(config)


def command_line(process: psutil.Process) -> str:
    """The process's command line; "" once it has exited (short-lived helpers such as the
    compiler's version probe come and go while the tests look at the process tree)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, a zombie, or not ours to read
        return ""


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for_child_run(parent: psutil.Process, timeout=180) -> list[psutil.Process]:
    """The descendants of ``parent`` once a run's child process (benchpq.sweep.child) exists."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        family = parent.children(recursive=True)
        if any("benchpq.sweep.child" in command_line(p) for p in family):
            time.sleep(1.0)  # let it start its work
            return parent.children(recursive=True)
        time.sleep(0.2)
    raise AssertionError("no run started")


def survivors(processes, within=15.0) -> list:
    deadline = time.time() + within
    alive = list(processes)
    while alive and time.time() < deadline:
        alive = [p for p in alive if running(p)]
        time.sleep(0.2)
    return alive


# -- runs die with the sweep ---------------------------------------------------------------

@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigkill_of_the_sweep_leaves_no_run_or_worker_behind(tmp_path, launcher):
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    proc = cli(tmp_path, "algorithm=test_sleeps,test_sleeps", "seed=0,1", *extra,
               start_new_session=True)
    try:
        family = wait_for_child_run(psutil.Process(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert survivors(family) == []
    finally:
        for p in psutil.Process().children(recursive=True):
            if "benchpq" in command_line(p):
                with contextlib.suppress(psutil.Error):
                    p.kill()


@pytest.mark.parametrize("signum, launcher", [(signal.SIGTERM, "basic"), (signal.SIGINT, "basic"),
                                             (signal.SIGTERM, "joblib")])
def test_sigterm_and_sigint_record_the_run_as_interrupted(tmp_path, signum, launcher):
    """Under joblib the signal reaches only the sweep's process; its workers see it gone and
    record the runs they were waiting for."""
    # under joblib, two runs keep both workers busy (an idle loky worker lingers on its own)
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"] \
        if launcher == "joblib" else []
    proc = cli(tmp_path, "algorithm=test_sleeps", *extra, start_new_session=True)
    family = wait_for_child_run(psutil.Process(proc.pid))
    os.kill(proc.pid, signum)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert survivors(family) == []
    found = [r for _, r in records.iter_records(tmp_path / "results" / "search-synthetic")]
    assert found and len(found) <= (2 if launcher == "joblib" else 1)
    for record in found:
        assert record["status"] == "interrupted"
        assert signal.Signals(signum).name in record["message"]
    assert not any((tmp_path / "results" / "search-synthetic" / ".jobs").iterdir())


def test_an_interrupted_sweep_is_completed_by_its_rerun(tmp_path):
    """Seed 0 is recorded, seed 1 stalls and is interrupted, seed 2 never starts; the rerun
    keeps seed 0's record and makes the other two."""
    hold = tmp_path / "holding"
    args = ["algorithm=test_counting", f"algorithm.log={tmp_path / 'fits.log'}", "seed=0,1,2"]
    proc = cli(tmp_path, *args, env=dict(os.environ, HOLD_FIT=str(hold), HOLD_FIT_SEED="1"))
    deadline = time.time() + 300
    while not (hold.exists() and hold.read_text()):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    sweep = tmp_path / "results" / "search-synthetic"
    found = {r["seed"]: r for _, r in records.iter_records(sweep)}
    assert {s: r["status"] for s, r in found.items()} == {0: "ok", 1: "interrupted"}
    first = found[0]["wall_s"]
    code, _, err = run_cli(tmp_path, *args)
    assert code == 0, err[-2000:]
    found = {r["seed"]: r for _, r in records.iter_records(sweep)}
    assert {s: r["status"] for s, r in found.items()} == {0: "ok", 1: "ok", 2: "ok"}
    assert found[0]["wall_s"] == first  # kept, not made again


# -- each sweep its own folder and summary -------------------------------------------------

def test_two_sweeps_started_in_the_same_second_keep_their_own_summaries(tmp_path):
    log = f"+algorithm.log={tmp_path / 'fits.log'}"
    a = cli(tmp_path, "algorithm=test_counting", log, "name=same")
    b = cli(tmp_path, "algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4", "name=same")
    out_a, err_a = a.communicate(timeout=600)
    out_b, err_b = b.communicate(timeout=600)
    assert a.returncode == 0 and b.returncode == 0, (err_a[-2000:], err_b[-2000:])
    assert "test_counting" in out_a and "faiss_pq" not in out_a
    assert "faiss_pq" in out_b and "test_counting" not in out_b
    folders = list((tmp_path / "results" / "same" / "hydra").iterdir())
    assert len(folders) == 2


# -- records tied to their data ------------------------------------------------------------

def _files_dataset(folder: Path, base, query, groundtruth=None):
    write_vecs(folder / "base.fvecs", base)
    write_vecs(folder / "query.fvecs", query)
    out = ["dataset=files", f"dataset.base={folder / 'base.fvecs'}",
           f"dataset.query={folder / 'query.fvecs'}", "dataset.name=mine",
           "++dataset.n_learn=null", "++dataset.n_base=null", "++dataset.n_query=null"]
    if groundtruth is not None:
        write_vecs(folder / "gt.ivecs", groundtruth.astype(np.int32))
        out.append(f"dataset.groundtruth={folder / 'gt.ivecs'}")
    return out


def test_changed_data_is_a_new_run_not_already_recorded(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1500, 16)).astype(np.float32)
    query = rng.normal(size=(20, 16)).astype(np.float32)
    files = _files_dataset(tmp_path, base, query)
    algo = ["algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4"]
    (first,) = execute(tmp_path, *algo, *files)
    (again,) = execute(tmp_path, *algo, *files)
    assert again.get("skipped") and again["run_id"] == first["run_id"]
    base[7] += 1.0
    write_vecs(tmp_path / "base.fvecs", base)  # same name, size and config
    (changed,) = execute(tmp_path, *algo, *files)
    assert not changed.get("skipped") and changed["run_id"] != first["run_id"]
    assert changed["config"]["dataset_fingerprint"] != first["config"]["dataset_fingerprint"]


def test_a_shuffled_ground_truth_is_an_error_not_a_low_recall(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.normal(size=(1500, 16)).astype(np.float32)
    query = rng.normal(size=(20, 16)).astype(np.float32)
    d = ((query[:, None] - base[None]) ** 2).sum(-1)
    truth = np.argsort(d, axis=1, kind="stable")[:, :100]
    algo = ["algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4"]
    (good,) = execute(tmp_path / "good", *algo, *_files_dataset(tmp_path, base, query, truth))
    assert good["status"] == "ok" and good["metrics"]["recall@100"] > 0.5
    shuffled = truth[rng.permutation(len(truth))]
    (bad,) = execute(tmp_path / "bad", *algo, *_files_dataset(tmp_path, base, query, shuffled))
    assert bad["status"] == "error"
    assert "does not match these base and query vectors" in bad["message"]


def test_two_ann_hdf5_files_are_two_datasets(tmp_path):
    from benchpq.report import load_records
    rng = np.random.default_rng(3)
    for name, n in (("first-16-euclidean", 1000), ("second-16-euclidean", 1500)):
        write_ann_hdf5(tmp_path / f"{name}.hdf5", rng.normal(size=(n, 16)).astype(np.float32),
                       rng.normal(size=(10, 16)).astype(np.float32))
        config = compose_config(["dataset=ann_hdf5", f"dataset.path={tmp_path / name}.hdf5",
                                 "algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4",
                                 "name=ann", f"results_dir={tmp_path / 'results'}",
                                 f"cache_dir={tmp_path / 'cache'}"])
        (record,) = runner.execute(config)
        assert record["status"] == "ok", record["message"]
    df = load_records(tmp_path / "results" / "ann")
    assert sorted(df["dataset"]) == ["first-16-euclidean", "second-16-euclidean"]
    assert sorted(df["n_base"]) == [1000, 1500]


# -- metrics a plugin may not write --------------------------------------------------------

@pytest.mark.parametrize("kind, message", [
    ("overwrite", "may not overwrite the metrics measured by the task (recall@1)"),
    ("object", "value of 'sizes' is not a number, string, bool or list of them"),
])
def test_extra_metrics_cannot_overwrite_or_break_a_record(tmp_path, kind, message):
    (record,) = execute(tmp_path, algorithm={"name": "test_bad_metrics", "kind": kind,
                                             "log": str(tmp_path / "fits.log")})
    assert record["status"] == "error"
    assert message in record["message"]
    assert record["metrics"]["recall@1"] == pytest.approx(1.0)  # measured: exact search
    assert "train_s" in record["metrics"] and "search_s" in record["metrics"]


def test_nan_is_written_as_null(tmp_path):
    (record,) = execute(tmp_path, algorithm={"name": "test_bad_metrics", "kind": "nan",
                                             "log": str(tmp_path / "fits.log")})
    assert record["status"] == "ok"
    path = records.record_path(tmp_path / "results" / "search-synthetic", record["run_id"])
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["metrics"]["spread"] is None


# -- C++ never sees an unchecked stored code -----------------------------------------------

def test_out_of_range_stored_lopq_codes_are_refused(clustered):
    import pickle

    from benchpq.algorithms.own.lopq import LOPQ
    x = clustered[:3000]
    lopq = LOPQ(V=8, M=4, Ks=16, seed=0).fit(x)
    lopq.add(x)
    bad = lopq.codes.copy()
    bad[5, 0] = 200  # a coarse id beyond V
    with pytest.raises(InputError, match="coarse id 200 out of range for V=8"):
        lopq.codes = bad
    state = lopq.__getstate__()
    state["_codes"] = bad
    crafted = pickle.dumps(state)
    restored = LOPQ.__new__(LOPQ)
    with pytest.raises(InputError, match="coarse id 200 out of range"):
        restored.__setstate__(pickle.loads(crafted))
    fine = lopq.codes.copy()
    fine[3, 4] = 99
    with pytest.raises(InputError, match="fine code 99 out of range for Ks=16"):
        lopq.codes = fine
    d, ids = lopq.search(x[:5], 3)  # the model is untouched and still searches
    assert (ids[:, 0] == np.arange(5)).mean() >= 0.6


@pytest.fixture
def clustered():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16)) * 4
    return (centres[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 16))).astype(np.float32)


# -- the native library --------------------------------------------------------------------

def test_a_truncated_cached_library_is_rebuilt(tmp_path, tiny_native_src):
    """A truncated libbenchpq.so crashed every later run inside dlopen; now it is rebuilt."""
    from benchpq import native
    library = native.build(tiny_native_src, tmp_path / "native")
    data = library.read_bytes()
    library.write_bytes(data[: len(data) // 3])
    assert not native._intact(library.parent, tiny_native_src)
    done = subprocess.run([sys.executable, "-c", "from benchpq import native; "
                           "print('loaded', native.load().tiny_sum(10))"], capture_output=True,
                          text=True, timeout=900,
                          env=dict(os.environ, BENCHPQ_NATIVE_CACHE=str(tmp_path / "native"),
                                   BENCHPQ_NATIVE_SRC=str(tiny_native_src)))
    assert done.returncode == 0 and "loaded 45" in done.stdout, done.stderr[-2000:]
    assert "changed size since it was sealed" in done.stderr
    assert native._intact(library.parent, tiny_native_src)
    assert len(library.read_bytes()) > len(data) // 3


# -- failures that show --------------------------------------------------------------------

def test_a_sweep_whose_runs_fail_exits_non_zero_unless_told_not_to(tmp_path):
    code, out, err = run_cli(tmp_path, "algorithm=test_raises", "seed=0,1")
    assert code == 1
    assert "2 of 2 runs failed (2 error)" in err
    code, _, err = run_cli(tmp_path / "again", "algorithm=test_raises", "fail_on_error=false")
    assert code == 0, err[-2000:]
    assert "1 of 1 runs failed (1 error)" in err


@pytest.mark.parametrize("key, value, message", [
    ("threads", "abc", "threads: expected an integer, got 'abc'"),
    ("threads", 0, "threads: must be >= 1, got 0"),
    ("timeout_s", "abc", "timeout_s: expected a positive number of seconds, got 'abc'"),
    ("timeout_s", 0, "timeout_s: expected a positive number of seconds, got 0"),
    ("seed", 2 ** 32, "seed: must be [0, 2147483647], got 4294967296"),
    ("seed", -1, "seed: must be [0, 2147483647], got -1"),
    ("force", "yes", "force: expected true or false, got 'yes'"),
])
def test_option_errors_name_their_key(key, value, message):
    config = compose_config(["algorithm=faiss_pq"])
    config[key] = value
    with pytest.raises(InputError) as err:
        check_run_options(config)
    assert str(err.value) == message


def test_a_malformed_record_is_made_again(tmp_path, caplog):
    (first,) = execute(tmp_path, "algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4")
    path = records.record_path(tmp_path / "results" / "search-synthetic", first["run_id"])
    path.write_text("[]")
    (again,) = execute(tmp_path, "algorithm=faiss_pq", "algorithm.M=4", "algorithm.nbits=4")
    assert again["status"] == "ok" and not again.get("skipped")
    assert "is malformed" in caplog.text
    assert records.read_record(path)["status"] == "ok"


def test_the_cluster_task_computes_no_search_ground_truth(tmp_path):
    (record,) = execute(tmp_path, "algorithm=kmeans", "task=cluster", "task.n_clusters=8")
    assert record["status"] == "ok", record["message"]
    assert not (tmp_path / "cache" / "groundtruth").exists()


def test_an_enormous_lopq_quota_is_a_named_error():
    from benchpq.algorithms.own.lopq import LOPQ
    with pytest.raises(InputError, match=r"quota: must be \[1, 4611686018427387904\]"):
        LOPQ(quota=2 ** 70)
    with pytest.raises(InputError, match="quota: must be"):
        LOPQ().set_search_params(quota=2 ** 64)


def test_out_of_range_stored_pq_codes_are_refused(clustered):
    import pickle

    from benchpq.algorithms.own.pq import PQ
    pq = PQ(M=4, Ks=16, seed=0).fit(clustered)
    pq.add(clustered)
    bad = pq.codes.copy()
    bad[9, 2] = 200  # uint8 holds it; Ks=16 tables do not
    with pytest.raises(InputError, match="code 200 out of range for Ks=16"):
        pq.codes = bad
    state = pq.__getstate__()
    state["_codes"] = bad
    restored = PQ.__new__(PQ)
    with pytest.raises(InputError, match="code 200 out of range for Ks=16"):
        restored.__setstate__(pickle.loads(pickle.dumps(state)))
    with pytest.raises(InputError, match="expected dtype uint8"):
        pq.codes = bad.astype(np.int64)
    clone = pickle.loads(pickle.dumps(pq))  # a good pickle still loads and searches alike
    assert np.array_equal(clone.search(clustered[:5], 3)[1], pq.search(clustered[:5], 3)[1])


def test_opq_with_fewer_training_points_than_codewords_is_a_named_error():
    from benchpq.algorithms.own.opq import OPQ
    with pytest.raises(InputError, match="max_train_points=100 is below Ks=256"):
        OPQ(M=4, max_train_points=100)
