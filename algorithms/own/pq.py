"""Our product quantizer, C++ (``cpp/pq.cpp``) through cppyy: plugin ``pq``.

Product quantization after Jégou, Douze, Schmid, "Product quantization for
nearest neighbor search", IEEE TPAMI 33(1), 2011: a D-dimensional vector is
split into M sub-vectors of D/M dimensions, each replaced by the index of its
nearest codeword among Ks learnt by k-means in that sub-space. Search is
exhaustive: asymmetric (ADC, query against codes through an (M, Ks) lookup
table) or symmetric (SDC, query code against codes through codeword-to-codeword
tables).

Arrays: vectors float32 (n, D); codes (n, M) uint8 when Ks <= 256 else uint16
(as nanopq); codewords (M, Ks, D/M) float32; distances squared L2 float32 and
ids int64, nearest first, ties by the smaller id. Every input is checked here,
before any C++ call, and bad input raises :class:`benchpq.checks.InputError`.
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.api import Quantizer, Searcher
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_k,
    check_positive_int,
    check_subspaces,
)
from benchpq.measure.training_log import log_iterations
from benchpq.registry import register

from ..primitives.checks import check_choice, check_codes, plugin_seed, subsample_arg
from ..primitives.codes import code_dtype, pack_codes, unpack_codes
from ..primitives.mixins import CheckedCodes, NativeProductCodes
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import HOT_START, INITS


def _pq_calls() -> dict:
    f32, f64, i64 = np.float32, np.float64, np.int64
    x, dist, ids = A("x", f32, ("n", "d")), A("distances", f32, ("nq", "k"), out=True), \
        A("ids", i64, ("nq", "k"), out=True)
    codewords = ("M", "Ks", "ds")
    calls = {
        "train": Call((A("learn", f32, ("n", "d")), S("n"), S("iter"), S("init"), S("seed"),
                       S("mppc"), A("objective", f64, ("M", "iter"), out=True))),
        "get_codewords": Call((A("codewords", f32, codewords, out=True),), quick=True),
        "set_codewords": Call((A("codewords", f32, codewords),)),
        "adc_tables": Call((x, S("n"), A("tables", f32, ("n", "M", "Ks"), out=True))),
        "adc_ip_tables": Call((x, S("n"), A("tables", f32, ("n", "M", "Ks"), out=True))),
    }
    for suffix, dtype in (("u8", np.uint8), ("u16", np.uint16)):
        codes = A("codes", dtype, ("n", "M"))
        calls.update({
            "encode_" + suffix: Call((x, S("n"), A("codes", dtype, ("n", "M"), out=True))),
            "decode_" + suffix: Call((codes, S("n"), A("x", f32, ("n", "d"), out=True))),
            "search_adc_" + suffix: Call((A("query", f32, ("nq", "d")), S("nq"), codes, S("n"),
                                          S("k"), dist, ids)),
            "search_adc_ip_" + suffix: Call((A("query", f32, ("nq", "d")), S("nq"), codes,
                                             S("n"), S("k"), dist, ids)),
            "search_sdc_" + suffix: Call((A("query", dtype, ("nq", "M")), S("nq"), codes, S("n"),
                                          S("k"), dist, ids)),
            "sum_by_code_" + suffix: Call((x, S("n"), S("d"), codes,
                                           A("sums", f64, ("M", "Ks", "d"), out=True))),
        })
    calls["train_rows"] = Call((S("n"), S("Ks"), S("seed"), S("mppc"),
                                A("rows", i64, ("rows",), out=True)),
                               warm={"n": 4, "mppc": 1}, static=True)
    return calls


#: the C++ ProductQuantizer (cpp/pq.h): D, M, Ks; codewords (M, Ks, Ds = D / M)
PQ_CALLS = NativeTable("ProductQuantizer", _pq_calls(), constructor=("d", "M", "Ks"),
                       warm=dict(d=2, M=1, Ks=2, ds=2, n=2, nq=2, k=1, iter=1,
                                 init=INITS["random"], seed=0, mppc=0, rows=2))


@register("pq")
class PQ(NativeProductCodes, CheckedCodes, Quantizer, Searcher):
    """Product quantizer with ADC and SDC exhaustive search (C++ core); ADC by squared L2
    or by inner product (``search_metrics``).

    Args:
        M: sub-quantizers; must divide the dimension D (1 <= M <= D).
        Ks: codewords per sub-quantizer, 2 .. 65536.
        iter: k-means (Lloyd) iterations per sub-space.
        seed: k-means seed (None: 0).
        max_points_per_centroid: k-means trains on at most this many points
            per codeword (a random subsample, as faiss); None: all points.
        init: k-means initialisation, ``random`` (distinct training points, as
            faiss) or ``k-means++``.

    Attributes after fit: ``codewords`` (M, Ks, D/M) float32, ``objective``
    (M, iter) float64 k-means objective per sub-space and iteration; after
    add: ``codes`` (n, M).
    """

    search_metrics = ("l2", "ip")

    def __init__(self, M: int = 8, Ks: int = 256, iter: int = 25, seed: int | None = None,
                 max_points_per_centroid: int | None = 256, init: str = "random",
                 verbose: bool = False):
        self.M = check_positive_int(M, "M")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 16)
        self.iter = check_positive_int(iter, "iter")
        self.seed = seed
        self.max_points_per_centroid = None if max_points_per_centroid is None else \
            check_positive_int(max_points_per_centroid, "max_points_per_centroid")
        self.init = check_choice(init, INITS, "init")
        self.verbose = bool(verbose)
        self.dim = None
        self.codewords = None
        self.objective = None
        self.codes = None
        self._cpp = None

    model_arrays = ("codewords",)

    # -- state --------------------------------------------------------------
    @property
    def code_dtype(self) -> np.dtype:
        return code_dtype(self.Ks)

    def _dims(self) -> dict:
        """The dims of the C++ model every array it is given must match."""
        return dict(d=self.dim, M=self.M, Ks=self.Ks, ds=self.dim // self.M)

    def _suffix(self) -> str:
        return "u8" if self.Ks <= 256 else "u16"

    def _quantizer(self):
        """The C++ ProductQuantizer, rebuilt from ``codewords`` when absent (after unpickling)."""
        self.require_fitted(self.codewords is not None)
        if self._cpp is None:
            cpp = native.load().ProductQuantizer(self.dim, self.M, self.Ks)
            PQ_CALLS.call(cpp, "set_codewords", self.codewords, **self._dims())
            self._cpp = cpp
        return self._cpp

    def check_stored_codes(self, codes) -> np.ndarray:
        return check_codes(codes, self.M, self.Ks)

    # -- Quantizer ----------------------------------------------------------
    def fit(self, x, codewords=None):
        """Learn the codebooks on x (n, D) float32, n >= Ks; returns self.

        codewords: optional (M, Ks, D/M) float32 start of k-means (a hot start,
        e.g. OPQ's codebooks from its rotation loop) instead of ``init``.
        """
        x = as_matrix(x, "learn")
        n, dim = x.shape
        dsub = check_subspaces(dim, self.M)
        check_codebook_size(n, self.Ks)
        seed = plugin_seed(self.seed)
        cpp = native.load().ProductQuantizer(dim, self.M, self.Ks)
        init = INITS[self.init]
        if codewords is not None:
            shape = (self.M, self.Ks, dsub)
            if np.shape(codewords) != shape:
                raise InputError(f"codewords: expected shape {shape}, got {np.shape(codewords)}")
            start = as_matrix(np.reshape(codewords, (-1, dsub)), "codewords").reshape(shape)
            PQ_CALLS.call(cpp, "set_codewords", start, M=self.M, Ks=self.Ks, ds=dsub)
            init = HOT_START
        objective = np.zeros((self.M, self.iter), np.float64)
        PQ_CALLS.call(cpp, "train", x, n, self.iter, init, seed,
                      subsample_arg(self.max_points_per_centroid, self.Ks, n), objective, M=self.M)
        codewords = np.empty((self.M, self.Ks, dsub), np.float32)
        PQ_CALLS.call(cpp, "get_codewords", codewords)
        self.dim, self.codewords, self.objective, self.codes, self._cpp = \
            dim, codewords, objective, None, cpp
        if getattr(self, "verbose", False):
            log_iterations(f"{self.name or 'pq'}: k-means (sum over sub-spaces)", objective)
        return self

    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, M) codes (uint8 if Ks <= 256 else uint16)."""
        cpp = self._quantizer()
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], self.M), self.code_dtype)
        PQ_CALLS.call(cpp, "encode_" + self._suffix(), x, x.shape[0], codes, **self._dims())
        return codes

    def encode_into(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Encode x (n, D) float32, C-contiguous and already checked (finite), into codes (n, M).

        For callers that produce x themselves (OPQ's rotated blocks) and skip
        :meth:`encode`'s input check.
        """
        n = x.shape[0]
        PQ_CALLS.call(self._quantizer(), "encode_" + self._suffix(), x, n, codes, **self._dims())

    def training_rows(self, n: int) -> np.ndarray | None:
        """The rows (sorted, int64) that :meth:`fit` on n vectors trains on; None: all of them.

        Training on ``x[rows]`` gives the same codebooks as training on x.
        """
        mppc = subsample_arg(self.max_points_per_centroid, self.Ks, n)
        if mppc == 0:
            return None
        rows = np.empty(self.Ks * mppc, np.int64)
        count = PQ_CALLS.call(native.load().ProductQuantizer, "train_rows", n, self.Ks,
                              plugin_seed(self.seed), mppc, rows)
        return rows[:count]

    def decode(self, codes) -> np.ndarray:
        """(n, M) codes of the code dtype -> (n, D) float32 reconstructions."""
        cpp = self._quantizer()
        codes = check_codes(codes, self.M, self.Ks)
        x = np.empty((codes.shape[0], self.dim), np.float32)
        PQ_CALLS.call(cpp, "decode_" + self._suffix(), codes, codes.shape[0], x, **self._dims())
        return x

    # -- Searcher -----------------------------------------------------------
    def _search(self, kind: str, queries, k: int):
        cpp = self._quantizer()
        if self.codes is None:
            raise InputError(f"{self.name or 'pq'}: add() vectors before searching")
        n = self.codes.shape[0]
        k = check_k(k, n)
        queries = as_matrix(queries, "query", dim=self.dim)
        nq = queries.shape[0]
        if kind == "sdc":
            queries = self.encode(queries)
        distances = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        PQ_CALLS.call(cpp, f"search_{kind}_{self._suffix()}", queries, nq, self.codes, n, k,
                      distances, ids, **self._dims())
        return distances, ids

    def search(self, queries, k):
        """ADC k-NN: (distances (nq, k) float32, ids (nq, k) int64), nearest first; under
        the ``ip`` metric, inner products with the decoded vectors, largest first."""
        return self.search_by(queries, k, self.metric)

    def search_by(self, queries, k, metric: str):
        """ADC k-NN by ``metric``: ``l2`` (squared distances ascending) or ``ip`` (inner
        products of the queries and the decoded vectors, descending; the tables hold
        -<q_m, c_mj>, summed and ranked as distances, ties by the smaller id)."""
        if metric == "l2":
            return self._search("adc", queries, k)
        distances, ids = self._search("adc_ip", queries, k)
        return np.negative(distances, out=distances), ids

    def search_sdc(self, queries, k):
        """SDC k-NN: queries are encoded first; same outputs as :meth:`search`."""
        return self._search("sdc", queries, k)

    # -- faiss interop ------------------------------------------------------------
    def to_faiss(self):
        """A ``faiss.IndexPQ`` with our codebooks and, if any were added, our codes.

        Needs Ks a power of two (faiss stores nbits = log2(Ks) bits per sub-code).
        """
        import faiss
        self._quantizer()
        nbits = int(self.Ks).bit_length() - 1
        if self.Ks != 1 << nbits:
            raise InputError(f"to_faiss: faiss needs Ks a power of two, got Ks={self.Ks}")
        index = faiss.IndexPQ(self.dim, self.M, nbits)
        faiss.copy_array_to_vector(self.codewords.ravel(), index.pq.centroids)
        index.is_trained = True
        if self.codes is not None:
            index.add_sa_codes(pack_codes(self.codes, nbits))
        return index

    @classmethod
    def from_faiss(cls, index, **params) -> PQ:
        """A PQ holding the codebooks (and codes, if any) of a trained ``faiss.IndexPQ``.

        ``params`` are further constructor arguments (iter, seed...).
        """
        import faiss
        # the caller's wrapper owns the C++ index: keep it referenced while the downcast
        # view is read (a temporary argument would otherwise be freed under it)
        index, _owner = faiss.downcast_index(index), index
        if not isinstance(index, faiss.IndexPQ):
            raise InputError(f"from_faiss: expected a faiss.IndexPQ, got {type(index).__name__}")
        if not index.is_trained:
            raise InputError("from_faiss: the faiss index is not trained")
        pq = index.pq
        M, nbits, dsub = int(pq.M), int(pq.nbits), int(pq.dsub)
        if nbits > 16:
            raise InputError(f"from_faiss: at most 16 bits per sub-code, got nbits={nbits}")
        model = cls(M=M, Ks=1 << nbits, **params)
        model.dim = M * dsub
        codewords = as_matrix(faiss.vector_to_array(pq.centroids).reshape(-1, dsub), "codewords")
        model.codewords = codewords.reshape(M, 1 << nbits, dsub)
        if index.ntotal > 0:
            packed = faiss.vector_to_array(index.codes).reshape(index.ntotal, index.code_size)
            model.codes = unpack_codes(packed, M, nbits)
        return model

    # -- diagnostics ------------------------------------------------------------
    def subspace_codes(self, codes) -> tuple[np.ndarray, int]:
        """Our codes are already one column per sub-space: ((n, M) codes, Ks)."""
        return check_codes(codes, self.M, self.Ks), self.Ks

