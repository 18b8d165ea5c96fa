"""The ``benchpq`` command: a thin Hydra entry point; one Hydra job is one run.

    benchpq                                   # the quickstart comparison, then a table
    benchpq -m algorithm=faiss_pq,nanopq_pq algorithm.M=4,8,16 dataset=siftsmall
    benchpq experiment=pq_siftsmall hydra/launcher=joblib
"""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .hydra_callbacks import MARKER
from .hydra_paths import absolute_paths
from .records import record_path
from .runner import execute, sweep_dir

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    # A worker (Ray, SLURM) may run elsewhere: relative paths are taken from where the sweep started.
    config = absolute_paths(OmegaConf.to_container(cfg, resolve=True), hydra_cfg.runtime.cwd)
    record = execute(config)
    marker = Path(hydra_cfg.runtime.output_dir) / MARKER
    marker.write_text(json.dumps({"record": str(record_path(sweep_dir(config), record["run_id"]))}))
    # The return value is what sweepers optimise (e.g. Optuna); None for failed runs.
    objective = config.get("objective")
    return record["metrics"].get(objective) if objective else None


if __name__ == "__main__":
    main()
