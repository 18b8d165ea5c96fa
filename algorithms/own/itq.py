"""Our ITQ binary encoder and Hamming search, C++ (``cpp/itq.cpp``, ``cpp/hamming.cpp``):
plugin ``itq``.

Iterative quantization after Gong & Lazebnik, "Iterative quantization: a
Procrustean approach to learning binary codes", CVPR 2011 (and TPAMI 35(12),
2013): centre the data, project it on its ``num_bit`` principal directions
(V = (x - mean) W), then alternate ``niter`` times

* B = sign(V R)            (the binary codes, +1 where V R >= 0), and
* R = Procrustes(V^T B)    (the rotation minimising ||B - V R||_F, U W^T of V^T B = U S W^T),

from a seeded random orthogonal R. The quantization loss ||B - V R||_F^2 on
the training set is recorded at every iteration and after the last one.
Data-sized loops (covariance, projection, V^T B, sign and packing) run in C++;
the D x D eigendecomposition and the num_bit x num_bit SVD in numpy.

Codes: (n, ceil(num_bit / 8)) uint8, bit j (j-th rotated principal direction)
is bit j % 8 of byte j // 8, least significant first
(``np.packbits(bits, axis=1, bitorder="little")``); a bit is 1 when
((x - mean) W R)_j >= 0; the padding bits of the last byte (num_bit not a
multiple of 8) are 0, so they add nothing to Hamming distances. Hamming search: exhaustive
popcount scan, exact top-k by a counting sort, ties by the smaller id; distances are the Hamming
distances as float32.
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.api import Searcher
from benchpq.checks import InputError, as_matrix, check_k, check_positive_int
from benchpq.measure.threads import serial_blas
from benchpq.measure.training_log import log_iteration
from benchpq.metric_table import Metric, declare
from benchpq.registry import register

from ..primitives.checks import check_binary_codes, check_num_bit, plugin_seed
from ..primitives.metric_specs import N_TRAIN, QUANTIZATION_LOSS
from ..primitives.mixins import BinaryCodeBits, FittedGuard, ModelArrays, NativeThreads, StoredCodes
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.rotations import procrustes, random_rotation
from ..primitives.streaming import training_sample

_U8, _F32, _F64 = np.uint8, np.float32, np.float64

#: cpp/itq.h and cpp/hamming.h: packed codes are (n, w) uint8, w = bits / 8
ITQ_CALLS = NativeTable(None, {
    "itq_mean_cov": Call((A("learn", _F32, ("n", "d")), S("n"), S("d"),
                          A("mean", _F64, ("d",), out=True), A("cov", _F64, ("d", "d"), out=True))),
    "itq_project": Call((A("learn", _F32, ("n", "d")), S("n"), S("d"), A("mean", _F32, ("d",)),
                         A("components", _F32, ("d", "bits")), S("bits"),
                         A("v", _F32, ("n", "bits"), out=True))),
    "itq_step": Call((A("v", _F32, ("n", "bits")), S("n"), S("bits"),
                      A("rotation", _F32, ("bits", "bits")),
                      A("cross", _F64, ("bits", "bits"), out=True, optional=True))),
    "itq_encode": Call((A("x", _F32, ("n", "d")), S("n"), S("d"), A("mean", _F32, ("d",)),
                        A("projection", _F32, ("d", "bits")), S("bits"),
                        A("codes", _U8, ("n", "w"), out=True))),
    "hamming_distances": Call((A("a", _U8, ("na", "w")), S("na"), A("b", _U8, ("nb", "w")),
                               S("nb"), S("w"), A("out", np.int32, ("na", "nb"), out=True))),
    "hamming_search": Call((A("queries", _U8, ("nq", "w")), S("nq"), A("codes", _U8, ("n", "w")),
                            S("n"), S("w"), S("k"), A("distances", _F32, ("nq", "k"), out=True),
                            A("ids", np.int64, ("nq", "k"), out=True))),
}, warm=dict(n=3, d=2, bits=8, w=1, na=3, nb=3, nq=3, k=1))


# -- Hamming distances --------------------------------------------------------
def hamming_distances(a, b) -> np.ndarray:
    """(na, nb) int32 Hamming distances between packed codes a (na, w) and b (nb, w) uint8."""
    a = check_binary_codes(a, name="a")
    b = check_binary_codes(b, a.shape[1], name="b")
    na, nb, w = a.shape[0], b.shape[0], a.shape[1]
    out = np.empty((na, nb), np.int32)
    ITQ_CALLS.call(native.load(), "hamming_distances", a, na, b, nb, w, out)
    return out


def hamming_search(queries, codes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest packed codes by Hamming distance: (distances (nq, k) float32, ids (nq, k) int64).

    Nearest first, ties by the smaller id; requires 1 <= k <= len(codes).
    """
    codes = check_binary_codes(codes)
    queries = check_binary_codes(queries, codes.shape[1], "queries")
    n, w, nq = codes.shape[0], codes.shape[1], queries.shape[0]
    k = check_k(k, n)
    distances = np.empty((nq, k), np.float32)
    ids = np.empty((nq, k), np.int64)
    ITQ_CALLS.call(native.load(), "hamming_search", queries, nq, codes, n, w, k, distances, ids)
    return distances, ids


# -- ITQ ------------------------------------------------------------------------
def pca_directions(cov: np.ndarray, num_bit: int) -> np.ndarray:
    """(D, num_bit) float64 top eigenvectors of cov, by decreasing eigenvalue.

    Signs are fixed so that each column's largest-magnitude entry is positive.
    """
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, np.argsort(values)[::-1][:num_bit]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(num_bit)])
    return top * np.where(signs == 0, 1, signs)


class HammingSearcher(StoredCodes, BinaryCodeBits, Searcher):
    """Search over packed binary codes: a subclass gives ``encode`` and ``num_bit``.

    ``add`` encodes and appends database vectors (ids continue from the current
    size); ``search`` encodes the queries and scans the codes by Hamming distance.
    """

    def search(self, queries, k):
        """Hamming k-NN of the encoded queries: (distances (nq, k) float32, ids (nq, k) int64)."""
        if self.codes is None:
            raise InputError(f"{self.name}: add() vectors before searching")
        k = check_k(k, self.codes.shape[0])
        return hamming_search(self.encode(queries), self.codes, k)


@register("itq")
class ITQ(NativeThreads, FittedGuard, ModelArrays, HammingSearcher):
    """ITQ binary codes with exhaustive Hamming search (C++ core).

    Args:
        num_bit: bits per code, at most the dimension D (codes take ceil(num_bit / 8) bytes).
        niter: ITQ iterations (the pqkmeans library's default is 50).
        seed: seed of the random initial rotation and of the training sample (None: 0).
        train_size: fit on at most this many rows (a seeded random sample);
            None: all rows.

    Attributes after fit: ``mean`` (D,) float32, ``components`` (D, num_bit)
    float32 principal directions W, ``rotation`` (num_bit, num_bit) float32 R,
    ``projection`` (D, num_bit) float32 W R, ``losses`` (niter + 1,) float64
    quantization loss ||B - V R||_F^2 on the training set before each update
    and after the last one, ``loss`` the final one; after add: ``codes``
    (n, ceil(num_bit / 8)) uint8.
    """

    metric_specs = declare(QUANTIZATION_LOSS, N_TRAIN, Metric(
        "itq_iterations", "ITQ iterations run (niter: alternations of B = sign(V R) and the "
        "Procrustes update of R).", display="ITQ iterations", kind="count"))

    model_arrays = ("mean", "projection")

    def __init__(self, num_bit: int = 64, niter: int = 50, seed: int | None = None,
                 train_size: int | None = None, verbose: bool = False):
        self.verbose = bool(verbose)
        self.num_bit = check_num_bit(num_bit, whole_bytes=False)
        self.niter = check_positive_int(niter, "niter")
        self.seed = seed
        self.train_size = None if train_size is None else \
            check_positive_int(train_size, "train_size", 2)
        self.dim = None
        self.mean = self.components = self.rotation = self.projection = None
        self.losses = None
        self.n_train = 0
        self.codes = None

    @property
    def nbytes(self) -> int:
        """Bytes per code, ceil(num_bit / 8)."""
        return -(-self.num_bit // 8)

    def fit(self, x):
        """Learn mean, principal directions and rotation on x (n, D) float32, n >= 2;
        returns self."""
        x = as_matrix(x, "learn", min_rows=2)
        check_num_bit(self.num_bit, x.shape[1], whole_bytes=False)
        seed = plugin_seed(self.seed)
        xt = training_sample(x, self.train_size, seed)
        with serial_blas():
            self._fit(xt, seed)
        return self

    def _fit(self, xt: np.ndarray, seed: int) -> None:
        nt, dim = xt.shape
        num_bit = self.num_bit
        cpp = native.load()
        mean = np.empty(dim, np.float64)
        cov = np.empty((dim, dim), np.float64)
        ITQ_CALLS.call(cpp, "itq_mean_cov", xt, nt, dim, mean, cov)
        mean32 = mean.astype(np.float32)
        components = np.ascontiguousarray(pca_directions(cov, num_bit), dtype=np.float32)
        v = np.empty((nt, num_bit), np.float32)
        ITQ_CALLS.call(cpp, "itq_project", xt, nt, dim, mean32, components, num_bit, v)
        rotation = random_rotation(num_bit, seed)
        cross = np.empty((num_bit, num_bit), np.float64)
        losses = []
        for it in range(self.niter):
            losses.append(ITQ_CALLS.call(cpp, "itq_step", v, nt, num_bit, rotation, cross))
            rotation = procrustes(cross)
            if getattr(self, "verbose", False):
                log_iteration(f"{getattr(self, 'name', '') or 'itq'}: rotation", it + 1,
                              self.niter, losses[-1], "quantization loss")
        losses.append(ITQ_CALLS.call(cpp, "itq_step", v, nt, num_bit, rotation, None))
        self.dim, self.mean, self.components, self.rotation = dim, mean32, components, rotation
        self.projection = np.ascontiguousarray(
            components.astype(np.float64) @ rotation.astype(np.float64), dtype=np.float32)
        self.losses, self.n_train, self.codes = np.array(losses, np.float64), nt, None

    @property
    def loss(self) -> float | None:
        """Final quantization loss ||B - V R||_F^2 on the training set."""
        return None if self.losses is None else float(self.losses[-1])

    def encode(self, x) -> np.ndarray:
        """(n, D) float32 -> (n, ceil(num_bit / 8)) uint8 packed codes (layout in the module
        doc)."""
        self.require_fitted(self.projection is not None, "encoding")
        x = as_matrix(x, "x", dim=self.dim)
        n, bits = x.shape[0], self.nbytes * 8
        projection = self.projection
        if bits != self.num_bit:  # the C++ kernel packs whole bytes: zero columns, masked below
            projection = np.zeros((self.dim, bits), np.float32)
            projection[:, :self.num_bit] = self.projection
        codes = np.empty((n, self.nbytes), np.uint8)
        ITQ_CALLS.call(native.load(), "itq_encode", x, n, self.dim, self.mean, projection, bits,
                       codes)
        if bits != self.num_bit:
            codes[:, -1] &= np.uint8((1 << (self.num_bit % 8)) - 1)
        return codes

    def extra_metrics(self) -> dict:
        if self.losses is None:
            return {}
        return {"quantization_loss": self.loss, "itq_iterations": int(self.niter),
                "n_train": int(self.n_train)}
