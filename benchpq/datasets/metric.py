"""The similarity a dataset is searched by: ``l2``, ``ip`` or ``cosine``.

* ``l2``: squared Euclidean distance, nearest first (the default);
* ``ip``: inner product, largest first (maximum inner-product search, MIPS);
* ``cosine``: the inner product of L2-normalised vectors; a dataset of this metric holds
  its learn, base and query vectors normalised to unit length (:func:`normalized`), so
  every kernel, ground truth included, searches it as ``ip``.

Inside benchpq a ranking is always "smaller first": :func:`ranking_distances` gives the
squared distance under ``l2`` and the negated inner product under ``ip``, so ties break by
the smaller id under every metric. What a search returns and a record stores are the
metric's own values: squared distances under ``l2``, inner products under ``ip`` and
``cosine`` (largest first).
"""
from __future__ import annotations

import numpy as np

from ..checks import InputError

METRICS = ("l2", "ip", "cosine")


def check_metric(metric, where: str = "metric") -> str:
    """``metric`` as one of :data:`METRICS`, or raise naming ``where``."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise InputError(f"{where}: {metric!r} is not a metric: expected one of "
                         f"{', '.join(METRICS)} (l2: squared Euclidean distance; ip: inner "
                         f"product, largest first; cosine: inner product of unit vectors)")
    return metric


def kernel_metric(metric: str) -> str:
    """The metric a kernel computes for ``metric``: ``l2`` or ``ip`` (cosine is ``ip`` on
    normalised vectors)."""
    return "ip" if check_metric(metric) == "cosine" else metric


def normalized(x: np.ndarray, block_rows: int = 65536) -> np.ndarray:
    """(n, d) float32 rows of ``x`` scaled to unit L2 norm (zero rows stay zero), computed
    block by block in float64."""
    out = np.empty(x.shape, np.float32)
    for start in range(0, x.shape[0], block_rows):
        block = np.asarray(x[start:start + block_rows], np.float64)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + block_rows] = block / np.where(norms > 0, norms, 1.0)
    return out


def ranking_distances(rows: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Smaller-first values of candidate ``rows`` (nq, m, d) for ``queries`` (nq, d), in the
    rows' float type: squared distances (``l2``) or negated inner products (``ip``,
    ``cosine``)."""
    if kernel_metric(metric) == "l2":
        diff = rows - queries[:, None, :]
        return np.einsum("qmd,qmd->qm", diff, diff)
    return -np.einsum("qmd,qd->qm", rows, queries.astype(rows.dtype, copy=False))


def metric_values(ranking: np.ndarray, metric: str) -> np.ndarray:
    """The metric's own values from :func:`ranking_distances`' (inner products are negated
    back)."""
    return ranking if kernel_metric(metric) == "l2" else -ranking
