"""Sweeps through Hydra's Ray and submitit launchers give the records of the basic launcher.

The same 4-run sweep (faiss and nanopq PQ at M = 4, 8 on small synthetic data)
runs through the basic launcher, a local Ray instance (2 CPUs, bound to
127.0.0.1) and submitit's local executor, each started from a folder that is
not the repository with a relative results_dir. Every metric except times and
memory must be equal. The SLURM path cannot run here: its config is composed
and one job is pickled by the launcher, then unpickled and run by submitit's
own node-side entry point in a fresh process, as on a compute node.

The launcher packages are the ``ray`` and ``slurm`` extras; outside CI a test
whose package is absent is skipped, in CI (``CI`` set) it fails.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from optional import requires

from benchpq.store import records  # cli: registers the config's ${benchpq.abspath:} resolver
from benchpq.sweep import cli

REPO = Path(__file__).resolve().parents[1]
NAME = "launchers"
SWEEP = ["algorithm=faiss_pq,nanopq_pq", "algorithm.M=4,8", "dataset=synthetic",
         "++dataset.n_learn=2000", "++dataset.n_base=2000", "++dataset.n_query=20",
         f"name={NAME}", "results_dir=results", "threads=1"]


def measured(metrics: dict) -> dict:
    """The metrics that do not depend on timing or memory: all of them must be equal."""
    return {k: v for k, v in metrics.items()
            if not (k.endswith(("_s", "_s_median")) or k == "qps" or "rss" in k)}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def run_sweep(folder: Path, cache: Path, *launcher_args: str, timeout: float = 300):
    """Run the sweep from ``folder``; return the finished process and {run_id: record}."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCHPQ_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "benchpq", "-m", *SWEEP, *launcher_args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = dict(records.iter_records(folder / "results" / NAME))
    return proc, {r["run_id"]: r for r in found.values()}


@pytest.fixture(scope="module")
def basic(tmp_path_factory, cache_dir):
    """Records of the sweep through Hydra's basic launcher (one run after the other)."""
    _, recs = run_sweep(tmp_path_factory.mktemp("basic"), cache_dir)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs.values())
    return recs


def assert_same_records(got: dict, expected: dict, results: Path) -> None:
    assert set(got) == set(expected)
    for rid, record in got.items():
        assert record["status"] == "ok", record["message"]
        assert measured(record["metrics"]) == measured(expected[rid]["metrics"])
        assert record["config"]["results_dir"] == str(results)  # absolute, from the start folder
        assert Path(record["log"]).is_file()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if text in cmdline:
            found.append(f"{p.pid}: {cmdline[:200]}")
    return found


def test_ray_local_sweep_matches_basic_and_leaves_no_process(basic, cache_dir, tmp_path):
    requires("ray")
    requires("hydra_plugins.hydra_ray_launcher")
    # Ray's sockets live under its temp dir, whose path must stay short.
    ray_tmp = Path(tempfile.mkdtemp(prefix="bpq-ray-", dir="/tmp"))
    try:
        proc, got = run_sweep(tmp_path, cache_dir, "hydra/launcher=ray_local",
                              "hydra.launcher.ray.init.num_cpus=2",
                              f"++hydra.launcher.ray.init._temp_dir={ray_tmp}")
        assert_same_records(got, basic, tmp_path / "results")
        output = proc.stdout + proc.stderr
        assert "Started a local Ray instance" in output
        assert "'_node_ip_address': '127.0.0.1'" in output and "'address': 'local'" in output
        assert "Ray listens beyond" not in output and "too late" not in output
        assert any((ray_tmp / "session_latest" / "logs").glob("raylet*")), "Ray did not use it"
        # the end-of-sweep summary lists every run
        assert proc.stdout.count("faiss_pq") >= 1 and proc.stdout.count("nanopq_pq") >= 1
        # Ray stops when the sweep's process exits: nothing of this instance is left
        deadline = time.monotonic() + 15
        while _processes_mentioning(str(ray_tmp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_mentioning(str(ray_tmp)) == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_submitit_local_sweep_matches_basic(basic, cache_dir, tmp_path):
    requires("submitit")
    requires("hydra_plugins.hydra_submitit_launcher")
    proc, got = run_sweep(tmp_path, cache_dir, "hydra/launcher=slurm_local")
    assert_same_records(got, basic, tmp_path / "results")
    assert proc.stdout.count("faiss_pq") >= 1 and proc.stdout.count("nanopq_pq") >= 1
    assert list((tmp_path / "results" / NAME / "hydra").glob("*/.submitit/*/*_result.pkl"))


def test_a_crash_in_a_run_is_recorded_under_submitit(tmp_path):
    """The run's child process isolates the job: a segfault becomes a record, the sweep ends."""
    requires("hydra_plugins.hydra_submitit_launcher")
    plugins = REPO / "tests" / "plugins"
    env = {**os.environ, "BENCHPQ_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(plugins)])}
    proc = subprocess.run([sys.executable, "-m", "benchpq", "-m", "hydra/launcher=slurm_local",
                           f"hydra.searchpath=[file://{plugins / 'conf'}]",
                           "plugins=[failing_plugins]", "algorithm=test_segfaults,test_raises",
                           *SWEEP[2:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr[-4000:]  # the sweep went on, then says it failed
    assert "2 of 2 runs failed (1 crashed, 1 error)" in proc.stderr
    found = {r["algorithm"]: r for _, r in records.iter_records(tmp_path / "results" / NAME)}
    assert found["test_segfaults"]["status"] == "crashed"
    assert "SIGSEGV" in found["test_segfaults"]["message"]
    assert found["test_raises"]["status"] == "error"
    assert "test_segfaults" in proc.stdout  # named in the end-of-sweep summary


def _compose_with_hydra(overrides):
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_ray_configs_reserve_threads_cpus_per_run(monkeypatch):
    requires("hydra_plugins.hydra_ray_launcher")
    local = _compose_with_hydra(["hydra/launcher=ray_local", "threads=3"]).hydra.launcher
    assert local._target_.endswith("ray_launcher.RayLauncher")
    assert local.ray.remote.num_cpus == 3
    assert local.ray.init.address == "local" and local.ray.init._node_ip_address == "127.0.0.1"
    assert local.ray.init.include_dashboard is False
    loopback = "benchpq.sweep.hydra_callbacks.RayLoopback"
    callbacks = _compose_with_hydra(["hydra/launcher=ray_local"]).hydra.callbacks
    assert loopback in [c._target_ for c in callbacks.values()]
    callbacks = _compose_with_hydra(["hydra/launcher=ray_cluster"]).hydra.callbacks
    assert loopback not in [c._target_ for c in callbacks.values()]  # a cluster must not
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    cluster = _compose_with_hydra(["hydra/launcher=ray_cluster", "threads=2"]).hydra.launcher
    assert cluster.ray.init.address == "head:6379" and cluster.ray.remote.num_cpus == 2
    monkeypatch.delenv("RAY_ADDRESS")
    assert _compose_with_hydra(["hydra/launcher=ray_cluster"]).hydra.launcher.ray.init.address \
        == "auto"


# Starts Ray as a ray_local sweep does: the config's callbacks get on_multirun_start, then
# ray.init with the config's init arguments (num_cpus and _temp_dir set here), then one task
# so that a worker runs. Prints the LISTEN sockets of this process and its descendants once
# they stop changing, then calls on_multirun_end of the callbacks ray_local adds.
RAY_LISTENERS = """
import json, logging, sys, time
import psutil
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from benchpq.sweep import cli  # registers benchpq's resolvers

conf, temp_dir, import_first = sys.argv[1:]
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
if import_first == "1":
    import ray  # as if something had imported ray before the sweep started
with initialize_config_dir(config_dir=conf, version_base="1.3"):
    cfg = compose("config", overrides=["hydra/launcher=ray_local"], return_hydra_config=True)
    basic = compose("config", return_hydra_config=True)
callbacks = {k: instantiate(c) for k, c in cfg.hydra.callbacks.items()}
for callback in callbacks.values():
    callback.on_multirun_start(config=cfg)
import ray
init = OmegaConf.to_container(cfg.hydra.launcher.ray.init, resolve=True)
ray.init(**{**init, "num_cpus": 1, "_temp_dir": temp_dir})
ray.get(ray.remote(num_cpus=1)(lambda: 0).remote())

def listeners():
    me = psutil.Process()
    found = set()
    for p in [me, *me.children(recursive=True)]:
        try:
            found |= {(p.pid, p.name(), c.laddr.ip, c.laddr.port)
                      for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    return found

found, deadline = listeners(), time.monotonic() + 60
while time.monotonic() < deadline:  # Ray's agents open their sockets after ray.init returns
    time.sleep(2)
    now = listeners()
    agents = {name for _, name, _, _ in now if name.endswith("Agent")}
    if now == found and len(agents) >= 2:
        break
    found = now
print(json.dumps(sorted(found)))
for key in set(cfg.hydra.callbacks) - set(basic.hydra.callbacks):
    callbacks[key].on_multirun_end(config=cfg)
ray.shutdown()
"""


def _on_loopback(ip: str) -> bool:
    return ip in ("127.0.0.1", "::ffff:127.0.0.1")


@pytest.mark.parametrize("ray_imported_first", [False, True])
def test_ray_local_listens_on_loopback_only_or_says_where_not(ray_imported_first):
    """Every listening socket of ray_local's Ray processes (driver, GCS, raylet, agents,
    workers) is on 127.0.0.1; when that setting comes too late (ray imported before the
    sweep), the warning at the end names each socket that is not."""
    requires("ray")
    requires("hydra_plugins.hydra_ray_launcher")
    ray_tmp = Path(tempfile.mkdtemp(prefix="bpq-ray-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    try:
        proc = subprocess.run([sys.executable, "-c", RAY_LISTENERS, str(REPO / "conf"),
                               str(ray_tmp), "1" if ray_imported_first else "0"],
                              env={**env, "PYTHONPATH": str(REPO)}, cwd=ray_tmp,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-4000:]
        found = [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]
        names = {name for _, name, _, _ in found}
        assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names
        assert any(name.startswith("ray::") and not name.endswith("Agent") for name in names)
        exposed = [(name, f"(pid {pid}) on {ip}:{port}") for pid, name, ip, port in found
                   if not _on_loopback(ip)]
        warnings = [line for line in proc.stderr.splitlines() if "Ray listens beyond" in line]
        if not ray_imported_first:
            assert exposed == [], exposed
            assert warnings == []
        elif not exposed:
            pytest.skip("Ray found no address but 127.0.0.1 on this machine")
        else:
            assert "too late" in proc.stderr and len(warnings) == 1
            assert all(where in warnings[0] for _, where in exposed)
            assert "node address is" in warnings[0]  # the reason
    finally:
        deadline = time.monotonic() + 15
        while _processes_mentioning(str(ray_tmp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _processes_mentioning(str(ray_tmp))
        for line in left:  # only processes of this test's Ray instance
            try:
                psutil.Process(int(line.split(":")[0])).kill()
            except psutil.Error:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert left == []


def test_slurm_config_composes_with_the_usual_knobs():
    requires("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose_with_hydra(["hydra/launcher=slurm", "threads=8",
                               "hydra.launcher.partition=cpu", "hydra.launcher.mem_gb=64"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.cpus_per_task == 8  # follows threads
    assert (launcher.partition, launcher.mem_gb) == ("cpu", 64)
    assert launcher.timeout_min * 60 > cfg.timeout_s  # benchpq's timeout fires first
    assert launcher.array_parallelism == 64
    assert launcher.submitit_folder.startswith(str(cfg.hydra.sweep.dir))
    assert Path(cfg.hydra.sweep.dir).is_absolute()


def test_slurm_job_pickles_and_runs_on_the_node_side(basic, cache_dir, tmp_path):
    """One job as SLURM would run it: pickled by the launcher, run by submitit's entry point."""
    requires("submitit")
    requires("hydra_plugins.hydra_submitit_launcher")
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext, RunMode
    from submitit.core.utils import DelayedSubmission

    job = ["algorithm=faiss_pq", "algorithm.M=8", *SWEEP[2:]]
    submit_dir = tmp_path / "submit"
    submit_dir.mkdir()
    old = os.getcwd()
    os.chdir(submit_dir)  # as if benchpq were started here
    try:
        setup_globals()
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            gh = GlobalHydra.instance()
            cfg = gh.hydra.compose_config("config", ["hydra/launcher=slurm", *job],
                                          run_mode=RunMode.MULTIRUN)
            context = HydraContext(config_loader=gh.config_loader(), callbacks=Callbacks(cfg))
            launcher = Plugins.instance().instantiate_launcher(
                hydra_context=context, task_function=cli.run_job.__wrapped__, config=cfg)
            assert type(launcher).__name__ == "SlurmLauncher"
            folder = tmp_path / "submitit"
            folder.mkdir()
            DelayedSubmission(launcher, job, "hydra.sweep.dir", 0, "job_id_for_0",
                              Singleton.get_state()).dump(folder / "4242_submitted.pkl")
    finally:
        os.chdir(old)

    # sbatch --chdir: the job starts in the folder the sweep was started from
    assert launcher.params["additional_parameters"] == {"chdir": str(submit_dir)}
    slurm_env = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1",
                 "SLURM_JOB_NUM_NODES": "1",
                 "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost", "SLURM_PROCID": "0",
                 "SLURM_LOCALID": "0"}
    env = {**os.environ, **slurm_env, "BENCHPQ_CACHE": str(cache_dir), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "submitit.core._submit", str(folder)],
                          cwd=submit_dir,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    with open(folder / "4242_0_result.pkl", "rb") as f:
        outcome, job_return = pickle.load(f)
    assert outcome == "success", job_return
    got = dict(records.iter_records(submit_dir / "results" / NAME))
    assert len(got) == 1
    (record,) = got.values()
    assert record["status"] == "ok", record["message"]
    assert measured(record["metrics"]) == measured(basic[record["run_id"]]["metrics"])
    marker = json.loads(next((submit_dir / "results" / NAME / "hydra").glob("*/0/run.json"))
                        .read_text())
    assert all(Path(path).is_file() for path in marker["records"])
