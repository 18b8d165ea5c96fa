"""Numpy definitions the C++ kernels are checked against (tests only).

Every function here is the plain definition of what a kernel computes, written
for clarity, not speed: exhaustive PQ search, Hamming distances, k-means,
PQk-means and Bk-means steps. Ties follow the library's documented rule: the
smaller id (or centre index) first.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from benchpq import native

POPCOUNT = np.array([bin(v).count("1") for v in range(256)], np.int64)


@contextmanager
def native_threads(threads: int):
    """Run the C++ core's OpenMP regions on ``threads`` threads (forced, whatever the cores)."""
    before = native.load().get_num_threads()
    native.set_num_threads(threads)
    try:
        yield
    finally:
        native.set_num_threads(before)


def topk(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise k smallest of dist (nq, n): (distances, ids), nearest first, ties by smaller id."""
    ids = np.arange(dist.shape[1])
    order = np.stack([np.lexsort((ids, row))[:k] for row in dist])
    return np.take_along_axis(dist, order, 1), order


def pq_adc(queries: np.ndarray, codewords: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(nq, n) int64 asymmetric distances sum_m ||q_m - c_m[code_m]||^2 (integer inputs: exact)."""
    M, _, dsub = codewords.shape
    cw = codewords.astype(np.int64)
    q = queries.astype(np.int64).reshape(len(queries), M, dsub)
    dist = np.zeros((len(queries), len(codes)), np.int64)
    for m in range(M):
        table = ((q[:, m, None, :] - cw[m][None]) ** 2).sum(-1)  # (nq, Ks)
        dist += table[:, codes[:, m].astype(np.int64)]
    return dist


def pq_encode(x: np.ndarray, codewords: np.ndarray) -> np.ndarray:
    """(n, M) nearest codeword per sub-vector (int64; ties: the smaller index)."""
    M, _, dsub = codewords.shape
    xs = x.astype(np.float64).reshape(len(x), M, dsub)
    cw = codewords.astype(np.float64)
    return np.stack([((xs[:, m, None, :] - cw[m][None]) ** 2).sum(-1).argmin(1)
                     for m in range(M)], axis=1)


def pq_sdc(query_codes: np.ndarray, codewords: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(nq, n) symmetric distances sum_m ||c_m[qcode_m] - c_m[code_m]||^2 (int64 for integer
    codewords)."""
    cw = codewords.astype(np.int64)
    dist = np.zeros((len(query_codes), len(codes)), np.int64)
    for m in range(cw.shape[0]):
        table = ((cw[m][:, None, :] - cw[m][None, :, :]) ** 2).sum(-1)
        dist += table[query_codes[:, m].astype(np.int64)][:, codes[:, m].astype(np.int64)]
    return dist


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(na, nb) Hamming distances between packed uint8 codes: popcount of the XOR."""
    out = np.zeros((len(a), len(b)), np.int64)
    for byte in range(a.shape[1]):
        out += POPCOUNT[a[:, byte][:, None] ^ b[:, byte][None, :]]
    return out


def majority_vote(codes: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Bk-means update: bit 1 if more than half the members have it, 0 if fewer, the old bit on
    a tie; an empty cluster keeps its centre."""
    bits = np.unpackbits(codes, axis=1, bitorder="little").astype(np.int64)
    old = np.unpackbits(centers, axis=1, bitorder="little")
    new = old.copy()
    counts = np.bincount(labels, minlength=len(centers))
    ones = np.zeros((len(centers), bits.shape[1]), np.int64)
    np.add.at(ones, labels, bits)
    for c in np.flatnonzero(counts):
        twice, size = 2 * ones[c], counts[c]
        new[c] = np.where(twice > size, 1, np.where(twice < size, 0, old[c]))
    return np.packbits(new, axis=1, bitorder="little")


def sdc_assign(codes: np.ndarray, tables: np.ndarray, centers: np.ndarray):
    """PQk-means assignment: (labels, distances) of argmin_j sum_m T_m[code_m, centre_j,m]
    (float32 sums in sub-space order; ties: the smaller centre index)."""
    dist = np.zeros((len(codes), len(centers)), np.float32)
    for m in range(tables.shape[0]):
        dist += tables[m][codes[:, m][:, None], centers[:, m][None, :]]
    labels = dist.argmin(1)
    return labels, dist[np.arange(len(codes)), labels]


def sparse_vote(codes: np.ndarray, tables: np.ndarray, labels: np.ndarray,
                centers: np.ndarray) -> np.ndarray:
    """PQk-means update: per cluster and sub-space, argmin_b sum_a h[a] T_m[a, b] with h the
    members' histogram (float64; ties: the smaller b); an empty cluster keeps its centre."""
    M, Ks = tables.shape[0], tables.shape[1]
    out = centers.copy()
    counts = np.bincount(labels, minlength=len(centers))
    for m in range(M):
        hist = np.zeros((len(centers), Ks), np.float64)
        np.add.at(hist, (labels, codes[:, m]), 1.0)
        votes = hist @ tables[m].astype(np.float64)
        best = votes.argmin(1).astype(np.uint8)
        out[counts > 0, m] = best[counts > 0]
    return out
