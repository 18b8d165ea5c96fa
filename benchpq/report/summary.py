"""The default comparison table of a sweep, with its failed runs listed below it."""
from __future__ import annotations

import pandas as pd

from .formatting import format_key, interval_note, render, table_frame
from .load import ReportError, load_records, metric_columns, param_columns
from .names import (
    base_name,
    declared_metrics,
    interval_bound_of,
    recall_rank,
    with_declared_metrics,
)
from .output import FORMATS, output
from .references import reference_table, render_references
from .tables import Table, default_rows, pivot

# Key metrics after the recalls (which come first, sorted by R), in column order.
KEY_METRICS = ("mse", "error", "nmi", "ari", "train_s", "encode_s", "add_s", "search_s",
               "search_s_median", "cluster_s", "qps", "code_bits", "empty_clusters", "model_bytes",
               "peak_rss_bytes")
# The default (terminal-sized) table: 1-recall at 1, 10 and 100, then these.
COMPACT_RECALLS = ("recall@1", "recall@10", "recall@100")
COMPACT_METRICS = ("mse", "error", "nmi", "train_s", "search_s", "cluster_s", "code_bits")
# Width the default table is made to fit (characters).
TERMINAL_WIDTH = 120
MESSAGE_CHARS = 200


@with_declared_metrics
def key_metrics(df: pd.DataFrame, wide: bool = True) -> list[str]:
    """The key metrics present in ``df``.

    ``wide``: every recall (by R), then :data:`KEY_METRICS` in order; otherwise the
    compact set (:data:`COMPACT_RECALLS`, :data:`COMPACT_METRICS`). If none is present,
    every numeric metric column with a value.
    """
    present = [c for c in metric_columns(df) if interval_bound_of(c) is None
               and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    if wide:
        recalls = sorted((c for c in present if base_name(c).startswith("recall@")
                          or "-recall@" in base_name(c)), key=recall_rank)
        chosen = recalls + [m for m in KEY_METRICS if m in present]
    else:
        chosen = [m for m in (*COMPACT_RECALLS, *COMPACT_METRICS) if m in present]
    return chosen or present


@with_declared_metrics
def summary_tables(df: pd.DataFrame, wide: bool = True) -> list[Table]:
    """One table per (dataset, task) of the ok runs of ``df``.

    Rows are ``algorithm`` plus its varying params (and any other condition in which its
    runs differ, see :func:`~benchpq.report.tables.pivot`); columns are the key metrics
    present (:func:`key_metrics` with ``wide``).
    """
    ok = df[df["status"] == "ok"]
    tables = []
    for (dataset, task), group in ok.groupby(["dataset", "task"], dropna=False, sort=True):
        group = group.copy()
        group.attrs = dict(df.attrs)
        metrics = key_metrics(group, wide)
        if not metrics:
            continue
        table = pivot(group, default_rows(group), None, metrics)
        table.context = {"dataset": dataset, "task": task}
        table.title = f"dataset: {format_key(dataset)}, task: {format_key(task)}"
        tables.append(table)
    return tables


def summary_table(data, fmt: str = "markdown", human_bytes: bool = True, wide: bool = False,
                  intervals: bool = True) -> str:
    """The comparison table of a sweep as 'markdown', 'latex' or 'csv' text.

    Args:
        data: a DataFrame from :func:`load_records` (load it with ``status=None`` so that
            failed runs can be listed) or path(s) to load that way.
        fmt: output format. Markdown and LaTeX give one table per (dataset, task), then
            the failed runs (status and message), as comment lines in LaTeX. CSV gives one
            table: aggregated ok rows (status 'ok', n_runs) and one row per failed run.
        human_bytes: print byte counts as KiB/MiB/... (Markdown and LaTeX).
        wide: every key metric; otherwise the compact set of :func:`key_metrics`, and a
            Markdown table wider than :data:`TERMINAL_WIDTH` drops its intervals (the
            footnote says so).
        intervals: show ± and [low, high] intervals (Markdown and LaTeX).
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    df = data if isinstance(data, pd.DataFrame) else load_records(data, status=None)
    with declared_metrics(df.attrs.get("metric_specs")):
        return _summary_text(df, fmt, human_bytes, wide, intervals)


def _summary_text(df: pd.DataFrame, fmt: str, human_bytes: bool, wide: bool,
                  intervals: bool) -> str:
    tables = summary_tables(df, wide)
    failed = df[df["status"] != "ok"]
    if fmt == "csv":
        return output("csv").frame(_summary_frame(tables, failed, df))
    out = output(fmt)
    parts = []
    for table in tables:
        runs = int(table.count.max(axis=1).sum())
        parts.append(out.heading(f"{table.title} ({runs} ok run{'s' if runs != 1 else ''})"))
        text, dropped = render(table, fmt, human_bytes=human_bytes, intervals=intervals), False
        if not wide and intervals and fmt in ("markdown", "terminal") \
                and _width(text) > TERMINAL_WIDTH:
            text, dropped = render(table, fmt, human_bytes=human_bytes, intervals=False), True
        parts.append(text)
        note = table_footnote(table)
        if dropped:
            note += (f" Intervals left out to fit {TERMINAL_WIDTH} columns "
                     "(benchpq-report --wide shows them and every key metric).")
        parts.append(out.note(note))
    duplicates = df.attrs.get("duplicate_records") or 0
    if duplicates:
        parts.append(out.note(f"{duplicates} record{'s' if duplicates > 1 else ''} of runs "
                              "already read from another sweep folder ignored: each run "
                              "counts once."))
    if not tables:
        parts.append(out.note("No successful runs with metrics."))
    if df.attrs.get("references"):
        parts.append(out.heading("Published figures beside ours (measured: mean over seeds)"))
        parts.append(render_references(reference_table(df), fmt))
    parts.append(out.note("\n".join(failure_lines(df, failed))))
    return out.join(parts) + "\n"


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def table_footnote(table: Table) -> str:
    """What a table's values are (mean over how many seeds), its intervals, bold rule and
    marks."""
    counts = table.count.max(axis=1)
    if counts.max() <= 1:
        return f"One run per row. {interval_note(table)}"
    n = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    return f"Values: mean over {n} runs (seeds) per row. {interval_note(table)}"


def failure_lines(df: pd.DataFrame, failed: pd.DataFrame) -> list[str]:
    """Lines listing the failed runs, runs left out by a status filter, unreadable files."""
    lines = [f"Failed runs ({len(failed)}):" if len(failed) else "Failed runs: none."]
    lines += [f"- {describe_failure(row, param_columns(df))}" for _, row in failed.iterrows()]
    excluded = df.attrs.get("excluded_by_status") or {}
    if excluded:
        counts = ", ".join(f"{status}: {n}" for status, n in excluded.items())
        lines.append(f"Runs not loaded because of their status ({counts}); load with "
                     "status=None (benchpq-report --all-status) to list them.")
    corrupt = df.attrs.get("corrupt_files") or []
    if corrupt:
        lines.append(f"Unreadable record files skipped ({len(corrupt)}): {', '.join(corrupt)}")
    return lines


def describe_failure(row: pd.Series, params: list[str]) -> str:
    """'pq(M=32) seed=1 on sift/search: error - ValueError: ... [run 1a2b, sweep s]'."""
    values = ", ".join(f"{p}={format_key(row[p])}" for p in params if format_key(row[p]))
    message = str(row["message"] or "").strip().splitlines()
    message = message[0] if message else "(no message)"
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 3] + "..."
    return (f"{format_key(row['algorithm'])}({values}) seed={format_key(row['seed'])} on "
            f"{format_key(row['dataset'])}/{format_key(row['task'])}: {row['status']} - "
            f"{message} [run {row['run_id']}, sweep {format_key(row['sweep'])}]")


def _summary_frame(tables: list[Table], failed: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Aggregated ok rows of every table, then one row per failed run, as one frame."""
    frames, keys = [], ["dataset", "task"]
    for table in tables:
        frame = table_frame(table)
        frame.insert(0, "dataset", table.context.get("dataset"))
        frame.insert(1, "task", table.context.get("task"))
        frame.insert(2 + len(table.rows), "status", "ok")
        frame.insert(3 + len(table.rows), "n_runs", table.count.max(axis=1).to_numpy())
        keys += [k for k in table.rows if k not in keys]
        frames.append(frame)
    if len(failed):
        rows = failed[[k for k in keys if k in failed.columns]].copy()
        rows["status"] = failed["status"]
        rows["run_id"], rows["seed"] = failed["run_id"], failed["seed"]
        rows["message"] = [describe_failure(r, param_columns(df)) for _, r in failed.iterrows()]
        frames.append(rows.reset_index(drop=True))
    if not frames:
        return pd.DataFrame(columns=[*keys, "status"])
    out = pd.concat(frames, ignore_index=True)
    for column in ("n_runs", "seed"):
        if column in out.columns:
            out[column] = pd.to_numeric(out[column]).astype("Int64")
    tail = [c for c in ("run_id", "seed", "message") if c in out.columns]
    head = [c for c in (*keys, "status", "n_runs") if c in out.columns]
    return out[head + [c for c in out.columns if c not in head + tail] + tail]

