"""Sweeps from Python: the runs of a ``benchpq -m ...`` command line, without the command.

    from benchpq.sweep.in_python import run_sweep

    records = run_sweep(["algorithm=pq,faiss_pq", "algorithm.M=4,8", "dataset=synthetic"],
                        progress=lambda done, total, recs: print(f"{done}/{total}"))

The overrides are the command line's, sweeps included (``a,b``, ``experiment=...`` with
its ``hydra.sweeper.params``), expanded in the order Hydra's basic sweeper runs them.
Each run executes as under the basic launcher: in a child process of its own, its record
written to ``<results_dir>/<name>/records/`` (what ``benchpq-report`` and
:func:`benchpq.report.load_records` read), skipped when already recorded (unless
``force=true``). Launchers (joblib, Ray, SLURM) and the end-of-sweep table belong to the
command line; here the runs go one after the other, and ``progress`` hears of each.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from ..configs import compose_config
from .hydra_paths import absolute_paths
from .options import override_probes
from .runner import execute

Progress = Callable[[int, int, list], None]


def job_overrides(overrides: list[str]) -> list[list[str]]:
    """The overrides of each job of the sweep ``overrides`` describe (an experiment's
    ``hydra.sweeper.params`` below the command line's own), in Hydra's order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    first = override_probes(list(overrides))[0]  # sweeps at their first value: one config
    params = compose_config("config", first, with_hydra=True).hydra.sweeper.get("params") or {}
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    swept = [f"{k}={v}" for k, v in params.items() if k.lstrip("+~") not in given]
    parsed = OverridesParser.create().parse_overrides(swept + list(overrides))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def job_config(overrides: list[str], start_dir: Path | None = None) -> dict:
    """The resolved config of one job (overrides without sweeps), its paths made absolute
    against ``start_dir`` (default: the current folder), as the command line runs it."""
    cfg = compose_config("config", overrides)
    return absolute_paths(OmegaConf.to_container(cfg, resolve=True),
                          str(start_dir or Path.cwd()))


def run_sweep(overrides: list[str], progress: Progress | None = None) -> list[dict]:
    """Run every job of the sweep ``overrides`` describe; return their records (a run with
    a search grid gives one record per setting). ``progress(done, total, records)`` is
    called after each job with that job's records."""
    jobs = job_overrides(overrides)
    out = []
    for done, job in enumerate(jobs, 1):
        records = execute(job_config(job), label=f"[{done}/{len(jobs)}]")
        out += records
        if progress is not None:
            progress(done, len(jobs), records)
    return out
