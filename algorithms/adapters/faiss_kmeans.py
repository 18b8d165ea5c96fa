"""faiss k-means on raw float vectors (Lloyd's algorithm), the clustering baseline.

``faiss_kmeans``: faiss.Kmeans with ``niter`` iterations; labels are the
nearest centroid after the last iteration. Data are held as float32, so
``codes_bytes`` is the raw data size (n * d * 4).
"""
from __future__ import annotations

import faiss
import numpy as np

from benchpq.api import Clusterer
from benchpq.checks import as_matrix, check_codebook_size, check_positive_int
from benchpq.metric_table import declare
from benchpq.registry import register

from ..primitives.metric_specs import ITERATIONS, OBJECTIVE


@register("faiss_kmeans")
class FaissKMeans(Clusterer):
    """faiss.Kmeans; ``max_points_per_centroid`` None trains on all points."""

    metric_specs = declare(ITERATIONS, OBJECTIVE)

    def __init__(self, niter: int = 20, nredo: int = 1, seed: int | None = None,
                 max_points_per_centroid: int | None = None):
        self.niter = check_positive_int(niter, "niter")
        self.nredo = check_positive_int(nredo, "nredo")
        self.seed = seed
        self.max_points_per_centroid = max_points_per_centroid
        self.centroids = None
        self._n = 0
        self._obj = []

    def set_threads(self, threads: int) -> None:
        faiss.omp_set_num_threads(int(threads))

    def fit_predict(self, x, n_clusters):
        x = as_matrix(x, "x")
        check_codebook_size(x.shape[0], n_clusters, "clusters")
        mppc = self.max_points_per_centroid or (x.shape[0] // n_clusters + 1)
        km = faiss.Kmeans(x.shape[1], int(n_clusters), niter=self.niter, nredo=self.nredo,
                          seed=int(self.seed or 0), max_points_per_centroid=int(mppc),
                          verbose=False)
        km.train(x)
        self.centroids = km.centroids
        self._obj = [float(v) for v in km.obj]
        _, labels = km.index.search(x, 1)
        self._n, self._d = x.shape
        return labels[:, 0].astype(np.int64)

    @property
    def codes_bytes(self) -> int:
        return int(self._n * getattr(self, "_d", 0) * 4)

    @property
    def model_bytes(self) -> int:
        return int(self.centroids.nbytes) if self.centroids is not None else 0

    def extra_metrics(self) -> dict:
        return {"iterations": self.niter, "objective": self._obj[-1] if self._obj else None}
