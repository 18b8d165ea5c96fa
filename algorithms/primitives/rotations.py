"""Orthogonal rotations shared by OPQ, LOPQ and ITQ (D x D linear algebra in numpy).

Convention: vectors are rows, a rotation ``R`` is (D, D) float32 with
orthonormal columns and the rotated data is ``x @ R``.

* :func:`eigenvalue_allocation`: the parametric OPQ solution of Ge, He, Ke, Sun,
  "Optimized Product Quantization", TPAMI 36(4), 2014, section 4: PCA, then
  principal directions dealt to the M sub-spaces so that the products of their
  eigenvalues are balanced (greedy, as the authors' MATLAB code).
* :func:`procrustes`: the orthogonal R minimising ||x R - y||_F given x^T y
  (Schönemann 1966), the rotation step of non-parametric OPQ and of ITQ.
* :func:`random_rotation`: a seeded uniformly random orthogonal matrix.
* :func:`rotate`: the data-sized product x R, through numpy's BLAS.

BLAS threads: a product too small to gain from threads runs with BLAS on one
thread (:func:`blas_for`), a large one (10,000 x 784 by 784 x 784) on the
run's threads, as numpy sets them; decompositions run on one thread.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from threadpoolctl import ThreadpoolController

from benchpq.checks import InputError, check_subspaces

#: multiply-adds below which BLAS runs on one thread: between our OpenMP loops a
#: threaded BLAS fights their spinning threads, which costs more than a small call
#: (siftsmall's 10,000 x 128 x 128 stays serial; 10,000 x 784 x 784 is threaded)
BLAS_THREADED_WORK = 1 << 28


def _serial_blas():
    """:func:`benchpq.measure.threads.serial_blas` with the loaded libraries looked up once.

    threadpoolctl finds the BLAS libraries by scanning the process's shared
    objects, about 10 ms a call: OPQ limits BLAS three times per rotation update.
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


_controller = None


def blas_for(work: float):
    """Context for a BLAS / LAPACK call of about ``work`` multiply-adds: serial if small."""
    return _serial_blas() if work < BLAS_THREADED_WORK else nullcontext()


def rotate(x: np.ndarray, R: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x (n, D) float32 -> x R (n, D_out) float32 (written into ``out`` if given), by BLAS."""
    n, dim = x.shape
    out = np.empty((n, R.shape[1]), np.float32) if out is None else out
    with blas_for(n * dim * R.shape[1]):
        return np.matmul(x, R, out=out)


def eigenvalue_allocation(x: np.ndarray, M: int) -> np.ndarray:
    """(D, D) float32 rotation whose M column blocks of D/M principal directions balance variance.

    Args:
        x: (n, D) float32 training vectors (n >= 2).
        M: number of sub-spaces; must divide D.
    """
    n, D = x.shape
    dsub = check_subspaces(D, M)
    if n < 2:
        raise InputError(f"eigenvalue allocation needs at least 2 vectors, got {n}")
    cov = np.cov(np.asarray(x, dtype=np.float64), rowvar=False)
    with _serial_blas():
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    # Balancing sums of logs balances products; the shift makes every term >= 1 so
    # that a bucket's sum only grows as it fills (as in the authors' MATLAB code).
    logs = np.log(np.maximum(eigenvalues[order], 0) + 1e-10)
    logs = logs - logs.min() + 1
    buckets: list[list[int]] = [[] for _ in range(M)]
    sums = np.zeros(M)
    for rank, value in zip(order, logs):
        open_buckets = [m for m in range(M) if len(buckets[m]) < dsub]
        target = min(open_buckets, key=lambda m: (sums[m], m))
        buckets[target].append(int(rank))
        sums[target] += value
    columns = [c for bucket in buckets for c in bucket]
    return np.ascontiguousarray(eigenvectors[:, columns], dtype=np.float32)


def procrustes(cross: np.ndarray) -> np.ndarray:
    """(D, D) float32 orthogonal R maximising trace(R^T cross), cross = x^T y (D, D).

    That R minimises ||x R - y||_F over rotations: with cross = U S V^T, R = U V^T.
    """
    # One thread: LAPACK's SVD is a long chain of small BLAS calls, each a
    # synchronisation of the BLAS threads; on 2 shared cores a 784 x 784 SVD took
    # 48 s on 2 threads against 4.6 s on one.
    with _serial_blas():  # the product too: a threaded BLAS call leaves its threads spinning
        u, _, vt = np.linalg.svd(np.asarray(cross, dtype=np.float64))
        rotation = u @ vt
    return np.ascontiguousarray(rotation, dtype=np.float32)


def random_rotation(D: int, seed: int) -> np.ndarray:
    """(D, D) float32 orthogonal matrix drawn uniformly (QR of a Gaussian, sign-fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, D)))
    return np.ascontiguousarray(q * np.sign(np.diag(r)), dtype=np.float32)
