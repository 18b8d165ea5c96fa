"""Run records: one JSON file per run, written atomically.

A sweep directory holds ``records/<run_id>.json``. A record is a dict::

    {
      "run_id": str,             # hash of the run-defining config (see run_id())
      "build_id": str,           # shared by the search settings of one build
      "status": "ok" | "error" | "crashed" | "timeout" | "interrupted",
      "message": str,            # error text, "" when ok
      "algorithm": str, "dataset": str, "task": str,
      "dataset_metric": str,     # the dataset's metric: l2, ip or cosine (None if not loaded)
      "params": {...},           # the algorithm's config (without "name"), search setting included
      "search": {...},           # the search setting of this record ({} for none)
      "build_cached": bool,      # the model came from the trained-model cache
      "code_stamp": str,         # the plugin's code (benchpq.sweep.code_stamp.code_version)
      "metric_specs": {...},     # the plugin's own metrics, declared (benchpq.metric_table)
      "seed": int, "threads": int, # threads: of the search (task.search_threads) or the run
      "build_threads": int,      # the threads the model was built with
      "simd": str,               # SIMD path of the native core: scalar, avx2, avx512, native
      "metrics": {...},          # names as in docs/metrics.md: "recall@10", "mse", "train_s", ...
      "config": {...},           # the full resolved config
      "provenance": {...},       # git commit, package versions, CPU, threads, start time;
                                 # "native": the core's build (SIMD path, OpenMP, flags,
                                 # compiler) where the run loaded it
      "wall_s": float            # wall time of the child process
    }

The report reads records only; nothing else in benchpq depends on the report.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

log = logging.getLogger("benchpq")

STATUSES = ("ok", "error", "crashed", "timeout", "interrupted")

# Config keys that say where or how a run executes, not what it measures:
# changing them must not change the run id (so a rerun is recognised).
NON_DEFINING_KEYS = ("results_dir", "data_dir", "cache_dir", "name", "timeout_s", "force",
                     "hydra", "report", "cache_models", "fail_on_error")


def run_id(config: dict) -> str:
    """A stable 16-hex-digit id of the run-defining part of a resolved config."""
    defining = {k: v for k, v in config.items() if k not in NON_DEFINING_KEYS}
    text = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def records_dir(sweep_dir: str | os.PathLike) -> Path:
    return Path(sweep_dir) / "records"


def record_path(sweep_dir: str | os.PathLike, rid: str) -> Path:
    return records_dir(sweep_dir) / f"{rid}.json"


def write_record(path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` as JSON to ``path`` atomically (temp file, fsync, rename).

    NaN and infinite floats are written as null (JSON has no such numbers).
    """
    path = Path(path)
    record = json_safe(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True, default=_json_default,
                      allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(path: str | os.PathLike) -> dict:
    """Read one record; a corrupt file raises ValueError naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupt run record {path}: {exc}") from None


def iter_records(sweep_dir: str | os.PathLike):
    """Yield (path, record) for every record of a sweep directory, sorted by path."""
    for path in sorted(records_dir(sweep_dir).glob("*.json")):
        yield path, read_record(path)


def find_completed(sweep_dir: str | os.PathLike, rid: str) -> dict | None:
    """The record of run ``rid`` if it exists and finished with status 'ok'.

    A file that is not a readable record is treated as missing (the run is
    made again and overwrites it), with a warning naming it.
    """
    path = record_path(sweep_dir, rid)
    if not path.exists():
        return None
    try:
        record = read_record(path)
        if not isinstance(record, dict) or "status" not in record:
            raise ValueError(f"not a run record (a {type(record).__name__} without 'status')")
    except (ValueError, OSError) as exc:
        log.warning("record %s is malformed (%s): the run is made again", path, exc)
        return None
    return record if record.get("status") == "ok" else None


def json_safe(value):
    """``value`` with numpy scalars and arrays made plain and NaN/Inf floats made None."""
    import numpy as np
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(obj):
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
