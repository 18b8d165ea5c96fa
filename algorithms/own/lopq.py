"""Locally optimized product quantization on an inverted multi-index, C++ core: plugin ``lopq``.

Kalantidis & Avrithis, "Locally Optimized Product Quantization for Approximate
Nearest Neighbor Search", CVPR 2014, in its multi-index form (as the authors'
reference code, yahoo/lopq), searched with the multi-sequence algorithm of
Babenko & Lempitsky, "The inverted multi-index", CVPR 2012.

Training (``fit``), for x (n, D) float32 cut into two halves of h = D/2:

1. optional PCA (``pca=True``): x -> (x - mean) P, P (D, D') the top D'
   principal directions (``pca_dim``, default all), dealt to the two halves by
   eigenvalue allocation so that their variances balance (data product in C++);
2. coarse product quantizer: k-means of each half into V centroids (C++);
3. residuals to the cell's coarse centroids; for every coarse centroid of each
   half, the mean of its residuals and a local rotation, the eigenvalue
   allocation of their covariance into M/2 sub-spaces
   (:func:`benchpq.algorithms.primitives.rotations.eigenvalue_allocation`, parametric OPQ), the
   identity when the centroid has fewer than h residuals (as the reference);
4. M fine sub-quantizers of Ks codewords (M/2 per half), k-means on the local
   frames p_s = (x_s - C_s - mu_s) R_s of the training vectors (C++).

The local mean is subtracted before rotating, as in the reference's
``project``; the fine codebooks are shared by all cells, the rotations are
local. D x D eigen-decompositions run in numpy, every loop over the data in
C++ (``cpp/lopq.cpp``, ``cpp/multisequence.cpp``).

Codes (``encode``): (n, 2 + M), columns [c0, c1, f_1 .. f_M] (coarse ids of
the two halves, then fine codes), uint8 when V <= 256 and Ks <= 256, else
uint16. ``decode`` reconstructs x_s = C_s + mu_s + q_s R_s^T (then undoes the
PCA), so ``mse`` is measured like for every quantizer.

Bits: ``code_bits`` counts the fine code, M * ceil(log2 Ks), as faiss_ivfpq's
does: the cell (c0, c1) is implied by the inverted list a code is stored in.
``extra_metrics`` also gives ``cell_bits`` = 2 * ceil(log2 V) and
``total_bits`` (fine + coarse), the size of a code outside the index.

Search: ``add`` builds inverted lists over the V * V cells (cell c0 * V + c1).
For a query, the multi-sequence algorithm visits cells in increasing
d(q_0, C_0[c0]) + d(q_1, C_1[c1]) until ``quota`` candidates are gathered
(whole cells: at least quota unless the index is exhausted; exactly quota,
the last cell cut, with ``exact_quota`` as faiss's max_codes) or ``max_cells``
cells (empty ones included, as faiss's nprobe) were traversed; candidates are
ranked by the asymmetric distance of the query's residual in each cell's local
frame (one lookup table per visited coarse centroid and half), which equals
||q - x_hat||^2 exactly since the rotations are orthogonal (with ``pca_dim`` <
D: the distance in the PCA space).

By inner product (a dataset of metric ``ip``, :meth:`set_metric`): cells are visited in
decreasing <q_0, C_0[c0]> + <q_1, C_1[c1]> and candidates ranked by the inner product
with their reconstruction, <q_s, C_s + mu_s> + <q_s R_s, q_hat_s> summed over the halves
(one table per visited centroid and half, as for L2); :meth:`search` returns <q, x_hat>,
largest first.

``extra_metrics`` reports the mean number of candidates scanned (``mean_candidates``)
and cells traversed per query of the last search. ``set_search_params(quota=...,
max_cells=...)`` changes them without retraining.

Every input is checked here, before any C++ call; bad input raises
:class:`benchpq.checks.InputError`.
"""
from __future__ import annotations

import math

import numpy as np

from benchpq import native
from benchpq.api import UNSET, Quantizer, Searcher, equal_bounds
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_k,
    check_positive_int,
    check_subspaces,
)
from benchpq.measure.training_log import log_iterations
from benchpq.metric_table import declare
from benchpq.registry import register

from ..primitives.checks import check_choice, check_flag, plugin_seed, subsample_arg
from ..primitives.codes import code_dtype
from ..primitives.inverted_lists import (
    INDEX_CHUNK,
    build_inverted_lists,
    lists_bytes,
    search_stats,
)
from ..primitives.metric_specs import (
    CELL_BITS,
    FINE_BITS,
    MAX_CANDIDATES,
    MEAN_CANDIDATES,
    MEAN_CELLS,
    TOTAL_BITS,
)
from ..primitives.mixins import CheckedCodes, NativeProductCodes
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import LOPQ_INITS as INITS
from ..primitives.rotations import eigenvalue_allocation, rotate

MAX_V = 4096          # cpp/lopq.h: V * V cells, offsets held densely
ROTATIONS = ("eigen", "identity")
CHUNK_ROWS = 65536    # rows PCA-projected at once


def _lopq_calls() -> dict:
    f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64
    y, coarse = A("x", f32, ("n", "D")), A("coarse", i32, ("n", 2))
    means, rotations = ("local_means", f32, (2, "V", "h")), \
        ("local_rotations", f32, (2, "V", "h", "h"))
    train = (S("n"), S("iter"), S("init"), S("seed"), S("mppc"))
    calls = {
        "train_coarse": Call((y, *train, A("objective", f64, (2, "iter"), out=True))),
        "assign": Call((y, S("n"), A("coarse", i32, ("n", 2), out=True))),
        "residuals": Call((y, S("n"), coarse, A("out", f32, ("n", "D"), out=True))),
        "get_local": Call((A(*means, out=True), A(*rotations, out=True)), quick=True),
        "set_local": Call((A(*means), A(*rotations)), quick=True),
        "project": Call((y, S("n"), coarse, A("out", f32, ("n", "D"), out=True))),
        "train_fine": Call((y, *train, A("objective", f64, ("M", "iter"), out=True))),
        "get_codewords": Call((A("codewords", f32, ("M", "Ks", "ds"), out=True),), quick=True),
        "set_codewords": Call((A("codewords", f32, ("M", "Ks", "ds")),), quick=True),
        "get_coarse": Call((A("coarse_centroids", f32, (2, "V", "h"), out=True),), quick=True),
        "set_coarse": Call((A("coarse_centroids", f32, (2, "V", "h")),), quick=True),
    }
    for suffix, dtype in (("u8", np.uint8), ("u16", np.uint16)):
        codes = A("codes", dtype, ("n", "w"))  # w = 2 + M: [c0, c1, f_1 .. f_M]
        calls.update({
            "encode_" + suffix: Call((y, S("n"), A("codes", dtype, ("n", "w"), out=True))),
            "decode_" + suffix: Call((codes, S("n"), A("x", f32, ("n", "D"), out=True))),
            "fill_index_" + suffix: Call((A("codes", dtype, ("m", "w")), S("m"), S("first"))),
        })
    calls["begin_index"] = Call((A("counts", i64, ("ncells",)),))
    calls["end_index"] = Call(())
    calls["get_offsets"] = Call((A("offsets", i64, ("cells",), out=True),), quick=True)
    calls["search"] = Call((A("query", f32, ("nq", "D")), S("nq"), S("k"), S("quota"),
                            S("max_cells"), S("exact_quota"), S("inner_product"),
                            A("distances", f32, ("nq", "k"), out=True),
                            A("ids", i64, ("nq", "k"), out=True),
                            A("candidates", i64, ("nq",), out=True),
                            A("cells", i64, ("nq",), out=True)))
    return calls


#: the C++ LOPQ (cpp/lopq.h): D (after PCA), V coarse centroids per half, M, Ks; h = D / 2,
#: ds = D / M, cells = V * V + 1 offsets of the inverted multi-index (ncells = V * V)
LOPQ_CALLS = NativeTable("LOPQ", _lopq_calls(), constructor=("D", "V", "M", "Ks"),
                         warm=dict(D=4, V=2, M=2, Ks=2, h=2, ds=2, n=3, w=4, cells=5, ncells=4,
                                   iter=1, init=INITS["random"], seed=0, mppc=0, nq=3, k=1,
                                   quota=1, max_cells=0, exact_quota=False, inner_product=False,
                                   first=0, m=1))

#: cpp/lopq.h multisequence_order: the cells of two halves in order of summed distance
MULTISEQUENCE_CALLS = NativeTable(None, {
    "multisequence_order": Call((A("d1", np.float32, ("n1",)), S("n1"),
                                 A("d2", np.float32, ("n2",)), S("n2"), S("count"),
                                 A("i", np.int32, ("count",), out=True),
                                 A("j", np.int32, ("count",), out=True),
                                 A("dist", np.float32, ("count",), out=True))),
}, warm=dict(n1=2, n2=2, count=4))


def multisequence_order(d1, d2, count: int | None = None):
    """The first ``count`` cells (default all) of the multi-sequence traversal, in C++.

    Args:
        d1, d2: (n1,), (n2,) distances of a query's halves to the coarse centroids.

    Returns:
        i (count,) int32, j (count,) int32, dist (count,) float32: cells (i, j)
        in non-decreasing d1[i] + d2[j] (Babenko & Lempitsky 2012, section 3.2).
    """
    arrays = []
    for d, name in ((d1, "d1"), (d2, "d2")):
        d = np.asarray(d)
        if d.ndim != 1 or d.size == 0:
            raise InputError(f"{name}: expected a non-empty 1-D array, got shape {d.shape}")
        arrays.append(as_matrix(d[None, :], name).ravel())
    d1, d2 = arrays
    total = d1.size * d2.size
    count = total if count is None else check_positive_int(count, "count", 1, total)
    i, j = np.empty(count, np.int32), np.empty(count, np.int32)
    dist = np.empty(count, np.float32)
    written = MULTISEQUENCE_CALLS.call(native.load(), "multisequence_order", d1, d1.size, d2,
                                       d2.size, count, i, j, dist)
    return i[:written], j[:written], dist[:written]


def local_frames(residuals: np.ndarray, coarse: np.ndarray, V: int, M: int,
                 rotation: str = "eigen") -> tuple[np.ndarray, np.ndarray]:
    """Local means (2, V, h) and rotations (2, V, h, h) float32 of the residuals of each centroid.

    Args:
        residuals: (n, D) float32, x minus its coarse centroids.
        coarse: (n, 2) int32 coarse ids of the halves.
        V: coarse centroids per half; M: fine sub-quantizers (M/2 per half).
        rotation: ``eigen`` (eigenvalue allocation into M/2 sub-spaces) or
            ``identity`` (no local rotation, an ablation).

    A centroid with no residual gets a zero mean; one with fewer than h
    residuals the identity rotation (its covariance is rank-deficient; as the
    reference code). Rotations follow :mod:`benchpq.algorithms.primitives.rotations`: p = r R.
    """
    h = residuals.shape[1] // 2
    means = np.zeros((2, V, h), np.float32)
    rotations = np.broadcast_to(np.eye(h, dtype=np.float32), (2, V, h, h)).copy()
    for s in range(2):
        labels = coarse[:, s]
        order = np.argsort(labels, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=V))])
        for v in range(V):
            rows = order[bounds[v]:bounds[v + 1]]
            if rows.size == 0:
                continue
            r = residuals[rows, s * h:(s + 1) * h]
            means[s, v] = r.mean(axis=0, dtype=np.float64)
            if rotation == "eigen" and rows.size >= max(h, 2):
                rotations[s, v] = eigenvalue_allocation(r, M // 2)
    return means, rotations


#: the largest quota the C++ search takes (an int64 count of candidates)
MAX_QUOTA = 2 ** 62


@register("lopq")
class LOPQ(NativeProductCodes, CheckedCodes, Quantizer, Searcher):
    """LOPQ (Kalantidis & Avrithis 2014) on an inverted multi-index (Babenko & Lempitsky 2012).

    Args:
        V: coarse centroids per half, 1 .. 4096 (V * V cells).
        M: fine sub-quantizers, even (M/2 per half); must divide the
            dimension (after PCA).
        Ks: codewords per fine sub-quantizer, 2 .. 65536.
        quota: candidates gathered per query before ranking (whole cells), >= 1.
        max_cells: also stop after this many cells (empty ones included),
            1 .. V * V; None: no cell limit.
        exact_quota: scan exactly ``quota`` codes, cutting the last cell (as
            faiss's max_codes); False (the reference's rule): whole cells.
        coarse_iter, iter: k-means iterations of the coarse and fine quantizers.
        seed: seeds every k-means (None: 0).
        max_points_per_centroid: each k-means trains on at most this many
            sampled points per centroid (None: all points).
        init: k-means initialisation of the coarse and fine quantizers:
            ``greedy-k-means++`` (as scikit-learn's KMeans, which the reference
            uses: the best of 2 + ln k D^2-drawn candidates per step),
            ``k-means++`` or ``random``.
        rotation: local rotations, ``eigen`` (LOPQ) or ``identity`` (ablation:
            the multi-index with PQ on mean-centred residuals).
        pca: PCA the input first (variance balanced over the two halves).
        pca_dim: keep this many principal directions (implies pca; None: all).

    Attributes after fit: ``coarse_centroids`` (2, V, h), ``local_means``
    (2, V, h), ``local_rotations`` (2, V, h, h), ``codewords`` (M, Ks, D'/M)
    float32 (h = D'/2, D' the dimension after PCA); ``pca_mean`` (D,) and
    ``pca_matrix`` (D, D') or None; ``objective`` {"coarse": (2, coarse_iter),
    "fine": (M, iter)} float64. After add: ``codes`` (n, 2 + M).
    """

    metric_specs = declare(FINE_BITS, CELL_BITS, TOTAL_BITS, MEAN_CANDIDATES, MAX_CANDIDATES,
                           MEAN_CELLS)
    search_metrics = ("l2", "ip")

    def __init__(self, V: int = 16, M: int = 8, Ks: int = 256, quota: int = 1000,
                 max_cells: int | None = None, exact_quota: bool = False,
                 coarse_iter: int = 50, iter: int = 100, seed: int | None = None,
                 max_points_per_centroid: int | None = 256, init: str = "greedy-k-means++",
                 rotation: str = "eigen", pca: bool = False, pca_dim: int | None = None,
                 verbose: bool = False):
        self.verbose = bool(verbose)
        self.V = check_positive_int(V, "V", 1, MAX_V)
        self.M = check_positive_int(M, "M", 2)
        if self.M % 2:
            raise InputError(f"M={M} must be even: M/2 fine sub-quantizers per half")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 16)
        self.quota = check_positive_int(quota, "quota", 1, MAX_QUOTA)
        self.max_cells = None if max_cells is None else \
            check_positive_int(max_cells, "max_cells", 1, self.V * self.V)
        self.exact_quota = check_flag(exact_quota, "exact_quota")
        self.coarse_iter = check_positive_int(coarse_iter, "coarse_iter")
        self.iter = check_positive_int(iter, "iter")
        self.seed = seed
        self.max_points_per_centroid = None if max_points_per_centroid is None else \
            check_positive_int(max_points_per_centroid, "max_points_per_centroid")
        check_choice(init, INITS, "init")
        check_choice(rotation, ROTATIONS, "rotation")
        check_flag(pca, "pca")
        self.pca_dim = None if pca_dim is None else check_positive_int(pca_dim, "pca_dim", 2)
        self.init, self.rotation = init, rotation
        self.pca = bool(pca) or self.pca_dim is not None
        self.dim = None              # input dimension D
        self.pca_mean = self.pca_matrix = None
        self.coarse_centroids = self.local_means = self.local_rotations = None
        self.codewords = None
        self.objective = {}
        self.codes = None
        self.last_search: dict = {}
        self._cpp = None
        self._indexed = 0            # rows of codes in the C++ index

    model_arrays = ("coarse_centroids", "local_means", "local_rotations", "codewords",
                    "pca_mean", "pca_matrix")

    # -- state ----------------------------------------------------------------
    @property
    def code_dtype(self) -> np.dtype:
        return code_dtype(self.V, self.Ks)

    @property
    def qdim(self) -> int:
        """Dimension quantized: D' after PCA, else D."""
        return self.pca_matrix.shape[1] if self.pca_matrix is not None else self.dim

    def _suffix(self) -> str:
        return "u8" if self.code_dtype == np.uint8 else "u16"

    def _dims(self) -> dict:
        """The dims of the C++ model every array it is given must match."""
        D = self.qdim
        return dict(D=D, V=self.V, M=self.M, Ks=self.Ks, h=D // 2, ds=D // self.M,
                    w=2 + self.M, cells=self.V * self.V + 1, ncells=self.V * self.V)

    def _model(self):
        """The C++ LOPQ, rebuilt from the numpy state when absent (after unpickling)."""
        self.require_fitted(self.codewords is not None)
        if self._cpp is None:
            cpp = native.load().LOPQ(self.qdim, self.V, self.M, self.Ks)
            dims = self._dims()
            LOPQ_CALLS.call(cpp, "set_coarse", self.coarse_centroids, **dims)
            LOPQ_CALLS.call(cpp, "set_local", self.local_means, self.local_rotations, **dims)
            LOPQ_CALLS.call(cpp, "set_codewords", self.codewords, **dims)
            self._cpp, self._indexed = cpp, 0
        return self._cpp

    transient = {"_cpp": None, "_indexed": 0}

    def check_stored_codes(self, codes) -> np.ndarray:
        return self.check_codes(codes, "codes")

    def codes_changed(self) -> None:
        self._indexed = 0  # the C++ index is rebuilt on the next search

    # -- training -------------------------------------------------------------
    def _fit_pca(self, x: np.ndarray) -> None:
        """PCA: top pca_dim principal directions, dealt to two variance-balanced halves."""
        n, dim = x.shape
        keep = dim if self.pca_dim is None else self.pca_dim
        if keep > dim:
            raise InputError(f"pca_dim={keep} is larger than the dimension D={dim}")
        if n < 2:
            raise InputError(f"PCA needs at least 2 training vectors, got {n}")
        mean = x.mean(axis=0, dtype=np.float64)
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x, rowvar=False))
        top = np.ascontiguousarray(eigenvectors[:, np.argsort(eigenvalues)[::-1][:keep]],
                                   dtype=np.float32)
        self.pca_mean = mean.astype(np.float32)
        halves = eigenvalue_allocation(rotate(self._centred(x), top), 2)
        self.pca_matrix = np.ascontiguousarray(top @ halves, dtype=np.float32)

    def _centred(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x - self.pca_mean, dtype=np.float32)

    def _project_pca(self, x: np.ndarray) -> np.ndarray:
        """x (n, D) -> (n, D') in the PCA space (x itself without PCA), chunk by chunk."""
        if self.pca_matrix is None:
            return x
        out = np.empty((x.shape[0], self.qdim), np.float32)
        for start in range(0, x.shape[0], CHUNK_ROWS):
            out[start:start + CHUNK_ROWS] = rotate(self._centred(x[start:start + CHUNK_ROWS]),
                                                   self.pca_matrix)
        return out

    def fit(self, x):
        """Learn PCA (optional), coarse quantizer, local frames and fine codebooks on x (n, D)."""
        x = as_matrix(x, "learn")
        n, dim = x.shape
        if self.pca:
            check_subspaces(self.pca_dim or dim, self.M)
        else:
            check_subspaces(dim, self.M)
        check_codebook_size(n, self.V, "coarse centroids (V)")
        check_codebook_size(n, self.Ks)
        seed = plugin_seed(self.seed)
        self.dim, self.pca_mean, self.pca_matrix = dim, None, None
        self.codes, self._cpp = None, None
        if self.pca:
            self._fit_pca(x)
        y = self._project_pca(x)
        D, V, M, h = y.shape[1], self.V, self.M, y.shape[1] // 2
        ns = native.load()
        cpp = ns.LOPQ(D, V, M, self.Ks)
        dims = self._dims()
        coarse_objective = np.zeros((2, self.coarse_iter))
        LOPQ_CALLS.call(cpp, "train_coarse", y, n, self.coarse_iter, INITS[self.init], seed,
                        subsample_arg(self.max_points_per_centroid, V, n), coarse_objective,
                        **dims)
        coarse = np.empty((n, 2), np.int32)
        LOPQ_CALLS.call(cpp, "assign", y, n, coarse, **dims)
        work = np.empty((n, D), np.float32)
        LOPQ_CALLS.call(cpp, "residuals", y, n, coarse, work, **dims)
        means, rotations = local_frames(work, coarse, V, M, self.rotation)
        LOPQ_CALLS.call(cpp, "set_local", means, rotations, **dims)
        LOPQ_CALLS.call(cpp, "project", y, n, coarse, work, **dims)
        fine_objective = np.zeros((M, self.iter))
        LOPQ_CALLS.call(cpp, "train_fine", work, n, self.iter, INITS[self.init], seed,
                        subsample_arg(self.max_points_per_centroid, self.Ks, n), fine_objective,
                        **dims)
        centroids = np.empty((2, V, h), np.float32)
        codewords = np.empty((M, self.Ks, D // M), np.float32)
        LOPQ_CALLS.call(cpp, "get_coarse", centroids, **dims)
        LOPQ_CALLS.call(cpp, "get_codewords", codewords, **dims)
        self.coarse_centroids, self.local_means, self.local_rotations = centroids, means, rotations
        self.codewords = codewords
        self.objective = {"coarse": coarse_objective, "fine": fine_objective}
        if self.verbose:
            name = self.name or "lopq"
            log_iterations(f"{name}: coarse k-means (both halves)", coarse_objective)
            log_iterations(f"{name}: local fine k-means (sum over sub-spaces)", fine_objective)
        self._cpp, self._indexed = cpp, 0
        return self

    # -- Quantizer ------------------------------------------------------------
    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, 2 + M) codes [c0, c1, f_1 .. f_M] of ``code_dtype``."""
        cpp = self._model()
        y = self._project_pca(as_matrix(x, "x", dim=self.dim))
        codes = np.empty((y.shape[0], 2 + self.M), self.code_dtype)
        LOPQ_CALLS.call(cpp, "encode_" + self._suffix(), y, y.shape[0], codes, **self._dims())
        return codes

    def check_codes(self, codes, name: str = "codes") -> np.ndarray:
        """(n, 2 + M) codes of ``code_dtype``, coarse ids < V, fine codes < Ks; else raise."""
        dtype = self.code_dtype
        if not isinstance(codes, np.ndarray):
            raise InputError(f"{name}: expected a numpy array of {dtype} codes, got "
                             f"{type(codes).__name__}")
        if codes.dtype != dtype:
            raise InputError(f"{name}: expected dtype {dtype} (V={self.V}, Ks={self.Ks}), got "
                             f"{codes.dtype}")
        codes = as_matrix(codes, name, dtype=dtype, dim=2 + self.M, finite=False)
        if codes[:, :2].max() >= self.V:
            raise InputError(f"{name}: coarse id {int(codes[:, :2].max())} out of range for "
                             f"V={self.V}")
        if codes[:, 2:].max() >= self.Ks:
            raise InputError(f"{name}: fine code {int(codes[:, 2:].max())} out of range for "
                             f"Ks={self.Ks}")
        return codes

    def decode(self, codes) -> np.ndarray:
        """(n, 2 + M) codes -> (n, D) float32 reconstructions (PCA undone, if any)."""
        cpp = self._model()
        codes = self.check_codes(codes)
        y = np.empty((codes.shape[0], self.qdim), np.float32)
        LOPQ_CALLS.call(cpp, "decode_" + self._suffix(), codes, codes.shape[0], y,
                        **self._dims())
        if self.pca_matrix is None:
            return y
        return rotate(y, np.ascontiguousarray(self.pca_matrix.T)) + self.pca_mean

    # -- Searcher -------------------------------------------------------------
    def add(self, x) -> None:
        """Encode and append database vectors (n, D); the inverted lists are built by
        :meth:`finish_add` (or the next search), once for all blocks added."""
        super().add(x)

    def finish_add(self) -> None:
        """Build the inverted multi-index of all codes added."""
        self._index()

    def _index(self):
        """The C++ model with the inverted multi-index of all added codes."""
        cpp = self._model()
        if self.codes is None:
            raise InputError(f"{self.name or 'lopq'}: add() vectors before searching")
        n = self.codes.shape[0]
        if self._indexed != n:
            self._build_index(cpp)
            self._indexed = n
        return cpp

    def _build_index(self, cpp) -> None:
        """Inverted lists of all codes (cell c0 * V + c1), read a chunk at a time."""
        V = self.V
        build_inverted_lists(LOPQ_CALLS, cpp, self.codes,
                             lambda chunk: chunk[:, 0].astype(np.int64) * V + chunk[:, 1],
                             V * V, self._suffix(), self._dims(), INDEX_CHUNK)

    def set_search_params(self, quota: int = UNSET, max_cells: int | None = UNSET,
                          exact_quota: bool = UNSET, **params) -> None:
        """Change ``quota``, ``max_cells`` (None or 0: no cell limit) or ``exact_quota``
        without retraining."""
        super().set_search_params(**params)
        if exact_quota is not UNSET:
            self.exact_quota = check_flag(exact_quota, "exact_quota")
        if quota is not UNSET:
            self.quota = check_positive_int(quota, "quota", 1, MAX_QUOTA)
        if max_cells is not UNSET:
            self.max_cells = None if max_cells in (None, 0) else \
                check_positive_int(max_cells, "max_cells", 1, self.V * self.V)

    def search(self, queries, k):
        """Multi-index search: (distances (nq, k) float32, ids (nq, k) int64), nearest first.

        By the ``l2`` metric squared distances (in the PCA space, with PCA); by ``ip`` the
        inner products <q, x_hat>, largest first. Fewer than k candidates within the
        quota leave (+inf, -1) at the end of a row (-inf by ``ip``).
        """
        self._model()
        if self.codes is None:
            raise InputError(f"{self.name or 'lopq'}: add() vectors before searching")
        k = check_k(k, self.codes.shape[0])
        queries = as_matrix(queries, "query", dim=self.dim)
        inner_product = self.metric == "ip"
        if inner_product and self.pca_matrix is not None:
            # <q, mean + y_hat P^T> = <q, mean> + <q P, y_hat>: the query is rotated, not
            # centred, and its constant <q, mean> added back to the distances below
            y = rotate(np.ascontiguousarray(queries), self.pca_matrix)
        else:
            y = self._project_pca(queries)
        cpp = self._index()
        nq = y.shape[0]
        distances = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        candidates = np.empty(nq, np.int64)
        cells = np.empty(nq, np.int64)
        LOPQ_CALLS.call(cpp, "search", y, nq, k, self.quota, self.max_cells or 0,
                        self.exact_quota, inner_product, distances, ids, candidates, cells,
                        **self._dims())
        if inner_product:
            np.negative(distances, out=distances)
            if self.pca_matrix is not None:
                distances += (queries @ self.pca_mean)[:, None].astype(np.float32)
        self.last_search = search_stats(candidates, cells)
        return distances, ids

    def list_sizes(self) -> np.ndarray:
        """(V, V) int64: vectors in each cell (c0, c1) of the index."""
        cpp = self._index()
        offsets = np.empty(self.V * self.V + 1, np.int64)
        LOPQ_CALLS.call(cpp, "get_offsets", offsets, **self._dims())
        return np.diff(offsets).reshape(self.V, self.V)

    # -- sizes and metrics --------------------------------------------------------
    @property
    def cell_bits(self) -> int:
        """Bits of the cell id (c0, c1): 2 * ceil(log2 V)."""
        return int(2 * math.ceil(math.log2(self.V))) if self.V > 1 else 0

    @property
    def codes_bytes(self) -> int:
        """The index: per vector the fine code and an int64 id, plus the V * V + 1 offsets."""
        if self.codes is None:
            return 0
        return lists_bytes(self.codes.shape[0], self.M, self.Ks, self.V * self.V)

    def extra_metrics(self) -> dict:
        out = {"fine_bits": self.code_bits, "cell_bits": self.cell_bits,
               "total_bits": self.code_bits + self.cell_bits}
        out.update(self.last_search)
        return out

    # -- diagnostics ------------------------------------------------------------
    def subspace_codes(self, codes) -> tuple[np.ndarray, int]:
        """The fine codes, columns 2 .. 2 + M of the codes: ((n, M), Ks)."""
        return self.check_codes(codes)[:, 2:], self.Ks

    def subspace_view(self, x, codes) -> tuple[np.ndarray, np.ndarray]:
        """x in the local frames of its cells: p_s = (y_s - C_s - mu_s) R_s, halves side by side.

        y is x after the PCA (if any); (C_s, mu_s, R_s) are the coarse centroid, local
        mean and local rotation of half s of the cell in ``codes``. The M fine
        sub-spaces are equal blocks of this (n, D') frame.
        """
        self._model()
        codes = self.check_codes(codes)
        y = self._project_pca(as_matrix(x, "x", dim=self.dim))
        if y.shape[0] != codes.shape[0]:
            raise InputError(f"subspace_view: {codes.shape[0]} codes for {y.shape[0]} vectors")
        h = self.qdim // 2
        out = np.empty((y.shape[0], self.qdim), np.float32)
        for s in range(2):
            cells = codes[:, s].astype(np.int64)
            for v in np.unique(cells):
                rows = np.flatnonzero(cells == v)
                local = y[rows, s * h:(s + 1) * h] - self.coarse_centroids[s, v] \
                    - self.local_means[s, v]
                out[rows, s * h:(s + 1) * h] = local @ self.local_rotations[s, v]
        return out, equal_bounds(self.qdim, self.M)
