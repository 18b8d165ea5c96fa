"""Our PQk-means, C++ (``cpp/pqkmeans.cpp``) through cppyy: plugin ``pqkmeans``.

PQk-means after Matsui, Ogaki, Yamasaki, Aizawa, "PQk-means: Billion-scale
clustering for product-quantized codes", ACM Multimedia 2017: vectors are
PQ-encoded once, then k-means runs on the codes alone, the centres being PQ
codes too.

* Assignment: symmetric distance d(x, c) = sum_m T_m[x_m, c_m], with the
  codeword-to-codeword tables T (M, Ks, Ks) (:func:`sdc_tables`); ties go to
  the smaller centre index.
* Update, by sparse voting: for each cluster and sub-space m, the histogram h
  of its members' sub-codes; the new sub-code is argmin_c sum_a h[a] T_m[a, c]
  (the codeword nearest, in summed squared distance, to the members'
  codewords), ties to the smaller codeword. No float vector is ever built.
* Grouped assignment (``assign="grouped"``), for large k: the exact search
  over all k centres is replaced, as the paper proposes for large k, by a
  nearest-centre search in the code domain with exact re-checking. The
  centres are clustered by PQk-means itself into ``groups`` groups (default
  ceil(sqrt(k)); 10 iterations, seeded); a code is scored against the group
  centres and exactly against the members of its ``probe`` nearest groups,
  and, from the second assignment on, its previous centre, so the objective
  never rises. Cost per code: about groups + probe * k / groups distances
  instead of k. With probe >= groups it is the exhaustive assignment bit for
  bit.
* ``niter`` assignments with an update between consecutive ones, as the
  pqkmeans library counts them; it stops early when an update changes no
  centre. Labels are the nearest final centre of every code.
* Initialisation (``init``): ``random``, k distinct codes drawn at random,
  seeded; ``pqkmeans``, the library's own draw (std::shuffle with
  std::mt19937(seed); seed 0 is the library's). Empty clusters (``empty``):
  ``farthest``, re-seeded with the points farthest from their centres;
  ``keep``, the library's rule (the centre stays). Details in
  ``cpp/modes.h``. (``pqkmeans`` holds n int32 row ids while it
  draws, as the library, freed before the first iteration.)

Arrays: codes (n, M) uint8 (Ks <= 256), centres (k, M) uint8, tables (M, Ks,
Ks) float32, labels (n,) int64. Memory beyond the codes and labels: O(k)
tables (M * Ks * k floats for the centre layout, k * M * Ks counts for the
histograms). Every input is checked here, before any C++ call.
"""
from __future__ import annotations

import math

import numpy as np

from benchpq import native
from benchpq.checks import (
    InputError,
    as_matrix,
    as_streamed_matrix,
    check_codebook_size,
    check_labels,
    check_positive_int,
    check_subspaces,
)
from benchpq.metric_table import declare
from benchpq.registry import register

from ..primitives.checks import (
    check_choice,
    check_n_clusters,
    check_pq_codes,
    check_tables,
    plugin_seed,
)
from ..primitives.code_clustering import CodeClusterer, CodeClustering, check_loop, initial_centers
from ..primitives.metric_specs import N_TRAIN, STATE_BYTES
from ..primitives.mixins import PQCodeBits
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import CODE_KMEANS_INIT_GIVEN as INIT_GIVEN
from ..primitives.native_modes import EMPTY_RULES
from ..primitives.streaming import training_sample
from .pq import PQ

_U8, _I64, _F32, _F64 = np.uint8, np.int64, np.float32, np.float64
_CODES, _TABLES = A("codes", _U8, ("n", "M")), A("tables", _F32, ("M", "Ks", "Ks"))

#: cpp/pqkmeans.h: PQ codes (n, M) uint8, symmetric-distance tables (M, Ks, Ks) float32
PQKMEANS_CALLS = NativeTable(None, {
    "pqkmeans_tables": Call((A("codewords", _F32, ("M", "Ks", "ds")), S("M"), S("Ks"), S("ds"),
                             A("tables", _F32, ("M", "Ks", "Ks"), out=True))),
    "pqkmeans": Call((_CODES, S("n"), S("M"), S("Ks"), _TABLES, S("k"), S("niter"), S("init"),
                      S("empty"), S("groups"), S("probe"), S("seed"),
                      A("centers", _U8, ("k", "M"), out=True),
                      A("labels", _I64, ("n",), out=True),
                      A("objective", _F64, ("niter",), out=True),
                      A("iter_seconds", _F64, ("niter",), out=True))),
    "pqkmeans_assign": Call((_CODES, S("n"), S("M"), S("Ks"), _TABLES,
                             A("centers", _U8, ("k", "M")), S("k"), S("groups"), S("probe"),
                             S("seed"), A("labels", _I64, ("n",), out=True),
                             A("distances", _F32, ("n",), out=True))),
    "pqkmeans_update": Call((_CODES, S("n"), S("M"), S("Ks"), _TABLES, A("labels", _I64, ("n",)),
                             S("k"), A("centers", _U8, ("k", "M"), out=True))),
}, warm=dict(n=2, M=1, Ks=2, ds=1, k=2, niter=1, init=INIT_GIVEN,
            empty=EMPTY_RULES["farthest"], groups=0, probe=0, seed=0))


# -- tables -------------------------------------------------------------------
def sdc_tables(codewords) -> np.ndarray:
    """(M, Ks, Ks) float32 squared distances between the codewords (M, Ks, Ds) of each sub-space.

    Summed in float32 in dimension order, like the pqkmeans library, so its
    tables and ours are equal bit for bit (float64 codewords are rounded to
    float32 first, as the library does).
    """
    if not isinstance(codewords, np.ndarray) or codewords.ndim != 3:
        raise InputError(f"codewords: expected an (M, Ks, Ds) array, got "
                         f"{getattr(codewords, 'shape', type(codewords).__name__)}")
    M, Ks, ds = codewords.shape
    if not 1 <= Ks <= 256:
        raise InputError(f"codewords: PQk-means needs Ks <= 256 (uint8 codes), got Ks={Ks}")
    cw = as_matrix(codewords.reshape(M * Ks, ds), "codewords").reshape(M, Ks, ds)
    tables = np.empty((M, Ks, Ks), np.float32)
    PQKMEANS_CALLS.call(native.load(), "pqkmeans_tables", cw, M, Ks, ds, tables)
    return tables


# -- the assignment ------------------------------------------------------------
#: assignment modes: ``exhaustive`` (every centre, the reference) or ``grouped``
ASSIGNMENTS = ("exhaustive", "grouped")


def assignment_groups(assign: str, k: int, groups: int | None, probe: int) -> tuple[int, int]:
    """(groups, probe) as the C++ core takes them: (0, 0) for ``exhaustive``; for
    ``grouped``, ``groups`` (None: ceil(sqrt(k))) capped at k, and ``probe`` >= 1."""
    check_choice(assign, ASSIGNMENTS, "assign")
    if assign == "exhaustive":
        return 0, 0
    g = math.isqrt(k - 1) + 1 if groups is None else check_positive_int(groups, "groups")
    return min(g, k), check_positive_int(probe, "probe")


# -- the algorithm ------------------------------------------------------------
def pqkmeans(codes, tables, k: int, niter: int = 20, init: str = "pqkmeans",
             empty: str = "farthest", seed: int = 0, centers=None, assign: str = "exhaustive",
             groups: int | None = None, probe: int = 8) -> CodeClustering:
    """PQk-means on codes (n, M) uint8 with tables (M, Ks, Ks); see the module doc.

    ``centers`` (k, M) uint8, if given, are the initial centres (``init`` is then ignored).
    ``assign``: ``exhaustive`` (default) or ``grouped`` with ``groups`` and ``probe``
    (see the module doc).
    """
    tables = check_tables(tables)
    M, Ks = tables.shape[0], tables.shape[1]
    codes = check_pq_codes(codes, M, Ks)
    n = codes.shape[0]
    k, niter, seed = check_loop(n, k, niter, init, empty, seed)
    out, mode = initial_centers(None if centers is None else
                                check_pq_codes(centers, M, Ks, "centers"), k, M, init)
    if centers is None and init == "pqkmeans" and n > 2 ** 31 - 1:
        raise InputError(f"init='pqkmeans' (the library's draw) needs n < 2**31, got {n}")
    n_groups, probe = assignment_groups(assign, k, groups, probe)
    labels = np.empty(n, np.int64)
    objective, seconds = np.zeros(niter), np.zeros(niter)
    ran = PQKMEANS_CALLS.call(native.load(), "pqkmeans", codes, n, M, Ks, tables, k, niter, mode,
                              EMPTY_RULES[empty], n_groups, probe, seed, out, labels, objective,
                              seconds)
    return CodeClustering(out, labels, objective[:ran], seconds[:ran])


def pqkmeans_assign(codes, tables, centers, assign: str = "exhaustive",
                    groups: int | None = None, probe: int = 8, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,) int64, distances (n,) float32): nearest centre by symmetric distance.

    ``assign="grouped"`` searches the ``probe`` nearest of ``groups`` groups of
    centres only (grouping seeded by ``seed``); see the module doc.
    """
    tables = check_tables(tables)
    M, Ks = tables.shape[0], tables.shape[1]
    codes = check_pq_codes(codes, M, Ks)
    centers = check_pq_codes(centers, M, Ks, "centers")
    n, k = codes.shape[0], centers.shape[0]
    n_groups, probe = assignment_groups(assign, k, groups, probe)
    seed = plugin_seed(seed)
    labels, distances = np.empty(n, np.int64), np.empty(n, np.float32)
    PQKMEANS_CALLS.call(native.load(), "pqkmeans_assign", codes, n, M, Ks, tables, centers, k,
                        n_groups, probe, seed, labels, distances)
    return labels, distances


def sparse_voting(codes, tables, labels, centers) -> tuple[np.ndarray, int]:
    """One sparse-voting update: (new centres (k, M) uint8, number of centres changed).

    Empty clusters keep their centre.
    """
    tables = check_tables(tables)
    M, Ks = tables.shape[0], tables.shape[1]
    codes = check_pq_codes(codes, M, Ks)
    out = check_pq_codes(centers, M, Ks, "centers").copy()
    n, k = codes.shape[0], out.shape[0]
    labels = check_labels(labels, n, k)
    changed = PQKMEANS_CALLS.call(native.load(), "pqkmeans_update", codes, n, M, Ks, tables,
                                  labels, k, out)
    return out, int(changed)


# -- the plugin ----------------------------------------------------------------
def train_pq_encoder(x: np.ndarray, M: int, Ks: int, niter: int, train_size: int | None,
                     seed: int) -> PQ:
    """Our PQ (:class:`benchpq.algorithms.own.pq.PQ`) trained on a seeded sample of x.

    k-means on all the sample's rows (no further subsampling), random-point
    initialisation, ``niter`` iterations. Shared with the pqkmeans-library
    adapters, so that both cluster the very same codes.
    """
    sample = training_sample(x, train_size, seed)
    return PQ(M=M, Ks=Ks, iter=niter, seed=seed, max_points_per_centroid=None,
              init="random").fit(sample)


@register("pqkmeans")
class PQKMeansClusterer(PQCodeBits, CodeClusterer):
    """PQk-means: our PQ encoder, then k-means on the codes (C++ core, OpenMP over points).

    Args:
        M: PQ sub-spaces (must divide the dimension); code_bits = 8 M.
        Ks: codewords per sub-space, 2 .. 256 (uint8 codes).
        encoder_iter: k-means iterations of the PQ training.
        train_size: the encoder trains on at most this many rows (seeded
            sample); None: all rows.
        niter: assignment steps (pqkmeans' ``iteration``).
        init: ``pqkmeans`` (the library's draw of k codes; with seed 0 the
            library's very centres) or ``random`` (k distinct codes).
        empty: ``farthest`` or ``keep`` (see the module doc).
        assign: ``exhaustive`` (every centre; the reference) or ``grouped``
            (sub-linear in k: each code is compared with the members of the
            ``probe`` nearest of ``groups`` groups of centres; for k of 10^4
            and more).
        groups: groups of centres for ``grouped`` (None: ceil(sqrt(k))).
        probe: groups searched per code for ``grouped``.
        seed: seed of the sample, the encoder and the initialisation (None: 0).

    fit_predict encodes the vectors block by block (a memory-mapped input is
    streamed: only the block being read stays resident) and clusters the
    codes; extra_metrics
    gives ``encoder_train_s``, ``encode_s``, ``kmeans_s`` (the clustering
    loop), ``iterations``, ``iter_s`` (mean seconds per iteration),
    ``objective`` (sum of the symmetric distances at the last assignment) and
    ``state_bytes`` (codes, labels and the O(k) tables the loop holds).
    """

    metric_specs = declare(STATE_BYTES, N_TRAIN)

    def __init__(self, M: int = 8, Ks: int = 256, encoder_iter: int = 20,
                 train_size: int | None = 100_000, niter: int = 20, init: str = "pqkmeans",
                 empty: str = "farthest", assign: str = "exhaustive", groups: int | None = None,
                 probe: int = 8, seed: int | None = None, verbose: bool = False):
        self.M = check_positive_int(M, "M")
        self.assign = check_choice(assign, ASSIGNMENTS, "assign")
        self.groups = None if groups is None else check_positive_int(groups, "groups")
        self.probe = check_positive_int(probe, "probe")
        self.Ks = check_positive_int(Ks, "Ks", 2, 256)
        self.encoder_iter = check_positive_int(encoder_iter, "encoder_iter")
        self.train_size = None if train_size is None else \
            check_positive_int(train_size, "train_size")
        self.set_loop(niter, init, empty, seed, verbose)

    def fit_predict(self, x, n_clusters):
        """(n, D) float32 -> (n,) int64 labels in [0, n_clusters)."""
        x = as_streamed_matrix(x, "x")
        n, dim = x.shape
        check_subspaces(dim, self.M)
        k = check_n_clusters(n_clusters, n)
        seed = plugin_seed(self.seed)
        check_codebook_size(min(n, self.train_size or n), self.Ks)
        tables = None

        def cluster(codes):
            nonlocal tables
            tables = sdc_tables(self.encoder.codewords)
            return pqkmeans(codes, tables, k, self.niter, self.init, self.empty, seed,
                            assign=self.assign, groups=self.groups, probe=self.probe)

        codes = self.encode_and_cluster(
            x, lambda: train_pq_encoder(x, self.M, self.Ks, self.encoder_iter, self.train_size,
                                        seed), self.M, cluster)
        r = self.result
        self._metrics.update({
            "state_bytes": int(codes.nbytes + r.labels.nbytes + tables.nbytes
                               + 4 * self.M * self.Ks * k * 2 + r.centers.nbytes),
            "n_train": int(min(n, self.train_size or n))})
        return r.labels
