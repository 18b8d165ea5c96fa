"""A drop-in for the pqkmeans library's Python API, on our C++ core.

The pqkmeans library (Matsui et al., https://github.com/DwangoMediaVillage/pqkmeans)
is used as::

    import pqkmeans
    encoder = pqkmeans.encoder.PQEncoder(num_subdim=4, Ks=256)
    encoder.fit(X_train)
    X_pqcode = encoder.transform(X)
    kmeans = pqkmeans.clustering.PQKMeans(encoder=encoder, k=10)
    clustered = kmeans.fit_predict(X_pqcode)
    centers = encoder.inverse_transform(numpy.array(kmeans.cluster_centers_, dtype=numpy.uint8))

and switches to this module by changing the import::

    # .encoder, .clustering, .evaluation as the library's
    from benchpq.algorithms.compat import pqkmeans_api as pqkmeans

Classes (same argument names, order and defaults as pqkmeans 1.0.6, same
return types: ``fit`` returns None, ``fit_predict``, ``labels_`` and
``cluster_centers_`` are lists of Python ints, ``predict`` an int64 array):

* ``PQEncoder(iteration=20, num_subdim=4, Ks=256)``: product quantization
  (Jegou et al., TPAMI 2011) by :class:`benchpq.algorithms.own.pq.PQ`;
  ``transform`` -> (n, num_subdim) uint8 codes (uint16 when Ks > 256),
  ``inverse_transform`` -> (n, D) float64, ``codewords`` (M, Ks, Ds) float64.
* ``ITQEncoder(iteration=50, num_bit=32)``: ITQ (Gong & Lazebnik, CVPR 2011)
  by :class:`benchpq.algorithms.own.itq.ITQ`, any num_bit <= D; ``transform`` ->
  (n, num_bit) bool, as the library (``transform_packed``: the
  (n, ceil(num_bit / 8)) uint8 packed codes).
* ``PQKMeans(encoder, k, iteration=10, verbose=False)``: PQk-means (Matsui et
  al., ACM MM 2017) on codes of ``encoder`` (ours or the library's PQEncoder:
  anything with ``codewords``).
* ``BKMeans(k, input_dim, subspace_dim=8, iteration=10, verbose=False)``:
  Bk-means (Gong et al., CVPR 2015) on (n, input_dim) bits (0/1, bool or
  integers), or on (n, input_dim / 8) uint8 packed codes.
* Encoders have ``fit_generator``, ``transform_generator`` and
  ``inverse_transform_generator``; clusterers ``predict_generator``
  (iterables are processed in chunks of BUFFER_SIZE rows, as the library's
  encoders do). ``verbose=True`` prints each iteration's error and time as
  it ends, in the library's words. Everything pickles (BKMeans too, which
  the library cannot); a pickled clusterer keeps its centres, not its labels,
  as the library's.
* ``evaluation``: ``calc_error`` and the dataset getters (texmex files read
  from a folder, ``$BENCHPQ_DATA`` by default; see :func:`get_texmex_dataset`).

By default the results equal the library's: PQKMeans and BKMeans draw their
initial centres exactly as the library (``init="pqkmeans"``, ``seed=0``) and
keep empty clusters' centres (``empty="keep"``). Keyword-only extras:
``seed`` (encoders: None draws one from numpy's global generator, which
``np.random.seed`` fixes, as the library's encoders use it), ``init="random"``
(k distinct codes) and ``empty="farthest"`` (re-seed empty clusters), see
:mod:`benchpq.algorithms.own.pqkmeans`; after fit, ``objective_`` (per iteration)
and ``iterations_``.

Differences, each for a reason: PQEncoder trains with our C++ k-means
(empty clusters split as in faiss, where scipy's kmeans2 keeps them empty:
the codes differ from the library's, the distortion is the same or lower)
and may be fitted again (the library asserts it is fitted once);
BKMeans's ``cluster_centers_`` are the centres its labels were assigned to
(the library votes once more after the last assignment); ``subspace_dim``
is accepted and unused (the library uses it only for a table search it does
not enable); input_dim may be any multiple of 8 (the library takes 8 to
1024 by powers of two); ``fit_generator`` works (the library's raises
NotImplementedError); ``predict_generator`` reads BUFFER_SIZE items ahead;
errors are :class:`benchpq.checks.InputError` (a ValueError) where the
library asserts; the library's developer samples (EncoderSample,
CppImplementedClusteringSample, PurePythonClusteringSample) are not provided.
"""
from __future__ import annotations

import os
import tarfile
import time
import types
from pathlib import Path

import numpy as np

from benchpq.checks import InputError, as_matrix, check_positive_int

from ..own.bkmeans import bkmeans, bkmeans_assign, majority_vote
from ..own.itq import ITQ
from ..own.pq import PQ
from ..own.pqkmeans import pqkmeans, pqkmeans_assign, sdc_tables, sparse_voting
from ..primitives.checks import check_choice, check_num_bit
from ..primitives.codes import code_dtype
from ..primitives.native_modes import CODE_KMEANS_INITS as INITS
from ..primitives.native_modes import EMPTY_RULES

BUFFER_SIZE = 10000  # rows per chunk of the *_generator methods, as the library


def _seed(seed) -> int:
    if seed is None:
        return int(np.random.randint(0, 2 ** 31 - 1))
    return check_positive_int(seed, "seed", 0, 2 ** 64 - 1)


def _require_fitted(obj, state) -> None:
    """The library's (scikit-learn's) error when ``state`` is None: fit was not called."""
    if state is None:
        raise InputError(f"This {type(obj).__name__} instance is not fitted yet: "
                         f"call fit() first")


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


class _Encoder:
    """What both encoders share: fit from an iterable, transform chunk by chunk."""

    def fit_generator(self, x_train):
        """Fit on the rows of an iterable (read whole into memory first); returns None."""
        return self.fit(np.asarray(list(x_train)))

    def transform_generator(self, x_test):
        """Encode an iterable of vectors chunk by chunk, yielding one code at a time."""
        return _chunks(x_test, self.transform)


class PQEncoder(_Encoder):
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
        self.code_dtype = code_dtype(self.Ks).type
        self.seed = seed
        self._pq = None

    def fit(self, x_train):
        """Learn the codebooks on x_train (N, D), N >= Ks; returns None, as the library."""
        pq = PQ(M=self.M, Ks=self.Ks, iter=self.iteration, seed=_seed(self.seed),
                max_points_per_centroid=None, init="random")
        self._pq = pq.fit(x_train)
        self.Ds = pq.dim // self.M

    def _fitted(self) -> PQ:
        _require_fitted(self, self._pq)
        return self._pq

    @property
    def codewords(self) -> np.ndarray:
        """(M, Ks, Ds) float64 codebooks (float64 as the library's; trained in float32)."""
        return self._fitted().codewords.astype(np.float64)

    def transform(self, x_test) -> np.ndarray:
        """(N, D) vectors -> (N, M) codes of ``code_dtype``."""
        return self._fitted().encode(x_test)

    def inverse_transform(self, x_test) -> np.ndarray:
        """(N, M) codes -> (N, D) float64 reconstructions (any integer dtype with values < Ks)."""
        pq = self._fitted()
        codes = np.asarray(x_test)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise InputError(f"codes: expected a 2-D integer array (N, M), got "
                             f"{codes.shape} {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.Ks):
            raise InputError(f"codes: values must be in [0, {self.Ks})")
        return pq.decode(codes.astype(self.code_dtype)).astype(np.float64)

    def inverse_transform_generator(self, x_test):
        """Decode an iterable of codes chunk by chunk, yielding one vector at a time."""
        return _chunks(x_test, self.inverse_transform)


class ITQEncoder(_Encoder):
    """ITQ binary encoder with the pqkmeans library's interface (our C++ ITQ).

    Args:
        iteration: ITQ iterations.
        num_bit: bits per code, at most the dimension.
        seed: keyword-only; seed of the initial rotation (None: from numpy's global generator).
    """

    def __init__(self, iteration=50, num_bit=32, *, seed=None):
        self.iteration = check_positive_int(iteration, "iteration")
        self.num_bit = check_num_bit(num_bit, whole_bytes=False)
        self.seed = seed
        self._itq = None

    def fit(self, x_train):
        """Learn PCA and rotation on x_train (N, D), D >= num_bit; returns None, as the library."""
        self._itq = ITQ(self.num_bit, self.iteration, _seed(self.seed)).fit(x_train)

    def _fitted(self) -> ITQ:
        _require_fitted(self, self._itq)
        return self._itq

    @property
    def quantization_loss(self) -> float:
        """||B - V R||_F^2 on the training set after the last iteration."""
        return self._fitted().loss

    def transform_packed(self, x_test) -> np.ndarray:
        """(N, D) -> (N, ceil(num_bit / 8)) uint8 packed codes (bit j: byte j // 8, bit j % 8)."""
        return self._fitted().encode(x_test)

    def transform(self, x_test) -> np.ndarray:
        """(N, D) -> (N, num_bit) bool codes, as the library (True where the projection >= 0)."""
        packed = self.transform_packed(x_test)
        return np.unpackbits(packed, axis=1, count=self.num_bit, bitorder="little").astype(bool)

    def inverse_transform(self, x_test):
        raise NotImplementedError("cannot decode binary codes to vectors with ITQ")

    def inverse_transform_generator(self, x_test):
        raise NotImplementedError("cannot decode binary codes to vectors with ITQ")


# -- clustering ------------------------------------------------------------------------
def _iterate_live(first, assign, update, rerun, iteration: int, empty: str, on_start, on_done):
    """The clustering loop of :func:`benchpq.algorithms.own.pqkmeans.pqkmeans` run step by step, so
    that each iteration is reported as it ends; same centres, labels and stopping rule.

    first(): the initial draw and first assignment (a 1-iteration run); assign(centers) ->
    (labels, distances); update(labels, centers) -> (centers, changed) keeping empty
    clusters; rerun(centers) -> a 2-iteration run from given centres (its update
    re-seeds empty clusters, ``empty="farthest"``). Returns (result of the first call
    with centres, labels, objective and iter_seconds of the whole run).
    """
    objective, seconds = [], []
    on_start(0)
    t0 = time.perf_counter()
    result = first()
    centers, labels = result.centers, result.labels
    objective.append(float(result.objective[0]))
    seconds.append(time.perf_counter() - t0)
    on_done(0, objective[-1], seconds[-1], len(labels))
    for it in range(1, iteration):
        on_start(it)
        t0 = time.perf_counter()
        if empty == "keep":
            new, changed = update(labels, centers)
            if changed == 0:
                break
            labels, distances = assign(new)
            centers, obj = new, float(np.sum(distances, dtype=np.float64))
        else:
            step = rerun(centers)
            if step.iterations < 2:  # the update changed nothing
                break
            centers, labels, obj = step.centers, step.labels, float(step.objective[1])
        objective.append(obj)
        seconds.append(time.perf_counter() - t0)
        on_done(it, obj, seconds[-1], len(labels))
    result.centers, result.labels = centers, labels
    result.objective, result.iter_seconds = np.array(objective), np.array(seconds)
    return result


class _Clusterer:
    """Shared fit / predict plumbing of PQKMeans and BKMeans.

    Subclasses store ``_labels`` (n,) int64 and ``_centers`` (k, width) uint8.
    """

    _labels = None
    _centers = None

    @property
    def labels_(self) -> list:
        """Label of each code of the last fit, a list of ints as the library ([] before fit)."""
        return [] if self._labels is None else self._labels.tolist()

    def fit_predict(self, x_train, y=None) -> list:
        """fit, then the labels of x_train: a list of ints, as the library."""
        self.fit(x_train)
        return self.labels_

    def predict_generator(self, x_test):
        """Labels of an iterable of codes, yielded one int at a time (chunks of BUFFER_SIZE)."""
        return (int(label) for label in _chunks(x_test, self.predict))

    def _run(self, first, assign, update, rerun):
        if not self.verbose:
            return first(self.iteration)
        return _iterate_live(lambda: first(1), assign, update, rerun, self.iteration, self.empty,
                             self._print_start, self._print_done)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_labels"] = None  # as the library's pickles: centres, not labels
        return state


class PQKMeans(_Clusterer):
    """PQk-means on PQ codes with the pqkmeans library's interface (our C++ PQk-means).

    Args:
        encoder: a fitted encoder with ``codewords`` (M, Ks, Ds), Ks <= 256
            (our PQEncoder or the library's).
        k: number of clusters.
        iteration: assignment steps (centres updated between consecutive ones).
        verbose: print each iteration's mean error and time as it ends.
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

    def __getstate__(self):
        state = super().__getstate__()
        state["_tables"] = None  # (M, Ks, Ks) floats: recomputed from the encoder on load
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._tables = sdc_tables(np.asarray(self.encoder.codewords))

    def _print_start(self, it):
        print(f"Iteration start: {it} / {self.iteration}", flush=True)

    def _print_done(self, it, objective, seconds, n):
        print(f"find_nn finished. Error: {objective / n:g}", flush=True)
        print(f"find_nn+update_center_time,{seconds * 1e3:.0f}", flush=True)

    @property
    def cluster_centers_(self) -> list:
        """(k, M) centre codes as a list of lists of ints, as the library ([] before fit)."""
        return [] if self._centers is None else self._centers.tolist()

    def fit(self, x_train):
        """Cluster codes x_train (N, M) uint8, N >= k; returns None, as the library."""
        tables, k, seed, init, empty = self._tables, self.k, self.seed, self.init, self.empty
        result = self._run(
            lambda niter: pqkmeans(x_train, tables, k, niter, init, empty, seed),
            lambda centers: pqkmeans_assign(x_train, tables, centers),
            lambda labels, centers: sparse_voting(x_train, tables, labels, centers),
            lambda centers: pqkmeans(x_train, tables, k, 2, init, empty, seed, centers=centers))
        self._labels, self._centers = result.labels, result.centers
        self.iterations_, self.objective_ = result.iterations, result.objective

    def predict(self, x_test) -> np.ndarray:
        """(N, M) uint8 codes -> (N,) int64 nearest centre by symmetric distance."""
        _require_fitted(self, self._centers)
        return pqkmeans_assign(np.asarray(x_test), self._tables, self._centers)[0]


class BKMeans(_Clusterer):
    """Bk-means on binary codes with the pqkmeans library's interface (our C++ Bk-means).

    Args:
        k: number of clusters.
        input_dim: bits per code (a multiple of 8).
        subspace_dim: accepted for compatibility, unused.
        iteration: assignment steps (centres updated between consecutive ones).
        verbose: print each iteration's error and time as it ends.
        seed, init, empty: keyword-only, see the module doc.

    Codes are (N, input_dim) bits (bool, or integers where nonzero means 1,
    as the library) or (N, input_dim / 8) uint8 packed little-endian bits.
    ``cluster_centers_``: (k, input_dim) 0/1 as a list of lists of ints.
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

    def _print_start(self, it):
        pass

    def _print_done(self, it, objective, seconds, n):
        print(f"error:{objective:.0f}", flush=True)
        print(f"iteration{it},{seconds * 1e3:.0f}", flush=True)

    @property
    def cluster_centers_(self) -> list:
        """(k, input_dim) 0/1 centres, a list of lists of ints as the library ([] before fit)."""
        if self._centers is None:
            return []
        return np.unpackbits(self._centers, axis=1, bitorder="little").tolist()

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
        """Cluster the codes x_train (N >= k); returns None, as the library."""
        codes = self._pack(x_train)
        k, seed, init, empty = self.k, self.seed, self.init, self.empty
        result = self._run(
            lambda niter: bkmeans(codes, k, niter, init, empty, seed),
            lambda centers: bkmeans_assign(codes, centers),
            lambda labels, centers: majority_vote(codes, labels, centers),
            lambda centers: bkmeans(codes, k, 2, init, empty, seed, centers=centers))
        self._labels, self._centers = result.labels, result.centers
        self.iterations_, self.objective_ = result.iterations, result.objective

    def predict(self, x_test) -> np.ndarray:
        """Codes -> (N,) int64 nearest centre by Hamming distance."""
        _require_fitted(self, self._centers)
        return bkmeans_assign(self._pack(x_test), self._centers)[0]


# -- evaluation ------------------------------------------------------------------------
def calc_error(assignments, raw_features, num_classes):
    """(total, micro average, macro average) of the Euclidean distances of the vectors
    raw_features (N, D) to the mean of their class, as the library's ``calc_error``.

    total: sum over vectors; micro: total / N; macro: mean over the num_classes
    classes of their mean distance (0 for an empty class). Means and distances in
    float64 (the library accumulates in the input's dtype); the values are returned
    as scalars of the input's float dtype.
    """
    x = np.asarray(raw_features)
    labels = np.asarray(list(assignments) if not hasattr(assignments, "__len__")
                        else assignments)
    if x.ndim != 2 or labels.shape != (x.shape[0],):
        raise InputError(f"calc_error: expected (N,) assignments and (N, D) features, got "
                         f"{labels.shape} and {x.shape}")
    num_classes = check_positive_int(num_classes, "num_classes")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0
                        or labels.max() >= num_classes):
        raise InputError(f"calc_error: assignments must be integers in [0, {num_classes})")
    labels = labels.astype(np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    means = np.zeros((num_classes, x.shape[1]))
    np.add.at(means, labels, x.astype(np.float64))
    means /= np.maximum(counts, 1)[:, None]
    dist = np.linalg.norm(x.astype(np.float64) - means[labels], axis=1)
    per_class = np.bincount(labels, weights=dist, minlength=num_classes)
    out = x.dtype.type if x.dtype.kind == "f" else np.float64
    macro = np.where(counts > 0, per_class / np.maximum(counts, 1), 0.0).sum() / num_classes
    return out(per_class.sum()), out(per_class.sum() / len(labels)), out(macro)


def get_gmm_random_dataset(k, dimension=100, test_size=5000, train_size=500):
    """(train (train_size, D), test (test_size, D)) float64: each row the sum of k draws, one
    from each of k random Gaussians (random mean in [0, 1)^D, covariance A A^T with A
    uniform in [0, 1)), from numpy's global generator, as the library's getter."""
    n = train_size + test_size
    data = np.zeros((n, dimension))
    for _ in range(k):
        a = np.random.random((dimension, dimension))
        data += np.random.multivariate_normal(np.random.random(dimension), a @ a.T, n)
    return data[:train_size], data[train_size:]


def _data_dir(cache_directory) -> Path:
    return Path(cache_directory or os.environ.get("BENCHPQ_DATA") or ".").expanduser()


def _fvecs_from_bytes(raw: bytes, name: str) -> np.ndarray:
    """An .fvecs file's bytes -> (n, d) float32."""
    buf = np.frombuffer(raw, dtype="<i4")
    if buf.size == 0:
        raise InputError(f"{name}: empty file")
    d = int(buf[0])
    if d < 1 or buf.size % (d + 1):
        raise InputError(f"{name}: not an fvecs file (dimension header {d}, {len(raw)} bytes)")
    rows = buf.reshape(-1, d + 1)
    if np.any(rows[:, 0] != d):
        raise InputError(f"{name}: rows of different dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view("<f4").astype(np.float32)


def get_texmex_dataset(url, filename, member_names, cache_directory=None):
    """[array (n, d) float32 for each member_name], as the library's getter.

    Each member (``siftsmall/siftsmall_learn.fvecs``) is read from the folder
    ``cache_directory`` (default ``$BENCHPQ_DATA``, else the working folder):
    extracted (``<folder>/<member>``) or inside the archive ``<folder>/<filename>``.
    When neither exists the archive is downloaded from ``url`` into the folder,
    as the library does; ``BENCHPQ_OFFLINE=1`` forbids that (the tests set it).
    """
    from benchpq.datasets.download import download_file
    from benchpq.datasets.vecs import read_vecs
    folder = _data_dir(cache_directory)
    archive = folder / filename
    out = []
    for member in member_names:
        path = folder / member
        if path.is_file():
            out.append(np.ascontiguousarray(read_vecs(path, mmap=False), dtype=np.float32))
            continue
        if not archive.is_file():
            print(f"downloading {url}")
            download_file(url, archive)
        with tarfile.open(archive, "r:*") as tar:
            out.append(_fvecs_from_bytes(tar.extractfile(tar.getmember(member)).read(), member))
    return out


def get_siftsmall_dataset(cache_directory=None):
    """[learn (25000, 128), base (10000, 128)] float32 of texmex ANN_SIFT10K.

    A folder holding only ``siftsmall/siftsmall_base.fvecs`` (no learn file, as
    some copies) gives the base as learn too.
    """
    folder = _data_dir(cache_directory)
    base = Path("siftsmall/siftsmall_base.fvecs")
    if (folder / base).is_file() and not (folder / "siftsmall/siftsmall_learn.fvecs").is_file() \
            and not (folder / "siftsmall.tar.gz").is_file():
        (x,) = get_texmex_dataset(None, "siftsmall.tar.gz", [str(base)], folder)
        return [x, x.copy()]
    return get_texmex_dataset("ftp://ftp.irisa.fr/local/texmex/corpus/siftsmall.tar.gz",
                              "siftsmall.tar.gz",
                              ["siftsmall/siftsmall_learn.fvecs", str(base)], folder)


def get_sift1m_dataset(cache_directory=None):
    """[learn (100000, 128), base (1000000, 128)] float32 of texmex ANN_SIFT1M."""
    return get_texmex_dataset("ftp://ftp.irisa.fr/local/texmex/corpus/sift.tar.gz",
                              "sift.tar.gz", ["sift/sift_learn.fvecs", "sift/sift_base.fvecs"],
                              cache_directory)


#: ``pqkmeans.encoder`` / ``.clustering`` / ``.evaluation`` look-alikes, for
#: ``from benchpq.algorithms.compat import pqkmeans_api as pqkmeans``.
encoder = types.SimpleNamespace(PQEncoder=PQEncoder, ITQEncoder=ITQEncoder)
clustering = types.SimpleNamespace(PQKMeans=PQKMeans, BKMeans=BKMeans)
evaluation = types.SimpleNamespace(calc_error=calc_error,
                                   get_gmm_random_dataset=get_gmm_random_dataset,
                                   get_texmex_dataset=get_texmex_dataset,
                                   get_siftsmall_dataset=get_siftsmall_dataset,
                                   get_sift1m_dataset=get_sift1m_dataset)
