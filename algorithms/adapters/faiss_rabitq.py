"""faiss's RaBitQ indexes as quantizers and searchers: ``faiss_rabitq``, ``faiss_ivfrabitq``,
``faiss_rabitqfs``, ``faiss_ivfrabitqfs``.

RaBitQ (Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error
Bound for Approximate Nearest Neighbor Search", SIGMOD 2024): a vector's residual to a centre
(the mean of the training set; an IVF index's list centroid) is stored as the signs of its
coordinates, with per-vector factors (its norm, its inner product with its sign code) that
make the distance estimate unbiased; ``nb_bits`` > 1 adds nb_bits - 1 bits per coordinate
(extended RaBitQ, Gao, Gou, Xu, Yang, Long & Wong, SIGMOD 2025). Queries are quantized to
``qb`` bits per coordinate (0: float queries; fast-scan needs 1 .. 8), by a zero-centred
scalar quantizer if ``centered``.

* ``faiss_rabitq``: IndexRaBitQ, exhaustive scan of the estimates.
* ``faiss_ivfrabitq``: IndexIVFRaBitQ, nlist k-means cells, nprobe visited.
* ``faiss_rabitqfs`` / ``faiss_ivfrabitqfs``: IndexRaBitQFastScan / IndexIVFRaBitQFastScan,
  the 1-bit codes scanned 32 at a time with SIMD lookup tables (André, Kermarrec, Le
  Scouarnec, VLDB 2015).

faiss leaves RaBitQ's random rotation to the caller (its factory's ``RR{d},`` prefix):
``rotate`` multiplies every vector by a seeded random orthogonal matrix first, as the paper
prescribes (on siftsmall it lifts exhaustive 1-bit recall@10 from 0.75 to 0.88). The plugin
rotates with our native row product (``cpp/itq.h`` ``itq_project``, every output summed in
one fixed order), so that a vector's rotation, hence its code and its factors, do not
depend on the batch it came in nor on its place in it (faiss's IndexPreTransform rotates
each call's rows with one BLAS product, and an sgemm's rounding of a row can depend on the
call's size and on the row's place in the tile: measured on an AVX-512 machine).
``refine`` keeps every added vector as float32 too (IndexRefineFlat around the index, in the
rotated frame, where distances are the same), so that the search parameter ``rerank`` = k'
re-ranks the k' best estimates with exact distances.

Vectors are float32 (n, d); codes are faiss's standalone codes (``sa_encode``): for an IVF
index the list number first, then the sign bits, the extra bits and the factors, uint8
(n, sa_code_size). ``decode`` is faiss's ``sa_decode``, which (faiss 1.15.1) rebuilds a
vector from its sign bits and factors only: its error is the same for every nb_bits.
"""
from __future__ import annotations

import faiss
import numpy as np

from benchpq import native
from benchpq.api import UNSET
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_k,
    check_positive_int,
)
from benchpq.registry import register

from ..own.itq import ITQ_CALLS
from ..primitives.checks import check_flag, plugin_seed
from ..primitives.codes import appended_rows
from ..primitives.rotations import random_rotation
from .faiss_quantizers import IVF_SEARCH_METRICS, FaissIndexPlugin

#: bits per coordinate faiss's RaBitQuantizer takes (1: RaBitQ; more: extended RaBitQ)
NB_BITS_RANGE = (1, 9)
#: query bits faiss takes: 0 (float queries) .. 8; fast-scan needs quantized queries
QB_MAX = 8
#: vectors per SIMD block of the fast-scan indexes
FAST_SCAN_BLOCK = 32
def rotated_rows(x: np.ndarray, R: np.ndarray) -> np.ndarray:
    """x (n, d) float32 times R (d, d') float32 by our native product: a row's result is the
    same whatever the rows around it, on every SIMD path and thread count."""
    out = np.empty((x.shape[0], R.shape[1]), np.float32)
    ITQ_CALLS.call(native.load(), "itq_project", x, x.shape[0], x.shape[1],
                   np.zeros(x.shape[1], np.float32), R, R.shape[1], out)
    return out


def check_qb(qb, fast_scan: bool) -> int:
    """qb as an int in [0, 8] ([1, 8] for fast-scan), or InputError naming qb."""
    return check_positive_int(qb, "qb", 1 if fast_scan else 0, QB_MAX)


class FaissRaBitQIndex(FaissIndexPlugin):
    """Common plumbing of the RaBitQ plugins: the rotation, the refine wrapper, the search
    parameters (qb, centered, rerank) and the sizes.

    The index is the RaBitQ index (``_parts[0]``), inside an IndexRefineFlat if ``refine``;
    ``rotation`` is the (d, d) float32 orthogonal matrix the vectors are multiplied by first
    (None unless ``rotate``). ``fast_scan`` classes take qb in 1 .. 8 and keep their codes
    in SIMD blocks.
    """

    fast_scan = False
    #: faiss's RaBitQ indexes estimate inner products too (METRIC_INNER_PRODUCT; the IVF
    #: cells an IndexFlatIP); the rotation, being orthogonal, keeps them
    search_metrics = ("l2", "ip")

    def set_threads(self, threads: int) -> None:
        """faiss's threads and our native core's, which rotates the vectors."""
        super().set_threads(threads)
        native.set_num_threads(int(threads))

    def __init__(self, nb_bits: int = 1, rotate: bool = True, refine: bool = False,
                 qb: int = 4, centered: bool = False, rerank: int = 0,
                 seed: int | None = None):
        super().__init__(seed)
        self.nb_bits = check_positive_int(nb_bits, "nb_bits", *NB_BITS_RANGE)
        self.rotate = check_flag(rotate, "rotate")
        self.refine = check_flag(refine, "refine")
        self.rotation = None
        self.qb, self.centered, self.rerank = QB_MAX, False, 0
        # this class's checks (a subclass's take nprobe, which is not set yet)
        FaissRaBitQIndex.set_search_params(self, qb=qb, centered=centered, rerank=rerank)

    # -- the index ----------------------------------------------------------
    def _core(self, dim: int):
        """A new RaBitQ index of this plugin's kind."""
        raise NotImplementedError

    def _build(self, dim):
        core = self._core(dim)
        self._parts = (core,)  # keep the Python wrapper alive with the index
        return faiss.IndexRefineFlat(core) if self.refine else core

    def _restore(self, index) -> None:
        core = faiss.downcast_index(index)
        if isinstance(core, faiss.IndexRefine):
            core = faiss.downcast_index(core.base_index)
        self._parts = (core,)

    def _rotated(self, x: np.ndarray) -> np.ndarray:
        """x in the frame the RaBitQ index quantizes (x itself unless ``rotate``)."""
        return x if self.rotation is None else rotated_rows(x, self.rotation)

    def fit(self, x):
        x = as_matrix(x, "learn")
        check_codebook_size(x.shape[0], self._min_train())
        self.dim = x.shape[1]
        self.rotation = random_rotation(self.dim, plugin_seed(self.seed)) if self.rotate \
            else None
        self.index = self._build(self.dim)
        self.index.train(self._rotated(x))
        return self

    def _ivf(self):
        self.trained()
        core = self._parts[0]
        return core if isinstance(core, faiss.IndexIVF) else None

    def _fills_lists(self) -> bool:
        """True when the inverted lists are filled from standalone codes (faiss_ivf_lists);
        fast-scan lists are SIMD blocks, filled by faiss's own add."""
        return self._ivf() is not None and not self.fast_scan

    # -- Quantizer ----------------------------------------------------------
    def encode(self, x):
        """faiss's standalone codes of x (rotated first if ``rotate``)."""
        self.trained()
        core = self._parts[0]
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], core.sa_code_size()), np.uint8)
        rows = self._call_rows()
        for start in range(0, x.shape[0], rows):
            codes[start:start + rows] = core.sa_encode(self._rotated(x[start:start + rows]))
        return codes

    def decode(self, codes):
        """faiss's ``sa_decode`` (sign bits and factors), rotated back if ``rotate``."""
        self.trained()
        core = self._parts[0]
        codes = as_matrix(codes, "codes", dtype=np.uint8, dim=core.sa_code_size(),
                          finite=False)
        x = core.sa_decode(codes)
        return x if self.rotation is None else \
            rotated_rows(x, np.ascontiguousarray(self.rotation.T))

    # -- Searcher -----------------------------------------------------------
    def add(self, x):
        """Adds x (rotated if ``rotate``): an IVF index (not fast-scan) appends x's standalone
        codes to ``_pending`` (its lists are filled from them), the others go through faiss's
        ``add``; with ``refine`` the float vectors are kept too."""
        index = self.trained()
        x = as_matrix(x, "base", dim=self.dim)
        rows = self._call_rows()
        for start in range(0, x.shape[0], rows):
            block = self._rotated(x[start:start + rows])
            if not self._fills_lists():
                index.add(block)
                continue
            self._pending = appended_rows(self._pending, self._parts[0].sa_encode(block))
            if self.refine:
                faiss.downcast_index(index).refine_index.add(block)

    def set_search_params(self, qb: int = UNSET, centered: bool = UNSET, rerank: int = UNSET,
                          **params) -> None:
        """Change ``qb`` (query bits, 0 .. 8; fast-scan 1 .. 8), ``centered`` (zero-centred
        query quantizer) or ``rerank`` (0: off; k' >= k: the k' best estimates re-ranked
        with exact distances, which needs ``refine``) without retraining."""
        super().set_search_params(**params)
        if qb is not UNSET:
            self.qb = check_qb(qb, self.fast_scan)
        if centered is not UNSET:
            self.centered = check_flag(centered, "centered")
        if rerank is not UNSET:
            rerank = check_positive_int(rerank, "rerank", 0)
            if rerank and not self.refine:
                raise InputError(f"rerank={rerank} needs the exact vectors: build with "
                                 f"refine: true (rerank 0 searches the estimates alone)")
            self.rerank = rerank

    def _core_params(self):
        """The RaBitQ index's search parameters (fast-scan: set on the index, None)."""
        params = faiss.RaBitQSearchParameters()
        params.qb, params.centered = self.qb, self.centered
        return params

    def search(self, queries, k):
        index = self.filled()
        k = check_k(k, index.ntotal)
        queries = self._rotated(as_matrix(queries, "query", dim=self.dim))
        params = self._core_params()
        searched = self._parts[0]  # the estimates alone, unless re-ranked
        if self.rerank:
            if self.rerank < k:
                raise InputError(f"rerank={self.rerank} is below k={k}: re-ranking takes the "
                                 f"k' >= k best estimates")
            inner, params = params, faiss.IndexRefineSearchParameters()
            params.base_index_params = inner
            # faiss takes int(k * k_factor) estimates: half a vector of margin for rounding
            params.k_factor = (min(self.rerank, index.ntotal) + 0.5) / k
            searched = index
        stats = faiss.cvar.indexIVF_stats
        stats.reset()
        distances, ids = searched.search(queries, k, params=params)
        self.last_search = self._scan_stats(stats)
        return distances, ids

    def _scan_stats(self, stats) -> dict:
        """What faiss's IVF statistics of the last search say (none for a flat index)."""
        return {}

    # -- sizes --------------------------------------------------------------
    @property
    def code_bits(self) -> int:
        """Bits of the quantized vector, d * nb_bits (its factors are in codes_bytes)."""
        return int(self.dim or 0) * self.nb_bits

    def _codes_bytes(self) -> int:
        """Bytes of the RaBitQ codes held (codes and factors, ids of an IVF index)."""
        return self.ntotal * int(self._parts[0].code_size)

    @property
    def codes_bytes(self) -> int:
        if self.index is None:
            return 0
        return self._codes_bytes() + (self.ntotal * self.dim * 4 if self.refine else 0)

    def _model_arrays_bytes(self) -> int:
        """Bytes of the core's trained arrays: the centre (flat) or the list centroids."""
        return self.dim * 4

    @property
    def model_bytes(self) -> int:
        if self.index is None:
            return 0
        return self._model_arrays_bytes() + (self.dim * self.dim * 4 if self.rotate else 0)


class FaissIVFRaBitQIndex(FaissRaBitQIndex):
    """An inverted file of RaBitQ codes: nlist k-means cells, nprobe visited per query."""

    metric_specs = IVF_SEARCH_METRICS

    def __init__(self, nb_bits: int = 1, nlist: int = 1024, nprobe: int = 16,
                 rotate: bool = True, refine: bool = False, qb: int = 4,
                 centered: bool = False, rerank: int = 0, seed: int | None = None):
        self.nlist = check_positive_int(nlist, "nlist")
        self.nprobe = check_positive_int(nprobe, "nprobe", 1, self.nlist)
        super().__init__(nb_bits, rotate, refine, qb, centered, rerank, seed)

    def _coarse_index(self, dim):
        self._coarse = self._flat_cells(dim)
        return self._coarse

    def _seeded(self, index):
        if self.seed is not None:
            index.cp.seed = int(self.seed)
        return index

    def _min_train(self) -> int:
        return self.nlist

    def fit(self, x):
        x = as_matrix(x, "learn")
        check_codebook_size(x.shape[0], self.nlist, "nlist k-means cells")
        return super().fit(x)

    def set_search_params(self, nprobe: int = UNSET, qb: int = UNSET, centered: bool = UNSET,
                          rerank: int = UNSET, **params) -> None:
        """Change ``nprobe`` (cells visited per query, 1 .. nlist), ``qb``, ``centered`` or
        ``rerank`` (see :meth:`FaissRaBitQIndex.set_search_params`) without retraining."""
        super().set_search_params(qb=qb, centered=centered, rerank=rerank, **params)
        if nprobe is not UNSET:
            self.nprobe = check_positive_int(nprobe, "nprobe", 1, self.nlist)

    def _core_params(self):
        params = faiss.IVFRaBitQSearchParameters()
        params.nprobe, params.qb, params.centered = self.nprobe, self.qb, self.centered
        return params

    def _scan_stats(self, stats) -> dict:
        """mean_lists and mean_candidates of faiss's indexIVF_stats. For nb_bits > 1 faiss
        counts in ndis only the codes whose extra bits it read (those whose 1-bit estimate
        could enter the top k: 129 of the 2,583 codes in 16 of 64 lists on siftsmall), so
        mean_candidates is given for 1-bit codes only."""
        nq = max(int(stats.nq), 1)
        out = {"mean_lists": float(stats.nlist) / nq}
        if self.nb_bits == 1:
            out["mean_candidates"] = float(stats.ndis) / nq
        return out

    def _codes_bytes(self) -> int:
        # each code with the 64-bit id stored beside it in the inverted lists
        return self.ntotal * int(self._parts[0].code_size + 8)

    def _model_arrays_bytes(self) -> int:
        return self.nlist * self.dim * 4

    def extra_metrics(self) -> dict:
        return dict(getattr(self, "last_search", {}))


@register("faiss_rabitq")
class FaissRaBitQ(FaissRaBitQIndex):
    """faiss IndexRaBitQ: RaBitQ codes of the residuals to the training mean, exhaustive
    scan of the distance estimates."""

    def _core(self, dim):
        return faiss.IndexRaBitQ(dim, self._faiss_metric(), self.nb_bits)


@register("faiss_ivfrabitq")
class FaissIVFRaBitQ(FaissIVFRaBitQIndex):
    """faiss IndexIVFRaBitQ: RaBitQ codes of the residuals to the list centroids."""

    def _core(self, dim):
        return self._seeded(faiss.IndexIVFRaBitQ(self._coarse_index(dim), dim, self.nlist,
                                                 self._faiss_metric(), True, self.nb_bits))


@register("faiss_rabitqfs")
class FaissRaBitQFastScan(FaissRaBitQIndex):
    """faiss IndexRaBitQFastScan: IndexRaBitQ's codes in SIMD blocks of 32 vectors (sign bits
    interleaved, factors beside them), scanned with 4-bit lookup tables."""

    fast_scan = True

    def __init__(self, nb_bits: int = 1, rotate: bool = True, refine: bool = False,
                 qb: int = 8, centered: bool = False, rerank: int = 0,
                 seed: int | None = None):
        super().__init__(nb_bits, rotate, refine, qb, centered, rerank, seed)

    def _core(self, dim):
        return faiss.IndexRaBitQFastScan(dim, self._faiss_metric(), FAST_SCAN_BLOCK,
                                         self.nb_bits)

    def _core_params(self):
        # IndexRaBitQFastScan.search refuses search parameters: its own fields are set
        core = self._parts[0]
        core.qb, core.centered = self.qb, self.centered
        return None

    def _codes_bytes(self) -> int:
        # whole blocks of 32 codes with their factors
        return int(self._parts[0].codes.size())


@register("faiss_ivfrabitqfs")
class FaissIVFRaBitQFastScan(FaissIVFRaBitQIndex):
    """faiss IndexIVFRaBitQFastScan: IndexIVFRaBitQ's codes in SIMD blocks of 32 vectors per
    inverted list, scanned with 4-bit lookup tables."""

    fast_scan = True

    def __init__(self, nb_bits: int = 1, nlist: int = 1024, nprobe: int = 16,
                 rotate: bool = True, refine: bool = False, qb: int = 8,
                 centered: bool = False, rerank: int = 0, seed: int | None = None):
        super().__init__(nb_bits, nlist, nprobe, rotate, refine, qb, centered, rerank, seed)

    def _core(self, dim):
        return self._seeded(faiss.IndexIVFRaBitQFastScan(
            self._coarse_index(dim), dim, self.nlist, self._faiss_metric(), FAST_SCAN_BLOCK, True,
            self.nb_bits))

    def _scan_stats(self, stats) -> dict:
        """mean_candidates (faiss's ndis: every code of the lists visited); the fast-scan
        search counts its lists otherwise (1.7 per query at nprobe=16), so no mean_lists."""
        return {"mean_candidates": float(stats.ndis) / max(int(stats.nq), 1)}

    def _codes_bytes(self) -> int:
        # each list's codes in whole blocks, and a 64-bit id per vector
        lists = faiss.downcast_InvertedLists(self._parts[0].invlists)
        sizes = np.array([lists.list_size(c) for c in range(self.nlist)], np.int64)
        blocks = -(-sizes // lists.n_per_block)
        return int(blocks.sum()) * int(lists.block_size) + int(sizes.sum()) * 8
