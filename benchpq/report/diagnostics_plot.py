"""Codebook diagnostics plot (``benchpq-report DIR --diagnostics OUT.png``).

One panel per per-sub-space metric recorded by :mod:`benchpq.measure.diagnostics`
(``subspace_mse``, ``codeword_usage``, ``code_entropy_bits``): grouped bars,
sub-space index on x, one bar per configuration (algorithm and the params that
vary, e.g. M; the dataset too when several), averaged over seeds. Clustering
runs with ``cluster_size_*`` metrics add a panel of min / median / max cluster
size per configuration (log scale). Matplotlib's Agg canvas, no display needed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .formatting import format_key
from .load import ReportError
from .plots import legend_outside, save_png
from .tables import default_rows

SUBSPACE_METRICS = {
    "subspace_mse": "mse per sub-space (lower is better)",
    "codeword_usage": "fraction of codewords used",
    "code_entropy_bits": "code entropy per sub-space (bits)",
}
CLUSTER_SIZES = ("cluster_size_min", "cluster_size_median", "cluster_size_max")


def _as_vector(cell) -> np.ndarray | None:
    """A per-sub-space list as recorded (JSON text in the frame, or a list), else None."""
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)
        except ValueError:
            return None
    if isinstance(cell, (list, tuple, np.ndarray)) and len(cell) > 0:
        return np.asarray(cell, dtype=np.float64)
    return None


def _labels(df: pd.DataFrame) -> pd.Series:
    """One legend label per run: algorithm, the params that vary, the dataset if several."""
    keys = default_rows(df)
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        keys = ["dataset", *keys]
    return df.apply(lambda row: ", ".join(
        format_key(row[k]) if k == "algorithm" else f"{k}={format_key(row[k])}"
        for k in keys if not (k != "algorithm" and pd.isna(row[k]))), axis=1)


def subspace_series(df: pd.DataFrame, metric: str) -> dict[str, np.ndarray]:
    """{label: per-sub-space mean over the label's runs} for runs that recorded ``metric``."""
    if metric not in df.columns:
        return {}
    vectors = df[metric].map(_as_vector)
    runs = df[vectors.notna()]
    out: dict[str, np.ndarray] = {}
    for label, group in vectors[vectors.notna()].groupby(_labels(runs), sort=True):
        lengths = {v.size for v in group}
        if len(lengths) > 1:  # same label, different M: the label misses a varying param
            raise ReportError(f"{metric}: runs labelled {label!r} have {sorted(lengths)} "
                              "sub-spaces; filter the records to one M per configuration")
        out[str(label)] = np.mean(np.stack(list(group)), axis=0)
    return out


def cluster_series(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """{label: (min, median, max) cluster size averaged over runs} for clustering runs."""
    if not all(c in df.columns for c in CLUSTER_SIZES):
        return {}
    runs = df.dropna(subset=list(CLUSTER_SIZES))
    if runs.empty:
        return {}
    values = runs[list(CLUSTER_SIZES)].apply(pd.to_numeric, errors="coerce")
    return {str(label): group.mean().to_numpy()
            for label, group in values.groupby(_labels(runs), sort=True)}


def plot_diagnostics(df: pd.DataFrame, path: str | os.PathLike = "diagnostics.png",
                     title: str | None = None, dpi: int = 120) -> Path:
    """Save the diagnostics panels of the runs in ``df`` as a PNG; returns the path.

    Raises :class:`ReportError` when no run recorded any diagnostic.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(metric, label, subspace_series(df, metric))
              for metric, label in SUBSPACE_METRICS.items()]
    panels = [p for p in panels if p[2]]
    clusters = cluster_series(df)
    if not panels and not clusters:
        raise ReportError("no run recorded diagnostics (subspace_mse, codeword_usage, "
                          "code_entropy_bits or cluster_size_*)")
    count = len(panels) + bool(clusters)
    fig = Figure(figsize=(10.0, 3.2 * count))
    FigureCanvasAgg(fig)
    axes = fig.subplots(count, 1, squeeze=False)[:, 0]
    for ax, (metric, label, series) in zip(axes, panels):
        _grouped_bars(ax, series, [f"{i}" for i in range(max(v.size for v in series.values()))])
        ax.set_xlabel("sub-space")
        ax.set_ylabel(label)
        ax.set_title(metric)
    if clusters:
        ax = axes[-1]
        _grouped_bars(ax, clusters, ["min", "median", "max"])
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("vectors per cluster")
        ax.set_title("cluster sizes")
    if title:
        fig.suptitle(title, parse_math=False)
    return save_png(fig, path, dpi)


def _grouped_bars(ax, series: dict[str, np.ndarray], ticks: list[str]) -> None:
    """One bar per series at each tick position (shorter series leave gaps)."""
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        x = np.arange(values.size) + (i - (len(series) - 1) / 2) * width
        ax.bar(x, values, width=width, label=label)
    ax.set_xticks(np.arange(len(ticks)), ticks)
    ax.grid(True, axis="y", alpha=0.3)
    legend_outside(ax)
