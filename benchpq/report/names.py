"""What a metric name says: which direction is better and how to print its values.

This is the only place where the report knows metric names (docs/metrics.md,
"Definitions"). Every other part of the report treats metrics generically.
"""
from __future__ import annotations

import math

# Prefixes the loader adds when a param or metric name collides with another column.
COLUMN_PREFIXES = ("param.", "metric.")

# One table, first matching rule wins: (test on the name, better direction, number kind).
# direction: "max" (higher is better), "min" (lower is better), None (a size or count of the
# setup, not a quality: never bolded).
_RULES = (
    (lambda n: n.endswith(" ratio"), "min", "ratio"),  # ours / baseline (report.compare)
    (lambda n: n.startswith("recall") or "-recall@" in n, "max", "fraction"),
    # codebook diagnostics: used codewords and assignment entropy up, sub-space error down
    (lambda n: n.startswith(("codeword_usage", "cluster_balance")), "max", "fraction"),
    (lambda n: n.startswith("code_entropy"), "max", "generic"),
    (lambda n: n.startswith("subspace_mse"), "min", "error"),
    (lambda n: n == "cluster_size_cv", "min", "generic"),
    (lambda n: n.startswith("cluster_size_"), None, "count"),
    (lambda n: n in ("nmi", "ari"), "max", "fraction"),
    (lambda n: n == "qps", "max", "rate"),
    (lambda n: n in ("mse", "error"), "min", "error"),
    (lambda n: n.endswith("_bytes"), "min", "bytes"),
    (lambda n: n.endswith("_s"), "min", "time"),
    (lambda n: n == "empty_clusters", "min", "count"),
    # sizes of the setup, not results: a float clusterer's code_bits 0 is no "best"
    (lambda n: n.endswith("_bits") or n in ("iterations", "search_repeats"), None, "count"),
    (lambda n: n in ("threads", "seed", "dim", "n") or n.startswith("n_"), None, "count"),
)
_DEFAULT = ("min", "generic")
# A run's interval bounds of a metric (benchpq.uncertainty.ci_names): printed like the metric,
# never bolded, never a key metric of their own.
BOUND_SUFFIXES = ("_ci_low", "_ci_high")
# Summaries of repeated timings (e.g. search_s_median beside search_s, the best pass).
TIME_SUFFIXES = ("_s_median", "_s_min", "_s_max")


def base_name(name: str) -> str:
    """``name`` without the 'param.' / 'metric.' prefix the loader may have added."""
    for prefix in COLUMN_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def interval_bound_of(name: str) -> str | None:
    """The metric whose interval bound ``name`` is ('recall@10_ci_low' -> 'recall@10')."""
    n = base_name(str(name))
    for suffix in BOUND_SUFFIXES:
        if n.endswith(suffix):
            return n[:-len(suffix)]
    return None


def _rule(name: str) -> tuple[str | None, str]:
    n = base_name(str(name))
    bounded = interval_bound_of(n)
    if bounded is not None:
        return None, _rule(bounded)[1]
    if n.endswith(TIME_SUFFIXES):
        return "min", "time"
    for test, direction, kind in _RULES:
        if test(n):
            return direction, kind
    return _DEFAULT


def better_direction(name: str) -> str | None:
    """'max' if higher values of metric ``name`` are better, 'min' if lower, None if neither."""
    return _rule(name)[0]


def number_kind(name: str) -> str:
    """How values of ``name`` are printed: fraction, rate, error, bytes, time, count, generic."""
    return _rule(name)[1]


def is_known_metric(name: str) -> bool:
    """True if ``name`` matches one of the named metric families of docs/metrics.md."""
    return _rule(name) != _DEFAULT


def recall_rank(name: str) -> tuple[int, float]:
    """Sort key of recall columns: 1-recall@R first (by R), then k-recall@k (by k)."""
    n = base_name(name)
    try:
        r = float(n.rsplit("@", 1)[1])
    except (IndexError, ValueError):
        r = math.inf
    return (0 if n.startswith("recall@") else 1, r)
