"""The pqkmeans library (Matsui et al.; ``pip install pqkmeans``) as reference plugins.

* ``pqkmeans_lib_pqkmeans``: ``pqkmeans.clustering.PQKMeans`` (PQk-means,
  Matsui, Ogaki, Yamasaki, Aizawa, ACM MM 2017).
* ``pqkmeans_lib_bkmeans``: ``pqkmeans.clustering.BKMeans`` (Bk-means, Gong,
  Pawar, Yu, Lazebnik, CVPR 2015).
* ``pqkmeans_lib_itq``: ``pqkmeans.encoder.ITQEncoder`` (ITQ, Gong &
  Lazebnik, CVPR 2011) as a searcher; the library has no search, so its codes
  are searched by our Hamming scan (:func:`benchpq.algorithms.own.itq.hamming_search`).

By default (``encoder: own``) the clusterers run on the very codes our
plugins ``pqkmeans`` / ``bkmeans`` cluster: the same encoder (our PQ / ITQ,
same training sample, iterations and seed), so that the comparison is of the
clustering alone. ``encoder: library`` uses the library's own PQEncoder /
ITQEncoder instead (end-to-end library pipeline; they draw from numpy's
global generator, seeded here with the run's seed). The library's clusterers
have no seed: their initial draw is std::mt19937(0) (our ``init: pqkmeans``
with seed 0 draws the same centres). extra_metrics as our plugins:
``encoder_train_s``, ``encode_s``, ``kmeans_s`` (the library's fit,
including its conversion of the codes to C++ vectors), ``iterations``,
``iter_s``. The library is imported on first use.
"""
from __future__ import annotations

import time

import numpy as np

from benchpq.api import Clusterer
from benchpq.checks import (
    InputError,
    as_matrix,
    check_codebook_size,
    check_positive_int,
    check_subspaces,
)
from benchpq.measure.threads import serial_blas
from benchpq.metric_table import declare
from benchpq.registry import register

from ..own.bkmeans import train_itq_encoder
from ..own.itq import HammingSearcher
from ..own.pqkmeans import train_pq_encoder
from ..primitives.checks import check_choice, check_n_clusters, check_num_bit, plugin_seed
from ..primitives.metric_specs import (
    ENCODER_TRAIN_S,
    ITER_S,
    ITERATIONS,
    KMEANS_S,
    QUANTIZATION_LOSS,
)
from ..primitives.mixins import BinaryCodeBits, FittedGuard, NativeThreads, PQCodeBits
from ..primitives.streaming import check_finite_streaming, encode_streaming, training_sample

ENCODERS = ("own", "library")
#: input_dim -> subspace_dim values the library's BKMeans is compiled for
BKMEANS_SHAPES = {8: (2, 4), 16: (2, 4, 8), 32: (2, 4, 8, 16), 64: (2, 4, 8, 16, 32),
                  128: (2, 4, 8, 16, 32), 256: (2, 4, 8, 16, 32), 512: (2, 4, 8, 16, 32),
                  1024: (2, 4, 8, 16, 32)}


def _library():
    try:
        import pqkmeans
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError(f"the pqkmeans library is not installed (pip install pqkmeans): "
                         f"{exc}") from None
    return pqkmeans


def itq_loss(pca, rotation: np.ndarray, x: np.ndarray) -> float:
    """||B - V R||_F^2 of a pqkmeans ITQ model (sklearn PCA, R) on x, B = sign(V R) (+1 at 0)."""
    z = pca.transform(x) @ rotation
    b = np.where(z >= 0, 1.0, -1.0)
    return float(((b - z) ** 2).sum())


class _LibraryClusterer(NativeThreads, Clusterer):
    metric_specs = declare(ENCODER_TRAIN_S, KMEANS_S, ITERATIONS, ITER_S)

    def __init__(self, niter: int, train_size: int | None, encoder: str, seed):
        self.niter = check_positive_int(niter, "niter")
        self.train_size = None if train_size is None else \
            check_positive_int(train_size, "train_size", 2)
        self.encoder = check_choice(encoder, ENCODERS, "encoder")
        self.seed = seed
        self._metrics: dict = {}
        self._n = 0

    def _record(self, n: int, t0: float, t1: float, t2: float, t3: float) -> None:
        """Keep the phase times of a fit_predict: encoder training t0-t1, encoding
        t1-t2, the library's clustering t2-t3."""
        self._n = n
        self._metrics = {"encoder_train_s": t1 - t0, "encode_s": t2 - t1, "kmeans_s": t3 - t2,
                         "iterations": self.niter, "iter_s": (t3 - t2) / self.niter}

    def extra_metrics(self) -> dict:
        return dict(self._metrics)


@register("pqkmeans_lib_pqkmeans")
class LibraryPQKMeans(PQCodeBits, _LibraryClusterer):
    """pqkmeans.clustering.PQKMeans on PQ codes (M sub-spaces of Ks <= 256 codewords).

    Args as the ``pqkmeans`` plugin: M, Ks, encoder_iter, train_size, niter,
    seed; encoder: ``own`` or ``library``.
    """

    def __init__(self, M: int = 8, Ks: int = 256, encoder_iter: int = 20,
                 train_size: int | None = 100_000, niter: int = 20, encoder: str = "own",
                 seed: int | None = None):
        super().__init__(niter, train_size, encoder, seed)
        self.M = check_positive_int(M, "M")
        self.Ks = check_positive_int(Ks, "Ks", 2, 256)
        self.encoder_iter = check_positive_int(encoder_iter, "encoder_iter")
        self.model = None

    def fit_predict(self, x, n_clusters):
        x = as_matrix(x, "x", finite=False)
        n, dim = x.shape
        check_subspaces(dim, self.M)
        k = check_n_clusters(n_clusters, n)
        check_codebook_size(min(n, self.train_size or n), self.Ks)
        seed = plugin_seed(self.seed)
        check_finite_streaming(x, "x")
        lib = _library()
        t0 = time.perf_counter()
        if self.encoder == "own":
            enc = train_pq_encoder(x, self.M, self.Ks, self.encoder_iter, self.train_size, seed)
            t1 = time.perf_counter()
            codes = encode_streaming(enc.encode, x, self.M)
        else:
            np.random.seed(seed % 2 ** 32)
            enc = lib.encoder.PQEncoder(iteration=self.encoder_iter, num_subdim=self.M, Ks=self.Ks)
            enc.fit(training_sample(x, self.train_size, seed))
            t1 = time.perf_counter()
            codes = enc.transform(x)
        t2 = time.perf_counter()
        self.model = lib.clustering.PQKMeans(encoder=enc, k=k, iteration=self.niter)
        self.model.fit(np.ascontiguousarray(codes, dtype=np.uint8))
        labels = np.asarray(self.model.labels_, dtype=np.int64)
        self._record(n, t0, t1, t2, time.perf_counter())
        return labels

    @property
    def codes_bytes(self) -> int:
        return int(self._n * self.M)

    @property
    def model_bytes(self) -> int:
        return 0 if self.model is None else int(
            np.asarray(self.model.encoder.codewords, np.float32).nbytes
            + len(self.model.cluster_centers_) * self.M)


@register("pqkmeans_lib_bkmeans")
class LibraryBKMeans(BinaryCodeBits, _LibraryClusterer):
    """pqkmeans.clustering.BKMeans on ITQ codes (num_bit in 8, 16, ..., 1024).

    Args as the ``bkmeans`` plugin: num_bit, itq_iter, train_size, niter, seed;
    subspace_dim: the library's argument (unused by its linear search);
    encoder: ``own`` or ``library``.
    """

    def __init__(self, num_bit: int = 64, itq_iter: int = 50, train_size: int | None = 100_000,
                 niter: int = 20, subspace_dim: int = 8, encoder: str = "own",
                 seed: int | None = None):
        super().__init__(niter, train_size, encoder, seed)
        self.num_bit = check_num_bit(num_bit)
        if self.num_bit not in BKMEANS_SHAPES:
            raise InputError(f"num_bit: the pqkmeans library's BKMeans supports "
                             f"{sorted(BKMEANS_SHAPES)}, got {self.num_bit}")
        if subspace_dim not in BKMEANS_SHAPES[self.num_bit]:
            raise InputError(f"subspace_dim: must be one of {BKMEANS_SHAPES[self.num_bit]} for "
                             f"num_bit={self.num_bit}, got {subspace_dim!r}")
        self.subspace_dim = subspace_dim
        self.itq_iter = check_positive_int(itq_iter, "itq_iter")
        self.model = None

    def fit_predict(self, x, n_clusters):
        x = as_matrix(x, "x", min_rows=2, finite=False)
        n, dim = x.shape
        check_num_bit(self.num_bit, dim)
        k = check_n_clusters(n_clusters, n)
        seed = plugin_seed(self.seed)
        check_finite_streaming(x, "x")
        lib = _library()
        t0 = time.perf_counter()
        if self.encoder == "own":
            enc = train_itq_encoder(x, self.num_bit, self.itq_iter, self.train_size, seed)
            t1 = time.perf_counter()
            codes = encode_streaming(enc.encode, x, self.num_bit // 8)
            bits = np.unpackbits(codes, axis=1, bitorder="little")
        else:
            np.random.seed(seed % 2 ** 32)
            enc = lib.encoder.ITQEncoder(iteration=self.itq_iter, num_bit=self.num_bit)
            with serial_blas():
                enc.fit(training_sample(x, self.train_size, seed))
            t1 = time.perf_counter()
            bits = enc.transform(x).astype(np.uint8)
        t2 = time.perf_counter()
        self.model = lib.clustering.BKMeans(k=k, input_dim=self.num_bit,
                                            subspace_dim=self.subspace_dim, iteration=self.niter)
        self.model.fit(bits)
        labels = np.asarray(self.model.labels_, dtype=np.int64)
        self._record(n, t0, t1, t2, time.perf_counter())
        return labels

    @property
    def codes_bytes(self) -> int:
        return int(self._n * self.num_bit // 8)


@register("pqkmeans_lib_itq")
class LibraryITQ(NativeThreads, FittedGuard, HammingSearcher):
    """pqkmeans.encoder.ITQEncoder codes, searched by our Hamming scan.

    Args: num_bit (a multiple of 8), niter (the library's ``iteration``),
    seed (numpy's global generator is seeded with it before fit), train_size
    (fit on a seeded sample; None: all rows).
    """

    metric_specs = declare(QUANTIZATION_LOSS)

    @staticmethod
    def stored_classes():
        """The library's encoder and its sklearn PCA, rebuilt from arrays by the model cache."""
        from sklearn.decomposition import PCA
        itq = _library().encoder.ITQEncoder
        return (itq, itq.TrainedITQEncoder, PCA)

    def __init__(self, num_bit: int = 64, niter: int = 50, seed: int | None = None,
                 train_size: int | None = None):
        self.num_bit = check_num_bit(num_bit)
        self.niter = check_positive_int(niter, "niter")
        self.seed = seed
        self.train_size = None if train_size is None else \
            check_positive_int(train_size, "train_size", 2)
        self.model = None
        self.codes = None
        self.dim = None
        self.loss = None

    def fit(self, x):
        x = as_matrix(x, "learn", min_rows=2)
        check_num_bit(self.num_bit, x.shape[1])
        seed = plugin_seed(self.seed)
        sample = training_sample(x, self.train_size, seed)
        np.random.seed(seed % 2 ** 32)
        self.model = _library().encoder.ITQEncoder(iteration=self.niter, num_bit=self.num_bit)
        with serial_blas():
            self.model.fit(sample)
            trained = self.model.trained_encoder
            self.loss = itq_loss(trained.pca, trained.R, sample)
        self.dim, self.codes = x.shape[1], None
        return self

    def encode(self, x) -> np.ndarray:
        """(n, D) -> (n, num_bit / 8) uint8 packed codes (our bit order)."""
        self.require_fitted(self.model is not None, "encoding")
        x = as_matrix(x, "x", dim=self.dim)
        bits = self.model.transform(x)
        return np.packbits(bits, axis=1, bitorder="little")

    @property
    def model_bytes(self) -> int:
        if self.model is None:
            return 0
        trained = self.model.trained_encoder
        return int(4 * (trained.pca.components_.size + trained.pca.mean_.size + trained.R.size))

    def extra_metrics(self) -> dict:
        return {} if self.loss is None else {"quantization_loss": self.loss}
