"""Our Bk-means (binary k-means), C++ (``cpp/bkmeans.cpp``) through cppyy: plugin ``bkmeans``.

Bk-means after Gong, Pawar, Yu, Lazebnik, "Web scale photo hash clustering on
a single machine", CVPR 2015: vectors are encoded once into binary codes by
ITQ (:mod:`benchpq.algorithms.own.itq`), then k-means runs in Hamming space on the
packed codes, the centres being binary codes too.

* Assignment: the centre at the smallest Hamming distance (popcount of XOR),
  ties to the smaller centre index.
* Update: the bitwise majority vote of the members; a bit is 1 when more than
  half of the members have it, 0 when fewer than half do, and keeps its
  previous value on an exact tie (as the pqkmeans library).
* ``niter`` assignments with an update between consecutive ones, stopping
  early when an update changes no centre; labels are the nearest final
  centre. (The pqkmeans library's BKMeans updates once more after its last
  assignment, so its ``cluster_centers_`` are one vote ahead of its labels.)
* Initialisation and empty clusters as in :mod:`benchpq.algorithms.own.pqkmeans`:
  ``random`` (k distinct codes, seeded) or ``pqkmeans`` (the library's k
  draws with replacement from std::mt19937(seed)); ``farthest`` or ``keep``.

Arrays: codes (n, nbytes) uint8 packed bits (bit order of
:mod:`benchpq.algorithms.own.itq`), centres (k, nbytes) uint8, labels (n,) int64.
Memory beyond codes and labels: O(k * bits) counters. Every input is checked
here, before any C++ call.
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.checks import as_streamed_matrix, check_labels, check_positive_int
from benchpq.metric_table import declare
from benchpq.registry import register

from ..primitives.checks import (
    check_binary_codes,
    check_n_clusters,
    check_num_bit,
    plugin_seed,
)
from ..primitives.code_clustering import CodeClusterer, CodeClustering, check_loop, initial_centers
from ..primitives.metric_specs import N_TRAIN, QUANTIZATION_LOSS, STATE_BYTES
from ..primitives.mixins import BinaryCodeBits
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import CODE_KMEANS_INIT_GIVEN as INIT_GIVEN
from ..primitives.native_modes import EMPTY_RULES
from ..primitives.streaming import training_sample
from .itq import ITQ

_U8, _I64, _F64 = np.uint8, np.int64, np.float64
_CODES, _LABELS = A("codes", _U8, ("n", "w")), A("labels", _I64, ("n",))

#: cpp/bkmeans.h: packed codes (n, w) uint8, centres (k, w) uint8
BKMEANS_CALLS = NativeTable(None, {
    "bkmeans": Call((_CODES, S("n"), S("w"), S("k"), S("niter"), S("init"), S("empty"), S("seed"),
                     A("centers", _U8, ("k", "w"), out=True), A("labels", _I64, ("n",), out=True),
                     A("objective", _F64, ("niter",), out=True),
                     A("iter_seconds", _F64, ("niter",), out=True))),
    "bkmeans_assign": Call((_CODES, S("n"), S("w"), A("centers", _U8, ("k", "w")), S("k"),
                            A("labels", _I64, ("n",), out=True),
                            A("distances", np.int32, ("n",), out=True))),
    "bkmeans_update": Call((_CODES, S("n"), S("w"), _LABELS, S("k"),
                            A("centers", _U8, ("k", "w"), out=True))),
}, warm=dict(n=2, w=1, k=2, niter=1, init=INIT_GIVEN, empty=EMPTY_RULES["farthest"], seed=0))


def bkmeans(codes, k: int, niter: int = 20, init: str = "pqkmeans", empty: str = "farthest",
            seed: int = 0, centers=None) -> CodeClustering:
    """Bk-means on packed codes (n, nbytes) uint8; see the module doc.

    ``centers`` (k, nbytes) uint8, if given, are the initial centres (``init`` is then ignored).
    """
    codes = check_binary_codes(codes)
    n, w = codes.shape
    k, niter, seed = check_loop(n, k, niter, init, empty, seed)
    out, mode = initial_centers(None if centers is None else
                                check_binary_codes(centers, w, "centers"), k, w, init)
    labels = np.empty(n, np.int64)
    objective, seconds = np.zeros(niter), np.zeros(niter)
    ran = BKMEANS_CALLS.call(native.load(), "bkmeans", codes, n, w, k, niter, mode,
                             EMPTY_RULES[empty], seed, out, labels, objective, seconds)
    return CodeClustering(out, labels, objective[:ran], seconds[:ran])


def bkmeans_assign(codes, centers) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,) int64, distances (n,) int32): nearest centre by Hamming distance."""
    codes = check_binary_codes(codes)
    n, w = codes.shape
    centers = check_binary_codes(centers, w, "centers")
    k = centers.shape[0]
    labels, distances = np.empty(n, np.int64), np.empty(n, np.int32)
    BKMEANS_CALLS.call(native.load(), "bkmeans_assign", codes, n, w, centers, k, labels,
                       distances)
    return labels, distances


def majority_vote(codes, labels, centers) -> tuple[np.ndarray, int]:
    """One majority-vote update: (new centres (k, nbytes) uint8, number of centres changed).

    Ties keep the previous bit; empty clusters keep their centre.
    """
    codes = check_binary_codes(codes)
    n, w = codes.shape
    out = check_binary_codes(centers, w, "centers").copy()
    k = out.shape[0]
    labels = check_labels(labels, n, k)
    changed = BKMEANS_CALLS.call(native.load(), "bkmeans_update", codes, n, w, labels, k, out)
    return out, int(changed)


def train_itq_encoder(x: np.ndarray, num_bit: int, niter: int, train_size: int | None,
                      seed: int) -> ITQ:
    """Our ITQ trained on a seeded sample of x (the rows ``ITQ(train_size=...)`` would draw).

    Shared with the pqkmeans-library adapter, so that both cluster the very same codes.
    """
    return ITQ(num_bit, niter, seed).fit(training_sample(x, train_size, seed))


@register("bkmeans")
class BKMeansClusterer(BinaryCodeBits, CodeClusterer):
    """Bk-means: our ITQ encoder, then k-means in Hamming space (C++ core, OpenMP over points).

    fit_predict encodes block by block (a memory-mapped input is streamed).

    Args:
        num_bit: ITQ bits per code, a multiple of 8 (code_bits).
        itq_iter: ITQ iterations.
        train_size: ITQ trains on at most this many rows (seeded sample); None: all rows.
        niter: assignment steps (pqkmeans' ``iteration``).
        init: ``pqkmeans`` (the library's draw of k codes; with seed 0 the
            library's very centres) or ``random`` (k distinct codes).
        empty: ``farthest`` or ``keep`` (see :mod:`benchpq.algorithms.own.pqkmeans`).
        seed: seed of the sample, the ITQ rotation and the initialisation (None: 0).

    extra_metrics: ``encoder_train_s``, ``encode_s``, ``kmeans_s``,
    ``iterations``, ``iter_s``, ``objective`` (sum of the Hamming distances at
    the last assignment), ``quantization_loss`` (ITQ), ``state_bytes``.
    """

    metric_specs = declare(QUANTIZATION_LOSS, STATE_BYTES, N_TRAIN)

    def __init__(self, num_bit: int = 64, itq_iter: int = 50, train_size: int | None = 100_000,
                 niter: int = 20, init: str = "pqkmeans", empty: str = "farthest",
                 seed: int | None = None, verbose: bool = False):
        self.num_bit = check_num_bit(num_bit)
        self.itq_iter = check_positive_int(itq_iter, "itq_iter")
        self.train_size = None if train_size is None else \
            check_positive_int(train_size, "train_size", 2)
        self.set_loop(niter, init, empty, seed, verbose)

    def fit_predict(self, x, n_clusters):
        """(n, D) float32 -> (n,) int64 labels in [0, n_clusters)."""
        x = as_streamed_matrix(x, "x", min_rows=2)
        n, dim = x.shape
        check_num_bit(self.num_bit, dim)
        k = check_n_clusters(n_clusters, n)
        seed = plugin_seed(self.seed)
        codes = self.encode_and_cluster(
            x, lambda: train_itq_encoder(x, self.num_bit, self.itq_iter, self.train_size, seed),
            self.num_bit // 8, lambda codes: bkmeans(codes, k, self.niter, self.init, self.empty,
                                                     seed))
        r = self.result
        self._metrics.update({
            "quantization_loss": self.encoder.loss,
            "state_bytes": int(codes.nbytes + r.labels.nbytes + k * (self.num_bit * 4 + 16)),
            "n_train": int(self.encoder.n_train)})
        return r.labels
