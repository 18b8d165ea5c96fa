"""Intervals over queries and seeds, paired tests: checked against cases with known answers."""
import math

import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.measure import metrics
from benchpq.measure.uncertainty import (
    N_RESAMPLES,
    bootstrap_interval,
    paired_by_query,
    paired_by_query_and_seed,
    paired_by_seed,
    per_query_values,
    search_uncertainty,
    sign_flip_p,
    t_interval,
    verdict,
)


def test_bootstrap_of_recall_half_on_100_queries_is_about_plus_minus_0_1():
    # binomial standard error sqrt(0.5 * 0.5 / 100) = 0.05; 95% -> +-1.96 * 0.05 = +-0.098
    hits = np.r_[np.ones(50), np.zeros(50)]
    low, high = bootstrap_interval(hits)
    assert low == pytest.approx(0.40, abs=0.011)
    assert high == pytest.approx(0.60, abs=0.011)


def test_bootstrap_is_reproducible_and_narrows_with_more_queries():
    rng = np.random.default_rng(3)
    small, large = rng.random(100) < 0.9, rng.random(10_000) < 0.9
    assert bootstrap_interval(small) == bootstrap_interval(small)
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    # width scales as 1 / sqrt(n): 100x the queries, a tenth of the width (+-20%)
    assert (hi_l - lo_l) == pytest.approx((hi_s - lo_s) / 10, rel=0.2)
    assert lo_l <= large.mean() <= hi_l


def test_bootstrap_of_constant_values_is_a_point_and_bad_input_is_refused():
    assert bootstrap_interval(np.ones(30)) == (1.0, 1.0)
    with pytest.raises(InputError, match="non-empty 1-d"):
        bootstrap_interval([])
    with pytest.raises(InputError, match="n_resamples"):
        bootstrap_interval([0, 1], n_resamples=10)
    with pytest.raises(InputError, match="NaN"):
        bootstrap_interval([0.0, math.nan])


def test_t_interval_matches_the_t_table():
    # n = 5: t(0.975, 4) = 2.776 (any t table); values 1..5: mean 3, s = sqrt(2.5)
    low, high = t_interval([1, 2, 3, 4, 5])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert (low, high) == pytest.approx((3 - half, 3 + half), abs=1e-3)
    assert all(math.isnan(v) for v in t_interval([4.0]))


def test_search_uncertainty_records_intervals_and_per_query_values():
    gt = np.arange(100)[:, None] * np.ones((1, 10), dtype=np.int64)
    ids = np.full((100, 10), -1, dtype=np.int64)
    ids[:50, 3] = gt[:50, 0]            # first 50 queries: true neighbour at rank 3
    hits = np.r_[np.full(50, 10), np.zeros(50, dtype=np.int64)]
    out = search_uncertainty(ids, gt, [1, 10], {10: hits})
    assert (out["recall@1_ci_low"], out["recall@1_ci_high"]) == (0.0, 0.0)
    assert out["recall@10_ci_low"] == pytest.approx(0.40, abs=0.011)
    assert out["10-recall@10_ci_high"] == pytest.approx(0.60, abs=0.011)
    assert out["per_query"]["nn_rank"][:2] == [3, 3] and out["per_query"]["nn_rank"][-1] == -1
    per_query = out["per_query"]
    assert per_query_values(per_query, "recall@10").mean() == metrics.recall_at(ids, gt, 10)
    assert per_query_values(per_query, "recall@1").sum() == 0
    assert per_query_values(per_query, "10-recall@10").mean() == 0.5
    assert per_query_values(per_query, "recall@x") is None
    assert per_query_values(per_query, "5-recall@5") is None
    with pytest.raises(InputError, match="recall@20 needs"):
        search_uncertainty(ids, gt, [20])
    with pytest.raises(InputError, match="expected shape"):
        search_uncertainty(ids, gt, [1], {10: hits[:5]})


def test_k_recall_hits_agree_with_k_recall():
    rng = np.random.default_rng(0)
    returned = np.sort(rng.random((40, 10)), axis=1)
    true = np.sort(rng.random((40, 10)), axis=1) * 0.8
    ids = rng.integers(0, 100, (40, 10))
    hits = metrics.k_recall_hits(ids, returned, true, 10)
    assert hits.shape == (40,) and hits.dtype == np.int64
    assert hits.mean() / 10 == metrics.k_recall_at_k(ids, returned, true, 10)


def test_sign_flip_p_is_exact():
    # 10 differences of +1: P(all signs +) + P(all -) = 2 / 2**10
    assert sign_flip_p(np.ones(10)) == pytest.approx(2 / 1024)
    assert sign_flip_p(np.zeros(7)) == 1.0
    # against a Monte Carlo estimate on mixed magnitudes (multiples of 1/5, as 5 seeds give)
    rng = np.random.default_rng(1)
    d = rng.integers(-2, 4, 60) / 5
    flips = rng.choice([-1.0, 1.0], size=(100_000, d.size))
    simulated = np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-9)
    assert sign_flip_p(d) == pytest.approx(simulated, abs=0.01)


def test_paired_by_query_finds_a_real_difference_and_not_a_noise_one():
    rng = np.random.default_rng(2)
    base = (rng.random(1000) < 0.5).astype(float)
    better = np.maximum(base, rng.random(1000) < 0.1)   # ~5% more hits, never fewer
    result = paired_by_query(better, base)
    assert result.p < 1e-6 and result.low > 0 and result.n == 1000
    assert verdict(result, "max", "A", "B") == "A better"
    same = paired_by_query(base, base[rng.permutation(1000)])
    assert same.p > 0.05 and same.low < 0 < same.high
    assert verdict(same, "max", "A", "B") == "no significant difference"
    with pytest.raises(InputError, match="differ in length"):
        paired_by_query(base, base[:10])


def test_paired_by_seed_t_test_and_wilcoxon():
    a = np.array([100.0, 102.0, 98.0, 101.0, 99.0])
    result = paired_by_seed(a - 5 + np.array([0.1, -0.2, 0.0, 0.3, -0.1]), a)
    assert result.diff == pytest.approx(-4.98) and result.p < 1e-4
    assert result.high < 0
    # 5 pairs of one sign: the smallest two-sided Wilcoxon p-value there is, 2 / 2**5
    assert result.p_wilcoxon == pytest.approx(0.0625)
    assert verdict(result, "min", "ours", "faiss") == "ours better"
    assert verdict(result, None, "ours", "faiss") == "ours lower"
    assert paired_by_seed([1.0, 2.0], [1.0, 2.0]).p == 1.0
    assert paired_by_seed([2.0, 3.0], [1.0, 2.0]).p == 0.0
    single = paired_by_seed([1.0], [2.0])
    assert math.isnan(single.p) and verdict(single, "min", "a", "b") == "not tested (1 pair)"


def test_paired_by_query_and_seed_counts_the_spread_between_seeds():
    # every query gains the same in a seed, but the seeds disagree: +0.2, -0.1, +0.05
    rng = np.random.default_rng(4)
    b = (rng.random((3, 500)) < 0.5).astype(float)
    a = b + np.array([[0.2], [-0.1], [0.05]])
    crossed = paired_by_query_and_seed(a, b)
    assert crossed.diff == pytest.approx(0.05) and crossed.n == 1500
    assert crossed.p > 0.3 and crossed.low < -0.3 and crossed.high > 0.4
    assert verdict(crossed, "max", "A", "B") == "no significant difference"
    # averaging each query over the seeds first hides that spread: +0.05 for every query
    assert paired_by_query(a.mean(axis=0), b.mean(axis=0)).p < 1e-6
    # the interval by hand: MS_seed = Q var(seed means), MS_query = S var(query means) = 0
    ms_seed = 500 * np.var([0.2, -0.1, 0.05], ddof=1)
    half = 4.302653 * math.sqrt(ms_seed / 1500)  # t(0.975, 2): the seeds' 2 dof
    assert (crossed.low, crossed.high) == pytest.approx((0.05 - half, 0.05 + half), rel=1e-5)


def test_paired_by_query_and_seed_covers_the_true_difference_95_percent_of_the_time():
    # crossed seed and query effects around a true difference of 0.02
    rng = np.random.default_rng(5)
    covered, rejected = 0, 0
    for _ in range(1000):
        seed_effect = rng.normal(0, 0.03, (4, 1))
        query_effect = rng.normal(0, 0.2, (1, 300))
        d = 0.02 + seed_effect + query_effect + rng.normal(0, 0.1, (4, 300))
        result = paired_by_query_and_seed(d, np.zeros_like(d))
        covered += result.low <= 0.02 <= result.high
        null = paired_by_query_and_seed(d - 0.02, np.zeros_like(d))
        rejected += null.p < 0.05
    # measured 0.934 and 0.066: Satterthwaite's t is a little liberal with 4 seeds (3 dof)
    assert 0.92 <= covered / 1000 <= 0.98
    assert rejected / 1000 <= 0.08


def test_paired_by_query_and_seed_refuses_bad_shapes_and_values():
    with pytest.raises(InputError, match=r"seeds >= 2, queries >= 2\), got \(1, 5\)"):
        paired_by_query_and_seed(np.zeros((1, 5)), np.zeros((1, 5)))
    with pytest.raises(InputError, match="got \\(2, 5\\) and \\(2, 4\\)"):
        paired_by_query_and_seed(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(InputError, match="NaN or infinite"):
        paired_by_query_and_seed(np.full((2, 3), np.nan), np.zeros((2, 3)))
    same = paired_by_query_and_seed(np.ones((2, 3)), np.ones((2, 3)))
    assert same.p == 1.0 and same.low == same.high == 0.0


def test_documented_resample_count():
    assert N_RESAMPLES >= 1000
