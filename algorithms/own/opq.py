"""Our optimized product quantizer: a learnt rotation, then our C++ PQ. Plugin ``opq``.

Ge, He, Ke, Sun, "Optimized Product Quantization", IEEE TPAMI 36(4), 2014.
Vectors are rotated by an orthogonal R (D, D) before product quantization,
x -> x R, with R chosen to minimise the quantization distortion:

* parametric (section 4): R from eigenvalue allocation, balancing the product
  of the principal variances across the M sub-spaces (``init="eigen"``;
  ``niter=0`` gives exactly this method);
* non-parametric (section 3): ``niter`` alternations of (a) PQ training on the
  rotated data, hot-started from the previous codebooks, ``niter_pq`` k-means
  iterations (``niter_pq_0`` the first time), and (b) the orthogonal
  Procrustes update of R against the PQ reconstructions.

The default starts the non-parametric loop from the identity, i.e. from PQ's
own sub-spaces, so it only improves on PQ: on siftsmall (M=8) mse 20,048
against PQ's 21,917 and faiss's OPQ's 26,814 (the eigenvalue-allocation start
ended at 25,590 when measured with the earlier from-scratch final PQ: SIFT's
natural sub-spaces suit PQ better than balanced principal ones).

The loop runs on at most ``max_train_points`` sampled training vectors. The
final PQ (``iter`` k-means iterations) trains on the rotated training set,
subsampled as :class:`benchpq.algorithms.own.pq.PQ` does (only the rows it trains on
are rotated), starting from the loop's last codebooks (``final_init="loop"``).
Those codebooks have already had ``niter_pq_0 + (niter - 1) * niter_pq``
iterations on nearly the final rotation, so the loop can afford few k-means
iterations per step: on siftsmall and Fashion-MNIST this ends below both
faiss's recipe (``final_init="random"``: a PQ trained from scratch after the
loop) and nanopq's (a single k-means iteration from scratch per step), see
docs/results/2026-11-28-speed.md.

Cost at high dimension: the data-sized product x R goes through numpy's BLAS
(:func:`benchpq.algorithms.primitives.rotations.rotate`); the cross product x^T y of the rotation
update is summed from the codes (C++ ``sum_by_code``: x's rows added per
codeword, then M small (D, Ks) x (Ks, D/M) products), never from the decoded
data; the D x D SVD runs in LAPACK on the run's threads when D is large.
Encoding rotates and encodes a block of rows at a time, so the rotated copy
of the data is never held in full.

Arrays: vectors float32 (n, D); codes (n, M) as :class:`benchpq.algorithms.own.pq.PQ`;
``rotation`` (D, D) float32; ``objective`` per iteration: mean squared
distortion of the rotated sample before the rotation update.
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.api import Quantizer, Searcher, equal_bounds
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_positive_int,
    check_subspaces,
)
from benchpq.measure.training_log import log_iteration
from benchpq.metric_table import Metric, declare
from benchpq.registry import register

from ..primitives.checks import check_choice, check_codes, plugin_seed
from ..primitives.codes import code_dtype
from ..primitives.mixins import NativeProductCodes, StoredCodes
from ..primitives.native_modes import HOT_START, INITS
from ..primitives.rotations import (
    blas_for,
    eigenvalue_allocation,
    procrustes,
    random_rotation,
    rotate,
)
from .pq import PQ, PQ_CALLS

ROTATION_INITS = ("identity", "eigen", "random")
FINAL_INITS = ("loop", "random")
BLOCK_BYTES = 4 << 20  # rows rotated and encoded (or decoded and rotated back) at once


def block_rows(dim: int) -> int:
    """Rows of a (rows, dim) float32 block of about :data:`BLOCK_BYTES`."""
    return max(1, BLOCK_BYTES // (4 * dim))


def code_cross_product(cpp, x: np.ndarray, codes: np.ndarray, codewords: np.ndarray
                       ) -> np.ndarray:
    """x^T decode(codes) (D, D) float64 for x (n, D) float32 and a C++ ProductQuantizer.

    Args:
        cpp: the ``ProductQuantizer`` whose ``codewords`` (M, Ks, Ds) float32 decode ``codes``.
        x: (n, D) float32; codes: (n, M) of ``code_dtype(Ks)``.
    """
    (n, dim), (M, Ks, dsub) = x.shape, codewords.shape
    dims = dict(d=dim, M=M, Ks=Ks, ds=dsub)
    if M * Ks > n:  # fewer rows than codewords: the plain product is the cheaper one
        recon = np.empty((n, M * dsub), np.float32)
        PQ_CALLS.call(cpp, f"decode_u{8 * codes.itemsize}", codes, n, recon, **dims)
        with blas_for(n * dim * M * dsub):
            return (x.T @ recon).astype(np.float64)
    sums = np.empty((M, Ks, dim), np.float64)
    PQ_CALLS.call(cpp, f"sum_by_code_u{8 * codes.itemsize}", x, n, dim, codes, sums, **dims)
    with blas_for(M * Ks * dim * dsub):
        blocks = np.matmul(sums.transpose(0, 2, 1), codewords.astype(np.float64))  # (M, D, Ds)
    return np.ascontiguousarray(blocks.transpose(1, 0, 2).reshape(dim, M * dsub))


@register("opq")
class OPQ(NativeProductCodes, StoredCodes, Quantizer, Searcher):
    """Optimized product quantization: rotation learnt as in Ge et al. 2014, then our PQ.

    Args:
        M, Ks: as :class:`benchpq.algorithms.own.pq.PQ` (M divides the dimension).
        niter: rotation updates (non-parametric OPQ); 0 keeps the initial rotation.
        niter_pq, niter_pq_0: k-means iterations of the PQ inside each update
            (the first update starts from scratch with niter_pq_0).
        iter: k-means iterations of the final PQ.
        init: initial rotation, ``identity`` (PQ's sub-spaces), ``eigen`` (parametric
            OPQ) or ``random`` (as faiss's OPQMatrix).
        max_train_points: the rotation is learnt on at most this many sampled vectors.
        max_points_per_centroid: subsampling of the final PQ's k-means (None: all).
        final_init: the final PQ's k-means starts from the rotation loop's last
            codebooks (``loop``) or from random training points (``random``, as
            faiss's OPQMatrix + IndexPQ); without rotation updates always ``random``.
        seed: seeds sampling, k-means and a random initial rotation (None: 0).
    """

    metric_specs = declare(Metric(
        "rotation_objective", "Mean over the training vectors of the squared error of their PQ "
        "reconstruction in the rotated space after the last rotation update (non-parametric "
        "OPQ, Ge, He, Ke, Sun, TPAMI 2014).", direction="min", display="OPQ training MSE",
        kind="error"))

    model_arrays = ("pq", "rotation")
    fitted_attribute = "pq"
    search_metrics = ("l2", "ip")

    def __init__(self, M: int = 8, Ks: int = 256, niter: int = 50, niter_pq: int = 2,
                 niter_pq_0: int = 10, iter: int = 25, init: str = "identity",
                 max_train_points: int = 65536, max_points_per_centroid: int | None = 256,
                 final_init: str = "loop", seed: int | None = None, verbose: bool = False):
        self.M = check_positive_int(M, "M")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 16)
        self.verbose = bool(verbose)
        self.niter = check_positive_int(niter, "niter", 0)
        self.niter_pq = check_positive_int(niter_pq, "niter_pq")
        self.niter_pq_0 = check_positive_int(niter_pq_0, "niter_pq_0")
        self.iter = check_positive_int(iter, "iter")
        self.init = check_choice(init, ROTATION_INITS, "init")
        self.max_train_points = check_positive_int(max_train_points, "max_train_points", 2)
        if self.max_train_points < self.Ks:
            raise InputError(f"max_train_points={self.max_train_points} is below Ks={self.Ks}: "
                             f"k-means cannot learn {self.Ks} codewords from fewer vectors")
        self.max_points_per_centroid = max_points_per_centroid
        self.final_init = check_choice(final_init, FINAL_INITS, "final_init")
        self.seed = seed
        self.rotation = None
        self.objective = []
        self.pq = None

    # -- training -------------------------------------------------------------
    def fit(self, x):
        """Learn the rotation and the PQ on x (n, D) float32, n >= Ks; returns self."""
        x = as_matrix(x, "learn")
        n, dim = x.shape
        check_subspaces(dim, self.M)
        check_codebook_size(n, self.Ks)
        seed = plugin_seed(self.seed)
        rng = np.random.default_rng(seed)
        sample = x if n <= self.max_train_points else np.ascontiguousarray(
            x[np.sort(rng.choice(n, self.max_train_points, replace=False))])
        R = self._initial_rotation(sample, seed)
        self.objective = []
        codewords = None
        if self.niter:
            R, codewords = self._optimise_rotation(sample, R, seed)
        self.rotation = R
        self.pq = PQ(M=self.M, Ks=self.Ks, iter=self.iter, seed=seed,
                     max_points_per_centroid=self.max_points_per_centroid, init="random")
        rows = self.pq.training_rows(n)
        self.pq.fit(rotate(x if rows is None else x[rows], R),
                    codewords=codewords if self.final_init == "loop" else None)
        return self

    def _initial_rotation(self, sample: np.ndarray, seed: int) -> np.ndarray:
        dim = sample.shape[1]
        if self.init == "eigen":
            return eigenvalue_allocation(sample, self.M)
        if self.init == "random":
            return random_rotation(dim, seed)
        return np.eye(dim, dtype=np.float32)

    def _optimise_rotation(self, sample: np.ndarray, R: np.ndarray, seed: int):
        """Non-parametric OPQ: alternate PQ training and the Procrustes rotation update.

        Returns the rotation (D, D) float32 and the last codebooks (M, Ks, D/M) float32.
        """
        n, dim = sample.shape
        dsub = dim // self.M
        cpp = native.load().ProductQuantizer(dim, self.M, self.Ks)
        codes = np.empty((n, self.M), code_dtype(self.Ks))
        suffix = f"u{8 * codes.itemsize}"
        rotated = np.empty((n, dim), np.float32)
        recon = np.empty((n, dim), np.float32)
        codewords = np.empty((self.M, self.Ks, dsub), np.float32)
        dims = dict(d=dim, M=self.M, Ks=self.Ks, ds=dsub)
        for it in range(self.niter):
            rotate(sample, R, out=rotated)
            niter = self.niter_pq_0 if it == 0 else self.niter_pq
            objective = np.zeros((self.M, niter))
            PQ_CALLS.call(cpp, "train", rotated, n, niter,
                          INITS["random"] if it == 0 else HOT_START, (seed + it) % 2**64, 0,
                          objective, **dims)
            PQ_CALLS.call(cpp, "encode_" + suffix, rotated, n, codes, **dims)
            PQ_CALLS.call(cpp, "decode_" + suffix, codes, n, recon, **dims)
            np.subtract(rotated, recon, out=recon)
            self.objective.append(float(np.einsum("ij,ij->", recon, recon)) / n)
            if self.verbose:
                log_iteration(f"{self.name or 'opq'}: rotation", it + 1, self.niter,
                              self.objective[-1], "training mse")
            PQ_CALLS.call(cpp, "get_codewords", codewords, **dims)
            R = procrustes(code_cross_product(cpp, sample, codes, codewords))
        return R, codewords

    # -- Quantizer ------------------------------------------------------------
    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, M) codes; each block of rows is rotated, then encoded."""
        pq = self.trained()
        x = as_matrix(x, "x", dim=pq.dim)
        n, step = x.shape[0], block_rows(pq.dim)
        codes = np.empty((n, self.M), pq.code_dtype)
        rotated = np.empty((min(n, step), pq.dim), np.float32)
        for start in range(0, n, step):
            block = x[start:start + step]
            pq.encode_into(rotate(block, self.rotation, out=rotated[:len(block)]),
                           codes[start:start + step])
        return codes

    def decode(self, codes) -> np.ndarray:
        """(n, M) codes -> (n, D) float32: PQ reconstruction rotated back by R^T, by blocks."""
        pq = self.trained()
        codes = check_codes(codes, self.M, self.Ks)
        back = np.ascontiguousarray(self.rotation.T)
        out = np.empty((len(codes), pq.dim), np.float32)
        step = block_rows(pq.dim)
        for start in range(0, len(codes), step):
            rotate(pq.decode(codes[start:start + step]), back, out=out[start:start + step])
        return out

    # -- Searcher -------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray | None:
        """The added database's (n, M) codes, held by the inner PQ."""
        return None if self.pq is None else self.pq.codes

    @codes.setter
    def codes(self, value) -> None:
        self.trained().codes = value

    def search(self, queries, k):
        """ADC k-NN of the rotated queries: (distances (nq, k) float32, ids (nq, k) int64);
        under ``ip`` inner products, largest first (the rotation is orthogonal: it keeps them)."""
        pq = self.trained()
        return pq.search_by(rotate(as_matrix(queries, "query", dim=pq.dim), self.rotation), k,
                            self.metric)

    # -- faiss interop ----------------------------------------------------------
    def to_faiss(self):
        """A faiss ``IndexPreTransform`` (rotation, then IndexPQ) with our rotation and codebooks.

        faiss applies ``y = A x`` to column vectors, so A is our R transposed; codes
        added to this model are carried over.
        """
        import faiss
        pq = self.trained()
        dim = pq.dim
        transform = faiss.LinearTransform(dim, dim, False)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.rotation.T).ravel(), transform.A)
        transform.is_trained = True
        transform.is_orthonormal = True
        # faiss's Python layer keeps the transform and the PQ alive with the index
        return faiss.IndexPreTransform(transform, pq.to_faiss())

    @classmethod
    def from_faiss(cls, index, **params) -> OPQ:
        """An OPQ holding the rotation and PQ of a trained faiss ``OPQ<M>,PQ<M>`` index."""
        import faiss
        # the caller's wrapper owns the C++ index: keep it referenced while the downcast
        # view is read (a temporary argument would otherwise be freed under it)
        index, _owner = faiss.downcast_index(index), index
        if not isinstance(index, faiss.IndexPreTransform) or index.chain.size() != 1:
            raise InputError("from_faiss: expected a faiss IndexPreTransform with one "
                             f"rotation, got {type(index).__name__}")
        transform = faiss.downcast_VectorTransform(index.chain.at(0))
        if not isinstance(transform, faiss.LinearTransform) or transform.d_in != transform.d_out:
            raise InputError("from_faiss: the transform is not a square linear transform")
        dim = transform.d_in
        pq = PQ.from_faiss(index.index, **{k: v for k, v in params.items()
                                           if k in ("iter", "seed", "max_points_per_centroid")})
        A = faiss.vector_to_array(transform.A).reshape(dim, dim)
        model = cls(M=pq.M, Ks=pq.Ks, **params)
        model.rotation = np.ascontiguousarray(A.T, dtype=np.float32)
        model.pq = pq
        return model

    def extra_metrics(self) -> dict:
        return {"rotation_objective": self.objective[-1]} if self.objective else {}

    # -- diagnostics ------------------------------------------------------------
    def subspace_codes(self, codes) -> tuple[np.ndarray, int]:
        return self.trained().subspace_codes(codes)

    def subspace_view(self, x, codes) -> tuple[np.ndarray, np.ndarray]:
        """x R (n, D): the rotated space, where the PQ's M sub-spaces are equal blocks."""
        pq = self.trained()
        rotated = rotate(as_matrix(x, "x", dim=pq.dim), self.rotation)
        return rotated, equal_bounds(pq.dim, self.M)
