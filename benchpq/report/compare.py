"""Our algorithm against a baseline measured in the same sweep: per-phase time ratios.

``with_ratios(df, {"pq": "faiss_pq"})`` pairs every run of ``pq`` with the run of
``faiss_pq`` made under the same conditions (dataset, task, threads, seed, and
the params the sweep varies for ``pq`` that ``faiss_pq`` has too, e.g. M when
sweeping M; settings that stay fixed, like k-means iterations, may differ)
and adds the columns
``<metric> ratio`` = ours / baseline for the metrics whose ratio means something
(flagged ``ratio`` in :mod:`benchpq.metric_table`: mse, phase times, sizes, peak
memory), plus a ``baseline`` column. A ratio below 1 means ours is faster (or smaller).
"""
from __future__ import annotations

import math

import pandas as pd

from ..metric_table import RATIO_SUFFIX as _SUFFIX
from .load import ReportError, metric_columns, param_columns
from .names import column_order, has_ratio, interval_bound_of, is_known_metric
from .selectors import parse_pair, parse_selector, require_one_configuration, select
from .summary import KEY_METRICS

RATIO_SUFFIX = _SUFFIX
# Conditions a run and its baseline must share (params shared by both are added).
SAME_CONDITIONS = ("dataset", "dataset_metric", "task", "threads", "build_threads", "seed", "simd",
                   "machine", "dataset_fingerprint")


def ratio_metrics(df: pd.DataFrame) -> list[str]:
    """The metrics present in ``df`` (with a value) whose ratio means something, as the
    metric table flags them (times, mse, sizes, peak memory; not RSS deltas or counts),
    in the summary table's column order (:data:`~benchpq.report.summary.KEY_METRICS`),
    the others after them in the metric table's order."""
    present = [c for c in metric_columns(df) if isinstance(c, str) and is_known_metric(c)
               and interval_bound_of(c) is None and not c.endswith(RATIO_SUFFIX)
               and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    def order(name):
        return (KEY_METRICS.index(name) if name in KEY_METRICS else len(KEY_METRICS),
                column_order(name))
    return sorted((c for c in present if has_ratio(c)), key=order)


def parse_baselines(specs: list[str]) -> dict[str, str]:
    """['pq=faiss_pq', 'opq=faiss_opq'] -> {'pq': 'faiss_pq', 'opq': 'faiss_opq'}; a side may
    name one configuration, 'rabitq[bits=4]' (:mod:`.selectors`)."""
    pairs = {}
    for spec in specs:
        ours, base = parse_pair(spec, "ALGORITHM=BASELINE")
        pairs[str(ours)] = str(base)
    return pairs


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _is_set(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def with_ratios(df: pd.DataFrame, baselines: dict[str, str]) -> pd.DataFrame:
    """The runs of the algorithms in ``baselines``, each with its ratios to its baseline run.

    Raises ReportError if an algorithm or baseline has no run, or a run has no
    baseline run under the same conditions.
    """
    metrics = ratio_metrics(df)
    params = param_columns(df)
    out = []
    for ours, base in baselines.items():
        ours, base = parse_selector(ours), parse_selector(base)
        mine, theirs = select(df, ours), select(df, base)
        swept = [p for p in params if mine[p].nunique(dropna=True) > 1]
        for _, run in mine.iterrows():
            match = theirs[[all(_same(r[c], run[c]) for c in SAME_CONDITIONS if c in df)
                            for _, r in theirs.iterrows()]]
            shared = [p for p in swept if _is_set(run[p])
                      and match[p].map(_is_set).any()] if not match.empty else []
            for p in shared:
                match = match[match[p] == run[p]]
            if match.empty:
                raise ReportError(f"run {run.run_id} of {str(ours)!r} has no {str(base)!r} run "
                                  f"under the same conditions ({', '.join(SAME_CONDITIONS)}, "
                                  f"{shared})")
            require_one_configuration(match, base, f"paired with run {run.run_id}")
            row = run.copy()
            row["baseline"] = str(base)
            for m in metrics:
                denominator = match[m].mean()
                row[m + RATIO_SUFFIX] = run[m] / denominator if denominator else float("nan")
            out.append(row)
    result = pd.DataFrame(out).reset_index(drop=True)
    result.attrs = dict(df.attrs)
    if "metric_columns" in df.attrs:
        result.attrs["metric_columns"] = [*df.attrs["metric_columns"],
                                          *(m + RATIO_SUFFIX for m in metrics)]
    return result
