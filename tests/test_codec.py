"""Codec metrics: the bias and spread of a quantizer's distance estimates, and how well they
rank each query's true neighbours, on plugins whose answers are known."""
import numpy as np
import pytest

from benchpq import registry
from benchpq.api import Quantizer
from benchpq.checks import InputError
from benchpq.measure.codec import codec_metrics


class Shifted(Quantizer):
    """Stores each vector exactly and decodes it shifted by ``shift`` (d,): the estimated
    squared distance is off by |c|^2 - 2 <q - x, c>, the inner product by <q, c>."""
    name = "shifted"

    def __init__(self, shift):
        self.shift = np.asarray(shift, np.float32)

    def encode(self, x):
        return np.ascontiguousarray(x, np.float32).view(np.uint8)

    def decode(self, codes):
        return codes.view(np.float32) + self.shift


class Offset(Shifted):
    """An estimator that adds 10 to every squared distance, overriding the default."""

    def estimate_distances(self, queries, codes):
        return super().estimate_distances(queries, codes) + 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 10, (2000, 8)).astype(np.float32)
    queries = rng.normal(0, 10, (40, 8)).astype(np.float32)
    d = ((queries[:, None] - base[None]) ** 2).sum(-1)
    return base, queries, np.argsort(d, axis=1)[:, :100]


#: every pair of the fixture's data, so that the expected values are exact
ALL_PAIRS = {"base_sample": 2000, "queries": 40}


def exact_pair_means(base, queries):
    """Mean over all pairs of the exact squared distance and of |q| |x|."""
    q, x = queries.astype(np.float64), base.astype(np.float64)
    d = ((q[:, None] - x[None]) ** 2).sum(-1)
    return d.mean(), np.mean(np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(x, axis=1))


def test_exact_codes_have_no_error_and_rank_perfectly(data):
    base, queries, gt = data
    m = codec_metrics(Shifted(np.zeros(8)), base, queries, gt)
    assert abs(m["sqdist_bias"]) < 1e-6 and m["sqdist_rel_std"] < 1e-6
    assert abs(m["ip_bias"]) < 1e-6 and m["ip_rel_std"] < 1e-6
    assert m["rank_correlation"] == pytest.approx(1.0)


def test_a_shifted_reconstruction_has_the_bias_it_must(data):
    base, queries, gt = data
    c = np.full(8, 0.5, np.float32)
    m = codec_metrics(Shifted(c), base, queries, gt, ALL_PAIRS)
    mean_d, mean_norms = exact_pair_means(base, queries)
    q_bar, x_bar = queries.astype(np.float64).mean(0), base.astype(np.float64).mean(0)
    assert m["sqdist_bias"] == pytest.approx((c @ c - 2 * (q_bar - x_bar) @ c) / mean_d,
                                             rel=1e-4)
    assert m["ip_bias"] == pytest.approx(q_bar @ c / mean_norms, rel=1e-4)
    for name in ("sqdist_bias", "ip_bias"):
        assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"]
    assert m["sqdist_rel_std"] > 0 and 0 < m["rank_correlation"] < 1


def test_a_plugin_estimator_replaces_the_decoded_distance(data):
    base, queries, gt = data
    shifted = codec_metrics(Offset(np.zeros(8)), base, queries, gt, ALL_PAIRS)
    mean_d, _ = exact_pair_means(base, queries)
    assert shifted["sqdist_bias"] == pytest.approx(10 / mean_d, rel=1e-4)
    assert shifted["sqdist_bias_ci_low"] > 0
    assert shifted["rank_correlation"] == pytest.approx(1.0)  # a shift keeps the order


def test_pq_estimates_are_biased_down_on_siftsmall(siftsmall):
    """A reconstruction is nearer its cell's centre than the vector: PQ's (and every
    reconstructing quantizer's) estimated squared distances are too small on average. Measured
    on siftsmall, pq M=8 Ks=256 (20 iterations): sqdist_bias -0.0730 [-0.0731, -0.0728],
    sqdist_rel_std 0.063, rank correlation 0.636 [0.615, 0.658] on the 100 true neighbours."""
    base, queries, gt = siftsmall
    plugin = registry.create({"name": "pq", "M": 8, "Ks": 256, "iter": 20, "seed": 1}).fit(base)
    m = codec_metrics(plugin, base, queries, gt)
    assert m["sqdist_bias_ci_high"] < 0
    assert -0.10 < m["sqdist_bias"] < -0.05
    assert 0.55 < m["rank_correlation"] < 0.75


@pytest.mark.parametrize("bits, rank_correlation", [(1, 0.58), (4, 0.966)])
def test_rabitq_estimates_are_nearly_unbiased_on_siftsmall(siftsmall, bits, rank_correlation):
    """RaBitQ's estimator is unbiased over its random rotation (Gao & Long 2024, Thm 3.2);
    one rotation leaves a small bias. Measured on siftsmall, seeds 0, 1, 2: sqdist_bias
    -0.0018, 0.0003, 0.0007 at 1 bit, within 1e-4 of 0 at 4 bits (PQ 8x8: -0.073); rank
    correlation 0.572 .. 0.586 at 1 bit, 0.966 at 4 bits; ip_bias at most 0.0018."""
    base, queries, gt = siftsmall
    plugin = registry.create({"name": "rabitq", "bits": bits, "seed": 1}).fit(base)
    m = codec_metrics(plugin, base, queries, gt)
    assert abs(m["sqdist_bias"]) < 0.004 and abs(m["ip_bias"]) < 0.004
    assert m["rank_correlation"] == pytest.approx(rank_correlation, abs=0.03)


@pytest.mark.parametrize("options, message", [
    ({"base_sampel": 10}, "unknown options"), ({"queries": 0}, "task.codec.queries"),
    ({"rank_candidates": -1}, "task.codec.rank_candidates")])
def test_bad_options_are_named(data, options, message):
    base, queries, gt = data
    with pytest.raises(InputError, match=message):
        codec_metrics(Shifted(np.zeros(8)), base, queries, gt, options)


def test_a_wrong_estimate_shape_is_named(data):
    base, queries, gt = data

    class Short(Shifted):
        def estimate_distances(self, queries, codes):
            return np.zeros((1, 1), np.float32)

    with pytest.raises(InputError, match="estimate_distances returned shape"):
        codec_metrics(Short(np.zeros(8)), base, queries, gt)
