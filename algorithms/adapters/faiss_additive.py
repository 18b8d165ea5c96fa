"""faiss additive quantizers as quantizers and exhaustive searchers.

An additive quantizer approximates a vector by the sum of M codewords, one from each of M
codebooks of 2**nbits d-dimensional codewords (Babenko & Lempitsky, "Additive quantization
for extreme vector compression", CVPR 2014):

* ``faiss_rq``: IndexResidualQuantizer: codebook m quantizes what the first m left (Chen,
  Guan, Wang, "Approximate nearest neighbor search by residual vector quantization",
  Sensors 2010); faiss trains each codebook by k-means (``niter`` iterations) and encodes
  by beam search, keeping ``max_beam_size`` partial codes.
* ``faiss_lsq``: IndexLocalSearchQuantizer: codebooks learnt jointly, codes found by
  iterated local search (Martinez, Zakhmi, Hoos, Little, "LSQ++: Lower running time and
  higher recall in multi-codebook quantization", ECCV 2018): ``train_iters`` training
  rounds, ``encode_ils_iters`` perturbation rounds per encoding.
* ``faiss_prq``, ``faiss_plsq``: the vector cut into ``nsplits`` equal blocks, each with an
  RQ / LSQ of M codebooks of its own (faiss's ProductResidualQuantizer and
  ProductLocalSearchQuantizer).
* ``faiss_rqfs``, ``faiss_lsqfs``, ``faiss_prqfs``, ``faiss_plsqfs``: the same with 4-bit
  codebooks, scanned with SIMD lookup tables of 8-bit entries (faiss's
  IndexAdditiveQuantizerFastScan; fast scan: André, Kermarrec, Le Scouarnec, VLDB 2015).
  Their distances are faiss's approximate ones plus the query's squared norm, which
  faiss leaves out (it does not change the ranking). When the norm's lookup table spans
  more than the codes' (faiss's ``norm_scale`` > 1, set in training), faiss scales it down
  and back up (``rescale_norm``, faiss's default); its distances then carry an offset
  common to all results (measured on siftsmall: -92% to -122% of the mean distance, some
  negative), the ranking unchanged. ``rescale_norm=False`` keeps the distances within 1%
  (recall within 0.01 of the rescaled search, measured).

Search is exhaustive: ||q - x'||^2 = ||q||^2 - 2 <q, x'> + ||x'||^2, the inner product from
a lookup table per codebook, the norm of the reconstruction x' stored beside each code as
``search_type`` says (:data:`SEARCH_TYPES`, faiss's ``AdditiveQuantizer.ST_*`` without the
prefix): ``norm_float`` (32 bits), ``norm_qint8`` / ``norm_qint4`` (uniform), ``norm_cqint8``
/ ``norm_cqint4`` (non-uniform), ``norm_rq2x4`` / ``norm_lsq2x4`` (two 4-bit codebooks, the
only ones fast-scan takes); ``decompress`` stores none and decodes every database vector;
``norm_from_LUT`` (``faiss_rq`` only) computes the norm from codebook cross products. The
default of the non-fast-scan indexes is ``norm_qint8``, the norm faiss's additive-quantizer
benchmarks store (8 bits: "RQ8x8_Nqint8"); of the fast-scan ones faiss's own default.

Vectors are float32 (n, d); codes are faiss's standalone codes (``sa_encode``): the codebook
indices, then the stored norm, packed in uint8 (n, sa_code_size). ``code_bits`` counts the
codebook indices (M * nbits, times nsplits for a product), not the norm; ``codes_bytes``
counts what the index stores per vector, norm included; ``model_bytes`` the codebooks and
faiss's table of the norm quantizer's values, float32.
"""
from __future__ import annotations

import faiss
import numpy as np

from benchpq.checks import InputError, as_matrix, check_k, check_positive_int
from benchpq.registry import register

from ..primitives.checks import check_flag, plugin_seed
from .faiss_quantizers import TABLE_BYTES, FaissIndexPlugin

#: {search_type name: faiss AdditiveQuantizer.ST_* value}, read from the installed faiss
SEARCH_TYPES = {name[len("ST_"):]: getattr(faiss.AdditiveQuantizer, name)
                for name in dir(faiss.AdditiveQuantizer)
                if name.startswith("ST_") and name != "ST_count"}

#: why a search type is refused by the indexes that refuse it
REFUSED = {
    "LUT_nonorm": "it leaves out the database norms (faiss: for inner products or normalised "
                  "vectors), so its distances are not squared L2",
    "norm_from_LUT": "faiss computes the codebook cross products it needs only when it trains "
                     "a residual quantizer (faiss_rq); any other index aborts the process",
}

#: the search types of the indexes that are not fast-scan, faiss_rq aside
L2_SEARCH_TYPES = tuple(s for s in SEARCH_TYPES if s not in REFUSED)

#: the norm storage a fast-scan index takes: a code of two 4-bit codebooks
FAST_SCAN_NORMS = ("norm_rq2x4", "norm_lsq2x4")

#: rows a local-search encoder encodes in one faiss call, with one seed: the first
#: ``LSQ_CHUNK_ROWS`` rows of a base, then the next, ... (faiss's LSQ chunk_size)
LSQ_CHUNK_ROWS = 10_000


def check_search_type(search_type, valid) -> str:
    """``search_type`` if it is in ``valid``, else InputError naming the valid ones."""
    if search_type not in valid:
        why = f" ({REFUSED[search_type]})" if search_type in REFUSED else ""
        raise InputError(f"search_type: expected one of {sorted(valid)}, got "
                         f"{search_type!r}{why}")
    return search_type


def parts(aq) -> list:
    """The quantizers that hold the codebooks of faiss AdditiveQuantizer ``aq``, downcast:
    its nsplits sub-quantizers for a product quantizer, else ``aq`` itself."""
    aq = faiss.downcast_AdditiveQuantizer(aq)
    if isinstance(aq, faiss.ProductAdditiveQuantizer):
        return [faiss.downcast_AdditiveQuantizer(aq.subquantizer(i)) for i in range(aq.nsplits)]
    return [aq]


class FaissAdditiveIndex(FaissIndexPlugin):
    """A faiss index over an additive quantizer (``index.aq``): nsplits blocks of the vector,
    each with M codebooks of 2**nbits codewords.

    Subclasses create the index in :meth:`_new_index` and set its quantizers' options in
    :meth:`_configure`, which also runs after deserialisation (faiss does not store them all).
    """

    #: the search types the index takes
    search_types: tuple[str, ...] = L2_SEARCH_TYPES
    #: by inner product: faiss's METRIC_INNER_PRODUCT look-up tables
    search_metrics = ("l2", "ip")
    #: the only nbits the index takes (None: 1 .. 16)
    fixed_nbits: int | None = None

    def __init__(self, M: int, nbits: int, search_type: str, nsplits: int = 1,
                 seed: int | None = None):
        super().__init__(seed)
        self.M = check_positive_int(M, "M")
        if self.fixed_nbits is not None and nbits != self.fixed_nbits:
            raise InputError(f"nbits: fast scan needs nbits={self.fixed_nbits}, got {nbits!r}")
        self.nbits = check_positive_int(nbits, "nbits", 1, 16)
        self.nsplits = check_positive_int(nsplits, "nsplits")
        self.search_type = check_search_type(search_type, self.search_types)

    def _new_index(self, dim: int, search_type: int):
        raise NotImplementedError

    def _configure(self, index) -> None:
        """Set the training and encoding options of ``index``'s quantizers."""

    def _build(self, dim):
        index = self._new_index(dim, SEARCH_TYPES[self.search_type])
        self._configure(index)
        return index

    def _restore(self, index) -> None:
        self._configure(index)

    def _check_dim(self, dim: int) -> None:
        if dim % self.nsplits:
            raise InputError(f"nsplits={self.nsplits} does not divide the dimension D={dim}")

    def _min_train(self) -> int:
        return 2 ** self.nbits

    @property
    def code_bits(self) -> int:
        return self.nsplits * self.M * self.nbits

    @property
    def model_bytes(self) -> int:
        if self.index is None:
            return 0
        aq = faiss.downcast_index(self.index).aq
        return 4 * int(aq.codebooks.size() + aq.qnorm.ntotal)


class ResidualTraining:
    """Options of faiss's residual quantizers: ``max_beam_size`` partial codes kept while
    encoding (and training), ``niter`` k-means iterations per codebook. faiss encodes in
    chunks of at most ``max_mem_distances`` bytes of beam distances (5 GiB by default):
    capped here at ``TABLE_BYTES``, a cap faiss does not store."""

    def _residual_options(self, max_beam_size, niter) -> None:
        self.max_beam_size = check_positive_int(max_beam_size, "max_beam_size")
        self.niter = check_positive_int(niter, "niter")

    def _configure(self, index) -> None:
        for rq in parts(faiss.downcast_index(index).aq):
            rq.max_beam_size = self.max_beam_size
            rq.cp.niter = self.niter
            rq.max_mem_distances = TABLE_BYTES
            if self.seed is not None:
                rq.cp.seed = int(self.seed)


class LocalSearchEncoding:
    """Options of faiss's local-search quantizers (``train_iters``, ``encode_ils_iters``), and
    codes that do not depend on how a base is cut in blocks.

    faiss's LSQ draws the random start and perturbations of all rows of a call from one
    generator seeded once per call, so a row's code depends on the rows encoded with it.
    Rows are therefore encoded in chunks of ``LSQ_CHUNK_ROWS`` by position (in the array
    given to ``encode``, or in the base added so far), chunk k with seed ``seed + k``
    (seed None: 0). The rows of an unfinished chunk wait in ``_unencoded`` (float32, fewer
    than ``LSQ_CHUNK_ROWS``) until it fills or the index is next used; a search between two
    adds ends the chunk there.
    """

    _unencoded: np.ndarray | None = None

    def _local_search_options(self, train_iters, encode_ils_iters) -> None:
        self.train_iters = check_positive_int(train_iters, "train_iters")
        self.encode_ils_iters = check_positive_int(encode_ils_iters, "encode_ils_iters")

    def _configure(self, index) -> None:
        for lsq in parts(faiss.downcast_index(index).aq):
            lsq.train_iters = self.train_iters
            lsq.encode_ils_iters = self.encode_ils_iters
        self._seed_chunk(index, 0)

    def _seed_chunk(self, index, chunk: int) -> None:
        for lsq in parts(faiss.downcast_index(index).aq):
            lsq.random_seed = (plugin_seed(self.seed) + chunk) % 2 ** 31

    def encode(self, x):
        index = self.trained()
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], index.sa_code_size()), np.uint8)
        for chunk, start in enumerate(range(0, x.shape[0], LSQ_CHUNK_ROWS)):
            self._seed_chunk(index, chunk)
            codes[start:start + LSQ_CHUNK_ROWS] = index.sa_encode(x[start:start + LSQ_CHUNK_ROWS])
        return codes

    def _room(self) -> int:
        """Rows from the index's end to the end of its current chunk."""
        return LSQ_CHUNK_ROWS - int(self.index.ntotal) % LSQ_CHUNK_ROWS

    def _add_chunk(self, rows: np.ndarray) -> None:
        """Add rows that do not cross the end of the index's current chunk."""
        self._seed_chunk(self.index, int(self.index.ntotal) // LSQ_CHUNK_ROWS)
        self.index.add(rows)

    def add(self, x):
        self.trained()
        x = as_matrix(x, "base", dim=self.dim)
        waiting = x[:0] if self._unencoded is None else self._unencoded
        self._unencoded = None
        need = self._room() - waiting.shape[0]  # rows of x that fill the current chunk
        head = np.concatenate([waiting, x[:need]])  # a copy: x may be a view of a larger base
        if head.shape[0] < self._room():
            self._unencoded = head
            return
        self._add_chunk(head)
        for start in range(need, x.shape[0], LSQ_CHUNK_ROWS):
            rows = x[start:start + LSQ_CHUNK_ROWS]
            if rows.shape[0] < LSQ_CHUNK_ROWS:
                self._unencoded = np.array(rows)
                return
            self._add_chunk(rows)

    def filled(self):
        index = super().filled()
        if self._unencoded is not None:
            rows, self._unencoded = self._unencoded, None
            self._add_chunk(rows)
        return index

    @property
    def ntotal(self) -> int:
        return super().ntotal + (0 if self._unencoded is None else self._unencoded.shape[0])

    def __getstate__(self):
        if self.index is not None:
            self.filled()
        return super().__getstate__()


class FastScanIndex:
    """What faiss's additive fast-scan indexes do differently: nbits 4 and a norm of two
    4-bit codes; codes packed in blocks of ``bbs`` vectors (M2 4-bit entries each, M plus
    the norm's 2 rounded up to even); distances returned without the query's squared norm,
    added here; the norm's table rescaled or not (``rescale_norm``)."""

    search_types = FAST_SCAN_NORMS
    fixed_nbits = 4
    #: the norm code and the query norm added back serve L2 only
    search_metrics = ("l2",)

    def _fast_scan_options(self, rescale_norm) -> None:
        self.rescale_norm = check_flag(rescale_norm, "rescale_norm")

    def _configure(self, index) -> None:
        faiss.downcast_index(index).rescale_norm = self.rescale_norm
        super()._configure(index)

    def search(self, queries, k):
        index = self.filled()
        check_k(k, index.ntotal)
        queries = as_matrix(queries, "query", dim=self.dim)
        distances, ids = index.search(queries, int(k))
        norms = np.einsum("ij,ij->i", queries, queries)[:, None]
        return np.where(ids >= 0, distances + norms, distances).astype(np.float32), ids

    @property
    def codes_bytes(self) -> int:
        if self.index is None:
            return 0
        index = faiss.downcast_index(self.index)
        return -(-self.ntotal // index.bbs) * index.bbs * index.M2 // 2



# -- the plugins --------------------------------------------------------------------------

@register("faiss_rq")
class FaissRQ(ResidualTraining, FaissAdditiveIndex):
    """faiss IndexResidualQuantizer: M codebooks of 2**nbits codewords, beam-search encoding."""

    search_types = (*L2_SEARCH_TYPES, "norm_from_LUT")

    def __init__(self, M: int = 8, nbits: int = 8, max_beam_size: int = 5, niter: int = 10,
                 search_type: str = "norm_qint8", seed: int | None = None):
        super().__init__(M, nbits, search_type, seed=seed)
        self._residual_options(max_beam_size, niter)

    def _new_index(self, dim, search_type):
        return faiss.IndexResidualQuantizer(dim, self.M, self.nbits, self._faiss_metric(),
                                            search_type)


@register("faiss_lsq")
class FaissLSQ(LocalSearchEncoding, FaissAdditiveIndex):
    """faiss IndexLocalSearchQuantizer: M codebooks of 2**nbits codewords, iterated local
    search encoding."""

    def __init__(self, M: int = 8, nbits: int = 8, train_iters: int = 25,
                 encode_ils_iters: int = 16, search_type: str = "norm_qint8",
                 seed: int | None = None):
        super().__init__(M, nbits, search_type, seed=seed)
        self._local_search_options(train_iters, encode_ils_iters)

    def _new_index(self, dim, search_type):
        return faiss.IndexLocalSearchQuantizer(dim, self.M, self.nbits, self._faiss_metric(),
                                               search_type)


@register("faiss_prq")
class FaissPRQ(ResidualTraining, FaissAdditiveIndex):
    """faiss IndexProductResidualQuantizer: nsplits blocks, each an RQ of M codebooks."""

    def __init__(self, nsplits: int = 2, M: int = 4, nbits: int = 8, max_beam_size: int = 5,
                 niter: int = 10, search_type: str = "norm_qint8", seed: int | None = None):
        super().__init__(M, nbits, search_type, nsplits, seed)
        self._residual_options(max_beam_size, niter)

    def _new_index(self, dim, search_type):
        return faiss.IndexProductResidualQuantizer(dim, self.nsplits, self.M, self.nbits,
                                                   self._faiss_metric(), search_type)


@register("faiss_plsq")
class FaissPLSQ(LocalSearchEncoding, FaissAdditiveIndex):
    """faiss IndexProductLocalSearchQuantizer: nsplits blocks, each an LSQ of M codebooks."""

    def __init__(self, nsplits: int = 2, M: int = 4, nbits: int = 8, train_iters: int = 25,
                 encode_ils_iters: int = 16, search_type: str = "norm_qint8",
                 seed: int | None = None):
        super().__init__(M, nbits, search_type, nsplits, seed)
        self._local_search_options(train_iters, encode_ils_iters)

    def _new_index(self, dim, search_type):
        return faiss.IndexProductLocalSearchQuantizer(dim, self.nsplits, self.M, self.nbits,
                                                      self._faiss_metric(), search_type)


@register("faiss_rqfs")
class FaissRQFastScan(FastScanIndex, ResidualTraining, FaissAdditiveIndex):
    """faiss IndexResidualQuantizerFastScan: RQ of M 4-bit codebooks, fast-scan search."""

    def __init__(self, M: int = 16, nbits: int = 4, max_beam_size: int = 5, niter: int = 10,
                 search_type: str = "norm_rq2x4",
                 rescale_norm: bool = True, seed: int | None = None):
        super().__init__(M, nbits, search_type, seed=seed)
        self._residual_options(max_beam_size, niter)
        self._fast_scan_options(rescale_norm)

    def _new_index(self, dim, search_type):
        return faiss.IndexResidualQuantizerFastScan(dim, self.M, self.nbits, faiss.METRIC_L2,
                                                    search_type)


@register("faiss_lsqfs")
class FaissLSQFastScan(FastScanIndex, LocalSearchEncoding, FaissAdditiveIndex):
    """faiss IndexLocalSearchQuantizerFastScan: LSQ of M 4-bit codebooks, fast-scan search."""

    def __init__(self, M: int = 16, nbits: int = 4, train_iters: int = 25,
                 encode_ils_iters: int = 16, search_type: str = "norm_lsq2x4",
                 rescale_norm: bool = True, seed: int | None = None):
        super().__init__(M, nbits, search_type, seed=seed)
        self._local_search_options(train_iters, encode_ils_iters)
        self._fast_scan_options(rescale_norm)

    def _new_index(self, dim, search_type):
        return faiss.IndexLocalSearchQuantizerFastScan(dim, self.M, self.nbits,
                                                       faiss.METRIC_L2, search_type)


@register("faiss_prqfs")
class FaissPRQFastScan(FastScanIndex, ResidualTraining, FaissAdditiveIndex):
    """faiss IndexProductResidualQuantizerFastScan: nsplits RQs of M 4-bit codebooks."""

    def __init__(self, nsplits: int = 2, M: int = 8, nbits: int = 4, max_beam_size: int = 5,
                 niter: int = 10, search_type: str = "norm_rq2x4",
                 rescale_norm: bool = True, seed: int | None = None):
        super().__init__(M, nbits, search_type, nsplits, seed)
        self._residual_options(max_beam_size, niter)
        self._fast_scan_options(rescale_norm)

    def _new_index(self, dim, search_type):
        return faiss.IndexProductResidualQuantizerFastScan(
            dim, self.nsplits, self.M, self.nbits, faiss.METRIC_L2, search_type)


@register("faiss_plsqfs")
class FaissPLSQFastScan(FastScanIndex, LocalSearchEncoding, FaissAdditiveIndex):
    """faiss IndexProductLocalSearchQuantizerFastScan: nsplits LSQs of M 4-bit codebooks."""

    def __init__(self, nsplits: int = 2, M: int = 8, nbits: int = 4, train_iters: int = 25,
                 encode_ils_iters: int = 16, search_type: str = "norm_rq2x4",
                 rescale_norm: bool = True, seed: int | None = None):
        super().__init__(M, nbits, search_type, nsplits, seed)
        self._local_search_options(train_iters, encode_ils_iters)
        self._fast_scan_options(rescale_norm)

    def _new_index(self, dim, search_type):
        return faiss.IndexProductLocalSearchQuantizerFastScan(
            dim, self.nsplits, self.M, self.nbits, faiss.METRIC_L2, search_type)
