"""The ``benchpq`` command: a thin Hydra entry point; one Hydra job is one run.

    benchpq experiment=quickstart             # the main comparison, then a table
    benchpq                                   # one run at the defaults (faiss_pq, synthetic)
    benchpq -m algorithm=faiss_pq,nanopq_pq algorithm.M=4,8,16 dataset=siftsmall
    benchpq experiment=pq_siftsmall hydra/launcher=joblib
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..configs import shipped_configs
from ..progress import format_duration
from ..resolvers import new_sweep_id
from ..resources import conf_dir
from ..store.records import record_path
from .hydra_callbacks import MARKER, SWEEP_SIZE_ENV, SWEEP_START_ENV
from .hydra_paths import absolute_paths
from .lifecycle import MAIN_PID_ENV
from .options import composition_hint, override_probes
from .runner import execute, sweep_dir

CONFIG_DIR = str(conf_dir())


def main():
    """The ``benchpq`` command: checks the command line (a misspelt key or config choice
    fails with the closest valid name), marks this process as the sweep's own (its id and
    pid go to the environment that launcher workers inherit), then runs Hydra."""
    problem = command_line_problem(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr, flush=True)
        sys.exit(1)
    new_sweep_id()
    os.environ[MAIN_PID_ENV] = str(os.getpid())
    return run_job()


def command_line_problem(argv: list[str]) -> str | None:
    """The error of a command line with a misspelt key or config choice, naming it and the
    closest valid name, then Hydra's own message; None when Hydra composes it (or fails for
    another reason, which Hydra then reports itself).

    The config is composed here as Hydra composes it (every config choice of a sweep,
    :func:`benchpq.sweep.options.override_probes`), so the mistake is reported before any job
    runs. Command lines naming another config (``--config-dir``, ``-cp``, ``-cn``) or
    asking for help are left to Hydra.
    """
    try:
        from hydra._internal.utils import get_args_parser
        from hydra.core.global_hydra import GlobalHydra
        from hydra.types import RunMode
        args, _ = get_args_parser().parse_known_args(argv)
        if args.help or args.hydra_help or args.info or args.shell_completion \
                or args.config_dir or args.config_path or args.config_name:
            return None
        probes = override_probes(args.overrides)
    except Exception:  # a command line Hydra itself will refuse, with its own message
        return None
    with shipped_configs():
        for overrides in probes:
            try:
                GlobalHydra.instance().hydra.compose_config(
                    "config", overrides=overrides, run_mode=RunMode.MULTIRUN,
                    validate_sweep_overrides=False, with_log_configuration=False)
            except Exception as exc:
                hint = composition_hint(exc)
                if hint is None:
                    return None
                cause = f"\n{exc.__cause__}" if exc.__cause__ is not None else ""
                return f"benchpq: {hint}\n{exc}{cause}"
    return None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def run_job(cfg: DictConfig) -> float | None:
    """One Hydra job: one run (a build searched at every setting of its grid)."""
    hydra_cfg = HydraConfig.get()
    # A worker (Ray, SLURM) may run elsewhere: relative paths are taken from where the sweep
    # started.
    config = absolute_paths(OmegaConf.to_container(cfg, resolve=True), hydra_cfg.runtime.cwd)
    records = execute(config, label=job_label(), done_label=job_done_label)
    marker = Path(hydra_cfg.runtime.output_dir) / MARKER
    marker.write_text(json.dumps({"records": [str(record_path(sweep_dir(config), r["run_id"]))
                                              for r in records]}))
    # What sweepers optimise (e.g. Optuna): the best value over the run's search settings;
    # None when no setting measured it.
    objective = config.get("objective")
    values = [r["metrics"][objective] for r in records
              if objective and r.get("status") == "ok" and objective in r.get("metrics", {})]
    if not values:
        return None
    from ..report.names import better_direction  # the report package, only when needed
    return min(values) if better_direction(objective) == "min" else max(values)


def job_label() -> str:
    """``[k/n]``: this job's number in its sweep (from 1) and the sweep's size if known."""
    try:
        k = int(HydraConfig.get().job.num) + 1
    except (ValueError, TypeError, AttributeError):
        return ""
    n = os.environ.get(SWEEP_SIZE_ENV)
    return f"[{k}/{n}]" if n else f"[{k}]"


def job_done_label() -> str:
    """:func:`job_label` once this job's run is done, with an estimate of the sweep's time
    left: ``[3/36, ~4 min left]``.

    The estimate is the sweep's time so far per finished job (the jobs that left their
    marker, and this one) times the jobs left: with jobs run one after the other, the mean
    time per finished run; with jobs run side by side, their share of the elapsed time.
    Without the sweep's size or start, or with no job left, the label has no estimate.
    """
    label = job_label()
    try:
        n = int(os.environ[SWEEP_SIZE_ENV])
        elapsed = time.time() - float(os.environ[SWEEP_START_ENV])
        sweep = Path(HydraConfig.get().runtime.output_dir).parent
    except (KeyError, ValueError, TypeError, AttributeError):
        return label
    finished = len(list(sweep.glob(f"*/{MARKER}"))) + 1  # this job's marker comes next
    left = n - finished
    if not label or left <= 0 or elapsed <= 0:
        return label
    return f"{label[:-1]}, ~{format_duration(elapsed / finished * left)} left]"


if __name__ == "__main__":
    main()
