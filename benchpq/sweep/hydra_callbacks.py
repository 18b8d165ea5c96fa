"""Hydra callbacks: count a sweep's jobs when it starts; when it ends, print its table and
exit non-zero if any of its runs failed. hydra/launcher=ray_local adds one that keeps its
Ray instance on 127.0.0.1."""
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

from ..store.records import read_record
from . import hydra_paths  # noqa: F401  (registers ${benchpq.abspath:} in Ray / submitit workers)

log = logging.getLogger("benchpq")

SWEEP_SIZE_ENV = "BENCHPQ_SWEEP_SIZE"
# When the sweep started (seconds since the epoch), for the estimate of the time left.
SWEEP_START_ENV = "BENCHPQ_SWEEP_START"
# Each job leaves this file (its record path) in its Hydra output dir; see benchpq.sweep.cli.
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
        from ..report import records_to_frame, summary_table
        from ..report.load import drop_duplicate_runs
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


# Ray (2.60) replaces a node address of 127.0.0.1 given to ray.init by this machine's
# external address, and its processes then listen there or on every interface, unless this
# variable is 0 when ray is imported (the default on macOS and Windows). With it, Ray's node
# address is 127.0.0.1 and every process binds to it.
RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


def _is_loopback(ip: str) -> bool:
    import ipaddress
    address = ipaddress.ip_address(ip.split("%")[0])
    return str(getattr(address, "ipv4_mapped", None) or address) == LOOPBACK


def process_listeners(root_pid: int | None = None) -> list[tuple[str, str]]:
    """(process, "address:port") of every listening TCP socket of a process (this one, the
    driver, by default) and its descendants; a Python descendant is named by its script."""
    import psutil
    root = psutil.Process(root_pid)
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            name = proc.name()
            if proc.pid == root.pid:
                name = "driver"
            elif name.startswith("python"):
                scripts = [a for a in proc.cmdline()[1:] if a.endswith(".py")]
                name = Path(scripts[0]).name if scripts else name
            sockets = proc.net_connections(kind="tcp")
        except psutil.Error:  # gone meanwhile
            continue
        found += [(f"{name} (pid {proc.pid})", f"{c.laddr.ip}:{c.laddr.port}")
                  for c in sockets if c.status == psutil.CONN_LISTEN]
    return found


class RayLoopback(Callback):
    """Keeps the local Ray instance of hydra/launcher=ray_local (which registers this
    callback) on 127.0.0.1, and says so when it is not.

    At the start of the multirun it sets ``$RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, before
    the launcher imports ray and starts it (Ray's processes inherit it). At the end, while
    the instance still runs, it logs one warning naming every listening socket of Ray's
    processes (this process and its descendants) that is not on 127.0.0.1, and why (not
    when a run failed: :class:`SweepStatus`, called before it, exits first).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        os.environ[RAY_CLUSTER_ENV] = "0"
        constants = sys.modules.get("ray._private.ray_constants")
        if getattr(constants, "ENABLE_RAY_CLUSTER", False):
            log.warning("ray was imported before this sweep started, so %s=0 comes too late: "
                        "Ray will listen on this machine's external address", RAY_CLUSTER_ENV)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return
        exposed = [f"{name} on {address}" for name, address in process_listeners()
                   if not _is_loopback(address.rsplit(":", 1)[0])]
        if not exposed:
            return
        node = ray.util.get_node_ip_address()
        if _is_loopback(node):
            why = (f"Ray {ray.__version__} opened them there although its node address is "
                   f"{LOOPBACK}; only a firewall keeps other machines from them")
        else:
            why = (f"Ray's node address is {node}: ${RAY_CLUSTER_ENV} was not 0 when ray "
                   "was imported")
        log.warning("Ray listens beyond %s: %s (%s)", LOOPBACK, ", ".join(exposed), why)


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
