"""Operating curves: each algorithm's Pareto front of two metrics, as a table and a plot.

An *operating point* is one configuration of an algorithm (its params, search
setting included) on one dataset, task and thread count; runs that differ only
by seed are averaged into one point, with their sample std. A point is on its
algorithm's *front* when no other point of that algorithm is at least as good
in both metrics and better in one, "good" following each metric's direction
(:func:`benchpq.report.names.better_direction`: recall and qps up, times,
errors and candidate counts down). This is the trade-off curve compared on
ann-benchmarks (recall against queries per second) and in the papers.

    benchpq-report results/lopq-siftsmall --pareto front.png               # recall@10 vs qps
    benchpq-report results/lopq-siftsmall --pareto front.png --x mean_candidates
    benchpq-report results/lopq-siftsmall --pareto-table
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .formatting import format_key
from .load import ReportError, param_columns
from .names import better_direction, is_known_metric, number_kind, with_declared_metrics
from .plots import axis_label, default_title, legend_outside, save_png
from .tables import (
    DEFINING_COLUMNS,
    SplitRowsWarning,
    Table,
    as_list,
    check_columns,
    pivot,
    splitting_columns,
)

#: the defaults of --pareto: recall against speed, as ann-benchmarks plots it
DEFAULT_X, DEFAULT_Y = "recall@10", "qps"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
# Conditions under which runs are measured: points made under different ones are never
# on one front (each combination is a line of its own).
CONDITION_COLUMNS = tuple(c for c in DEFINING_COLUMNS if c != "algorithm")


def default_axes(x: str | None = None, y: str | None = None) -> tuple[str, str]:
    """The two axes of a front when one or none is given: recall@10 against qps by
    default; a given axis that is not the recall is set against the recall
    (``--x mean_candidates``: recall@10 against the candidates scanned)."""
    if x is None and y is None:
        return DEFAULT_X, DEFAULT_Y
    if y is None:
        return x, DEFAULT_X if x != DEFAULT_X else DEFAULT_Y
    if x is None:
        return (DEFAULT_X if y != DEFAULT_X else DEFAULT_Y), y
    return x, y


def line_keys(df: pd.DataFrame, by="algorithm") -> list[str]:
    """The columns that identify a line (one front): ``by``, then the conditions
    (dataset, task, threads, SIMD path, machine, code, data) in which the runs of one
    line differ (the rule of table rows, :func:`~benchpq.report.tables.splitting_columns`;
    a code stamp that differs only between algorithms splits nothing)."""
    by = as_list(by)
    conditions = [c for c in splitting_columns(df, by) if c in CONDITION_COLUMNS]
    return by + conditions


def point_keys(df: pd.DataFrame, x: str, y: str, by="algorithm") -> list[str]:
    """The columns that identify an operating point: its :func:`line_keys`, then the
    param columns whose values vary among the runs (seed excluded)."""
    lines = line_keys(df, by)
    return lines + [c for c in param_columns(df)
                    if c in df.columns and c not in lines and c not in (x, y)
                    and df[c].astype(str).nunique() > 1]


def _measured(df: pd.DataFrame, x: str, y: str, by) -> pd.DataFrame:
    check_columns(df, [x, y, *as_list(by)])
    runs = df.copy()
    for name in (x, y):
        runs[name] = pd.to_numeric(runs[name], errors="coerce")
    runs = runs.dropna(subset=[x, y])
    if runs.empty:
        raise ReportError(f"no run has both {x!r} and {y!r}")
    return runs


@with_declared_metrics
def operating_points(df: pd.DataFrame, x: str, y: str, by="algorithm") -> pd.DataFrame:
    """One row per operating point: keys, ``x``, ``y`` (means over seeds), their std, runs.

    Columns: the :func:`point_keys` (as strings), ``x``, ``y``, ``x_std``,
    ``y_std`` and ``runs``.
    """
    runs = _measured(df, x, y, by)
    keys, lines = point_keys(runs, x, y, by), line_keys(runs, by)
    if len(lines) > len(as_list(by)):
        warnings.warn(f"Pareto fronts split by {', '.join(lines[len(as_list(by)):])}: points "
                      "measured under other conditions are never on one front",
                      SplitRowsWarning, stacklevel=3)
    grouped = runs.assign(**{c: _text(runs[c]) for c in keys}).groupby(keys, sort=True,
                                                                       dropna=False)
    out = grouped[[x, y]].mean()
    std = grouped[[x, y]].std().fillna(0.0)
    out[f"{x}_std"], out[f"{y}_std"] = std[x], std[y]
    out["runs"] = grouped.size()
    out = out.reset_index()
    out.attrs["keys"], out.attrs["lines"] = keys, lines
    return out


def _text(column: pd.Series) -> pd.Series:
    """A key column as plain text, missing values included (``"-"``), for grouping."""
    return column.map(lambda v: "-" if v is None or (isinstance(v, float) and v != v)
                      else format_key(v)).astype(object)


def pareto_mask(xs, ys, x_direction: str, y_direction: str) -> np.ndarray:
    """Boolean mask of the non-dominated points of (xs, ys) under the two directions."""
    sx = np.asarray(xs, float) * (1 if x_direction == "max" else -1)
    sy = np.asarray(ys, float) * (1 if y_direction == "max" else -1)
    # best x first (ties: best y first); a point is on the front if its y beats all before it
    order = np.lexsort((-sy, -sx))
    mask = np.zeros(len(sx), bool)
    best = -np.inf
    for i in order:
        if sy[i] > best:
            mask[i] = True
            best = sy[i]
    return mask


def _direction(name: str) -> str:
    """The better direction of an axis; a front needs one on both axes."""
    if not is_known_metric(name) or better_direction(name) is None:
        raise ReportError(f"{name!r} has no better direction (it is not a metric, or a size "
                          "of the setup): a Pareto front needs two metrics, e.g. recall@10 "
                          "and qps")
    return better_direction(name)


@with_declared_metrics
def pareto_points(df: pd.DataFrame, x: str = DEFAULT_X, y: str = DEFAULT_Y,
                  by="algorithm") -> pd.DataFrame:
    """The front points of each line (:func:`line_keys`), sorted by ``x`` within a line."""
    points = operating_points(df, x, y, by)
    fronts = []
    for _, line in points.groupby(points.attrs["lines"], sort=True, dropna=False):
        mask = pareto_mask(line[x], line[y], _direction(x), _direction(y))
        fronts.append(line[mask].sort_values(x))
    out = pd.concat(fronts, ignore_index=True)
    out.attrs = dict(points.attrs)
    return out


@with_declared_metrics
def pareto_table(df: pd.DataFrame, x: str = DEFAULT_X, y: str = DEFAULT_Y, by="algorithm",
                 values=()) -> Table:
    """A :class:`~benchpq.report.tables.Table` of each line's front points: one row per
    point (mean ± std over seeds of ``x``, ``y`` and any other ``values``)."""
    runs = _measured(df, x, y, by)
    front = pareto_points(runs, x, y, by)
    keys = front.attrs["keys"]
    front = front[keys]
    as_text = runs.assign(**{c: _text(runs[c]) for c in keys})
    chosen = as_text.reset_index().merge(front, on=keys)["index"]
    table = pivot(runs.loc[chosen], keys, None, [x, y, *[v for v in as_list(values)
                                                            if v not in (x, y)]])
    table.title = f"Pareto fronts: {y} vs {x}"
    return table


def _log_axis(name: str, values) -> bool:
    """Rates, times and counts spanning more than a decade are drawn on a log scale."""
    values = np.asarray(values, float)
    positive = values[values > 0]
    kind = number_kind(name) if is_known_metric(name) else None
    return (kind in ("rate", "time") or name == "mean_candidates") and positive.size > 1 \
        and positive.max() / positive.min() > 10


@with_declared_metrics
def plot_pareto(df: pd.DataFrame, x: str = DEFAULT_X, y: str = DEFAULT_Y, by="algorithm",
                path: str | os.PathLike = "pareto.png", title: str | None = None,
                dpi: int = 150) -> Path:
    """Draw every operating point and each line's front (joined), save as PNG.

    Points off the front are drawn faint; the front is joined in the order of
    ``x``; error bars are the std over seeds. Rates and times spanning more
    than a decade get a log axis. Points measured under different conditions
    (threads, machine, ...) are on different lines. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = operating_points(df, x, y, by)
    lines = points.attrs["lines"]
    fig = Figure(figsize=(7.2, 5.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (key, line) in enumerate(points.groupby(lines, sort=True, dropna=False)):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(format_key(k) if j < len(as_list(by)) else f"{c}={format_key(k)}"
                          for j, (c, k) in enumerate(zip(lines, key)))
        mask = pareto_mask(line[x], line[y], _direction(x), _direction(y))
        front = line[mask].sort_values(x)
        marker = MARKERS[i % len(MARKERS)]
        drawn = ax.errorbar(front[x], front[y], xerr=front[f"{x}_std"], yerr=front[f"{y}_std"],
                            label=label, marker=marker, capsize=3, linewidth=1.5)
        rest = line[~mask]
        if not rest.empty:
            ax.scatter(rest[x], rest[y], marker=marker, color=drawn[0].get_color(), alpha=0.3)
    if _log_axis(x, points[x]):
        ax.set_xscale("log")
    if _log_axis(y, points[y]):
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.set_title(title if title is not None else default_title(df, x, y, "Pareto fronts: "))
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax, ", ".join(as_list(by)))
    return save_png(fig, path, dpi)


