"""Locally optimized product quantization on a single inverted file (I-LOPQ), C++ core:
plugin ``ilopq``.

Kalantidis & Avrithis, "Locally Optimized Product Quantization for Approximate Nearest
Neighbor Search", CVPR 2014, its single-index variant: an IVF coarse quantizer, and in
every cell a local rotation and local product quantizers fitted on that cell's residuals,
so that each cell's codebooks follow its own residual distribution. It is compared with
IVFADC (Jégou, Douze, Schmid, TPAMI 2011: one product quantizer for all residuals) and
I-OPQ (one global OPQ rotation before the IVF).

Training (``fit``) on x (n, D) float32:

1. coarse quantizer: our k-means of x into ``nlist`` centroids C (k-means++ seeds,
   ``coarse_iter`` iterations, at most ``max_points_per_centroid`` sampled rows per
   centroid); residuals r = x - C[cell];
2. pooled parameters, fitted on all residuals as in 3: they serve every cell with fewer
   than ``min_cell_rows`` training residuals (too few to fit Ks codewords per sub-space);
3. per cell with at least ``min_cell_rows`` residuals, fitted on that cell's alone: the
   local mean mu_c, then ``local="opq"``: our non-parametric OPQ (plugin ``opq``,
   ``local_niter`` rotation updates from the identity, its final PQ giving the codebooks)
   on r - mu_c; ``local="eigen"``: parametric OPQ (R_c the eigenvalue allocation of the
   residuals' covariance) and PQ on (r - mu_c) R_c; ``local="identity"``: no mean and no
   rotation, PQ on r. The cells' fits are independent and run on the plugin's threads.

With ``codebooks="pooled"`` one set of codebooks serves every cell (PQ trained on all
residuals, each in its cell's frame): with ``local="identity"`` that is IVFADC.

Codes (``encode``): (n, 1 + M), columns [cell, f_1 .. f_M], uint8 when nlist <= 256 and
Ks <= 256, else uint16. ``decode``: x_hat = C[c] + mu_c + q R_c^T. Search visits cells in
increasing coarse distance, ``nprobe`` of them (None: all) or until ``quota`` codes were
gathered (whole cells; exactly ``quota`` with ``exact_quota``, as faiss's max_codes), and
ranks every candidate by its exact asymmetric distance in its cell's local frame (one
distance table per visited cell). By inner product (a dataset of metric ``ip``): cells in
decreasing <q, C[c]>, candidates by <q, x_hat> = <q, C[c] + mu_c> + <q R_c, q_hat>.

Bits: ``code_bits`` counts the fine code, as faiss_ivfpq's; ``extra_metrics`` adds the
cell bits, the training time of each stage and the number of cells that got their own
parameters.

Every input is checked here, before any C++ call; bad input raises
:class:`benchpq.checks.InputError`.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

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
from benchpq.metric_table import Metric, declare
from benchpq.registry import register

from ..primitives.checks import check_choice, check_flag, plugin_seed, subsample_arg
from ..primitives.codes import code_dtype
from ..primitives.inverted_lists import build_inverted_lists, lists_bytes, search_stats
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
from ..primitives.native_modes import INITS
from ..primitives.rotations import eigenvalue_allocation, rotate
from .kmeans import KMEANS_CALLS
from .opq import OPQ
from .pq import PQ

LOCAL_FITS = ("opq", "eigen", "identity")
CODEBOOKS = ("local", "pooled")


def _ilopq_calls() -> dict:
    f32, i32, i64 = np.float32, np.int32, np.int64
    calls = {
        "set_coarse": Call((A("centroids", f32, ("nlist", "D")),)),
        "set_local": Call((A("means", f32, ("nlist", "D")),
                           A("rotations", f32, ("nlist", "D", "D")),
                           A("codewords", f32, ("nlist", "M", "Ks", "ds")))),
        "assign": Call((A("x", f32, ("n", "D")), S("n"), A("cells", i32, ("n",), out=True))),
        "project": Call((A("x", f32, ("n", "D")), S("n"), A("cells", i32, ("n",)),
                         A("out", f32, ("n", "D"), out=True))),
        "begin_index": Call((A("counts", i64, ("nlist",)),)),
        "end_index": Call(()),
        "get_offsets": Call((A("offsets", i64, ("offsets",), out=True),), quick=True),
        "search": Call((A("query", f32, ("nq", "D")), S("nq"), S("k"), S("nprobe"), S("quota"),
                        S("exact_quota"), S("inner_product"),
                        A("distances", f32, ("nq", "k"), out=True),
                        A("ids", i64, ("nq", "k"), out=True),
                        A("candidates", i64, ("nq",), out=True),
                        A("cells", i64, ("nq",), out=True))),
    }
    for suffix, dtype in (("u8", np.uint8), ("u16", np.uint16)):
        codes = A("codes", dtype, ("n", "w"))
        calls.update({
            "encode_" + suffix: Call((A("x", f32, ("n", "D")), S("n"),
                                      A("codes", dtype, ("n", "w"), out=True))),
            "decode_" + suffix: Call((codes, S("n"), A("x", f32, ("n", "D"), out=True))),
            "fill_index_" + suffix: Call((A("codes", dtype, ("m", "w")), S("m"), S("first"))),
        })
    return calls


#: the C++ IVFLOPQ (cpp/ilopq.h): D, nlist cells, M, Ks; ds = D / M, w = 1 + M code columns,
#: offsets = nlist + 1
ILOPQ_CALLS = NativeTable("IVFLOPQ", _ilopq_calls(), constructor=("D", "nlist", "M", "Ks"),
                          warm=dict(D=2, nlist=2, M=1, Ks=2, ds=2, w=2, n=2, m=1, first=0,
                                    offsets=3, nq=1, k=1, nprobe=1, quota=0,
                                    exact_quota=False, inner_product=False))

#: the largest quota the C++ search takes (an int64 count of candidates)
MAX_QUOTA = 2 ** 62


@register("ilopq")
class ILOPQ(NativeProductCodes, CheckedCodes, Quantizer, Searcher):
    """I-LOPQ (Kalantidis & Avrithis 2014): an IVF with local rotations and codebooks per cell.

    Args:
        nlist: coarse cells, 1 .. 65536.
        M: sub-quantizers (must divide the dimension); Ks: codewords each, 2 .. 65536.
        nprobe: cells visited per query (at most nlist); None: no cell limit.
        quota: also stop once this many codes were gathered (None: no limit).
        exact_quota: scan exactly ``quota`` codes, cutting the last cell.
        local: the local fit per cell, ``opq`` (non-parametric OPQ), ``eigen``
            (parametric OPQ) or ``identity`` (no local mean or rotation).
        codebooks: ``local`` (per cell) or ``pooled`` (one set for every cell).
        min_cell_rows: a cell needs this many training residuals (>= Ks) for its own
            parameters, else it takes the pooled ones; None: 4 * Ks.
        coarse_iter: k-means iterations of the coarse quantizer; iter: of every PQ.
        local_niter: OPQ rotation updates per cell (``local="opq"``).
        max_points_per_centroid: every k-means trains on at most this many sampled rows
            per centroid (None: all).
        seed: seeds every k-means and sample (None: 0).

    Attributes after fit: ``coarse_centroids`` (nlist, D), ``local_means`` (nlist, D),
    ``local_rotations`` (nlist, D, D), ``codewords`` (nlist, M, Ks, D/M) float32 and
    ``own_cells`` (nlist,) bool (True: the cell's own parameters). After add: ``codes``
    (n, 1 + M).
    """

    metric_specs = declare(
        FINE_BITS, CELL_BITS, TOTAL_BITS, MEAN_CANDIDATES, MAX_CANDIDATES, MEAN_CELLS,
        Metric("train_coarse_s", "Seconds of I-LOPQ's coarse k-means and assignment of the "
               "training set.", unit="s", direction="min", display="Coarse training (s)",
               kind="time", is_time=True, ratio=True),
        Metric("train_local_s", "Seconds of I-LOPQ's local fits (pooled and per-cell means, "
               "rotations and codebooks) on the plugin's threads.", unit="s",
               direction="min", display="Local training (s)", kind="time", is_time=True,
               ratio=True),
        Metric("local_cells", "Cells with their own local parameters (at least min_cell_rows "
               "training residuals); the others use the pooled ones.",
               display="Cells with own parameters", kind="count"))
    search_metrics = ("l2", "ip")

    model_arrays = ("coarse_centroids", "local_means", "local_rotations", "codewords")

    def __init__(self, nlist: int = 256, M: int = 8, Ks: int = 256, nprobe: int | None = 16,
                 quota: int | None = None, exact_quota: bool = False, local: str = "opq",
                 codebooks: str = "local", min_cell_rows: int | None = None,
                 coarse_iter: int = 20, iter: int = 25, local_niter: int = 10,
                 max_points_per_centroid: int | None = 256, seed: int | None = None):
        self.nlist = check_positive_int(nlist, "nlist", 1, 65536)
        self.M = check_positive_int(M, "M")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 16)
        self.nprobe = None
        self.quota = None
        self.exact_quota = False
        self.set_search_params(nprobe=nprobe, quota=quota, exact_quota=exact_quota)
        self.local = check_choice(local, LOCAL_FITS, "local")
        self.codebooks = check_choice(codebooks, CODEBOOKS, "codebooks")
        self.min_cell_rows = 4 * self.Ks if min_cell_rows is None else \
            check_positive_int(min_cell_rows, "min_cell_rows", self.Ks)
        self.coarse_iter = check_positive_int(coarse_iter, "coarse_iter")
        self.iter = check_positive_int(iter, "iter")
        self.local_niter = check_positive_int(local_niter, "local_niter")
        self.max_points_per_centroid = None if max_points_per_centroid is None else \
            check_positive_int(max_points_per_centroid, "max_points_per_centroid")
        self.seed = seed
        self.dim = None
        self.coarse_centroids = self.local_means = self.local_rotations = None
        self.codewords = None
        self.own_cells = None
        self.train_times: dict = {}
        self.codes = None
        self.last_search: dict = {}
        self._threads = None
        self._cpp = None
        self._indexed = 0

    transient = {"_cpp": None, "_indexed": 0}

    # -- state ----------------------------------------------------------------------
    @property
    def code_dtype(self) -> np.dtype:
        return code_dtype(self.nlist, self.Ks)

    def _suffix(self) -> str:
        return "u8" if self.code_dtype == np.uint8 else "u16"

    def _dims(self) -> dict:
        return dict(D=self.dim, nlist=self.nlist, M=self.M, Ks=self.Ks, ds=self.dim // self.M,
                    w=1 + self.M, offsets=self.nlist + 1)

    def _model(self):
        """The C++ IVFLOPQ, rebuilt from the numpy state when absent (after unpickling)."""
        self.require_fitted(self.codewords is not None)
        if self._cpp is None:
            cpp = native.load().IVFLOPQ(self.dim, self.nlist, self.M, self.Ks)
            dims = self._dims()
            ILOPQ_CALLS.call(cpp, "set_coarse", self.coarse_centroids, **dims)
            ILOPQ_CALLS.call(cpp, "set_local", self.local_means, self.local_rotations,
                             self.codewords, **dims)
            self._cpp, self._indexed = cpp, 0
        return self._cpp

    def set_threads(self, threads: int) -> None:
        self._threads = check_positive_int(threads, "threads")
        super().set_threads(threads)

    def check_stored_codes(self, codes) -> np.ndarray:
        return self.check_codes(codes, "codes")

    def codes_changed(self) -> None:
        self._indexed = 0

    # -- training ---------------------------------------------------------------------
    def fit(self, x):
        """Learn the coarse quantizer, then pooled and per-cell local parameters on x (n, D)."""
        x = as_matrix(x, "learn")
        n, dim = x.shape
        check_subspaces(dim, self.M)
        check_codebook_size(n, self.nlist, "coarse cells (nlist)")
        check_codebook_size(n, self.Ks)
        seed = plugin_seed(self.seed)
        self.dim, self.codes, self._cpp = dim, None, None
        t0 = time.perf_counter()
        centroids = np.empty((self.nlist, dim), np.float32)
        KMEANS_CALLS.call(native.load(), "kmeans", x, n, dim, self.nlist, self.coarse_iter,
                          INITS["k-means++"], seed,
                          subsample_arg(self.max_points_per_centroid, self.nlist, n),
                          centroids, np.zeros(self.coarse_iter, np.float64))
        cpp = native.load().IVFLOPQ(dim, self.nlist, self.M, self.Ks)
        dims = self._dims()
        ILOPQ_CALLS.call(cpp, "set_coarse", centroids, **dims)
        cells = np.empty(n, np.int32)
        ILOPQ_CALLS.call(cpp, "assign", x, n, cells, **dims)
        residuals = x - centroids[cells]
        t1 = time.perf_counter()
        means, rotations, codewords, own = self._fit_local(residuals, cells, seed)
        ILOPQ_CALLS.call(cpp, "set_local", means, rotations, codewords, **dims)
        t2 = time.perf_counter()
        self.coarse_centroids, self.local_means, self.local_rotations = \
            centroids, means, rotations
        self.codewords, self.own_cells = codewords, own
        self.train_times = {"train_coarse_s": t1 - t0, "train_local_s": t2 - t1}
        self._cpp, self._indexed = cpp, 0
        return self

    def _fit_frame(self, r: np.ndarray, seed: int, codebooks: bool):
        """(mean (D,), rotation (D, D), codewords (M, Ks, D/M) or None) fitted on residuals
        r (m, D) float32 as ``local`` says; codebooks only when asked."""
        dim = r.shape[1]
        if self.local == "identity":
            mean, R = np.zeros(dim, np.float32), np.eye(dim, dtype=np.float32)
            y = r
        else:
            mean = r.mean(axis=0, dtype=np.float64).astype(np.float32)
            y = np.ascontiguousarray(r - mean)
        if self.local == "opq":
            opq = OPQ(M=self.M, Ks=self.Ks, niter=self.local_niter, iter=self.iter,
                      init="identity", max_train_points=max(self.Ks, 65536),
                      max_points_per_centroid=self.max_points_per_centroid, seed=seed)
            opq.fit(y)
            return mean, opq.rotation, opq.pq.codewords if codebooks else None
        if self.local == "eigen":
            R = eigenvalue_allocation(y, self.M)
            y = rotate(y, R)
        if not codebooks:
            return mean, R, None
        pq = PQ(M=self.M, Ks=self.Ks, iter=self.iter, seed=seed,
                max_points_per_centroid=self.max_points_per_centroid)
        return mean, R, pq.fit(y).codewords

    def _fit_local(self, residuals: np.ndarray, cells: np.ndarray, seed: int):
        """Per-cell means, rotations and codewords, and which cells got their own."""
        nlist, dim, dsub = self.nlist, residuals.shape[1], residuals.shape[1] // self.M
        order = np.argsort(cells, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(cells, minlength=nlist))])
        own = np.diff(bounds) >= self.min_cell_rows
        local_codebooks = self.codebooks == "local"

        def fit_cell(c: int):
            native.set_num_threads(1)  # this worker's OpenMP regions (a per-thread setting)
            rows = order[bounds[c]:bounds[c + 1]]
            return self._fit_frame(np.ascontiguousarray(residuals[rows]), seed,
                                   local_codebooks)

        workers = self._threads or os.cpu_count() or 1
        pooled = None if own.all() else self._fit_frame(residuals, seed, local_codebooks)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            fits = dict(zip(np.flatnonzero(own).tolist(),
                            pool.map(fit_cell, np.flatnonzero(own).tolist())))
        if self._threads:
            native.set_num_threads(self._threads)
        means = np.empty((nlist, dim), np.float32)
        rotations = np.empty((nlist, dim, dim), np.float32)
        codewords = np.empty((nlist, self.M, self.Ks, dsub), np.float32)
        for c in range(nlist):
            mean, R, cw = fits.get(c, pooled)
            means[c], rotations[c] = mean, R
            if local_codebooks:
                codewords[c] = cw
        if not local_codebooks:  # one PQ on every residual in its cell's frame
            frames = np.empty_like(residuals)
            for c in range(nlist):
                rows = order[bounds[c]:bounds[c + 1]]
                if rows.size:
                    frames[rows] = rotate(np.ascontiguousarray(residuals[rows] - means[c]),
                                          rotations[c])
            pq = PQ(M=self.M, Ks=self.Ks, iter=self.iter, seed=seed,
                    max_points_per_centroid=self.max_points_per_centroid)
            codewords[:] = pq.fit(frames).codewords
        return means, rotations, codewords, own

    # -- Quantizer ----------------------------------------------------------------------
    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, 1 + M) codes [cell, f_1 .. f_M] of ``code_dtype``."""
        cpp = self._model()
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], 1 + self.M), self.code_dtype)
        ILOPQ_CALLS.call(cpp, "encode_" + self._suffix(), x, x.shape[0], codes, **self._dims())
        return codes

    def check_codes(self, codes, name: str = "codes") -> np.ndarray:
        """(n, 1 + M) codes of ``code_dtype``, cells < nlist, fine codes < Ks; else raise."""
        dtype = self.code_dtype
        if not isinstance(codes, np.ndarray):
            raise InputError(f"{name}: expected a numpy array of {dtype} codes, got "
                             f"{type(codes).__name__}")
        if codes.dtype != dtype:
            raise InputError(f"{name}: expected dtype {dtype} (nlist={self.nlist}, "
                             f"Ks={self.Ks}), got {codes.dtype}")
        codes = as_matrix(codes, name, dtype=dtype, dim=1 + self.M, finite=False)
        if codes[:, 0].max() >= self.nlist:
            raise InputError(f"{name}: cell {int(codes[:, 0].max())} out of range for "
                             f"nlist={self.nlist}")
        if codes[:, 1:].max() >= self.Ks:
            raise InputError(f"{name}: fine code {int(codes[:, 1:].max())} out of range for "
                             f"Ks={self.Ks}")
        return codes

    def decode(self, codes) -> np.ndarray:
        """(n, 1 + M) codes -> (n, D) float32 reconstructions."""
        cpp = self._model()
        codes = self.check_codes(codes)
        x = np.empty((codes.shape[0], self.dim), np.float32)
        ILOPQ_CALLS.call(cpp, "decode_" + self._suffix(), codes, codes.shape[0], x,
                         **self._dims())
        return x

    # -- Searcher -----------------------------------------------------------------------
    def finish_add(self) -> None:
        """Build the inverted file of all codes added."""
        self._index()

    def _index(self):
        cpp = self._model()
        if self.codes is None:
            raise InputError(f"{self.name or 'ilopq'}: add() vectors before searching")
        n = self.codes.shape[0]
        if self._indexed != n:
            build_inverted_lists(ILOPQ_CALLS, cpp, self.codes,
                                 lambda chunk: chunk[:, 0].astype(np.int64), self.nlist,
                                 self._suffix(), self._dims())
            self._indexed = n
        return cpp

    def set_search_params(self, nprobe: int | None = UNSET, quota: int | None = UNSET,
                          exact_quota: bool = UNSET, **params) -> None:
        """Change ``nprobe`` (None or 0: every cell), ``quota`` (None or 0: no limit) or
        ``exact_quota`` without retraining."""
        super().set_search_params(**params)
        if nprobe is not UNSET:
            self.nprobe = None if nprobe in (None, 0) else \
                check_positive_int(nprobe, "nprobe", 1, MAX_QUOTA)
        if quota is not UNSET:
            self.quota = None if quota in (None, 0) else \
                check_positive_int(quota, "quota", 1, MAX_QUOTA)
        if exact_quota is not UNSET:
            self.exact_quota = check_flag(exact_quota, "exact_quota")

    def search(self, queries, k):
        """(distances (nq, k) float32, ids (nq, k) int64), nearest first; by the ``ip``
        metric the inner products <q, x_hat>, largest first (cells in decreasing <q, C[c]>).
        Fewer than k candidates leave (+inf, -1) at the end of a row (-inf by ``ip``)."""
        self._model()
        if self.codes is None:
            raise InputError(f"{self.name or 'ilopq'}: add() vectors before searching")
        k = check_k(k, self.codes.shape[0])
        queries = as_matrix(queries, "query", dim=self.dim)
        cpp = self._index()
        nq = queries.shape[0]
        distances = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        candidates = np.empty(nq, np.int64)
        cells = np.empty(nq, np.int64)
        inner_product = self.metric == "ip"
        ILOPQ_CALLS.call(cpp, "search", queries, nq, k, self.nprobe or 0, self.quota or 0,
                         self.exact_quota, inner_product, distances, ids, candidates, cells,
                         **self._dims())
        if inner_product:
            np.negative(distances, out=distances)
        self.last_search = search_stats(candidates, cells)
        return distances, ids

    def list_sizes(self) -> np.ndarray:
        """(nlist,) int64: vectors in each cell of the index."""
        cpp = self._index()
        offsets = np.empty(self.nlist + 1, np.int64)
        ILOPQ_CALLS.call(cpp, "get_offsets", offsets, **self._dims())
        return np.diff(offsets)

    # -- sizes and metrics --------------------------------------------------------------
    @property
    def cell_bits(self) -> int:
        return int(math.ceil(math.log2(self.nlist))) if self.nlist > 1 else 0

    @property
    def codes_bytes(self) -> int:
        """The index: per vector the fine code and an int64 id, plus the nlist + 1 offsets."""
        if self.codes is None:
            return 0
        return lists_bytes(self.codes.shape[0], self.M, self.Ks, self.nlist)

    def extra_metrics(self) -> dict:
        out = {"fine_bits": self.code_bits, "cell_bits": self.cell_bits,
               "total_bits": self.code_bits + self.cell_bits, **self.train_times}
        if self.own_cells is not None:
            out["local_cells"] = int(self.own_cells.sum())
        out.update(self.last_search)
        return out

    # -- diagnostics ---------------------------------------------------------------------
    def subspace_codes(self, codes) -> tuple[np.ndarray, int]:
        """((n, M) fine codes, Ks): the cell column dropped."""
        return np.ascontiguousarray(self.check_codes(codes)[:, 1:]), self.Ks

    def subspace_view(self, x, codes) -> tuple[np.ndarray, np.ndarray]:
        """x in its cell's local frame (x - C_c - mu_c) R_c, where the sub-spaces are equal
        blocks (the cell taken from ``codes``)."""
        cpp = self._model()
        x = as_matrix(x, "x", dim=self.dim)
        cells = np.ascontiguousarray(self.check_codes(codes)[:, 0], dtype=np.int32)
        out = np.empty_like(x)
        ILOPQ_CALLS.call(cpp, "project", x, x.shape[0], cells, out, **self._dims())
        return out, equal_bounds(self.dim, self.M)
