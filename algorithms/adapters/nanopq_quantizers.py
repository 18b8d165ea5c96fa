"""nanopq adapters (pure Python/NumPy reference implementations by Y. Matsui).

* ``nanopq_pq``: nanopq.PQ (Jegou, Douze, Schmid, TPAMI 2011).
* ``nanopq_opq``: nanopq.OPQ (Ge, He, Ke, Sun, TPAMI 2014), non-parametric, with
  optional parametric (eigenvalue allocation) initialisation.

Search is exhaustive ADC: one distance table per query (``dtable``), scanned
over all codes (``adist``), then a partial sort for the top k.
Codes are (n, M) of nanopq's code dtype (uint8 for Ks <= 256).
"""
from __future__ import annotations

import nanopq
import numpy as np

from benchpq.api import Quantizer, Searcher, equal_bounds
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_k,
    check_positive_int,
    check_subspaces,
)
from benchpq.registry import register

from ..primitives.mixins import FittedGuard, PQCodeBits, StoredCodes


def top_k(dists: np.ndarray, k: int, largest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(k,) smallest (``largest``: largest) of a (n,) vector, best first (ties by smaller id)."""
    ranking = -dists if largest else dists
    part = np.argpartition(ranking, k - 1)[:k] if k < dists.size else np.arange(dists.size)
    order = np.lexsort((part, ranking[part]))
    ids = part[order]
    return dists[ids].astype(np.float32), ids.astype(np.int64)


class NanoPQBase(FittedGuard, StoredCodes, PQCodeBits, Quantizer, Searcher):
    """Encode/decode/ADC search shared by the nanopq PQ and OPQ adapters; under ``ip`` the
    model is nanopq's ``metric="dot"`` and search returns inner products, largest first."""

    search_metrics = ("l2", "ip")

    fitted_attribute, fitted_action = "model", "using the model"
    #: the library's models, rebuilt from their arrays by the model cache
    stored_classes = (nanopq.PQ, nanopq.OPQ)

    def __init__(self, M: int = 8, Ks: int = 256, iter: int = 20, seed: int | None = None):
        self.M = check_positive_int(M, "M")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 32)
        self.iter = check_positive_int(iter, "iter")
        self.seed = seed
        self.model = None
        self.codes = None
        self.dim = None

    def _check_fit(self, x):
        x = as_matrix(x, "learn")
        check_subspaces(x.shape[1], self.M)
        check_codebook_size(x.shape[0], self.Ks)
        self.dim = x.shape[1]
        return x

    def encode(self, x):
        return self.trained().encode(as_matrix(x, "x", dim=self.dim))

    def decode(self, codes):
        model = self.trained()
        codes = as_matrix(codes, "codes", dtype=model.code_dtype, dim=self.M, finite=False)
        return model.decode(codes).astype(np.float32, copy=False)

    def _dtable(self, query):
        return self.trained().dtable(query)

    def search(self, queries, k):
        if self.codes is None:
            raise InputError(f"{self.name}: add() vectors before searching")
        k = check_k(k, self.codes.shape[0])
        queries = as_matrix(queries, "query", dim=self.dim)
        distances = np.empty((queries.shape[0], k), np.float32)
        ids = np.empty((queries.shape[0], k), np.int64)
        for i, q in enumerate(queries):
            distances[i], ids[i] = top_k(self._dtable(q).adist(self.codes), k,
                                         largest=self.metric == "ip")
        return distances, ids

    def _nanopq_metric(self) -> str:
        return "dot" if self.metric == "ip" else "l2"

    @property
    def model_bytes(self) -> int:
        return int(self.model.codewords.nbytes) if self.model is not None else 0

    def subspace_codes(self, codes) -> tuple[np.ndarray, int]:
        """nanopq's codes are one column per sub-space: ((n, M) codes, Ks)."""
        model = self.trained()
        return as_matrix(codes, "codes", dtype=model.code_dtype, dim=self.M, finite=False), \
            self.Ks


@register("nanopq_pq")
class NanoPQ(NanoPQBase):
    """nanopq.PQ: M sub-quantizers of Ks codewords, k-means with ``iter`` iterations."""

    def fit(self, x):
        x = self._check_fit(x)
        self.model = nanopq.PQ(M=self.M, Ks=self.Ks, metric=self._nanopq_metric(), verbose=False)
        self.model.fit(x, iter=self.iter, seed=int(self.seed or 0))
        return self


@register("nanopq_opq")
class NanoOPQ(NanoPQBase):
    """nanopq.OPQ: ``rotation_iter`` alternations of PQ training and Procrustes rotation."""

    def __init__(self, M: int = 8, Ks: int = 256, iter: int = 20, rotation_iter: int = 10,
                 parametric_init: bool = False, seed: int | None = None):
        super().__init__(M, Ks, iter, seed)
        self.rotation_iter = check_positive_int(rotation_iter, "rotation_iter")
        self.parametric_init = bool(parametric_init)

    def fit(self, x):
        x = self._check_fit(x)
        self.model = nanopq.OPQ(M=self.M, Ks=self.Ks, metric=self._nanopq_metric(),
                                verbose=False)
        self.model.fit(x, parametric_init=self.parametric_init, pq_iter=self.iter,
                       rotation_iter=self.rotation_iter, seed=int(self.seed or 0))
        # nanopq (0.2.2) OPQ.fit replaces its PQ by one built without the metric it was given:
        # its tables would be squared distances, ranked here as inner products
        self.model.pq.metric = self._nanopq_metric()
        return self

    @property
    def model_bytes(self) -> int:
        if self.model is None:
            return 0
        return int(self.model.codewords.nbytes + self.model.R.nbytes)

    def subspace_view(self, x, codes) -> tuple[np.ndarray, np.ndarray]:
        """x R (nanopq's learnt rotation), where the PQ's sub-spaces are equal blocks."""
        model = self.trained()
        return model.rotate(as_matrix(x, "x", dim=self.dim)).astype(np.float32, copy=False), \
            equal_bounds(self.dim, self.M)
