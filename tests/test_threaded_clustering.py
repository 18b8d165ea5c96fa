"""PQk-means and Bk-means on more than 65,536 codes, on 1 and 2 threads, against the numpy
definitions of their steps (no data set needed).

Below 65,536 codes the C++ updates run on one thread; above, each thread owns a range of
clusters (k * t / nt .. k * (t + 1) / nt) and scans every code, so an error in that split
only shows here. Tables are built from integer codewords, so every symmetric distance and
every vote is an exact integer in float32 and the results must equal the reference exactly
(ties: the smaller index). Two threads are forced, whatever the runner's core count.
"""
import numpy as np
import pytest

from benchpq.algorithms.own.bkmeans import bkmeans, bkmeans_assign, majority_vote
from benchpq.algorithms.own.pqkmeans import pqkmeans, pqkmeans_assign, sdc_tables, sparse_voting

import reference as ref

N = 70_000  # > 65,536: the parallel paths
K = 60


@pytest.fixture(scope="module")
def pq_codes():
    """(N, 8) uint8 codes in clumps around K prototypes, integer-valued tables (8, 256, 256),
    and K distinct initial centres."""
    rng = np.random.default_rng(0)
    codewords = rng.integers(0, 5, (8, 256, 2)).astype(np.float32)
    prototypes = rng.integers(0, 256, (K, 8))
    codes = prototypes[rng.integers(0, K, N)]
    noise = rng.random((N, 8)) < 0.3
    codes[noise] = rng.integers(0, 256, noise.sum())
    codes = codes.astype(np.uint8)
    centers = np.unique(codes[rng.choice(N, 4 * K, replace=False)], axis=0)[:K]
    assert len(centers) == K
    return codes, sdc_tables(codewords), rng.permutation(centers)


@pytest.fixture(scope="module")
def bin_codes():
    """(N, 8) uint8 packed 64-bit codes in clumps around K prototypes, and K initial centres:
    the prototypes with 6 bits flipped (each clump keeps a centre: no empty cluster)."""
    rng = np.random.default_rng(1)
    prototypes = rng.integers(0, 256, (K, 8))
    codes = prototypes[rng.integers(0, K, N)].astype(np.uint8)
    flips = np.packbits(rng.random((N, 64)) < 0.15, axis=1, bitorder="little")
    codes ^= flips
    centers = prototypes.astype(np.uint8)
    for c in range(K):
        bit = rng.choice(64, 6, replace=False)
        np.bitwise_xor.at(centers[c], bit // 8, (1 << (bit % 8)).astype(np.uint8))
    return codes, centers


def labels_with_every_boundary_cluster(rng, k):
    """Random labels over [0, k) but cluster k - 3 empty (its centre must be kept)."""
    labels = rng.integers(0, k - 1, N)
    labels[labels == k - 3] = k - 1
    assert np.all(np.bincount(labels, minlength=k)[np.arange(k) != k - 3] > 0)
    return labels


@pytest.mark.parametrize("threads", [1, 2])
def test_pqkmeans_assignment_and_vote_equal_numpy(pq_codes, threads):
    codes, tables, centers = pq_codes
    centers = centers.copy()
    centers[K // 2] = centers[K // 2 - 1]  # duplicate centre: ties go to the smaller index
    want_labels, want_dist = ref.sdc_assign(codes, tables, centers)
    labels = labels_with_every_boundary_cluster(np.random.default_rng(2), K)
    want_centers = ref.sparse_vote(codes, tables, labels, centers)
    with ref.native_threads(threads):
        got_labels, got_dist = pqkmeans_assign(codes, tables, centers)
        new, changed = sparse_voting(codes, tables, labels, centers)
    assert np.array_equal(got_labels, want_labels) and np.array_equal(got_dist, want_dist)
    assert not np.any(got_labels == K // 2)
    assert np.array_equal(new, want_centers)
    assert changed == int((want_centers != centers).any(axis=1).sum()) > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_bkmeans_assignment_and_vote_equal_numpy(bin_codes, threads):
    codes, centers = bin_codes
    centers = centers.copy()
    centers[K // 2] = centers[K // 2 - 1]
    dist = ref.hamming(codes, centers)
    labels = labels_with_every_boundary_cluster(np.random.default_rng(3), K)
    want_centers = ref.majority_vote(codes, labels, centers)
    with ref.native_threads(threads):
        got_labels, got_dist = bkmeans_assign(codes, centers)
        new, changed = majority_vote(codes, labels, centers)
    assert np.array_equal(got_labels, dist.argmin(1)) and np.array_equal(got_dist, dist.min(1))
    assert np.array_equal(new, want_centers)
    assert changed == int((want_centers != centers).any(axis=1).sum()) > 0


def pqkmeans_by_definition(codes, tables, centers, niter):
    """Assign, then vote, niter times (no vote after the last assignment)."""
    centers = centers.copy()
    for it in range(niter):
        labels, distances = ref.sdc_assign(codes, tables, centers)
        assert np.all(np.bincount(labels, minlength=len(centers)) > 0)  # no empty-cluster rule
        if it + 1 < niter:
            centers = ref.sparse_vote(codes, tables, labels, centers)
    return centers, labels, distances


def bkmeans_by_definition(codes, centers, niter):
    centers = centers.copy()
    for it in range(niter):
        dist = ref.hamming(codes, centers)
        labels = dist.argmin(1)
        assert np.all(np.bincount(labels, minlength=len(centers)) > 0)
        if it + 1 < niter:
            centers = ref.majority_vote(codes, labels, centers)
    return centers, labels, dist.min(1)


def test_pqkmeans_runs_equal_the_definition_on_1_and_2_threads(pq_codes):
    codes, tables, centers = pq_codes
    want_centers, want_labels, want_dist = pqkmeans_by_definition(codes, tables, centers, 3)
    assert (want_centers != centers).any(axis=1).sum() > K // 2  # the votes moved the centres
    for threads in (1, 2):
        with ref.native_threads(threads):
            run = pqkmeans(codes, tables, K, niter=3, centers=centers)
        assert np.array_equal(run.centers, want_centers), threads
        assert np.array_equal(run.labels, want_labels), threads
        assert run.objective[-1] == pytest.approx(want_dist.astype(np.float64).sum(), rel=1e-9)


def test_bkmeans_runs_equal_the_definition_on_1_and_2_threads(bin_codes):
    codes, centers = bin_codes
    want_centers, want_labels, want_dist = bkmeans_by_definition(codes, centers, 3)
    assert (want_centers != centers).any(axis=1).sum() > K // 2  # the votes moved the centres
    for threads in (1, 2):
        with ref.native_threads(threads):
            run = bkmeans(codes, K, niter=3, centers=centers)
        assert np.array_equal(run.centers, want_centers), threads
        assert np.array_equal(run.labels, want_labels), threads
        assert run.objective[-1] == pytest.approx(float(want_dist.sum()), rel=1e-9)
