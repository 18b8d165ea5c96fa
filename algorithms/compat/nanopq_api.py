"""A drop-in for the nanopq library's API, on our C++ core.

nanopq (Matsui, https://github.com/matsui528/nanopq) is pure-Python product
quantization (Jegou, Douze, Schmid, "Product quantization for nearest neighbor
search", IEEE TPAMI 33(1), 2011) and optimized product quantization (Ge, He,
Ke, Sun, "Optimized Product Quantization", IEEE TPAMI 36(4), 2014). It is used
as::

    import nanopq
    pq = nanopq.PQ(M=8).fit(Xt)                # k-means per sub-space
    X_code = pq.encode(X)                      # (N, M) uint8
    dists = pq.dtable(query).adist(X_code)     # (N,) float32 asymmetric distances

and switches to this module by changing the import::

    from benchpq.algorithms.compat import nanopq_api as nanopq

Same classes (``PQ``, ``OPQ``, ``DistanceTable``), functions
(``nanopq_to_faiss``, ``faiss_to_nanopq``), argument names, defaults,
attributes (``M``, ``Ks``, ``metric``, ``verbose``, ``code_dtype``,
``codewords`` (M, Ks, Ds) float32, ``Ds``, ``OPQ.R`` (D, D) float32,
``OPQ.pq``), return shapes and dtypes, ``==``, pickling and deepcopy as
nanopq 0.2. Encoding, decoding and ``adist`` run in C++ (OpenMP); training
runs nanopq's algorithm with our C++ k-means:

* ``PQ.fit(vecs, iter=20, seed=123, minit="points")``: ``np.random.seed(seed)``
  (as nanopq, which seeds numpy's global generator), then for each sub-space
  the initial codewords drawn from that generator exactly as nanopq's
  scipy ``kmeans2`` draws them (``points``: Ks distinct training sub-vectors;
  ``random``: a Gaussian with the data's mean and covariance), then ``iter``
  Lloyd iterations in C++ on all N training vectors. ``++`` seeds by our C++
  k-means++ (seeded by ``seed``). ``matrix`` raises ValueError, as nanopq.
* ``OPQ.fit(vecs, parametric_init=False, pq_iter=20, rotation_iter=10,
  seed=123, minit="points")``: nanopq's loop: R from the identity (or
  eigenvalue allocation), then ``rotation_iter`` times a fresh PQ trained
  on ``vecs @ R`` (1 k-means iteration, ``pq_iter`` on the last pass) and
  the Procrustes update of R; encoding and decoding run in C++, the
  rotations and the cross product in BLAS (numpy), as nanopq.

Misuse raises what nanopq raises: its ``assert``s become :class:`NanopqAssertionError`
(an ``AssertionError`` and a :class:`benchpq.checks.InputError`, with the
message nanopq gives or a clearer one); NaN or Inf in training data raise
InputError (a ValueError, as scipy's), out-of-range codes :class:`CodeRangeError`
(an IndexError, as numpy's indexing in nanopq).

Differences, each for a reason:

* k-means re-seeds an empty cluster by splitting the largest one (as faiss)
  where scipy keeps the empty centroid and warns, and stops early once no
  assignment changes: same or lower distortion.
* ``Ks`` above 65536 (nanopq's uint32 codes): construction works and
  ``code_dtype`` is uint32 as nanopq, but ``fit`` / ``encode`` raise
  NanopqAssertionError (our kernels take uint8 / uint16 codes);
  ``decode`` and ``adist`` accept uint32 codes (numpy).
* ``verbose`` prints one line per phase (the C++ loops handle all sub-spaces
  at once) instead of one per sub-space.
* ``nanopq_to_faiss`` also converts a fitted OPQ (to an ``IndexPreTransform``),
  and wants Ks a power of two (faiss stores log2(Ks) bits per sub-code;
  nanopq gives faiss 8 bits for any Ks <= 256, leaving codewords unset);
  ``faiss_to_nanopq`` keeps faiss's metric and unpacks codes of any nbits.
* ``dtable`` of an ``l2`` quantizer is computed exactly (nanopq takes a
  square root and squares it back), so values may differ from nanopq's in the
  last float32 bit. A ``dot`` table is nanopq's own product, ``q_m @ C_m.T``
  through numpy, bit-equal to nanopq's. ``adist`` sums each code's M lookups in
  numpy's pairwise order, so its distances are bit-equal to nanopq's
  ``np.sum(dtable[range(M), codes], axis=1)`` for every M.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from benchpq import native
from benchpq.checks import InputError, as_matrix

from ..own.pq import PQ as OwnPQ
from ..own.pq import PQ_CALLS
from ..primitives.codes import code_dtype, unpack_codes
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import HOT_START
from ..primitives.rotations import procrustes

__all__ = ["PQ", "OPQ", "DistanceTable", "nanopq_to_faiss", "faiss_to_nanopq",
           "NanopqAssertionError", "CodeRangeError"]

METRICS = ("l2", "dot")
MINITS = ("random", "++", "points", "matrix")
MAX_KS = 2 ** 16  # our C++ codes are uint8 / uint16


class NanopqAssertionError(AssertionError, InputError):
    """Misuse that nanopq rejects with an ``assert``: an AssertionError, and our InputError."""


class CodeRangeError(IndexError, InputError):
    """A code outside [0, Ks): an IndexError, as nanopq's numpy indexing raises."""


def _require(condition, message: str) -> None:
    if not condition:
        raise NanopqAssertionError(message)


#: cpp/adist.h: distances of (N, M) codes to a query through its (M, Ks) table
ADIST_CALLS = NativeTable(None, {
    f"pq_adist_{suffix}": Call((A("dtable", np.float32, ("M", "Ks")), S("M"), S("Ks"),
                               A("codes", dtype, ("N", "M")), S("N"),
                               A("distances", np.float32, ("N",), out=True)))
    for suffix, dtype in (("u8", np.uint8), ("u16", np.uint16))
}, warm=dict(M=1, Ks=2, N=2))


# -- k-means initialisation as scipy's kmeans2 draws it ----------------------------
def _initial_codewords(vecs_sub: np.ndarray, Ks: int, minit: str) -> np.ndarray:
    """(Ks, Ds) float32 initial centroids from numpy's global generator, as scipy's kmeans2.

    ``points``: Ks distinct rows (``choice(N, Ks, replace=False)``); ``random``:
    Ks Gaussian draws with the rows' mean and covariance.
    """
    if minit == "points":
        return vecs_sub[np.random.choice(vecs_sub.shape[0], size=Ks, replace=False)]
    data = vecs_sub.astype(np.float64)
    mu = data.mean(axis=0)
    if data.shape[1] > data.shape[0]:  # rank-deficient covariance, as scipy
        _, s, vh = np.linalg.svd(data - mu, full_matrices=False)
        x = np.random.standard_normal(size=(Ks, s.size)) @ (
            s[:, None] * vh / np.sqrt(data.shape[0] - 1.0))
    else:
        cov = np.atleast_2d(np.cov(data.T))
        x = np.random.standard_normal(size=(Ks, mu.size)) @ np.linalg.cholesky(cov).T
    return (x + mu).astype(np.float32)


def _train_codewords(vecs: np.ndarray, M: int, Ks: int, iter: int, seed: int,
                     minit: str) -> np.ndarray:
    """(M, Ks, Ds) float32 codebooks: per sub-space k-means (our C++ Lloyd) on all of vecs."""
    n, dim = vecs.shape
    ds = dim // M
    if minit == "++":
        pq = OwnPQ(M=M, Ks=Ks, iter=iter, seed=seed % 2 ** 64, max_points_per_centroid=None,
                   init="k-means++")
        return pq.fit(vecs).codewords
    init = np.stack([_initial_codewords(vecs[:, m * ds:(m + 1) * ds], Ks, minit)
                     for m in range(M)])
    cpp = native.load().ProductQuantizer(dim, M, Ks)
    dims = dict(d=dim, M=M, Ks=Ks, ds=ds)
    PQ_CALLS.call(cpp, "set_codewords", np.ascontiguousarray(init, np.float32), **dims)
    objective = np.zeros((M, iter), np.float64)
    PQ_CALLS.call(cpp, "train", vecs, n, iter, HOT_START, seed % 2 ** 64, 0, objective, **dims)
    codewords = np.empty((M, Ks, ds), np.float32)
    PQ_CALLS.call(cpp, "get_codewords", codewords, **dims)
    return codewords


class PQ:
    """Product quantization with nanopq's interface (our C++ encoder, decoder and adist).

    Args:
        M: number of sub-spaces (must divide the dimension D).
        Ks: codewords per sub-space (typically 256: uint8 codes).
        metric: ``"l2"`` (squared Euclidean) or ``"dot"`` (inner product) in
            ``dtable``; k-means and encoding are Euclidean either way.
        verbose: print progress.

    Attributes: ``M``, ``Ks``, ``metric``, ``verbose``, ``code_dtype``
    (np.uint8 / uint16 / uint32), ``codewords`` (M, Ks, Ds) float32 and ``Ds``
    (D / M) after fit.
    """

    def __init__(self, M, Ks=256, metric: Literal["l2", "dot"] = "l2", verbose=True):
        _require(0 < Ks <= 2 ** 32, f"Ks must be in (0, 2**32], got {Ks}")
        _require(metric in METRICS, f"metric must be 'l2' or 'dot', got {metric!r}")
        self.M, self.Ks, self.metric, self.verbose = M, Ks, metric, verbose
        self.code_dtype = code_dtype(Ks).type
        self.codewords: np.ndarray | None = None
        self.Ds: int | None = None
        self._own = None  # our PQ holding a copy of codewords, rebuilt when they change
        if verbose:
            print(f"M: {M}, Ks: {Ks}, metric : {metric}, code_dtype: {self.code_dtype}")

    def __eq__(self, other):
        if not isinstance(other, PQ):
            return False
        return (self.M, self.Ks, self.metric, self.verbose, self.code_dtype, self.Ds) == \
            (other.M, other.Ks, other.metric, other.verbose, other.code_dtype, other.Ds) and \
            np.array_equal(self.codewords, other.codewords)

    __hash__ = None  # mutable and compared by value, as nanopq's

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_own"] = None  # rebuilt from codewords on first use
        return state

    def __setstate__(self, state):
        state.setdefault("_own", None)
        self.__dict__.update(state)

    # -- training -------------------------------------------------------------------
    def fit(self, vecs, iter=20, seed=123,
            minit: Literal["random", "++", "points", "matrix"] = "points"):
        """Learn the codebooks: k-means on each sub-space of vecs (N, D) float32, N > Ks.

        Returns self.
        """
        _check_vectors(vecs, ndim=2)
        N, D = vecs.shape
        _require(self.Ks < N, "the number of training vector should be more than Ks")
        _require(D % self.M == 0, "input dimension must be dividable by M")
        _require(minit in MINITS, f"minit must be one of {list(MINITS)}, got {minit!r}")
        if minit == "matrix":  # scipy's kmeans2 wants an initial-centroid array then
            raise InputError("k array doesn't match data rank (minit='matrix' needs initial "
                             "centroids; nanopq passes the integer Ks)")
        _require(self.Ks <= MAX_KS, f"Ks={self.Ks}: at most {MAX_KS} codewords per sub-space "
                                    "(uint8 / uint16 codes) can be trained here")
        _require(self.Ks >= 2, f"Ks={self.Ks}: at least 2 codewords per sub-space")
        iter = int(iter)
        if iter < 1:
            raise InputError(f"Invalid iter ({iter}), must be a positive integer.")
        vecs = as_matrix(vecs, "vecs")  # NaN / Inf -> InputError, as scipy's ValueError
        self.Ds = int(D / self.M)
        np.random.seed(seed)
        if self.verbose:
            print(f"iter: {iter}, seed: {seed}")
            print(f"Training the subspaces: 0..{self.M - 1} / {self.M}")
        self.codewords = _train_codewords(vecs, self.M, self.Ks, iter, int(seed), minit)
        self._own = None
        return self

    def _quantizer(self, what: str) -> OwnPQ:
        """Our C++-backed PQ with the current codewords (rebuilt if they were changed)."""
        _require(self.Ds is not None, f"Ds must be set by fit() before {what}()")
        _require(isinstance(self.Ds, int), "Ds must be an integer")
        _require(self.codewords is not None, f"codewords must be set by fit() before {what}()")
        own = self._own
        if own is None or not np.array_equal(own.codewords, self.codewords):
            _require(self.Ks <= MAX_KS, f"Ks={self.Ks}: {what}() handles at most {MAX_KS} "
                                        "codewords per sub-space (uint8 / uint16 codes)")
            _require(np.shape(self.codewords) == (self.M, self.Ks, self.Ds),
                     f"codewords must have shape (M, Ks, Ds) = {(self.M, self.Ks, self.Ds)}, "
                     f"got {np.shape(self.codewords)}")
            own = OwnPQ(M=self.M, Ks=max(self.Ks, 2))
            own.dim = self.M * self.Ds
            own.codewords = np.array(self.codewords, dtype=np.float32, order="C")  # a copy
            self._own = own
        return own

    # -- encoding -------------------------------------------------------------------
    def encode(self, vecs):
        """(N, D) float32 vectors -> (N, M) PQ codes of ``code_dtype``."""
        _check_vectors(vecs, ndim=2)
        N, D = vecs.shape
        _require(self.Ds is not None, "Ds must be set by fit() before encode()")
        _require(D == self.Ds * self.M, "input dimension must be Ds * M")
        own = self._quantizer("encode")
        if self.verbose:
            print(f"Encoding the subspaces: 0..{self.M - 1} / {self.M}")
        return own.encode(vecs)

    def decode(self, codes):
        """(N, M) codes of ``code_dtype`` -> (N, D) float32 reconstructions."""
        _require(isinstance(codes, np.ndarray), "codes must be a numpy array")
        _require(codes.ndim == 2, "codes must be a 2-D array (N, M)")
        _require(codes.shape[1] == self.M, f"codes must have M={self.M} columns")
        _require(codes.dtype == self.code_dtype,
                 f"codes dtype must be {np.dtype(self.code_dtype)}, got {codes.dtype}")
        _require(self.Ds is not None, "Ds must be set by fit() before decode()")
        _require(self.codewords is not None, "codewords must be set by fit() before decode()")
        if codes.shape[0] == 0:
            return np.empty((0, self.Ds * self.M), np.float32)
        _check_code_range(codes, self.Ks)
        if self.Ks > MAX_KS:  # uint32 codes: numpy
            return np.concatenate([np.asarray(self.codewords[m], np.float32)[codes[:, m]]
                                   for m in range(self.M)], axis=1)
        return self._quantizer("decode").decode(np.ascontiguousarray(codes))

    # -- search ---------------------------------------------------------------------
    def dtable(self, query):
        """DistanceTable of one query (D,) float32: dtable (M, Ks) float32.

        l2: squared distance of each query sub-vector to each codeword; dot:
        their inner product.
        """
        _check_vectors(query, ndim=1, what="input must be a single vector")
        (D,) = query.shape
        _require(self.Ds is not None, "Ds must be set by fit() before dtable()")
        _require(D == self.Ds * self.M, "input dimension must be Ds * M")
        _require(self.codewords is not None, "codewords must be set by fit() before dtable()")
        sub = query.reshape(self.M, 1, self.Ds)
        if self.metric == "l2":
            diff = np.asarray(self.codewords, np.float32) - sub
            table = np.einsum("mkd,mkd->mk", diff, diff)
        else:  # nanopq's dist_ip, q @ x.T, one sub-space at a time: the same BLAS calls
            codewords = np.asarray(self.codewords, np.float32)
            table = np.stack([query[m * self.Ds:(m + 1) * self.Ds] @ codewords[m].T
                              for m in range(self.M)])
        return DistanceTable(np.ascontiguousarray(table, np.float32), metric=self.metric)


class DistanceTable:
    """Distances from one query to every codeword; ``adist`` gives them to PQ codes.

    Args:
        dtable: (M, Ks) float32, from :meth:`PQ.dtable` or :meth:`OPQ.dtable`.
        metric: ``"l2"`` or ``"dot"``.
    """

    def __init__(self, dtable, metric: Literal["l2", "dot"] = "l2"):
        _require(isinstance(dtable, np.ndarray) and dtable.ndim == 2,
                 "dtable must be a 2-D array (M, Ks)")
        _require(dtable.dtype == np.float32, f"dtable dtype must be float32, got {dtable.dtype}")
        _require(metric in METRICS, f"metric must be 'l2' or 'dot', got {metric!r}")
        self.dtable = dtable
        self.metric = metric

    def adist(self, codes):
        """(N, M) integer codes -> (N,) float32 asymmetric distances (unsorted), in C++."""
        _require(isinstance(codes, np.ndarray), "codes must be a numpy array")
        _require(codes.ndim == 2, "codes must be a 2-D array (N, M)")
        N, M = codes.shape
        _require(M == self.dtable.shape[0],
                 f"codes have {M} sub-codes, the distance table {self.dtable.shape[0]}")
        _require(codes.dtype.kind in "ui", f"codes must be integers, got dtype {codes.dtype}")
        Ks = self.dtable.shape[1]
        if N == 0:
            return np.zeros(0, np.float32)
        if codes.dtype not in (np.uint8, np.uint16):
            _check_code_range(codes, Ks)
            if Ks > MAX_KS:
                return np.sum(self.dtable[range(M), codes], axis=1)
            codes = codes.astype(code_dtype(Ks).type)
        elif Ks < np.iinfo(codes.dtype).max + 1:
            _check_code_range(codes, Ks)
        suffix = "u8" if codes.dtype == np.uint8 else "u16"
        codes = np.ascontiguousarray(codes)
        table = np.ascontiguousarray(self.dtable)
        out = np.empty(N, np.float32)
        ADIST_CALLS.call(native.load(), "pq_adist_" + suffix, table, M, Ks, codes, N, out)
        return out


class OPQ:
    """Optimized product quantization with nanopq's interface (nanopq's loop, our C++ kernels).

    Args: as :class:`PQ`. Attributes: ``R`` (D, D) float32 rotation after
    fit, ``pq`` the :class:`PQ` of the rotated vectors, and ``M``, ``Ks``,
    ``metric``, ``verbose``, ``code_dtype``, ``codewords``, ``Ds`` from it.
    """

    def __init__(self, M, Ks=256, metric: Literal["l2", "dot"] = "l2", verbose=True):
        self.pq = PQ(M, Ks, metric=metric, verbose=verbose)
        self.R: np.ndarray | None = None

    def __eq__(self, other):
        if not isinstance(other, OPQ):
            return False
        return self.pq == other.pq and np.array_equal(self.R, other.R)

    __hash__ = None

    M = property(lambda self: self.pq.M, doc="int: number of sub-spaces")
    Ks = property(lambda self: self.pq.Ks, doc="int: codewords per sub-space")
    metric = property(lambda self: self.pq.metric, doc="'l2' or 'dot'")
    code_dtype = property(lambda self: self.pq.code_dtype, doc="np.uint8 / uint16 / uint32")
    codewords = property(lambda self: self.pq.codewords, doc="(M, Ks, Ds) float32")
    Ds = property(lambda self: self.pq.Ds, doc="int: D / M")

    @property
    def verbose(self):
        """bool: print progress."""
        return self.pq.verbose

    @verbose.setter
    def verbose(self, v):
        self.pq.verbose = v

    def eigenvalue_allocation(self, vecs):
        """(D, D) float32 parametric OPQ rotation of vecs (N, D) (Ge et al. 2014, section 4)."""
        _require(vecs.shape[1] % self.M == 0, "input dimension must be dividable by M")
        from ..primitives.rotations import eigenvalue_allocation
        return eigenvalue_allocation(as_matrix(vecs, "vecs"), self.M)

    def fit(self, vecs, parametric_init=False, pq_iter=20, rotation_iter=10, seed=123,
            minit: Literal["random", "++", "points", "matrix"] = "points"):
        """Alternate PQ training on vecs @ R and the Procrustes update of R; returns self.

        vecs: (N, D) float32, N > Ks. ``rotation_iter`` passes; all but the last
        train PQ with one k-means iteration, the last with ``pq_iter`` and keep it.
        """
        _check_vectors(vecs, ndim=2)
        _, D = vecs.shape
        rotation_iter = int(rotation_iter)
        _require(rotation_iter >= 1, f"rotation_iter must be >= 1, got {rotation_iter}")
        vecs = as_matrix(vecs, "vecs")
        self.R = self.eigenvalue_allocation(vecs) if parametric_init else \
            np.eye(D, dtype=np.float32)
        for i in range(rotation_iter):
            if self.verbose:
                print(f"OPQ rotation training: {i} / {rotation_iter}")
            X = vecs @ self.R
            pq_tmp = PQ(M=self.M, Ks=self.Ks, metric=self.metric, verbose=self.verbose)
            last = i == rotation_iter - 1
            pq_tmp.fit(X, iter=pq_iter if last else 1, seed=seed, minit=minit)
            X_ = pq_tmp.decode(pq_tmp.encode(X))
            if self.verbose:
                diff = X - X_
                print("==== Reconstruction error:", np.sqrt(np.einsum("ij,ij->", diff, diff,
                                                                      dtype=np.float64)), "====")
            if last:
                self.pq = pq_tmp
                break
            self.R = procrustes(vecs.T @ X_)
        return self

    def rotate(self, vecs):
        """vecs (D,) or (N, D) float32 -> vecs @ R, same shape, float32."""
        _check_vectors(vecs, ndim=(1, 2), what="input must be a vector (D,) or vectors (N, D)")
        _require(self.R is not None, "R must be set by fit() before rotate()")
        R = np.ascontiguousarray(self.R, np.float32)
        _require(vecs.shape[-1] == R.shape[0],
                 f"input dimension must be {R.shape[0]}, got {vecs.shape[-1]}")
        if vecs.ndim == 1:
            return (vecs.reshape(1, -1) @ R).reshape(-1)
        return vecs @ R

    def encode(self, vecs):
        """Rotate by R, then :meth:`PQ.encode`: (N, D) float32 -> (N, M) codes."""
        _require(self.R is not None, "R must be set by fit() before encode()")
        return self.pq.encode(self.rotate(vecs))

    def decode(self, codes):
        """:meth:`PQ.decode`, then rotate back by R^T: (N, M) codes -> (N, D) float32."""
        _require(self.R is not None, "R must be set by fit() before decode()")
        return self.pq.decode(codes) @ np.asarray(self.R, np.float32).T

    def dtable(self, query):
        """:meth:`PQ.dtable` of the rotated query (D,) float32."""
        _require(self.R is not None, "R must be set by fit() before dtable()")
        return self.pq.dtable(self.rotate(query))


# -- faiss conversion ----------------------------------------------------------------
def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError("nanopq_to_faiss / faiss_to_nanopq need the faiss module "
                          "(pip install faiss-cpu)") from None
    return faiss


def _faiss_metric(faiss, metric: str):
    return {"l2": faiss.METRIC_L2, "dot": faiss.METRIC_INNER_PRODUCT}[metric]


def _faiss_pq(faiss, pq: PQ):
    nbits = int(pq.Ks).bit_length() - 1
    _require(pq.Ks == 1 << nbits and nbits <= 16,
             f"Error. faiss stores log2(Ks) bits per sub-code: Ks must be a power of two "
             f"<= 65536, got Ks={pq.Ks}")
    index = faiss.IndexPQ(pq.Ds * pq.M, pq.M, nbits, _faiss_metric(faiss, pq.metric))
    faiss.copy_array_to_vector(np.ascontiguousarray(pq.codewords, np.float32).ravel(),
                               index.pq.centroids)
    index.is_trained = True
    return index


def nanopq_to_faiss(pq_nanopq):
    """A fitted :class:`PQ` -> ``faiss.IndexPQ``; a fitted :class:`OPQ` ->
    ``faiss.IndexPreTransform`` (rotation, then IndexPQ). Same codewords, no codes."""
    _require(isinstance(pq_nanopq, (PQ, OPQ)), "Error. pq_nanopq must be nanopq.pq")
    _require(pq_nanopq.codewords is not None,
             "Error. pq_nanopq.codewords must have been set beforehand")
    faiss = _faiss()
    if isinstance(pq_nanopq, PQ):
        return _faiss_pq(faiss, pq_nanopq)
    _require(pq_nanopq.R is not None, "Error. pq_nanopq.R must have been set beforehand")
    D = pq_nanopq.R.shape[0]
    transform = faiss.LinearTransform(D, D, False)
    # faiss applies y = A x to column vectors: A = R^T for our row vectors x R
    faiss.copy_array_to_vector(np.ascontiguousarray(np.asarray(pq_nanopq.R, np.float32).T)
                               .ravel(), transform.A)
    transform.is_trained = True
    transform.is_orthonormal = True
    return faiss.IndexPreTransform(transform, _faiss_pq(faiss, pq_nanopq.pq))


def faiss_to_nanopq(pq_faiss):
    """``faiss.IndexPQ`` -> (:class:`PQ`, codes (N, M)); ``faiss.IndexPreTransform`` of a
    linear transform and an IndexPQ -> (:class:`OPQ`, codes). Codes are the index's
    stored codes as ``code_dtype`` (empty if none were added)."""
    faiss = _faiss()
    _require(isinstance(pq_faiss, (faiss.IndexPQ, faiss.IndexPreTransform)),
             "Error. pq_faiss must be IndexPQ or IndexPreTransform")
    _require(pq_faiss.is_trained, "Error. pq_faiss must have been trained")
    R = None
    if isinstance(pq_faiss, faiss.IndexPreTransform):
        _require(pq_faiss.chain.size() == 1, "Error. pq_faiss must hold one transform")
        matrix = faiss.downcast_VectorTransform(pq_faiss.chain.at(0))
        _require(isinstance(matrix, faiss.LinearTransform),
                 "Error. the transform of pq_faiss must be linear (OPQMatrix)")
        R = faiss.vector_to_array(matrix.A).reshape(matrix.d_out, matrix.d_in).T
        R = np.ascontiguousarray(R, np.float32)
        pq_faiss = faiss.downcast_index(pq_faiss.index)
        _require(isinstance(pq_faiss, faiss.IndexPQ),
                 "Error. pq_faiss must wrap an IndexPQ")
    fpq = pq_faiss.pq
    M, nbits = int(fpq.M), int(fpq.nbits)
    _require(nbits <= 16, f"Error. at most 16 bits per sub-code, got nbits={nbits}")
    metric = "dot" if pq_faiss.metric_type == faiss.METRIC_INNER_PRODUCT else "l2"
    pq = PQ(M=M, Ks=1 << nbits, metric=metric)
    pq.Ds = int(fpq.d // M)
    pq.codewords = faiss.vector_to_array(fpq.centroids).reshape(M, pq.Ks, pq.Ds)
    if pq_faiss.ntotal > 0:
        packed = faiss.vector_to_array(pq_faiss.codes).reshape(pq_faiss.ntotal, -1)
        codes = unpack_codes(packed, M, nbits).astype(pq.code_dtype)
    else:
        codes = np.empty((0, M), pq.code_dtype)
    if R is None:
        return pq, codes
    opq = OPQ(M=M, Ks=pq.Ks, metric=metric, verbose=pq.verbose)
    opq.pq, opq.R = pq, R
    return opq, codes


# -- checks --------------------------------------------------------------------------
def _check_vectors(vecs, ndim, what: str | None = None) -> None:
    """nanopq's asserts on input vectors: a float32 numpy array of the given rank(s)."""
    _require(isinstance(vecs, np.ndarray), f"expected a numpy array, got {type(vecs).__name__}")
    _require(vecs.dtype == np.float32, f"vectors must be float32, got dtype {vecs.dtype}")
    ranks = ndim if isinstance(ndim, tuple) else (ndim,)
    _require(vecs.ndim in ranks, what or f"expected a {ndim}-D array, got shape {vecs.shape}")


def _check_code_range(codes: np.ndarray, Ks: int) -> None:
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= Ks:
        raise CodeRangeError(f"codes must be in [0, {Ks}), got values in [{low}, {high}]")
