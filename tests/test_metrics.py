"""Metric definitions (docs/metrics.md) on hand-made cases and against scikit-learn."""
import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.measure import metrics


def test_recall_at_counts_true_nearest_in_first_R():
    gt = np.array([[3, 1], [5, 2], [7, 0]])
    ids = np.array([[3, 9, 8], [9, 5, 8], [9, 8, 1]])
    assert metrics.recall_at(ids, gt, 1) == pytest.approx(1 / 3)
    assert metrics.recall_at(ids, gt, 2) == pytest.approx(2 / 3)
    assert metrics.recall_at(ids, gt, 3) == pytest.approx(2 / 3)


def test_recall_at_needs_R_results():
    with pytest.raises(InputError, match="recall@10 needs at least 10 results"):
        metrics.recall_at(np.zeros((2, 5), int), np.zeros((2, 5), int), 10)


def test_k_recall_counts_ties_at_kth_distance_as_hits():
    # true top-2 distances 1, 2; the search returned an item at distance 2 that is
    # not in the true top-2 (a tie) and one far away item.
    gt_dist = np.array([[1.0, 2.0], [1.0, 2.0]])
    ids = np.array([[10, 11], [10, 12]])
    returned = np.array([[1.0, 2.0], [1.0, 5.0]])
    assert metrics.k_recall_at_k(ids, returned, gt_dist, 2) == pytest.approx(0.75)
    missing = np.array([[10, -1], [10, -1]])
    assert metrics.k_recall_at_k(missing, returned, gt_dist, 2) == pytest.approx(0.5)


def test_mse_is_mean_over_vectors_of_squared_error():
    x = np.array([[0, 0], [1, 1]], np.float32)
    x_hat = np.array([[1, 0], [1, 3]], np.float32)
    assert metrics.mse(x, x_hat) == pytest.approx((1 + 4) / 2)
    with pytest.raises(InputError, match="reconstruction shape"):
        metrics.mse(x, x_hat[:1])


def test_clustering_error_uses_means_of_original_vectors():
    x = np.array([[0, 0], [2, 0], [10, 10], [10, 12]], np.float32)
    labels = np.array([0, 0, 2, 2])
    # cluster 0 mean (1,0): errors 1, 1; cluster 2 mean (10, 11): errors 1, 1
    assert metrics.clustering_error(x, labels, 3) == pytest.approx(1.0)
    assert metrics.empty_clusters(labels, 3) == 1
    with pytest.raises(InputError, match=r"labels: values must be in \[0, 2\)"):
        metrics.clustering_error(x, labels, 2)


def test_nmi_and_ari_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 3000)
    pred = (truth + rng.integers(0, 4, 3000)) % 13
    assert metrics.nmi(truth, pred) == pytest.approx(sk.normalized_mutual_info_score(truth, pred))
    assert metrics.ari(truth, pred) == pytest.approx(sk.adjusted_rand_score(truth, pred))
    assert metrics.nmi(truth, truth) == pytest.approx(1.0)
    assert metrics.ari(truth, truth) == pytest.approx(1.0)
