"""Aggregate runs into a table: rows x columns of metric values, mean and 95% interval.

With ``agg="mean"`` a cell of several runs (seeds) gets its sample std and the Student t
95% interval of its mean; a cell of one run gets the run's own interval when the run
recorded one (``<metric>_ci_low`` / ``_ci_high``: the bootstrap over queries of
:mod:`benchpq.measure.uncertainty`).
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field

import pandas as pd

from ..measure.uncertainty import LEVEL, t_quantile
from ..metric_table import ci_names
from ..suggest import did_you_mean
from .load import ReportError, param_columns

AGGREGATIONS = ("mean", "median", "min", "max")
# Columns that define what a run measures and where (besides its params): runs that differ
# in any of them are never averaged together. Seed is not one of them.
DEFINING_COLUMNS = ("dataset", "dataset_metric", "task", "query_mode", "algorithm", "threads",
                    "build_threads", "rerank_factor", "simd", "machine", "code_stamp",
                    "dataset_fingerprint")
# Defining columns holding digests: shown by their first characters when they split rows.
DIGEST_COLUMNS = ("code_stamp", "dataset_fingerprint")
DIGEST_CHARS = 8


class SplitRowsWarning(UserWarning):
    """Runs that look like one configuration differ by more than their seed: the table
    gives them separate rows, keyed by the columns in which they differ."""


@dataclass
class Table:
    """A pivoted table: aggregated values, their std over runs and the run counts.

    ``mean`` (the aggregate, whatever ``agg`` is), ``std`` (sample std; None unless
    ``agg == "mean"``), ``low``/``high`` (95% interval bounds, NaN where there is none;
    None unless ``agg == "mean"``) and ``count`` share their index (the ``rows`` keys) and
    their columns: the value names if ``cols`` is empty, else a MultiIndex
    ``(value, *cols values)``. A cell's interval is the t interval over its runs when
    ``count > 1``, else the run's recorded interval (if any).
    """

    mean: pd.DataFrame
    std: pd.DataFrame | None
    count: pd.DataFrame
    rows: list[str]
    cols: list[str]
    values: list[str]
    agg: str = "mean"
    title: str = ""
    context: dict = field(default_factory=dict)  # fixed keys of all its runs, e.g. dataset
    low: pd.DataFrame | None = None
    high: pd.DataFrame | None = None
    # the runs aggregated: key columns, seed, build_cached and the values (see cell_runs)
    runs: pd.DataFrame | None = None
    # what the table did that its reader must know (rows split by conditions, ...)
    notes: list[str] = field(default_factory=list)
    # the plugin metrics its runs declare ({name: spec}, benchpq.metric_table)
    specs: dict = field(default_factory=dict)

    def metric_of(self, column) -> str:
        """The value (metric) name of one column of ``mean``."""
        return column[0] if self.cols else column

    def cell_runs(self, i: int, j: int) -> pd.DataFrame:
        """The runs aggregated into cell (i, j): rows of :attr:`runs` with a value there."""
        if self.runs is None:
            return pd.DataFrame()
        column = self.mean.columns[j]
        metric = self.metric_of(column)
        row_key = self.mean.index[i]
        key = (tuple(row_key) if isinstance(row_key, tuple) else (row_key,)) + (
            tuple(column[1:]) if self.cols else ())
        mask = pd.Series(True, index=self.runs.index)
        for name, value in zip(self.rows + self.cols, key):
            mask &= self.runs[name].map(_key_text) == _key_text(value)
        cell = self.runs[mask]
        return cell[cell[metric].notna()]


def as_list(names) -> list[str]:
    """None -> [], "a" -> ["a"], ["a", "b"] -> ["a", "b"]."""
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    return list(names)


def check_columns(df: pd.DataFrame, names) -> None:
    """Raise :class:`ReportError` naming the unknown columns and listing the available ones."""
    missing = [n for n in as_list(names) if n not in df.columns]
    if missing:
        listed = ", ".join(repr(m) for m in missing)
        hints = "".join(did_you_mean(m, [str(c) for c in df.columns]) for m in missing)
        raise ReportError(f"unknown column{'s' if len(missing) > 1 else ''} {listed}{hints}; "
                          f"available columns: {', '.join(map(str, df.columns))}")


def pivot(df: pd.DataFrame, rows, cols=None, values=("recall@10",), agg: str = "mean") -> Table:
    """Aggregate the runs of ``df`` into a :class:`Table`.

    Args:
        df: runs, as made by :func:`benchpq.report.load_records`.
        rows: column name(s) whose values make the table rows (e.g. "algorithm").
        cols: column name(s) whose values make the table columns (e.g. "M"), or None.
        values: metric name(s) shown in the cells.
        agg: "mean" (with the sample std of the runs in a cell), "median", "min" or "max".

    A cell aggregates only runs that differ in their seed alone: when runs that would
    share a cell differ in a :func:`defining_columns` column (dataset, task, algorithm,
    threads, SIMD path, machine, code stamp, dataset fingerprint or a param), those
    columns are added to the rows, with a :class:`SplitRowsWarning` and a line in
    ``table.notes``. Runs without any of the values (e.g. failed runs) are left out.
    """
    rows, cols, values = as_list(rows), as_list(cols), as_list(values)
    _check_arguments(df, rows, cols, values, agg)
    data = _numeric_values(df, values).dropna(subset=values, how="all")
    if data.empty:
        raise ReportError(f"no run has a value for {', '.join(values)}")
    split = splitting_columns(data, rows + cols)
    rows = rows + split
    keys = rows + cols
    data = _sortable_keys(_short_digests(data, split), keys)
    grouped = data.groupby(keys, dropna=False, sort=True)[values]
    mean, count = grouped.agg(agg), grouped.count()
    std = grouped.std(ddof=1) if agg == "mean" else None
    low, high = _intervals(data, keys, values, mean, std, count) if agg == "mean" else (None,
                                                                                       None)
    if cols:
        mean, count = _spread(mean, cols, values), _spread(count, cols, values)
        std, low, high = (_spread(f, cols, values) if f is not None else None
                          for f in (std, low, high))
    kept = [c for c in dict.fromkeys([*keys, "seed", "build_cached", *values]) if c in data]
    table = Table(mean=mean, std=std, count=count.fillna(0).astype(int), rows=rows, cols=cols,
                  values=values, agg=agg, low=low, high=high, runs=data[kept],
                  specs=dict(df.attrs.get("metric_specs") or {}))
    if split:
        note = (f"rows split by {', '.join(split)}: runs that look like one configuration "
                f"differ in {'them' if len(split) > 1 else 'it'}, and only runs that differ "
                "in their seed alone are averaged")
        table.notes.append(note[0].upper() + note[1:] + ".")
        warnings.warn(note, SplitRowsWarning, stacklevel=2)
    return table


def _intervals(data, keys, values, mean, std, count):
    """(low, high) frames like ``mean``: t interval over runs, else the run's own interval."""
    dof = (count - 1).where(count > 1)
    half = dof.apply(lambda col: col.map(
        lambda n: t_quantile(0.5 + LEVEL / 2, int(n)) if pd.notna(n) else float("nan")))
    half = half * std / count.pow(0.5)
    low, high = mean - half, mean + half
    single = count == 1
    for value in values:
        bounds = [c for c in ci_names(value) if c in data.columns]
        if len(bounds) < 2:
            continue
        numeric = data[keys].copy()
        for c in bounds:
            numeric[c] = pd.to_numeric(data[c], errors="coerce")
        run = numeric.groupby(keys, dropna=False, sort=True)[bounds].mean()
        low.loc[single[value], value] = run.loc[single[value], bounds[0]]
        high.loc[single[value], value] = run.loc[single[value], bounds[1]]
    return low, high


def _check_arguments(df, rows, cols, values, agg) -> None:
    if not rows:
        raise ReportError("no row column given")
    if not values:
        raise ReportError("no value column given")
    check_columns(df, rows + cols + values)
    both = [v for v in values if v in rows + cols]
    if both:
        raise ReportError(f"{', '.join(both)} cannot be both a value and a row/column key")
    if agg not in AGGREGATIONS:
        raise ReportError(f"unknown aggregation {agg!r}; choose from {', '.join(AGGREGATIONS)}")
    if df.empty:
        raise ReportError("no runs to tabulate")


def _numeric_values(df: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    """``df`` with the value columns as floats; a non-numeric value column is an error."""
    out = df.copy()
    for name in values:
        converted = pd.to_numeric(df[name], errors="coerce")
        if (converted.isna() & df[name].notna()).any():
            raise ReportError(f"column {name!r} is not numeric and cannot be a table value")
        out[name] = converted.astype(float)
    return out


def _sortable_keys(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Key columns mixing types (e.g. numbers and text) become text, so they can be sorted.

    Modifies and returns ``df`` (a copy made by :func:`_numeric_values`).
    """
    for key in keys:
        kinds = {"number" if isinstance(v, numbers.Number) else type(v) for v in df[key].dropna()}
        if len(kinds) > 1:
            df[key] = df[key].map(lambda v: v if pd.isna(v) else str(v))
    return df


def defining_columns(df: pd.DataFrame) -> list[str]:
    """Columns that say what a run measures: dataset, task, query mode, algorithm, threads,
    exact re-ranking, params."""
    return [c for c in (*DEFINING_COLUMNS, *param_columns(df)) if c in df.columns]


def splitting_columns(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """The defining columns outside ``keys`` in which runs sharing a key differ, each
    added only if it still varies within the cells the ones before it made (a code stamp
    that follows the SIMD path adds no rows of its own)."""
    others = [c for c in defining_columns(df) if c not in keys]
    if not others or df.empty:
        return []
    text = df[keys + others].apply(lambda col: col.map(_key_text))
    split: list[str] = []
    for column in others:
        if text.groupby(keys + split, dropna=False)[column].nunique(dropna=False).max() > 1:
            split.append(column)
    return split


def _key_text(value) -> str:
    return "\0" if value is None or (isinstance(value, float) and value != value) else str(value)


def _short_digests(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df`` with the digest columns among ``columns`` cut to their first characters."""
    for column in columns:
        if column in DIGEST_COLUMNS:
            df[column] = df[column].map(lambda v: v[:DIGEST_CHARS] if isinstance(v, str) else v)
    return df


def _spread(frame: pd.DataFrame, cols: list[str], values: list[str]) -> pd.DataFrame:
    """Move the ``cols`` index levels to the columns, keeping the order of ``values``."""
    wide = frame.unstack(cols)
    order = [j for v in values for j, c in enumerate(wide.columns) if c[0] == v]
    return wide.iloc[:, order]


def default_rows(df: pd.DataFrame) -> list[str]:
    """``algorithm`` plus the params that take more than one value among the runs of one
    algorithm (a swept M, a search grid's nprobe).

    Params that differ only because the algorithms differ (faiss's nbits, our Ks) say
    nothing a row's algorithm does not, and are left out. Other conditions that vary
    (threads, SIMD path, machine, ...) are added by :func:`pivot`, which says so.
    """
    if "algorithm" not in df.columns or df.empty:
        return ["algorithm"]
    varying = [c for c in param_columns(df) if c in df.columns and df[c].map(_key_text)
               .groupby(df["algorithm"].map(_key_text)).nunique().max() > 1]
    return ["algorithm", *varying]
