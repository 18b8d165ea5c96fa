"""Our PQk-means (plugin ``pqkmeans``, ``benchpq.algorithms.own.pqkmeans``): assignment and sparse
voting against numpy definitions, equality with the pqkmeans library given the same initial
centres, error within 1% of the library's on siftsmall, empty clusters, determinism,
pickling, bad input rejected before C++. The pqkmeans-compatible API: test_pqkmeans_api.py."""
import pickle

import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.bkmeans import BKMeansClusterer
from benchpq.algorithms.own.pqkmeans import (
    PQKMeansClusterer,
    pqkmeans,
    pqkmeans_assign,
    sdc_tables,
    sparse_voting,
    train_pq_encoder,
)
from benchpq.api import Clusterer
from benchpq.checks import InputError
from benchpq.datasets.vecs import read_vecs
from benchpq.measure import metrics
from benchpq.store.mapped import release_pages

pqk = pytest.importorskip("pqkmeans")


@pytest.fixture(scope="module")
def sift(siftsmall_dir):
    return np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))


@pytest.fixture(scope="module")
def sift_codes(sift):
    """Our PQ M=4 Ks=256 trained on siftsmall, its codes and SDC tables."""
    pq = train_pq_encoder(sift, 4, 256, 10, None, 0)
    return pq, pq.encode(sift), sdc_tables(pq.codewords)


def random_codes(seed, n, M, Ks, k):
    """Random codes, tables from random codewords, and k centres taken from the codes."""
    rng = np.random.default_rng(seed)
    codewords = rng.normal(size=(M, Ks, 3)).astype(np.float32)
    codes = rng.integers(0, Ks, (n, M)).astype(np.uint8)
    return codes, sdc_tables(codewords), codewords, codes[rng.choice(n, k, replace=False)].copy()


def sdc_reference(codes, tables, centers):
    """(n, k) float32 symmetric distances summed in sub-space order, as the C++ and the library."""
    dist = np.zeros((len(codes), len(centers)), np.float32)
    for m in range(tables.shape[0]):
        dist += tables[m][codes[:, m][:, None], centers[:, m][None, :]]
    return dist


def voting_reference(codes, tables, labels, centers):
    """Sparse voting by its definition, in float64: argmin_c sum_a h[a] T_m[a, c]."""
    out = centers.copy()
    for c in range(len(centers)):
        members = codes[labels == c]
        if len(members) == 0:
            continue
        for m in range(tables.shape[0]):
            hist = np.bincount(members[:, m], minlength=tables.shape[1]).astype(np.float64)
            out[c, m] = np.argmin(hist @ tables[m].astype(np.float64))
    return out


def test_plugin_is_a_registered_clusterer(sift):
    plugin = registry.create({"name": "pqkmeans", "M": 4, "seed": 0, "train_size": 5000})
    assert type(plugin) is PQKMeansClusterer and isinstance(plugin, Clusterer)
    labels = plugin.fit_predict(sift, 50)
    assert labels.shape == (len(sift),) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 50
    extra = plugin.extra_metrics()
    assert {"encoder_train_s", "encode_s", "kmeans_s", "iterations", "iter_s", "objective",
            "state_bytes", "n_train"} <= set(extra)
    assert 1 <= extra["iterations"] <= 20 and extra["n_train"] == 5000
    assert plugin.code_bits == 32 and plugin.codes_bytes == len(sift) * 4
    assert plugin.model_bytes == 4 * 256 * 32 * 4 + 50 * 4


def test_tables_equal_squared_codeword_distances():
    _, tables, codewords, _ = random_codes(0, 10, 3, 16, 2)
    ref = ((codewords[:, :, None, :].astype(np.float64) - codewords[:, None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(tables, ref, rtol=1e-6, atol=1e-6)
    assert tables.dtype == np.float32 and np.all(np.diagonal(tables, axis1=1, axis2=2) == 0)


@pytest.mark.parametrize("M,Ks,k", [(1, 16, 5), (3, 256, 37), (4, 256, 600), (8, 64, 130),
                                    (16, 256, 17), (5, 200, 300)])
def test_assignment_equals_sdc_argmin(M, Ks, k):
    codes, tables, _, centers = random_codes(M * k, 700, M, Ks, k)
    centers[k // 2] = centers[0]  # duplicate centres: exact ties go to the smaller index
    labels, distances = pqkmeans_assign(codes, tables, centers)
    ref = sdc_reference(codes, tables, centers)
    assert np.array_equal(labels, ref.argmin(axis=1))  # argmin: first of equal minima
    assert np.array_equal(distances, ref.min(axis=1))
    assert not np.any(labels == k // 2)


@pytest.mark.parametrize("M,Ks,k", [(4, 256, 20), (2, 16, 7), (8, 64, 50)])
def test_sparse_voting_equals_its_definition(M, Ks, k):
    codes, tables, _, centers = random_codes(k, 900, M, Ks, k)
    labels = np.random.default_rng(1).integers(0, k - 1, len(codes))  # cluster k-1 stays empty
    new, changed = sparse_voting(codes, tables, labels, centers)
    ref = voting_reference(codes, tables, labels, centers)
    assert np.array_equal(new[k - 1], centers[k - 1])  # empty: kept
    assert changed == int((new != centers).any(axis=1).sum())
    for c in range(k - 1):  # equal, except between codewords whose votes tie within rounding
        members = codes[labels == c]
        for m in range(M):
            hist = np.bincount(members[:, m], minlength=Ks).astype(np.float64)
            votes = hist @ tables[m].astype(np.float64)
            assert votes[new[c, m]] <= votes.min() * (1 + 1e-6) + 1e-9
    assert (new == ref).mean() > 0.99


def test_equals_the_library_from_the_same_initial_centres(sift_codes):
    pq, codes, tables = sift_codes
    sub = codes[:3000]
    for k, iteration in ((10, 1), (25, 6), (64, 10)):
        lib = pqk.clustering.PQKMeans(encoder=pq, k=k, iteration=iteration)
        lib.fit(sub)
        ours = pqkmeans(sub, tables, k, iteration, init="pqkmeans", empty="keep", seed=0)
        assert np.array_equal(ours.labels, np.array(lib.labels_))
        assert np.array_equal(ours.centers, np.array(lib.cluster_centers_, np.uint8))
    # given centres: the library's initial ones (after 1 iteration its centres are the initial)
    lib = pqk.clustering.PQKMeans(encoder=pq, k=30, iteration=1)
    lib.fit(sub)
    start = np.array(lib.cluster_centers_, np.uint8)
    given = pqkmeans(sub, tables, 30, 5, empty="keep", centers=start)
    lib5 = pqk.clustering.PQKMeans(encoder=pq, k=30, iteration=5)
    lib5.fit(sub)
    assert np.array_equal(given.labels, np.array(lib5.labels_))


def test_error_within_one_percent_of_the_library(sift):
    """Same encoder (codes), k, iterations and seed; ours with the library's initial draw and
    with its own (k distinct codes)."""
    errors = {}
    for name, init in (("pqkmeans", "pqkmeans"), ("pqkmeans", "random"),
                       ("pqkmeans_lib_pqkmeans", None)):
        params = {"name": name, "M": 4, "niter": 20, "seed": 0,
                                  "train_size": None, "encoder_iter": 10}
        if init:
            params["init"] = init
        plugin = registry.create(params)
        errors[init] = metrics.clustering_error(sift, plugin.fit_predict(sift, 100), 100)
    assert errors["pqkmeans"] <= errors[None] * 1.01
    assert errors["random"] <= errors[None] * 1.01


def test_run_is_consistent_and_monotone(sift_codes):
    _, codes, tables = sift_codes
    for init in ("random", "pqkmeans"):
        r = pqkmeans(codes, tables, 200, 15, init=init, seed=3)
        labels, _ = pqkmeans_assign(codes, tables, r.centers)
        assert np.array_equal(r.labels, labels)  # labels: nearest final centre
        assert np.all(np.diff(r.objective) <= 1e-6 * r.objective[1:])
        assert len(r.iter_seconds) == r.iterations == len(r.objective) <= 15
        assert r.objective[-1] == pytest.approx(
            sdc_reference(codes, tables, r.centers).min(axis=1).astype(np.float64).sum(), rel=1e-6)
    distinct = pqkmeans(codes, tables, 300, 1, init="random", seed=1)
    assert len(np.unique(distinct.centers, axis=0)) == 300


def test_empty_clusters_take_the_farthest_points():
    codes, tables, _, centers = random_codes(5, 400, 4, 32, 6)
    centers[3] = centers[1]  # cluster 3 is empty after the first assignment
    labels0, dist0 = pqkmeans_assign(codes, tables, centers)
    assert not np.any(labels0 == 3)
    kept = pqkmeans(codes, tables, 6, 2, empty="keep", centers=centers)
    assert np.array_equal(kept.centers[3], centers[3])
    moved = pqkmeans(codes, tables, 6, 2, empty="farthest", centers=centers)
    order = np.lexsort((np.arange(len(codes)), -dist0.astype(np.float64)))  # far first, id
    counts = np.bincount(labels0, minlength=6)
    far = next(i for i in order if counts[labels0[i]] >= 2 and dist0[i] > 0)
    relabelled = labels0.copy()
    relabelled[far] = 3
    assert np.array_equal(moved.centers, voting_reference(codes, tables, relabelled, centers))
    assert np.array_equal(moved.centers[3], codes[far])


def test_deterministic_whatever_the_threads(sift_codes):
    _, codes, tables = sift_codes
    runs = []
    for threads in (1, 2):
        native.set_num_threads(threads)
        runs.append(pqkmeans(codes, tables, 100, 10, init="random", seed=7))
    assert np.array_equal(runs[0].labels, runs[1].labels)
    assert np.array_equal(runs[0].objective, runs[1].objective)
    other = pqkmeans(codes, tables, 100, 10, init="random", seed=8)
    assert not np.array_equal(other.centers, runs[0].centers)


def rss_file_kib():
    """Resident file-backed memory of this process (KiB), or None where not reported."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return None


def test_memory_mapped_input_is_streamed(tmp_path):
    x = np.random.default_rng(0).normal(size=(200_000, 32)).astype(np.float32)  # 25.6 MB
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    if rss_file_kib() is None:
        pytest.skip("no RssFile in /proc/self/status")
    size_kib = x.nbytes // 1024
    assert float(np.asarray(mm).sum()) == pytest.approx(float(x.sum()), rel=1e-3)  # all resident
    before = rss_file_kib()
    assert release_pages(np.asarray(mm)[1000:150_000]) and not release_pages(x)
    assert before - rss_file_kib() > 0.6 * size_kib
    for cls, params in ((PQKMeansClusterer, {"M": 4, "Ks": 16}), (BKMeansClusterer,
                                                                   {"num_bit": 16})):
        np.asarray(mm).sum()
        before = rss_file_kib()
        streamed = cls(train_size=5000, seed=0, niter=3, **params).fit_predict(mm, 10)
        assert before - rss_file_kib() > 0.8 * size_kib  # the floats were let go block by block
        assert np.array_equal(streamed, cls(train_size=5000, seed=0, niter=3,
                                            **params).fit_predict(x, 10))


def test_plugin_pickles(sift):
    plugin = PQKMeansClusterer(M=4, Ks=16, train_size=1000, seed=0)
    labels = plugin.fit_predict(sift[:2000], 12)
    assert np.array_equal(pickle.loads(pickle.dumps(plugin)).result.labels, labels)


def test_bad_input_is_rejected_before_cpp(sift_codes, monkeypatch):
    pq, codes, tables = sift_codes
    with pytest.raises(InputError, match=r"Ks: must be \[2, 256\]"):
        PQKMeansClusterer(Ks=512)
    with pytest.raises(InputError, match="init: expected one of"):
        PQKMeansClusterer(init="kmeans++")
    with pytest.raises(InputError, match="empty: expected one of"):
        PQKMeansClusterer(empty="split")

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(InputError, match="expected dtype uint8"):
        pqkmeans(codes.astype(np.uint16), tables, 10)
    with pytest.raises(InputError, match="expected dtype uint8"):
        pqkmeans(codes.astype(np.float32), tables, 10)
    with pytest.raises(InputError, match="code width mismatch, expected M=4 sub-codes, got 8"):
        pqkmeans(np.zeros((100, 8), np.uint8), tables, 10)
    with pytest.raises(InputError, match=r"k=101 is larger than the number of codes \(100\)"):
        pqkmeans(codes[:100], tables, 101)
    with pytest.raises(InputError, match="k: must be >= 1"):
        pqkmeans(codes, tables, 0)
    with pytest.raises(InputError, match="out of range for Ks=16"):
        pqkmeans(codes, tables[:, :16, :16], 10)
    with pytest.raises(InputError, match="centers: expected 10 rows"):
        pqkmeans(codes, tables, 10, centers=codes[:9])
    with pytest.raises(InputError, match="tables: contains NaN"):
        pqkmeans(codes, np.full_like(tables, np.nan), 10)
    with pytest.raises(InputError, match="labels: values must be in"):
        sparse_voting(codes, tables, np.full(len(codes), 10), codes[:10])
    with pytest.raises(InputError, match="expected a numpy array"):
        pqkmeans_assign(codes.tolist(), tables, codes[:3])
    with pytest.raises(InputError, match="PQk-means needs Ks <= 256"):
        sdc_tables(np.zeros((2, 300, 4), np.float32))
    x = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(InputError, match=r"x: contains NaN \(first in row 7\)"):
        PQKMeansClusterer(M=4, Ks=16).fit_predict(bad, 5)
    with pytest.raises(InputError, match="M=5 does not divide the dimension D=32"):
        PQKMeansClusterer(M=5, Ks=16).fit_predict(x, 5)
    with pytest.raises(InputError, match=r"k=301 is larger than the number of codes \(300\)"):
        PQKMeansClusterer(M=4, Ks=16).fit_predict(x, 301)
    with pytest.raises(InputError, match=r"more codewords \(256\) than training vectors \(200\)"):
        PQKMeansClusterer(M=4, Ks=256).fit_predict(x[:200], 5)
