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
from .names import better_direction
from .tables import as_list, check_columns, pivot

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")


def plot(df: pd.DataFrame, x: str = "code_bits", y: str = "recall@10", by="algorithm",
         path: str | os.PathLike = "out.png", logx: bool = False, title: str | None = None,
         dpi: int = 150) -> Path:
    """Plot ``y`` against ``x``, one line per value of ``by`` (str or list), save as PNG.

    Runs with the same ``by`` and ``x`` (seeds) are averaged, with their sample std as
    error bars. Points are sorted by ``x``; ``logx`` puts x on a log scale. Returns the
    path written (parent directories are created).
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
    for i, (label, points) in enumerate(_lines(table, by, x, y)):
        ax.errorbar(points[x], points["mean"], yerr=points["std"], label=label,
                    marker=MARKERS[i % len(MARKERS)], capsize=3, linewidth=1.5)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(axis_label(y))
    ax.set_title(title if title is not None else default_title(df, x, y))
    ax.grid(True, alpha=0.3)
    legend_outside(ax, ", ".join(by))
    return save_png(fig, path, dpi)


def _has_points(df: pd.DataFrame, x: str, y: str) -> bool:
    def numeric(name):
        return pd.to_numeric(df[name], errors="coerce").notna()
    return bool((numeric(x) & numeric(y)).any())


def _lines(table, by: list[str], x: str, y: str):
    """(legend label, DataFrame with columns x, mean, std sorted by x) per line."""
    frame = pd.DataFrame({"mean": table.mean[y], "std": table.std[y].fillna(0.0)}).reset_index()
    frame[x] = pd.to_numeric(frame[x], errors="coerce")
    for key, points in frame.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(format_key(k) if len(by) == 1 else f"{b}={format_key(k)}"
                          for b, k in zip(by, key))
        yield label, points.sort_values(x)


def axis_label(name: str) -> str:
    """``name`` with its direction, e.g. "recall@10 (higher is better)"."""
    direction = better_direction(name)
    hint = {"max": " (higher is better)", "min": " (lower is better)"}.get(direction, "")
    return name + hint


def default_title(df: pd.DataFrame, x: str, y: str, what: str = "") -> str:
    """``<what>y vs x on <datasets>`` (the datasets named when there are at most three)."""
    datasets = [format_key(d) for d in pd.unique(df["dataset"].dropna())] \
        if "dataset" in df.columns else []
    where = f" on {', '.join(datasets)}" if datasets and len(datasets) <= 3 else ""
    return f"{what}{y} vs {x}{where}"


def legend_outside(ax, title: str | None = None) -> None:
    """The legend of ax to the right of its axes, where it covers no point."""
    ax.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def save_png(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Lay ``fig`` out tightly and write it to ``path`` as PNG (folders made as needed);
    the image is cut to what is drawn, so a legend outside the axes is kept whole."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path
