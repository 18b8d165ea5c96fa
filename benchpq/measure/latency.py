"""One query at a time: the latency a search service sees.

A batch of all queries on all threads is how indexes are benchmarked and rarely how they
are served: a service answers one query per call. The search task's ``query_mode``
chooses: ``batch`` (every query in one call, the default) or ``single`` (one call per
query, in a loop on the run's threads), which records the distribution of the per-query
latencies: mean, median, p95, p99 (with a 95% bootstrap interval over queries) and max
(ann-benchmarks reports the same percentiles for its single-query runs).
"""
from __future__ import annotations

import time

import numpy as np

from ..checks import InputError
from ..metric_table import ci_names
from .uncertainty import BOOTSTRAP_SEED, LEVEL, N_RESAMPLES

#: the search task's query modes
QUERY_MODES = ("batch", "single")
#: latency metrics that are quantiles of the per-query latencies
LATENCY_QUANTILES = {"latency_median_s": 0.5, "latency_p95_s": 0.95, "latency_p99_s": 0.99}
#: resampled latencies drawn at a time by :func:`quantile_interval`
_BATCH_CELLS = 4_000_000


def query_mode(task: dict) -> str:
    """``task.query_mode``: one of :data:`QUERY_MODES` (default ``batch``)."""
    mode = task.get("query_mode", "batch")
    if mode not in QUERY_MODES:
        raise InputError(f"task.query_mode: {mode!r} is not one of {', '.join(QUERY_MODES)} "
                         f"(batch: all queries in one call; single: one call per query)")
    return mode


def one_at_a_time(search, queries: np.ndarray, k: int, clock
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search ``queries`` (nq, d) one per call: ``search(queries[i:i + 1], k)`` must return
    (distances (1, k), ids (1, k)).

    ``clock`` is the search phase's clock (:class:`benchpq.measure.memory.Phases`); copying
    each result out is left out of its time, as it is of each latency.

    Returns (distances (nq, k) float32, ids (nq, k) int64, latencies (nq,) float64
    seconds, one per call).
    """
    nq = queries.shape[0]
    distances = np.empty((nq, k), np.float32)
    ids = np.empty((nq, k), np.int64)
    latencies = np.empty(nq)
    for i in range(nq):
        start = time.perf_counter()
        d, j = search(queries[i:i + 1], k)
        latencies[i] = time.perf_counter() - start
        with clock.untimed():
            d, j = np.asarray(d), np.asarray(j)
            if d.shape != (1, k) or j.shape != (1, k):
                raise InputError(f"search of one query returned distances {d.shape} and ids "
                                 f"{j.shape}, expected (1, {k}) each")
            distances[i], ids[i] = d[0], j[0]
    return distances, ids, latencies


def latency_metrics(latencies) -> dict:
    """The distribution of per-query latencies (nq,) in seconds: ``latency_mean_s``,
    ``latency_median_s``, ``latency_p95_s``, ``latency_p99_s`` (and its 95% bootstrap
    interval over queries), ``latency_max_s``. Quantiles interpolate linearly (numpy's
    default), so p99 of 100 queries lies between the two slowest."""
    x = np.asarray(latencies, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"latencies: expected a non-empty (nq,) array, got shape {x.shape}")
    out = {"latency_mean_s": float(x.mean())}
    out.update({name: float(np.quantile(x, q)) for name, q in LATENCY_QUANTILES.items()})
    out.update(zip(ci_names("latency_p99_s"), quantile_interval(x, 0.99)))
    out["latency_max_s"] = float(x.max())
    return out


def quantile_interval(values, q: float, n_resamples: int = N_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the ``q`` quantile of ``values`` (n,): the
    quantile of n values drawn with replacement, ``n_resamples`` times."""
    x = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    estimates = np.empty(n_resamples)
    batch = max(1, _BATCH_CELLS // x.size)
    for start in range(0, n_resamples, batch):
        stop = min(start + batch, n_resamples)
        drawn = x[rng.integers(0, x.size, size=(stop - start, x.size))]
        estimates[start:stop] = np.quantile(drawn, q, axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)
