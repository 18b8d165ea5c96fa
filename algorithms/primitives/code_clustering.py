"""What our code clusterers (PQk-means, Bk-means) share: the result type and the plugin base."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchpq.api import Clusterer
from benchpq.checks import check_positive_int
from benchpq.training_log import log_iterations

from .checks import check_choice
from .mixins import NativeThreads
from .native_modes import CODE_KMEANS_INITS as INITS
from .native_modes import EMPTY_RULES


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


class CodeClusterer(NativeThreads, Clusterer):
    """What our code clusterers (``pqkmeans``, ``bkmeans``) share: the clustering
    loop's settings, the thread setting and the metrics of the last fit_predict.

    Subclasses set their encoder's parameters, then call :meth:`set_loop`.
    """

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
        self._n = 0

    def report_iterations(self) -> None:
        """With ``verbose``, log each iteration of the last clustering (objective, time)."""
        if self.verbose and self.result is not None:
            log_iterations(f"{self.name}: k-means on codes", self.result.objective,
                           self.result.iter_seconds)

    def extra_metrics(self) -> dict:
        return dict(self._metrics)
