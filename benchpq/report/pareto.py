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
from pathlib import Path

import numpy as np
import pandas as pd

from .formatting import format_key
from .load import ReportError, param_columns
from .names import better_direction, number_kind
from .plots import axis_label, default_title, legend_outside, save_png
from .tables import Table, as_list, check_columns, pivot

#: the defaults of --pareto: recall against speed, as ann-benchmarks plots it
DEFAULT_X, DEFAULT_Y = "recall@10", "qps"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
# what identifies one operating point besides the line (by) and the params
CONTEXT_COLUMNS = ("dataset", "task", "threads")


def point_keys(df: pd.DataFrame, x: str, y: str, by="algorithm") -> list[str]:
    """The columns that identify an operating point: ``by``, then the context and
    param columns whose values vary among the runs (seed excluded)."""
    by = as_list(by)
    return by + [c for c in (*CONTEXT_COLUMNS, *param_columns(df))
                 if c in df.columns and c not in by and c not in (x, y)
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


def operating_points(df: pd.DataFrame, x: str, y: str, by="algorithm") -> pd.DataFrame:
    """One row per operating point: keys, ``x``, ``y`` (means over seeds), their std, runs.

    Columns: the :func:`point_keys` (as strings), ``x``, ``y``, ``x_std``,
    ``y_std`` and ``runs``.
    """
    runs = _measured(df, x, y, by)
    keys = point_keys(runs, x, y, by)
    grouped = runs.assign(**{c: _text(runs[c]) for c in keys}).groupby(keys, sort=True,
                                                                       dropna=False)
    out = grouped[[x, y]].mean()
    std = grouped[[x, y]].std().fillna(0.0)
    out[f"{x}_std"], out[f"{y}_std"] = std[x], std[y]
    out["runs"] = grouped.size()
    return out.reset_index()


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
    return better_direction(name) or "min"


def pareto_points(df: pd.DataFrame, x: str = DEFAULT_X, y: str = DEFAULT_Y,
                  by="algorithm") -> pd.DataFrame:
    """The front points of each line (value of ``by``), sorted by ``x`` within a line."""
    by = as_list(by)
    points = operating_points(df, x, y, by)
    fronts = []
    for _, line in points.groupby(by, sort=True, dropna=False):
        mask = pareto_mask(line[x], line[y], _direction(x), _direction(y))
        fronts.append(line[mask].sort_values(x))
    return pd.concat(fronts, ignore_index=True)


def pareto_table(df: pd.DataFrame, x: str = DEFAULT_X, y: str = DEFAULT_Y, by="algorithm",
                 values=()) -> Table:
    """A :class:`~benchpq.report.tables.Table` of each line's front points: one row per
    point (mean ± std over seeds of ``x``, ``y`` and any other ``values``)."""
    runs = _measured(df, x, y, by)
    keys = point_keys(runs, x, y, by)
    front = pareto_points(runs, x, y, by)[keys]
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
    kind = number_kind(name)
    return (kind in ("rate", "time") or name == "mean_candidates") and positive.size > 1 \
        and positive.max() / positive.min() > 10


def plot_pareto(df: pd.DataFrame, x: str = DEFAULT_X, y: str = DEFAULT_Y, by="algorithm",
                path: str | os.PathLike = "pareto.png", title: str | None = None,
                dpi: int = 150) -> Path:
    """Draw every operating point and each line's front (joined), save as PNG.

    Points off the front are drawn faint; the front is joined in the order of
    ``x``; error bars are the std over seeds. Rates and times spanning more
    than a decade get a log axis. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by = as_list(by)
    points = operating_points(df, x, y, by)
    fig = Figure(figsize=(7.2, 5.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (key, line) in enumerate(points.groupby(by, sort=True, dropna=False)):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(format_key(k) for k in key)
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
    legend_outside(ax, ", ".join(by))
    return save_png(fig, path, dpi)


