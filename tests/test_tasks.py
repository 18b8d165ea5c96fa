"""Tasks measure what docs/metrics.md defines, on plugins whose answers are known."""
import numpy as np
import pytest

from benchpq.api import Clusterer, Quantizer, Searcher
from benchpq.checks import InputError
from benchpq.datasets import Dataset
from benchpq.measure.tasks import Phases, run_cluster, run_search


class ExactSearch(Quantizer, Searcher):
    """Brute force over raw vectors; its 'codes' are the vectors themselves."""
    name = "exact"
    code_bits = 32 * 16
    model_bytes = 0

    def fit(self, x):
        return self

    def add(self, x):
        self.base = np.asarray(x)

    def search(self, q, k):
        d = ((q[:, None, :] - self.base[None]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, ids, 1).astype(np.float32), ids

    def encode(self, x):
        return np.asarray(x).view(np.uint8)

    def decode(self, codes):
        return codes.view(np.float32)

    @property
    def codes_bytes(self):
        return self.base.nbytes


class ByFirstCoordinate(Clusterer):
    name = "by_first"

    def fit_predict(self, x, n_clusters):
        self.n = len(x)
        return (x[:, 0] > 0).astype(np.int64)

    @property
    def codes_bytes(self):
        return self.n * 4


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 16)).astype(np.float32)
    query = rng.normal(size=(20, 16)).astype(np.float32)
    return Dataset("toy", learn=base, base=base, query=query,
                   labels=(base[:, 0] > 0).astype(np.int64))


def metrics_of(result: dict) -> dict:
    """The metrics of a task result's one point, with its build's."""
    (point,) = result["points"]
    assert point["status"] == "ok", point["message"]
    return {**result["build"], **point["metrics"]}


def test_exact_search_has_perfect_recall_and_zero_mse(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    m = metrics_of(run_search(ExactSearch(), dataset, {"name": "search", "k": 10,
                                                       "recall_at": [1, 10], "k_recall": [10]},
                              threads=1))
    assert m["recall@1"] == m["recall@10"] == m["10-recall@10"] == 1.0
    assert m["mse"] == 0.0
    assert m["qps"] == pytest.approx(20 / m["search_s"])
    assert m["codes_bytes"] == 500 * 16 * 4 and m["code_bits"] == 512
    assert m["bytes_per_vector"] == m["total_bytes_per_vector"] == 16 * 4
    for phase in ("train", "add", "search", "encode"):
        assert m[f"{phase}_s"] >= 0 and m[f"{phase}_peak_rss_bytes"] > 0
    assert "recall@100" not in m  # R above k is not measured


def test_search_task_rejects_a_clusterer_and_a_large_k(dataset):
    with pytest.raises(InputError, match="cannot run task 'search': it needs a searcher"):
        run_search(ByFirstCoordinate(), dataset, {"name": "search", "k": 10}, threads=1)
    with pytest.raises(InputError, match="k=501 is larger than the database"):
        run_search(ExactSearch(), dataset, {"name": "search", "k": 501}, threads=1)


def test_cluster_task_scores_against_labels(dataset):
    m = metrics_of(run_cluster(ByFirstCoordinate(), dataset,
                               {"name": "cluster", "n_clusters": 3}, threads=1))
    assert m["nmi"] == pytest.approx(1.0) and m["ari"] == pytest.approx(1.0)
    assert m["empty_clusters"] == 1
    x = dataset.base
    halves = [x[x[:, 0] > 0], x[x[:, 0] <= 0]]
    expected = sum(((h - h.mean(0)) ** 2).sum() for h in halves) / len(x)
    assert m["error"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(InputError, match="n_clusters=501 is larger than the data"):
        run_cluster(ByFirstCoordinate(), dataset, {"name": "cluster", "n_clusters": 501}, 1)


def test_phase_memory_delta_counts_what_the_phase_allocated():
    phases = Phases()
    with phases("train"):
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert block.sum() > 0
    assert 60 * 2**20 <= phases.metrics["train_rss_delta_bytes"] <= 80 * 2**20
    assert phases.metrics["train_peak_rss_bytes"] >= phases.metrics["train_rss_delta_bytes"]


def test_the_build_records_codec_metrics_unless_disabled(dataset, tmp_path, monkeypatch):
    """Exact codes: no estimation error and a perfect ranking; task.codec.enabled=false
    leaves the metrics out."""
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    task = {"name": "search", "k": 10, "recall_at": [1], "k_recall": []}
    m = metrics_of(run_search(ExactSearch(), dataset, task, threads=1))
    assert abs(m["sqdist_bias"]) < 1e-6 and abs(m["ip_bias"]) < 1e-6
    assert m["rank_correlation"] == pytest.approx(1.0)
    off = metrics_of(run_search(ExactSearch(), dataset, {**task, "codec": {"enabled": False}},
                                threads=1))
    assert not {"sqdist_bias", "ip_bias", "rank_correlation"} & set(off)


class CoarseSearch(ExactSearch):
    """Ranks by the first coordinate only: a poor searcher whose candidates exact
    re-ranking can put in order."""
    name = "coarse"

    def search(self, q, k):
        d = (q[:, None, 0] - self.base[None, :, 0]) ** 2
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, ids, 1).astype(np.float32), ids


def test_exact_reranking_orders_the_candidates_by_true_distance(dataset, tmp_path,
                                                                monkeypatch):
    """With task.rerank = 10 the searcher is asked for 10 x k candidates; the k returned
    are the candidates nearest by exact distance; without it, its own order stands."""
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    task = {"name": "search", "k": 5, "recall_at": [1, 5], "k_recall": [], "mse": False,
            "codec": {"enabled": False}}
    plain = metrics_of(run_search(CoarseSearch(), dataset, task, threads=1))
    reranked = metrics_of(run_search(CoarseSearch(), dataset, {**task, "rerank": 10},
                                     threads=1))
    base, q = dataset.base, dataset.query
    first = np.argsort((q[:, None, 0] - base[None, :, 0]) ** 2, axis=1, kind="stable")[:, :50]
    exact = ((q[:, None] - base[first]) ** 2).sum(-1)
    best = np.take_along_axis(first, np.argsort(exact, axis=1, kind="stable")[:, :1], 1)[:, 0]
    assert reranked["recall@1"] == pytest.approx(np.mean(best == dataset.groundtruth[:, 0]))
    assert reranked["recall@1"] > plain["recall@1"]
    assert reranked["rerank_factor"] == 10 and reranked["rerank_bytes_per_vector"] == 16 * 4
    assert reranked["rerank_vectors_read"] == 20 * 50  # 20 queries x 10 x k candidates
    assert 0 < reranked["rerank_s"] < reranked["search_s"]
    assert "rerank_factor" not in plain and "rerank_s" not in plain


@pytest.mark.parametrize("value", [1, -2, "ten"])
def test_a_bad_rerank_factor_is_named(dataset, value, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    with pytest.raises(InputError, match="task.rerank"):
        run_search(ExactSearch(), dataset, {"name": "search", "k": 5, "recall_at": [1],
                                            "k_recall": [], "rerank": value}, threads=1)
