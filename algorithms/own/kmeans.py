"""Our k-means on raw float vectors, C++ (``cpp/kmeans.cpp``) through cppyy: plugin ``kmeans``.

Lloyd's algorithm with k-means++ (Arthur & Vassilvitskii, SODA 2007) or
random-point initialisation; empty clusters are re-seeded by splitting the
largest one, and training may use a random subsample of
``max_points_per_centroid`` points per cluster, both as faiss does. Labels are
the nearest final centroid of every input vector. Data are held as float32,
so ``codes_bytes`` is the raw data size (n * d * 4).
"""
from __future__ import annotations

import numpy as np

from benchpq import native
from benchpq.api import Clusterer
from benchpq.checks import as_matrix, check_codebook_size, check_positive_int
from benchpq.measure.training_log import log_iterations
from benchpq.metric_table import declare
from benchpq.registry import register

from ..primitives.checks import check_choice, plugin_seed, subsample_arg
from ..primitives.metric_specs import ITERATIONS, OBJECTIVE
from ..primitives.mixins import NativeThreads
from ..primitives.native_calls import Array as A
from ..primitives.native_calls import Call, NativeTable
from ..primitives.native_calls import Scalar as S
from ..primitives.native_modes import INITS

#: cpp/kmeans.h: Lloyd k-means of (n, d) float32 points into k centroids
KMEANS_CALLS = NativeTable(None, {
    "kmeans": Call((A("x", np.float32, ("n", "d")), S("n"), S("d"), S("k"), S("niter"),
                    S("init"), S("seed"), S("mppc"),
                    A("centroids", np.float32, ("k", "d"), out=True),
                    A("objective", np.float64, ("niter",), out=True))),
    "kmeans_assign": Call((A("x", np.float32, ("n", "d")), S("n"), S("d"),
                           A("centroids", np.float32, ("k", "d")), S("k"),
                           A("labels", np.int64, ("n",), out=True),
                           A("distances", np.float32, ("n",), out=True, optional=True))),
}, warm=dict(n=2, d=2, k=2, niter=1, init=INITS["random"], seed=0, mppc=0))


@register("kmeans")
class KMeans(NativeThreads, Clusterer):
    """Seeded Lloyd k-means (C++ core, OpenMP over points).

    Args:
        niter: Lloyd iterations at most (it stops early once no label changes).
        init: ``k-means++`` or ``random`` (distinct training points).
        seed: seed of sampling and initialisation (None: 0).
        max_points_per_centroid: train on a random subsample of at most this
            many points per cluster (256 is faiss's own default); None (the
            default, as the faiss_kmeans adapter's): all points.

    Attributes after fit_predict: ``centroids`` (k, d) float32, ``objectives``
    (iterations,) float64, the sum of squared distances of the training points
    to their centroids at each iteration (non-increasing).
    """

    metric_specs = declare(ITERATIONS, OBJECTIVE)

    def __init__(self, niter: int = 20, init: str = "k-means++", seed: int | None = None,
                 max_points_per_centroid: int | None = None, verbose: bool = False):
        self.niter = check_positive_int(niter, "niter")
        self.verbose = bool(verbose)
        self.init = check_choice(init, INITS, "init")
        self.seed = seed
        self.max_points_per_centroid = None if max_points_per_centroid is None else \
            check_positive_int(max_points_per_centroid, "max_points_per_centroid")
        self.centroids = None
        self.objectives = None
        self._shape = (0, 0)

    def fit_predict(self, x, n_clusters):
        """(n, d) float32 -> (n,) int64 labels in [0, n_clusters); n >= n_clusters."""
        x = as_matrix(x, "x")
        n, d = x.shape
        k = check_positive_int(n_clusters, "n_clusters")
        check_codebook_size(n, k, "clusters")
        seed = plugin_seed(self.seed)
        cpp = native.load()
        centroids = np.empty((k, d), np.float32)
        objectives = np.zeros(self.niter, np.float64)
        iterations = KMEANS_CALLS.call(
            cpp, "kmeans", x, n, d, k, self.niter, INITS[self.init], seed,
            subsample_arg(self.max_points_per_centroid, k, n), centroids, objectives)
        labels = np.empty(n, np.int64)
        KMEANS_CALLS.call(cpp, "kmeans_assign", x, n, d, centroids, k, labels, None)
        self.centroids, self.objectives, self._shape = centroids, objectives[:iterations], (n, d)
        if self.verbose:
            log_iterations(f"{self.name or 'kmeans'}: k-means", self.objectives)
        return labels

    @property
    def codes_bytes(self) -> int:
        return int(self._shape[0] * self._shape[1] * 4)

    @property
    def model_bytes(self) -> int:
        return int(self.centroids.nbytes) if self.centroids is not None else 0

    def extra_metrics(self) -> dict:
        if self.objectives is None:
            return {}
        return {"iterations": int(len(self.objectives)), "objective": float(self.objectives[-1])}
