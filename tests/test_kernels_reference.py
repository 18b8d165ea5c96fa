"""Every C++ search and training kernel at its default configuration, against its numpy
definition, on generated data (no data set needed).

PQ search (ADC and SDC) runs through a different scoring loop for each code layout:
uint8 codes with M = 8, 16 or another multiple of 8 (one 64-bit load per 8 sub-codes: every
default PQ, OPQ and LOPQ run), M = 4, any other M, and uint16 codes; and through two
parallel schemes: one query per thread, or, with fewer queries than threads, the database
split across threads and the partial heaps merged. All are checked on integer-valued
codewords and queries, where every distance is an exact small integer in float32 whatever
the order of the additions, so ids and distances must equal the reference exactly, ties
(frequent on such data) broken by the smaller id. Two threads are forced, whatever the
runner's core count.
"""
import numpy as np
import pytest

from benchpq.algorithms.own.itq import ITQ, hamming_search
from benchpq.algorithms.own.kmeans import KMeans
from benchpq.algorithms.own.lopq import LOPQ
from benchpq.algorithms.own.opq import OPQ
from benchpq.algorithms.own.pq import PQ

import reference as ref

pytestmark = pytest.mark.native_kernels


def integer_pq(M, Ks, dsub=2, n=3000, nq=12, seed=0, top=6):
    """A PQ holding integer codewords in [0, top], random codes, and integer queries."""
    rng = np.random.default_rng(seed)
    codewords = rng.integers(0, top + 1, (M, Ks, dsub)).astype(np.float32)
    pq = PQ(M=M, Ks=Ks)
    pq.dim, pq.codewords = M * dsub, codewords
    codes = rng.integers(0, Ks, (n, M)).astype(pq.code_dtype)
    codes[n // 2:n // 2 + 40] = codes[:40]  # repeated codes: equal distances, different ids
    pq.codes = codes
    queries = rng.integers(0, top + 1, (nq, M * dsub)).astype(np.float32)
    return pq, queries


# (M, Ks): uint8 x8 loads at M = 8 (the default), 16 and 24 (run-time M); uint8 M = 4 and
# M = 6 (generic); uint16 at M = 8, 4 and 3.
LAYOUTS = [(8, 256), (16, 256), (24, 256), (4, 256), (6, 256), (8, 1024), (4, 1024), (3, 300)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M,Ks", LAYOUTS)
def test_adc_search_equals_brute_force(M, Ks, threads):
    pq, queries = integer_pq(M, Ks, seed=M + Ks)
    exact = ref.pq_adc(queries, pq.codewords, pq.codes)
    with ref.native_threads(threads):
        for k in (1, 37, len(pq.codes)):
            want_d, want_i = ref.topk(exact, k)
            distances, ids = pq.search(queries, k)
            assert np.array_equal(ids, want_i), (M, Ks, k)
            assert np.array_equal(distances, want_d.astype(np.float32))
            for q in (0, 5):  # one query on `threads` threads: the database is split
                d1, i1 = pq.search(queries[q:q + 1], k)
                assert np.array_equal(i1[0], want_i[q]) and np.array_equal(d1[0], want_d[q])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M,Ks", [(8, 256), (16, 256), (4, 256), (8, 1024), (3, 300)])
def test_encode_decode_and_sdc_search_equal_brute_force(M, Ks, threads):
    pq, queries = integer_pq(M, Ks, seed=3 * M + Ks)
    with ref.native_threads(threads):
        # queries off the integer grid by 0.3: no two codewords are equally near
        offset = queries + np.float32(0.3)
        codes = pq.encode(offset)
        assert codes.dtype == pq.code_dtype
        assert np.array_equal(codes, ref.pq_encode(offset, pq.codewords))
        gathered = pq.codewords[np.arange(M)[None, :], codes.astype(np.int64)]
        assert np.array_equal(pq.decode(codes), gathered.reshape(len(codes), -1))
        exact = ref.pq_sdc(codes, pq.codewords, pq.codes)
        for k in (1, 25, len(pq.codes)):
            want_d, want_i = ref.topk(exact, k)
            distances, ids = pq.search_sdc(offset, k)
            assert np.array_equal(ids, want_i) and np.array_equal(distances, want_d)
            d1, i1 = pq.search_sdc(offset[:1], k)  # fewer queries than threads
            assert np.array_equal(i1[0], want_i[0]) and np.array_equal(d1[0], want_d[0])


def test_sdc_without_precomputed_tables_equals_brute_force():
    """M * Ks^2 floats above the table limit: SDC rows are computed per query."""
    pq, queries = integer_pq(24, 1024, n=800, nq=5, seed=9)
    assert not pq._quantizer().has_sdc_tables()
    offset = queries + np.float32(0.3)
    exact = ref.pq_sdc(ref.pq_encode(offset, pq.codewords), pq.codewords, pq.codes)
    for threads in (1, 2):
        with ref.native_threads(threads):
            want_d, want_i = ref.topk(exact, 30)
            distances, ids = pq.search_sdc(offset, 30)
            assert np.array_equal(ids, want_i) and np.array_equal(distances, want_d)


@pytest.fixture(scope="module")
def blobs():
    """4000 x 32 float32 Gaussian mixture (20 well separated clusters) and 25 queries."""
    rng = np.random.default_rng(21)
    centres = rng.normal(0, 6, (20, 32))
    x = (centres[rng.integers(0, 20, 4025)] + rng.normal(0, 1, (4025, 32))).astype(np.float32)
    return x[:4000], x[4000:]


def assert_ranks_exact_distances(distances, ids, queries, recon, rtol=1e-4):
    """Search results are the nearest reconstructions: the returned distances are
    ||q - recon[id]||^2, and they are the sorted smallest ones (float rounding aside)."""
    exact = ((queries[:, None, :].astype(np.float64) - recon[None].astype(np.float64)) ** 2).sum(-1)
    k = ids.shape[1]
    np.testing.assert_allclose(distances, np.take_along_axis(exact, ids, 1), rtol=rtol, atol=1e-3)
    np.testing.assert_allclose(distances, np.sort(exact, 1)[:, :k], rtol=rtol, atol=1e-3)
    assert np.all(np.diff(distances, axis=1) >= 0)


@pytest.fixture(scope="module")
def opq(blobs):
    """OPQ at its default M=8 Ks=256 (few iterations), the blobs added."""
    x, _ = blobs
    model = OPQ(M=8, niter=3, iter=5, seed=0).fit(x)
    model.add(x)
    return model


@pytest.fixture(scope="module")
def lopq(blobs):
    """LOPQ at its default M=8 Ks=256 (uint8 codes), V=6, the blobs added."""
    x, _ = blobs
    model = LOPQ(V=6, M=8, Ks=256, coarse_iter=10, iter=5, seed=3).fit(x)
    model.add(x)
    return model


@pytest.mark.parametrize("threads", [1, 2])
def test_opq_default_configuration_searches_its_reconstructions(blobs, opq, threads):
    """OPQ M=8 Ks=256: ADC in the rotated space equals the distance to the decoded vectors
    (R orthogonal), for every item."""
    x, q = blobs
    R = opq.rotation.astype(np.float64)
    np.testing.assert_allclose(R @ R.T, np.eye(32), atol=1e-5)
    recon = opq.decode(opq.pq.codes)
    with ref.native_threads(threads):
        for queries in (q, q[:1]):
            distances, ids = opq.search(queries, len(x))
            assert_ranks_exact_distances(distances, ids, queries, recon)


@pytest.mark.parametrize("threads", [1, 2])
def test_lopq_default_configuration_ranks_exact_distances(blobs, lopq, threads):
    """LOPQ M=8 Ks=256 (the x8 scoring loop): with the quota covering every item, the ranking
    is that of the exact asymmetric distances ||q - decode(code)||^2."""
    x, q = blobs
    recon = lopq.decode(lopq.codes)
    lopq.set_search_params(quota=len(x), exact_quota=False)
    with ref.native_threads(threads):
        distances, ids = lopq.search(q, 200)
    assert lopq.last_search["mean_candidates"] == len(x)
    assert_ranks_exact_distances(distances, ids, q, recon)


def cell_order(lopq, query):
    """Cells (c0, c1) of a query in increasing coarse distance d0[c0] + d1[c1] (float64), and
    the sorted distances."""
    h = lopq.coarse_centroids.shape[2]
    y = query.astype(np.float64)
    d0 = ((y[:h] - lopq.coarse_centroids[0].astype(np.float64)) ** 2).sum(-1)
    d1 = ((y[h:] - lopq.coarse_centroids[1].astype(np.float64)) ** 2).sum(-1)
    total = (d0[:, None] + d1[None, :]).ravel()
    order = np.argsort(total, kind="stable")
    return order // lopq.V, order % lopq.V, total[order]


@pytest.mark.parametrize("exact_quota", [True, False])
def test_lopq_candidates_are_the_quota_in_multi_index_order(blobs, lopq, exact_quota):
    """The candidate set by definition: cells in increasing coarse distance, each cell's items
    in id order, until the quota is reached (exact_quota: cut at exactly `quota` items;
    otherwise: the whole last cell). With k = the candidate count, the returned ids are
    exactly that set."""
    _, q = blobs
    cells = lopq.codes[:, 0].astype(np.int64) * lopq.V + lopq.codes[:, 1]
    for quota in (1, 150, 777):
        lopq.set_search_params(quota=quota, exact_quota=exact_quota)
        for query in q[:6]:
            c0, c1, dist = cell_order(lopq, query)
            gaps = np.diff(dist)
            taken, expected = 0, []
            for a, b, cut in zip(c0, c1, range(len(dist))):  # noqa: B007 (cut is read after the loop)
                members = np.flatnonzero(cells == a * lopq.V + b)  # in id order
                if exact_quota:
                    members = members[:quota - taken]
                expected.extend(members.tolist())
                taken += len(members)
                if taken >= quota:
                    break
            # the traversal order is unambiguous up to the last cell taken
            assert np.all(gaps[:cut + 1] > 1e-6 * dist.max())
            distances, ids = lopq.search(query[None], len(expected))
            assert lopq.last_search["max_candidates"] == len(expected)
            if exact_quota:
                assert len(expected) == quota
            assert sorted(ids[0].tolist()) == sorted(expected), (quota, exact_quota)


@pytest.mark.parametrize("threads", [1, 2])
def test_kmeans_converges_to_the_means_of_its_clusters(blobs, threads):
    """Lloyd's fixed point: once the labels stop changing, every centroid is the mean of its
    points (accumulated in double) and every point is labelled with its nearest centroid."""
    x, _ = blobs
    with ref.native_threads(threads):
        km = KMeans(niter=100, seed=4, max_points_per_centroid=None)
        labels = km.fit_predict(x, 20)
    assert len(km.objectives) < 100, "did not converge: the fixed point does not apply"
    dist = ((x[:, None, :].astype(np.float64) - km.centroids[None].astype(np.float64)) ** 2).sum(-1)
    assert np.array_equal(labels, dist.argmin(1))
    for c in range(20):
        members = x[labels == c].astype(np.float64)
        assert len(members) > 0
        np.testing.assert_allclose(km.centroids[c], members.mean(0).astype(np.float32),
                                   rtol=1e-6, atol=1e-5)
    assert km.objectives[-1] == pytest.approx(dist.min(1).sum(), rel=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_pq_codebooks_are_the_means_of_their_sub_vectors(blobs, threads):
    """PQ's k-means per sub-space, checked the same way on the last iteration's assignment:
    each codeword is the mean of the training sub-vectors encoded to it (after enough
    iterations for the labels to settle, which the objective shows)."""
    x, _ = blobs
    with ref.native_threads(threads):
        pq = PQ(M=8, Ks=16, iter=100, seed=2, max_points_per_centroid=None).fit(x)
        codes = pq.encode(x)
    dsub = 4
    settled = 0
    for m in range(8):
        objective = pq.objective[m]
        if objective[-1] != 0:  # ran all iterations: may not have converged
            continue
        settled += 1
        sub = x[:, m * dsub:(m + 1) * dsub].astype(np.float64)
        for c in np.unique(codes[:, m]):
            np.testing.assert_allclose(pq.codewords[m, c], sub[codes[:, m] == c].mean(0),
                                       rtol=1e-5, atol=1e-5)
    assert settled >= 6


def test_itq_default_configuration_equals_its_definition():
    """ITQ 64 bits on generated data: codes are the signs of (x - mean) @ projection, the
    loss is ||B - V R||^2, and search is Hamming k-NN with ties by the smaller id."""
    rng = np.random.default_rng(8)
    x = (rng.normal(size=(3000, 96)) * rng.uniform(0.5, 3, 96)).astype(np.float32)
    itq = ITQ(num_bit=64, niter=10, seed=1).fit(x)
    x64 = x.astype(np.float64)
    v = (x64 - itq.mean) @ itq.components.astype(np.float64)
    z = v @ itq.rotation.astype(np.float64)
    assert itq.loss == pytest.approx(((np.where(z >= 0, 1.0, -1.0) - z) ** 2).sum(), rel=1e-5)
    proj = (x64 - itq.mean) @ itq.projection.astype(np.float64)
    codes = itq.encode(x)
    bits = np.unpackbits(codes, axis=1, bitorder="little").astype(bool)
    clear = np.abs(proj) > 1e-4 * np.abs(proj).max()  # away from the sign boundary
    assert np.array_equal(bits[clear], (proj >= 0)[clear])
    itq.add(x)
    exact = ref.hamming(codes[:20], codes)
    for threads in (1, 2):
        with ref.native_threads(threads):
            for k in (1, 50):
                want_d, want_i = ref.topk(exact, k)
                distances, ids = itq.search(x[:20], k)
                assert np.array_equal(ids, want_i) and np.array_equal(distances, want_d)
                d1, i1 = hamming_search(codes[:1], codes, k)
                assert np.array_equal(i1[0], want_i[0])
