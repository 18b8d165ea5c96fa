"""Render a :class:`~benchpq.report.tables.Table` as Markdown, LaTeX (booktabs) or CSV.

Markdown and LaTeX show ``mean ± h`` when several runs (seeds) fall in a cell and their
values differ (h: half-width of the 95% t interval of the mean), ``mean [low, high]`` for
a single run that recorded its 95% interval over queries, and put the best value of each
column in bold (by the better direction of its metric, see :mod:`benchpq.report.names`)
unless a t test over seeds finds it no better than the runner-up. CSV keeps plain
full-precision numbers, with ``<column> std``, ``<column> ci_low`` and ``<column> ci_high``
columns next to each value column.

Numbers: recalls, NMI and ARI with 3 decimals; mse and clustering error with 4
significant digits (whole numbers with thousands separators from 1000 up); times and
qps with 3 significant digits (same rule); bytes human-readable (KiB, MiB, ...);
counts as integers.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..uncertainty import ALPHA
from .load import ReportError
from .names import better_direction, number_kind
from .tables import Table

FORMATS = ("markdown", "latex", "csv")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


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


def human_readable_bytes(n: float) -> str:
    """1536 -> '1.50 KiB' (binary units, 3 significant digits)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
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

def column_label(table: Table, column) -> str:
    """Header text of one value column: 'recall@10' or 'recall@10 (M=8)'."""
    if not table.cols:
        return str(column)
    return f"{column[0]} ({column_sublabel(table, column)})"


def column_sublabel(table: Table, column) -> str:
    """The column-key part of a header: 'M=8, nbits=4'."""
    return ", ".join(f"{c}={format_key(v) or 'n/a'}" for c, v in zip(table.cols, column[1:]))


def row_keys(table: Table) -> list[tuple]:
    """The row keys of a table as tuples (one item per ``table.rows`` column)."""
    index = table.mean.index
    return list(index) if isinstance(index, pd.MultiIndex) else [(k,) for k in index]


def best_mask(table: Table, alpha: float = ALPHA) -> np.ndarray:
    """Boolean array, True where a cell holds the best value of its column (ties all True).

    Columns of a metric without better direction, with fewer than two values, or whose
    values are all equal have no best cell. Nor has a column whose best cell is not
    significantly better than the runner-up: when both cells hold several runs (seeds),
    a Welch t test at ``alpha`` decides (:func:`significantly_apart`); cells of one run
    are not tested.
    """
    mask = np.zeros(table.mean.shape, dtype=bool)
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
        if all(significantly_apart(table, i, runner_up, j, alpha)
               for i in np.where(is_best)[0]):
            mask[:, j] = is_best
    return mask


def significantly_apart(table: Table, i: int, k: int, j: int, alpha: float = ALPHA) -> bool:
    """Whether cells (i, j) and (k, j) differ at level ``alpha`` by Welch's t test.

    True when either cell has fewer than two runs or no std (nothing to test with).
    """
    if table.std is None:
        return True
    n1, n2 = table.count.iat[i, j], table.count.iat[k, j]
    s1, s2 = table.std.iat[i, j], table.std.iat[k, j]
    if n1 < 2 or n2 < 2 or pd.isna(s1) or pd.isna(s2):
        return True
    if s1 == 0 and s2 == 0:
        return table.mean.iat[i, j] != table.mean.iat[k, j]
    from scipy import stats
    test = stats.ttest_ind_from_stats(table.mean.iat[i, j], s1, n1, table.mean.iat[k, j], s2,
                                      n2, equal_var=False)
    return bool(test.pvalue < alpha)


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
            if count > 1 and pd.notna(std) and std > 0 and pd.notna(high):
                pm = format_number(metric, high - mean, human_bytes)
            elif count == 1 and pd.notna(low) and pd.notna(high):
                interval = (f"{format_number(metric, low, human_bytes)}, "
                            f"{format_number(metric, high, human_bytes)}")
            row.append((format_number(metric, mean, human_bytes), pm, interval))
        out.append(row)
    return out


def styled_cells(table: Table, pm: str, bold, missing: str, escape=str,
                 human_bytes: bool = True) -> list[list[str]]:
    """Final cell strings: escaped 'mean <pm> half-width' or 'mean [low, high]', best ones
    through ``bold``. ``missing`` stands for a cell without value.
    """
    parts, mask = cell_parts(table, human_bytes), best_mask(table)
    out = []
    for i, row in enumerate(parts):
        texts = []
        for j, (mean, half, interval) in enumerate(row):
            text = escape(mean) + (f" {pm} {escape(half)}" if half else "") + (
                f" [{escape(interval)}]" if interval else "")
            texts.append(missing if not mean else bold(text) if mask[i, j] else text)
        out.append(texts)
    return out


def interval_note(table: Table) -> str:
    """What the ± and [low, high] of a table's cells mean, and when a cell is bold."""
    several = bool((table.count > 1).to_numpy().any())
    single_bounds = table.low is not None and bool(
        ((table.count == 1) & table.low.notna()).to_numpy().any())
    parts = []
    if several:
        parts.append("± half-width of the 95% t interval of the mean over seeds")
    if single_bounds:
        parts.append("[low, high] 95% bootstrap interval over queries of one run")
    parts.append("bold: best of its column, unless not significantly better than the "
                 "runner-up (Welch t test over seeds, 5%)" if several
                 else "bold: best of its column")
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------------- markdown

def to_markdown(table: Table, human_bytes: bool = True) -> str:
    """A GitHub-flavoured Markdown pipe table; best cells as **x**."""
    header = [*table.rows, *(column_label(table, c) for c in table.mean.columns)]
    cells = styled_cells(table, "±", lambda t: f"**{t}**", "–", _md_escape, human_bytes)
    keys = [[_md_escape(format_key(k)) for k in key] for key in row_keys(table)]
    lines = [[_md_escape(h) for h in header], *(k + c for k, c in zip(keys, cells))]
    widths = [max(3, *(len(line[j]) for line in lines)) for j in range(len(header))]
    n_keys = len(table.rows)

    def fmt(line):
        return "| " + " | ".join(t.ljust(w) if j < n_keys else t.rjust(w)
                                 for j, (t, w) in enumerate(zip(line, widths))) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if j < n_keys else "-" * (w + 1) + ":"
                          for j, w in enumerate(widths)) + "|"
    return "\n".join([fmt(lines[0]), rule, *map(fmt, lines[1:])])


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


# ------------------------------------------------------------------------------- LaTeX

def latex_escape(text: str) -> str:
    """``text`` with LaTeX special characters escaped (``_`` -> ``\\_``, ...)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: Table, caption: str | None = None, label: str | None = None,
             human_bytes: bool = True) -> str:
    """A booktabs ``tabular`` (in a ``table`` float if a caption or label is given).

    Best cells as ``\\textbf{x}``; several runs as ``mean $\\pm$ std``.
    """
    n_keys, n_values = len(table.rows), len(table.mean.columns)
    cells = styled_cells(table, "$\\pm$", lambda t: f"\\textbf{{{t}}}", "--", latex_escape,
                         human_bytes)
    lines = [f"\\begin{{tabular}}{{{'l' * n_keys}{'r' * n_values}}}", "\\toprule",
             *_latex_header(table), "\\midrule"]
    for key, row in zip(row_keys(table), cells):
        keys = [latex_escape(format_key(k)) for k in key]
        lines.append(" & ".join(keys + row) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption is None and label is None:
        return "\n".join(lines)
    head = ["\\begin{table}[t]", "\\centering"]
    head += [f"\\caption{{{latex_escape(caption)}}}"] if caption is not None else []
    head += [f"\\label{{{label}}}"] if label is not None else []
    return "\n".join(head + lines + ["\\end{table}"])


def _latex_header(table: Table) -> list[str]:
    """One header line, or two (metric groups over column keys) when the table has cols."""
    keys = [latex_escape(r) for r in table.rows]
    columns = list(table.mean.columns)
    if not table.cols:
        return [" & ".join(keys + [latex_escape(c) for c in columns]) + r" \\"]
    groups, rules, start = [], [], len(keys) + 1
    for metric in dict.fromkeys(c[0] for c in columns):
        span = sum(1 for c in columns if c[0] == metric)
        groups.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(metric)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
        start += span
    top = " & ".join([""] * len(keys) + groups) + r" \\"
    sub = [latex_escape(column_sublabel(table, c)) for c in columns]
    return [top, "".join(rules), " & ".join(keys + sub) + r" \\"]


# --------------------------------------------------------------------------------- CSV

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
    return table_frame(table).to_csv(index=False)


def render(table: Table, fmt: str = "markdown", human_bytes: bool = True,
           caption: str | None = None, label: str | None = None) -> str:
    """``table`` as 'markdown', 'latex' or 'csv' text.

    ``human_bytes`` applies to Markdown and LaTeX, ``caption``/``label`` to LaTeX only.
    """
    if fmt == "markdown":
        return to_markdown(table, human_bytes=human_bytes)
    if fmt == "latex":
        return to_latex(table, caption=caption, label=label, human_bytes=human_bytes)
    if fmt == "csv":
        return to_csv(table)
    raise ReportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
