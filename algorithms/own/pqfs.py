"""Our fast-scan PQ, C++ (``cpp/pqfs.cpp``) through cppyy: plugin ``pqfs``.

Product quantization with 4-bit sub-codes (Ks = 16) searched by fast scan
(André, Kermarrec, Le Scouarnec, "Cache locality is not enough:
high-performance nearest neighbor search with product quantization fast scan",
VLDB 2015): the database codes are stored in blocks of 32 vectors, sub-code
major, so that SIMD byte shuffles look up 32 sub-codes in a 16-entry table at
once; each query's float ADC tables are quantized to uint8 and summed in
16-bit lanes. The codebooks are those of our PQ (``pq``, M sub-quantizers of
16 codewords, per-subspace k-means). The k_factor * k best candidates by
quantized distance may be re-ranked by the exact float ADC distance.

Arrays: vectors float32 (n, D); codes (n, M/2) uint8, two sub-codes per byte
(sub-code 2j in the low nibble of byte j: faiss's ``sa_encode`` layout for
nbits = 4); codewords (M, 16, D/M) float32; distances squared L2 float32 and
ids int64, nearest first, ties by the smaller id. Every input is checked here,
before any C++ call, and bad input raises :class:`benchpq.checks.InputError`.
"""
from __future__ import annotations

import functools

import numpy as np

from benchpq import native
from benchpq.api import UNSET, Quantizer, Searcher
from benchpq.checks import InputError, as_matrix, check_k, check_positive_int
from benchpq.registry import register

from ..primitives.codes import appended_rows
from ..primitives.mixins import FittedGuard, ModelArrays, NativeThreads
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable, Object
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import SIMD_LEVELS
from .pq import PQ, PQ_CALLS

KS = 16          # codewords per sub-quantizer: 4-bit sub-codes
BLOCK = 32       # vectors per block of the fast-scan layout
SEARCH_PARAMS = {"k_factor": 1, "simd": "auto"}  # search-time parameters and their defaults


_U8, _F32 = np.uint8, np.float32
_CODES = A("codes", _U8, ("n", "half"))            # two 4-bit sub-codes per byte: half = M / 2
_BLOCKS = A("blocks", _U8, ("nblocks", "width"))   # nblocks = ceil(n / 32), width = 32 * M / 2

#: cpp/pqfs.h, on a ProductQuantizer of Ks = 16
PQFS_CALLS = NativeTable(None, {
    "pqfs_encode": Call((Object("pq"), A("x", _F32, ("n", "d")), S("n"),
                         A("codes", _U8, ("n", "half"), out=True))),
    "pqfs_decode": Call((Object("pq"), _CODES, S("n"), A("x", _F32, ("n", "d"), out=True))),
    "pqfs_pack_blocks": Call((_CODES, S("n"), S("M"),
                              A("blocks", _U8, ("nblocks", "width"), out=True))),
    "pqfs_unpack_blocks": Call((_BLOCKS, S("n"), S("M"), A("codes", _U8, ("n", "half"), out=True))),
    "pqfs_quantize_tables": Call((A("tables", _F32, ("nq", "M", KS)), S("nq"), S("M"),
                                  A("qtables", _U8, ("nq", "M", KS), out=True),
                                  A("scale", _F32, ("nq",), out=True),
                                  A("offset", _F32, ("nq",), out=True))),
    "pqfs_search": Call((Object("pq"), A("query", _F32, ("nq", "d")), S("nq"), _BLOCKS, S("n"),
                         S("k"), S("k_factor"), S("simd"), S("inner_product"),
                         A("distances", _F32, ("nq", "k"), out=True),
                         A("ids", np.int64, ("nq", "k"), out=True))),
    "pqfs_blocks_bytes": Call((S("n"), S("M")), quick=True),
    "pqfs_simd_supported": Call((S("simd"),), quick=True),
}, warm=dict(n=2, d=2, M=2, half=1, nblocks=1, width=BLOCK, nq=2, k=1, k_factor=1,
             simd=SIMD_LEVELS["scalar"], inner_product=0,
             pq=lambda ns: ns.ProductQuantizer(2, 2, KS)))


def _block_dims(n: int, M: int) -> dict:
    """The dims of n vectors' codes and blocks."""
    return dict(n=n, M=M, half=M // 2, nblocks=(n + BLOCK - 1) // BLOCK, width=BLOCK * M // 2)


@functools.cache
def simd_supported(level: str) -> bool:
    """Whether this CPU runs the SIMD level ``level`` ('auto', 'scalar', 'avx2', 'avx512')."""
    return level in ("auto", "scalar") or bool(
        PQFS_CALLS.call(native.load(), "pqfs_simd_supported", SIMD_LEVELS[level]))


def pack_blocks(codes: np.ndarray, M: int) -> np.ndarray:
    """(n, M/2) uint8 codes -> (ceil(n/32), 32 * M/2) uint8 fast-scan blocks (cpp/pqfs.h)."""
    n = codes.shape[0]
    blocks = np.empty(((n + BLOCK - 1) // BLOCK, BLOCK * M // 2), np.uint8)
    PQFS_CALLS.call(native.load(), "pqfs_pack_blocks", codes, n, M, blocks, **_block_dims(n, M))
    return blocks


def unpack_blocks(blocks: np.ndarray, n: int, M: int) -> np.ndarray:
    """Inverse of :func:`pack_blocks`: the (n, M/2) codes of the first n vectors."""
    codes = np.empty((n, M // 2), np.uint8)
    PQFS_CALLS.call(native.load(), "pqfs_unpack_blocks", blocks, n, M, codes,
                    **_block_dims(n, M))
    return codes


@register("pqfs")
class PQFastScan(NativeThreads, FittedGuard, ModelArrays, Quantizer, Searcher):
    """4-bit product quantizer with SIMD fast-scan search (C++ core).

    Args:
        M: sub-quantizers (even, dividing the dimension D); codes take 4 * M bits.
        iter, seed, max_points_per_centroid, init: k-means training, as for ``pq``.

    Search parameters: ``k_factor`` (int >= 1; 1: the k best by quantized
    distance, with quantized distances; > 1: the k_factor * k best re-ranked by
    exact float ADC distance) and ``simd`` ('auto', 'scalar', 'avx2', 'avx512';
    every level returns the same ids and distances).

    Attributes after fit: ``codewords`` (M, 16, D/M) float32; after add:
    ``blocks`` (ceil(n/32), 16 * M) uint8 and ``ntotal`` = n.
    """

    model_arrays = ("pq",)
    search_metrics = ("l2", "ip")

    def __init__(self, M: int = 16, iter: int = 25, seed: int | None = None,
                 max_points_per_centroid: int | None = 256, init: str = "random"):
        M = check_positive_int(M, "M")
        if M % 2:
            raise InputError(f"M: fast scan pairs the sub-quantizers, M must be even, got {M}")
        self.pq = PQ(M=M, Ks=KS, iter=iter, seed=seed,
                     max_points_per_centroid=max_points_per_centroid, init=init)
        self.M = M
        self.k_factor = SEARCH_PARAMS["k_factor"]
        self.simd = SEARCH_PARAMS["simd"]
        self.blocks = None
        self.ntotal = 0

    # -- state ------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        return self.pq.dim

    @property
    def codewords(self) -> np.ndarray | None:
        return self.pq.codewords

    @property
    def seed(self):
        """The k-means seed (None: 0); the runner sets the run's seed when it is None."""
        return self.pq.seed

    @seed.setter
    def seed(self, value) -> None:
        self.pq.seed = value

    def _quantizer(self):
        """The trained C++ ProductQuantizer (Ks = 16)."""
        self.require_fitted(self.pq.codewords is not None)
        return self.pq._quantizer()

    def set_search_params(self, k_factor: int = UNSET, simd: str = UNSET, **params) -> None:
        """Set ``k_factor`` and/or ``simd`` (see the class docstring)."""
        super().set_search_params(**params)
        if k_factor is not UNSET:
            self.k_factor = check_positive_int(k_factor, "k_factor")
        if simd is not UNSET:
            if simd not in SIMD_LEVELS:
                raise InputError(f"simd: expected one of {list(SIMD_LEVELS)}, got {simd!r}")
            if not simd_supported(simd):
                raise InputError(f"simd: this CPU cannot run {simd!r}")
            self.simd = simd

    # -- Quantizer ----------------------------------------------------------------
    def fit(self, x):
        """Learn the 16-codeword sub-codebooks on x (n, D) float32, n >= 16; returns self."""
        self.pq.fit(x)
        self.blocks, self.ntotal = None, 0
        return self

    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, M/2) uint8 codes, two 4-bit sub-codes per byte."""
        cpp = self._quantizer()
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], self.M // 2), np.uint8)
        PQFS_CALLS.call(native.load(), "pqfs_encode", cpp, x, x.shape[0], codes, d=self.dim,
                        half=self.M // 2)
        return codes

    def decode(self, codes) -> np.ndarray:
        """(n, M/2) uint8 codes -> (n, D) float32 reconstructions."""
        cpp = self._quantizer()
        codes = self._check_codes(codes)
        x = np.empty((codes.shape[0], self.dim), np.float32)
        PQFS_CALLS.call(native.load(), "pqfs_decode", cpp, codes, codes.shape[0], x, d=self.dim,
                        half=self.M // 2)
        return x

    def _check_codes(self, codes, name: str = "codes") -> np.ndarray:
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8:
            raise InputError(f"{name}: expected a numpy array of uint8 codes (n, M/2), got "
                             f"{getattr(codes, 'dtype', type(codes).__name__)}")
        return as_matrix(codes, name, dtype=np.uint8, dim=self.M // 2, finite=False)

    # -- Searcher -----------------------------------------------------------------
    def add(self, x) -> None:
        """Encode database vectors (n, D) into the blocks; ids continue from ``ntotal``."""
        self.add_codes(self.encode(as_matrix(x, "base", dim=self.dim)))

    def add_codes(self, codes) -> None:
        """Append (n, M/2) uint8 codes (as returned by :meth:`encode`) to the blocks."""
        self._quantizer()
        codes = self._check_codes(codes)
        if self.blocks is None:
            self.blocks, self.ntotal = pack_blocks(codes, self.M), codes.shape[0]
            return
        if self.ntotal % BLOCK == 0:  # whole blocks so far: append, amortised (block_mb adds)
            self.blocks = appended_rows(self.blocks, pack_blocks(codes, self.M))
            self.ntotal += codes.shape[0]
            return
        kept = self.ntotal - self.ntotal % BLOCK  # the last, partial block is packed again
        tail = unpack_blocks(self.blocks, self.ntotal, self.M)[kept:]
        self.blocks = np.concatenate([self.blocks[:kept // BLOCK],
                                      pack_blocks(np.concatenate([tail, codes]), self.M)])
        self.ntotal += codes.shape[0]

    def search(self, queries, k):
        """k-NN: (distances (nq, k) float32, ids (nq, k) int64), nearest first; under the
        ``ip`` metric, estimated inner products, largest first (the tables hold the negated
        inner products of the query's sub-vectors and the codewords)."""
        cpp = self._quantizer()
        if self.blocks is None:
            raise InputError(f"{self.name or 'pqfs'}: add() vectors before searching")
        k = check_k(k, self.ntotal)
        queries = as_matrix(queries, "query", dim=self.dim)
        if not simd_supported(self.simd):  # a model unpickled on another CPU
            raise InputError(f"simd: this CPU cannot run {self.simd!r}")
        nq = queries.shape[0]
        distances = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        inner = int(self.metric == "ip")
        PQFS_CALLS.call(native.load(), "pqfs_search", cpp, queries, nq, self.blocks, self.ntotal,
                        k, self.k_factor, SIMD_LEVELS[self.simd], inner, distances, ids,
                        d=self.dim, **_block_dims(self.ntotal, self.M))
        return (np.negative(distances, out=distances) if inner else distances), ids

    def lookup_tables(self, queries):
        """The tables a search uses for queries (nq, D).

        Returns float ADC tables (nq, M, 16) float32 (under ``ip``: negated inner
        products), their uint8 quantization (nq, M, 16), and scale, offset (nq,) float32: a
        sum s of quantized entries stands for the distance offset + s / scale, within
        M / (2 scale) of the float ADC distance.
        """
        cpp = self._quantizer()
        queries = as_matrix(queries, "query", dim=self.dim)
        nq = queries.shape[0]
        tables = np.empty((nq, self.M, KS), np.float32)
        PQ_CALLS.call(cpp, "adc_ip_tables" if self.metric == "ip" else "adc_tables", queries, nq,
                      tables, d=self.dim, M=self.M, Ks=KS)
        qtables = np.empty(tables.shape, np.uint8)
        scale, offset = np.empty(nq, np.float32), np.empty(nq, np.float32)
        PQFS_CALLS.call(native.load(), "pqfs_quantize_tables", tables, nq, self.M, qtables, scale,
                        offset)
        return tables, qtables, scale, offset

    # -- sizes --------------------------------------------------------------------
    @property
    def code_bits(self) -> int:
        return 4 * self.M

    @property
    def codes_bytes(self) -> int:
        return int(self.blocks.nbytes) if self.blocks is not None else 0

    # -- faiss interop ------------------------------------------------------------
    def to_faiss(self):
        """A ``faiss.IndexPQFastScan`` (bbs 32) with our codebooks and, if any, our codes."""
        import faiss
        self._quantizer()
        index = faiss.IndexPQFastScan(self.dim, self.M, 4, faiss.METRIC_L2, BLOCK)
        faiss.copy_array_to_vector(self.codewords.ravel(), index.pq.centroids)
        index.is_trained = True
        if self.blocks is not None:
            flat = np.ascontiguousarray(self.blocks).ravel()
            index.codes.resize(flat.size)
            faiss.memcpy(index.codes.get(), faiss.swig_ptr(flat), flat.size)
            index.ntotal = self.ntotal
            index.ntotal2 = self.blocks.shape[0] * BLOCK  # faiss scans ntotal2 vectors
        return index

    @classmethod
    def from_faiss(cls, index, **params) -> PQFastScan:
        """A PQFastScan with the codebooks (and codes, if any) of a trained faiss index.

        ``index``: ``faiss.IndexPQFastScan`` with bbs 32 (its blocks are ours
        byte for byte) or ``faiss.IndexPQ`` with nbits 4 and M even.
        ``params``: further constructor arguments (iter, seed, search...).
        """
        import faiss
        _owner, index = index, faiss.downcast_index(index)  # _owner keeps the C++ index alive
        if not isinstance(index, (faiss.IndexPQFastScan, faiss.IndexPQ)):
            raise InputError(f"from_faiss: expected a faiss.IndexPQFastScan or IndexPQ, got "
                             f"{type(index).__name__}")
        if not index.is_trained:
            raise InputError("from_faiss: the faiss index is not trained")
        pq = index.pq
        M, nbits, dsub = int(pq.M), int(pq.nbits), int(pq.dsub)
        if nbits != 4:
            raise InputError(f"from_faiss: fast scan needs nbits=4, got nbits={nbits}")
        fast = isinstance(index, faiss.IndexPQFastScan)
        if fast and int(index.bbs) != BLOCK:
            raise InputError(f"from_faiss: needs bbs={BLOCK}, got bbs={int(index.bbs)}")
        model = cls(M=M, **params)
        model.pq.dim = M * dsub
        centroids = faiss.vector_to_array(pq.centroids).reshape(M, KS, dsub)
        model.pq.codewords = as_matrix(centroids.reshape(-1, dsub), "codewords").reshape(
            M, KS, dsub)
        if index.ntotal > 0:
            n = int(index.ntotal)
            if fast:
                nbytes = (n + BLOCK - 1) // BLOCK * BLOCK * M // 2
                flat = faiss.rev_swig_ptr(index.codes.get(), nbytes)
                model.blocks = np.array(flat, np.uint8).reshape(-1, BLOCK * M // 2)
                model.ntotal = n
            else:
                codes = faiss.vector_to_array(index.codes).reshape(n, index.code_size)
                model.add_codes(np.ascontiguousarray(codes))
        return model
