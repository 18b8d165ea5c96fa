"""Exact re-ranking of a searcher's candidates: the second stage of a compressed index.

A deployed index often asks its codes for ``factor x k`` candidates and re-orders them by
exact distances to the stored vectors (on disk or in RAM); the task's ``rerank`` option
measures that: the search phase's time includes the re-ranking, and the vectors it reads
cost ``rerank_bytes_per_vector`` (the base's stored row) beside the codes.
"""
from __future__ import annotations

import numpy as np

from ..checks import InputError, check_positive_int
from ..datasets.metric import metric_values, ranking_distances
from ..store.mapped import release_pages

#: bytes of float32 candidate rows gathered at a time
GATHER_BYTES = 64 << 20


def rerank_factor(task: dict) -> int:
    """``task.rerank``: 0 (off) or the candidates per result asked for (>= 2)."""
    factor = task.get("rerank", 0) or 0
    factor = check_positive_int(factor, "task.rerank", 0)
    if factor == 1:
        raise InputError("task.rerank: 1 would re-rank only the k results (their order "
                         "changes, not the set); use 0 (off) or a factor >= 2, e.g. 10")
    return factor


def reranked(base: np.ndarray, queries: np.ndarray, ids: np.ndarray,
             k: int, metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """The k candidates of each query nearest by the exact ``metric``.

    Args:
        base: (n, d) the stored vectors (any dtype; rows gathered and converted to float32).
        queries: (nq, d) float32. ids: (nq, m) int64 candidates (-1: none), m >= k.
        metric: ``l2``, ``ip`` or ``cosine`` (:mod:`benchpq.datasets.metric`).

    Returns (distances (nq, k) float32, ids (nq, k) int64), nearest first (ties: the
    searcher's order): squared distances, or inner products largest first; missing
    results are (inf, -1), under ``ip`` (-inf, -1).
    """
    nq, m = ids.shape
    out_d = np.full((nq, k), np.inf, np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    step = max(1, GATHER_BYTES // max(1, m * base.shape[1] * 4))
    for start in range(0, nq, step):
        chunk = ids[start:start + step]
        valid = chunk >= 0
        rows = np.asarray(base[np.where(valid, chunk, 0).ravel()], np.float32)
        rows = rows.reshape(chunk.shape + (base.shape[1],))
        d = ranking_distances(rows, queries[start:start + step], metric)
        d[~valid] = np.inf
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(d, order, 1)
        out_d[start:start + step] = metric_values(best, metric)
        picked = np.take_along_axis(chunk, order, 1)
        out_i[start:start + step] = np.where(np.isfinite(best), picked, -1)
    if nq * m * base.shape[1] * base.dtype.itemsize >= GATHER_BYTES:
        release_pages(base)  # a large gather's pages leave the process; a query's few stay
    return out_d, out_i
