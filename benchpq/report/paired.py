"""Paired comparison of two algorithms of one sweep: A - B per metric, interval, p, verdict.

``paired_comparison(df, "pq", "faiss_pq")`` pairs the runs of A and B made under the same
conditions (dataset, task, threads and the params that vary among A's runs and that B has
too, as :mod:`.compare` does) and with the same seed, then, for each metric:

- recall@R and k-recall@k, when every paired run recorded its per-query values
  (``per_query``, see :func:`benchpq.measure.uncertainty.search_uncertainty`): with one
  seed, paired by query (bootstrap interval, sign-flip p-value: do these two models differ
  on this query sample's population?); with several, paired by query and seed, a crossed
  design whose interval counts the seed-to-seed spread of training as well as the query
  sample (do the two methods differ?).
- otherwise (mse, error, times, recalls without per-query values): paired by seed; t
  interval and p-value, Wilcoxon signed-rank p-value beside it.

The verdict says which is better at the 5% level (by the metric's better direction), or
"no significant difference".
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..measure import uncertainty
from .formatting import format_key, format_number
from .load import ReportError, param_columns
from .names import base_name, better_direction, recall_rank, with_declared_metrics
from .output import Grid, output
from .selectors import Selector, parse_pair, parse_selector, require_one_configuration, select

# Metrics compared by default, after the recalls present (in this order).
COMPARED = ("mse", "error", "nmi", "ari", "train_s", "encode_s", "add_s", "search_s",
            "search_s_median", "cluster_s")
CONDITIONS = ("dataset", "dataset_metric", "task", "threads", "build_threads")


def parse_pairs(specs: list[str]) -> list[tuple[Selector, Selector]]:
    """['pq=faiss_pq', 'rabitq[bits=4]=faiss_rabitq[nb_bits=4]'] -> pairs of
    :class:`~benchpq.report.selectors.Selector`."""
    return [parse_pair(spec) for spec in specs]


def compared_metrics(df: pd.DataFrame) -> list[str]:
    """The recalls present (1-recall by R, then k-recall), then :data:`COMPARED` present."""
    present = [c for c in df.columns if isinstance(c, str) and df[c].notna().any()
               and pd.api.types.is_numeric_dtype(df[c])]
    recalls = sorted((c for c in present if (c.startswith("recall@") or "-recall@" in c)
                      and not c.endswith(("_ci_low", "_ci_high"))), key=recall_rank)
    return recalls + [m for m in COMPARED if m in present]


@with_declared_metrics
def paired_comparison(df: pd.DataFrame, a: str, b: str, metrics=None,
                      alpha: float = uncertainty.ALPHA) -> pd.DataFrame:
    """One row per (conditions, metric): the paired comparison of ``a`` and ``b``.

    Columns: the condition keys, ``metric``, ``A``, ``B`` (the names), ``mean A``,
    ``mean B``, ``diff`` (A - B), ``ci_low``, ``ci_high`` (95%), ``p``, ``p_wilcoxon``,
    ``n`` (pairs), ``unit`` ('query', 'query x seed' or 'seed'), ``seeds``, ``verdict``.
    Raises ReportError if either has no ok run or no run of A has a B run to pair with.
    """
    ok = df[df["status"] == "ok"] if "status" in df else df
    a, b = (s if isinstance(s, Selector) else parse_selector(s) for s in (a, b))
    runs_a, runs_b = select(ok, a), select(ok, b)
    metrics = list(metrics) if metrics else compared_metrics(ok)
    keys = _condition_keys(ok, runs_a, runs_b)
    rows = []
    for key, group_a in runs_a.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        group_b = runs_b
        for column, value in zip(keys, key):
            group_b = group_b[group_b[column].isna()] if _missing(value) \
                else group_b[group_b[column] == value]
        seeds = sorted(set(group_a.seed.dropna()) & set(group_b.seed.dropna()))
        if not seeds:
            continue
        where = "at " + ", ".join(f"{c}={format_key(v)}" for c, v in zip(keys, key))
        require_one_configuration(group_a, a, where)
        require_one_configuration(group_b, b, where)
        for metric in metrics:
            if metric not in ok.columns:
                raise ReportError(f"unknown metric {metric!r} to compare")
            result = _compare(group_a, group_b, seeds, metric)
            if result is None:
                continue
            paired, unit = result
            rows.append({**dict(zip(keys, key)), "metric": metric, "A": str(a), "B": str(b),
                         "mean A": paired.mean_a, "mean B": paired.mean_b,
                         "diff": paired.diff, "ci_low": paired.low, "ci_high": paired.high,
                         "p": paired.p, "p_wilcoxon": paired.p_wilcoxon, "n": paired.n,
                         "unit": unit, "seeds": len(seeds),
                         "verdict": uncertainty.verdict(paired, better_direction(metric), a, b,
                                                        alpha)})
    if not rows:
        raise ReportError(f"no run of {str(a)!r} has a run of {str(b)!r} with the same "
                          f"{', '.join(keys)} and seed to pair with")
    return pd.DataFrame(rows)


def _condition_keys(df, runs_a, runs_b) -> list[str]:
    """dataset, task, threads, and the params that vary among A's runs and B has set."""
    keys = [c for c in CONDITIONS if c in df.columns]
    for p in param_columns(df):
        if runs_a[p].nunique(dropna=True) > 1 and runs_b[p].notna().any():
            keys.append(p)
    return keys


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _compare(group_a, group_b, seeds, metric):
    """(Paired, 'query' | 'query x seed' | 'seed') for one metric, or None if a side has no
    value."""
    per_query = _per_query(group_a, seeds, metric), _per_query(group_b, seeds, metric)
    if all(v is not None for v in per_query) and per_query[0].shape == per_query[1].shape:
        if len(seeds) == 1:
            return uncertainty.paired_by_query(per_query[0][0], per_query[1][0]), "query"
        return uncertainty.paired_by_query_and_seed(*per_query), "query x seed"
    values = [pd.to_numeric(g[metric], errors="coerce").groupby(g.seed).mean()
              .reindex(seeds) for g in (group_a, group_b)]
    both = values[0].notna() & values[1].notna()
    if not both.any():
        return None
    return uncertainty.paired_by_seed(values[0][both], values[1][both]), "seed"


def _per_query(group, seeds, metric) -> np.ndarray | None:
    """(seeds, nq) per-query values, a seed's runs averaged, or None if one lacks them."""
    if "per_query" not in group.columns:
        return None
    rows = []
    for seed in seeds:
        runs = []
        for per_query in group[group.seed == seed]["per_query"]:
            values = uncertainty.per_query_values(per_query, base_name(metric))
            if values is None:
                return None
            runs.append(values)
        if len({r.shape for r in runs}) != 1:
            return None
        rows.append(np.mean(runs, axis=0))
    if len({r.shape for r in rows}) != 1:
        return None
    return np.stack(rows)


# ---------------------------------------------------------------------------- rendering

def format_p(p: float) -> str:
    """'<0.001', '0.023', '0.41', or '' for nan."""
    if p is None or math.isnan(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.2g}" if p >= 0.01 else f"{p:.3f}"


def display_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]], list[int]]:
    """(header, text rows, index of the better mean per row: 0 = A, 1 = B, -1 = none).

    Condition keys that take one value in ``frame`` are left out.
    """
    a, b = frame["A"].iat[0], frame["B"].iat[0]
    keys = [c for c in frame.columns[:list(frame.columns).index("metric")]
            if frame[c].nunique(dropna=False) > 1]
    header = [*keys, "metric", a, b, f"{a} − {b}", "95% interval", "p", "p (Wilcoxon)",
              "paired by", "verdict"]
    rows, better = [], []
    for _, r in frame.iterrows():
        m = r["metric"]

        def num(v, m=m):
            return format_number(m, v) if not (isinstance(v, float) and math.isnan(v)) else ""
        interval = f"[{num(r.ci_low)}, {num(r.ci_high)}]" if num(r.ci_low) else ""
        paired_by = {"query": f"{r.n} queries (1 seed)",
                     "query x seed": f"{r.n // r.seeds} queries x {r.seeds} seeds"
                     }.get(r.unit, f"{r.n} seeds")
        rows.append([*(format_key(r[k]) for k in keys), m, num(r["mean A"]), num(r["mean B"]),
                     _signed(num(r["diff"])), interval, format_p(r.p), format_p(r.p_wilcoxon),
                     paired_by, r.verdict])
        better.append(0 if r.verdict == f"{a} better" else 1 if r.verdict == f"{b} better"
                      else -1)
    return header, rows, better


def _signed(text: str) -> str:
    return text if not text or text.startswith("-") else "+" + text


def render_paired(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """A paired comparison in format ``fmt`` (CSV: the frame's numbers); the significantly
    better mean of each row in bold (none when there is no significant difference)."""
    if fmt == "csv":
        return output("csv").frame(frame)
    header, rows, better = display_rows(frame)
    col = {0: header.index(frame["A"].iat[0]), 1: header.index(frame["B"].iat[0])}
    bold = [[j == col.get(best) for j in range(len(header))] for best in better]
    n_keys = header.index("metric") + 1
    return output(fmt).table(Grid(header, rows, n_keys=n_keys, bold=bold,
                                  text_cols={len(header) - 2, len(header) - 1}))


PAIRED_NOTE = ("Paired by query (1 seed): 95% paired bootstrap interval "
               f"({uncertainty.N_RESAMPLES} resamples) and exact sign-flip p-value. Paired by "
               "queries x seeds: t interval and p-value over the crossed design, counting the "
               "spread between seeds' trained models as well as the query sample "
               "(Satterthwaite's degrees of freedom). Paired by seed: "
               "95% paired t interval and p-value (Wilcoxon signed-rank p beside it: with 5 "
               "seeds it cannot go below 0.0625). Verdict at the 5% level; bold: the "
               "significantly better one.")
