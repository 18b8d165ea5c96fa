"""faiss adapters: PQ, OPQ + PQ, IVFPQ and PQ fast-scan, as quantizers and searchers.

* ``faiss_pq``: IndexPQ, exhaustive ADC (Jegou, Douze, Schmid, TPAMI 2011).
* ``faiss_opq``: OPQMatrix + IndexPQ (Ge, He, Ke, Sun, TPAMI 2014, non-parametric).
* ``faiss_ivfpq``: IndexIVFPQ, inverted file with PQ on residuals (Jegou et al. 2011).
* ``faiss_ivfopq``: OPQMatrix + IndexIVFPQ (factory ``OPQ{M},IVF{nlist},PQ{M}``): a global
  OPQ rotation before the inverted file, the I-OPQ baseline of LOPQ (Kalantidis &
  Avrithis, CVPR 2014).
* ``faiss_pqfs``: IndexPQFastScan, 4-bit PQ with SIMD lookup tables
  (André, Kermarrec, Le Scouarnec, VLDB 2015).

Vectors are float32 (n, d); codes are faiss's standalone codes
(``sa_encode``), uint8 (n, sa_code_size); distances are squared L2.
"""
from __future__ import annotations

import tempfile

import faiss
import numpy as np

from benchpq.api import UNSET, Quantizer, Searcher, equal_bounds
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_k,
    check_positive_int,
    check_subspaces,
)
from benchpq.datasets.context import resolve_cache_dir
from benchpq.metric_table import Metric, declare
from benchpq.registry import register

from ..primitives.codes import appended_rows, unpack_codes
from ..primitives.metric_specs import MEAN_CANDIDATES
from ..primitives.mixins import FittedGuard
from .faiss_ivf_lists import fill_inverted_lists

#: bytes of faiss's PQ encoding table per call: its encoder builds an (rows, M, 2**nbits)
#: float32 table of every row it is given (512 MiB for faiss's own 65,536-row blocks at M=8)
TABLE_BYTES = 64 << 20

#: an index whose codes take more is serialized into an unlinked file of the cache and
#: mapped: ``faiss.serialize_index`` holds faiss's byte vector and its numpy copy (two
#: more copies of the index) in the process
SERIALIZE_IN_FILE_BYTES = 64 << 20


def serialized_in_file(index) -> np.ndarray:
    """faiss's serialization of ``index``, uint8 (n,), written to an unlinked file under
    ``<cache>/codes`` and mapped read-only: the bytes sit in the page cache, and the model
    cache writes them out a chunk at a time."""
    folder = resolve_cache_dir() / "codes"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder) as f:
        writer = faiss.PyCallbackIOWriter(f.write)
        faiss.write_index(index, writer)
        del writer  # flushes faiss's last buffer
        f.flush()
        return np.memmap(f, dtype=np.uint8, mode="r")


def search_with_stats(index, queries: np.ndarray, k: int):
    """``index.search(queries, k)`` of a faiss IVF index, with its scan statistics.

    Resets ``faiss.cvar.indexIVF_stats`` before the search and reads it after.

    Returns:
        distances (nq, k) float32, ids (nq, k) int64 and a dict with
        ``mean_candidates`` (codes scanned per query) and ``mean_lists``
        (non-empty inverted lists visited per query).
    """
    stats = faiss.cvar.indexIVF_stats
    stats.reset()
    distances, ids = index.search(queries, int(k))
    nq = max(int(stats.nq), 1)
    return distances, ids, {"mean_candidates": float(stats.ndis) / nq,
                            "mean_lists": float(stats.nlist) / nq}


#: The statistics search_with_stats returns, declared for the plugins that report them.
IVF_SEARCH_METRICS = declare(MEAN_CANDIDATES, Metric(
    "mean_lists", "Non-empty inverted lists visited per query, averaged over the queries of "
    "the last search (faiss indexIVF_stats.nlist / nq).", direction="min",
    display="Lists per query", scope="search"))


class FaissIndexPlugin(FittedGuard, Quantizer, Searcher):
    """Common plumbing for a faiss index used as quantizer and searcher.

    Subclasses build the index in :meth:`_build`, say how many training vectors it needs
    in :meth:`_min_train` (and what its encoder's table costs per row in
    :meth:`_table_row_bytes`), and report ``code_bits`` and ``model_bytes``.

    An inverted-file index (``_ivf()`` not None) keeps the standalone codes of the vectors
    added in ``_pending`` and fills its inverted lists from them, each list sized once
    (:mod:`.faiss_ivf_lists`), in :meth:`finish_add` or before the index is next used.
    """

    fitted_attribute, fitted_action = "index", "using the index"
    _pending: np.ndarray | None = None

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.index = None
        self.dim = None

    # -- subclass hooks ---------------------------------------------------
    def _build(self, dim: int):
        raise NotImplementedError

    def _min_train(self) -> int:
        """Training vectors the index needs at least."""
        return 1

    def _table_row_bytes(self) -> int:
        """Bytes of the table faiss's encoder builds per row encoded (0: none)."""
        return 0

    def _check_dim(self, dim: int) -> None:
        """Raise InputError if the index cannot take vectors of ``dim`` columns."""

    def _restore(self, index) -> None:
        """Re-attach Python handles to the parts of a deserialised index."""

    def _faiss_metric(self) -> int:
        """faiss's metric constant for the metric in force (:meth:`set_metric`)."""
        return faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2

    def _flat_cells(self, dim: int):
        """A new exact index of an inverted file's cell centroids under the metric in force:
        IndexFlatIP (a query visits the cells of largest inner product) or IndexFlatL2."""
        return faiss.IndexFlatIP(dim) if self.metric == "ip" else faiss.IndexFlatL2(dim)

    # -- pickling: the index through faiss.serialize_index -----------------
    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("index", "_parts",
                                                                     "_coarse", "_pending")}
        if self.index is not None:
            self.filled()
        if self.index is None:
            state["index"] = None
        elif self.codes_bytes > SERIALIZE_IN_FILE_BYTES:
            state["index"] = serialized_in_file(self.index)
        else:
            state["index"] = faiss.serialize_index(self.index)
        return state

    def __setstate__(self, state):
        data = state.pop("index")
        self.__dict__.update(state)
        self.index = None if data is None else faiss.deserialize_index(data)
        if self.index is not None:
            self._restore(self.index)

    # -- Algorithm --------------------------------------------------------
    def set_threads(self, threads: int) -> None:
        faiss.omp_set_num_threads(int(threads))

    def fit(self, x):
        x = as_matrix(x, "learn")
        self._check_dim(x.shape[1])
        check_codebook_size(x.shape[0], self._min_train())
        self.dim = x.shape[1]
        self.index = self._build(self.dim)
        self.index.train(x)
        return self

    def _call_rows(self) -> int:
        """Rows per faiss encode or add call, so that faiss's encoding table stays within
        ``TABLE_BYTES`` (8,192 rows for a PQ at M=8, nbits=8; never more than faiss's own
        65,536)."""
        table_row = self._table_row_bytes()
        return int(min(65536, max(1, TABLE_BYTES // table_row))) if table_row else 65536

    def encode(self, x):
        """faiss's standalone codes of x, ``_call_rows()`` rows per ``sa_encode`` call."""
        index = self.trained()
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], index.sa_code_size()), np.uint8)
        rows = self._call_rows()
        for start in range(0, x.shape[0], rows):
            codes[start:start + rows] = index.sa_encode(x[start:start + rows])
        return codes

    def decode(self, codes):
        index = self.trained()
        codes = as_matrix(codes, "codes", dtype=np.uint8, dim=index.sa_code_size(), finite=False)
        return index.sa_decode(codes)

    def add(self, x):
        """Adds x to the index, ``_call_rows()`` rows per faiss ``add`` call; an inverted
        file appends x's standalone codes to ``_pending`` instead."""
        index = self.trained()
        x = as_matrix(x, "base", dim=self.dim)
        if self._ivf() is not None:
            self._pending = appended_rows(self._pending, self.encode(x))
            return
        rows = self._call_rows()
        for start in range(0, x.shape[0], rows):
            index.add(x[start:start + rows])

    def finish_add(self) -> None:
        self.filled()

    def filled(self):
        """The trained index with every vector added so far in it (an inverted file's lists
        filled from ``_pending``)."""
        index = self.trained()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            ivf = self._ivf()
            fill_inverted_lists(ivf, pending)
            index.ntotal = ivf.ntotal
        return index

    @property
    def ntotal(self) -> int:
        """Vectors added so far (0 before fit)."""
        if self.index is None:
            return 0
        return int(self.index.ntotal) + (0 if self._pending is None else len(self._pending))

    def search(self, queries, k):
        index = self.filled()
        check_k(k, index.ntotal)
        return index.search(as_matrix(queries, "query", dim=self.dim), int(k))

    @property
    def codes_bytes(self) -> int:
        return self.ntotal * int(self.index.sa_code_size()) if self.index else 0

    # -- diagnostics --------------------------------------------------------
    def _ivf(self):
        """The trained index as a faiss IndexIVF (IVFPQ, IMI), or None (PQ, OPQ, fast-scan)."""
        index = faiss.downcast_index(self.trained())
        return index if isinstance(index, faiss.IndexIVF) else None

    def _transformed(self, x: np.ndarray) -> np.ndarray:
        """x in the space the index quantizes (after any pre-transform, e.g. OPQ's rotation)."""
        return x


class FaissProductIndex(FaissIndexPlugin):
    """A faiss index whose codes are product codes: M sub-quantizers of 2**nbits codewords
    each (``pq``), whose sub-codes the diagnostics read."""

    def __init__(self, M: int = 8, nbits: int = 8, seed: int | None = None):
        super().__init__(seed)
        self.M = check_positive_int(M, "M")
        self.nbits = check_positive_int(nbits, "nbits", 1, 16)

    def _min_train(self) -> int:
        return 2 ** self.nbits

    def _check_dim(self, dim: int) -> None:
        check_subspaces(dim, self.M)

    def _table_row_bytes(self) -> int:
        return self.M * (1 << self.nbits) * 4

    def _pq(self):
        return faiss.downcast_index(self.index).pq

    @property
    def code_bits(self) -> int:
        return self.M * self.nbits

    @property
    def model_bytes(self) -> int:
        return int(self._pq().centroids.size() * 4) if self.index else 0

    def subspace_codes(self, codes) -> tuple[np.ndarray, int]:
        """faiss's standalone codes -> ((n, M) PQ sub-codes, 2**nbits); an IVF's list number
        (its first coarse_code_size bytes) is dropped."""
        index = self.trained()
        codes = as_matrix(codes, "codes", dtype=np.uint8, dim=index.sa_code_size(), finite=False)
        ivf = self._ivf()
        skip = ivf.coarse_code_size() if ivf is not None else 0
        return unpack_codes(np.ascontiguousarray(codes[:, skip:]), self.M, self.nbits), \
            1 << self.nbits

    def subspace_view(self, x, codes) -> tuple[np.ndarray, np.ndarray]:
        """x (pre-transformed, if the index has a pre-transform), for an IVF (by residual)
        minus the centroid of the list in ``codes``."""
        x = self._transformed(as_matrix(x, "x", dim=self.dim))
        ivf = self._ivf()
        if ivf is not None and ivf.by_residual:
            ccs = ivf.coarse_code_size()
            codes = as_matrix(codes, "codes", dtype=np.uint8, dim=ivf.sa_code_size(),
                              finite=False)
            lists = codes[:, :ccs].astype(np.int64) @ (256 ** np.arange(ccs, dtype=np.int64))
            unique, inverse = np.unique(lists, return_inverse=True)
            centroids = np.stack([ivf.quantizer.reconstruct(int(v)) for v in unique])
            x = x - centroids[inverse]
        return x, equal_bounds(self.dim, self.M)


@register("faiss_pq")
class FaissPQ(FaissProductIndex):
    """faiss IndexPQ: M sub-quantizers of 2**nbits codewords, exhaustive ADC search (squared
    L2, or METRIC_INNER_PRODUCT under ``ip``)."""

    search_metrics = ("l2", "ip")

    def _build(self, dim):
        index = faiss.IndexPQ(dim, self.M, self.nbits, self._faiss_metric())
        if self.seed is not None:
            index.pq.cp.seed = int(self.seed)
        return index


@register("faiss_opq")
class FaissOPQ(FaissProductIndex):
    """faiss OPQMatrix (non-parametric OPQ rotation) followed by IndexPQ.

    ``niter`` alternations of rotation and PQ training, ``niter_pq`` k-means
    iterations inside each (faiss defaults 50 and 4).
    """

    search_metrics = ("l2", "ip")

    def __init__(self, M: int = 8, nbits: int = 8, niter: int = 50, niter_pq: int = 4,
                 seed: int | None = None):
        super().__init__(M, nbits, seed)
        self.niter = check_positive_int(niter, "niter")
        self.niter_pq = check_positive_int(niter_pq, "niter_pq")

    def _build(self, dim):
        opq = faiss.OPQMatrix(dim, self.M)
        opq.niter, opq.niter_pq = self.niter, self.niter_pq
        pq = faiss.IndexPQ(dim, self.M, self.nbits, self._faiss_metric())
        if self.seed is not None:
            pq.pq.cp.seed = int(self.seed)
        index = faiss.IndexPreTransform(opq, pq)
        self._parts = (opq, pq)  # keep the Python wrappers alive with the index
        return index

    def _pq(self):
        return self._parts[1].pq

    def _restore(self, index) -> None:
        pretransform = faiss.downcast_index(index)
        self._parts = (faiss.downcast_VectorTransform(pretransform.chain.at(0)),
                       faiss.downcast_index(pretransform.index))

    @property
    def model_bytes(self) -> int:
        return super().model_bytes + (self.dim * self.dim * 4 if self.index else 0)

    def subspace_view(self, x, codes) -> tuple[np.ndarray, np.ndarray]:
        """x rotated by the learnt OPQ matrix, where the PQ's sub-spaces are equal blocks."""
        self.trained()
        return self._parts[0].apply(as_matrix(x, "x", dim=self.dim)), \
            equal_bounds(self.dim, self.M)


class InvertedFileSearch:
    """The search side of a faiss inverted-file plugin: nlist cells, ``nprobe`` visited per
    query and at most ``max_codes`` codes scanned (the last list cut; None: no limit), both
    search parameters; the scan statistics of the last search; the 64-bit id stored beside
    each code. A plugin lists it before its index base and calls
    :meth:`_set_inverted_file` in its constructor."""

    metric_specs = IVF_SEARCH_METRICS

    def _set_inverted_file(self, nlist: int, nprobe: int, max_codes: int | None) -> None:
        self.nlist = check_positive_int(nlist, "nlist")
        self.nprobe = check_positive_int(nprobe, "nprobe", 1, self.nlist)
        self.max_codes = None if max_codes in (None, 0) else \
            check_positive_int(max_codes, "max_codes")

    def search(self, queries, k):
        index = self.filled()
        check_k(k, index.ntotal)
        distances, ids, self.last_search = search_with_stats(
            index, as_matrix(queries, "query", dim=self.dim), k)
        return distances, ids

    def set_search_params(self, nprobe: int = UNSET, max_codes: int | None = UNSET,
                          **params) -> None:
        """Change ``nprobe`` (cells visited per query, 1 .. nlist) or ``max_codes`` (codes
        scanned per query at most; None or 0: no limit) without retraining."""
        super().set_search_params(**params)
        if nprobe is not UNSET:
            self.nprobe = check_positive_int(nprobe, "nprobe", 1, self.nlist)
        if max_codes is not UNSET:
            self.max_codes = None if max_codes in (None, 0) else \
                check_positive_int(max_codes, "max_codes")
        if self.index is not None:
            ivf = self._ivf()
            ivf.nprobe, ivf.max_codes = self.nprobe, self.max_codes or 0

    @property
    def codes_bytes(self) -> int:
        # codes plus the 64-bit id stored beside each code in the inverted lists
        return self.ntotal * int(self._ivf().code_size + 8) if self.index else 0

    @property
    def model_bytes(self) -> int:
        return super().model_bytes + (self.nlist * self.dim * 4 if self.index else 0)

    def extra_metrics(self) -> dict:
        return dict(getattr(self, "last_search", {}))


@register("faiss_ivfpq")
class FaissIVFPQ(InvertedFileSearch, FaissProductIndex):
    """faiss IndexIVFPQ: nlist coarse cells, PQ on residuals, nprobe cells visited (and at
    most ``max_codes`` codes scanned per query, the last list cut; None: no limit). Under
    ``ip`` the cells are an IndexFlatIP (a query visits the nprobe cells of largest inner
    product) and the scan ranks by <q, centre> + <q, residual code>."""

    search_metrics = ("l2", "ip")

    def __init__(self, M: int = 8, nbits: int = 8, nlist: int = 256, nprobe: int = 16,
                 max_codes: int | None = None, seed: int | None = None):
        super().__init__(M, nbits, seed)
        self._set_inverted_file(nlist, nprobe, max_codes)

    def _ivf_pq(self, dim):
        """A new IndexIVFPQ with this plugin's settings."""
        coarse = self._flat_cells(dim)
        index = faiss.IndexIVFPQ(coarse, dim, self.nlist, self.M, self.nbits,
                                 self._faiss_metric())
        self._coarse = coarse
        index.nprobe = self.nprobe
        index.max_codes = self.max_codes or 0
        if self.seed is not None:
            index.cp.seed = int(self.seed)
            index.pq.cp.seed = int(self.seed)
        return index

    def _build(self, dim):
        return self._ivf_pq(dim)

    def _min_train(self) -> int:
        return max(self.nlist, 2 ** self.nbits)


@register("faiss_ivfopq")
class FaissIVFOPQ(FaissIVFPQ):
    """faiss OPQMatrix followed by IndexIVFPQ (``OPQ{M},IVF{nlist},PQ{M}``): I-OPQ.

    The rotation (``niter`` alternations of rotation and PQ training, ``niter_pq`` k-means
    iterations each; faiss's defaults 50 and 4) is learnt on the training set, then the
    inverted file and the PQ of residuals on the rotated vectors.
    """

    def __init__(self, M: int = 8, nbits: int = 8, nlist: int = 256, nprobe: int = 16,
                 max_codes: int | None = None, niter: int = 50, niter_pq: int = 4,
                 seed: int | None = None):
        super().__init__(M, nbits, nlist, nprobe, max_codes, seed)
        self.niter = check_positive_int(niter, "niter")
        self.niter_pq = check_positive_int(niter_pq, "niter_pq")

    def _build(self, dim):
        opq = faiss.OPQMatrix(dim, self.M)
        opq.niter, opq.niter_pq = self.niter, self.niter_pq
        ivf = self._ivf_pq(dim)
        index = faiss.IndexPreTransform(opq, ivf)
        self._parts = (opq, ivf)  # keep the Python wrappers alive with the index
        return index

    def _pq(self):
        return self._parts[1].pq

    def _ivf(self):
        self.trained()
        return self._parts[1]

    def _restore(self, index) -> None:
        pretransform = faiss.downcast_index(index)
        self._parts = (faiss.downcast_VectorTransform(pretransform.chain.at(0)),
                       faiss.downcast_index(pretransform.index))

    def _transformed(self, x: np.ndarray) -> np.ndarray:
        return self._parts[0].apply(x)

    @property
    def model_bytes(self) -> int:
        return super().model_bytes + (self.dim * self.dim * 4 if self.index else 0)


@register("faiss_pqfs")
class FaissPQFastScan(FaissProductIndex):
    """faiss IndexPQFastScan: 4-bit PQ codes scanned with SIMD in-register tables (squared L2,
    or METRIC_INNER_PRODUCT under ``ip``)."""

    search_metrics = ("l2", "ip")

    def __init__(self, M: int = 16, nbits: int = 4, seed: int | None = None):
        if nbits != 4:
            raise InputError(f"faiss_pqfs: fast-scan needs nbits=4, got {nbits}")
        super().__init__(M, nbits, seed)

    def _build(self, dim):
        index = faiss.IndexPQFastScan(dim, self.M, self.nbits, self._faiss_metric())
        if self.seed is not None:
            index.pq.cp.seed = int(self.seed)
        return index

    @property
    def codes_bytes(self) -> int:
        return int(self.index.codes.size()) if self.index else 0
