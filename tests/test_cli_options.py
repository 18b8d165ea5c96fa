"""The command line: a plain run uses the plugins' defaults (an experiment applies only when
chosen), misspelt options and choices get "did you mean", and a sweep's log lines fit a
terminal (paths relative to the results folder, elapsed time, an estimate of what is left)."""
import os
import re
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchpq import registry
from benchpq.checks import InputError
from benchpq.suggest import did_you_mean
from benchpq.sweep import cli, runner
from benchpq.sweep.options import check_run_options, override_probes

from compose import CONF, REPO, TEST_PLUGINS, compose_config

SMALL = ["dataset=synthetic", "++dataset.n_learn=3000", "++dataset.n_base=3000",
         "++dataset.n_query=20"]


def run_cli(*args, cwd=REPO, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchpq", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def shown_job_config(*overrides) -> dict:
    """What ``benchpq --cfg job OVERRIDES`` prints, read back as YAML."""
    proc = run_cli("--cfg", "job", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


def plugin_yaml(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "algorithm" / f"{name}.yaml"))


def curve_yaml(experiment: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "curves" / experiment / f"{name}.yaml"))


# --- an experiment applies only when it is chosen


@pytest.mark.parametrize("name", ["faiss_ivfpq", "lopq"])
def test_a_plain_run_searches_at_the_plugin_defaults(name):
    assert curve_yaml("quickstart", name) != plugin_yaml(name)["search"]  # else no test
    plain = compose_config([f"algorithm={name}", "dataset=siftsmall"])
    assert plain["algorithm"]["search"] == plugin_yaml(name)["search"]
    chosen = compose_config([f"algorithm={name}", "dataset=siftsmall", "experiment=quickstart"])
    assert chosen["algorithm"]["search"] == {**plugin_yaml(name)["search"],
                                             **curve_yaml("quickstart", name)}
    none = compose_config([f"algorithm={name}", "dataset=siftsmall", "experiment=none"])
    assert none == plain


def test_a_plain_run_has_no_experiment_sweep():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        plain = compose("config", return_hydra_config=True)
        quickstart = compose("config", overrides=["experiment=quickstart"],
                             return_hydra_config=True)
    assert plain.hydra.runtime.choices.experiment == "none"
    assert not plain.hydra.sweeper.params
    assert quickstart.hydra.sweeper.params.algorithm.startswith("pq,faiss_pq,nanopq_pq")


def test_cfg_job_shows_the_plugin_grid_unless_the_quickstart_is_chosen():
    plain = shown_job_config("algorithm=faiss_ivfpq", "dataset=siftsmall")
    assert plain["algorithm"]["search"] == {"nprobe": 16, "max_codes": None} == \
        plugin_yaml("faiss_ivfpq")["search"]
    chosen = shown_job_config("algorithm=faiss_ivfpq", "dataset=siftsmall",
                              "experiment=quickstart")
    assert chosen["algorithm"]["search"] == {"nprobe": [2, 8, 32], "max_codes": None}


def test_the_readme_starts_with_the_quickstart_and_the_tests():
    block = (REPO / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    first, second = block.strip().splitlines()
    assert first.startswith('pip install -e ".[test]" && benchpq experiment=quickstart ')
    assert second.startswith('pip install -e ".[test]" && pytest ')
    header = (CONF / "experiment" / "quickstart.yaml").read_text()
    assert "#   benchpq experiment=quickstart\n" in header


# --- did you mean


@pytest.mark.parametrize("name, choices, expected", [
    ("m", ["M", "name", "nbits", "seed"], " (did you mean 'M'?)"),
    ("thread", ["threads", "seed", "simd", "timeout_s"], " (did you mean 'threads'?)"),
    ("faiss_pqq", ["faiss_pq", "faiss_pqfs", "pq", "nanopq_pq"], " (did you mean 'faiss_pq'?)"),
    ("siftsmal", ["sift1m", "siftsmall", "synthetic"], " (did you mean 'siftsmall'?)"),
    ("recal@10", ["recall@1", "recall@10", "recall@100", "mse"],
     " (did you mean 'recall@10'?)"),
    ("nope", ["faiss_pq", "siftsmall"], ""),
    ("M", ["M"], ""),
    ("x", [], ""),
])
def test_did_you_mean(name, choices, expected):
    assert did_you_mean(name, choices) == expected


@pytest.mark.parametrize("overrides, expected", [
    (["algorithm.m=4"], "benchpq: unknown option 'algorithm.m' (did you mean 'M'?)"),
    (["thread=2"], "benchpq: unknown option 'thread' (did you mean 'threads'?)"),
    (["algorithm=faiss_pqq"],
     "benchpq: no config 'faiss_pqq' in group 'algorithm' (did you mean 'faiss_pq'?)"),
    (["dataset=siftsmal"],
     "benchpq: no config 'siftsmal' in group 'dataset' (did you mean 'siftsmall'?)"),
    (["experiment=quikstart"],
     "benchpq: no config 'quikstart' in group 'experiment' (did you mean 'quickstart'?)"),
    (["algorithm=faiss_ivfpq", "algorithm.search.nprob=3"],
     "benchpq: unknown option 'algorithm.search.nprob' (did you mean 'nprobe'?)"),
    # in a sweep: the second choice, and a key swept over values
    (["-m", "algorithm=faiss_pq,nanopq_pqq"],
     "benchpq: no config 'nanopq_pqq' in group 'algorithm' (did you mean 'nanopq_pq'?)"),
    (["-m", "algorithm.m=4,8"], "benchpq: unknown option 'algorithm.m' (did you mean 'M'?)"),
    (["hydra/launcher=joblib", "hydra.launcher.n_job=2"],
     "benchpq: unknown option 'hydra.launcher.n_job' (did you mean 'n_jobs'?)"),
])
def test_a_misspelt_option_or_choice_names_the_right_one(overrides, expected):
    problem = cli.command_line_problem(overrides)
    assert problem is not None and problem.splitlines()[0] == expected
    # Hydra's own message follows (e.g. how to add a key with +)
    assert "Could not" in problem


@pytest.mark.parametrize("overrides", [
    [],
    ["algorithm=faiss_ivfpq", "dataset=siftsmall", "algorithm.search.nprobe=[1,4]"],
    ["-m", "algorithm=faiss_pq,nanopq_pq", "algorithm.M=4,8", "seed=range(0,3)"],
    ["+algorithm.m=4"],  # asked to add a key: not a misspelling; the plugin refuses it later
    [f"hydra.searchpath=[file://{TEST_PLUGINS / 'conf'}]", "algorithm=test_counting"],
    ["algorithm.zzzz=1"],  # nothing close: Hydra reports it alone
    ["--help"],
])
def test_a_command_line_without_a_close_mistake_is_left_to_hydra(overrides):
    assert cli.command_line_problem(overrides) is None


def test_the_command_fails_before_any_run(tmp_path):
    proc = run_cli("-m", "algorithm=faiss_pq,nanopq_pqq", *SMALL,
                   f"results_dir={tmp_path / 'results'}", timeout=120)
    assert proc.returncode == 1
    assert ("benchpq: no config 'nanopq_pqq' in group 'algorithm' "
            "(did you mean 'nanopq_pq'?)\n") in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "results").exists()  # faiss_pq did not run first


def test_every_sweep_choice_is_probed():
    probes = override_probes(["algorithm=pq,opq", "algorithm.M=4,8", "seed=0,1,2",
                              "dataset=siftsmall"])
    assert probes == [["algorithm=pq", "algorithm.M=4", "seed=0", "dataset=siftsmall"],
                      ["algorithm=opq", "algorithm.M=4", "seed=0", "dataset=siftsmall"]]


def test_the_registry_suggests_algorithm_names_and_options():
    with pytest.raises(InputError, match=re.escape(
            "algorithm 'faiss_pq': unknown option 'm' (did you mean 'M'?); "
            "accepted options: M, nbits, seed")):
        registry.create({"name": "faiss_pq", "m": 4})
    with pytest.raises(InputError, match=re.escape(
            "unknown algorithm 'faiss_pqq' (did you mean 'faiss_pq'?); registered: ")):
        registry.create({"name": "faiss_pqq"})


def test_a_misspelt_simd_path_is_named():
    config = compose_config(["simd=avx3"])
    with pytest.raises(InputError, match=re.escape(
            "simd: 'avx3' is not a SIMD path (did you mean 'avx2'?): expected one of auto, "
            "scalar, avx2, avx512, native")):
        check_run_options(config)


# --- log lines that fit a terminal

LINE = 160


def test_a_finished_line_fits_and_shows_elapsed_time_and_a_relative_path():
    record = {"status": "ok", "algorithm": "faiss_ivfpq", "wall_s": 12.34,
              "build_cached": True, "message": "",
              "metrics": {"recall@1": 0.53125, "recall@10": 0.921875, "recall@100": 1.0,
                          "mse": 21965.4, "error": 1.5e4, "nmi": 0.5}}
    path = "search-siftsmall/records/0123456789abcdef.json"
    line = runner.finished_line(record, {"nprobe": 16}, path, "[12/360, ~14 min left]")
    assert len("[12:00:00][INFO] " + line) <= LINE
    assert line == ("[12/360, ~14 min left] ok faiss_ivfpq [nprobe=16] 12.3 s (cached build): "
                    "recall@1=0.5312 -> " + path)
    # names that fill the line leave no room for metrics: the rest is shown whole
    path = "search-calibrated_fashion_mnist_10k/records/0123456789abcdef.json"
    line = runner.finished_line(record, {"nprobe": 16, "exact_quota": True}, path,
                                "[12/360, ~14 min left]")
    assert line == ("[12/360, ~14 min left] ok faiss_ivfpq [nprobe=16, exact_quota=True] 12.3 s "
                    "(cached build) -> " + path)
    short = runner.finished_line({**record, "algorithm": "pq", "build_cached": False}, {},
                                 "search-synthetic/records/0123456789abcdef.json", "[1/2]")
    assert short == ("[1/2] ok pq 12.3 s: recall@1=0.5312, recall@10=0.9219, recall@100=1, "
                     "mse=2.197e+04 -> search-synthetic/records/0123456789abcdef.json")
    failed = runner.finished_line({**record, "status": "error", "metrics": {},
                                   "message": "ValueError: " + "x" * 300}, {}, path, "[1/2]")
    assert len(failed) == runner.LINE_WIDTH and "(ValueError: xxx" in failed
    assert "...)" in failed


def test_a_relayed_line_too_wide_shows_file_names_instead_of_absolute_paths():
    message = ("[1/3] computing ground truth: 20 queries, top-100 of 3000 base vectors -> "
               "/home/someone/.cache/benchpq/groundtruth/" + "f" * 40 + ".npz")
    assert runner.fit_line(message) == message.split("-> ")[0] + "-> .../" + "f" * 40 + ".npz"
    assert runner.fit_line("[1/3] short /a/b") == "[1/3] short /a/b"
    assert runner.fit_line("x" * 200) == "x" * (runner.LINE_WIDTH - 3) + "..."


@pytest.mark.parametrize("seconds, shown", [(0.421, "0.42 s"), (12.34, "12.3 s"),
                                            (734.2, "734 s")])
def test_elapsed_seconds(seconds, shown):
    assert runner.format_seconds(seconds) == shown


def test_a_sweep_logs_short_lines_with_elapsed_time_and_time_left(tmp_path):
    results = tmp_path / "results"
    proc = run_cli("-m", "algorithm=faiss_ivfpq", "algorithm.nlist=16",
                   "algorithm.search.nprobe=[1,4]", "seed=0,1,2", *SMALL,
                   f"results_dir={results}", env={"BENCHPQ_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines and max(len(line) for line in lines) <= LINE, \
        max(lines, key=len)
    assert str(tmp_path) not in proc.stderr  # no absolute paths
    done = [line for line in lines if "] ok faiss_ivfpq [nprobe=" in line]
    assert len(done) == 6, proc.stderr[-3000:]
    for line in done:
        assert re.search(r"\] ok faiss_ivfpq \[nprobe=[14]\] \d+\.\d+ s: recall@1=\S+, .* -> "
                         r"search-synthetic/records/[0-9a-f]{16}\.json$", line), line
    labels = [re.search(r"\[INFO\] (\[[^]]*\])", line)[1] for line in done]
    assert re.fullmatch(r"\[1/3, ~\d+ (s|min) left\]", labels[0]), labels
    assert re.fullmatch(r"\[2/3, ~\d+ (s|min) left\]", labels[2]), labels
    assert labels[4:] == ["[3/3]", "[3/3]"]  # nothing left
    started = [line for line in lines if "faiss_ivfpq on synthetic: 2 search settings" in line]
    assert [re.search(r"\[INFO\] (\[\S*\])", line)[1] for line in started] == \
        ["[1/3]", "[2/3]", "[3/3]"]
