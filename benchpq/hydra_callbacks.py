"""Hydra callbacks: count a sweep's jobs when it starts; when it ends, print its table and
exit non-zero if any of its runs failed."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from . import hydra_paths  # noqa: F401  (registers ${benchpq.abspath:} in Ray / submitit workers)
from .records import read_record

log = logging.getLogger("benchpq")

SWEEP_SIZE_ENV = "BENCHPQ_SWEEP_SIZE"
# When the sweep started (seconds since the epoch), for the estimate of the time left.
SWEEP_START_ENV = "BENCHPQ_SWEEP_START"
# Each job leaves this file (its record path) in its Hydra output dir; see benchpq.cli.
MARKER = "run.json"


def sweep_records(config: DictConfig) -> list[dict]:
    """The records written by the jobs of this sweep (listed in their markers)."""
    records = []
    for marker in sorted(Path(config.hydra.sweep.dir).glob(f"*/{MARKER}")):
        for path in map(Path, json.loads(marker.read_text()).get("records", [])):
            if path.exists():
                records.append(read_record(path))
    return records


class SweepReport(Callback):
    """At the end of a multirun, prints the summary table of the runs it made: the compact
    one that fits 120 columns, or with ``wide`` every key metric with its intervals."""

    def __init__(self, enabled: bool = True, fmt: str = "markdown", wide: bool = False):
        self.enabled = enabled
        self.fmt = fmt
        self.wide = wide

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not self.enabled:
            return
        records = sweep_records(config)
        if not records:
            log.warning("no run records found for this sweep")
            return
        from .report import records_to_frame, summary_table
        from .report.load import drop_duplicate_runs
        df = drop_duplicate_runs(records_to_frame(records))
        with warnings.catch_warnings():  # the table's notes say what a warning would
            warnings.simplefilter("ignore")
            text = summary_table(df, fmt=self.fmt, wide=self.wide)
        print(text, flush=True)


class SweepSize(Callback):
    """At the start of a multirun, counts its jobs for the "[k/n]" of the job log lines,
    and notes the time for the estimate of what is left ("[k/n, ~4 min left]").

    The count is exported as ``$BENCHPQ_SWEEP_SIZE`` and the start as
    ``$BENCHPQ_SWEEP_START`` to the jobs (and workers started after it); the count is
    left unset when the sweep cannot be expanded here.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        os.environ[SWEEP_START_ENV] = repr(time.time())
        try:
            from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
            from hydra.core.override_parser.overrides_parser import OverridesParser
            params = config.hydra.sweeper.get("params") or {}
            overrides = [f"{k}={v}" for k, v in params.items()]
            given = {o.split("=", 1)[0].lstrip("+~") for o in config.hydra.overrides.task}
            overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in given]
            parsed = OverridesParser.create().parse_overrides(
                overrides + list(config.hydra.overrides.task))
            size = sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
        except Exception as exc:  # counting is a courtesy; the sweep runs without it
            log.debug("cannot count the jobs of this sweep: %s", exc)
            os.environ.pop(SWEEP_SIZE_ENV, None)
            return
        os.environ[SWEEP_SIZE_ENV] = str(size)


class SweepStatus(Callback):
    """At the end of a multirun, exits with status 1 if any of its runs failed.

    ``fail_on_error: false`` (a top-level option) keeps exit status 0.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        records = sweep_records(config)
        failed = [r for r in records if r.get("status") != "ok"]
        if not failed:
            return
        by_status: dict[str, int] = {}
        for r in failed:
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        counts = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        message = f"{len(failed)} of {len(records)} runs failed ({counts})"
        if config.get("fail_on_error", True):
            print(f"benchpq: {message}; exit status 1 (fail_on_error=false to exit 0)",
                  file=sys.stderr, flush=True)
            sys.exit(1)
        print(f"benchpq: {message}", file=sys.stderr, flush=True)
