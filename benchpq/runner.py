"""One Hydra job is one run: skip it if recorded, else execute it in a child process.

The child (:mod:`benchpq.child`) is a fresh interpreter, so an exception, a
crash (segfault, abort) or a timeout in a plugin becomes a record with its
status and message, and the sweep goes on. The record is written atomically
to ``<results_dir>/<name>/records/<run_id>.json``; the child's output goes to
``<results_dir>/<name>/logs/<run_id>.log``.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import provenance
from .records import find_completed, read_record, record_path, run_id, write_record
from .threads import thread_environment

log = logging.getLogger("benchpq")

LOG_TAIL_CHARS = 2000


def sweep_dir(config: dict) -> Path:
    """Where the records of the run's sweep live: ``<results_dir>/<name>``."""
    return Path(config.get("results_dir") or "results").expanduser().absolute() / config["name"]


def execute(config: dict) -> dict:
    """Run (or skip) the run described by a resolved config; return its record."""
    out_dir = sweep_dir(config)
    rid = run_id(config)
    if not config.get("force", False):
        done = find_completed(out_dir, rid)
        if done is not None:
            log.info("skip %s: already recorded in %s", rid, record_path(out_dir, rid))
            done["skipped"] = True
            return done

    threads = int(config.get("threads", 1))
    started = provenance.collect(seed=config.get("seed"), threads=threads)
    log_path = out_dir / "logs" / f"{rid}.log"
    t0 = time.perf_counter()
    result = run_in_child(config, float(config.get("timeout_s", 3600)), threads, log_path)
    wall_s = time.perf_counter() - t0

    algorithm = config["algorithm"]
    record = {
        "run_id": rid,
        "status": result["status"],
        "message": result.get("message", ""),
        "algorithm": algorithm.get("name"),
        "dataset": config["dataset"].get("name"),
        "task": config["task"].get("name"),
        "params": {k: v for k, v in algorithm.items() if k != "name"},
        "seed": config.get("seed"),
        "threads": threads,
        "metrics": result.get("metrics", {}),
        "config": config,
        "provenance": {**started, **result.get("runtime", {})},
        "wall_s": wall_s,
        "log": str(log_path),
    }
    if "traceback" in result:
        record["traceback"] = result["traceback"]
    path = write_record(record_path(out_dir, rid), record)
    level = logging.INFO if record["status"] == "ok" else logging.WARNING
    log.log(level, "%s %s on %s: %s%s -> %s", record["status"], record["algorithm"],
            record["dataset"], _short_metrics(record["metrics"]),
            f" ({record['message']})" if record["message"] else "", path)
    return record


def run_in_child(config: dict, timeout_s: float, threads: int, log_path: Path) -> dict:
    """Execute the run in ``python -m benchpq.child``; never raises for plugin failures."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="benchpq-run-") as tmp:
        config_file, result_file = Path(tmp, "config.json"), Path(tmp, "result.json")
        config_file.write_text(json.dumps(config, default=str))
        with open(log_path, "w") as logf, thread_environment(threads):
            proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "benchpq.child", str(config_file),
                                     str(result_file)], stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return {"status": "timeout",
                        "message": f"run exceeded timeout_s={timeout_s:g} and was killed"}
        if code == 0 and result_file.exists():
            return read_record(result_file)
    return {"status": "crashed", "message": _crash_message(code, log_path)}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"child process killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"child process killed by signal {-code}"
    return f"child process exited with code {code} without a result"


def _crash_message(code: int, log_path: Path) -> str:
    """The exit status, the interpreter's fatal-error line if any, then the log's tail."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        text = ""
    fatal = next((line.strip() for line in text.splitlines()
                  if line.startswith("Fatal Python error")), None)
    parts = [_describe_exit(code)] + ([fatal] if fatal else [])
    tail = text[-LOG_TAIL_CHARS:].strip() or "(empty log)"
    return "; ".join(parts) + f"; log tail: {tail}"


def _short_metrics(m: dict) -> str:
    keys = [k for k in ("recall@1", "recall@10", "recall@100", "mse", "error", "nmi") if k in m]
    return ", ".join(f"{k}={m[k]:.4g}" for k in keys)
