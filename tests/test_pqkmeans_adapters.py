"""The pqkmeans library's PQKMeans, BKMeans and ITQEncoder as plugins, and the clustering task
running them beside ours: the plugin contract, the recorded metrics, bad configs."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchpq import registry
from benchpq.algorithms.adapters.pqkmeans_library import LibraryBKMeans, LibraryITQ, LibraryPQKMeans
from benchpq.api import Clusterer, Searcher
from benchpq.checks import InputError
from benchpq.datasets.dataset import Dataset
from benchpq.measure.tasks import run_cluster, run_search

pytest.importorskip("pqkmeans")
CONF = Path(__file__).resolve().parent.parent / "conf" / "algorithm"
CLUSTERERS = ["pqkmeans", "pqkmeans_lib_pqkmeans", "bkmeans", "pqkmeans_lib_bkmeans"]


def config(name, **overrides):
    out = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    out.update(overrides)
    return out


@pytest.fixture(scope="module")
def mixture():
    """A labelled 5000 x 32 Gaussian mixture of 8 components (labels for NMI / ARI), queries."""
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 6, (8, 32))
    truth = rng.integers(0, 8, 5050)
    x = (centres[truth] + rng.normal(0, 1, (5050, 32))).astype(np.float32)
    return Dataset("mixture", learn=x[:5000], base=x[:5000], query=x[5000:],
                   labels=truth[:5000])


def test_plugins_are_registered_with_their_capabilities():
    assert registry.get("pqkmeans_lib_pqkmeans") is LibraryPQKMeans
    assert registry.get("pqkmeans_lib_bkmeans") is LibraryBKMeans
    assert registry.get("pqkmeans_lib_itq") is LibraryITQ
    assert issubclass(LibraryPQKMeans, Clusterer) and issubclass(LibraryBKMeans, Clusterer)
    assert issubclass(LibraryITQ, Searcher)



def metrics_of(result: dict) -> dict:
    """A task result's one point's metrics, with its build's."""
    (point,) = result["points"]
    assert point["status"] == "ok", point["message"]
    return {**result["build"], **point["metrics"]}

@pytest.mark.parametrize("name", CLUSTERERS)
def test_cluster_task_records_the_clustering_metrics(name, mixture):
    overrides = {"M": 4, "Ks": 64} if name in ("pqkmeans", "pqkmeans_lib_pqkmeans") else \
        {"num_bit": 16}
    plugin = registry.create(config(name, seed=0, niter=10, **overrides))
    out = metrics_of(run_cluster(plugin, mixture, {"name": "cluster", "n_clusters": 8},
                                 threads=2))
    for key in ("error", "cluster_s", "encode_s", "encoder_train_s", "kmeans_s", "iterations",
                "iter_s", "codes_bytes", "empty_clusters", "nmi", "ari", "peak_rss_bytes",
                "cluster_peak_rss_bytes", "cluster_rss_delta_bytes"):
        assert key in out, key
    assert out["codes_bytes"] == 5000 * (4 if "M" in overrides else 2)
    assert out["nmi"] > 0.6 and out["error"] > 0


@pytest.mark.filterwarnings("ignore:One of the clusters is empty")  # scipy's kmeans2, in PQEncoder
@pytest.mark.parametrize("name", ["pqkmeans_lib_pqkmeans", "pqkmeans_lib_bkmeans"])
def test_library_encoders_run_end_to_end(name, mixture):
    extra = {"M": 4, "Ks": 32} if name == "pqkmeans_lib_pqkmeans" else {"num_bit": 16}
    plugin = registry.create(config(name, encoder="library", seed=1, niter=5, **extra))
    labels = plugin.fit_predict(mixture.base, 8)
    assert labels.shape == (5000,) and labels.dtype == np.int64 and labels.max() < 8


def test_same_encoder_same_seed_same_labels(mixture):
    """With the library's draw (our init: pqkmeans, seed 0) and its empty rule, ours and the
    library's clusterers give the very same labels on the very same codes."""
    for ours, theirs, extra in (("pqkmeans", "pqkmeans_lib_pqkmeans", {"M": 8, "Ks": 16}),
                                ("bkmeans", "pqkmeans_lib_bkmeans", {"num_bit": 32})):
        a = registry.create(config(ours, seed=0, niter=8, empty="keep", **extra))
        b = registry.create(config(theirs, seed=0, niter=8, **extra))
        assert np.array_equal(a.fit_predict(mixture.base, 50), b.fit_predict(mixture.base, 50))


def test_library_itq_searcher(mixture):
    plugin = registry.create(config("pqkmeans_lib_itq", num_bit=16, seed=0))
    out = metrics_of(run_search(plugin, mixture, {"name": "search", "k": 10,
                                                  "recall_at": [1, 10], "k_recall": [10]},
                                threads=1))
    assert out["code_bits"] == 16 and out["codes_bytes"] == 5000 * 2
    assert out["quantization_loss"] > 0 and 0 <= out["recall@1"] <= out["recall@10"] <= 1
    ours = registry.create(config("itq", num_bit=16, seed=0))
    mine = metrics_of(run_search(ours, mixture, {"name": "search", "k": 10,
                                                 "recall_at": [1, 10], "k_recall": [10]},
                                 threads=1))
    assert mine["quantization_loss"] <= out["quantization_loss"] * 1.01


def test_bad_configs_are_rejected():
    with pytest.raises(InputError, match="num_bit: the pqkmeans library's BKMeans supports"):
        LibraryBKMeans(num_bit=24)
    with pytest.raises(InputError, match=r"subspace_dim: must be one of \(2, 4\) for num_bit=8"):
        LibraryBKMeans(num_bit=8)
    with pytest.raises(InputError, match="encoder: expected one of"):
        LibraryPQKMeans(encoder="faiss")
    with pytest.raises(InputError, match=r"Ks: must be \[2, 256\]"):
        LibraryPQKMeans(Ks=1024)
    x = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    with pytest.raises(InputError, match=r"k=101 is larger than the number of codes \(100\)"):
        LibraryPQKMeans(M=4, Ks=16).fit_predict(x, 101)
    with pytest.raises(InputError, match="num_bit=64 exceeds the dimension D=16"):
        LibraryBKMeans(num_bit=64).fit_predict(x, 3)
    with pytest.raises(InputError, match="num_bit: must be a multiple of 8"):
        LibraryITQ(num_bit=10)
    x[3, 3] = np.nan
    with pytest.raises(InputError, match="x: contains NaN"):
        LibraryBKMeans(num_bit=8, subspace_dim=4).fit_predict(x, 3)
