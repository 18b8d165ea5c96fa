"""The cells of a :class:`~benchpq.report.tables.Table`: numbers, intervals, bold, marks.

:func:`table_grid` turns a table into plain text cells that an output format
(:mod:`benchpq.report.output`) writes: ``mean ± h`` when several runs (seeds) fall in a
cell and their values differ (h: half-width of the 95% t interval of the mean, printed
to the mean's precision), ``mean [low, high]`` for a single run that recorded its 95%
interval over queries, ``†`` after build metrics measured by an earlier run whose model
was loaded from the cache. A column's best value is bold only when it is significantly
better than the runner-up (:func:`best_cells`: a paired t test where the runs pair by
seed, otherwise non-overlapping intervals); the table note says which rule applied. CSV
keeps plain full-precision numbers, with ``<column> std``, ``<column> ci_low`` and
``<column> ci_high`` columns next to each value column.

Numbers: recalls, NMI and ARI with 3 decimals; mse and clustering error with 4
significant digits (whole numbers with thousands separators from 1000 up); times and
qps with 3 significant digits (same rule); bytes human-readable (KiB, MiB, ...);
counts as integers.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..measure.uncertainty import ALPHA, paired_by_seed
from .names import (
    better_direction,
    display_name,
    is_known_metric,
    number_kind,
    scope,
    with_declared_metrics,
)
from .output import Grid, output
from .tables import Table

# ---------------------------------------------------------------------------- numbers

def format_number(metric: str, value, human_bytes: bool = False) -> str:
    """One value of ``metric`` as text ('' for a missing value)."""
    if value is None or pd.isna(value):
        return ""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    kind = number_kind(metric)
    if kind == "fraction":
        return f"{v:.3f}"
    if kind == "ratio":
        return f"{v:.2f}"
    if kind == "bytes" and human_bytes:
        return human_readable_bytes(v)
    if kind in ("error", "time", "rate"):
        return _grouped(v) if abs(v) >= 1000 else _significant(v, 4 if kind == "error" else 3)
    if kind in ("bytes", "count") and v.is_integer():
        return _grouped(v)
    if kind == "generic" and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return _significant(v, 3 if kind in ("bytes", "count") else 4)


def _significant(v: float, digits: int) -> str:
    text = f"{v:.{digits}g}"
    return "0" if text == "-0" else text


def _grouped(v: float) -> str:
    """A whole number with thousands separators: 21965.4 -> '21,965'."""
    return f"{v:,.0f}"


def format_like(metric: str, value, reference: str, human_bytes: bool = False) -> str:
    """``value`` with as many decimals as the text ``reference`` of the same metric has
    (an interval printed to the precision of its mean: '0.603 ± 0.012', '24,790 ± 35')."""
    if value is None or pd.isna(value) or not reference or not math.isfinite(float(value)):
        return format_number(metric, value, human_bytes)
    plain = reference.replace(",", "")
    try:
        float(plain)
    except ValueError:  # '1.50 MiB', '1e+20': no decimals to follow
        return format_number(metric, value, human_bytes)
    if "e" in plain.lower():
        return format_number(metric, value, human_bytes)
    decimals = len(plain.split(".", 1)[1]) if "." in plain else 0
    text = f"{float(value):,.{decimals}f}" if "," in reference else f"{float(value):.{decimals}f}"
    return "0" if text.lstrip("-").strip("0.,") == "" and decimals == 0 else text


def human_readable_bytes(n: float) -> str:
    """1536 -> '1.50 KiB' (binary units, 3 significant digits)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            # 999.5 to 1023 of a unit: whole numbers, not "1e+03"
            return f"{n:.0f} {unit}" if unit == "B" or abs(n) >= 999.5 else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_key(value) -> str:
    """A row or column key as text: 8.0 -> '8', missing -> ''."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ------------------------------------------------------------------------- table parts

def column_label(table: Table, column, display: bool = False) -> str:
    """Header text of one value column: 'recall@10' or 'recall@10 (M=8)' (with ``display``
    the metric's display name and unit)."""
    if not table.cols:
        return metric_label(column, display)
    return f"{metric_label(column[0], display)} ({column_sublabel(table, column)})"


def column_sublabel(table: Table, column) -> str:
    """The column-key part of a header: 'M=8, nbits=4'."""
    return ", ".join(f"{c}={format_key(v) or 'n/a'}" for c, v in zip(table.cols, column[1:]))


def row_keys(table: Table) -> list[tuple]:
    """The row keys of a table as tuples (one item per ``table.rows`` column)."""
    index = table.mean.index
    return list(index) if isinstance(index, pd.MultiIndex) else [(k,) for k in index]


# How a cell is judged significantly better than the runner-up of its column.
PAIRED_RULE = "paired t test over shared seeds at 5%"
INTERVAL_RULE = "non-overlapping 95% intervals"


@with_declared_metrics
def best_cells(table: Table, alpha: float = ALPHA) -> tuple[np.ndarray, set[str]]:
    """Where the bold goes, and the rules that decided it.

    Returns a boolean array, True where a cell holds the best value of its column
    (ties all True) and is significantly better than the runner-up, and the set of
    rules (:data:`PAIRED_RULE`, :data:`INTERVAL_RULE`) used for the bold cells. Columns
    of a metric without better direction, with fewer than two values, or whose values
    are all equal have no best cell; nor has a column whose best cannot be shown better
    than the next (:func:`significantly_better`).
    """
    mask = np.zeros(table.mean.shape, dtype=bool)
    rules: set[str] = set()
    for j, column in enumerate(table.mean.columns):
        direction = better_direction(table.metric_of(column))
        values = table.mean.iloc[:, j].to_numpy(dtype=float)
        present = ~np.isnan(values)
        if direction is None or np.count_nonzero(present) < 2:
            continue
        best = np.nanmax(values) if direction == "max" else np.nanmin(values)
        is_best = np.isclose(values, best, rtol=1e-9, atol=0.0) & present
        if np.count_nonzero(is_best) == np.count_nonzero(present):
            continue
        others = np.where(present & ~is_best)[0]
        runner_up = others[np.argmax(values[others]) if direction == "max"
                           else np.argmin(values[others])]
        verdicts = [significantly_better(table, i, runner_up, j, direction, alpha)
                    for i in np.where(is_best)[0]]
        if all(verdicts):
            mask[:, j] = is_best
            rules.update(verdicts)
    return mask, rules


def best_mask(table: Table, alpha: float = ALPHA) -> np.ndarray:
    """The bold cells of :func:`best_cells`."""
    return best_cells(table, alpha)[0]


def significantly_better(table: Table, i: int, k: int, j: int, direction: str,
                         alpha: float = ALPHA) -> str | None:
    """The rule by which cell (i, j) is significantly better than cell (k, j), or None.

    Where both cells hold runs of at least two shared seeds, a paired t test over those
    seeds decides (:func:`benchpq.measure.uncertainty.paired_by_seed`); otherwise both cells
    need a 95% interval (t over seeds, or a run's bootstrap over queries) and the two
    intervals must not overlap. A cell with neither is never significantly better.
    """
    a, b = table.cell_runs(i, j), table.cell_runs(k, j)
    metric = table.metric_of(table.mean.columns[j])
    if len(a) and len(b) and "seed" in a:
        shared = sorted(set(a["seed"].dropna()) & set(b["seed"].dropna()))
        if len(shared) >= 2 and len(a) == a["seed"].nunique() == len(shared) == len(b) \
                == b["seed"].nunique():
            x = a.set_index("seed").loc[shared, metric].to_numpy(float)
            y = b.set_index("seed").loc[shared, metric].to_numpy(float)
            paired = paired_by_seed(x, y)
            better = (paired.diff > 0) == (direction == "max")
            return PAIRED_RULE if paired.p < alpha and better and paired.diff != 0 else None
    if table.low is None or table.high is None:
        return None
    lows, highs = table.low.iloc[:, j], table.high.iloc[:, j]
    if any(pd.isna(v) for v in (lows.iat[i], highs.iat[i], lows.iat[k], highs.iat[k])):
        return None
    apart = lows.iat[i] > highs.iat[k] if direction == "max" else highs.iat[i] < lows.iat[k]
    return INTERVAL_RULE if apart else None


def cell_parts(table: Table, human_bytes: bool = True) -> list[list[tuple[str, str, str]]]:
    """(mean text, ± text, interval text) per cell, row by row.

    The ± text is the half-width of the 95% t interval when the cell holds several runs
    whose values differ, else ''. The interval text is 'low, high' when the cell holds one
    run that recorded its interval (bootstrap over queries), else ''.
    """
    out = []
    for i in range(len(table.mean)):
        row = []
        for j, column in enumerate(table.mean.columns):
            metric = table.metric_of(column)
            mean = table.mean.iat[i, j]
            std = table.std.iat[i, j] if table.std is not None else np.nan
            count = table.count.iat[i, j]
            low = table.low.iat[i, j] if table.low is not None else np.nan
            high = table.high.iat[i, j] if table.high is not None else np.nan
            pm = interval = ""
            text = format_number(metric, mean, human_bytes)
            if count > 1 and pd.notna(std) and std > 0 and pd.notna(high):
                pm = format_like(metric, high - mean, text, human_bytes)
            elif count == 1 and pd.notna(low) and pd.notna(high):
                interval = (f"{format_like(metric, low, text, human_bytes)}, "
                            f"{format_like(metric, high, text, human_bytes)}")
            row.append((text, pm, interval))
        out.append(row)
    return out


@with_declared_metrics
def cached_cells(table: Table) -> np.ndarray:
    """Boolean array, True where a cell of a build metric (train time, mse, model size,
    ...) holds a run whose model came from the model cache: the value was measured by
    the earlier run that built it."""
    mask = np.zeros(table.mean.shape, dtype=bool)
    if table.runs is None or "build_cached" not in table.runs:
        return mask
    for j, column in enumerate(table.mean.columns):
        if not is_build_metric(table.metric_of(column)):
            continue
        for i in range(len(table.mean)):
            cell = table.cell_runs(i, j)
            mask[i, j] = bool(cell["build_cached"].fillna(False).astype(bool).any())
    return mask


def is_build_metric(name: str) -> bool:
    """Whether metric ``name`` belongs to the build (train, add, encode, model), not to a
    search setting."""
    return is_known_metric(name) and scope(name) == "build"


@with_declared_metrics
def table_grid(table: Table, human_bytes: bool = True, intervals: bool = True,
               display: bool = False) -> Grid:
    """The cells of ``table`` as a :class:`~benchpq.report.output.Grid` of plain text.

    A value cell reads 'mean ± half-width' (several runs) or 'mean [low, high]' (one run
    with its own interval; none when ``intervals`` is False), '†' after values measured
    in an earlier (cached) build, '–' where there is no value; the bold cells are those
    of :func:`best_cells`. ``display``: headers give each metric's display name and
    unit (for papers) instead of its record name.
    """
    parts, mask, cached = cell_parts(table, human_bytes), best_mask(table), cached_cells(table)
    rows = []
    for key, row_parts, row_cached in zip(row_keys(table), parts, cached):
        cells = []
        for (mean, half, interval), is_cached in zip(row_parts, row_cached):
            text = mean
            if intervals and mean:
                text += (f" ± {half}" if half else "") + (f" [{interval}]" if interval else "")
            cells.append((text + ("†" if is_cached else "")) if mean else "–")
        rows.append([format_key(k) for k in key] + cells)
    columns = list(table.mean.columns)
    grid = Grid(header=[*table.rows, *(column_label(table, c, display) for c in columns)],
                rows=rows, n_keys=len(table.rows),
                bold=[[False] * len(table.rows) + list(m) for m in mask])
    if table.cols:
        metrics = list(dict.fromkeys(c[0] for c in columns))
        grid.groups = [(metric_label(m, display), sum(1 for c in columns if c[0] == m))
                       for m in metrics]
        grid.sub = [*table.rows, *(column_sublabel(table, c) for c in columns)]
    return grid


def metric_label(metric: str, display: bool = False) -> str:
    """A metric's header: its record name, or with ``display`` its display name and unit."""
    return display_name(str(metric)) if display else str(metric)


CACHED_NOTE = ("values measured by the earlier run that built a model loaded from the "
               "model cache")


@with_declared_metrics
def interval_note(table: Table) -> str:
    """What the ± and [low, high] of a table's cells mean, when a cell is bold, and the
    mark of values from cached builds."""
    several = bool((table.count > 1).to_numpy().any())
    single_bounds = table.low is not None and bool(
        ((table.count == 1) & table.low.notna()).to_numpy().any())
    parts = []
    if several:
        parts.append("± half-width of the 95% t interval of the mean over seeds")
    if single_bounds:
        parts.append("[low, high] 95% bootstrap interval over queries of one run")
    mask, rules = best_cells(table)
    if mask.any():
        parts.append(f"bold: best of its column, significantly better than the runner-up "
                     f"({' or '.join(sorted(rules))})")
    else:
        parts.append(f"no bold: no column's best is significantly better than the runner-up "
                     f"({PAIRED_RULE}, or {INTERVAL_RULE})")
    if cached_cells(table).any():
        parts.append(f"†: {CACHED_NOTE}")
    notes = " ".join(table.notes)
    return "; ".join(parts) + "." + (f" {notes}" if notes else "")


# ------------------------------------------------------------------ Markdown and LaTeX

@with_declared_metrics
def to_markdown(table: Table, human_bytes: bool = True, intervals: bool = True) -> str:
    """A GitHub-flavoured Markdown pipe table; best cells as **x**."""
    return output("markdown").table(table_grid(table, human_bytes, intervals))


def latex_escape(text: str) -> str:
    """``text`` with LaTeX special characters escaped (``_`` -> ``\\_``, ...)."""
    return output("latex").escape(text)


@with_declared_metrics
def to_latex(table: Table, caption: str | None = None, label: str | None = None,
             human_bytes: bool = True, intervals: bool = True) -> str:
    """A booktabs ``tabular`` (in a ``table`` float if a caption or label is given), headed
    by the metrics' display names and units; best cells as ``\\textbf{x}``."""
    grid = table_grid(table, human_bytes, intervals, display=True)
    return output("latex").table(grid, caption=caption, label=label)


# --------------------------------------------------------------------------------- CSV

@with_declared_metrics
def table_frame(table: Table) -> pd.DataFrame:
    """The table as plain numbers: key columns, then '<label>', '<label> std', '<label> ci_low'
    and '<label> ci_high' per column (the 95% interval, see :class:`Table`).

    Whole-number keys and byte/count values are integers (nullable Int64).
    """
    frame = table.mean.index.to_frame(index=False)
    frame = frame.apply(_as_int_if_whole)
    for j, column in enumerate(table.mean.columns):
        label, metric = column_label(table, column), table.metric_of(column)
        values = table.mean.iloc[:, j].reset_index(drop=True)
        whole = number_kind(metric) in ("bytes", "count")
        frame[label] = _as_int_if_whole(values) if whole else values
        if table.std is not None:
            frame[f"{label} std"] = table.std.iloc[:, j].reset_index(drop=True)
        if table.low is not None:
            frame[f"{label} ci_low"] = table.low.iloc[:, j].reset_index(drop=True)
            frame[f"{label} ci_high"] = table.high.iloc[:, j].reset_index(drop=True)
    return frame


def _as_int_if_whole(series: pd.Series) -> pd.Series:
    if series.dtype.kind == "f":
        present = series.dropna()
        if (present == present.round()).all() and (present.abs() < 2**53).all():
            return series.astype("Int64")
    return series


def to_csv(table: Table) -> str:
    """The :func:`table_frame` as CSV text (no index column)."""
    return output("csv").frame(table_frame(table))


@with_declared_metrics
def render(table: Table, fmt: str = "markdown", human_bytes: bool = True,
           caption: str | None = None, label: str | None = None,
           intervals: bool = True) -> str:
    """``table`` in format ``fmt`` (see :mod:`benchpq.report.output`).

    CSV gives plain full-precision numbers (:func:`table_frame`); the other formats the
    :func:`table_grid` (LaTeX with display names), ``human_bytes`` and ``intervals``
    applying to them, ``caption``/``label`` to LaTeX (caption also to Markdown).
    """
    if fmt == "csv":
        return to_csv(table)
    grid = table_grid(table, human_bytes, intervals, display=fmt == "latex")
    return output(fmt).table(grid, caption=caption, label=label)
