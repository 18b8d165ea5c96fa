"""A browsable static report of run records: ``benchpq-report DIR --html OUT``.

``OUT/index.html`` lists every (sweep, dataset, task) with its algorithms, run counts and
failures, and the published figures; ``OUT/<sweep>-<dataset>-<task>.html`` holds that part's
plots (PNG files
in ``OUT/img/``), its table with 95% intervals, the paired comparisons asked for, the
published figures beside ours, every run's config and provenance, and the failed runs with
their messages and tracebacks. Plain HTML and one inline style sheet: no script, no server,
nothing fetched; it reads offline from the folder alone. Everything comes from the records.
"""
from __future__ import annotations

import json
import re
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..store.records import read_record
from .formatting import format_key, render
from .load import ReportError, param_columns
from .names import number_kind, with_declared_metrics
from .output import Grid, output
from .paired import PAIRED_NOTE, paired_comparison, render_paired
from .pareto import plot_pareto
from .plots import MARKERS, averaged_over, axis_label, is_bits, legend_outside, save_png
from .references import check_reference, reference_grid, reference_table
from .scaling import SCALING_NOTE, plot_scaling, render_scaling, scaling_fits
from .selectors import Selector, parse_selector
from .summary import describe_failure, summary_tables, table_footnote
from .tables import SplitRowsWarning, Table, defining_columns, pivot

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1600px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right;
         white-space: nowrap; }
td.text { text-align: left; white-space: normal; min-width: 16em; }
.wide { overflow-x: auto; }
th { background: #f2f2f2; } td.key, th.key { text-align: left; }
td.bad, span.bad { color: #b00; font-weight: bold; } td.good { color: #070; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; } .plots img { width: 560px; border: 1px solid #ddd; }
.note { color: #555; font-size: 0.85em; max-width: 60em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
nav a { margin-right: 1em; }
"""


def slug(*parts) -> str:
    """A file-name-safe name: ('sift 1M', 'search') -> 'sift-1m-search'."""
    text = "-".join(format_key(p) for p in parts).lower()
    return re.sub(r"[^a-z0-9._-]+", "-", text).strip("-") or "part"


@with_declared_metrics
def write_site(df: pd.DataFrame, out, compare=(), title: str = "benchpq report") -> Path:
    """Write the static site for the runs of ``df`` (loaded with ``status=None``) to ``out``.

    ``compare``: (A, B) pairs for paired comparisons. Returns the index path.
    """
    if df.empty:
        raise ReportError("no runs to report")
    out = Path(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    references = reference_table(df) if df.attrs.get("references") else pd.DataFrame()
    keys = df[["sweep", "dataset", "task"]].astype(object).where(df[["sweep", "dataset",
                                                                    "task"]].notna(), None)
    parts = sorted(set(map(tuple, keys.to_numpy())), key=lambda p: tuple(map(format_key, p)))
    entries = []
    for sweep, dataset, task in parts:
        runs = df[(keys["sweep"] == sweep) & (keys["dataset"] == dataset)
                  & (keys["task"] == task)]
        runs.attrs = dict(df.attrs)
        name = slug(sweep, dataset, task)
        tables = summary_tables(runs)
        runs.attrs["references"] = [(r, s) for r, s in df.attrs.get("references") or []
                                    if s in (None, sweep) and _may_concern(r, dataset)]
        mine = reference_table(runs) if runs.attrs["references"] else pd.DataFrame()
        if len(mine):   # an experiment file's references count where they found runs
            mine = mine[(mine["runs"] > 0) | (mine["sweep"] == sweep)]
        body = _part_page(runs, tables[0] if tables else None, name, out, compare, mine)
        _write(out / f"{name}.html", f"{format_key(dataset)} / {format_key(task)} "
               f"(sweep {format_key(sweep)})", body, title)
        entries.append((sweep, dataset, task, name, runs))
    index = out / "index.html"
    _write(index, title, _index_body(df, entries, references), title, is_index=True)
    return index


# ----------------------------------------------------------------------------- pages

def _write(path: Path, heading: str, body: str, site_title: str, is_index=False) -> None:
    nav = "" if is_index else '<nav><a href="index.html">← index</a></nav>'
    page_title = heading if is_index else f"{heading} – {site_title}"
    path.write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    f"<title>{_e(page_title)}</title><style>{STYLE}</style>"
                    f"</head><body>{nav}<h1>{_e(heading)}</h1>\n{body}\n</body></html>\n")


def _may_concern(reference: dict, dataset) -> bool:
    """False if the reference names another dataset than ``dataset`` (its page would list it
    as a published figure without a run)."""
    named = check_reference(reference)["where"].get("dataset")
    return named is None or str(named) == str(dataset)


def _index_body(df, entries, references) -> str:
    sweeps = ", ".join(sorted(map(format_key, df["sweep"].dropna().unique())))
    rows = []
    for sweep, dataset, task, _name, runs in entries:
        ok = runs[runs["status"] == "ok"]
        algorithms = ", ".join(sorted(map(format_key, runs["algorithm"].dropna().unique())))
        failed = len(runs) - len(ok)
        rows.append([format_key(sweep), format_key(dataset), format_key(task), algorithms,
                     str(len(ok)), str(failed)])
    grid = Grid(["sweep", "dataset", "task", "algorithms", "ok runs", "failed runs"], rows,
                n_keys=4, text_cols={3},
                links=[[None, f"{entry[3]}.html", None, None, None, None] for entry in entries],
                bad=[[False] * 5 + [row[5] != "0"] for row in rows])
    parts = [f"<p>Sweeps: {_e(sweeps)}. {len(df)} runs.</p>", HTML.table(grid)]
    if len(references):
        flagged = int((references["status"] != "ok").sum())
        parts.append(f"<h2>Published figures</h2><p>{len(references)} published figures, "
                     f"{flagged} outside their tolerance or without a run.</p>")
        parts.append(_references_html(references))
    return "\n".join(parts)


def _part_page(runs, table: Table | None, name: str, out: Path, compare, references) -> str:
    ok = runs[runs["status"] == "ok"]
    parts = []
    images = _plots(ok, name, out)
    if images:
        parts.append("<h2>Plots</h2><div class=\"plots\">" + "".join(
            f'<figure><img src="img/{_e(f)}" alt="{_e(caption)}"><figcaption>{_e(caption)}'
            "</figcaption></figure>" for f, caption in images) + "</div>")
    if table is not None:
        parts += ["<h2>Results</h2>", render(table, "html"), HTML.note(table_footnote(table))]
    growth = growth_specs(ok)
    if growth:
        fits = scaling_fits(ok, [y for _, y in growth], growth[0][0])
        parts += ["<h2>Growth with the data size</h2>", render_scaling(fits, "html"),
                  HTML.note(SCALING_NOTE)]
    for a, b in compare:
        a, b = (s if isinstance(s, Selector) else parse_selector(s) for s in (a, b))
        if not {a.name, b.name} <= set(ok["algorithm"]):
            continue
        parts.append(f"<h2>Paired comparison: {_e(str(a))} vs {_e(str(b))}</h2>")
        try:
            frame = paired_comparison(ok, a, b)
        except ReportError as exc:  # e.g. a side with several configurations here
            parts.append(HTML.note(f"Not compared on this page: {exc}"))
            continue
        parts += [render_paired(frame, "html"), HTML.note(PAIRED_NOTE)]
    if len(references):
        parts += ["<h2>Published figures beside ours</h2>", _references_html(references)]
    parts += ["<h2>Runs</h2>", _runs_html(runs)]
    failed = runs[runs["status"] != "ok"]
    parts.append(f"<h2>Failed runs ({len(failed)})</h2>")
    parts.append(_failures_html(failed, runs) if len(failed) else "<p>None.</p>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- plots

def pareto_specs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(x, y) of the Pareto-front plots of a search part: recall@10 against qps, against
    the candidates scanned where searchers report them, and against the bytes stored per
    vector where that varies."""
    def has(c):
        return c in runs.columns and pd.to_numeric(runs[c], errors="coerce").notna().any()
    if not (has("recall@10") and has("qps")):
        return []
    varies = has("bytes_per_vector") and runs["bytes_per_vector"].nunique() > 1
    return [("recall@10", "qps")] + ([("mean_candidates", "recall@10")]
                                     if has("mean_candidates") else []) + \
        ([("bytes_per_vector", "recall@10")] if varies else [])


def plot_specs(runs: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """(x, y, log x) of the plots a part gets: each recall and mse against code_bits and
    against bytes_per_vector (log) when they vary, and each recall against search time (log)
    for searches."""
    def has(c):
        return c in runs.columns and pd.to_numeric(runs[c], errors="coerce").notna().any()
    recalls = [c for c in ("recall@1", "recall@10", "recall@100") if has(c)]
    specs = []
    if has("code_bits") and runs["code_bits"].nunique() > 1:
        specs += [("code_bits", y, False) for y in recalls + ["mse"] if has(y)]
    if has("bytes_per_vector") and runs["bytes_per_vector"].nunique() > 1:
        specs += [("bytes_per_vector", y, True) for y in recalls + ["mse"] if has(y)]
    if has("search_s"):
        specs += [("search_s", y, True) for y in recalls]
    if has("cluster_s") and has("error"):
        specs.append(("cluster_s", "error", True))
    return specs


#: what the growth plots of a sweep over sizes draw, where recorded: phase times and peaks
GROWTH_METRICS = ("train_s", "add_s", "encode_s", "search_s", "iter_s", "kmeans_s", "cluster_s",
                  "add_peak_rss_bytes", "search_peak_rss_bytes", "cluster_peak_rss_bytes")


def size_column(runs: pd.DataFrame) -> str | None:
    """The data size a part's runs vary, ``n_base`` (search) or ``n`` (clustering), when it
    takes at least two values; else None."""
    for column in ("n_base", "n"):
        if column in runs.columns and pd.to_numeric(runs[column], errors="coerce").nunique() > 1:
            return column
    return None


def growth_specs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(size column, metric) of the log-log growth plots of a part whose size varies."""
    size = size_column(runs)
    if size is None:
        return []
    return [(size, y) for y in GROWTH_METRICS
            if y in runs.columns and pd.to_numeric(runs[y], errors="coerce").gt(0).any()]


def _plots(ok: pd.DataFrame, name: str, out: Path) -> list[tuple[str, str]]:
    """(file, caption) of every plot drawn for a part, written under ``out/img``."""
    wanted = [(f"{name}-pareto-{slug(y)}-vs-{slug(x)}.png", f"Pareto fronts of {y} against {x}",
               partial(plot_pareto, ok, x, y)) for x, y in pareto_specs(ok)]
    wanted += [(f"{name}-{slug(y)}-vs-{slug(x)}.png",
                f"{y} against {x}" + (" (log x)" if logx else ""),
                partial(tradeoff_plot, ok, x, y, logx=logx)) for x, y, logx in plot_specs(ok)]
    wanted += [(f"{name}-growth-{slug(y)}-vs-{slug(x)}.png",
                f"{y} against {x}, log-log, with each line's fitted slope",
                partial(plot_scaling, ok, y, x)) for x, y in growth_specs(ok)]
    return [(file, caption) for file, caption, draw in wanted if _drawn(draw, out / "img" / file)]


def _drawn(draw, path: Path) -> bool:
    """Whether ``draw(path=path)`` wrote its image (False, or a ReportError: nothing to draw)."""
    try:
        return draw(path=path) is not False
    except ReportError:
        return False


def tradeoff_plot(runs: pd.DataFrame, x: str, y: str, path: Path, logx: bool = False) -> bool:
    """Save ``y`` against ``x``, one point per configuration (the runs that differ only by
    seed: mean of x and y, with 95% intervals as error bars: t over seeds, or a single
    run's recorded bootstrap interval), one marker and colour per algorithm, no
    connecting lines (configurations of one algorithm need not form a curve). A bits
    axis is log2. False if no run has both values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    data = runs.copy()
    data[x], data[y] = (pd.to_numeric(data[c], errors="coerce") for c in (x, y))
    data = data.dropna(subset=[x, y])
    if data.empty:
        return False
    configs = [c for c in defining_columns(data) if c not in (x, y)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SplitRowsWarning)  # every config is a point here
        table = pivot(data, configs, None, [x, y])
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = table.mean.reset_index()
    for i, (algorithm, group) in enumerate(points.groupby("algorithm", sort=True)):
        rows = group.index
        err = {v: _bounded(table, rows, v) for v in (x, y)}
        order = np.argsort(group[x].to_numpy(float))
        ax.errorbar(group[x].to_numpy(float)[order], group[y].to_numpy(float)[order],
                    xerr=err[x][:, order], yerr=err[y][:, order],
                    label=format_key(algorithm), marker=MARKERS[i % len(MARKERS)], capsize=2,
                    linestyle="none", elinewidth=1)
    if is_bits(x):
        ax.set_xscale("log", base=2)
    elif logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.set_title(f"{y} vs {x}\n{averaged_over(table.count[y])}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    legend_outside(ax)
    save_png(fig, path, dpi=100)
    return True


def _bounded(table: Table, rows, name: str) -> np.ndarray:
    """(2, n) error-bar lengths of ``name`` below and above the mean of ``rows``: the 95%
    interval's ends (0 without one), a fraction's cut at 0 and 1, which it cannot leave."""
    mean = table.mean[name].iloc[rows].to_numpy(float)
    low = np.nan_to_num(mean - table.low[name].iloc[rows].to_numpy(float))
    high = np.nan_to_num(table.high[name].iloc[rows].to_numpy(float) - mean)
    if number_kind(name) == "fraction":
        low, high = np.minimum(low, np.maximum(mean, 0)), np.minimum(high, np.maximum(1 - mean, 0))
    return np.vstack([np.maximum(low, 0), np.maximum(high, 0)])


# ----------------------------------------------------------------------------- tables

HTML = output("html")


def _e(text) -> str:
    return HTML.escape(text)


def _references_html(frame: pd.DataFrame) -> str:
    return HTML.table(reference_grid(frame))


def _runs_html(runs: pd.DataFrame) -> str:
    params = [p for p in param_columns(runs) if runs[p].notna().any()]
    out = []
    for _, run in runs.sort_values(["algorithm", "seed"], na_position="last").iterrows():
        values = ", ".join(f"{p}={format_key(run[p])}" for p in params if format_key(run[p]))
        record = _record(run)
        details = "".join(f"<details><summary>{key}</summary><pre>{_e(_json(record[key]))}"
                          "</pre></details>" for key in ("config", "provenance")
                          if record.get(key))
        out.append(f"<li><code>{_e(run['run_id'])}</code> {_e(format_key(run['algorithm']))}"
                   f"({_e(values)}) seed={_e(format_key(run['seed']))} threads="
                   f"{_e(format_key(run['threads']))}: {_e(run['status'])}{details}</li>")
    return "<ul>" + "\n".join(out) + "</ul>"


def _failures_html(failed: pd.DataFrame, runs: pd.DataFrame) -> str:
    out = []
    for _, run in failed.iterrows():
        record = _record(run)
        trace = record.get("traceback") or record.get("message") or ""
        out.append(f"<li>{_e(describe_failure(run, param_columns(runs)))}<details><summary>"
                   f"message and traceback</summary><pre>{_e(run['message'])}\n\n{_e(trace)}"
                   "</pre></details></li>")
    return "<ul>" + "\n".join(out) + "</ul>"


def _record(run: pd.Series) -> dict:
    path = run.get("path")
    if not isinstance(path, str) or not path:
        return {}
    try:
        record = read_record(path)
    except (OSError, ValueError):
        return {}
    metrics = record.get("metrics")
    if isinstance(metrics, dict):
        metrics.pop("per_query", None)
    return record if isinstance(record, dict) else {}


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
