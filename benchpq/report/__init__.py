"""Turn run records into paper-style tables (Markdown, LaTeX, CSV) and plots (PNG).

The report reads records only (:mod:`benchpq.store.records`); nothing else in benchpq
depends on it. Typical use::

    from benchpq.report import load_records, pivot, to_latex, summary_table, plot

    df = load_records("results/pq_sift", status=None)      # one row per run
    print(summary_table(df))                                # default comparison + failures
    table = pivot(df[df.status == "ok"], rows="algorithm", cols="M",
                  values=["recall@10", "mse"])              # mean ± std over seeds
    print(to_latex(table))
    plot(df, x="code_bits", y="recall@10", by="algorithm", path="recall.png")

Modules: :mod:`.load` (records -> DataFrame), :mod:`.tables` (pivot),
:mod:`.formatting` (table cells: numbers, intervals, bold, cached marks),
:mod:`.output` (one object per format: terminal, Markdown, LaTeX, CSV, HTML),
:mod:`.summary` (default table),
:mod:`.plots` (PNG), :mod:`.names` (metric directions and number kinds),
:mod:`.compare` (per-phase ratios of an algorithm to a baseline in the same sweep),
:mod:`.paired` (paired comparisons: A - B, 95% interval, p-value, verdict),
:mod:`.references` (published figures beside measured ones), :mod:`.html` (static site).
Intervals and tests themselves live in :mod:`benchpq.measure.uncertainty`.
"""
from __future__ import annotations

from .compare import parse_baselines, ratio_metrics, with_ratios
from .formatting import (
                         format_number,
                         latex_escape,
                         render,
                         table_frame,
                         to_csv,
                         to_latex,
                         to_markdown,
)
from .html import write_site
from .load import (
                         CorruptRecordWarning,
                         DuplicateRunWarning,
                         ReportError,
                         filter_status,
                         load_records,
                         metric_columns,
                         param_columns,
                         records_to_frame,
)
from .names import better_direction
from .output import FORMATS, Grid, output
from .paired import paired_comparison, render_paired
from .plots import plot
from .references import reference_table, render_references
from .summary import key_metrics, summary_table, summary_tables
from .tables import SplitRowsWarning, Table, default_rows, pivot

__all__ = [
    "FORMATS", "CorruptRecordWarning", "parse_baselines", "ratio_metrics", "with_ratios",
    "SplitRowsWarning", "ReportError", "Table", "DuplicateRunWarning", "output", "Grid",
    "better_direction", "default_rows", "filter_status", "format_number", "key_metrics",
    "latex_escape", "load_records", "metric_columns", "param_columns", "pivot", "plot",
    "records_to_frame", "render", "summary_table", "summary_tables", "table_frame", "to_csv",
    "to_latex", "to_markdown", "paired_comparison", "render_paired", "reference_table",
    "render_references", "write_site",
]
