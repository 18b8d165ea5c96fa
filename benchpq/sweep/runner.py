"""One Hydra job is one run: one build searched at every setting of its grid.

Settings already recorded are skipped; the rest execute in a child process
(:mod:`benchpq.sweep.child`), a fresh interpreter, so an exception, a crash
(segfault, abort) or a timeout in a plugin becomes a record with its status
and message, and the sweep goes on. Each setting's record is written
atomically to ``<results_dir>/<name>/records/<run_id>.json``; the child's
output goes to ``<results_dir>/<name>/logs/<build_id>.log``.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import registry
from ..checks import InputError
from ..datasets.fingerprint import dataset_fingerprint
from ..measure import search_grid
from ..measure.threads import search_thread_counts, thread_environment
from ..native import simd
from ..store import provenance
from ..store.model_cache import SEARCH_ONLY_TASK_KEYS
from ..store.records import find_completed, read_record, record_path, run_id, write_record
from . import lifecycle
from .options import check_run_options

log = logging.getLogger("benchpq")

LOG_TAIL_CHARS = 2000
# The widest log message of an ordinary run: its lines stay within 160 columns after the
# console's "[12:00:00][INFO] " (conf/hydra/job_logging/benchpq.yaml).
LINE_WIDTH = 160 - len("[12:00:00][INFO] ")
# what the child's logging writes (benchpq.sweep.child.LOG_FORMAT): relayed to the sweep's log
CHILD_LOG_LINE = re.compile(r"^(?P<level>INFO|WARNING|ERROR|CRITICAL) benchpq: (?P<message>.*)$")
# an absolute path in a log message (two components at least), up to a space or quote
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/[^\s'\"/,;:()]+(?:/[^\s'\"/,;:()]+)+")


def sweep_dir(config: dict) -> Path:
    """Where the records of the run's sweep live: ``<results_dir>/<name>``."""
    return Path(config.get("results_dir") or "results").expanduser().absolute() / config["name"]


def execute(config: dict, label: str = "", done_label=None) -> list[dict]:
    """Run (or skip) the run described by a resolved config; return its records.

    A run builds one model and searches it at every setting of the algorithm's
    search grid (:mod:`benchpq.measure.search_grid`); each setting gets a record of its
    own, whose run id is that of the config with the grid replaced by the
    setting. Settings already recorded as ok are skipped (unless ``force``);
    the others run in one child process. ``label`` (e.g. ``[3/12]``) starts the
    run's log lines; ``done_label()``, if given, is called when the run is done and
    starts the lines of its finished settings instead (e.g. ``[3/12, ~4 min left]``).
    """
    check_run_options(config)
    config = with_dataset_fingerprint(with_simd_path(config))
    out_dir = sweep_dir(config)
    try:
        settings = search_grid.expand(config["algorithm"].get(search_grid.SEARCH_KEY))
    except InputError as exc:
        return [_write(out_dir, config, {}, {"status": "error", "message": str(exc)},
                       provenance.collect(seed=config.get("seed")), 0.0, None, label)]
    counts = (search_thread_counts(config["task"], int(config.get("threads", 1)))
              if config["task"].get("name") == "search" else None) or [None]
    points = [(setting, count, point_config(config, setting, count))
              for setting in settings for count in counts]
    records, pending = {}, []
    for setting, count, cfg in points:
        rid = run_id(cfg)
        done = None if config.get("force", False) else find_completed(out_dir, rid)
        if done is not None:
            log.info("%sskip %s%s: already recorded in %s", f"{label} " if label else "",
                     config["algorithm"].get("name"),
                     f" [{search_grid.describe(setting)}]" if setting else "",
                     _shown_path(out_dir, record_path(out_dir, rid)))
            done["skipped"] = True
            records[rid] = done
        else:
            pending.append((setting, count, cfg, rid))
    if pending:
        log.info("%s%s on %s: %s%s", f"{label} " if label else "", config["algorithm"].get("name"),
                 config["dataset"].get("name"),
                 f"{len(pending)} search setting{'s' if len(pending) > 1 else ''}"
                 if any(setting for setting, _, _, _ in pending) else "running",
                 f" ({len(points) - len(pending)} already recorded)"
                 if len(pending) < len(points) else "")
        threads = int(config.get("threads", 1))
        started = provenance.collect(seed=config.get("seed"), threads=threads)
        log_path = out_dir / "logs" / f"{build_id(config)}.log"
        t0 = time.perf_counter()
        unique = []
        for setting, _, _, _ in pending:
            if setting not in unique:
                unique.append(setting)
        result = run_in_child(config, unique, float(config.get("timeout_s", 3600)), threads,
                              log_path, label)
        wall_s = time.perf_counter() - t0
        finished = done_label() if done_label is not None else label
        varying = _varying_keys([setting for setting, _, _ in points])
        # a point searched at one of task.search_threads says its thread count
        by_setting = {json.dumps([p["search"], p.get("threads")], sort_keys=True): p
                      for p in result.get("points", [])}
        for setting, count, cfg, rid in pending:
            point = by_setting.get(json.dumps([setting, count], sort_keys=True))
            if result["status"] != "ok" or point is None:
                outcome = {k: v for k, v in result.items() if k in ("status", "message",
                                                                     "traceback")}
                if result["status"] == "ok":
                    outcome = {"status": "error",
                               "message": f"the task returned no result for {setting}"}
            else:
                outcome = {"status": point["status"], "message": point.get("message", ""),
                           "metrics": {**result.get("build", {}), **point["metrics"]},
                           "build_cached": bool(result.get("build_cached")),
                           "model_key": result.get("model_key"),
                           "metric": result.get("metric"),
                           "code_stamp": result.get("code_stamp"),
                           "metric_specs": result.get("metric_specs") or {}}
            runtime = result.get("runtime", {})
            records[rid] = _write(out_dir, cfg, setting, outcome, {**started, **runtime},
                                  wall_s, log_path, finished, varying)
        if result["status"] == "interrupted":  # recorded; now stop the sweep
            lifecycle.exit_if_orphaned(128 + int(result["signal"]))
            if result["signal"] == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + int(result["signal"]))
    return [records[run_id(cfg)] for _, _, cfg in points]


def with_simd_path(config: dict) -> dict:
    """The config with ``simd`` resolved on this CPU (``auto`` -> ``avx2``, say).

    The path enters the run id: two runs that differ only in their SIMD path are
    two runs, although the portable paths give the same results (their times differ).
    """
    return {**config, "simd": simd.resolve(config.get("simd") or simd.AUTO)}


def with_dataset_fingerprint(config: dict) -> dict:
    """The config with ``dataset_fingerprint``: the content of the files it reads.

    It enters the run id, so a run on changed data is a new run. The config's ``plugins``
    are imported first (a dataset loader may be one). A dataset that cannot be loaded gets
    none here; the run then records the loading error.
    """
    try:
        registry.import_plugins(config.get("plugins"))
        fingerprint = dataset_fingerprint(config["dataset"], config.get("data_dir"),
                                          config.get("cache_dir"))
    except Exception as exc:  # the child loads it again and records the error
        log.debug("no fingerprint for dataset %s: %s", config["dataset"].get("name"), exc)
        fingerprint = None
    return {**config, "dataset_fingerprint": fingerprint}


def point_config(config: dict, setting: dict, threads: int | None = None) -> dict:
    """The config of one search setting: the grid replaced by the setting itself. With
    ``threads`` (one of ``task.search_threads``), ``threads`` is the search's thread count
    and ``build_threads`` the run's, that the model was built with."""
    out = copy.deepcopy(config)
    algorithm = out["algorithm"]
    algorithm.pop(search_grid.SEARCH_KEY, None)
    if setting:
        algorithm[search_grid.SEARCH_KEY] = dict(setting)
    if threads is not None:
        out["build_threads"] = int(out.get("threads", 1))
        out["threads"] = int(threads)
    return out


def build_id(config: dict) -> str:
    """The id shared by every search setting of one build (16 hex digits).

    The run id of the config without its search grid and without the task
    keys that only change how the model is searched.
    """
    out = point_config(config, {})
    out["task"] = {k: v for k, v in out["task"].items() if k not in SEARCH_ONLY_TASK_KEYS}
    if "build_threads" in out:  # one of the searches of task.search_threads
        out["threads"] = out.pop("build_threads")
    return run_id(out)


def _write(out_dir: Path, cfg: dict, setting: dict, outcome: dict, prov: dict, wall_s: float,
           log_path: Path | None, label: str = "", shown_keys=None) -> dict:
    """Write the record of one search setting and log its line; ``shown_keys`` are the
    setting's keys the line names (all when None)."""
    rid = run_id(cfg)
    algorithm = cfg["algorithm"]
    params = {k: v for k, v in algorithm.items() if k not in ("name", search_grid.SEARCH_KEY)}
    params.update(setting)
    record = {
        "run_id": rid,
        "build_id": build_id(cfg),
        "status": outcome["status"],
        "message": outcome.get("message", ""),
        "algorithm": algorithm.get("name"),
        "dataset": cfg["dataset"].get("name"),
        # what "nearest" meant: the loaded dataset's metric, else the config's
        "dataset_metric": outcome.get("metric") or cfg["dataset"].get("metric"),
        "task": cfg["task"].get("name"),
        "params": params,
        "search": dict(setting),
        "seed": cfg.get("seed"),
        "threads": int(cfg.get("threads", 1)),
        "build_threads": int(cfg.get("build_threads", cfg.get("threads", 1))),
        "simd": cfg.get("simd"),
        "metrics": outcome.get("metrics", {}),
        "build_cached": outcome.get("build_cached", False),
        "model_key": outcome.get("model_key"),
        # the plugin's code (benchpq.sweep.code_stamp.code_version): runs of other code are not
        # averaged together by the report
        "code_stamp": outcome.get("code_stamp"),
        # declarations of the plugin's own metrics (benchpq.metric_table), so a report
        # can read them without importing the plugin
        "metric_specs": outcome.get("metric_specs") or {},
        "config": cfg,
        "provenance": prov,
        "wall_s": wall_s,
        "log": str(log_path) if log_path else None,
    }
    if "traceback" in outcome:
        record["traceback"] = outcome["traceback"]
    path = write_record(record_path(out_dir, rid), record)
    level = logging.INFO if record["status"] == "ok" else logging.WARNING
    shown = {k: v for k, v in setting.items() if shown_keys is None or k in shown_keys}
    if "build_threads" in cfg:  # one of task.search_threads: name its thread count
        shown["threads"] = record["threads"]
    log.log(level, "%s", finished_line(record, shown, _shown_path(out_dir, path), label))
    return record


def finished_line(record: dict, setting: dict, path: str, label: str = "",
                  width: int = LINE_WIDTH) -> str:
    """The log line of a finished setting: ``[3/36, ~4 min left] ok faiss_ivfpq [nprobe=8]
    12.3 s: recall@1=0.5312, mse=2.197e+04 -> search-siftsmall/records/<run_id>.json``.

    The label, names, elapsed time and path are always shown; metrics that would make
    the line wider than ``width`` are left out (the sweep's table and the record have
    them all), and a failure's message is cut to the room left.
    """
    head = (f"{label} " if label else "") + f"{record['status']} {record['algorithm']}"
    if setting:
        head += f" [{search_grid.describe(setting)}]"
    head += f" {format_seconds(record['wall_s'])}"
    if record.get("build_cached"):
        head += " (cached build)"
    tail = f" -> {path}"
    room = width - len(head) - len(tail) - len(": ")
    items = []
    for item in _short_metrics(record["metrics"]):
        if len(", ".join(items + [item])) > room:
            break
        items.append(item)
    message = " ".join(str(record.get("message") or "").split())
    if message:
        left = room - len(", ".join(items)) - len(", " if items else "") - len("()")
        if left >= 8:
            items.append(f"({message if len(message) <= left else message[:left - 3] + '...'})")
    return head + (f": {', '.join(items)}" if items else "") + tail


def format_seconds(seconds: float) -> str:
    """A run's elapsed time for a log line: ``0.42 s``, ``12.3 s``, ``734 s``."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


def _shown_path(out_dir: Path, path: Path) -> str:
    """``path`` relative to the results folder (the folder that holds the sweep's folder)."""
    try:
        return str(Path(path).relative_to(out_dir.parent))
    except ValueError:
        return str(path)


def _varying_keys(settings: list[dict]) -> set[str] | None:
    """The keys whose values differ between a run's search settings; None (all keys) for a
    single setting, whose line then names all of it."""
    if len(settings) < 2:
        return None
    keys = {k for setting in settings for k in setting}
    return {k for k in keys if len({repr(s.get(k)) for s in settings}) > 1}


def run_in_child(config: dict, settings: list[dict], timeout_s: float, threads: int,
                 log_path: Path, label: str = "") -> dict:
    """Execute the run in ``python -m benchpq.sweep.child``; never raises for plugin failures.

    The job's files live in ``<sweep>/.jobs/<pid>-*`` and are removed when it ends
    (folders left by a killed sweep are removed by the next run in that sweep). A
    SIGINT or SIGTERM while waiting kills the run and returns status ``interrupted``
    with the signal number in ``signal``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    jobs = sweep_dir(config) / ".jobs"
    _remove_stale_jobs(jobs)
    jobs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=jobs))
    lifecycle.watch_parent_if_worker()
    try:
        job_file, result_file = tmp / "job.json", tmp / "result.json"
        job_file.write_text(json.dumps({"config": config, "settings": settings}, default=str))
        with open(log_path, "w") as logf, thread_environment(threads), \
                lifecycle.signals_interrupt():
            proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m",
                                     "benchpq.sweep.child", str(job_file), str(result_file)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            lifecycle.track(proc.pid)
            relay = threading.Thread(target=_relay_output, args=(proc.stdout, logf, label),
                                     name="benchpq-relay", daemon=True)
            relay.start()
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return {"status": "timeout",
                        "message": f"run exceeded timeout_s={timeout_s:g} and was killed"}
            except lifecycle.Interrupted as exc:
                _kill_group(proc)
                return {"status": "interrupted", "signal": exc.signum,
                        "message": f"the sweep received {exc} and killed the run"}
            finally:
                lifecycle.untrack(proc.pid)
                relay.join(timeout=10)
        if code == 0 and result_file.exists():
            return read_record(result_file)
        return {"status": "crashed", "message": _crash_message(code, log_path)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _relay_output(stream, logf, label: str) -> None:
    """Copy the child's output to its log file; show its benchpq log lines live (made to
    fit :data:`LINE_WIDTH`; the log file keeps them whole)."""
    prefix = f"{label} " if label else ""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        logf.write(line)
        logf.flush()
        match = CHILD_LOG_LINE.match(line)
        if match:
            log.log(logging.getLevelName(match["level"]), "%s",
                    fit_line(prefix + match["message"]))
    stream.close()


def fit_line(message: str, width: int = LINE_WIDTH) -> str:
    """``message`` within ``width`` characters: absolute paths shortened to ``.../<file
    name>`` first (``/home/me/.cache/benchpq/groundtruth/ab12.npz`` -> ``.../ab12.npz``),
    then the end cut off (``...``)."""
    if len(message) <= width:
        return message
    message = ABSOLUTE_PATH.sub(lambda m: f".../{Path(m[0]).name}", message)
    return message if len(message) <= width else message[:width - 3] + "..."


def _remove_stale_jobs(jobs: Path) -> None:
    """Remove job folders whose sweep process is gone (killed before it could clean up)."""
    if not jobs.is_dir():
        return
    for folder in jobs.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not lifecycle.pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


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


def _short_metrics(m: dict) -> list[str]:
    """The headline metrics of a record, as ``name=value``."""
    keys = [k for k in ("recall@1", "recall@10", "recall@100", "mse", "error", "nmi") if k in m]
    return [f"{k}={m[k]:.4g}" for k in keys]
