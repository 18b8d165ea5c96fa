"""Every error message a user can reach, one row each: the call that reaches it and the words
the message must hold. These complement the per-module bad-input tests (which cover the
common argument checks of each plugin); each row here names the raise site it reaches.

Every row also checks that the error is an ``InputError`` (a ``ValueError``) unless the
site raises a build error (``NativeBuildError``: no compiler, cppyy cannot load).
"""
import gzip
import re
import sys
import types

import faiss
import numpy as np
import pytest

from benchpq import native, registry
from benchpq.checks import InputError, as_matrix, check_labels, check_positive_int
from benchpq.datasets import Dataset, load_dataset
from benchpq.datasets.download import ChecksumError, Expected, extract_archive, verify_file
from benchpq.datasets.formats import read_array
from benchpq.datasets.groundtruth import exact_distances
from benchpq.datasets.hdf5 import read_ann_hdf5, read_hdf5
from benchpq.datasets.idx import read_idx
from benchpq.datasets.registry import register_loader
from benchpq.datasets.splits import shuffle_split
from benchpq.datasets.synthetic import generate
from benchpq.datasets.vecs import read_vecs, write_vecs
from benchpq.measure import metrics
from benchpq.measure.tasks import run_task

X = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def fitted(name, **params):
    plugin = registry.create({"name": name, **params})
    return plugin.fit(X)


def tiny_dataset():
    return Dataset("tiny", X, X, X[:5])


class FloatIds:
    """A searcher that returns float ids (a broken plugin)."""


def broken_searcher(ids_dtype=np.float32, rows=None):
    from benchpq.api import Searcher

    class Broken(Searcher):
        name = "broken"

        def fit(self, x):
            return self

        def add(self, x):
            pass

        def search(self, q, k):
            n = len(q) if rows is None else rows
            return np.zeros((n, k), np.float32), np.zeros((n, k), ids_dtype)

        code_bits = codes_bytes = model_bytes = 0

    return Broken()


def pqkmeans_input():
    from benchpq.algorithms.own.pqkmeans import sdc_tables
    codewords = np.random.default_rng(1).normal(size=(2, 16, 2)).astype(np.float32)
    codes = np.random.default_rng(2).integers(0, 16, (50, 2)).astype(np.uint8)
    return codes, sdc_tables(codewords)


def own(module, name):
    return getattr(__import__(f"benchpq.algorithms.{module}", fromlist=[name]), name)


# (id, call(tmp_path), words the message must hold)
CASES = [
    # benchpq/checks.py
    ("numeric dtype", lambda t: as_matrix(np.array([["a", "b"]])), "expected a numeric array"),
    ("integer dtype", lambda t: as_matrix(np.ones((2, 2)), "codes", dtype=np.uint8),
     "codes: expected integer dtype uint8, got float64"),
    ("min rows", lambda t: as_matrix(np.ones((1, 2)), "learn", min_rows=2),
     "learn: expected at least 2 rows, got 1"),
    ("ragged", lambda t: as_matrix([[1.0], [1.0, 2.0]], "x"), "x: cannot be read as an array"),
    ("not an int", lambda t: check_positive_int(1.5, "k"), "k: expected an integer, got 1.5"),
    ("int range", lambda t: check_positive_int(0, "k"), r"k: must be >= 1, got 0"),
    # benchpq/datasets/dataset.py
    ("gt not 2-D", lambda t: Dataset("d", X, X, X[:3],
                                     groundtruth=np.zeros(3, np.int64)).validate(),
     "groundtruth must be a 2-D integer array"),
    ("gt no columns", lambda t: Dataset("d", X, X, X[:3],
                                        groundtruth=np.zeros((3, 0), np.int64)).validate(),
     "groundtruth has no columns"),
    ("labels not 1-D", lambda t: Dataset("d", X, X, X[:3], labels=np.zeros(300)).validate(),
     "labels must be a 1-D integer array"),
    ("gt rows", lambda t: Dataset("d", X, X, X[:3],
                                  groundtruth=np.zeros((2, 1), np.int64)).validate(),
     "groundtruth has 2 rows but there are 3 queries"),
    ("gt ids", lambda t: Dataset("d", X, X, X[:3], groundtruth=np.full((3, 1), 300)).validate(),
     "groundtruth ids must be in [0, 300)"),
    ("labels count", lambda t: Dataset("d", X, X, X[:3], labels=np.zeros(5, np.int64)).validate(),
     "5 labels for 300 base vectors"),
    ("part not 2-D", lambda t: Dataset("d", X, X, X[0]).validate(), "query must be a 2-D array"),
    ("part empty", lambda t: Dataset("d", X, X, X[:0]).validate(), "query is empty"),
    # benchpq/datasets/download.py
    ("unknown archive", lambda t: extract_archive(write(t / "a.zip", b"x"), t / "o"),
     "unknown archive type"),
    ("bad tar", lambda t: extract_archive(write(t / "a.tar.gz", b"not a tar"), t / "o"),
     "cannot extract archive"),
    ("bad gz", lambda t: extract_archive(write(t / "a.gz", b"not gzip"), t / "o"),
     "cannot decompress"),
    ("unreadable for shape", lambda t: verify_file(write(t / "a.fvecs", b"12"),
                                                   Expected(shape=(1, 1))), "unreadable"),
    ("wrong shape", lambda t: verify_file(write_vecs(t / "a.fvecs", np.ones((2, 3))),
                                          Expected(shape=(2, 4))),
     r"shape \(2, 3\), expected \(2, 4\)"),
    # benchpq/datasets/files.py (through load_dataset, as a config would)
    ("files: no query", lambda t: load_dataset(
        {"loader": "files", "name": "f", "base": str(write_vecs(t / "b.fvecs", X)), "query": None},
        data_dir=t, cache_dir=t), "give a query file"),
    ("files: test_size with learn", lambda t: load_dataset(
        {"loader": "files", "name": "f", "base": str(write_vecs(t / "b.fvecs", X)),
         "query": None, "test_size": 0.2, "learn": str(t / "b.fvecs")}, data_dir=t, cache_dir=t),
     "cannot be combined with learn"),
    ("files: float ids", lambda t: load_dataset(
        {"loader": "files", "name": "f", "base": str(write_vecs(t / "b.fvecs", X)),
         "query": str(write_vecs(t / "q.fvecs", X[:4])),
         "groundtruth": str(write_vecs(t / "g.fvecs", np.ones((4, 3))))},
        data_dir=t, cache_dir=t), "must hold integers"),
    # benchpq/datasets/formats.py, hdf5.py
    ("hdf5 without key", lambda t: read_array(t / "a.hdf5"), "needs a dataset key"),
    ("unsupported file type", lambda t: read_array(write(t / "a.txt", b"1 2")),
     "unsupported file type"),
    ("bad npy", lambda t: read_array(write(t / "a.npy", b"junk")), "not a valid .npy file"),
    ("hdf5 no such key", lambda t: read_hdf5(ann_file(t), "nope"), "no dataset 'nope' in the file"),
    ("not ann-benchmarks", lambda t: read_ann_hdf5(hdf5_with_group(t)),
     "not an ann-benchmarks file"),
    ("not hdf5", lambda t: read_hdf5(write(t / "a.hdf5", b"plain text"), "train"),
     "not a readable HDF5 file"),
    ("hdf5 group", lambda t: read_hdf5(hdf5_with_group(t), "grp"), "is a group, not a dataset"),
    ("hdf5 neighbors shape", lambda t: read_ann_hdf5(ann_file(t, neighbors=np.zeros((3, 2)))),
     "'neighbors' has shape"),
    ("metric against the file's", lambda t: load_dataset(
        {"loader": "ann_hdf5", "name": "a", "path": str(ann_file(t, distance="angular")),
         "metric": "ip"}, data_dir=t, cache_dir=t), "metric 'ip' contradicts its file"),
    ("unsupported distance", lambda t: load_dataset(
        {"loader": "ann_hdf5", "name": "a", "path": str(ann_file(t, distance="jaccard"))},
        data_dir=t, cache_dir=t), "'jaccard' is not supported"),
    # benchpq/datasets/groundtruth.py
    ("gt ids shape", lambda t: exact_distances(X, X[:3], np.zeros((2, 1), np.int64)),
     "ids: expected an integer array"),
    ("gt ids range", lambda t: exact_distances(X, X[:3], np.full((3, 1), 300)),
     r"ids: values must be in \[-1, 300\)"),
    # benchpq/datasets/idx.py
    ("idx truncated", lambda t: read_idx(write(t / "a-idx1-ubyte", b"\x00\x00")),
     "truncated IDX file"),
    ("idx header", lambda t: read_idx(write(t / "a-idx3-ubyte",
                                            b"\x00\x00\x08\x03\x00\x00\x00\x01")),
     "truncated IDX header"),
    ("idx empty", lambda t: read_idx(write(t / "a-idx1-ubyte", b"")), "empty file"),
    ("idx bad gzip", lambda t: read_idx(write(t / "a-idx1-ubyte.gz", b"not gzip")),
     "cannot decompress gzip IDX file"),
    ("idx bad magic", lambda t: read_idx(write(t / "a-idx1-ubyte", b"\x01\x02\x03\x04")),
     "bad magic number"),
    # benchpq/datasets/registry.py
    ("config not a mapping", lambda t: load_dataset(["texmex"]), "must be a mapping"),
    ("no loader key", lambda t: load_dataset({"name": "x"}), "has no 'loader' key"),
    ("??? key", lambda t: load_dataset({"loader": "files", "base": "???", "query": "q"}),
     "set 'base'"),
    ("unknown loader", lambda t: load_dataset({"loader": "nope"}), "unknown dataset loader 'nope'"),
    ("unknown loader key", lambda t: load_dataset({"loader": "texmex", "folder": "x", "colour": 1}),
     "does not accept 'colour'"),
    ("loader needs key", lambda t: load_dataset({"loader": "texmex"}),
     "needs the key 'folder'"),
    ("loader name taken", lambda t: register_loader("texmex")(lambda ctx: None),
     "already registered"),
    # benchpq/datasets/splits.py, synthetic.py, texmex.py
    ("test_size kind", lambda t: shuffle_split(10, 1.5), "expected a fraction in (0, 1)"),
    ("test_size leaves none", lambda t: shuffle_split(10, 10), "leaves 0 of 10 rows"),
    ("synthetic kind", lambda t: generate("normal", 10), "must be one of uniform, sift, mips"),
    ("synthetic split", lambda t: generate("sift", 10, split="train"), "synthetic split must be"),
    ("texmex learn", lambda t: load_dataset({"loader": "texmex", "folder": "siftsmall",
                                             "prefix": "siftsmall", "learn": "train"},
                                            data_dir=t, cache_dir=t),
     "learn must be 'learn' or 'base'"),
    ("texmex ext", lambda t: load_dataset({"loader": "texmex", "folder": "siftsmall",
                                           "prefix": "siftsmall", "ext": "ivecs"},
                                          data_dir=t, cache_dir=t),
     "ext must be 'fvecs' or 'bvecs'"),
    # benchpq/datasets/vecs.py
    ("vecs empty", lambda t: read_vecs(write(t / "a.fvecs", b"")), "empty file"),
    ("vecs truncated", lambda t: read_vecs(write(t / "a.fvecs", b"\x01\x00")), "truncated file"),
    ("vecs last row header", lambda t: read_vecs(write(t / "a.ivecs", np.array(
        [2, 1, 1, 3, 1, 1], "<i4").tobytes())), "inconsistent dimensions: last row"),
    ("vecs middle row header", lambda t: read_vecs(write(t / "a.ivecs", np.array(
        [2, 1, 1, 3, 1, 1, 2, 1, 1], "<i4").tobytes())), "inconsistent dimensions: row 1"),
    ("vecs floats to ivecs", lambda t: write_vecs(t / "a.ivecs", np.full((2, 2), 0.5)),
     "cannot write floating point values to a .ivecs file"),
    ("vecs dimension 0", lambda t: write_vecs(t / "a.fvecs", np.ones((2, 0))),
     "cannot write vectors of dimension 0"),
    # benchpq/measure/metrics.py
    ("recall rows", lambda t: metrics.recall_at(np.zeros((2, 5), np.int64),
                                                np.zeros((3, 5), np.int64), 1),
     "2 result rows for 3 ground-truth rows"),
    ("recall width", lambda t: metrics.recall_at(np.zeros((2, 1), np.int64),
                                                 np.zeros((2, 5), np.int64), 10),
     "recall@10 needs at least 10 results"),
    ("k-recall width", lambda t: metrics.k_recall_at_k(np.zeros((2, 5), np.int64), np.zeros((2, 5)),
                                                       np.zeros((2, 5)), 10),
     "10-recall@10 needs 10 results"),
    ("mse shape", lambda t: metrics.mse(X, X[:, :3]), "reconstruction shape"),
    ("labels shape", lambda t: check_labels(np.zeros(3, np.int64), 4, 2),
     r"labels: expected shape \(4,\)"),
    ("labels dtype", lambda t: check_labels(np.zeros(4), 4, 2), "expected integers"),
    ("labels range", lambda t: check_labels(np.array([0, 1, 2, 5]), 4, 3),
     r"values must be in \[0, 3\)"),
    # benchpq/native/__init__.py
    ("array_arg not array", lambda t: native.array_arg([1.0], np.float32, (1,)),
     "expected a numpy array"),
    ("array_arg layout", lambda t: native.array_arg(np.ones((3, 3), np.float32).T, np.float32,
                                                    (3, 3)),
     "not C-contiguous"),
    ("array_arg read-only", lambda t: native.array_arg(read_only(), np.float32, (2,),
                                                       writeable=True),
     "read-only, but C++ writes into it"),
    ("array_arg empty", lambda t: native.array_arg(np.zeros(0, np.float32), np.float32, (None,)),
     "empty"),
    # benchpq/registry.py
    ("algorithm no name", lambda t: registry.create({"M": 8}), "has no 'name'"),
    ("unknown algorithm", lambda t: registry.create({"name": "kmeens"}),
     "unknown algorithm 'kmeens'"),
    ("unknown option", lambda t: registry.create({"name": "pq", "MM": 8}), "accepted options"),
    ("plugin module", lambda t: registry.import_plugins(["no_such_module_xyz"]),
     "plugin module 'no_such_module_xyz' cannot be imported"),
    # benchpq/measure/tasks.py
    ("task capability", lambda t: run_task(registry.create({"name": "kmeans"}), tiny_dataset(),
                                           {"name": "search", "k": 5}, 1),
     "cannot run task 'search'"),
    ("task ids dtype", lambda t: point_error(run_task(
        broken_searcher(), tiny_dataset(),
        {"name": "search", "k": 5, "recall_at": [1, 5], "k_recall": []}, 1)),
     "returned ids of dtype float32"),
    ("task result shape", lambda t: point_error(run_task(
        broken_searcher(np.int64, rows=2), tiny_dataset(),
        {"name": "search", "k": 5, "recall_at": [1, 5], "k_recall": []}, 1)),
     "returned ids (2, 5) and distances (2, 5) from search"),
    ("task data", lambda t: run_task(registry.create({"name": "kmeans"}), tiny_dataset(),
                                     {"name": "cluster", "data": "query"}, 1),
     "task.data must be 'base' or 'learn'"),
    ("task recall_at", lambda t: run_task(broken_searcher(), tiny_dataset(),
                                          {"name": "search", "k": 5}, 1),
     "task.recall_at: 10 is not an integer in [1, k=5]"),
    ("task n_clusters", lambda t: run_task(registry.create({"name": "kmeans"}), tiny_dataset(),
                                           {"name": "cluster", "n_clusters": 301}, 1),
     "n_clusters=301 is larger than the data"),
    ("unknown task", lambda t: run_task(registry.create({"name": "kmeans"}), tiny_dataset(),
                                        {"name": "index"}, 1), "unknown task 'index'"),
    # faiss and nanopq adapters
    ("faiss_imi odd D", lambda t: registry.create({"name": "faiss_imi", "coarse_bits": 2, "M": 3}
                                                  ).fit(X[:, :15]), "must be even"),
    ("faiss before fit", lambda t: registry.create({"name": "faiss_pq"}).encode(X),
     "call fit() before using the index"),
    ("faiss_pqfs nbits", lambda t: registry.create({"name": "faiss_pqfs", "nbits": 8}),
     "fast-scan needs nbits=4"),
    ("nanopq before fit", lambda t: registry.create({"name": "nanopq_pq"}).encode(X),
     "call fit() before using the model"),
    ("nanopq search before add", lambda t: fitted("nanopq_pq", M=4, Ks=16).search(X[:2], 1),
     "add() vectors before searching"),
    # our PQ, OPQ, LOPQ, ITQ, k-means, rotations
    ("pq init", lambda t: own("own.pq", "PQ")(init="kmeans"), "init: expected one of"),
    ("pq before fit", lambda t: own("own.pq", "PQ")().encode(X), "call fit() before using"),
    ("pq search before add", lambda t: own("own.pq", "PQ")(M=4, Ks=16).fit(X).search(X[:2], 1),
     "add() vectors before searching"),
    ("pq to_faiss Ks", lambda t: own("own.pq", "PQ")(M=4, Ks=24).fit(X).to_faiss(),
     "faiss needs Ks a power of two"),
    ("pq from_faiss type", lambda t: own("own.pq", "PQ").from_faiss(faiss.IndexFlatL2(16)),
     "expected a faiss.IndexPQ, got IndexFlatL2"),
    ("pq from_faiss untrained", lambda t: own("own.pq", "PQ").from_faiss(faiss.IndexPQ(16, 4, 4)),
     "the faiss index is not trained"),
    ("pq from_faiss nbits", lambda t: own("own.pq", "PQ").from_faiss(trained_pq_index(17)),
     "at most 16 bits per sub-code, got nbits=17"),
    ("opq init", lambda t: own("own.opq", "OPQ")(init="pca"), "init: expected one of"),
    ("opq before fit", lambda t: own("own.opq", "OPQ")().encode(X), "call fit() before using"),
    ("opq from_faiss type", lambda t: own("own.opq", "OPQ").from_faiss(faiss.IndexPQ(16, 4, 4)),
     "expected a faiss IndexPreTransform with one rotation"),
    ("opq from_faiss not square", lambda t: own("own.opq", "OPQ").from_faiss(pca_then_pq()),
     "not a square linear transform"),
    ("lopq odd M", lambda t: own("own.lopq", "LOPQ")(M=3), "M=3 must be even"),
    ("lopq init", lambda t: own("own.lopq", "LOPQ")(init="kmeans"), "init: expected one of"),
    ("lopq rotation", lambda t: own("own.lopq", "LOPQ")(rotation="random"),
     "rotation: expected one of"),
    ("lopq pca flag", lambda t: own("own.lopq", "LOPQ")(pca="yes"), "pca: expected true or false"),
    ("lopq exact_quota flag",
     lambda t: own("own.lopq", "LOPQ")().set_search_params(exact_quota="yes"),
     "exact_quota: expected true or false"),
    ("lopq lists before add", lambda t: own("own.lopq", "LOPQ")(V=2, M=2, Ks=4, coarse_iter=2,
                                                                 iter=2).fit(X).list_sizes(),
     "add() vectors before searching"),
    ("lopq before fit", lambda t: own("own.lopq", "LOPQ")().encode(X), "call fit() before using"),
    ("lopq search before add", lambda t: own("own.lopq", "LOPQ")(V=2, M=2, Ks=4, coarse_iter=2,
                                                                  iter=2).fit(X).search(X[:2], 1),
     "add() vectors before searching"),
    ("itq before fit", lambda t: own("own.itq", "ITQ")(num_bit=8).encode(X),
     "call fit() before encoding"),
    ("itq search before add", lambda t: own("own.itq", "ITQ")(num_bit=8).fit(X).search(X[:2], 1),
     "add() vectors before searching"),
    ("hamming empty codes", lambda t: own("own.itq", "hamming_distances")(
        np.zeros((0, 2), np.uint8), np.zeros((1, 2), np.uint8)), "empty"),
    ("kmeans init", lambda t: own("own.kmeans", "KMeans")(init="kmeans"), "init: expected one of"),
    ("eigenvalue allocation n",
     lambda t: own("primitives.rotations", "eigenvalue_allocation")(X[:1], 4),
     "needs at least 2 vectors, got 1"),
    # PQk-means and Bk-means kernels
    ("pq codes not array", lambda t: own("own.pqkmeans", "pqkmeans_assign")(
        [[0, 1]], pqkmeans_input()[1], pqkmeans_input()[0][:2]), "expected a numpy array of uint8"),
    ("pq codes 1-D", lambda t: own("own.pqkmeans", "pqkmeans_assign")(
        np.zeros(4, np.uint8), pqkmeans_input()[1], pqkmeans_input()[0][:2]),
     "expected a 2-D array (n, M)"),
    ("pq codes empty", lambda t: own("own.pqkmeans", "pqkmeans_assign")(
        np.zeros((0, 2), np.uint8), pqkmeans_input()[1], pqkmeans_input()[0][:2]), "empty"),
    ("tables not 3-D", lambda t: own("own.pqkmeans", "pqkmeans_assign")(
        pqkmeans_input()[0], np.zeros((16, 16), np.float32), pqkmeans_input()[0][:2]),
     r"tables: expected an \(M, Ks, Ks\) array"),
    ("tables Ks", lambda t: own("own.pqkmeans", "pqkmeans_assign")(
        pqkmeans_input()[0], np.zeros((2, 300, 300), np.float32), pqkmeans_input()[0][:2]),
     "PQk-means needs 1 <= Ks <= 256"),
    ("tables NaN", lambda t: own("own.pqkmeans", "pqkmeans_assign")(
        pqkmeans_input()[0], np.full((2, 16, 16), np.nan, np.float32), pqkmeans_input()[0][:2]),
     "tables: contains NaN or Inf"),
    ("codewords not 3-D", lambda t: own("own.pqkmeans", "sdc_tables")(np.zeros((4, 4), np.float32)),
     r"codewords: expected an \(M, Ks, Ds\) array"),
    ("codewords Ks", lambda t: own("own.pqkmeans", "sdc_tables")(np.zeros((2, 300, 2), np.float32)),
     "needs Ks <= 256"),
    ("vote labels shape", lambda t: own("own.pqkmeans", "sparse_voting")(
        *pqkmeans_input(), np.zeros(3, np.int64), pqkmeans_input()[0][:2]),
     r"labels: expected shape \(50,\)"),
    ("vote labels range", lambda t: own("own.pqkmeans", "sparse_voting")(
        *pqkmeans_input(), np.full(50, 2), pqkmeans_input()[0][:2]), r"values must be in \[0, 2\)"),
    ("pqkmeans centers rows", lambda t: own("own.pqkmeans", "pqkmeans")(
        *pqkmeans_input(), 3, centers=pqkmeans_input()[0][:2]), "centers: expected 3 rows"),
    ("bkmeans centers rows", lambda t: own("own.bkmeans", "bkmeans")(
        np.zeros((10, 2), np.uint8), 3, centers=np.zeros((2, 2), np.uint8)),
     "centers: expected 3 rows"),
    # the pqkmeans-compatible API and the library adapters
    ("PQEncoder not fitted", lambda t: own("compat.pqkmeans_api", "PQEncoder")().transform(X),
     "This PQEncoder instance is not fitted yet"),
    ("PQEncoder codes", lambda t: fitted_encoder(
        own("compat.pqkmeans_api", "PQEncoder")(num_subdim=4, Ks=16)).inverse_transform(
        np.zeros(4)),
     "expected a 2-D integer array"),
    ("PQEncoder code range", lambda t: fitted_encoder(
        own("compat.pqkmeans_api", "PQEncoder")(num_subdim=4, Ks=16)).inverse_transform(
        np.full((2, 4), 16)), r"values must be in \[0, 16\)"),
    ("ITQEncoder not fitted",
     lambda t: own("compat.pqkmeans_api", "ITQEncoder")(num_bit=8).transform(X),
     "This ITQEncoder instance is not fitted yet"),
    ("PQKMeans encoder", lambda t: own("compat.pqkmeans_api", "PQKMeans")(object(), 3),
     "expected a fitted PQ encoder"),
    ("PQKMeans not fitted", lambda t: own("compat.pqkmeans_api", "PQKMeans")(
        fitted_encoder(own("compat.pqkmeans_api", "PQEncoder")(num_subdim=4, Ks=16)), 3).predict(
        np.zeros((2, 4), np.uint8)), "This PQKMeans instance is not fitted yet"),
    ("BKMeans not fitted", lambda t: own("compat.pqkmeans_api", "BKMeans")(3, 16).predict(
        np.zeros((2, 16), bool)), "This BKMeans instance is not fitted yet"),
    ("BKMeans codes 1-D",
     lambda t: own("compat.pqkmeans_api", "BKMeans")(3, 16).fit(np.zeros(16, bool)),
     "codes: expected a 2-D array"),
    ("BKMeans code width", lambda t: own("compat.pqkmeans_api", "BKMeans")(3, 16).fit(
        np.zeros((5, 12), bool)), "code width mismatch, expected 16 bits or 2 packed bytes"),
    ("BKMeans code dtype", lambda t: own("compat.pqkmeans_api", "BKMeans")(3, 16).fit(
        np.zeros((5, 16), np.float32)), "expected bits"),
    ("library ITQ before fit", lambda t: registry.create({"name": "pqkmeans_lib_itq"}).encode(X),
     "call fit() before encoding"),
]


def read_only():
    a = np.zeros(2, np.float32)
    a.flags.writeable = False
    return a


def hdf5_with_group(t):
    import h5py
    path = t / "g.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("grp")
    return path


def ann_file(t, distance="euclidean", neighbors=None):
    import h5py
    path = t / "ann.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=X)
        f.create_dataset("test", data=X[:4])
        if neighbors is not None:
            f.create_dataset("neighbors", data=neighbors)
        f.attrs["distance"] = distance
    return path


def pca_then_pq():
    """A faiss PCA 16 -> 8 then PQ: a linear transform, but not a rotation."""
    pca, pq = faiss.PCAMatrix(16, 8), faiss.IndexPQ(8, 4, 4)
    index = faiss.IndexPreTransform(pca, pq)
    KEEP_ALIVE.append((pca, pq))  # the SWIG wrapper does not own its parts
    return index


KEEP_ALIVE = []


def trained_pq_index(nbits):
    """A faiss IndexPQ claiming nbits per sub-code, marked trained (no training needed)."""
    index = faiss.IndexPQ(4, 4, nbits)
    index.is_trained = True
    return index


def fitted_encoder(encoder):
    """A pqkmeans-API encoder after fit (whose fit returns None, as the library's)."""
    encoder.fit(X)
    return encoder


def point_error(result):
    """The task reports a bad search as an error point (measured metrics kept): raise it."""
    (point,) = result["points"]
    if point["status"] != "ok":
        raise InputError(point["message"])
    return result


@pytest.mark.parametrize("call,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_message(call, words, tmp_path):
    """words: a literal, or a regular expression when it holds a backslash."""
    with pytest.raises(InputError, match=words if "\\" in words else re.escape(words)):
        call(tmp_path)


def test_no_compiler_found(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(native.NativeBuildError, match="no C\\+\\+ compiler found"):
        native.compiler()


def test_compiler_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(native.NativeBuildError, match="cannot be run"):
        native.build_key(native.source_dir())


def test_compiler_version_fails(monkeypatch):
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(native.NativeBuildError, match=r"\$ false --version"):
        native.build_key(native.source_dir())


def test_no_sources(tmp_path):
    with pytest.raises(native.NativeBuildError, match="no C\\+\\+ sources"):
        native.build(tmp_path, tmp_path / "cache")


def test_cppyy_cannot_load(monkeypatch, tmp_path):
    """A library cppyy refuses is rebuilt once, then the error is final (builds are faked:
    the loader's logic is under test, not the compiler)."""
    import cppyy
    builds = []

    def build():
        library = tmp_path / f"build{len(builds)}" / native.LIBRARY
        library.parent.mkdir()
        library.write_bytes(b"not a library")
        builds.append(library)
        return library

    def refuse(path):
        raise RuntimeError("unloadable library")

    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "build", build)
    monkeypatch.setattr(cppyy, "load_library", refuse)
    with pytest.raises(native.NativeBuildError, match="cppyy cannot load .*unloadable library"):
        native.load()
    assert len(builds) == 2 and not builds[0].parent.exists()  # the first was removed


def test_pqkmeans_library_missing(monkeypatch):
    adapters = __import__("benchpq.algorithms.adapters.pqkmeans_library", fromlist=["_library"])
    monkeypatch.setitem(sys.modules, "pqkmeans", None)  # import fails
    with pytest.raises(InputError, match="the pqkmeans library is not installed"):
        adapters._library()


def test_every_row_names_a_distinct_case():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert issubclass(ChecksumError, InputError) and issubclass(InputError, ValueError)
    assert isinstance(gzip, types.ModuleType)


def test_from_faiss_reads_a_temporary_index():
    """A faiss index passed as a temporary is freed as soon as nothing references it; the
    importers keep it alive while they read it (this used to crash in OPQ.from_faiss)."""
    from benchpq.algorithms.own.opq import OPQ
    from benchpq.algorithms.own.pq import PQ

    def trained(spec):
        index = faiss.index_factory(16, spec)
        index.train(np.tile(X, (2, 1)))
        return index

    pq = PQ.from_faiss(trained("PQ4x4"))
    opq = OPQ.from_faiss(trained("OPQ4,PQ4x4"))
    assert pq.encode(X).shape == opq.encode(X).shape == (300, 4)


def test_h5py_missing(monkeypatch):
    from benchpq.datasets import hdf5
    monkeypatch.setitem(sys.modules, "h5py", None)  # import fails
    with pytest.raises(InputError, match="reading .hdf5 files needs h5py"):
        hdf5._h5py()
