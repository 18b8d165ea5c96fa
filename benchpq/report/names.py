"""What a metric name says, for the report: views of :mod:`benchpq.metric_table`.

The metric table is the only place that knows metric names; these helpers keep the
report's vocabulary (direction, number kind, display name, unit). ``extra`` is a run's
plugin declarations (a record's ``metric_specs``: {name: spec dict}). A name that neither
declares raises :class:`~benchpq.metric_table.UnknownMetricError` (``is_known_metric`` is
False for it): ask :func:`is_known_metric` first for a column that may not be a metric.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Mapping

from ..metric_table import (
    BOUND_SUFFIXES,
    COLUMN_PREFIXES,
    TIME_SUFFIXES,
    UnknownMetricError,
    known,
    lookup,
    sort_key,
)

__all__ = ["BOUND_SUFFIXES", "COLUMN_PREFIXES", "TIME_SUFFIXES", "UnknownMetricError",
           "base_name", "better_direction", "column_order", "declared_metrics", "display_name",
           "has_ratio", "interval_bound_of", "is_known_metric", "number_kind", "recall_rank",
           "scope", "unit", "with_declared_metrics"]

Extra = Mapping[str, Mapping] | None

# The plugin metrics declared by the records being reported (their metric_specs), used
# where a caller passes no ``extra``: set by the report's entry points (declared_metrics).
_DECLARED: contextvars.ContextVar[Mapping[str, Mapping] | None] = contextvars.ContextVar(
    "benchpq_declared_metrics", default=None)


@contextlib.contextmanager
def declared_metrics(specs: Mapping[str, Mapping] | None):
    """Within the block, the helpers here also know the plugin metrics ``specs`` declares
    ({name: spec}, e.g. ``df.attrs["metric_specs"]`` of a loaded frame)."""
    token = _DECLARED.set({**(_DECLARED.get() or {}), **(specs or {})})
    try:
        yield
    finally:
        _DECLARED.reset(token)


def with_declared_metrics(func):
    """Decorator: ``func``'s first argument (a loaded DataFrame, whose
    ``attrs["metric_specs"]`` hold the records' declarations, or a Table with ``specs``)
    declares the plugin metrics known while ``func`` runs."""
    @functools.wraps(func)
    def wrapper(data, *args, **kwargs):
        specs = getattr(data, "specs", None)
        if specs is None and hasattr(data, "attrs"):
            specs = data.attrs.get("metric_specs")
        with declared_metrics(specs):
            return func(data, *args, **kwargs)
    return wrapper


def _extra(extra: Extra) -> Mapping[str, Mapping]:
    return extra if extra is not None else (_DECLARED.get() or {})


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


def better_direction(name: str, extra: Extra = None) -> str | None:
    """'max' if higher values of metric ``name`` are better, 'min' if lower, None if neither
    (sizes of the setup, interval bounds). Raises UnknownMetricError for an unknown name."""
    return lookup(name, _extra(extra)).direction


def number_kind(name: str, extra: Extra = None) -> str:
    """How values of ``name`` are printed: fraction, error, time, rate, bytes, count, ratio
    or generic (:data:`benchpq.metric_table.KINDS`). Raises UnknownMetricError if unknown."""
    return lookup(name, _extra(extra)).kind


def is_known_metric(name: str, extra: Extra = None) -> bool:
    """True if ``name`` has an entry in the metric table (or in ``extra``)."""
    return known(name, _extra(extra))


def display_name(name: str, extra: Extra = None) -> str:
    """The name of metric ``name`` in a paper table, unit included ('Train time (s)')."""
    return lookup(name, _extra(extra)).display


def unit(name: str, extra: Extra = None) -> str:
    """The unit of metric ``name`` ('s', 'bytes', ...; '' for fractions and pure numbers)."""
    return lookup(name, _extra(extra)).unit


def scope(name: str, extra: Extra = None) -> str:
    """Whether metric ``name`` belongs to the 'build' or to a 'search' setting."""
    return lookup(name, _extra(extra)).scope


def has_ratio(name: str, extra: Extra = None) -> bool:
    """Whether 'ours / baseline' of metric ``name`` means something (times, sizes, mse)."""
    return lookup(name, _extra(extra)).ratio


def column_order(name: str, extra: Extra = None) -> tuple:
    """Sort key of metric columns: the metric table's order."""
    return sort_key(name, _extra(extra))


def recall_rank(name: str) -> tuple[int, float]:
    """Sort key of recall columns: 1-recall@R first (by R), then k-recall@k (by k)."""
    n = base_name(name)
    try:
        r = float(n.rsplit("@", 1)[1])
    except (IndexError, ValueError):
        r = math.inf
    return (0 if n.startswith("recall@") else 1, r)
