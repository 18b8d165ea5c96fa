"""Our RaBitQ quantizer and exhaustive search, C++ (``cpp/rabitq.cpp``): plugin ``rabitq``.

RaBitQ after Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a
Theoretical Error Bound for Approximate Nearest Neighbor Search", SIGMOD 2024
(``bits=1``), and its multi-bit form after Gao, Gou, Xu, Yang, Long, Wong,
"Practical and Asymptotically Optimal Quantization of High-Dimensional Vectors
in Euclidean Space for Approximate Nearest Neighbor Search", SIGMOD 2025
(``bits`` 2 .. 8).

fit: the centre c (mean of the training set) and a seeded random orthogonal
matrix (QR of a Gaussian) of size dp x dp, dp = D rounded up to a multiple of 64
(vectors are zero-padded to dp dimensions, so the codes pack into 64-bit
words); ``rotation`` keeps its first D rows, (D, dp) float32, and a residual is
rotated as r' = (x - c) R.

encode: each r' becomes the grid point y of half-integers in
[-(2^B - 1)/2, (2^B - 1)/2]^dp nearest to t r' / |r'| for the rescaling t that
maximises cos(y, r') (the 2025 paper's search over the critical values of t,
exact; for B = 1, y = sign(r') / 2). Codes: (n, dp * B / 8 + 12) uint8: B
bit-planes of u = y + (2^B - 1)/2, most significant first (plane 0 is the sign
of r', the 1-bit RaBitQ code), each dp bits packed least significant first,
then three float32 factors: ``norm`` |x - c|, ``cos`` <o_bar, o> = <y, r'> /
(|y| |r'|), ``ynorm`` |y|. decode returns c + norm cos o_bar (o_bar = y R^T / |y|):
the projection of the vector on its quantized direction.

search: exhaustive, by the unbiased estimator of the paper,
<x - c, q - c> ~ norm <y, q'> / (cos ynorm) with q' = (q - c) R and <y, q'>
summed exactly in float (the query is not quantized), and the estimated
squared distance norm^2 + |q'|^2 - 2 <x - c, q - c> (not clamped at 0). By inner
product (a dataset of metric ``ip``): <x, q> = <x - c, q> + <c, q>, whose first term is
the same estimator with q' = q R (the query not centred).
Distances float32, ids int64, nearest first, ties by the smaller id; the same
bits on every SIMD path and thread count. :meth:`RaBitQ.estimates`
exposes the estimator and the paper's error bound per (query, vector) pair.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchpq import native
from benchpq.api import Quantizer, Searcher
from benchpq.checks import InputError, as_matrix, check_k, check_positive_int
from benchpq.registry import register

from ..primitives.checks import check_binary_codes, plugin_seed
from ..primitives.mixins import CheckedCodes, FittedGuard, ModelArrays, NativeThreads
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.rotations import random_rotation

_U8, _F32, _I64 = np.uint8, np.float32, np.int64

#: dimensions are padded to a multiple of this (codes are read as 64-bit words)
PAD = 64
#: float32 factors after each code: norm, cos, ynorm
FACTORS = 3
#: epsilon_0 of the error bound: the value the RaBitQ paper uses (section 5)
EPSILON_0 = 1.9

#: cpp/rabitq.h: codes (n, w) uint8, w = dp * bits / 8 + 12
RABITQ_CALLS = NativeTable(None, {
    "rabitq_encode": Call((A("x", _F32, ("n", "d")), S("n"), S("d"), A("centre", _F32, ("d",)),
                           A("rotation", _F32, ("d", "dp")), S("dp"), S("bits"),
                           A("codes", _U8, ("n", "w"), out=True))),
    "rabitq_decode": Call((A("codes", _U8, ("n", "w")), S("n"), S("d"),
                           A("centre", _F32, ("d",)), A("rotation", _F32, ("d", "dp")), S("dp"),
                           S("bits"), A("x", _F32, ("n", "d"), out=True))),
    "rabitq_search": Call((A("codes", _U8, ("n", "w")), S("n"), S("bits"),
                           A("queries", _F32, ("nq", "d")), S("nq"), S("d"),
                           A("centre", _F32, ("d",)), A("rotation", _F32, ("d", "dp")), S("dp"),
                           S("k"), S("inner_product"),
                           A("distances", _F32, ("nq", "k"), out=True),
                           A("ids", _I64, ("nq", "k"), out=True))),
    "rabitq_estimate": Call((A("codes", _U8, ("n", "w")), S("n"), S("bits"),
                             A("queries", _F32, ("nq", "d")), S("nq"), S("d"),
                             A("centre", _F32, ("d",)), A("rotation", _F32, ("d", "dp")),
                             S("dp"), A("ids", _I64, ("nq", "m")), S("m"),
                             A("inner", _F32, ("nq", "m"), out=True),
                             A("distances", _F32, ("nq", "m"), out=True))),
}, warm=dict(n=2, d=2, dp=64, bits=1, w=20, nq=2, k=1, m=1, inner_product=False))


@dataclass(frozen=True)
class RaBitQEstimates:
    """The estimator on (query, vector) pairs, all (nq, m), from
    :meth:`RaBitQ.estimates`.

    * ``distances`` float32: estimated squared distances (what search ranks by);
    * ``inner`` float32: estimated <x - c, q - c>;
    * ``cosine`` float64: the estimate of <o, q>, o and q the unit residuals
      (``inner`` / (|x - c| |q - c|); 0 where either residual is 0);
    * ``bound`` float64: the paper's bound on |cosine - <o, q>|,
      epsilon_0 sqrt(1 - <o_bar, o>^2) / (<o_bar, o> sqrt(dp - 1)), which holds
      with probability at least 1 - 2 exp(-c_0 epsilon_0^2) over the rotation;
    * ``distance_bound`` float64: the same bound on the squared distance,
      2 |x - c| |q - c| ``bound``.
    """

    distances: np.ndarray
    inner: np.ndarray
    cosine: np.ndarray
    bound: np.ndarray
    distance_bound: np.ndarray


@register("rabitq")
class RaBitQ(NativeThreads, FittedGuard, ModelArrays, CheckedCodes, Quantizer, Searcher):
    """RaBitQ codes (1 bit per dimension, or B bits: extended RaBitQ) with exhaustive
    search by the unbiased distance estimator (C++ core; layout in the module doc).

    Args:
        bits: bits per (padded) dimension, 1 .. 8; 1 is the SIGMOD 2024 RaBitQ.
        seed: seed of the random rotation (None: 0).

    Attributes after fit: ``centre`` (D,) float32, ``rotation`` (D, dp) float32
    (the first D rows of a dp x dp random orthogonal matrix); after add: ``codes``
    (n, dp * bits / 8 + 12) uint8.
    """

    model_arrays = ("centre", "rotation")
    transient: dict = {}
    search_metrics = ("l2", "ip")

    def __init__(self, bits: int = 1, seed: int | None = None):
        self.bits = check_positive_int(bits, "bits", 1, 8)
        self.seed = seed
        self.dim = self.dp = None
        self.centre = self.rotation = None
        self.codes = None

    # -- sizes ----------------------------------------------------------------
    @property
    def code_bytes(self) -> int:
        """Bytes of the bit-planes of one code (without the factors)."""
        self.require_fitted(self.dp is not None, "asking the code size")
        return self.dp * self.bits // 8

    @property
    def row_bytes(self) -> int:
        """Bytes of one stored code: the bit-planes and the 12 bytes of factors."""
        return self.code_bytes + FACTORS * 4

    @property
    def code_bits(self) -> int:
        """dp * bits (0 before fit; the three float32 factors per vector are counted in
        codes_bytes)."""
        return int(self.dp * self.bits) if self.dp is not None else 0

    def _dims(self) -> dict:
        return dict(d=self.dim, dp=self.dp, w=self.row_bytes)

    # -- Quantizer ----------------------------------------------------------------
    def fit(self, x):
        """Centre (mean of x) and random rotation for x (n, D) float32; returns self."""
        x = as_matrix(x, "learn")
        dim = x.shape[1]
        dp = -(-dim // PAD) * PAD
        self.dim, self.dp = dim, dp
        self.centre = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.rotation = np.ascontiguousarray(random_rotation(dp, plugin_seed(self.seed))[:dim])
        self.codes = None
        return self

    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, dp * bits / 8 + 12) uint8 codes with their factors."""
        self.require_fitted(self.rotation is not None, "encoding")
        x = as_matrix(x, "x", dim=self.dim)
        codes = np.empty((x.shape[0], self.row_bytes), _U8)
        RABITQ_CALLS.call(native.load(), "rabitq_encode", x, x.shape[0], self.dim, self.centre,
                          self.rotation, self.dp, self.bits, codes, **self._dims())
        return codes

    def decode(self, codes) -> np.ndarray:
        """(n, dp * bits / 8 + 12) uint8 codes -> (n, D) float32: c + norm cos o_bar."""
        self.require_fitted(self.rotation is not None, "decoding")
        codes = self.check_stored_codes(codes)
        out = np.empty((codes.shape[0], self.dim), _F32)
        RABITQ_CALLS.call(native.load(), "rabitq_decode", codes, codes.shape[0], self.dim,
                          self.centre, self.rotation, self.dp, self.bits, out, **self._dims())
        return out

    def factors(self, codes) -> np.ndarray:
        """(n, 3) float32 factors of codes: norm |x - c|, cos <o_bar, o>, ynorm |y|."""
        codes = self.check_stored_codes(codes)
        return np.ascontiguousarray(codes[:, self.code_bytes:]).view(_F32)

    def check_stored_codes(self, codes) -> np.ndarray:
        codes = check_binary_codes(codes, self.row_bytes)
        factors = np.ascontiguousarray(codes[:, self.code_bytes:]).view(_F32)
        if not np.isfinite(factors).all() or (factors[:, 1:] <= 0).any() or \
                (factors[:, 0] < 0).any():
            raise InputError("codes: factors must be finite, with norm >= 0 and cos, ynorm > 0 "
                             "(not codes made by this quantizer?)")
        return codes

    # -- the estimator on given codes (benchpq.measure.codec) -----------------------
    def _estimated(self, queries, codes) -> tuple[np.ndarray, np.ndarray]:
        """(estimated <x - c, q - c>, estimated squared distances), both (nq, n) float32,
        of queries (nq, D) to the vectors encoded in codes (n, row_bytes)."""
        self.require_fitted(self.rotation is not None, "estimating distances")
        codes = self.check_stored_codes(codes)
        queries = as_matrix(queries, "query", dim=self.dim)
        n, nq = codes.shape[0], queries.shape[0]
        ids = np.tile(np.arange(n, dtype=_I64), (nq, 1))
        inner, distances = np.empty((nq, n), _F32), np.empty((nq, n), _F32)
        RABITQ_CALLS.call(native.load(), "rabitq_estimate", codes, n, self.bits, queries, nq,
                          self.dim, self.centre, self.rotation, self.dp, ids, n, inner,
                          distances, **self._dims())
        return inner, distances

    def estimate_distances(self, queries, codes) -> np.ndarray:
        """(nq, n) float32 squared distances by RaBitQ's unbiased estimator (what search
        ranks by) from queries (nq, D) to the vectors encoded in codes."""
        return self._estimated(queries, codes)[1]

    def estimate_inner_products(self, queries, codes) -> np.ndarray:
        """(nq, n) float32 estimated <q, x>: <q, c> + est<x - c, q - c> + est<x - c, c>,
        the estimator being linear in the query (the second term is its value for the
        query 2c)."""
        queries = as_matrix(queries, "query", dim=self.dim)
        centre = self.centre.astype(np.float64)
        inner_q = self._estimated(queries, codes)[0].astype(np.float64)
        inner_c = self._estimated((2 * self.centre)[None].astype(_F32), codes)[0]
        return (queries.astype(np.float64) @ centre[:, None] + inner_q + inner_c).astype(_F32)

    # -- Searcher -----------------------------------------------------------------
    def _queries(self, queries) -> np.ndarray:
        self.require_fitted(self.rotation is not None, "searching")
        if self.codes is None:
            raise InputError(f"{self.name or 'rabitq'}: add() vectors before searching")
        return as_matrix(queries, "query", dim=self.dim)

    def search(self, queries, k):
        """Exhaustive k-NN by estimated squared distance: (distances (nq, k) float32,
        ids (nq, k) int64), nearest first, ties by the smaller id. By the ``ip`` metric the
        estimated inner products, largest first: <x, q> = <x - c, q> + <c, q>, the first
        term the same unbiased estimator with the query rotated uncentred (q R)."""
        queries = self._queries(queries)
        n, nq = self.codes.shape[0], queries.shape[0]
        k = check_k(k, n)
        distances, ids = np.empty((nq, k), _F32), np.empty((nq, k), _I64)
        inner_product = self.metric == "ip"
        centre = np.zeros_like(self.centre) if inner_product else self.centre
        RABITQ_CALLS.call(native.load(), "rabitq_search", self.codes, n, self.bits, queries, nq,
                          self.dim, centre, self.rotation, self.dp, k, inner_product,
                          distances, ids, **self._dims())
        if inner_product:
            np.negative(distances, out=distances)
            distances += (queries @ self.centre)[:, None]
        return distances, ids

    def estimates(self, queries, ids, epsilon_0: float = EPSILON_0) -> RaBitQEstimates:
        """The estimator and its error bound for each query i and added vector ids[i, j].

        Args:
            queries: (nq, D) float32.
            ids: (nq, m) integer ids of added vectors (0 <= id < number added).
            epsilon_0: the bound's epsilon_0 (the paper's 1.9 by default).
        Returns: :class:`RaBitQEstimates`, arrays (nq, m).
        """
        queries = self._queries(queries)
        n, nq = self.codes.shape[0], queries.shape[0]
        ids = as_matrix(ids, "ids", dtype=_I64, finite=False)
        if ids.shape[0] != nq:
            raise InputError(f"ids: expected {nq} rows (one per query), got {ids.shape[0]}")
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise InputError(f"ids: out of range [0, {n})")
        if not np.isfinite(epsilon_0) or epsilon_0 <= 0:
            raise InputError(f"epsilon_0: expected a positive number, got {epsilon_0!r}")
        m = ids.shape[1]
        inner, distances = np.empty((nq, m), _F32), np.empty((nq, m), _F32)
        RABITQ_CALLS.call(native.load(), "rabitq_estimate", self.codes, n, self.bits, queries,
                          nq, self.dim, self.centre, self.rotation, self.dp, ids, m, inner,
                          distances, **self._dims())
        factors = self.factors(self.codes)[ids].astype(np.float64)  # (nq, m, 3)
        norm, cos = factors[..., 0], factors[..., 1]
        qnorm = np.linalg.norm(queries.astype(np.float64) - self.centre, axis=1)[:, None]
        scale = norm * qnorm
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.where(scale > 0, inner / scale, 0.0)
        bound = epsilon_0 * np.sqrt(np.maximum(1.0 - cos * cos, 0.0)) / cos / np.sqrt(self.dp - 1)
        return RaBitQEstimates(distances, inner, cosine, bound, 2.0 * scale * bound)
