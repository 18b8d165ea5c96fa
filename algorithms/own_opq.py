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
own sub-spaces, so it only improves on PQ: on siftsmall (M=8) mse 20,375
against PQ's 21,917, while the eigenvalue-allocation start ends at 25,590
(SIFT's natural sub-spaces suit PQ better than balanced principal ones).

The loop runs on at most ``max_train_points`` sampled training vectors and the
final PQ (``iter`` k-means iterations) on the whole rotated training set, as
faiss's OPQMatrix + IndexPQ do, so the two are compared at equal iterations.
The data-sized products (x R, x^T y) run in C++ (``cpp/linalg.cpp``); the
D x D SVD in numpy.

Arrays: vectors float32 (n, D); codes (n, M) as :class:`algorithms.own_pq.PQ`;
``rotation`` (D, D) float32; ``objective`` per iteration: mean squared
distortion of the rotated sample before the rotation update.
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.api import Quantizer, Searcher
from benchpq.checks import (InputError, as_matrix, check_codebook_size, check_positive_int,
                            check_subspaces)
from benchpq.registry import register

from .own_pq import INITS, PQ, check_seed, pq_code_bits
from .rotations import eigenvalue_allocation, procrustes, random_rotation

HOT_START = 2  # cpp/kmeans.h KMEANS_INIT_GIVEN
ROTATION_INITS = ("identity", "eigen", "random")
CHUNK_ROWS = 65536  # rows rotated at once: bounds the temporary to 32 MiB at D=128


@native.on_load
def _prepare(ns) -> None:
    """Release the GIL in the data-sized products and warm their wrappers up."""
    native.release_gil(ns, "matmul", "cross_product")
    x = np.eye(2, dtype=np.float32)
    ns.matmul(x, 2, 2, x, 2, np.zeros((2, 2), np.float32))
    ns.cross_product(x, x, 2, 2, 2, np.zeros((2, 2)))


def rotate(x: np.ndarray, R: np.ndarray) -> np.ndarray:
    """x (n, D) float32 -> x R (n, D_out) float32, in C++."""
    n, d = x.shape
    out = np.empty((n, R.shape[1]), np.float32)
    native.load().matmul(native.array_arg(x, np.float32, (n, d), "x"), n, d,
                         native.array_arg(R, np.float32, (d, None), "rotation"), R.shape[1],
                         native.array_arg(out, np.float32, out.shape, "out", writeable=True))
    return out


def cross_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x^T y (D, D2) float64 for x (n, D), y (n, D2) float32, in C++."""
    (n, d), d2 = x.shape, y.shape[1]
    out = np.empty((d, d2), np.float64)
    native.load().cross_product(native.array_arg(x, np.float32, (n, d), "x"),
                                native.array_arg(y, np.float32, (n, d2), "y"), n, d, d2,
                                native.array_arg(out, np.float64, out.shape, writeable=True))
    return out


@register("opq")
class OPQ(Quantizer, Searcher):
    """Optimized product quantization: rotation learnt as in Ge et al. 2014, then our PQ.

    Args:
        M, Ks: as :class:`algorithms.own_pq.PQ` (M divides the dimension).
        niter: rotation updates (non-parametric OPQ); 0 keeps the initial rotation.
        niter_pq, niter_pq_0: k-means iterations of the PQ inside each update
            (the first update starts from scratch with niter_pq_0).
        iter: k-means iterations of the final PQ.
        init: initial rotation, ``identity`` (PQ's sub-spaces), ``eigen`` (parametric
            OPQ) or ``random`` (as faiss's OPQMatrix).
        max_train_points: the rotation is learnt on at most this many sampled vectors.
        max_points_per_centroid: subsampling of the final PQ's k-means (None: all).
        seed: seeds sampling, k-means and a random initial rotation (None: 0).
    """

    def __init__(self, M: int = 8, Ks: int = 256, niter: int = 50, niter_pq: int = 4,
                 niter_pq_0: int = 40, iter: int = 25, init: str = "identity",
                 max_train_points: int = 65536, max_points_per_centroid: int | None = 256,
                 seed: int | None = None):
        self.M = check_positive_int(M, "M")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 16)
        self.niter = check_positive_int(niter, "niter", 0)
        self.niter_pq = check_positive_int(niter_pq, "niter_pq")
        self.niter_pq_0 = check_positive_int(niter_pq_0, "niter_pq_0")
        self.iter = check_positive_int(iter, "iter")
        if init not in ROTATION_INITS:
            raise InputError(f"init: expected one of {list(ROTATION_INITS)}, got {init!r}")
        self.init = init
        self.max_train_points = check_positive_int(max_train_points, "max_train_points", 2)
        self.max_points_per_centroid = max_points_per_centroid
        self.seed = seed
        self.rotation = None
        self.objective = []
        self.pq = None

    def set_threads(self, threads: int) -> None:
        native.set_num_threads(check_positive_int(threads, "threads"))

    # -- training -------------------------------------------------------------
    def fit(self, x):
        """Learn the rotation and the PQ on x (n, D) float32, n >= Ks; returns self."""
        x = as_matrix(x, "learn")
        n, dim = x.shape
        check_subspaces(dim, self.M)
        check_codebook_size(n, self.Ks)
        seed = check_seed(self.seed)
        rng = np.random.default_rng(seed)
        sample = x if n <= self.max_train_points else np.ascontiguousarray(
            x[np.sort(rng.choice(n, self.max_train_points, replace=False))])
        R = self._initial_rotation(sample, seed)
        self.objective = []
        if self.niter:
            R = self._optimise_rotation(sample, R, seed)
        self.rotation = R
        self.pq = PQ(M=self.M, Ks=self.Ks, iter=self.iter, seed=seed,
                     max_points_per_centroid=self.max_points_per_centroid, init="random")
        self.pq.fit(self._rotated(x))
        return self

    def _initial_rotation(self, sample: np.ndarray, seed: int) -> np.ndarray:
        dim = sample.shape[1]
        if self.init == "eigen":
            return eigenvalue_allocation(sample, self.M)
        if self.init == "random":
            return random_rotation(dim, seed)
        return np.eye(dim, dtype=np.float32)

    def _optimise_rotation(self, sample: np.ndarray, R: np.ndarray, seed: int) -> np.ndarray:
        """Non-parametric OPQ: alternate PQ training and the Procrustes rotation update."""
        n, dim = sample.shape
        cpp = native.load().ProductQuantizer(dim, self.M, self.Ks)
        codes = np.empty((n, self.M), np.uint8 if self.Ks <= 256 else np.uint16)
        suffix = "u8" if self.Ks <= 256 else "u16"
        recon = np.empty((n, dim), np.float32)
        for it in range(self.niter):
            rotated = rotate(sample, R)
            niter = self.niter_pq_0 if it == 0 else self.niter_pq
            objective = np.zeros((self.M, niter))
            cpp.train(rotated, n, niter, INITS["random"] if it == 0 else HOT_START, (seed + it) % 2**64,
                      0, objective)
            getattr(cpp, "encode_" + suffix)(rotated, n, codes)
            getattr(cpp, "decode_" + suffix)(codes, n, recon)
            diff = rotated - recon
            self.objective.append(float(np.einsum("ij,ij->", diff, diff)) / n)
            R = procrustes(cross_product(sample, recon))
        return R

    # -- Quantizer ------------------------------------------------------------
    def _trained(self) -> PQ:
        if self.pq is None:
            raise InputError(f"{self.name or 'opq'}: call fit() before using the quantizer")
        return self.pq

    def _rotated(self, x: np.ndarray) -> np.ndarray:
        return rotate(x, self.rotation)

    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, M) codes, rotating CHUNK_ROWS rows at a time."""
        pq = self._trained()
        x = as_matrix(x, "x", dim=pq.dim)
        codes = np.empty((x.shape[0], self.M), pq.code_dtype)
        for start in range(0, x.shape[0], CHUNK_ROWS):
            codes[start:start + CHUNK_ROWS] = pq.encode(self._rotated(x[start:start + CHUNK_ROWS]))
        return codes

    def decode(self, codes) -> np.ndarray:
        """(n, M) codes -> (n, D) float32: PQ reconstruction rotated back by R^T."""
        pq = self._trained()
        return rotate(pq.decode(codes), np.ascontiguousarray(self.rotation.T))

    # -- Searcher -------------------------------------------------------------
    def add(self, x) -> None:
        pq = self._trained()
        codes = self.encode(x)
        pq.codes = codes if pq.codes is None else np.concatenate([pq.codes, codes])

    def search(self, queries, k):
        """ADC k-NN of the rotated queries: (distances (nq, k) float32, ids (nq, k) int64)."""
        pq = self._trained()
        return pq.search(self._rotated(as_matrix(queries, "query", dim=pq.dim)), k)

    # -- sizes ----------------------------------------------------------------
    @property
    def code_bits(self) -> int:
        return pq_code_bits(self.M, self.Ks)

    @property
    def codes_bytes(self) -> int:
        return self.pq.codes_bytes if self.pq is not None else 0

    @property
    def model_bytes(self) -> int:
        return 0 if self.pq is None else self.pq.model_bytes + int(self.rotation.nbytes)

    # -- faiss interop ----------------------------------------------------------
    def to_faiss(self):
        """A faiss ``IndexPreTransform`` (rotation, then IndexPQ) with our rotation and codebooks.

        faiss applies ``y = A x`` to column vectors, so A is our R transposed; codes
        added to this model are carried over.
        """
        import faiss
        pq = self._trained()
        dim = pq.dim
        transform = faiss.LinearTransform(dim, dim, False)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.rotation.T).ravel(), transform.A)
        transform.is_trained = True
        transform.is_orthonormal = True
        # faiss's Python layer keeps the transform and the PQ alive with the index
        return faiss.IndexPreTransform(transform, pq.to_faiss())

    @classmethod
    def from_faiss(cls, index, **params) -> "OPQ":
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
