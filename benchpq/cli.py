"""The ``benchpq`` command: a thin Hydra entry point; one Hydra job is one run.

    benchpq experiment=quickstart             # the main comparison, then a table
    benchpq                                   # one run at the defaults (faiss_pq, synthetic)
    benchpq -m algorithm=faiss_pq,nanopq_pq algorithm.M=4,8,16 dataset=siftsmall
    benchpq experiment=pq_siftsmall hydra/launcher=joblib
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .hydra_callbacks import MARKER, SWEEP_SIZE_ENV
from .hydra_paths import absolute_paths
from .lifecycle import MAIN_PID_ENV
from .records import record_path
from .report.names import better_direction
from .resolvers import new_sweep_id
from .resources import conf_dir
from .runner import execute, sweep_dir

CONFIG_DIR = str(conf_dir())


def main():
    """The ``benchpq`` command: marks this process as the sweep's own (its id and pid
    go to the environment that launcher workers inherit), then runs Hydra."""
    new_sweep_id()
    os.environ[MAIN_PID_ENV] = str(os.getpid())
    return run_job()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def run_job(cfg: DictConfig) -> float | None:
    """One Hydra job: one run (a build searched at every setting of its grid)."""
    hydra_cfg = HydraConfig.get()
    # A worker (Ray, SLURM) may run elsewhere: relative paths are taken from where the sweep
    # started.
    config = absolute_paths(OmegaConf.to_container(cfg, resolve=True), hydra_cfg.runtime.cwd)
    records = execute(config, label=job_label())
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
    return min(values) if better_direction(objective) == "min" else max(values)


def job_label() -> str:
    """``[k/n]``: this job's number in its sweep (from 1) and the sweep's size if known."""
    try:
        k = int(HydraConfig.get().job.num) + 1
    except (ValueError, TypeError, AttributeError):
        return ""
    n = os.environ.get(SWEEP_SIZE_ENV)
    return f"[{k}/{n}]" if n else f"[{k}]"


if __name__ == "__main__":
    main()
