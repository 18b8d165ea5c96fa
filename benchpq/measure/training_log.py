"""Per-iteration progress of iterative trainers, through ``logging``.

Plugins constructed with ``verbose=True`` report each iteration's objective on
the ``benchpq.train`` logger; in a sweep, the runner shows these lines live in
the sweep's output (they come from the run's child process). Training loops
that run in Python (OPQ's rotation updates, ITQ's) log each iteration as it
ends; loops inside one C++ call (k-means, PQ, LOPQ, PQk-means, Bk-means) log
their iterations when that call returns.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("benchpq.train")


def log_iterations(what: str, objectives, seconds=None, unit: str = "objective") -> None:
    """One INFO line per iteration: ``<what> iteration i/n: <unit> <value> (<s> s)``.

    ``objectives`` is (iterations,), or (groups, iterations) for per-sub-space
    runs, which are summed per iteration.
    """
    values = np.asarray(objectives, np.float64)
    if values.ndim == 2:
        values = values.sum(axis=0)
    n = values.shape[0]
    for i, value in enumerate(values):
        took = f" ({float(seconds[i]):.3g} s)" if seconds is not None else ""
        log.info("%s iteration %d/%d: %s %.6g%s", what, i + 1, n, unit, value, took)


def log_iteration(what: str, i: int, n: int, value: float, unit: str = "objective") -> None:
    """One INFO line for iteration ``i`` (from 1) of ``n``, as it ends."""
    log.info("%s iteration %d/%d: %s %.6g", what, i, n, unit, value)
