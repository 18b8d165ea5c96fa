"""A searcher that counts its trainings, for tests of search grids and the model cache.

``test_counting`` writes one line to the file ``log`` each time it is fitted, so a
test can tell a trained model from a cached one across processes. Its one search
parameter, ``budget``, limits the search to the first ``budget`` base vectors
(0: all), so recall depends on it. ``shuffle`` makes repeated searches return
different ids (a non-deterministic search). When ``$HOLD_STORE`` names a file,
storing its model writes its process id there and then stalls, so a test can kill a run while its
model is written (an environment variable, so that the build's cache key is the
same with and without it); likewise ``$HOLD_FIT`` stalls fitting for the seed
``$HOLD_FIT_SEED``. Each search appends the thread count it was set to
(``set_threads``) to the file ``log + ".searches"``.
"""
import os
import time
from pathlib import Path

import numpy as np

from benchpq.api import UNSET, Searcher
from benchpq.checks import InputError
from benchpq.metric_table import Metric, declare
from benchpq.registry import register


@register("test_counting")
class Counting(Searcher):
    def __init__(self, log: str, budget: int = 0, shuffle: bool = False, seed=None):
        self.log, self.budget, self.shuffle, self.seed = log, budget, shuffle, seed
        self.base = None
        self.calls = 0
        self.threads = None

    def set_threads(self, threads):
        self.threads = threads

    def fit(self, x):
        with open(self.log, "a") as f:
            f.write("fit\n")
        if os.environ.get("HOLD_FIT") and str(self.seed) == os.environ.get("HOLD_FIT_SEED"):
            Path(os.environ["HOLD_FIT"]).write_text(str(os.getpid()))
            time.sleep(120)
        return self

    def add(self, x):
        self.base = np.array(x, dtype=np.float32)

    def set_search_params(self, budget=UNSET, **params):
        super().set_search_params(**params)
        if budget is not UNSET:
            if not isinstance(budget, int) or budget < 0:
                raise InputError(f"budget: must be a whole number >= 0, got {budget!r}")
            self.budget = budget

    def search(self, queries, k):
        base = self.base[:self.budget] if self.budget else self.base
        d = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        self.calls += 1
        with open(self.log + ".searches", "a") as f:
            f.write(f"{self.threads}\n")
        if self.shuffle and self.calls > 1:
            ids = ids[:, ::-1].copy()
        return np.take_along_axis(d, ids, 1).astype(np.float32), ids.astype(np.int64)

    @property
    def code_bits(self):
        return 0

    @property
    def model_bytes(self):
        return 0

    @property
    def codes_bytes(self):
        return 0 if self.base is None else self.base.nbytes

    def __getstate__(self):
        if os.environ.get("HOLD_STORE"):
            Path(os.environ["HOLD_STORE"]).write_text(str(os.getpid()))
            time.sleep(120)
        return self.__dict__.copy()


@register("test_bad_metrics")
class BadMetrics(Counting):
    """Returns extra metrics that a record must not take: ``kind`` 'overwrite' claims a
    recall of 1.0, 'object' returns a value JSON cannot hold, 'nan' a NaN."""

    metric_specs = declare(
        Metric("spread", "A made-up figure that is not a number.", kind="generic", scope="search"),
        Metric("sizes", "A made-up figure JSON cannot hold.", kind="count", scope="search"))

    def __init__(self, log: str, kind: str = "overwrite", seed=None):
        super().__init__(log, seed=seed)
        self.kind = kind

    def extra_metrics(self):
        return {"overwrite": {"recall@1": 1.0}, "object": {"sizes": {1, 2}},
                "nan": {"spread": float("nan")}}[self.kind]
