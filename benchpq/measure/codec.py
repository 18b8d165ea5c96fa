"""Codec metrics: how well a quantizer's codes estimate distances and inner products.

On sampled (query, base vector) pairs, a quantizer's estimates
(:meth:`benchpq.api.Quantizer.estimate_distances` and ``estimate_inner_products``: the
decoded vector's, or the quantizer's own estimator such as RaBitQ's) are compared with the
exact values:

* ``sqdist_bias``: the mean error of the estimated squared distance, relative to the mean
  exact squared distance, with its 95% bootstrap interval over queries (each query's mean
  error is one value: pairs of one query are not independent); ``sqdist_rel_std``: the
  standard deviation of that error over the pairs, relative in the same way.
* ``ip_bias``, ``ip_rel_std``: the same for the inner product, relative to the mean of
  ``|q| |x|`` over the pairs (the scale of an inner product).
* ``rank_correlation``: per query, Spearman's rank correlation of the estimated against
  the exact squared distances of its ``rank_candidates`` true nearest neighbours (the
  candidates a re-ranking or a top-k would have to order), averaged over the queries, with
  its bootstrap interval.

PQ's and other reconstructing quantizers' estimates are biased (a reconstruction is closer
to the cell's centre than the vector: Jegou et al., TPAMI 2011, sec. 3.3); RaBitQ's is
unbiased by construction (Gao & Long, SIGMOD 2024, Theorem 3.2).
"""
from __future__ import annotations

import numpy as np

from ..api import Quantizer
from ..checks import InputError, check_positive_int
from ..metric_table import ci_names
from ..store.mapped import release_pages
from .uncertainty import bootstrap_interval

#: base vectors sampled for the pairs (each with every sampled query)
DEFAULT_BASE_SAMPLE = 1000
#: queries sampled for the pairs and for the rank correlation
DEFAULT_QUERIES = 100
#: true nearest neighbours of a query whose ranking is compared
DEFAULT_RANK_CANDIDATES = 100


def codec_metrics(plugin: Quantizer, base: np.ndarray, queries: np.ndarray,
                  groundtruth: np.ndarray | None, options: dict | None = None,
                  seed: int = 0) -> dict:
    """The codec metrics of a trained quantizer (module docstring).

    Args:
        base: (n, d) the base, any dtype the dataset stores (rows are gathered and
            converted to float32); queries: (nq, d) float32; groundtruth: (nq, >=1) ids of
            each query's nearest neighbours, nearest first (None: no rank correlation).
        options: ``base_sample``, ``queries``, ``rank_candidates`` (positive ints) and
            ``enabled`` (read by the task, ignored here).
        seed: of the samples.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - {"enabled", "base_sample", "queries", "rank_candidates"})
    if unknown:
        raise InputError(f"task.codec: unknown options {unknown} (enabled, base_sample, "
                         "queries, rank_candidates)")
    n_base = check_positive_int(options.get("base_sample", DEFAULT_BASE_SAMPLE),
                                "task.codec.base_sample")
    n_queries = check_positive_int(options.get("queries", DEFAULT_QUERIES),
                                   "task.codec.queries")
    n_rank = check_positive_int(options.get("rank_candidates", DEFAULT_RANK_CANDIDATES),
                                "task.codec.rank_candidates")
    rng = np.random.default_rng(seed)
    chosen_queries = np.sort(rng.choice(queries.shape[0], min(n_queries, queries.shape[0]),
                                        replace=False))
    chosen_rows = np.sort(rng.choice(base.shape[0], min(n_base, base.shape[0]), replace=False))
    q = np.ascontiguousarray(queries[chosen_queries], np.float32)
    x = _rows(base, chosen_rows)
    codes = np.asarray(plugin.encode(x))

    out = {}
    exact = _squared_distances(q, x)
    estimated = _checked(plugin.estimate_distances(q, codes), exact.shape, plugin,
                         "estimate_distances")
    out.update(_error_metrics("sqdist", estimated - exact, float(exact.mean())))
    exact_ip = q.astype(np.float64) @ x.astype(np.float64).T
    estimated_ip = _checked(plugin.estimate_inner_products(q, codes), exact.shape, plugin,
                            "estimate_inner_products")
    scale = float(np.mean(np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(x, axis=1)))
    out.update(_error_metrics("ip", estimated_ip - exact_ip, scale))
    if groundtruth is not None and groundtruth.shape[1] >= 3:
        out.update(_rank_correlation(plugin, base, q, groundtruth[chosen_queries, :n_rank]))
    return out


def enabled(plugin, options: dict | None) -> bool:
    """Whether a task with ``task.codec`` = ``options`` measures ``plugin``'s codec metrics
    (a quantizer, unless ``enabled`` is false)."""
    return isinstance(plugin, Quantizer) and bool(dict(options or {}).get("enabled", True))


def groundtruth_columns(options: dict | None) -> int:
    """The true neighbours per query the rank correlation reads (``rank_candidates``)."""
    return check_positive_int(dict(options or {}).get("rank_candidates",
                                                      DEFAULT_RANK_CANDIDATES),
                              "task.codec.rank_candidates")


def _rows(base: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """base[ids] (ids sorted) as float32, the pages of a memory-mapped base released."""
    rows = np.ascontiguousarray(base[ids], dtype=np.float32)
    release_pages(base)
    return rows


def _squared_distances(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(nq, n) float64 exact squared L2 distances."""
    q, x = q.astype(np.float64), x.astype(np.float64)
    return np.maximum((q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * q @ x.T, 0)


def _checked(values, shape, plugin, method: str) -> np.ndarray:
    """A plugin's estimates as float64 of ``shape``, or InputError naming the method."""
    values = np.asarray(values, np.float64)
    if values.shape != shape:
        raise InputError(f"algorithm {plugin.name!r}: {method} returned shape {values.shape}, "
                         f"expected {shape}")
    if not np.isfinite(values).all():
        raise InputError(f"algorithm {plugin.name!r}: {method} returned NaN or Inf")
    return values


def _error_metrics(prefix: str, errors: np.ndarray, scale: float) -> dict:
    """``<prefix>_bias`` (mean error / scale) with its bootstrap interval over queries (rows
    of ``errors``), and ``<prefix>_rel_std`` (std of the errors / scale)."""
    scale = scale if scale > 0 else 1.0
    per_query = errors.mean(axis=1) / scale
    low, high = bootstrap_interval(per_query)
    name = f"{prefix}_bias"
    return {name: float(errors.mean() / scale), **dict(zip(ci_names(name), (low, high))),
            f"{prefix}_rel_std": float(errors.std() / scale)}


def _rank_correlation(plugin, base, q, candidates: np.ndarray) -> dict:
    """Mean over queries of Spearman's rho between estimated and exact squared distances
    of each query's candidates (rows of ``candidates``, -1 entries dropped)."""
    from scipy.stats import spearmanr
    rhos = []
    for row, ids in zip(q, candidates):
        ids = ids[ids >= 0]
        if ids.size < 3:
            continue
        x = _rows(base, np.sort(ids))
        exact = _squared_distances(row[None], x)[0]
        estimated = _checked(plugin.estimate_distances(row[None], plugin.encode(x)),
                             (1, x.shape[0]), plugin, "estimate_distances")[0]
        if np.ptp(exact) == 0 or np.ptp(estimated) == 0:
            rhos.append(0.0)  # no ranking to compare: nothing is explained
            continue
        rhos.append(float(spearmanr(estimated, exact).statistic))
    if not rhos:
        return {}
    low, high = bootstrap_interval(np.asarray(rhos))
    return {"rank_correlation": float(np.mean(rhos)),
            **dict(zip(ci_names("rank_correlation"), (low, high)))}
