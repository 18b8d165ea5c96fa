"""Our Bk-means (plugin ``bkmeans``, ``benchpq.algorithms.own.bkmeans``): Hamming assignment and
majority vote against numpy definitions, equality with the pqkmeans library from the same initial
centres, error within 1% of the library's on siftsmall, empty clusters, determinism,
pickling, bad input rejected before C++."""
import pickle

import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.bkmeans import BKMeansClusterer, bkmeans, bkmeans_assign, majority_vote
from benchpq.algorithms.own.itq import ITQ
from benchpq.api import Clusterer
from benchpq.checks import InputError
from benchpq.datasets.vecs import read_vecs
from benchpq.measure import metrics

pqk = pytest.importorskip("pqkmeans")


@pytest.fixture(scope="module")
def sift(siftsmall_dir):
    return np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))


@pytest.fixture(scope="module")
def sift_codes(sift):
    """64-bit ITQ codes of siftsmall, packed."""
    return ITQ(64, 20, 0).fit(sift).encode(sift)


POPCOUNT = np.array([bin(v).count("1") for v in range(256)], np.int64)


def unpack(codes):
    return np.unpackbits(codes, axis=1, bitorder="little")


def hamming_reference(codes, centers):
    """(n, k) Hamming distances: popcount of the XOR, byte by byte."""
    return POPCOUNT[codes[:, None, :] ^ centers[None, :, :]].sum(-1)


def majority_reference(codes, labels, centers):
    """Majority vote by its definition: 1 if more than half the members have the bit, 0 if
    fewer than half, the previous bit on a tie; empty clusters keep their centre."""
    bits, old = unpack(codes).astype(np.int64), unpack(centers)
    new = old.copy()
    for c in range(len(centers)):
        members = bits[labels == c]
        if len(members):
            twice, size = 2 * members.sum(0), len(members)
            new[c] = np.where(twice > size, 1, np.where(twice < size, 0, old[c]))
    return np.packbits(new, axis=1, bitorder="little")


def random_codes(seed, n, nbytes, k):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, nbytes)).astype(np.uint8)
    return codes, codes[rng.choice(n, k, replace=False)].copy()


def test_plugin_is_a_registered_clusterer(sift):
    plugin = registry.create({"name": "bkmeans", "num_bit": 32, "seed": 0, "train_size": 5000})
    assert type(plugin) is BKMeansClusterer and isinstance(plugin, Clusterer)
    labels = plugin.fit_predict(sift, 40)
    assert labels.shape == (len(sift),) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 40
    extra = plugin.extra_metrics()
    assert {"encoder_train_s", "encode_s", "kmeans_s", "iterations", "iter_s", "objective",
            "quantization_loss", "state_bytes", "n_train"} <= set(extra)
    assert extra["n_train"] == 5000 and extra["quantization_loss"] > 0
    assert plugin.code_bits == 32 and plugin.codes_bytes == len(sift) * 4
    assert plugin.model_bytes == 128 * 4 + 128 * 32 * 4 + 40 * 4


@pytest.mark.parametrize("nbytes,k", [(1, 5), (2, 40), (3, 17), (4, 100), (8, 2100),
                                      (12, 33), (16, 70), (32, 9), (40, 5)])
def test_assignment_equals_brute_force_hamming(nbytes, k):  # k = 2100: two centre blocks
    codes, centers = random_codes(nbytes * k, 2200, nbytes, k)
    centers[k - 1] = centers[0]  # duplicate centres: exact ties go to the smaller index
    labels, distances = bkmeans_assign(codes, centers)
    ref = hamming_reference(codes, centers)
    assert np.array_equal(labels, ref.argmin(axis=1))
    assert np.array_equal(distances, ref.min(axis=1))


@pytest.mark.parametrize("nbytes,k", [(8, 30), (3, 5), (16, 64)])
def test_majority_vote_equals_its_definition(nbytes, k):
    codes, centers = random_codes(k, 2000, nbytes, k)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, k - 1, len(codes))  # cluster k-1 stays empty
    labels[:2] = 0  # some even-sized clusters: ties keep the previous bit
    new, changed = majority_vote(codes, labels, centers)
    assert np.array_equal(new, majority_reference(codes, labels, centers))
    assert np.array_equal(new[k - 1], centers[k - 1])
    assert changed == int((new != centers).any(axis=1).sum())
    pair = np.array([[0b0000_0011], [0b0000_0101]], np.uint8)  # two members: tie on bits 1, 2
    out, _ = majority_vote(pair, np.zeros(2, np.int64), np.array([[0b0000_0010]], np.uint8))
    assert out[0, 0] == 0b0000_0011  # bit 0: both 1; bit 1: tie, kept 1; bit 2: tie, kept 0


def test_equals_the_library_from_the_same_initial_centres(sift_codes):
    bits = unpack(sift_codes)
    for k, iteration in ((10, 1), (40, 5), (100, 12)):
        lib = pqk.clustering.BKMeans(k=k, input_dim=64, iteration=iteration)
        lib.fit(bits)
        ours = bkmeans(sift_codes, k, iteration, init="pqkmeans", empty="keep", seed=0)
        assert np.array_equal(ours.labels, np.array(lib.labels_))
        # the library votes once more after its last assignment
        voted, _ = majority_vote(sift_codes, ours.labels, ours.centers)
        lib_centers = np.packbits(np.array(lib.cluster_centers_, np.uint8), axis=1,
                                  bitorder="little")
        assert np.array_equal(voted, lib_centers)


def test_error_within_one_percent_of_the_library(sift):
    """Same encoder (codes), k, iterations and seed; ours with the library's initial draw and
    with its own (k distinct codes)."""
    errors = {}
    for name, init in (("bkmeans", "pqkmeans"), ("bkmeans", "random"),
                       ("pqkmeans_lib_bkmeans", None)):
        params = {"name": name, "num_bit": 64, "niter": 20, "seed": 0,
                                  "train_size": None, "itq_iter": 20}
        if init:
            params["init"] = init
        plugin = registry.create(params)
        errors[init] = metrics.clustering_error(sift, plugin.fit_predict(sift, 100), 100)
    assert errors["pqkmeans"] <= errors[None] * 1.01
    assert errors["random"] <= errors[None] * 1.01


def test_run_is_consistent_and_monotone(sift_codes):
    for init in ("random", "pqkmeans"):
        r = bkmeans(sift_codes, 300, 15, init=init, seed=4)
        labels, distances = bkmeans_assign(sift_codes, r.centers)
        assert np.array_equal(r.labels, labels)  # labels: nearest final centre
        assert r.objective[-1] == distances.sum()
        assert np.all(np.diff(r.objective) <= 0)  # assignment and vote never increase it
        assert len(r.iter_seconds) == r.iterations <= 15
    distinct = bkmeans(sift_codes, 500, 1, init="random", seed=1)
    assert len(np.unique(distinct.centers, axis=0)) == 500


def test_empty_clusters_take_the_farthest_points():
    codes, centers = random_codes(3, 500, 4, 6)
    centers[2] = centers[4]  # cluster 4 is empty after the first assignment
    labels0, dist0 = bkmeans_assign(codes, centers)
    assert not np.any(labels0 == 4)
    kept = bkmeans(codes, 6, 2, empty="keep", centers=centers)
    assert np.array_equal(kept.centers[4], centers[4])
    moved = bkmeans(codes, 6, 2, empty="farthest", centers=centers)
    order = np.lexsort((np.arange(len(codes)), -dist0))  # farthest first, then smaller id
    counts = np.bincount(labels0, minlength=6)
    far = next(i for i in order if counts[labels0[i]] >= 2 and dist0[i] > 0)
    relabelled = labels0.copy()
    relabelled[far] = 4
    assert np.array_equal(moved.centers, majority_reference(codes, relabelled, centers))
    assert np.array_equal(moved.centers[4], codes[far])
    few = np.repeat(codes[:3], 10, axis=0)  # 3 distinct codes, 5 clusters: 2 stay empty
    r = bkmeans(few, 5, 5, init="random", seed=0)
    assert metrics.empty_clusters(r.labels, 5) == 2


def test_deterministic_whatever_the_threads(sift_codes):
    runs = []
    for threads in (1, 2):
        native.set_num_threads(threads)
        runs.append(bkmeans(sift_codes, 100, 10, init="random", seed=5))
    assert np.array_equal(runs[0].labels, runs[1].labels)
    assert np.array_equal(runs[0].centers, runs[1].centers)


def test_plugin_pickles(sift):
    plugin = BKMeansClusterer(num_bit=16, train_size=2000, seed=0)
    labels = plugin.fit_predict(sift[:3000], 12)
    clone = pickle.loads(pickle.dumps(plugin))
    assert np.array_equal(clone.result.labels, labels)
    assert np.array_equal(clone.encoder.encode(sift[:3000]), plugin.encoder.encode(sift[:3000]))


def test_bad_input_is_rejected_before_cpp(sift_codes, monkeypatch):
    with pytest.raises(InputError, match="num_bit: must be a multiple of 8"):
        BKMeansClusterer(num_bit=30)
    with pytest.raises(InputError, match="init: expected one of"):
        BKMeansClusterer(init="k-means++")

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(InputError, match=r"expected dtype uint8 \(packed bits\), got uint64"):
        bkmeans(sift_codes.view(np.uint64), 10)
    with pytest.raises(InputError, match="expected dtype uint8"):
        bkmeans(unpack(sift_codes).astype(bool), 10)
    with pytest.raises(InputError, match=r"k=11 is larger than the number of codes \(10\)"):
        bkmeans(sift_codes[:10], 11)
    with pytest.raises(InputError,
                       match=r"code width mismatch, expected 8 bytes \(64 bits\), got 4"):
        bkmeans(sift_codes, 4, centers=sift_codes[:4, :4])
    with pytest.raises(InputError, match="niter: must be >= 1"):
        bkmeans(sift_codes, 4, niter=0)
    with pytest.raises(InputError, match="expected a 2-D array"):
        bkmeans_assign(sift_codes[0], sift_codes[:3])
    with pytest.raises(InputError, match="labels: expected"):
        majority_vote(sift_codes, np.zeros(5, np.int64), sift_codes[:3])
    x = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    bad = x.copy()
    bad[9, 0] = np.inf
    with pytest.raises(InputError, match=r"x: contains Inf \(first in row 9\)"):
        BKMeansClusterer(num_bit=16).fit_predict(bad, 5)
    with pytest.raises(InputError, match="num_bit=64 exceeds the dimension D=32"):
        BKMeansClusterer(num_bit=64).fit_predict(x, 5)
    with pytest.raises(InputError, match=r"k=301 is larger than the number of codes \(300\)"):
        BKMeansClusterer(num_bit=16).fit_predict(x, 301)
