"""Metric definitions, one function each, as named in docs/metrics.md.

Search:
    recall_at(ids, gt, R)        1-recall@R (Jegou et al. 2011)
    k_recall_at_k(...)           |returned top-k ∩ true top-k| / k, ties at the k-th
                                 true distance count as hits (ann-benchmarks)
    nn_ranks, k_recall_hits      the same per query (for intervals and paired tests)
Quantization:
    mse(x, x_hat)                mean over vectors of ||x - x_hat||²
Clustering:
    clustering_error(x, labels)  mean squared distance of each vector to the mean
                                 of the original vectors of its cluster
    empty_clusters, nmi, ari     (NMI: arithmetic-mean normalisation, as scikit-learn)
"""
from __future__ import annotations

import numpy as np

from ..checks import InputError, check_labels


def recall_at(ids: np.ndarray, gt: np.ndarray, R: int) -> float:
    """Fraction of queries whose true nearest neighbour ``gt[:, 0]`` is in ``ids[:, :R]``.

    Args:
        ids: (nq, >=R) int, returned neighbours nearest first (-1 for missing).
        gt: (nq, >=1) int, true neighbours nearest first.
    """
    if ids.shape[1] < R:
        raise InputError(f"recall@{R} needs at least {R} results per query, got {ids.shape[1]}")
    if ids.shape[0] != gt.shape[0]:
        raise InputError(f"{ids.shape[0]} result rows for {gt.shape[0]} ground-truth rows")
    return float((ids[:, :R] == gt[:, :1]).any(axis=1).mean())


def k_recall_at_k(ids: np.ndarray, result_true_dist: np.ndarray, gt_dist: np.ndarray,
                  k: int, rel_eps: float = 1e-3) -> float:
    """Mean fraction of the k returned items that are true top-k neighbours, ties included.

    A returned item counts as a hit when its exact distance to the query is at
    most the k-th true distance (plus rel_eps of its magnitude, as ann-benchmarks
    does), so an equally near item in place of a true neighbour is not a miss.

    Args:
        ids: (nq, >=k) int returned ids (-1 for missing, never a hit).
        result_true_dist: (nq, >=k) exact ranking distances of those ids (squared L2, or
            negated inner products: :func:`benchpq.datasets.exact_distances`).
        gt_dist: (nq, >=k) exact ranking distances of the true neighbours, ascending.
    """
    return float(k_recall_hits(ids, result_true_dist, gt_dist, k, rel_eps).mean() / k)


def k_recall_hits(ids: np.ndarray, result_true_dist: np.ndarray, gt_dist: np.ndarray,
                  k: int, rel_eps: float = 1e-3) -> np.ndarray:
    """(nq,) int64: per query, how many of the k returned items are hits of k-recall@k.

    Same arguments and tie rule as :func:`k_recall_at_k` (which is ``hits.mean() / k``).
    """
    if ids.shape[1] < k or gt_dist.shape[1] < k:
        raise InputError(f"{k}-recall@{k} needs {k} results and {k} true distances per query")
    kth = gt_dist[:, k - 1:k]
    threshold = kth + rel_eps * np.abs(kth) + 1e-6
    hits = (result_true_dist[:, :k] <= threshold) & (ids[:, :k] >= 0)
    return hits.sum(axis=1).astype(np.int64)


def nn_ranks(ids: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(nq,) int64: per query, the rank (0 = first) of the true nearest neighbour in ``ids``.

    -1 where it was not returned. Query q counts for recall@R iff ``0 <= rank[q] < R``.
    """
    if ids.shape[0] != gt.shape[0]:
        raise InputError(f"{ids.shape[0]} result rows for {gt.shape[0]} ground-truth rows")
    found = ids == gt[:, :1]
    return np.where(found.any(axis=1), found.argmax(axis=1), -1).astype(np.int64)


def mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean over vectors of the squared L2 reconstruction error (float64 accumulation)."""
    if x.shape != x_hat.shape:
        raise InputError(f"reconstruction shape {x_hat.shape} differs from input {x.shape}")
    diff = np.asarray(x, dtype=np.float64) - x_hat
    return float(np.einsum("ij,ij->", diff, diff) / x.shape[0])


def cluster_means(x: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """(n_clusters, d) float64 mean of the vectors of each cluster (zeros for empty ones)."""
    sums = np.zeros((n_clusters, x.shape[1]))
    for start in range(0, x.shape[0], 65536):
        block = np.asarray(x[start:start + 65536], dtype=np.float64)
        lab = labels[start:start + 65536]
        for j in range(x.shape[1]):  # bincount per column: far faster than np.add.at
            sums[:, j] += np.bincount(lab, weights=block[:, j], minlength=n_clusters)
    counts = np.bincount(labels, minlength=n_clusters)
    return sums / np.maximum(counts, 1)[:, None]


def clustering_error(x: np.ndarray, labels: np.ndarray, n_clusters: int) -> float:
    """Mean squared distance of each vector to the mean of the original vectors of its cluster.

    Comparable across k-means on floats, PQk-means on codes and Bk-means on bits,
    because the means are taken of the original vectors, not of the codes.
    """
    labels = check_labels(labels, x.shape[0], n_clusters)
    means = cluster_means(x, labels, n_clusters)
    total = 0.0
    for start in range(0, x.shape[0], 65536):
        block = np.asarray(x[start:start + 65536], dtype=np.float64)
        diff = block - means[labels[start:start + 65536]]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total / x.shape[0]


def empty_clusters(labels: np.ndarray, n_clusters: int) -> int:
    """Number of clusters in [0, n_clusters) with no member."""
    return int(n_clusters - np.unique(labels).size)


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Normalised mutual information, arithmetic normalisation (scikit-learn's default)."""
    table = _contingency(labels_true, labels_pred)
    n = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    nz = table > 0
    outer = np.outer(rows, cols)[nz]
    mi = float((table[nz] / n * (np.log(table[nz] * n) - np.log(outer))).sum())
    h_true, h_pred = _entropy(rows), _entropy(cols)
    if h_true == 0 and h_pred == 0:
        return 1.0
    denom = (h_true + h_pred) / 2
    return float(max(mi, 0.0) / denom) if denom > 0 else 0.0


def ari(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985)."""
    table = _contingency(labels_true, labels_pred)
    comb = lambda v: (v * (v - 1) / 2.0).sum()  # noqa: E731 - pairs within groups
    n = table.sum()
    sum_cells = comb(table)
    sum_rows, sum_cols = comb(table.sum(axis=1)), comb(table.sum(axis=0))
    expected = sum_rows * sum_cols / (n * (n - 1) / 2.0)
    maximum = (sum_rows + sum_cols) / 2.0
    if maximum == expected:
        return 1.0
    return float((sum_cells - expected) / (maximum - expected))


