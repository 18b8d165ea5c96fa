"""A drop-in for the pqkmeans library's Python API, on our C++ core.

The pqkmeans library (Matsui et al., https://github.com/DwangoMediaVillage/pqkmeans)
is used as::

    import pqkmeans
    encoder = pqkmeans.encoder.PQEncoder(num_subdim=4, Ks=256)
    encoder.fit(X_train)
    X_pqcode = encoder.transform(X)
    kmeans = pqkmeans.clustering.PQKMeans(encoder=encoder, k=10)
    clustered = kmeans.fit_predict(X_pqcode)
    centers = encoder.inverse_transform(kmeans.cluster_centers_)

and switches to this module by changing the import::

    from algorithms import pqkmeans_api as pqkmeans   # pqkmeans.encoder.*, pqkmeans.clustering.*

Classes (same argument names, order and defaults as pqkmeans 1.0.6):

* ``PQEncoder(iteration=20, num_subdim=4, Ks=256)``: product quantization
  (Jegou et al., TPAMI 2011) by :class:`algorithms.own_pq.PQ`;
  ``transform`` -> (n, num_subdim) uint8 codes (uint16 when Ks > 256),
  ``inverse_transform`` -> (n, D) float32, ``codewords`` (M, Ks, Ds).
* ``ITQEncoder(iteration=50, num_bit=32)``: ITQ (Gong & Lazebnik, CVPR 2011)
  by :class:`algorithms.own_itq.ITQ`; ``transform`` -> (n, num_bit) bool, as
  the library (``transform_packed``: the (n, num_bit / 8) uint8 packed codes).
* ``PQKMeans(encoder, k, iteration=10, verbose=False)``: PQk-means (Matsui et
  al., ACM MM 2017) on codes of ``encoder`` (ours or the library's PQEncoder:
  anything with ``codewords``).
* ``BKMeans(k, input_dim, subspace_dim=8, iteration=10, verbose=False)``:
  Bk-means (Gong et al., CVPR 2015) on (n, input_dim) bits (0/1, bool or
  integers), or on (n, input_dim / 8) uint8 packed codes.

Clusterers have ``fit`` (returns self), ``predict``, ``fit_predict``,
``labels_`` and ``cluster_centers_``; everything pickles.

By default the results equal the library's: PQKMeans and BKMeans draw their
initial centres exactly as the library (``init="pqkmeans"``, ``seed=0``) and
keep empty clusters' centres (``empty="keep"``). Keyword-only extras:
``seed`` (encoders: None draws one from numpy's global generator, which
``np.random.seed`` fixes, as the library's encoders use it), ``init="random"``
(k distinct codes) and ``empty="farthest"`` (re-seed empty clusters), see
:mod:`algorithms.own_pqkmeans`. Differences: ``fit`` returns self;
``labels_`` and ``cluster_centers_`` are numpy arrays (the library returns
lists); BKMeans's ``cluster_centers_`` are the centres its labels were
assigned to (the library votes once more after the last assignment);
``subspace_dim`` is accepted and unused (the library uses it only for a
table search it does not enable); input_dim / num_bit may be any multiple of 8.
"""
from __future__ import annotations

import types

import numpy as np

from benchpq.checks import InputError, as_matrix, check_positive_int

from .own_bkmeans import bkmeans, bkmeans_assign
from .own_itq import ITQ, check_num_bit
from .own_pq import PQ
from .own_pqkmeans import EMPTY_RULES, INITS, check_choice, pqkmeans, pqkmeans_assign, sdc_tables

BUFFER_SIZE = 10000  # rows per chunk of the *_generator methods, as the library


def _seed(seed) -> int:
    if seed is None:
        return int(np.random.randint(0, 2 ** 31 - 1))
    return check_positive_int(seed, "seed", 0, 2 ** 64 - 1)


def _chunks(rows, process):
    """Apply ``process`` to buffers of BUFFER_SIZE rows of an iterable and yield row by row."""
    buffer = []
    for row in rows:
        buffer.append(row)
        if len(buffer) == BUFFER_SIZE:
            yield from process(np.asarray(buffer))
            buffer = []
    if buffer:
        yield from process(np.asarray(buffer))


class PQEncoder:
    """Product quantizer with the pqkmeans library's interface (our C++ PQ).

    Args:
        iteration: k-means iterations per sub-space.
        num_subdim: number of sub-spaces M (must divide the dimension).
        Ks: codewords per sub-space (<= 256 for PQKMeans; up to 65536 here).
        seed: keyword-only; k-means seed (None: drawn from numpy's global generator).
    """

    def __init__(self, iteration=20, num_subdim=4, Ks=256, *, seed=None):
        self.iteration = check_positive_int(iteration, "iteration")
        self.M = check_positive_int(num_subdim, "num_subdim")
        self.Ks = check_positive_int(Ks, "Ks", 2, 2 ** 16)
        self.Ds = None
        self.code_dtype = np.uint8 if self.Ks <= 256 else np.uint16
        self.seed = seed
        self._pq = None

    def fit(self, x_train):
        """Learn the codebooks on x_train (N, D), N >= Ks; returns self."""
        pq = PQ(M=self.M, Ks=self.Ks, iter=self.iteration, seed=_seed(self.seed),
                max_points_per_centroid=None, init="random")
        self._pq = pq.fit(x_train)
        self.Ds = pq.dim // self.M
        return self

    def _fitted(self) -> PQ:
        if self._pq is None:
            raise InputError("This PQEncoder instance is not fitted yet: call fit() first")
        return self._pq

    @property
    def codewords(self) -> np.ndarray:
        """(M, Ks, Ds) float32 codebooks."""
        return self._fitted().codewords

    def transform(self, x_test) -> np.ndarray:
        """(N, D) vectors -> (N, M) codes of ``code_dtype``."""
        return self._fitted().encode(x_test)

    def inverse_transform(self, x_test) -> np.ndarray:
        """(N, M) codes -> (N, D) float32 reconstructions (any integer dtype with values < Ks)."""
        pq = self._fitted()
        codes = np.asarray(x_test)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise InputError(f"codes: expected a 2-D integer array (N, M), got "
                             f"{codes.shape} {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.Ks):
            raise InputError(f"codes: values must be in [0, {self.Ks})")
        return pq.decode(codes.astype(self.code_dtype))

    def transform_generator(self, x_test):
        """Encode an iterable of vectors chunk by chunk, yielding one code at a time."""
        return _chunks(x_test, self.transform)

    def inverse_transform_generator(self, x_test):
        """Decode an iterable of codes chunk by chunk, yielding one vector at a time."""
        return _chunks(x_test, self.inverse_transform)


class ITQEncoder:
    """ITQ binary encoder with the pqkmeans library's interface (our C++ ITQ).

    Args:
        iteration: ITQ iterations.
        num_bit: bits per code (a multiple of 8, at most the dimension).
        seed: keyword-only; seed of the initial rotation (None: from numpy's global generator).
    """

    def __init__(self, iteration=50, num_bit=32, *, seed=None):
        self.iteration = check_positive_int(iteration, "iteration")
        self.num_bit = check_num_bit(num_bit)
        self.seed = seed
        self._itq = None

    def fit(self, x_train):
        """Learn PCA and rotation on x_train (N, D), D >= num_bit; returns self."""
        self._itq = ITQ(self.num_bit, self.iteration, _seed(self.seed)).fit(x_train)
        return self

    def _fitted(self) -> ITQ:
        if self._itq is None:
            raise InputError("This ITQEncoder instance is not fitted yet: call fit() first")
        return self._itq

    @property
    def quantization_loss(self) -> float:
        """||B - V R||_F^2 on the training set after the last iteration."""
        return self._fitted().loss

    def transform_packed(self, x_test) -> np.ndarray:
        """(N, D) -> (N, num_bit / 8) uint8 packed codes (bit j: byte j // 8, bit j % 8)."""
        return self._fitted().encode(x_test)

    def transform(self, x_test) -> np.ndarray:
        """(N, D) -> (N, num_bit) bool codes, as the library (True where the projection >= 0)."""
        packed = self.transform_packed(x_test)
        return np.unpackbits(packed, axis=1, bitorder="little").astype(bool)

    def transform_generator(self, x_test):
        """Encode an iterable of vectors chunk by chunk, yielding one bool code at a time."""
        return _chunks(x_test, self.transform)

    def inverse_transform(self, x_test):
        raise NotImplementedError("cannot decode binary codes to vectors with ITQ")


class _Clusterer:
    """Shared fit / predict plumbing of PQKMeans and BKMeans."""

    labels_ = None
    cluster_centers_ = None

    def fit_predict(self, x_train, y=None):
        """fit, then the labels of x_train: (N,) int64."""
        return self.fit(x_train).labels_

    def _report(self, result, what: str) -> None:
        if self.verbose:
            for it, (obj, sec) in enumerate(zip(result.objective, result.iter_seconds)):
                print(f"{what} iteration {it + 1}/{self.iteration}: error "
                      f"{obj / len(result.labels):.6g}, {sec * 1e3:.1f} ms")


class PQKMeans(_Clusterer):
    """PQk-means on PQ codes with the pqkmeans library's interface (our C++ PQk-means).

    Args:
        encoder: a fitted encoder with ``codewords`` (M, Ks, Ds), Ks <= 256
            (our PQEncoder or the library's).
        k: number of clusters.
        iteration: assignment steps (centres updated between consecutive ones).
        verbose: print the error and time of each iteration after fit.
        seed, init, empty: keyword-only, see the module doc.
    """

    def __init__(self, encoder, k, iteration=10, verbose=False, *, seed=0, init="pqkmeans",
                 empty="keep"):
        codewords = getattr(encoder, "codewords", None)
        if codewords is None:
            raise InputError("encoder: expected a fitted PQ encoder with codewords (M, Ks, Ds)")
        self.encoder = encoder
        self.k = check_positive_int(k, "k")
        self.iteration = check_positive_int(iteration, "iteration")
        self.verbose = bool(verbose)
        self.seed = seed
        self.init = check_choice(init, INITS, "init")
        self.empty = check_choice(empty, EMPTY_RULES, "empty")
        self._tables = sdc_tables(np.asarray(codewords))

    def fit(self, x_train):
        """Cluster codes x_train (N, M) uint8, N >= k; returns self."""
        result = pqkmeans(x_train, self._tables, self.k, self.iteration, self.init, self.empty,
                          self.seed)
        self._report(result, "PQKMeans")
        self.labels_, self.cluster_centers_ = result.labels, result.centers
        self.iterations_, self.objective_ = result.iterations, result.objective
        return self

    def predict(self, x_test) -> np.ndarray:
        """(N, M) uint8 codes -> (N,) int64 nearest centre by symmetric distance."""
        if self.cluster_centers_ is None:
            raise InputError("This PQKMeans instance is not fitted yet: call fit() first")
        return pqkmeans_assign(x_test, self._tables, self.cluster_centers_)[0]


class BKMeans(_Clusterer):
    """Bk-means on binary codes with the pqkmeans library's interface (our C++ Bk-means).

    Args:
        k: number of clusters.
        input_dim: bits per code (a multiple of 8).
        subspace_dim: accepted for compatibility, unused.
        iteration: assignment steps (centres updated between consecutive ones).
        verbose: print the error and time of each iteration after fit.
        seed, init, empty: keyword-only, see the module doc.

    Codes are (N, input_dim) bits (bool, or integers where nonzero means 1,
    as the library) or (N, input_dim / 8) uint8 packed little-endian bits.
    ``cluster_centers_`` are (k, input_dim) uint8 0/1.
    """

    def __init__(self, k, input_dim, subspace_dim=8, iteration=10, verbose=False, *, seed=0,
                 init="pqkmeans", empty="keep"):
        self.k = check_positive_int(k, "k")
        self.input_dim = check_num_bit(input_dim)
        self.subspace_dim = subspace_dim
        self.iteration = check_positive_int(iteration, "iteration")
        self.verbose = bool(verbose)
        self.seed = seed
        self.init = check_choice(init, INITS, "init")
        self.empty = check_choice(empty, EMPTY_RULES, "empty")
        self._packed_centers = None

    def _pack(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2:
            raise InputError(f"codes: expected a 2-D array, got shape {x.shape}")
        if x.dtype == np.uint8 and x.shape[1] == self.input_dim // 8:
            return x
        if x.shape[1] != self.input_dim:
            raise InputError(f"codes: code width mismatch, expected {self.input_dim} bits or "
                             f"{self.input_dim // 8} packed bytes, got {x.shape[1]} columns")
        if x.dtype.kind not in "biu":
            raise InputError(f"codes: expected bits (bool or integers), got dtype {x.dtype}")
        return np.packbits(as_matrix(x, "codes", dtype=x.dtype) != 0, axis=1, bitorder="little")

    def fit(self, x_train):
        """Cluster the codes x_train (N >= k); returns self."""
        result = bkmeans(self._pack(x_train), self.k, self.iteration, self.init, self.empty,
                         self.seed)
        self._report(result, "BKMeans")
        self._packed_centers = result.centers
        self.labels_ = result.labels
        self.cluster_centers_ = np.unpackbits(result.centers, axis=1, bitorder="little")
        self.iterations_, self.objective_ = result.iterations, result.objective
        return self

    def predict(self, x_test) -> np.ndarray:
        """Codes -> (N,) int64 nearest centre by Hamming distance."""
        if self._packed_centers is None:
            raise InputError("This BKMeans instance is not fitted yet: call fit() first")
        return bkmeans_assign(self._pack(x_test), self._packed_centers)[0]


#: ``pqkmeans.encoder`` and ``pqkmeans.clustering`` look-alikes, for ``import ... as pqkmeans``.
encoder = types.SimpleNamespace(PQEncoder=PQEncoder, ITQEncoder=ITQEncoder)
clustering = types.SimpleNamespace(PQKMeans=PQKMeans, BKMeans=BKMeans)
