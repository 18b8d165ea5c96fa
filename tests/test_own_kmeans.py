"""Our C++ k-means (plugin ``kmeans``): monotone objective, k-means++ vs random,
agreement with faiss, determinism, subsampling, empty clusters, bad input."""
import faiss
import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.kmeans import KMeans
from benchpq.api import Clusterer
from benchpq.checks import InputError
from benchpq.measure import metrics


@pytest.fixture(scope="module")
def clustered():
    """3000 x 16 float32 mixture of 25 well-separated Gaussians of unequal sizes, and its labels."""
    rng = np.random.default_rng(11)
    centres = rng.uniform(-50, 50, (25, 16))
    truth = rng.choice(25, 3000, p=rng.dirichlet(np.full(25, 3.0)))
    return (centres[truth] + rng.normal(0, 1, (3000, 16))).astype(np.float32), truth


def test_plugin_contract(clustered):
    x, truth = clustered
    plugin = registry.create({"name": "kmeans", "seed": 0})
    assert isinstance(plugin, Clusterer) and type(plugin) is KMeans
    labels = plugin.fit_predict(x, 25)
    assert labels.shape == (len(x),) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 25
    assert metrics.ari(truth, labels) > 0.9
    extra = plugin.extra_metrics()
    assert extra["iterations"] == len(plugin.objectives) <= 20
    assert extra["objective"] == plugin.objectives[-1]
    # the members' means fit at least as well as the last iteration's centroids
    assert metrics.clustering_error(x, labels, 25) <= extra["objective"] / len(x) * 1.001
    assert plugin.centroids.shape == (25, 16) and plugin.model_bytes == 25 * 16 * 4
    assert plugin.codes_bytes == x.nbytes and plugin.code_bits == 0


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_objective_never_increases(clustered, siftsmall_dir, init):
    from benchpq.datasets.vecs import read_vecs
    sift = np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs")[:4000])
    x, _ = clustered
    duplicated = np.repeat(x[:200], 10, axis=0)  # ties and empty clusters
    for data, k in ((x, 25), (x, 200), (sift, 64), (duplicated, 150)):
        plugin = KMeans(niter=30, init=init, seed=1, max_points_per_centroid=None)
        plugin.fit_predict(data, k)
        obj = plugin.objectives
        assert len(obj) >= 2 and np.all(obj > 0)
        assert np.all(np.diff(obj) <= 1e-6 * obj[1:]), obj


def test_kmeanspp_beats_random_on_clustered_data(clustered):
    x, _ = clustered
    errors = {init: np.mean([metrics.clustering_error(
        x, KMeans(niter=10, init=init, seed=s).fit_predict(x, 25), 25) for s in range(5)])
        for init in ("k-means++", "random")}
    assert errors["k-means++"] <= errors["random"]
    first = {init: KMeans(niter=1, init=init, seed=0) for init in ("k-means++", "random")}
    for plugin in first.values():
        plugin.fit_predict(x, 25)
    assert first["k-means++"].objectives[0] < first["random"].objectives[0]


def test_agrees_with_faiss(siftsmall_dir):
    from benchpq.datasets.vecs import read_vecs
    x = np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))
    ours = metrics.clustering_error(x, KMeans(seed=0, init="random").fit_predict(x, 50), 50)
    km = faiss.Kmeans(x.shape[1], 50, niter=20, seed=0)
    km.train(x)
    theirs = metrics.clustering_error(x, km.index.search(x, 1)[1][:, 0], 50)
    assert ours == pytest.approx(theirs, rel=0.02)


def test_deterministic_for_a_seed_whatever_the_threads(clustered):
    x, _ = clustered
    native.set_num_threads(1)
    one = KMeans(seed=5)
    labels = one.fit_predict(x, 30)
    native.set_num_threads(2)
    two = KMeans(seed=5)
    assert np.array_equal(two.fit_predict(x, 30), labels)
    assert np.array_equal(one.centroids, two.centroids)
    assert np.array_equal(one.objectives, two.objectives)


def test_subsampling_trains_on_fewer_points(clustered):
    x, _ = clustered
    full = KMeans(seed=0, max_points_per_centroid=None, niter=5)
    sampled = KMeans(seed=0, max_points_per_centroid=20, niter=5)  # 25 * 20 = 500 points
    full.fit_predict(x, 25)
    labels = sampled.fit_predict(x, 25)
    assert labels.shape == (len(x),)
    # objective sums over the 500 training points only
    assert sampled.objectives[-1] < 0.3 * full.objectives[-1]


def test_empty_clusters_are_reseeded():
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(400, 8)).astype(np.float32)
    x = np.concatenate([np.repeat(distinct[:5], 200, axis=0), distinct])  # 1000 copies of 5 rows
    plugin = KMeans(init="random", seed=3, niter=25, max_points_per_centroid=None)
    labels = plugin.fit_predict(x, 60)
    assert len(np.unique(labels)) == 60


def test_bad_input_is_rejected_before_cpp(clustered, monkeypatch):
    x, _ = clustered
    with pytest.raises(InputError, match="init: expected one of"):
        KMeans(init="kmeans++")
    with pytest.raises(InputError, match="niter: must be >= 1"):
        KMeans(niter=0)
    with pytest.raises(InputError, match="max_points_per_centroid: must be >= 1"):
        KMeans(max_points_per_centroid=0)

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(InputError, match=r"more clusters \(50\) than training vectors \(10\)"):
        KMeans().fit_predict(x[:10], 50)
    with pytest.raises(InputError, match="n_clusters: must be >= 1"):
        KMeans().fit_predict(x, 0)
    with pytest.raises(InputError, match="n_clusters: expected an integer"):
        KMeans().fit_predict(x, 2.5)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InputError, match=r"x: contains NaN \(first in row 4\)"):
        KMeans().fit_predict(bad, 5)
    with pytest.raises(InputError, match="expected a 2-D array"):
        KMeans().fit_predict(x[0], 5)
    with pytest.raises(InputError, match="seed: must be"):
        KMeans(seed=-3).fit_predict(x, 5)
