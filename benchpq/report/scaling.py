"""How a cost grows with the data size: power laws fitted on log-log axes, and extrapolation.

For each line (an algorithm, or any ``by`` columns) and each metric y measured at two or
more sizes x (``n_base`` by default), the least-squares line through (log x, log y)
gives y ~ x^slope: a slope of 1 is linear growth, 0 a cost that does not grow. The
extrapolation to a size never run (a billion vectors) starts from the value measured at
the largest size and follows the fitted slope, y(N) = y(x_max) * (N / x_max)^slope, so
it rests on the run closest to N rather than on the fit's intercept.

Runs are first averaged like any table cell (:func:`~benchpq.report.tables.pivot`: same
configuration, seeds averaged, unlike runs kept apart). A fit over two sizes is exact; a
power law is a model, and a cost with a constant part (a fixed training sample) or a
cache or memory regime change between sizes grows slower or faster than it says.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .formatting import format_key, format_number
from .load import ReportError
from .names import with_declared_metrics
from .output import Grid, output
from .plots import MARKERS, axis_label, default_title, legend_outside, save_png
from .tables import as_list, check_columns, pivot

DEFAULT_X = "n_base"


@with_declared_metrics
def scaling_fits(df: pd.DataFrame, values, x: str = DEFAULT_X, by="algorithm",
                 to: float | None = None) -> pd.DataFrame:
    """One row per line (``by`` values) and metric of ``values``: the sizes it was measured
    at, the slope of log y against log x, the value at the largest size and, with ``to``,
    the value extrapolated to size ``to``.

    Columns: the ``by`` columns, ``metric``, ``points``, ``x_min``, ``x_max``, ``slope``,
    ``at_x_max``, and ``at_to`` when ``to`` is given; ``attrs["means"]`` holds the
    averaged points the fits were made on. Lines with fewer than two sizes, or
    a value that is not positive, get no slope (NaN); a metric a line never recorded, no row.
    """
    by, values = as_list(by), as_list(values)
    check_columns(df, [x, *by, *values])
    runs = df.assign(**{x: pd.to_numeric(df[x], errors="coerce")}).dropna(subset=[x])
    if runs.empty:
        raise ReportError(f"no run has a numeric {x!r} to fit against")
    table = pivot(runs, by + [x], None, values)
    means = table.mean.reset_index()
    keys = [c for c in table.mean.index.names if c != x]
    rows = []
    for key, line in means.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for metric in values:
            points = line[[x, metric]].dropna().sort_values(x)
            if points.empty:
                continue
            sizes, ys = points[x].to_numpy(float), points[metric].to_numpy(float)
            row = dict(zip(keys, key), metric=metric, points=len(points), x_min=sizes.min(),
                       x_max=sizes.max(), slope=power_law_slope(sizes, ys), at_x_max=ys[-1])
            if to is not None:
                row["at_to"] = row["at_x_max"] * (to / row["x_max"]) ** row["slope"]
            rows.append(row)
    if not rows:
        raise ReportError(f"no run recorded {', '.join(values)} at a numeric {x!r}")
    frame = pd.DataFrame(rows)
    frame.attrs.update(x=x, to=to, keys=keys, means=means)
    return frame


def power_law_slope(sizes: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of log(values) against log(sizes); NaN with fewer than two
    distinct sizes or any value <= 0."""
    if len(np.unique(sizes)) < 2 or np.any(values <= 0) or np.any(sizes <= 0):
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def render_scaling(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The fits as a table in format ``fmt`` (CSV: the frame's numbers)."""
    if fmt == "csv":
        return output("csv").frame(frame)
    keys, x, to = frame.attrs["keys"], frame.attrs["x"], frame.attrs["to"]
    header = [*keys, "metric", f"{x} measured (sizes)", "slope", "at the largest"]
    if to is not None:
        header.append(f"at {to:.3g}")
    rows = []
    for r in frame.to_dict("records"):
        cells = [format_key(r[k]) for k in keys] + [
            r["metric"], f"{r['x_min']:.3g} - {r['x_max']:.3g} ({r['points']})",
            "n/a" if np.isnan(r["slope"]) else f"{r['slope']:.2f}",
            format_number(r["metric"], r["at_x_max"], human_bytes=True)]
        if to is not None:
            cells.append("n/a" if np.isnan(r["at_to"]) else
                         format_number(r["metric"], r["at_to"], human_bytes=True))
        rows.append(cells)
    return output(fmt).table(Grid(header, rows, n_keys=len(keys) + 1))


SCALING_NOTE = ("slope: least-squares slope of log(value) against log(size) over the sizes "
                "measured (1: linear). Extrapolated: the value at the largest size times "
                "(N / largest size) ^ slope.")


@with_declared_metrics
def plot_scaling(df: pd.DataFrame, y: str, x: str = DEFAULT_X, by="algorithm",
                 path: str | os.PathLike = "scaling.png", to: float | None = None,
                 title: str | None = None, dpi: int = 150) -> Path:
    """``y`` against ``x`` on log-log axes, one line per ``by`` value with its fitted slope
    in the legend; with ``to``, each fit drawn on (dashed) to size ``to``. Saved as PNG;
    returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fits = scaling_fits(df, [y], x, by, to)
    keys, means = fits.attrs["keys"], fits.attrs["means"]
    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, fit in enumerate(fits.to_dict("records")):
        line = means
        for k in keys:
            line = line[line[k].astype(str) == str(fit[k])]
        line = line.dropna(subset=[y]).sort_values(x)
        line = line[line[y] > 0]
        if line.empty:
            continue
        name = ", ".join(format_key(fit[k]) for k in keys)
        slope = fit["slope"]
        label = name if np.isnan(slope) else f"{name} (slope {slope:.2f})"
        drawn = ax.plot(line[x], line[y], marker=MARKERS[i % len(MARKERS)], linewidth=1.5,
                        label=label)
        if to is not None and not np.isnan(slope) and to > fit["x_max"]:
            ax.plot([fit["x_max"], to], [fit["at_x_max"], fit["at_to"]], linestyle="--",
                    color=drawn[0].get_color(), linewidth=1)
    if not ax.lines:
        raise ReportError(f"no run has a positive {y!r} at a numeric {x!r} to plot")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    extra = f"; dashed: extrapolated to {to:.3g}" if to is not None else ""
    ax.set_title(title if title is not None else
                 f"{default_title(df, x, y)}\nlog-log, slope of the least-squares fit{extra}")
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax, ", ".join(keys))
    return save_png(fig, path, dpi)
