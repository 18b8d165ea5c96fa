"""How sure a measured figure is: intervals over queries and seeds, paired tests of two runs.

Per run, over queries: recall@R and k-recall@k are means of a per-query statistic (hit or
not; hits among k), so the query sample alone moves them (recall 0.5 on 100 queries: about
±0.1). Their 95% interval is a percentile bootstrap over queries (Efron & Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13) with :data:`N_RESAMPLES` resamples drawn from a
generator seeded with :data:`BOOTSTRAP_SEED`, so a run's interval is reproducible.

Over seeds: the mean of n runs and its Student t interval, mean ± t(0.975, n-1) s / sqrt(n).

Paired comparisons of A and B (A - B, positive when A is larger):

- by query (recall, one seed): the per-query differences; a paired bootstrap interval of
  the mean difference and the p-value of a two-sided sign-flip randomization test (Fisher's;
  the test Smucker, Allan & Carterette, CIKM 2007, recommend for IR metrics), computed
  exactly per distinct difference value, not sampled.
- by query and seed (recall, two seeds or more): the differences d[s, q] of a crossed design,
  in which both the query sample and each seed's training draw move the mean. Its variance,
  sigma_S^2 / S + sigma_Q^2 / Q + sigma_E^2 / (S Q) for the seed, query and interaction
  components, is estimated from the two-way mean squares as (MS_seed + MS_query) / (S Q)
  (which counts sigma_E^2 / (S Q) once more, so it is never negative), with
  Satterthwaite's degrees of freedom (Satterthwaite, Biometrics Bulletin 1946); t interval
  and p-value. With few seeds the interval is a little narrow all the same: simulated with
  4 seeds it covers the true difference 93.4% of the time (tests/test_uncertainty.py). A
  method whose recall swings from seed to seed is then not declared better on the strength
  of many queries scored by the same few trained models.
- by seed (mse, error, times): the paired t interval and p-value of the per-seed differences;
  the Wilcoxon signed-rank p-value is given too. Note: with 5 pairs no two-sided Wilcoxon
  p-value is below 2/32 = 0.0625, so at 5 seeds only the t test can reach significance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import InputError
from ..metric_table import ci_names, k_recall_name, recall_name
from . import metrics

N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
ALPHA = 0.05
# Resamples drawn at once, so that a bootstrap never holds more than ~this many counts.
_BATCH_CELLS = 2_000_000
# Sign-flip test: how fine a common unit of the differences is looked for; the largest
# distribution computed exactly.
_MAX_DENOMINATOR = 100
_EXACT_SUPPORT = 4_000_001


# ------------------------------------------------------------------------------ intervals

def bootstrap_interval(values, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` ((n,) numbers, one per query).

    Resampling n values with replacement is drawing, for each distinct value, how many
    times it is taken: a multinomial over the distinct values with their frequencies. That
    is exact and cheap for hits (two values) and hit counts (k + 1 values).
    """
    x = _as_vector(values, "values")
    _check_level(level)
    n_resamples = _check_resamples(n_resamples)
    distinct, counts = np.unique(x, return_counts=True)
    if distinct.size == 1:
        return float(distinct[0]), float(distinct[0])
    rng = np.random.default_rng(seed)
    p = counts / x.size
    means = np.empty(n_resamples)
    batch = max(1, _BATCH_CELLS // distinct.size)
    for start in range(0, n_resamples, batch):
        stop = min(start + batch, n_resamples)
        drawn = rng.multinomial(x.size, p, size=stop - start)
        means[start:stop] = drawn @ distinct / x.size
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def t_interval(values, level: float = LEVEL) -> tuple[float, float]:
    """Student t interval of the mean of ``values`` ((n,) numbers, one per seed).

    (nan, nan) for fewer than two values.
    """
    x = _as_vector(values, "values")
    _check_level(level)
    if x.size < 2:
        return math.nan, math.nan
    half = t_quantile(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    mean = float(x.mean())
    return float(mean - half), float(mean + half)


def t_quantile(q: float, dof: int) -> float:
    """Quantile ``q`` of Student's t with ``dof`` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf(q, dof))


# ----------------------------------------------------------------------- per run (a task)

def search_uncertainty(ids: np.ndarray, groundtruth: np.ndarray, recall_at, k_hits=None,
                       n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Metrics a search run records for its intervals and for paired tests.

    Args:
        ids: (nq, k) int returned neighbours, nearest first.
        groundtruth: (nq, >=1) int true neighbours, nearest first.
        recall_at: the R of the run's recall@R (each at most k).
        k_hits: {k: (nq,) int hits per query of k-recall@k} (from
            :func:`benchpq.measure.metrics.k_recall_hits`), or None.

    Returns ``{"recall@R_ci_low": .., "recall@R_ci_high": .., "k-recall@k_ci_low": ..,
    ..., "per_query": {"nn_rank": [...], "hits@k": [...]}}``: bounds of the 95% bootstrap
    interval over queries of each recall, and the per-query values the report's paired
    tests need (rank of the true nearest neighbour, -1 if not returned; hits of k-recall@k),
    as plain int lists (about 4 bytes of JSON per query and list).
    """
    ids, groundtruth = np.asarray(ids), np.asarray(groundtruth)
    if ids.ndim != 2 or groundtruth.ndim != 2:
        raise InputError(f"ids and groundtruth must be 2-d, got {ids.shape} and "
                         f"{groundtruth.shape}")
    ranks = metrics.nn_ranks(ids, groundtruth)
    out: dict = {}
    for R in recall_at:
        if int(R) > ids.shape[1]:
            raise InputError(f"recall@{R} needs at least {R} results per query, "
                             f"got {ids.shape[1]}")
        out.update(zip(ci_names(recall_name(int(R))), bootstrap_interval(
            (ranks >= 0) & (ranks < int(R)), n_resamples, seed)))
    per_query = {"nn_rank": ranks.tolist()}
    for k, hits in (k_hits or {}).items():
        hits = np.asarray(hits)
        if hits.shape != (ids.shape[0],):
            raise InputError(f"hits of {k}-recall@{k}: expected shape ({ids.shape[0]},), "
                             f"got {hits.shape}")
        out.update(zip(ci_names(k_recall_name(int(k))),
                       bootstrap_interval(hits / int(k), n_resamples, seed)))
        per_query[f"hits@{int(k)}"] = hits.astype(np.int64).tolist()
    out["per_query"] = per_query
    return out


def per_query_values(per_query: dict, metric: str) -> np.ndarray | None:
    """(nq,) float values of ``metric`` per query from a run's ``per_query`` record, or None.

    'recall@R' -> 1.0 where the true nearest neighbour is among the first R, else 0.0;
    'k-recall@k' -> hits / k. None when the record does not hold what the metric needs.
    """
    if not isinstance(per_query, dict):
        return None
    name, _, at = metric.partition("@")
    try:
        r = int(at)
    except ValueError:
        return None
    if name == "recall" and "nn_rank" in per_query:
        ranks = np.asarray(per_query["nn_rank"])
        return ((ranks >= 0) & (ranks < r)).astype(float)
    if name == f"{r}-recall" and f"hits@{r}" in per_query:
        return np.asarray(per_query[f"hits@{r}"], dtype=float) / r
    return None


# ------------------------------------------------------------------------- paired tests

@dataclass
class Paired:
    """A paired comparison of A and B on one metric: the mean difference A - B.

    ``low``/``high``: its 95% interval; ``p``: two-sided p-value of no difference;
    ``n``: the number of pairs; ``test``: how it was computed; ``p_wilcoxon``: the
    Wilcoxon signed-rank p-value (by seed only).
    """

    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p: float
    n: int
    test: str
    p_wilcoxon: float = math.nan

    def significant(self, alpha: float = ALPHA) -> bool:
        return bool(self.p < alpha)


def paired_by_query(a, b, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    level: float = LEVEL) -> Paired:
    """Compare per-query values ``a`` and ``b`` ((nq,) each, same queries in the same order).

    Interval: paired percentile bootstrap of the mean difference. p: exact two-sided
    sign-flip randomization test: under no difference each query's difference is as likely
    to have either sign, so the statistic is a sum over distinct |d| of |d| times
    (2 Binomial(c, 1/2) - c), c = how many queries have that |d|; its distribution is the
    convolution of those, computed exactly.
    """
    a, b = _pair(a, b)
    d = a - b
    low, high = bootstrap_interval(d, n_resamples, seed, level)
    return Paired(float(a.mean()), float(b.mean()), float(d.mean()), low, high,
                  sign_flip_p(d), int(d.size), "paired bootstrap / sign-flip, by query")


def paired_by_query_and_seed(a, b, level: float = LEVEL) -> Paired:
    """Compare per-query values of several seeds: ``a``, ``b`` (S, Q), row s the Q queries'
    values of seed s (S >= 2; the same queries in the same order in every row).

    The mean difference's variance over the crossed seed x query design (module docstring),
    (MS_seed + MS_query) / (S Q), with Satterthwaite's degrees of freedom
    (MS_seed + MS_query)^2 / (MS_seed^2 / (S - 1) + MS_query^2 / (Q - 1)); t interval and
    two-sided p. No spread at all: the interval is the point and p is 0 (or 1 if it is 0).
    """
    from scipy import stats
    _check_level(level)
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2 or a.shape[1] < 2:
        raise InputError(f"paired by query and seed: expected A and B of one shape (seeds >= 2, "
                         f"queries >= 2), got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("paired by query and seed: values contain NaN or infinite values")
    d = a - b
    seeds, queries = d.shape
    mean = float(d.mean())
    ms_seed = queries * float(d.mean(axis=1).var(ddof=1))
    ms_query = seeds * float(d.mean(axis=0).var(ddof=1))
    total = ms_seed + ms_query
    result = Paired(float(a.mean()), float(b.mean()), mean, mean, mean,
                    1.0 if mean == 0 else 0.0, int(d.size),
                    "t over seeds x queries (crossed, Satterthwaite)")
    if total == 0:
        return result
    se = math.sqrt(total / d.size)
    dof = total ** 2 / (ms_seed ** 2 / (seeds - 1) + ms_query ** 2 / (queries - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    result.low, result.high = mean - half, mean + half
    result.p = float(2 * stats.t.sf(abs(mean) / se, dof))
    return result


def sign_flip_p(d) -> float:
    """Exact two-sided p-value of the sign-flip test of mean(d) = 0 (1.0 if all d are 0).

    The sums are counted exactly when all |d| are whole multiples of one unit (per-query
    recall differences are multiples of 1/(seeds * k)); otherwise, or when the exact
    distribution would have over :data:`_EXACT_SUPPORT` points, the normal approximation
    is used.
    """
    from scipy import signal, stats
    d = _as_vector(d, "differences")
    magnitudes = np.abs(d[d != 0])
    if magnitudes.size == 0:
        return 1.0
    unit = _common_unit(magnitudes)
    if unit is None:
        steps = magnitudes / magnitudes.max()
        return _normal_sign_flip_p(steps, abs(float(d.sum())) / magnitudes.max())
    steps = np.rint(magnitudes / unit).astype(np.int64)
    observed = abs(int(np.rint(d.sum() / unit)))
    total = int(steps.sum())
    if 2 * total + 1 > _EXACT_SUPPORT:
        return _normal_sign_flip_p(steps, observed)
    # distribution of S = sum of (+-step): index i holds P(S = i - total)
    dist = np.ones(1)
    for step, count in zip(*np.unique(steps, return_counts=True)):
        kernel = np.zeros(2 * int(step) * int(count) + 1)
        kernel[::2 * int(step)] = stats.binom.pmf(np.arange(count + 1), count, 0.5)
        dist = np.clip(signal.fftconvolve(dist, kernel), 0.0, None)
    values = np.arange(dist.size) - total
    return float(min(1.0, dist[np.abs(values) >= observed].sum()))


def _common_unit(magnitudes: np.ndarray) -> float | None:
    """The largest u with every magnitude a whole multiple of u (to 1e-6), u = min / t for
    t <= :data:`_MAX_DENOMINATOR`; None if there is none."""
    smallest = float(magnitudes.min())
    for t in range(1, _MAX_DENOMINATOR + 1):
        ratios = magnitudes / (smallest / t)
        if np.abs(ratios - np.rint(ratios)).max() < 1e-6:
            return smallest / t
    return None


def _normal_sign_flip_p(steps: np.ndarray, observed: float) -> float:
    """Normal approximation of the sign-flip test, for very many distinct differences."""
    from scipy import stats
    sd = math.sqrt(float((steps.astype(float) ** 2).sum()))
    return float(2 * stats.norm.sf(observed / sd))


def paired_by_seed(a, b, level: float = LEVEL) -> Paired:
    """Compare per-seed values ``a`` and ``b`` ((n,) each, seed i of A paired with seed i of B).

    Paired t interval and p-value of the differences; the Wilcoxon signed-rank p too.
    Fewer than two pairs: no interval and p = nan. Identical non-zero differences (both
    deterministic): p = 0.
    """
    from scipy import stats
    a, b = _pair(a, b)
    d = a - b
    mean = float(d.mean())
    result = Paired(float(a.mean()), float(b.mean()), mean, math.nan, math.nan, math.nan,
                    int(d.size), "paired t, by seed")
    if d.size < 2:
        return result
    result.low, result.high = t_interval(d, level)
    sd = float(d.std(ddof=1))
    if sd == 0:
        result.p = 1.0 if mean == 0 else 0.0
    else:
        t = mean / (sd / math.sqrt(d.size))
        result.p = float(2 * stats.t.sf(abs(t), d.size - 1))
    if np.any(d != 0):
        result.p_wilcoxon = float(stats.wilcoxon(d).pvalue)
    else:
        result.p_wilcoxon = 1.0
    return result


def verdict(paired: Paired, direction: str | None, name_a: str, name_b: str,
            alpha: float = ALPHA) -> str:
    """'<A> better', '<B> better', 'no significant difference' (at ``alpha``), or why not.

    ``direction``: 'max' if higher values are better, 'min' if lower, None if neither
    (then a significant difference is reported as '<A> higher' / '<A> lower').
    """
    if math.isnan(paired.p):
        return f"not tested ({paired.n} pair{'s' if paired.n != 1 else ''})"
    if not paired.significant(alpha):
        return "no significant difference"
    if direction is None:
        return f"{name_a} {'higher' if paired.diff > 0 else 'lower'}"
    a_better = (paired.diff > 0) == (direction == "max")
    return f"{name_a if a_better else name_b} better"


# ------------------------------------------------------------------------------ helpers

def _as_vector(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-d array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    return x


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_vector(a, "A"), _as_vector(b, "B")
    if a.shape != b.shape:
        raise InputError(f"paired values differ in length: A has {a.size}, B has {b.size}")
    return a, b


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise InputError(f"confidence level must be in (0, 1), got {level}")


def _check_resamples(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 100:
        raise InputError(f"n_resamples must be an integer >= 100, got {n!r}")
    return int(n)
