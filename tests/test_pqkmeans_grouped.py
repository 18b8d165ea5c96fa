"""PQk-means' grouped assignment (``assign="grouped"``): the sub-linear nearest-centre search
over groups of centres. With every group probed it is the exhaustive assignment bit for bit
(labels, distances, the whole loop; on 1 and 2 threads, across the parallel chunking of the
codes); with few groups probed its loop never raises the objective (the previous centre is
always a candidate) and its clustering error on siftsmall stays within 1% of the exhaustive
one at the same initialisation; bad options are refused before C++."""
import numpy as np
import pytest

from benchpq.algorithms.own.pqkmeans import (
    PQKMeansClusterer,
    assignment_groups,
    pqkmeans,
    pqkmeans_assign,
    sdc_tables,
    train_pq_encoder,
)
from benchpq.checks import InputError, as_streamed_matrix
from benchpq.measure import metrics

import reference as ref


@pytest.fixture(scope="module")
def sift(siftsmall):
    return siftsmall[0]


@pytest.fixture(scope="module")
def sift_codes(sift):
    pq = train_pq_encoder(sift, 4, 256, 10, None, 0)
    return pq.encode(sift), sdc_tables(pq.codewords)


@pytest.fixture(scope="module")
def clumped():
    """70,000 codes (M=8, more than one parallel chunk) with integer tables, so that distance
    ties are frequent and must go to the smaller centre index; 300 centres with duplicates."""
    rng = np.random.default_rng(4)
    codewords = rng.integers(0, 4, (8, 256, 2)).astype(np.float32)
    prototypes = rng.integers(0, 256, (200, 8))
    codes = prototypes[rng.integers(0, 200, 70_000)]
    noise = rng.random(codes.shape) < 0.3
    codes[noise] = rng.integers(0, 256, noise.sum())
    codes = codes.astype(np.uint8)
    centers = codes[rng.choice(len(codes), 300, replace=False)].copy()
    centers[150] = centers[149]
    return codes, sdc_tables(codewords), centers


@pytest.mark.parametrize("threads", [1, 2])
def test_every_group_probed_is_the_exhaustive_assignment(clumped, threads):
    codes, tables, centers = clumped
    want_labels, want_dist = ref.sdc_assign(codes, tables, centers)
    with ref.native_threads(threads):
        labels, dist = pqkmeans_assign(codes, tables, centers, "grouped", groups=17, probe=17)
    assert np.array_equal(labels, want_labels) and np.array_equal(dist, want_dist)
    assert not np.any(labels == 150)  # a duplicate centre: the smaller index wins


def test_every_group_probed_is_the_exhaustive_loop(sift_codes):
    codes, tables = sift_codes
    want = pqkmeans(codes, tables, 300, 8, init="random", seed=2)
    got = pqkmeans(codes, tables, 300, 8, init="random", seed=2, assign="grouped", groups=20,
                   probe=20)
    assert np.array_equal(got.labels, want.labels)
    assert np.array_equal(got.centers, want.centers)
    assert np.array_equal(got.objective, want.objective)


def test_few_groups_probed(sift_codes):
    """One assignment misses some nearest centres, never returns a wrong distance; the loop
    never raises its objective and ends within 1% of the exhaustive loop's."""
    codes, tables = sift_codes
    centers = codes[np.random.default_rng(0).choice(len(codes), 500, replace=False)]
    exact_labels, exact = pqkmeans_assign(codes, tables, centers)
    labels, dist = pqkmeans_assign(codes, tables, centers, "grouped", probe=3)
    recomputed = np.zeros(len(codes), np.float32)
    for m in range(codes.shape[1]):  # float32 sums in sub-space order, as the C++
        recomputed += tables[m, codes[:, m], centers[labels, m]]
    assert np.array_equal(dist, recomputed)
    assert np.all(dist >= exact) and 0.5 < np.mean(labels == exact_labels) < 1.0

    full = pqkmeans(codes, tables, 500, 12, init="random", seed=5)
    fast = pqkmeans(codes, tables, 500, 12, init="random", seed=5, assign="grouped", probe=3)
    assert np.all(np.diff(fast.objective) <= 0)
    assert fast.objective[-1] <= full.objective[-1] * 1.01


def test_grouped_plugin_error_on_siftsmall(sift):
    """The plugin's clustering error in the original space, k=500, grouped (ceil(sqrt(500))=23
    groups, 4 probed) against exhaustive at the same initialisation: within 1%."""
    errors = {}
    for assign in ("exhaustive", "grouped"):
        plugin = PQKMeansClusterer(M=4, encoder_iter=10, niter=10, assign=assign, probe=4,
                                   seed=0)
        errors[assign] = metrics.clustering_error(sift, plugin.fit_predict(sift, 500), 500)
    assert errors["grouped"] <= errors["exhaustive"] * 1.01


def test_byte_data_clusters_as_its_float_copy(sift):
    """A uint8 base is read block by block as stored: the same labels as its float32 copy."""
    data = np.clip(sift, 0, 255).astype(np.uint8)
    plugin = PQKMeansClusterer(M=4, encoder_iter=5, niter=5, seed=0)
    from_bytes = plugin.fit_predict(data, 50)
    assert np.array_equal(from_bytes, plugin.fit_predict(data.astype(np.float32), 50))


def test_options_are_checked():
    assert assignment_groups("exhaustive", 1000, None, 8) == (0, 0)
    assert assignment_groups("grouped", 1000, None, 8) == (32, 8)
    assert assignment_groups("grouped", 1024, None, 8) == (32, 8)
    assert assignment_groups("grouped", 10, 50, 8) == (10, 8)
    codes = np.zeros((10, 2), np.uint8)
    tables = np.zeros((2, 4, 4), np.float32)
    for kwargs, words in [(dict(assign="nearest"), "assign"), (dict(assign="grouped", probe=0),
                          "probe"), (dict(assign="grouped", groups=0), "groups")]:
        with pytest.raises(InputError, match=words):
            pqkmeans_assign(codes, tables, codes[:3], **kwargs)
        with pytest.raises(InputError, match=words):
            pqkmeans(codes, tables, 3, 2, **kwargs)
    with pytest.raises(InputError, match="assign"):
        PQKMeansClusterer(assign="ivf")


def test_a_streamed_base_is_not_copied(tmp_path):
    """Code clusterers read a base as stored: a uint8 or int8 memory map stays one; other
    types are converted to float32, bad ones refused by name."""
    path = tmp_path / "base.npy"
    np.save(path, np.arange(4 * 8, dtype=np.uint8).reshape(4, 8))
    mapped = np.load(path, mmap_mode="r")
    assert as_streamed_matrix(mapped) is mapped
    assert as_streamed_matrix(np.zeros((3, 2), np.int8)).dtype == np.int8
    assert as_streamed_matrix(np.zeros((3, 2), np.float64)).dtype == np.float32
    with pytest.raises(InputError, match="x: expected at least 2 rows"):
        as_streamed_matrix(mapped[:1], "x", min_rows=2)
    with pytest.raises(InputError, match="base: expected a 2-D array"):
        as_streamed_matrix(np.zeros(5, np.uint8), "base")
    with pytest.raises(InputError, match="numeric"):
        as_streamed_matrix(np.array([["a"]]))
