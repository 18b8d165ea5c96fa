"""Trade-off plots (e.g. recall@10 against code_bits), one line per algorithm, saved as PNG.

Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it
works without a display and does not disturb an interactive session.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .formatting import format_key
from .load import ReportError
from .names import better_direction, display_name, is_known_metric, unit, with_declared_metrics
from .tables import as_list, check_columns, pivot

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")


@with_declared_metrics
def plot(df: pd.DataFrame, x: str = "code_bits", y: str = "recall@10", by="algorithm",
         path: str | os.PathLike = "out.png", logx: bool = False, title: str | None = None,
         dpi: int = 150) -> Path:
    """Plot ``y`` against ``x``, one line per value of ``by`` (str or list), save as PNG.

    Runs with the same ``by`` and ``x`` that differ in their seed alone are averaged;
    error bars are 95% intervals (t over seeds, or a single run's recorded bootstrap
    interval over queries). Runs that differ in another condition (threads, machine,
    ...) get lines of their own (:func:`~benchpq.report.tables.pivot`). Points are
    sorted by ``x``; ``logx`` puts x on a log scale; a bits axis (code_bits, ...) is
    always log2. The default title says what a point is (mean of how many seeds).
    Returns the path written (parent directories are created).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by = as_list(by)
    check_columns(df, [x, y, *by])
    if not _has_points(df, x, y):
        raise ReportError(f"no run has both {x!r} and {y!r} to plot")
    table = pivot(df.dropna(subset=[x, y]), by + [x], None, [y])
    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lines = [r for r in table.rows if r != x]
    for i, (label, points) in enumerate(_lines(table, lines, x, y)):
        ax.errorbar(points[x], points["mean"], yerr=[points["below"], points["above"]],
                    label=label, marker=MARKERS[i % len(MARKERS)], capsize=3, linewidth=1.5)
    if is_bits(x):
        ax.set_xscale("log", base=2)
    elif logx:
        ax.set_xscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.set_title(title if title is not None else
                 f"{default_title(df, x, y)}\n{averaged_over(table.count[y])}")
    ax.grid(True, alpha=0.3)
    legend_outside(ax, ", ".join(by))
    return save_png(fig, path, dpi)


def _has_points(df: pd.DataFrame, x: str, y: str) -> bool:
    def numeric(name):
        return pd.to_numeric(df[name], errors="coerce").notna()
    return bool((numeric(x) & numeric(y)).any())


def is_bits(name: str) -> bool:
    """Whether metric or param ``name`` counts bits (drawn on a log2 axis)."""
    return str(name).endswith("_bits") or (is_known_metric(name) and unit(name) == "bits")


def averaged_over(counts: pd.Series) -> str:
    """What a point of a plot is: 'mean of 3 seeds, 95% t intervals' or 'one run per
    point, 95% bootstrap intervals over queries where recorded'."""
    low, high = int(counts.min()), int(counts.max())
    if high <= 1:
        return "one run per point; bars: 95% bootstrap intervals over queries where recorded"
    n = f"{low}" if low == high else f"{low}-{high}"
    return f"mean of {n} seeds per point; bars: 95% t intervals of the mean"


def _lines(table, by: list[str], x: str, y: str):
    """(legend label, DataFrame with columns x, mean, below, above sorted by x) per line;
    below/above: distances from the mean to the 95% interval's ends (0 without one)."""
    frame = pd.DataFrame({"mean": table.mean[y],
                          "below": (table.mean[y] - table.low[y]).fillna(0.0),
                          "above": (table.high[y] - table.mean[y]).fillna(0.0)}).reset_index()
    frame[x] = pd.to_numeric(frame[x], errors="coerce")
    for key, points in frame.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(format_key(k) if len(by) == 1 else f"{b}={format_key(k)}"
                          for b, k in zip(by, key))
        yield label, points.sort_values(x)


def axis_label(name: str) -> str:
    """A metric's display name and unit with its direction, e.g. "Recall@10 (higher is
    better)"; another column (a param) as it is named."""
    if not is_known_metric(name):
        return str(name)
    hint = {"max": " (higher is better)", "min": " (lower is better)"}.get(
        better_direction(name), "")
    return display_name(name) + hint


def default_title(df: pd.DataFrame, x: str, y: str, what: str = "") -> str:
    """``<what>y vs x on <datasets>`` (the datasets named when there are at most three)."""
    datasets = [format_key(d) for d in pd.unique(df["dataset"].dropna())] \
        if "dataset" in df.columns else []
    where = f" on {', '.join(datasets)}" if datasets and len(datasets) <= 3 else ""
    return f"{what}{y} vs {x}{where}"


def literal_text(fig) -> None:
    """Draw the titles, axis labels and legend entries of ``fig`` as plain text: names
    from the records (an algorithm called ``a$b``) are not parsed as math. Tick labels,
    which matplotlib writes with math itself, are left alone."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
    for text in texts:
        text.set_parse_math(False)


def legend_outside(ax, title: str | None = None) -> None:
    """The legend of ax to the right of its axes, where it covers no point."""
    ax.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def save_png(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Lay ``fig`` out tightly and write it to ``path`` as PNG (folders made as needed);
    the image is cut to what is drawn, so a legend outside the axes is kept whole. Titles,
    axis labels and legends are drawn as the text they hold (:func:`literal_text`)."""
    literal_text(fig)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path
