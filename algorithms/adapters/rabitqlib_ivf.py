"""RaBitQ-Library's IVF index as a Searcher: plugin ``rabitqlib_ivf``.

The RaBitQ authors' library (``rabitqlib``): RaBitQ (Gao & Long, "RaBitQ: Quantizing
High-Dimensional Vectors with a Theoretical Error Bound for Approximate Nearest Neighbor
Search", SIGMOD 2024) extended to ``nbits`` bits per coordinate (Gao, Gou, Xu, Yang, Long &
Wong, "Practical and Asymptotically Optimal Quantization of High-Dimensional Vectors in
Euclidean Space for Approximate Nearest Neighbor Search", SIGMOD 2025). Each vector's residual
to its cell centroid is rotated (the library's own random rotation, a fast Hadamard-Kac
transform on the dimension padded to a multiple of 32) and stored as 1-bit codes in SIMD
blocks of 32 per cell, with nbits - 1 extra bits per coordinate and per-vector factors.

The cells are faiss k-means (``faiss.Kmeans``, seeded) on the training set; every added
vector goes to its nearest centroid (``faiss.knn``). The library's index is built on the
first block added (``IvfIndex.build`` takes exactly as many rows as it was made for) and
grows with ``IvfIndex.add`` after that. Search visits the nprobe nearest cells.

Constraints handled at the door: vectors are float32 C-contiguous (n, d); the library's
rotation takes d >= 64, so smaller vectors are zero-padded to 64 columns (distances are
unchanged); ids are uint32 in the library (at most 2**32 - 2 vectors); threads >= 1.

Not a Quantizer: the library gives no decoder. Not seeded: the library draws its rotation
from ``std::random_device``, so two builds of the same data differ (a built index, saved and
loaded, searches identically).
"""
from __future__ import annotations

import os
import tempfile

import faiss
import numpy as np
import rabitqlib

from benchpq.api import UNSET, Searcher
from benchpq.checks import InputError, as_matrix, check_codebook_size, check_k, check_positive_int
from benchpq.datasets.context import resolve_cache_dir
from benchpq.registry import register

from ..primitives.mixins import FittedGuard

#: bits per coordinate the library quantizes to (its nbits=32, raw vectors, is not a code)
NBITS_RANGE = (1, 9)
#: the smallest dimension the library's rotation takes
MIN_DIM = 64
#: the library pads the dimension to a multiple of this (and stores 1-bit codes in blocks of
#: as many vectors)
PAD = 32
#: bytes per vector beside its codes: three float factors in the 1-bit block, a uint32 id
BLOCK_FACTOR_BYTES, ID_BYTES = 12, 4
#: bytes of the extra-bit factors of a vector (nbits > 1): two floats
EXTRA_FACTOR_BYTES = 8
#: cells visited per query until the search sets nprobe (at most nlist)
DEFAULT_NPROBE = 16
#: the id the library returns where a query has fewer than k candidates
MISSING_ID = np.iinfo(np.uint32).max


def padded_dim(dim: int) -> int:
    """The dimension the library quantizes in: at least 64, a multiple of 32."""
    return -(-max(dim, MIN_DIM) // PAD) * PAD


@register("rabitqlib_ivf")
class RaBitQLibIVF(FittedGuard, Searcher):
    """rabitqlib.IvfIndex on faiss k-means cells.

    Args:
        nbits: bits per coordinate, 1 .. 9 (1: RaBitQ; more: extended RaBitQ).
        nlist: k-means cells; niter: k-means iterations (faiss's Kmeans, at most 256
            training vectors per centroid, as faiss's IVF indexes).
        (search parameter, :meth:`set_search_params`) nprobe: cells visited per query,
            1 .. nlist; 16 until set, or every cell when there are fewer.
        seed: k-means seed (None: faiss's); the library's rotation is not seeded.
    """

    fitted_attribute, fitted_action = "centroids", "adding or searching"

    def __init__(self, nbits: int = 4, nlist: int = 1024, niter: int = 25,
                 seed: int | None = None):
        self.nbits = check_positive_int(nbits, "nbits", *NBITS_RANGE)
        self.nlist = check_positive_int(nlist, "nlist")
        self.niter = check_positive_int(niter, "niter")
        self.nprobe = min(DEFAULT_NPROBE, self.nlist)
        self.seed = seed
        self.threads = 1
        self.dim = None
        self.centroids = None  # (nlist, padded) float32
        self.cluster_sizes = None  # (nlist,) int64 vectors per cell
        self.index = None

    # -- Algorithm --------------------------------------------------------
    def set_threads(self, threads: int) -> None:
        self.threads = check_positive_int(threads, "threads")
        faiss.omp_set_num_threads(self.threads)

    def fit(self, x):
        x = as_matrix(x, "learn")
        check_codebook_size(x.shape[0], self.nlist, "nlist k-means cells")
        self.dim = x.shape[1]
        seed = {} if self.seed is None else {"seed": int(self.seed)}
        kmeans = faiss.Kmeans(self.dim, self.nlist, niter=self.niter, **seed)
        kmeans.train(x)
        self.centroids = self._padded(kmeans.centroids)
        self.cluster_sizes = np.zeros(self.nlist, np.int64)
        self.index = None
        return self

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """x (n, d) with zero columns up to 64 (the library's smallest dimension)."""
        if x.shape[1] >= MIN_DIM:
            return x
        out = np.zeros((x.shape[0], MIN_DIM), np.float32)
        out[:, :x.shape[1]] = x
        return out

    # -- Searcher ---------------------------------------------------------
    def add(self, x):
        """Append x to the cells of their nearest centroids; ids continue in order."""
        self.trained()
        x = self._padded(as_matrix(x, "base", dim=self.dim))
        if self.ntotal + x.shape[0] >= MISSING_ID:
            raise InputError(f"rabitqlib_ivf: {self.ntotal + x.shape[0]} vectors exceed the "
                             f"library's uint32 ids (at most {MISSING_ID - 1})")
        _, cells = faiss.knn(x, self.centroids, 1)
        cells = np.ascontiguousarray(cells[:, 0], dtype=np.uint32)
        if self.index is None:
            index = rabitqlib.IvfIndex(x.shape[1], x.shape[0], self.nlist, self.nbits, "l2",
                                       "flat")
            index.build(x, self.centroids, cells, num_threads=self.threads)
            self.index = index
        else:
            self.index.add(x, cluster_ids=cells, num_threads=self.threads)
        self.cluster_sizes += np.bincount(cells, minlength=self.nlist)

    @property
    def ntotal(self) -> int:
        return int(self.cluster_sizes.sum()) if self.cluster_sizes is not None else 0

    def search(self, queries, k):
        self.trained()
        k = check_k(k, self.ntotal)
        queries = self._padded(as_matrix(queries, "query", dim=self.dim))
        ids, distances = self.index.search(queries, k, self.nprobe, num_threads=self.threads)
        missing = ids == MISSING_ID
        ids = ids.astype(np.int64)
        ids[missing] = -1
        return np.ascontiguousarray(distances, dtype=np.float32), ids

    def set_search_params(self, nprobe: int = UNSET, **params) -> None:
        """Change ``nprobe`` (cells visited per query, 1 .. nlist) without rebuilding."""
        super().set_search_params(**params)
        if nprobe is not UNSET:
            self.nprobe = check_positive_int(nprobe, "nprobe", 1, self.nlist)

    # -- sizes ------------------------------------------------------------
    @property
    def code_bits(self) -> int:
        """Bits of the quantized vector: nbits per coordinate of the padded dimension."""
        return padded_dim(self.dim) * self.nbits if self.dim else 0

    @property
    def codes_bytes(self) -> int:
        """What the library stores per vector (what its saved index grows by): 1-bit codes and
        their three float factors in blocks of 32 slots per cell (a cell's last block
        padded), then per vector a uint32 id and, for nbits > 1, the extra bits and two
        float factors."""
        if self.cluster_sizes is None:
            return 0
        dp = padded_dim(self.dim)
        slots = int((-(-self.cluster_sizes // PAD)).sum()) * PAD
        extra = (self.nbits - 1) * dp // 8 + EXTRA_FACTOR_BYTES if self.nbits > 1 else 0
        return slots * (dp // 8 + BLOCK_FACTOR_BYTES) + self.ntotal * (ID_BYTES + extra)

    @property
    def model_bytes(self) -> int:
        """The padded centroids and the rotation's sign flips (four rounds of one bit per
        padded coordinate); the library's file has 62 header bytes and 8 per cell more."""
        if self.centroids is None:
            return 0
        dp = padded_dim(self.dim)
        return self.nlist * dp * 4 + 4 * dp // 8

    # -- pickling: the library's own save and load --------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        if self.index is not None:
            with tempfile.TemporaryDirectory(dir=self._temp_dir()) as folder:
                path = os.path.join(folder, "index")
                self.index.save(path)
                state["index"] = np.fromfile(path, dtype=np.uint8)
        return state

    def __setstate__(self, state):
        data = state.pop("index")
        self.__dict__.update(state)
        self.index = None
        if data is not None:
            with tempfile.TemporaryDirectory(dir=self._temp_dir()) as folder:
                path = os.path.join(folder, "index")
                np.asarray(data, dtype=np.uint8).tofile(path)
                self.index = rabitqlib.IvfIndex.load(path)

    @staticmethod
    def _temp_dir() -> str:
        folder = resolve_cache_dir() / "codes"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)
