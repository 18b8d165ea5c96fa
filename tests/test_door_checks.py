"""Options checked at the door and names that cannot become paths or markup: bad recall
options, names that would leave the results folder, and hostile names in every output."""
from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from benchpq.checks import InputError
from benchpq.report import load_records, pivot, plot, render, summary_table
from benchpq.report.pareto import plot_pareto
from benchpq.store.records import record_path, write_record
from benchpq.sweep.options import check_run_options

from compose import REPO, compose_config


@pytest.mark.parametrize("override, message", [
    ("task.recall_at=[1000]", "task.recall_at: 1000 is not an integer in [1, k=100]"),
    ("task.recall_at=[0]", "task.recall_at: 0 is not an integer"),
    ("task.recall_at=[-5]", "task.recall_at: -5 is not an integer"),
    ("task.recall_at=[1.5]", "task.recall_at: 1.5 is not an integer"),
    ("task.recall_at=10", "task.recall_at: expected a list of integers"),
    ("task.k_recall=[200]", "task.k_recall: 200 is not an integer in [1, k=100]"),
    ("task.k_recall=[0]", "task.k_recall: 0 is not an integer"),
    ("task.k_recall=[-3]", "task.k_recall: -3 is not an integer"),
])
def test_bad_recall_options_are_refused_before_the_run(override, message):
    config = compose_config(["experiment=none", override])
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_run_options(config)


def test_recall_options_within_k_pass():
    check_run_options(compose_config(["experiment=none", "task.k=10", "task.recall_at=[1,10]",
                                      "task.k_recall=[1,10]"]))


@pytest.mark.parametrize("override, key", [
    ("name=../../x", "name"), ("name=/abs/path", "name"), ("name=..", "name"),
    ("dataset.name=../../../x", "dataset.name"), ("dataset.name=a/b", "dataset.name")])
def test_names_that_would_leave_the_results_folder_are_refused(override, key):
    config = compose_config(["experiment=none", override])
    if key == "dataset.name":
        config["name"] = "plain"
    with pytest.raises(InputError, match=f"{key}: .* is not a plain name"):
        check_run_options(config)


def test_a_sweep_named_outside_the_results_folder_writes_nothing(tmp_path):
    results = tmp_path / "deep" / "results"
    proc = subprocess.run([sys.executable, "-m", "benchpq", "experiment=none",
                           "name=../../escaped", f"results_dir={results}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "is not a plain name" in proc.stdout + proc.stderr
    assert not (tmp_path / "escaped").exists()
    assert not any(tmp_path.rglob("records"))


HOSTILE = "a$b$\n\\input{/etc/hostname} % x"


@pytest.fixture
def hostile_runs(tmp_path):
    for seed in range(2):
        for alg, recall in ((HOSTILE, 0.5), ("plain", 0.7)):
            rid = f"{'h' if alg == HOSTILE else 'p'}{seed}"
            write_record(record_path(tmp_path / "results" / "s", rid), {
                "run_id": rid, "status": "ok", "message": "", "algorithm": alg,
                "dataset": "data\n\\input{/etc/passwd}", "task": "search",
                "params": {"M": 8}, "seed": seed, "threads": 1,
                "metrics": {"recall@10": recall + seed / 100, "qps": 100.0 * (seed + 1),
                            "code_bits": 64}, "config": {"name": "s"}})
    return load_records(tmp_path / "results")


@pytest.mark.parametrize("fmt", ["markdown", "latex", "terminal", "html"])
def test_hostile_names_cannot_break_a_table_or_leave_a_comment(hostile_runs, fmt):
    text = render(pivot(hostile_runs, "algorithm", None, ["recall@10"]), fmt)
    if fmt == "markdown":
        assert all(line.startswith("|") for line in text.splitlines())
    if fmt == "latex":
        assert not any(line.lstrip().startswith("\\input") for line in text.splitlines())
        assert "\\$" in text and "\\textbackslash{}input" in text
    if fmt == "html":
        assert "<br" not in text and "\n" not in text
    summary = summary_table(hostile_runs, fmt="latex" if fmt == "latex" else "markdown")
    assert not any(line.lstrip().startswith("\\input") for line in summary.splitlines())


def test_hostile_names_in_csv_round_trip(hostile_runs):
    rows = list(csv.reader(io.StringIO(render(pivot(hostile_runs, "algorithm", None,
                                                     ["recall@10"]), "csv"))))
    assert sorted(r[0] for r in rows[1:]) == sorted([HOSTILE, "plain"])


def test_hostile_names_are_drawn_as_text(hostile_runs, tmp_path):
    assert plot(hostile_runs, x="code_bits", y="recall@10",
                path=tmp_path / "p.png").stat().st_size > 0
    assert plot_pareto(hostile_runs, path=tmp_path / "f.png").stat().st_size > 0


def test_the_repository_configs_pass_the_door():
    """Every experiment's fixed options (its swept algorithm filled in where it has none)."""
    for experiment in sorted((REPO / "conf" / "experiment").glob("*.yaml")):
        config = compose_config([f"experiment={experiment.stem}"])
        if not isinstance(config.get("algorithm"), dict):
            config["algorithm"] = {"name": "pq"}
        check_run_options(config)
