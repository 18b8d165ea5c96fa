"""Run records -> one pandas DataFrame, one row per run.

Columns, in order: ``run_id, sweep, status, message, algorithm, dataset, dataset_metric``
(what "nearest" meant: ``l2``, ``ip`` or ``cosine``), ``task, query_mode`` (a search's ``batch``
or ``single``), ``seed, threads`` (a search's threads),
``build_threads`` (the model's: other than ``threads`` where one build was searched at
several thread counts, ``task.search_threads``), ``simd`` (the native core's SIMD path; None
in records older than it), ``machine`` (the CPU model),
``code_stamp`` (the plugin's code) and ``dataset_fingerprint`` (the content of the data
read), then one column per algorithm
param (``M``, ``nbits``, ...), one per metric (``recall@10``, ``mse``, ...), then
``build_id, build_cached`` (the build a run searched, and whether it came from the
model cache, so its build metrics were measured by an earlier run), ``wall_s,
started_at, path, per_query`` (the run's per-query values as a dict, or None).

Each run is one row, however many sweep folders recorded it: records of one run id
are read once (see :func:`drop_duplicate_runs`).
A param whose name is also a metric or a fixed column is named ``param.<name>``;
a metric whose name is a fixed column (e.g. ``threads``) is named ``metric.<name>``.
The param and metric column names are kept in ``df.attrs["param_columns"]`` and
``df.attrs["metric_columns"]``; see :func:`param_columns` / :func:`metric_columns`.
Published references carried by the records' configs are in ``df.attrs["references"]``
(see :mod:`.references`); the plugin metrics the records declare in
``df.attrs["metric_specs"]`` ({name: spec}, see :mod:`benchpq.metric_table`).
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..store.records import read_record, records_dir
from .names import better_direction, is_known_metric

BASE_COLUMNS = ("run_id", "sweep", "status", "message", "algorithm", "dataset", "dataset_metric",
                "task", "query_mode", "seed", "threads", "build_threads", "simd", "machine",
                "code_stamp", "dataset_fingerprint")
TAIL_COLUMNS = ("build_id", "build_cached", "wall_s", "started_at", "path", "per_query")
# Where a record keeps the columns that are not top-level keys of its own name.
NESTED_COLUMNS = {"machine": ("provenance", "cpu_model"),
                  "dataset_fingerprint": ("config", "dataset_fingerprint"),
                  "query_mode": ("config", "task", "query_mode")}
# Key of a run's metrics holding per-query values (benchpq.measure.uncertainty.search_uncertainty):
# not a metric column; kept as a dict in the ``per_query`` column for paired tests.
PER_QUERY_KEY = "per_query"
# Provenance keys that may hold the start time of a run (benchpq writes "started_at").
START_KEYS = ("started_at", "start_time", "started", "start", "timestamp")


class ReportError(ValueError):
    """A report cannot be made: missing path, no records, unknown column, bad argument."""


class CorruptRecordWarning(UserWarning):
    """A record file could not be read and was skipped."""


class DuplicateRunWarning(UserWarning):
    """One run id is recorded with different results in several files; one was kept."""


def load_records(paths, status: str | Iterable[str] | None = "ok") -> pd.DataFrame:
    """Load the run records found at ``paths`` into a DataFrame (one row per run).

    Args:
        paths: one path or a list of paths. Each may be a sweep directory (holding
            ``records/``), a ``records/`` directory, a single record file, or any
            directory above sweep directories (e.g. the results root): every
            ``records/`` below it is read.
        status: keep only runs with this status (or these statuses); None keeps all.
            ``df.attrs["excluded_by_status"]`` counts the runs left out, by status.

    Corrupt files are skipped with a :class:`CorruptRecordWarning` naming them (and
    listed in ``df.attrs["corrupt_files"]``). Raises :class:`ReportError` if a path
    does not exist or holds no record.
    """
    files = find_record_files(paths)
    records, sources, corrupt = _read_all(files)
    if not records:
        raise ReportError(f"no readable run records in {', '.join(map(str, _as_paths(paths)))}")
    df = drop_duplicate_runs(records_to_frame(records, sources))
    df.attrs["corrupt_files"] = corrupt
    return filter_status(df, status)


def drop_duplicate_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run id: a run recorded in several sweep folders counts once.

    Copies with the same status and metrics are one run read twice: the first is kept
    (its ``sweep`` becomes the sweeps joined by ', '). Copies that differ (the run was
    redone, e.g. with ``force=true``) keep the newest and warn with a
    :class:`DuplicateRunWarning` naming the files. ``attrs["duplicate_records"]`` counts
    the rows dropped.
    """
    if df.empty or not df["run_id"].duplicated().any():
        df.attrs["duplicate_records"] = 0
        return df
    metrics = metric_columns(df)
    keep, differing = [], []
    for rid, group in df.groupby("run_id", sort=False, dropna=False):
        if len(group) == 1 or pd.isna(rid):
            keep.extend(group.index)
            continue
        content = group[["status", *metrics]].astype(str).agg("|".join, axis=1)
        if content.nunique() == 1:
            first = group.index[0]
            df.loc[first, "sweep"] = ", ".join(dict.fromkeys(map(str, group["sweep"])))
            keep.append(first)
        else:
            newest = group["started_at"].fillna(pd.Timestamp.min.tz_localize("UTC")).idxmax()
            keep.append(newest)
            differing.append(f"{rid} ({', '.join(str(p) for p in group['path'])}; kept "
                             f"{df.loc[newest, 'path']})")
    if differing:
        warnings.warn(f"{len(differing)} run{'s are' if len(differing) > 1 else ' is'} recorded "
                      f"with different results in several files, the newest record kept: "
                      f"{'; '.join(differing)}", DuplicateRunWarning, stacklevel=3)
    out = df.loc[sorted(keep)].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    out.attrs["duplicate_records"] = len(df) - len(out)
    return out


def find_record_files(paths) -> list[tuple[Path, str]]:
    """(record file, sweep name) for every record at or below ``paths``, without duplicates."""
    found, seen = [], set()
    for path in _as_paths(paths):
        files = _record_files_at(path)
        if not files:
            raise ReportError(f"no run records in {path} (expected {path}/records/*.json "
                              "or sweep directories below it)")
        for file, sweep in files:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append((file, sweep))
    return found


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [Path(p) for p in paths]


def _record_files_at(path: Path) -> list[tuple[Path, str]]:
    if not path.exists():
        raise ReportError(f"no such file or directory: {path}")
    if path.is_file():
        parent = path.parent
        return [(path, parent.parent.name if parent.name == "records" else parent.name)]
    return [(file, name) for sweep, name in _sweeps_at(path)
            for file in sorted(records_dir(sweep).glob("*.json"))]


def _sweeps_at(path: Path) -> list[tuple[Path, str]]:
    """Sweep directories at or below ``path``, named relative to ``path``."""
    if records_dir(path).is_dir():
        return [(path, path.resolve().name)]
    if path.name == "records":
        return [(path.parent, path.resolve().parent.name)]
    below = sorted(p.parent for p in path.rglob("records") if p.is_dir())
    return [(sweep, sweep.relative_to(path).as_posix()) for sweep in below]


def _read_all(files):
    """Read every file; corrupt ones are warned about and returned apart."""
    records, sources, corrupt = [], [], []
    for file, sweep in files:
        try:
            record = read_record(file)
            if not isinstance(record, dict) or "status" not in record:
                raise ValueError(f"not a run record (no 'status'): {file}")
        except (ValueError, OSError) as exc:
            text = str(exc) if str(file) in str(exc) else f"{file}: {exc}"
            warnings.warn(f"{text} (skipped)", CorruptRecordWarning, stacklevel=3)
            corrupt.append(str(file))
            continue
        records.append(record)
        sources.append((str(file), sweep))
    return records, sources, corrupt


def records_to_frame(records: Iterable[dict],
                     sources: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per record dict (columns as in the module docstring).

    ``sources`` gives (path, sweep name) per record; without it ``path`` is empty and
    the sweep is the record's ``config["name"]`` (the sweep directory name).
    """
    records = list(records)
    sources = list(sources) if sources is not None else [(None, None)] * len(records)
    metric_keys = [k for k in _union(r.get("metrics") for r in records) if k != PER_QUERY_KEY]
    param_keys = _union(r.get("params") for r in records)
    fixed = set(BASE_COLUMNS) | set(TAIL_COLUMNS)
    metric_col = {k: f"metric.{k}" if k in fixed else k for k in metric_keys}
    param_col = {k: f"param.{k}" if k in fixed or k in metric_keys else k for k in param_keys}
    rows = [_row(r, path, sweep, param_col, metric_col) for r, (path, sweep) in
            zip(records, sources)]
    columns = [*BASE_COLUMNS, *param_col.values(), *metric_col.values(), *TAIL_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    df.attrs["param_columns"] = list(param_col.values())
    df.attrs["metric_columns"] = list(metric_col.values())
    df.attrs["corrupt_files"] = []
    df.attrs["excluded_by_status"] = {}
    df.attrs["references"] = collect_references(zip(records, df["sweep"]))
    df.attrs["metric_specs"] = collect_metric_specs(records)
    return df


def collect_metric_specs(records) -> dict[str, dict]:
    """The plugin metrics the records declare (their ``metric_specs``), {name: spec}.

    Two records declaring one name differently: a :class:`ReportError` naming both, since
    the report could only guess which one its values follow.
    """
    out: dict[str, dict] = {}
    for record in records:
        specs = record.get("metric_specs") if isinstance(record, dict) else None
        for name, spec in (specs or {}).items() if isinstance(specs, dict) else ():
            if not isinstance(spec, dict):
                raise ReportError(f"run {record.get('run_id')}: metric_specs[{name!r}] is not a "
                                  f"mapping: {spec!r:.80}")
            if name in out and out[name] != spec:
                raise ReportError(f"metric {name!r} is declared differently by the records of "
                                  f"run {record.get('run_id')} and an earlier run: {spec} "
                                  f"against {out[name]}")
            out[str(name)] = spec
    return out


def _union(dicts) -> list[str]:
    """Keys of all the dicts, in order of first appearance (non-dicts are ignored)."""
    keys: dict[str, None] = {}
    for d in dicts:
        if isinstance(d, dict):
            keys.update(dict.fromkeys(map(str, d)))
    return list(keys)


def _row(record: dict, path, sweep, param_col: dict, metric_col: dict) -> dict:
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    row = {name: _scalar(_field(record, name)) for name in (*BASE_COLUMNS, *TAIL_COLUMNS)}
    row["message"] = row["message"] or ""
    row["sweep"] = sweep if sweep is not None else config.get("name")
    for section, columns in (("params", param_col), ("metrics", metric_col)):
        values = record.get(section)
        if isinstance(values, dict):
            row.update({columns[str(k)]: _scalar(v) for k, v in values.items()
                        if str(k) in columns})
    metrics = record.get("metrics")
    per_query = metrics.get(PER_QUERY_KEY) if isinstance(metrics, dict) else None
    row["per_query"] = per_query if isinstance(per_query, dict) else None
    row["started_at"] = _start_time(record.get("provenance"))
    row["path"] = path
    return row


def _field(record: dict, name: str):
    """A record's value of column ``name``: its own key, or where :data:`NESTED_COLUMNS` says."""
    if name not in NESTED_COLUMNS:
        value = record.get(name)
    else:
        value = record
        for key in NESTED_COLUMNS[name]:
            value = value.get(key) if isinstance(value, dict) else None
    if value is None and name == "query_mode" and record.get("task") == "search":
        return "batch"  # searches recorded before the option sent every query in one call
    if value is None and name == "dataset_metric" and record.get("task") in ("search", None):
        dataset = (record.get("config") or {}).get("dataset") or {}
        return dataset.get("metric") or "l2"  # records before metrics: squared L2
    if value is None and name == "build_threads":
        return record.get("threads")  # records before the option: built and searched alike
    return value


def _scalar(value):
    """A cell value: scalars as they are, lists and dicts as compact JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _start_time(provenance) -> pd.Timestamp:
    """The run's start time from its provenance (ISO text or epoch seconds), else NaT."""
    if not isinstance(provenance, dict):
        return pd.NaT
    value = next((provenance[k] for k in START_KEYS if provenance.get(k) is not None), None)
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return pd.Timestamp(value, unit="s", tz="UTC")
        if isinstance(value, str):
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):
        pass
    return pd.NaT


def collect_references(records_and_sweeps) -> list[tuple[dict, str]]:
    """(reference, sweep) pairs from (record, sweep) pairs, once each, in order."""
    seen, out = set(), []
    for record, sweep in records_and_sweeps:
        config = record.get("config") if isinstance(record, dict) else None
        report = config.get("report") if isinstance(config, dict) else None
        refs = report.get("references") if isinstance(report, dict) else None
        for ref in refs or ():
            key = (json.dumps(ref, sort_keys=True, default=str), sweep)
            if key not in seen:
                seen.add(key)
                out.append((ref, sweep))
    return out


def filter_status(df: pd.DataFrame, status: str | Iterable[str] | None) -> pd.DataFrame:
    """Rows of ``df`` whose status is ``status`` (str or several); None keeps all.

    Counts of the rows left out, by status, go to ``attrs["excluded_by_status"]``.
    """
    if status is None:
        return df
    wanted = {status} if isinstance(status, str) else set(status)
    keep = df["status"].isin(wanted)
    excluded = df.loc[~keep, "status"].fillna("?").value_counts()
    out = df[keep].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    out.attrs["excluded_by_status"] = {str(k): int(v) for k, v in excluded.items()}
    return out


def parse_floors(values: Iterable[str]) -> dict[str, float]:
    """``["recall@10=0.9", ...]`` -> {metric: floor}; a metric must have a better direction."""
    floors = {}
    for value in values:
        name, sep, number = value.partition("=")
        name = name.strip()
        try:
            floors[name] = float(number)
        except ValueError:
            raise ReportError(f"--floor {value!r}: expected METRIC=NUMBER, e.g. "
                              "recall@10=0.9") from None
        if not sep or not is_known_metric(name) or better_direction(name) is None:
            raise ReportError(f"--floor {value!r}: {name!r} is not a metric with a better "
                              "direction (e.g. recall@10, qps, mse)")
    return floors


def at_floors(df: pd.DataFrame, floors: dict[str, float]) -> pd.DataFrame:
    """Rows of ``df`` at least as good as every floor: metric >= floor where higher is
    better (recall, qps), <= where lower is (mse, times); a row without the metric is out."""
    keep = pd.Series(True, index=df.index)
    for name, floor in floors.items():
        values = pd.to_numeric(df[name], errors="coerce") if name in df else \
            pd.Series(float("nan"), index=df.index)
        keep &= values >= floor if better_direction(name) == "max" else values <= floor
    out = df[keep].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def param_columns(df: pd.DataFrame) -> list[str]:
    """The algorithm-param columns of a frame made by :func:`load_records`.

    Without the loader's attrs: every column that is neither fixed nor a known metric.
    """
    if "param_columns" in df.attrs:
        return [c for c in df.attrs["param_columns"] if c in df.columns]
    fixed = set(BASE_COLUMNS) | set(TAIL_COLUMNS)
    return [c for c in df.columns if c not in fixed and not is_known_metric(c)]


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a frame made by :func:`load_records` (or the known metric names)."""
    if "metric_columns" in df.attrs:
        return [c for c in df.attrs["metric_columns"] if c in df.columns]
    fixed = set(BASE_COLUMNS) | set(TAIL_COLUMNS)
    return [c for c in df.columns if c not in fixed and is_known_metric(c)]
