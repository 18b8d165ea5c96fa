"""The README's and docs/'s code runs: every Python block, every ``benchpq`` command line.

Python blocks of one page run in order in one fresh process (a later block may use what an
earlier one made), in an empty folder with the suite's cache and data. A block that is a
shipped module's source (the adapter of docs/plugins.md) is that module, which the suite
imports and tests/test_readme_adapter.py runs.

A ``benchpq`` command line is composed as each of its jobs composes it (an experiment's
``hydra.sweeper.params`` included), so a misspelt option, config or experiment fails
here. A command of one run then runs, in an empty folder, and must leave ok records.
Sweeps of several runs (a minute to hours each: the quickstart, saved experiments,
benchmarks) run only with ``BENCHPQ_DOC_SWEEPS=1``, single runs over 10M base vectors or
more (benchmarks of an hour) never; commands that need a cluster or a
file of the user's (``NEEDS_OUTSIDE``) are composed only. The ``benchpq-report`` commands
run in tests/test_report_commands.py.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchpq.configs import compose_config
from benchpq.store.records import iter_records
from benchpq.sweep.in_python import job_overrides

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHIPPED = {p.read_text() for p in (REPO / "algorithms").rglob("*.py")}
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
#: what a command needs from outside this machine, by a word of its command line
NEEDS_OUTSIDE = {"ray_cluster": "an existing Ray cluster", "slurm": "a SLURM cluster",
                 "my_model.npz": "a calibration model fitted by the user",
                 "dataset=bigann": "SIFT1B's files (128 GB)",
                 "dataset=deep1b": "Deep1B's files (384 GB)"}
SWEEPS_ENV = "BENCHPQ_DOC_SWEEPS"
#: a single run over a base this large is a benchmark (minutes to hours): composed only
BENCHMARK_BASE = 10_000_000


def blocks(page: Path, languages: tuple[str, ...]) -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(page.read_text()) if m.group(1) in languages]


def python_pages() -> list[Path]:
    return [p for p in PAGES if any(b not in SHIPPED for b in blocks(p, ("python",)))]


def command_lines() -> list[tuple[str, str]]:
    """(page, command line) of every ``benchpq`` command in a shell block."""
    found = []
    for page in PAGES:
        for block in blocks(page, ("bash", "sh", "")):
            text = re.sub(r"\\\n\s*", " ", block)
            for line in text.splitlines():
                line = line.split("&&")[-1].strip()
                if line.startswith("benchpq "):
                    found.append((page.relative_to(REPO).as_posix(), line))
    return found


def test_the_pages_hold_snippets_and_commands():
    assert len(python_pages()) >= 4
    assert len(command_lines()) >= 15
    assert REPO / "docs" / "python-api.md" in python_pages()


@pytest.mark.parametrize("page", python_pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_python_blocks_run(page, tmp_path):
    code = "\n\n".join(b for b in blocks(page, ("python",)) if b not in SHIPPED)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{page.name}:\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("page,line", command_lines(),
                         ids=[f"{p}:{i}" for i, (p, _) in enumerate(command_lines())])
def test_benchpq_commands_compose(page, line):
    jobs = job_overrides(overrides_of(line))
    assert jobs, line
    for job in jobs:
        cfg = compose_config("config", job, with_hydra=True)
        assert cfg.algorithm.name and cfg.dataset.name, (line, job)


def base_size(job: list[str]) -> int:
    """The number of base vectors a job's composed config asks for (0 if it names none)."""
    cfg = compose_config("config", job, with_hydra=False)
    return int(cfg.dataset.get("n_base") or 0)


def overrides_of(line: str) -> list[str]:
    return [a for a in shlex.split(line, comments=True)[1:] if a not in ("-m", "--multirun")]


@pytest.mark.parametrize("page,line", command_lines(),
                         ids=[f"{p}:{i}" for i, (p, _) in enumerate(command_lines())])
def test_benchpq_commands_run(page, line, tmp_path):
    argv = shlex.split(line, comments=True)[1:]
    outside = [why for word, why in NEEDS_OUTSIDE.items() if word in " ".join(argv)]
    if outside:
        pytest.skip(f"needs {outside[0]}: composed only")
    jobs = job_overrides(overrides_of(line))
    if len(jobs) > 1 and os.environ.get(SWEEPS_ENV) != "1":
        pytest.skip(f"a sweep of several runs: composed job by job; {SWEEPS_ENV}=1 runs it")
    if any(base_size(job) >= BENCHMARK_BASE for job in jobs):
        pytest.skip(f"a benchmark of {BENCHMARK_BASE:,} or more base vectors: composed only")
    proc = subprocess.run([sys.executable, "-m", "benchpq", *argv,
                           f"results_dir={tmp_path / 'results'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, f"{page}: {line}\n{proc.stderr[-3000:]}"
    found = [r for sweep in (tmp_path / "results").iterdir() for _, r in iter_records(sweep)]
    assert len(found) >= len(jobs), line
    assert all(r["status"] == "ok" for r in found), [r["message"] for r in found]


def test_every_saved_experiment_is_listed_in_the_sweeps_page():
    listed = set(re.findall(r"^\|[^|\n]*", (REPO / "docs" / "sweeps.md").read_text(), re.M))
    names = {n for row in listed for n in re.findall(r"`([a-z0-9_]+)`", row)}
    shipped = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}
    assert shipped - names == set()
