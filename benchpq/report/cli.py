"""``benchpq-report``: comparison tables and plots from the run records of sweeps.

Examples::

    benchpq-report results/pq_sift                       # summary table + failed runs
    benchpq-report results/ --rows algorithm --cols M --values recall@100 --values mse \\
        --format latex --output table.tex
    benchpq-report results/pq_sift --plot recall.png --x code_bits --y recall@10 --logx
    benchpq-report results/own_vs_faiss --baseline pq=faiss_pq --baseline opq=faiss_opq
    benchpq-report results/lopq-siftsmall --pareto front.png        # recall@10 vs qps fronts
    benchpq-report results/lopq-siftsmall --pareto-table --x mean_candidates
    benchpq-report results/paired-siftsmall --compare pq=faiss_pq      # paired tests
    benchpq-report results/ --html report/ --compare pq=faiss_pq       # static site
    benchpq-report results/scale --fit --values add_s,search_s --extrapolate 1e9
    benchpq-report results/scale --scaling add.png --y add_s --extrapolate 1e9

PATH may be a sweep directory, a ``records/`` directory, a record file, or a directory
above sweeps (every ``records/`` below it is read). Names given to --rows, --cols,
--values and --by may be repeated or comma-separated. Errors (missing path, unknown
column, ...) are one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..metric_table import UnknownMetricError
from . import (
    FORMATS,
    ReportError,
    default_rows,
    filter_status,
    key_metrics,
    load_records,
    parse_baselines,
    pivot,
    plot,
    render,
    summary_table,
    with_ratios,
)
from .formatting import format_key, interval_note
from .html import write_site
from .load import at_floors, parse_floors
from .names import declared_metrics
from .output import output
from .paired import PAIRED_NOTE, paired_comparison, parse_pairs, render_paired
from .pareto import default_axes, pareto_table, plot_pareto
from .references import merge_references, reference_table, references_from_file, render_references
from .scaling import DEFAULT_X as SCALING_X
from .scaling import SCALING_NOTE, plot_scaling, render_scaling, scaling_fits
from .selectors import split_top_level
from .tables import AGGREGATIONS

PROG = "benchpq-report"
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".tex": "latex", ".csv": "csv"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``benchpq-report``."""
    p = argparse.ArgumentParser(prog=PROG, description="Tables and plots from benchpq run "
                                "records.", epilog="Without --rows/--cols/--values: the summary "
                                "table of each dataset and task, then the failed runs.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="sweep dir, records dir, record "
                   "file or results root")
    p.add_argument("--rows", action="append", metavar="COL", help="row key column(s) "
                   "(default: algorithm and its varying params)")
    p.add_argument("--cols", action="append", metavar="COL", help="column key column(s), e.g. M")
    p.add_argument("--values", action="append", metavar="METRIC", help="metric(s) in the cells "
                   "(default: the key metrics present)")
    p.add_argument("--agg", choices=AGGREGATIONS, default="mean", help="how runs in one cell "
                   "are combined (mean also gives ± std)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --output "
                   "suffix .md/.tex/.csv, else markdown)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the table here, not to stdout")
    p.add_argument("--caption", help="LaTeX caption (wraps the tabular in a table float)")
    p.add_argument("--raw-bytes", action="store_true", help="print byte counts as integers")
    p.add_argument("--wide", action="store_true", help="summary: every key metric, with "
                   "intervals, however wide (default: recall@1/10/100, mse, train_s, search_s, "
                   "code_bits, fitted to 120 columns)")
    p.add_argument("--no-intervals", action="store_true", help="values without their ± and "
                   "[low, high] intervals")
    p.add_argument("--baseline", action="append", metavar="ALGO=BASE", help="compare ALGO "
                   "with BASE run under the same conditions: adds '<metric> ratio' columns "
                   "(ours / baseline) for times and memory; repeatable")
    p.add_argument("--compare", action="append", metavar="A=B", help="paired comparison of "
                   "A with B run under the same conditions and seeds: A - B per metric with a "
                   "95%% interval, p-value and verdict (recalls paired by query, and by query and "
                   "seed over several seeds, when the runs recorded per-query values, else by "
                   "seed); repeatable")
    p.add_argument("--references", action="append", metavar="FILE", help="also compare with "
                   "the report.references of this experiment YAML (for records made before "
                   "they were added); repeatable")
    p.add_argument("--html", metavar="DIR", help="write a static browsable report (index "
                   "page, one page per dataset and task with plots, tables, paired "
                   "comparisons of --compare, published figures, run configs and failures) "
                   "to DIR instead of printing a table")
    p.add_argument("--published", action="store_true", help="print only the table of "
                   "published figures beside the measured ones")
    p.add_argument("--floor", action="append", metavar="METRIC=VALUE", help="keep only runs "
                   "at least this good, e.g. recall@10=0.9 (>= where higher is better, <= "
                   "where lower is); repeatable: e.g. bytes per vector against qps at a "
                   "recall floor")
    p.add_argument("--all-status", action="store_true", help="tabulate and plot runs of every "
                   "status, not only 'ok'")
    g = p.add_argument_group("plot")
    g.add_argument("--plot", metavar="FILE", help="also save a PNG plot here")
    g.add_argument("--pareto", metavar="FILE", help="save each algorithm's Pareto front of "
                   "--x against --y as a PNG (default axes: recall@10 and qps)")
    g.add_argument("--pareto-table", action="store_true", help="print the front points of "
                   "each algorithm instead of the summary table")
    g.add_argument("--x", help="x column (default: code_bits; with --pareto recall@10, or "
                   "the other axis when only one is given)")
    g.add_argument("--y", help="y column (default: recall@10; with --pareto qps, or "
                   "recall@10 when --x is another column)")
    g.add_argument("--by", action="append", metavar="COL", help="one line per value of this "
                   "column (default: algorithm)")
    g.add_argument("--logx", action="store_true", help="log-scale x axis")
    g.add_argument("--title", help="plot title")
    s = p.add_argument_group("scaling")
    s.add_argument("--fit", action="store_true", help="print, instead of the table, the "
                   "log-log slope of each --values metric against --x (default n_base), one "
                   "line per --by (default algorithm)")
    s.add_argument("--scaling", metavar="FILE", help="save --y against --x (default n_base) "
                   "on log-log axes with each line's fitted slope as a PNG")
    s.add_argument("--extrapolate", metavar="N", type=float, help="with --fit or --scaling: "
                   "also the value at size N, from the largest size along the fitted slope")
    p.add_argument("--diagnostics", metavar="FILE", help="also save the codebook diagnostics "
                   "(per-sub-space mse, codeword usage, code entropy, cluster sizes) as a PNG")
    return p


def names(values: list[str] | None) -> list[str]:
    """Flatten repeated and comma-separated option values: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    return [n.strip() for v in values or [] for n in split_top_level(v, ",") if n.strip()]


def output_format(args: argparse.Namespace) -> str:
    """--format, else the one the --output suffix implies, else markdown."""
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower() if args.output else ""
    return SUFFIX_FORMATS.get(suffix, "markdown")


def make_table_text(df, args: argparse.Namespace) -> str:
    """The requested pivot table, or the summary table if no row/col/value was given."""
    fmt = output_format(args)
    if args.extrapolate is not None and not (args.fit or args.scaling):
        raise ReportError("--extrapolate goes with --fit or --scaling")
    if args.scaling and not args.y:
        raise ReportError("--scaling needs --y, the metric to draw against --x")
    if args.extrapolate is not None and not args.extrapolate > 0:
        raise ReportError(f"--extrapolate: expected a size > 0, got {args.extrapolate:g}")
    if args.fit:
        return scaling_text(df, args, fmt)
    if args.pareto_table:
        runs = filter_status(df, "ok")
        table = pareto_table(runs, *default_axes(args.x, args.y),
                             names(args.by) or "algorithm", names(args.values))
        return render(table, fmt, human_bytes=not args.raw_bytes, caption=args.caption,
                      intervals=not args.no_intervals)
    if args.published:
        if not df.attrs.get("references"):
            raise ReportError("no published references in these records (add report.references "
                              "to the experiment, or pass --references FILE)")
        return render_references(reference_table(df), fmt)
    if args.compare:
        return paired_text(df, args, fmt)
    if args.baseline:
        return ratio_table_text(df, args, fmt)
    if not (args.rows or args.cols or args.values):
        return summary_table(df, fmt=fmt, human_bytes=not args.raw_bytes, wide=args.wide,
                             intervals=not args.no_intervals)
    runs = df if args.all_status else filter_status(df, "ok")
    if runs.empty:
        raise ReportError("no run with status 'ok' to tabulate (see --all-status)")
    rows = names(args.rows) or default_rows(runs)
    values = names(args.values) or key_metrics(runs)
    table = pivot(runs, rows, names(args.cols) or None, values, agg=args.agg)
    return with_note(table, render(table, fmt, human_bytes=not args.raw_bytes,
                                   caption=args.caption, intervals=not args.no_intervals), fmt)


def scaling_text(df, args: argparse.Namespace, fmt: str) -> str:
    """The log-log fits of --values (or --y) against --x, one line per --by, with the note."""
    values = names(args.values) or ([args.y] if args.y else None)
    if not values:
        raise ReportError("--fit needs the metrics to fit: --values (or --y)")
    runs = df if args.all_status else filter_status(df, "ok")
    frame = scaling_fits(runs, values, args.x or SCALING_X, names(args.by) or "algorithm",
                         args.extrapolate)
    text = render_scaling(frame, fmt)
    return text if fmt == "csv" else f"{text}\n\n{output(fmt).note(SCALING_NOTE)}"


def with_note(table, text: str, fmt: str) -> str:
    """``text`` followed by the table's note (intervals, bold rule, cached builds, split
    rows) in the format's own way (none in CSV)."""
    note = output(fmt).note(interval_note(table))
    return f"{text}\n\n{note}" if note else text


def ratio_table_text(df, args: argparse.Namespace, fmt: str) -> str:
    """Each compared algorithm's runs with its time and memory ratios to its baseline."""
    runs = with_ratios(filter_status(df, "ok"), parse_baselines(names(args.baseline)))
    rows = names(args.rows) or (["dataset"] if runs.dataset.nunique() > 1 else []) + [
        *default_rows(runs), "baseline"]
    ratios = [c for c in runs.columns if isinstance(c, str) and c.endswith(" ratio")
              and runs[c].notna().any()]
    values = names(args.values) or [v for v in ("recall@1", "recall@10", "recall@100", "mse")
                                    if v in runs] + ratios
    table = pivot(runs, rows, names(args.cols) or None, values, agg=args.agg)
    return with_note(table, render(table, fmt, human_bytes=not args.raw_bytes,
                                   caption=args.caption, intervals=not args.no_intervals), fmt)


def paired_text(df, args: argparse.Namespace, fmt: str) -> str:
    """The paired comparison of each --compare pair, one table each, with its note."""
    parts = []
    for a, b in parse_pairs(names(args.compare)):
        frame = paired_comparison(df, a, b, names(args.values) or None)
        text = render_paired(frame, fmt)
        if fmt == "csv":
            parts.append(text)
            continue
        title = f"{a} vs {b}" + (f" on {format_key(frame.dataset.iat[0])}"
                                 if "dataset" in frame and frame.dataset.nunique() == 1 else "")
        out = output(fmt)
        parts += [out.heading(title), text, out.note(PAIRED_NOTE)]
    return "\n\n".join(parts)


def run(args: argparse.Namespace) -> None:
    """Load the records, print or write the table, save the plot if asked."""
    df = load_records(args.paths, status=None)
    for path in args.references or ():
        df.attrs["references"] = merge_references(df.attrs.get("references", []),
                                                  references_from_file(path))
    with declared_metrics(df.attrs.get("metric_specs")):
        if args.floor:
            df = at_floors(df, parse_floors(names(args.floor)))
            if df.empty:
                raise ReportError(f"no run meets --floor {', '.join(names(args.floor))}")
        _report(df, args)


def _report(df, args: argparse.Namespace) -> None:
    """The table, plots or site that ``args`` ask for, from the loaded runs ``df``."""
    if args.html:
        index = write_site(df, args.html, parse_pairs(names(args.compare)))
        print(f"{PROG}: wrote {index}", file=sys.stderr)
        return
    text = make_table_text(df, args)
    text = text if text.endswith("\n") else text + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"{PROG}: wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    runs = df if args.all_status else filter_status(df, "ok")
    if args.plot:
        path = plot(runs, x=args.x or "code_bits", y=args.y or "recall@10",
                    by=names(args.by) or "algorithm", path=args.plot, logx=args.logx,
                    title=args.title)
        print(f"{PROG}: wrote {path}", file=sys.stderr)
    if args.pareto:
        x, y = default_axes(args.x, args.y)
        path = plot_pareto(runs, x=x, y=y,
                           by=names(args.by) or "algorithm", path=args.pareto,
                           title=args.title)
        print(f"{PROG}: wrote {path}", file=sys.stderr)
    if args.scaling:
        path = plot_scaling(runs, y=args.y, x=args.x or SCALING_X,
                            by=names(args.by) or "algorithm", path=args.scaling,
                            to=args.extrapolate, title=args.title)
        print(f"{PROG}: wrote {path}", file=sys.stderr)
    if args.diagnostics:
        from .diagnostics_plot import plot_diagnostics
        runs = df if args.all_status else filter_status(df, "ok")
        path = plot_diagnostics(runs, args.diagnostics, title=args.title)
        print(f"{PROG}: wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``benchpq-report``; returns the exit code (2 on a report error)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        try:
            run(args)
        except (ReportError, UnknownMetricError, OSError) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, without source location."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
