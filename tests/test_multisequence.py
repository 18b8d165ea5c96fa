"""The multi-sequence algorithm (Babenko & Lempitsky, CVPR 2012; cpp/multisequence.cpp):
its cell order equals a brute-force sort of the cell distances, and LOPQ's search
traverses cells in that order."""
import numpy as np
import pytest

from benchpq.algorithms.own.lopq import LOPQ, multisequence_order
from benchpq.checks import InputError


def brute_force(d1, d2):
    """All cells (i, j) sorted by d1[i] + d2[j] (float32 sums), ties by (i, j)."""
    total = (d1.astype(np.float32)[:, None] + d2.astype(np.float32)[None, :]).ravel()
    order = np.lexsort((np.arange(total.size), total))
    return order // d2.size, order % d2.size, total[order]


@pytest.mark.parametrize("n1,n2", [(1, 1), (1, 7), (9, 1), (5, 5), (13, 8), (32, 32)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_order_equals_brute_force_sort(n1, n2, seed):
    rng = np.random.default_rng(seed)
    d1 = rng.gamma(2.0, 10.0, n1).astype(np.float32)
    d2 = rng.gamma(2.0, 10.0, n2).astype(np.float32)
    i, j, dist = multisequence_order(d1, d2)
    bi, bj, bdist = brute_force(d1, d2)
    assert i.dtype == np.int32 and dist.dtype == np.float32 and len(i) == n1 * n2
    np.testing.assert_array_equal(dist, bdist)
    np.testing.assert_array_equal(dist, d1[i] + d2[j])
    # every cell exactly once, and the same cell as the sort wherever distances are not tied
    assert len(set(zip(i.tolist(), j.tolist()))) == n1 * n2
    unique = np.ones(len(dist), bool)
    unique[1:] &= dist[1:] != dist[:-1]
    unique[:-1] &= dist[:-1] != dist[1:]
    assert np.array_equal(i[unique], bi[unique]) and np.array_equal(j[unique], bj[unique])


def test_prefix_of_the_order():
    rng = np.random.default_rng(3)
    d1, d2 = rng.random(40, np.float32), rng.random(25, np.float32)
    full = multisequence_order(d1, d2)
    for count in (1, 2, 17, 999, 1000):
        part = multisequence_order(d1, d2, count)
        assert len(part[0]) == count
        for a, b in zip(part, full):
            assert np.array_equal(a, b[:count])


def test_ties_and_equal_lists():
    ones = np.ones(6, np.float32)
    i, j, dist = multisequence_order(ones, ones)
    assert np.all(dist == 2) and len(set(zip(i.tolist(), j.tolist()))) == 36
    d = np.array([3, 1, 2, 1, 0], np.float32)  # repeated values in each list
    i, j, dist = multisequence_order(d, d)
    assert np.all(np.diff(dist) >= 0)
    np.testing.assert_array_equal(dist, brute_force(d, d)[2])
    assert (i[0], j[0]) == (4, 4)


def test_bad_input():
    d = np.ones(3, np.float32)
    with pytest.raises(InputError, match=r"count: must be \[1, 9\]"):
        multisequence_order(d, d, 10)
    with pytest.raises(InputError, match="count: must be"):
        multisequence_order(d, d, 0)
    with pytest.raises(InputError, match="d1: contains NaN"):
        multisequence_order(np.array([1, np.nan], np.float32), d)
    with pytest.raises(InputError, match="d1: expected a non-empty 1-D array"):
        multisequence_order(np.ones(0, np.float32), d)


def test_lopq_search_visits_cells_in_coarse_order():
    """With max_cells = c, the candidates are exactly the vectors of the c nearest cells."""
    rng = np.random.default_rng(4)
    x = (rng.normal(0, 3, (12, 16))[rng.integers(0, 12, 1500)]
         + rng.normal(0, 1, (1500, 16))).astype(np.float32)
    q = rng.normal(0, 3, (5, 16)).astype(np.float32)
    lopq = LOPQ(V=6, M=4, Ks=16, quota=10 ** 9, iter=5, coarse_iter=5, seed=0).fit(x)
    lopq.add(x)
    codes, sizes = lopq.codes, lopq.list_sizes()
    C = lopq.coarse_centroids
    for cells in (1, 3, 10, 36):
        lopq.set_search_params(max_cells=cells)
        _, ids = lopq.search(q, 1500)
        for row, y in zip(ids, q):
            d1 = ((y[:8] - C[0]) ** 2).sum(1).astype(np.float32)
            d2 = ((y[8:] - C[1]) ** 2).sum(1).astype(np.float32)
            i, j, _ = multisequence_order(d1, d2, cells)
            visited = set(zip(i.tolist(), j.tolist()))
            expected = {n for n, (a, b) in enumerate(codes[:, :2].tolist()) if (a, b) in visited}
            assert set(row[row >= 0].tolist()) == expected
            assert len(expected) == sum(sizes[a, b] for a, b in visited)
        assert lopq.last_search["mean_cells"] == cells
