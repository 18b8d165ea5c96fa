"""Hydra callbacks: print the comparison table of a sweep when it ends."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from . import hydra_paths  # noqa: F401  (registers ${benchpq.abspath:} in Ray / submitit workers)
from .records import read_record

log = logging.getLogger("benchpq")

# Each job leaves this file (its record path) in its Hydra output dir; see benchpq.cli.
MARKER = "run.json"


class SweepReport(Callback):
    """At the end of a multirun, prints the summary table of the runs it made."""

    def __init__(self, enabled: bool = True, fmt: str = "markdown"):
        self.enabled = enabled
        self.fmt = fmt

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not self.enabled:
            return
        markers = sorted(Path(config.hydra.sweep.dir).glob(f"*/{MARKER}"))
        records = []
        for marker in markers:
            path = Path(json.loads(marker.read_text())["record"])
            if path.exists():
                records.append(read_record(path))
        if not records:
            log.warning("no run records found for this sweep")
            return
        from .report import records_to_frame, summary_table
        print(summary_table(records_to_frame(records), fmt=self.fmt), flush=True)
