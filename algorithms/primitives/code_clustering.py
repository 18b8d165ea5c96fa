"""What our code clusterers (PQk-means, Bk-means) share: the result type and the plugin base."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from benchpq.api import Clusterer
from benchpq.checks import InputError, check_positive_int
from benchpq.measure.training_log import log_iterations
from benchpq.metric_table import declare

from .checks import check_choice, check_n_clusters, plugin_seed
from .metric_specs import ENCODER_TRAIN_S, ITER_S, ITERATIONS, KMEANS_S, OBJECTIVE
from .mixins import NativeThreads
from .native_modes import CODE_KMEANS_INIT_GIVEN as INIT_GIVEN
from .native_modes import CODE_KMEANS_INITS as INITS
from .native_modes import EMPTY_RULES
from .streaming import check_finite_streaming, encode_streaming


@dataclass
class CodeClustering:
    """Result of k-means on codes (PQk-means or Bk-means).

    centers: (k, code_size) uint8, the centres of the last assignment.
    labels: (n,) int64, the nearest final centre of every code.
    objective: (iterations,) float64, sum of the code-to-centre distances at each assignment.
    iter_seconds: (iterations,) float64, wall time of each iteration.
    """

    centers: np.ndarray
    labels: np.ndarray
    objective: np.ndarray
    iter_seconds: np.ndarray

    @property
    def iterations(self) -> int:
        return int(len(self.objective))


def check_loop(n: int, k, niter, init: str, empty: str, seed) -> tuple[int, int, int]:
    """(k, niter, seed) of a k-means on n codes, checked, with ``init`` and ``empty`` known."""
    k = check_n_clusters(k, n)
    niter = check_positive_int(niter, "niter")
    check_choice(init, INITS, "init")
    check_choice(empty, EMPTY_RULES, "empty")
    return k, niter, plugin_seed(seed)


def initial_centers(centers: np.ndarray | None, k: int, width: int, init: str
                    ) -> tuple[np.ndarray, int]:
    """The (k, width) uint8 centres the C++ loop starts from (and writes), with its init mode:
    a copy of ``centers`` (already checked codes) if given, else zeros drawn by ``init``."""
    if centers is None:
        return np.zeros((k, width), np.uint8), INITS[init]
    if centers.shape[0] != k:
        raise InputError(f"centers: expected {k} rows (k), got {centers.shape[0]}")
    return centers.copy(), INIT_GIVEN


class CodeClusterer(NativeThreads, Clusterer):
    """What our code clusterers (``pqkmeans``, ``bkmeans``) share: the clustering
    loop's settings, the thread setting and the metrics of the last fit_predict.

    Subclasses set their encoder's parameters, then call :meth:`set_loop`.
    """

    metric_specs = declare(ENCODER_TRAIN_S, KMEANS_S, ITERATIONS, ITER_S, OBJECTIVE)

    def set_loop(self, niter: int, init: str, empty: str, seed: int | None,
                  verbose: bool = False) -> None:
        self.niter = check_positive_int(niter, "niter")
        self.verbose = bool(verbose)
        self.init = check_choice(init, INITS, "init")
        self.empty = check_choice(empty, EMPTY_RULES, "empty")
        self.seed = seed
        self.encoder = None
        self.result = None
        self._metrics: dict = {}
        self._n = self._width = 0

    def report_iterations(self) -> None:
        """With ``verbose``, log each iteration of the last clustering (objective, time)."""
        if self.verbose and self.result is not None:
            log_iterations(f"{self.name}: k-means on codes", self.result.objective,
                           self.result.iter_seconds)

    def encode_and_cluster(self, x: np.ndarray, train_encoder, width: int, cluster
                           ) -> np.ndarray:
        """Train the encoder, encode x block by block, cluster the codes; return the codes.

        ``train_encoder()`` returns the trained encoder (kept as ``encoder``),
        whose ``encode`` gives (rows, width) uint8 codes; ``cluster(codes)``
        returns the :class:`CodeClustering` (kept as ``result``). The phase
        times and the loop's figures become the metrics; a subclass adds its own.
        """
        check_finite_streaming(x, "x")
        t0 = time.perf_counter()
        self.encoder = train_encoder()
        t1 = time.perf_counter()
        codes = encode_streaming(self.encoder.encode, x, width)
        t2 = time.perf_counter()
        self.result = cluster(codes)
        self.report_iterations()
        t3 = time.perf_counter()
        r = self.result
        self._n, self._width = x.shape[0], width
        self._metrics = {
            "encoder_train_s": t1 - t0, "encode_s": t2 - t1, "kmeans_s": t3 - t2,
            "iterations": r.iterations, "iter_s": float(r.iter_seconds.mean()),
            "objective": float(r.objective[-1])}
        return codes

    def extra_metrics(self) -> dict:
        return dict(self._metrics)

    @property
    def codes_bytes(self) -> int:
        return int(self._n * self._width)

    @property
    def model_bytes(self) -> int:
        if self.encoder is None:
            return 0
        return int(self.encoder.model_bytes + self.result.centers.nbytes)
