"""Google's ScaNN (1.4.2) as a Searcher: anisotropic vector quantization (AVQ), exhaustive or
behind a k-means tree, with optional exact re-scoring (Guo, Sun, Lindgren, Geng, Simcha,
Chern, Kumar, "Accelerating Large-Scale Inference with Anisotropic Vector Quantization",
ICML 2020).

* ``scann``: the asymmetric-hashing (AH) codes of every database vector, scanned exhaustively.
* ``scann_tree``: the same codes in the ``num_leaves`` leaves of a k-means tree;
  ``leaves_to_search`` leaves are scanned per query.

Codes: a vector of d float32 is cut into d / dims_per_block blocks, each coded as one of 16
centres (4 bits: ScaNN's LUT16), chosen with the paper's anisotropic loss, whose parallel
error weight is (d - 1) (T^2 / ||x||^2) / (1 - T^2 / ||x||^2) for T =
``anisotropic_quantization_threshold`` (None: the nearest centres). T is in the units of the
data: 0.2 is ScaNN's advice for unit-norm vectors; on siftsmall (norms about 509) it changes
no result (recall@10 0.75 with and without it), and large T, which weights the parallel error
for inner products, costs squared-L2 recall (0.731 at T=100, 0.711 at 250).

Training: ScaNN trains inside the constructor of a searcher, on the rows the searcher is built
from; it has no separate training call. ``fit(learn)`` builds a searcher on the learn set (a
seeded sample of ``training_sample_size`` rows of it, when larger), which trains the codebooks
and the tree, then deletes those rows: a trained, empty searcher. ``add(base)`` inserts rows
with ScaNN's ``upsert``, which codes each with the trained codebooks (anisotropic loss
included) and files it in its nearest leaf; ids are the order of addition. On siftsmall,
fitting and adding the base gives codes and results bit-identical to ScaNN built on the base;
in a tree, a row added goes to its nearest centroid where a build keeps the row's last
training assignment (95 % of the rows in the same leaf, recall@10 within 0.005).

Search: queries (nq, d) float32 -> (distances (nq, k) float32, ids (nq, k) int64). ScaNN's
``squared_l2`` scores are squared L2 distances: estimates from int8 lookup tables without
re-scoring, exact float32 with it. Under the ``ip`` metric the searcher is built with
``dot_product`` (the measure anisotropic quantization was made for) and returns inner
products, largest first. Fewer than k candidates (a tree's leaves searched hold fewer rows)
leave id -1 and distance inf (-inf under ``ip``).

What ``serialize`` writes (and what a pickle carries, as bytes):

* ``hashed_dataset.npy``: (n, d / dims_per_block) uint8, one 4-bit code per byte;
* ``dataset.npy``: (n, d) float32, kept for re-scoring (``exact_reorder``);
* ``datapoint_to_token.npy``: (n,) int32, the leaf of each row (tree only);
* ``ah_codebook.pb``: the AH centres, d / dims_per_block blocks x 16 x dims_per_block floats;
* ``serialized_partitioner.pb``: the tree's centroids (num_leaves x d, as doubles);
* ``scann_config.pb``, ``scann_assets.pbtxt``: the configuration and the list of these files.

``codes_bytes`` is the data of the three per-row files, ``model_bytes`` the floats of the
codebook and of the centroids at 4 bytes each.

Determinism: ScaNN exposes no seed in its builder, but its configuration has one for the
codebook's sampling and k-means and one for the tree's k-means; ``seed`` sets them (None:
ScaNN's own). The tree is trained with k-means++ initialisation: ScaNN's random
initialisation (its builder's default) draws from an unseeded generator, and two builds
gave centroids up to 130 apart on siftsmall. So seeded, a build is reproducible, with one
training thread or two.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import scann
from google.protobuf import text_format
from scann.partitioning import partitioner_pb2
from scann.proto import centers_pb2, scann_pb2

from benchpq.api import UNSET, Searcher
from benchpq.checks import InputError, as_matrix, check_codebook_size, check_k, check_positive_int
from benchpq.datasets.context import resolve_cache_dir
from benchpq.registry import register

from ..primitives.mixins import FittedGuard

#: centres per block of ScaNN's LUT16 asymmetric hashing: 4-bit codes
CENTRES_PER_BLOCK = 16
#: the largest seed ScaNN's configuration holds (an int32)
MAX_SEED = 2 ** 31 - 1
#: rows per ScaNN upsert call (each row crosses as one numpy array of a Python list)
UPSERT_ROWS = 65536
#: the candidates ScaNN's configuration names for re-scoring; every search passes its own
CONFIGURED_REORDER = 100
#: what ScaNN's serialize writes; a stored state naming anything else is refused (loading a
#: folder also unpickles a docids file, which is never written)
SCANN_FILES = ("ah_codebook.pb", "hashed_dataset.npy", "dataset.npy", "datapoint_to_token.npy",
               "serialized_partitioner.pb", "scann_config.pb", "scann_assets.pbtxt")
#: files larger than this are carried mapped from an unlinked file of the cache, not read
MAPPED_FILE_BYTES = 64 << 20


def check_threshold(value) -> float | None:
    """``anisotropic_quantization_threshold``: None (no anisotropic loss) or a finite float
    >= 0, or InputError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"anisotropic_quantization_threshold: expected a number or null, "
                         f"got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InputError(f"anisotropic_quantization_threshold: must be a finite number >= 0 "
                         f"(null: no anisotropic loss), got {value}")
    return value


def serialized_files(searcher) -> dict[str, np.ndarray]:
    """{file name: uint8 bytes} of ``searcher.serialize``; a large file is mapped read-only
    from the cache's ``codes`` folder (its name unlinked), so that it sits in the page cache."""
    folder = resolve_cache_dir() / "codes"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as where:
        searcher.serialize(where, True)
        files = {}
        for name in sorted(os.listdir(where)):
            if name not in SCANN_FILES:
                raise RuntimeError(f"ScaNN wrote {name!r}, which this adapter does not know")
            path = Path(where) / name
            size = path.stat().st_size
            files[name] = (np.memmap(path, dtype=np.uint8, mode="r") if size > MAPPED_FILE_BYTES
                           else np.fromfile(path, dtype=np.uint8))
    return files


def loaded_searcher(files: dict):
    """The ScaNN searcher whose serialized files are ``files`` ({name: uint8 bytes})."""
    unknown = sorted(set(files) - set(SCANN_FILES))
    if unknown or "scann_assets.pbtxt" not in files:
        raise InputError(f"stored ScaNN files {sorted(files)}: expected scann_assets.pbtxt and "
                         f"only files of {SCANN_FILES}")
    with tempfile.TemporaryDirectory() as where:
        for name, data in files.items():
            np.asarray(data, dtype=np.uint8).tofile(Path(where) / name)
        return scann.scann_ops_pybind.load_searcher(where, assets_backcompat_shim=False)


def _proto_from_file(files: dict, name: str, message):
    message.ParseFromString(np.asarray(files[name], dtype=np.uint8).tobytes())
    return message


@register("scann")
class ScannAH(FittedGuard, Searcher):
    """ScaNN's anisotropic asymmetric hashing, scanned exhaustively (see the module doc).

    Args:
        dims_per_block: dimensions per 4-bit code (must divide d): 2 gives ScaNN's advised
            4 bits per 2 dimensions, code_bits = 2 d.
        anisotropic_quantization_threshold: T of the anisotropic loss, in the data's units;
            None: plain nearest-centre codes.
        training_sample_size: learn rows ScaNN trains on at most (a seeded sample of them).
        exact_reorder: keep the float32 database (codes_bytes counts it) so that ``reorder``
            candidates are re-scored exactly.
        reorder: search-time: candidates re-scored exactly, at least k; 0 with exact_reorder
            re-scores only the k results (ScaNN re-scores whenever it keeps the floats), and
            without exact_reorder is the only value.
        seed: ScaNN's sampling and k-means seeds (None: ScaNN's own).
    """

    fitted_attribute, fitted_action = "searcher", "searching"
    search_metrics = ("l2", "ip")

    def __init__(self, dims_per_block: int = 2,
                 anisotropic_quantization_threshold: float | None = 0.2,
                 training_sample_size: int = 100000, exact_reorder: bool = False,
                 reorder: int = 0, seed: int | None = None):
        self.dims_per_block = check_positive_int(dims_per_block, "dims_per_block")
        self.anisotropic_quantization_threshold = check_threshold(
            anisotropic_quantization_threshold)
        self.training_sample_size = check_positive_int(training_sample_size,
                                                       "training_sample_size")
        if not isinstance(exact_reorder, bool):
            raise InputError(f"exact_reorder: expected true or false, got {exact_reorder!r}")
        self.exact_reorder = exact_reorder
        self.seed = None if seed is None else check_positive_int(seed, "seed", 0, MAX_SEED)
        self.threads = 1
        self.searcher = None
        self.dim = None
        self._model_bytes = 0
        self.reorder = 0
        ScannAH.set_search_params(self, reorder=reorder)

    # -- configuration --------------------------------------------------------
    def set_search_params(self, reorder: int = UNSET, **params) -> None:
        """``reorder``: candidates re-scored exactly (>= k at search; 0: none, or with
        ``exact_reorder`` the k results only). > 0 needs ``exact_reorder``."""
        super().set_search_params(**params)
        if reorder is not UNSET:
            reorder = check_positive_int(reorder, "reorder", 0)
            if reorder and not self.exact_reorder:
                raise InputError(f"reorder={reorder}: re-scoring needs the float database, "
                                 f"which a searcher keeps only with exact_reorder: true")
            self.reorder = reorder

    def _tree(self, builder):
        """``builder`` with a partitioning added (none here)."""
        return builder

    def _check_training(self, n_train: int) -> None:
        check_codebook_size(n_train, CENTRES_PER_BLOCK, "AH centres per block")

    def _config(self, learn: np.ndarray) -> str:
        """ScaNN's text configuration for this plugin's settings, with the seeds set."""
        threshold = self.anisotropic_quantization_threshold
        measure = "dot_product" if self.metric == "ip" else "squared_l2"
        builder = self._tree(scann.scann_ops_pybind.builder(learn, 10, measure))
        builder = builder.score_ah(
            self.dims_per_block,
            anisotropic_quantization_threshold=float("nan") if threshold is None else threshold,
            training_sample_size=self.training_sample_size)
        if self.exact_reorder:
            builder = builder.reorder(CONFIGURED_REORDER)
        config = text_format.Parse(builder.create_config(), scann_pb2.ScannConfig())
        if self.seed is not None:
            config.hash.asymmetric_hash.clustering_seed = self.seed
            config.hash.asymmetric_hash.sampling_seed = self.seed
            if config.HasField("partitioning"):
                config.partitioning.clustering_seed = self.seed
        return text_format.MessageToString(config)

    # -- Algorithm --------------------------------------------------------------
    def set_threads(self, threads: int) -> None:
        """ScaNN's training threads and its search thread pool (one thread: the sequential
        batched search)."""
        self.threads = check_positive_int(threads, "threads")
        if self.searcher is not None:
            self.searcher.set_num_threads(self.threads)

    def fit(self, x):
        """Train on learn rows (n, d) float32: a ScaNN searcher built on them, then emptied."""
        x = as_matrix(x, "learn")
        d = x.shape[1]
        if d % self.dims_per_block:
            raise InputError(f"dims_per_block={self.dims_per_block} does not divide the "
                             f"dimension d={d}")
        self._check_training(x.shape[0])
        if x.shape[0] > self.training_sample_size:
            rng = np.random.default_rng(0 if self.seed is None else self.seed)
            x = x[np.sort(rng.choice(x.shape[0], self.training_sample_size, replace=False))]
        searcher = scann.scann_ops_pybind.create_searcher(x, self._config(x), self.threads)
        searcher.searcher.delete(list(range(x.shape[0] - 1, -1, -1)))
        if searcher.size():
            raise RuntimeError(f"ScaNN kept {searcher.size()} training rows after deleting them")
        searcher.set_num_threads(self.threads)
        self.searcher, self.dim = searcher, d
        self._model_bytes = self._measured_model_bytes(serialized_files(searcher))
        return self

    def _measured_model_bytes(self, files: dict) -> int:
        """4 bytes per float of the AH codebook (and of the tree's centroids)."""
        codebook = _proto_from_file(files, "ah_codebook.pb", centers_pb2.CentersForAllSubspaces())
        return 4 * sum(len(centre.feature_value_float) for block in codebook.subspace_centers
                       for centre in block.center)

    def add(self, x) -> None:
        """Insert base rows (n, d) float32; ids continue from the current size."""
        searcher = self.trained()
        x = as_matrix(x, "base", dim=self.dim)
        for start in range(0, x.shape[0], UPSERT_ROWS):
            rows = x[start:start + UPSERT_ROWS]
            first = searcher.size()
            got = searcher.searcher.upsert([None] * rows.shape[0], list(rows), 1)
            if list(got) != list(range(first, first + rows.shape[0])):
                raise RuntimeError("ScaNN stored the added rows out of their order of addition")

    @property
    def ntotal(self) -> int:
        """Rows added so far (0 before fit)."""
        return 0 if self.searcher is None else int(self.searcher.size())

    def _leaves_to_search(self) -> int:
        return -1

    def search(self, queries, k):
        searcher = self.trained()
        k = check_k(k, self.ntotal)
        queries = as_matrix(queries, "query", dim=self.dim)
        if self.exact_reorder and 0 < self.reorder < k:
            raise InputError(f"reorder={self.reorder} is below k={k}: ScaNN re-scores that many "
                             f"candidates and returns k of them")
        candidates = max(self.reorder, k)
        search = searcher.search_batched if self.threads == 1 else \
            searcher.search_batched_parallel
        ids, distances = search(queries, k, candidates, self._leaves_to_search())
        ids, distances = np.asarray(ids, np.int64), np.asarray(distances, np.float32)
        missing = np.isnan(distances)
        worst = -np.inf if self.metric == "ip" else np.inf
        ids[missing], distances[missing] = -1, worst
        if ids.shape[1] < k:  # ScaNN pads to k; this keeps the contract if it does not
            pad = ((0, 0), (0, k - ids.shape[1]))
            ids = np.pad(ids, pad, constant_values=-1)
            distances = np.pad(distances, pad, constant_values=worst)
        return distances, ids

    # -- sizes --------------------------------------------------------------------
    def _bytes_per_row(self) -> int:
        """Bytes serialized per row: the codes (one byte per 4-bit code), the float32 row
        when re-scoring."""
        return self.dim // self.dims_per_block + (4 * self.dim if self.exact_reorder else 0)

    @property
    def codes_bytes(self) -> int:
        return self.ntotal * self._bytes_per_row() if self.searcher is not None else 0

    @property
    def code_bits(self) -> int:
        """4 bits per block; before fit (d unknown) 0."""
        return 4 * (self.dim // self.dims_per_block) if self.dim else 0

    @property
    def model_bytes(self) -> int:
        return self._model_bytes

    # -- pickling: the searcher through ScaNN's serialized files -----------------------
    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        state["scann_files"] = None if self.searcher is None else \
            serialized_files(self.searcher)
        return state

    def __setstate__(self, state):
        files = state.pop("scann_files")
        self.__dict__.update(state)
        self.searcher = None if files is None else loaded_searcher(files)
        if self.searcher is not None:
            self.searcher.set_num_threads(self.threads)


@register("scann_tree")
class ScannTree(ScannAH):
    """ScaNN's anisotropic asymmetric hashing in the leaves of a k-means tree.

    Args (besides :class:`ScannAH`'s):
        num_leaves: leaves (k-means centroids, trained with k-means++ initialisation on the
            learn sample; at most the learn rows).
        leaves_to_search: search-time: leaves scanned per query (1 .. num_leaves).
        min_partition_size: ScaNN re-seeds a leaf of fewer training rows, next to another
            centroid; measured on siftsmall (10,000 rows, 100 leaves), 13 pairs of centroids
            then coincide at ScaNN's 50 and none at 1 (304 pairs at 256 leaves), and a query
            may search the twin of its neighbours' leaf: recall@10 at 256 leaves, 10 searched,
            0.674 at 50, 0.734 at 1 (100 leaves: 0.739, 0.742).
    """

    def __init__(self, dims_per_block: int = 2,
                 anisotropic_quantization_threshold: float | None = 0.2,
                 training_sample_size: int = 100000, exact_reorder: bool = False,
                 reorder: int = 0, num_leaves: int = 256, leaves_to_search: int = 16,
                 min_partition_size: int = 50, seed: int | None = None):
        self.num_leaves = check_positive_int(num_leaves, "num_leaves")
        self.min_partition_size = check_positive_int(min_partition_size, "min_partition_size")
        self.leaves_to_search = 1
        super().__init__(dims_per_block, anisotropic_quantization_threshold,
                         training_sample_size, exact_reorder, reorder, seed)
        self.set_search_params(leaves_to_search=leaves_to_search)

    def set_search_params(self, leaves_to_search: int = UNSET, reorder: int = UNSET,
                          **params) -> None:
        """``leaves_to_search`` (1 .. num_leaves), and :class:`ScannAH`'s ``reorder``."""
        super().set_search_params(reorder=reorder, **params)
        if leaves_to_search is not UNSET:
            self.leaves_to_search = check_positive_int(leaves_to_search, "leaves_to_search", 1,
                                                       self.num_leaves)

    def _check_training(self, n_train: int) -> None:
        super()._check_training(n_train)
        check_codebook_size(min(n_train, self.training_sample_size), self.num_leaves, "leaves")

    def _tree(self, builder):
        return builder.tree(self.num_leaves, self.leaves_to_search,
                            training_sample_size=self.training_sample_size,
                            min_partition_size=self.min_partition_size, random_init=False)

    def _leaves_to_search(self) -> int:
        return self.leaves_to_search

    def _measured_model_bytes(self, files: dict) -> int:
        partitioner = _proto_from_file(files, "serialized_partitioner.pb",
                                       partitioner_pb2.SerializedPartitioner())
        centroids = sum(len(c.dimension) for c in partitioner.kmeans.kmeans_tree.root.centers)
        return super()._measured_model_bytes(files) + 4 * centroids

    def _bytes_per_row(self) -> int:
        return super()._bytes_per_row() + 4  # the int32 leaf of each row
