"""Our C++ PQ (plugin ``pq``): accuracy against faiss on siftsmall, exact ADC/SDC,
codes identical to faiss's given the same codebooks, pickling, and bad input
rejected before any C++ call."""
import pickle

import faiss
import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.pq import PQ
from benchpq.algorithms.primitives.codes import pack_codes, unpack_codes
from benchpq.api import Quantizer, Searcher
from benchpq.checks import InputError
from benchpq.measure import metrics


@pytest.fixture(scope="module")
def faiss_pq(siftsmall):
    """faiss IndexPQ M=8 trained on base, base added."""
    base, _, _ = siftsmall
    index = faiss.IndexPQ(base.shape[1], 8, 8)
    index.train(base)
    index.add(base)
    return index


@pytest.fixture(scope="module")
def own_pq(siftsmall):
    base, _, _ = siftsmall
    pq = PQ(M=8, seed=0).fit(base)
    pq.add(base)
    return pq


@pytest.fixture(scope="module")
def small():
    """Random data: 600 x 32 database, 20 queries, 16 codewords (exact references are cheap)."""
    rng = np.random.default_rng(5)
    return rng.normal(size=(600, 32)).astype(np.float32), \
        rng.normal(size=(20, 32)).astype(np.float32)


def assert_codes_match(x, codewords, ours, theirs, max_fraction=1e-3):
    """Codes equal, except where both codewords are equally near within float32 rounding."""
    M, _, dsub = codewords.shape
    rows, subs = np.nonzero(ours != theirs)
    assert len(rows) <= max_fraction * ours.size
    for i, m in zip(rows, subs):
        sub = x[i, m * dsub:(m + 1) * dsub].astype(np.float64)
        a, b = (codewords[m, c].astype(np.float64) for c in (ours[i, m], theirs[i, m]))
        scale = sub @ sub + max(a @ a, b @ b)
        assert abs(((sub - a) ** 2).sum() - ((sub - b) ** 2).sum()) <= 1e-5 * scale


def reference_topk(dist, k):
    """Smallest k of each row, nearest first, ties by smaller id (float64 reference)."""
    ids = np.array([np.lexsort((np.arange(row.size), row))[:k] for row in dist])
    return np.take_along_axis(dist, ids, 1), ids


def assert_search_matches(D, ids, ref, k):
    """Distances equal the reference at the returned ids and are the k smallest ones;
    ids equal the reference order except inside near-ties."""
    ref_d, ref_i = reference_topk(ref, min(k + 1, ref.shape[1]))  # one more: ties at the k-th
    np.testing.assert_allclose(D, np.take_along_axis(ref, ids, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(D, ref_d[:, :k], rtol=1e-4, atol=1e-4)
    apart = np.diff(ref_d, axis=1) > 1e-4 * ref_d[:, 1:]
    clear = np.ones(ref_d.shape, dtype=bool)
    clear[:, 1:] &= apart
    clear[:, :-1] &= apart
    clear = clear[:, :k]
    assert np.array_equal(ids[clear], ref_i[:, :k][clear])


def test_plugin_is_registered_quantizer_and_searcher():
    assert registry.get("pq") is PQ
    assert issubclass(PQ, Quantizer) and issubclass(PQ, Searcher)


def test_siftsmall_accuracy_matches_faiss(siftsmall, faiss_pq, own_pq):
    base, query, gt = siftsmall
    faiss_mse = metrics.mse(base, faiss_pq.sa_decode(faiss_pq.sa_encode(base)))
    own_mse = metrics.mse(base, own_pq.decode(own_pq.encode(base)))
    assert faiss_mse == pytest.approx(21965, rel=0.02)  # the reference figure of docs/design.md
    assert own_mse == pytest.approx(faiss_mse, rel=0.015)
    _, faiss_ids = faiss_pq.search(query, 100)
    distances, ids = own_pq.search(query, 100)
    assert distances.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (100, 100)
    assert np.all(np.diff(distances, axis=1) >= 0)
    for R in (1, 10, 100):
        assert metrics.recall_at(ids, gt, R) == pytest.approx(
            metrics.recall_at(faiss_ids, gt, R), abs=0.05)
    assert own_pq.code_bits == 64 and own_pq.codes_bytes == base.shape[0] * 8
    assert own_pq.model_bytes == 8 * 256 * 16 * 4
    assert own_pq.objective.shape == (8, 25)  # 25 iterations, as faiss trains


def test_from_faiss_encodes_and_searches_like_faiss(siftsmall, faiss_pq):
    base, query, _ = siftsmall
    pq = PQ.from_faiss(faiss_pq)
    faiss_codes = faiss.vector_to_array(faiss_pq.codes).reshape(len(base), 8)
    assert np.array_equal(pq.codes, faiss_codes)  # imported as they are
    np.testing.assert_array_equal(
        pq.codewords.ravel(), faiss.vector_to_array(faiss_pq.pq.centroids))
    assert_codes_match(base, pq.codewords, pq.encode(base), faiss_codes)
    np.testing.assert_allclose(pq.decode(faiss_codes), faiss_pq.sa_decode(faiss_codes))
    faiss_d, faiss_i = faiss_pq.search(query, 10)
    distances, ids = pq.search(query, 10)
    np.testing.assert_allclose(distances, faiss_d, rtol=1e-4)
    assert (ids == faiss_i).mean() > 0.99  # the rest are equal-distance ties


def test_to_faiss_encodes_and_searches_like_us(siftsmall, own_pq):
    base, query, _ = siftsmall
    index = own_pq.to_faiss()
    assert isinstance(index, faiss.IndexPQ) and index.ntotal == len(base)
    assert np.array_equal(faiss.vector_to_array(index.codes).reshape(len(base), 8), own_pq.codes)
    assert_codes_match(base, own_pq.codewords, own_pq.codes, index.sa_encode(base))
    faiss_d, faiss_i = index.search(query, 10)
    distances, ids = own_pq.search(query, 10)
    np.testing.assert_allclose(distances, faiss_d, rtol=1e-4)
    assert (ids == faiss_i).mean() > 0.99


@pytest.mark.parametrize("nbits", [4, 10])
def test_faiss_bit_packed_codes_round_trip(small, nbits):
    x, _ = small
    index = faiss.IndexPQ(32, 4, nbits)
    index.pq.cp.min_points_per_centroid = 0
    index.train(np.tile(x, (2, 1)))
    index.add(x)
    pq = PQ.from_faiss(index)
    assert pq.Ks == 2 ** nbits and pq.codes.dtype == (np.uint8 if nbits <= 8 else np.uint16)
    np.testing.assert_allclose(pq.decode(pq.codes), index.sa_decode(index.sa_encode(x)))
    packed = faiss.vector_to_array(index.codes).reshape(len(x), index.code_size)
    assert np.array_equal(pack_codes(unpack_codes(packed, 4, nbits), nbits), packed)
    assert np.array_equal(pq.to_faiss().sa_encode(x), index.sa_encode(x))


def test_adc_and_sdc_equal_numpy_reference(small):
    x, q = small
    pq = PQ(M=4, Ks=16, seed=1).fit(x)
    pq.add(x)
    assert pq._quantizer().has_sdc_tables()
    recon = pq.decode(pq.codes).astype(np.float64)
    adc = ((q[:, None, :].astype(np.float64) - recon[None]) ** 2).sum(-1)
    for k in (1, 10, len(x)):
        assert_search_matches(*pq.search(q, k), adc, k)
    q_recon = pq.decode(pq.encode(q)).astype(np.float64)
    sdc = ((q_recon[:, None, :] - recon[None]) ** 2).sum(-1)
    for k in (1, 10):
        assert_search_matches(*pq.search_sdc(q, k), sdc, k)


def test_equal_distances_are_ordered_by_id(small):
    x, q = small
    pq = PQ(M=4, Ks=16, seed=1).fit(x)
    pq.add(np.repeat(x[:50], 4, axis=0))  # every code four times: exact ties
    distances, ids = pq.search(q, 40)
    for row_d, row_i in zip(distances, ids):
        order = np.lexsort((row_i, row_d))
        assert np.array_equal(order, np.arange(40))
    for method in (pq.search, pq.search_sdc):  # fewer queries than threads: split database
        d1, i1 = method(q[:1], 40)
        assert np.array_equal(i1[0], method(q, 40)[1][0])


def test_large_ks_gives_uint16_codes_and_on_the_fly_sdc(small):
    x, q = small
    x = np.tile(x, (2, 1)) + np.random.default_rng(0).normal(0, 0.1, (1200, 32)).astype(np.float32)
    pq = PQ(M=8, Ks=1024, iter=5, seed=0).fit(x)
    codes = pq.encode(x)
    assert codes.dtype == np.uint16 and codes.max() < 1024 and pq.code_bits == 80
    coarse = PQ(M=8, Ks=256, iter=5, seed=0).fit(x)
    assert metrics.mse(x, pq.decode(codes)) < metrics.mse(x, coarse.decode(coarse.encode(x)))
    pq.add(x)
    recon = pq.decode(pq.codes).astype(np.float64)
    adc = ((q[:, None, :].astype(np.float64) - recon[None]) ** 2).sum(-1)
    assert_search_matches(*pq.search(q, 5), adc, 5)
    wide = PQ(M=32, Ks=1024, iter=3, seed=0).fit(x)  # 32 * 1024^2 floats: tables too big
    wide.add(x)
    assert not wide._quantizer().has_sdc_tables()
    q_recon = wide.decode(wide.encode(q)).astype(np.float64)
    recon = wide.decode(wide.codes).astype(np.float64)
    sdc = ((q_recon[:, None, :] - recon[None]) ** 2).sum(-1)
    assert_search_matches(*wide.search_sdc(q, 5), sdc, 5)
    odd = PQ(M=4, Ks=300, iter=3).fit(x)
    assert odd.encode(x).dtype == np.uint16
    with pytest.raises(InputError, match="power of two"):
        odd.to_faiss()


def test_pickle_round_trip(small):
    x, q = small
    pq = PQ(M=4, Ks=16, seed=2).fit(x)
    pq.add(x)
    clone = pickle.loads(pickle.dumps(pq))
    assert clone._cpp is None
    assert np.array_equal(clone.encode(x), pq.encode(x))
    for a, b in zip(clone.search(q, 7), pq.search(q, 7)):
        assert np.array_equal(a, b)
    assert np.array_equal(clone.search_sdc(q, 7)[1], pq.search_sdc(q, 7)[1])
    unfitted = pickle.loads(pickle.dumps(PQ(M=2)))
    assert unfitted.M == 2 and unfitted.codewords is None


def test_results_depend_on_seed_not_on_threads(small):
    x, _ = small
    native.set_num_threads(1)
    one = PQ(M=4, Ks=16, seed=3).fit(x)
    native.set_num_threads(2)
    two = PQ(M=4, Ks=16, seed=3).fit(x)  # one sub-space per thread: serial k-means inside
    assert native.load().get_num_threads() == 2  # the setting outlives that parallel region
    assert np.array_equal(one.codewords, two.codewords)
    assert np.array_equal(one.encode(x), two.encode(x))
    other = PQ(M=4, Ks=16, seed=4).fit(x)
    assert not np.array_equal(one.codewords, other.codewords)
    assert np.all(np.diff(one.objective, axis=1) <= 1e-6 * one.objective[:, 1:])


def test_float64_strided_and_fortran_inputs_are_converted(small):
    x, q = small
    pq = PQ(M=4, Ks=16, seed=0).fit(x)
    reference = pq.encode(x)
    assert np.array_equal(pq.encode(x.astype(np.float64)), reference)
    assert np.array_equal(pq.encode(np.asfortranarray(x)), reference)
    assert np.array_equal(pq.encode(np.repeat(x, 2, axis=0)[::2]), reference)
    assert np.array_equal(PQ(M=4, Ks=16, seed=0).fit(x.astype(np.float64)).codewords,
                          pq.codewords)
    pq.add(x)
    assert np.array_equal(pq.search(np.asfortranarray(q), 3)[1], pq.search(q, 3)[1])


class _NoCpp:
    """Stands in for the C++ object: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"C++ was called ({name}) with bad input")


def test_bad_input_is_rejected_before_cpp(small, monkeypatch):
    x, q = small
    with pytest.raises(InputError, match=r"Ks: must be \[2, 65536\]"):
        PQ(Ks=1)
    with pytest.raises(InputError, match=r"Ks: must be \[2, 65536\]"):
        PQ(Ks=2 ** 16 + 1)
    with pytest.raises(InputError, match="M: must be >= 1"):
        PQ(M=0)
    with pytest.raises(InputError, match="iter: must be >= 1"):
        PQ(iter=0)
    with pytest.raises(InputError, match="init: expected one of"):
        PQ(init="kmeans")

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(InputError, match="M=5 does not divide the dimension D=32"):
        PQ(M=5).fit(x)
    with pytest.raises(InputError, match="M: must be"):
        PQ(M=64).fit(x)
    with pytest.raises(InputError, match=r"more codewords \(256\) than training vectors \(100\)"):
        PQ(M=4).fit(x[:100])
    bad = x.copy()
    bad[17, 3] = np.nan
    with pytest.raises(InputError, match=r"learn: contains NaN \(first in row 17\)"):
        PQ(M=4, Ks=16).fit(bad)
    bad[17, 3] = np.inf
    with pytest.raises(InputError, match=r"learn: contains Inf"):
        PQ(M=4, Ks=16).fit(bad)
    with pytest.raises(InputError, match="expected a numeric array"):
        PQ(M=4, Ks=16).fit(np.array([["1", "2"], ["3", "4"]]))
    with pytest.raises(InputError, match="expected a 2-D array"):
        PQ(M=4, Ks=16).fit(x[0])
    with pytest.raises(InputError, match="seed: must be"):
        PQ(M=4, Ks=16, seed=-1).fit(x)
    with pytest.raises(InputError, match="seed: expected an integer"):
        PQ(M=4, Ks=16, seed="1").fit(x)
    with pytest.raises(InputError, match=r"call fit\(\)"):
        PQ(M=4, Ks=16).encode(x)
    monkeypatch.undo()

    pq = PQ(M=4, Ks=16, seed=0).fit(x)
    monkeypatch.setattr(native, "load", no_native)
    pq._cpp = _NoCpp()
    with pytest.raises(InputError, match=r"add\(\) vectors before searching"):
        pq.search(q, 1)
    with pytest.raises(InputError, match="dimension mismatch, expected 32 columns, got 16"):
        pq.encode(x[:, :16])
    with pytest.raises(InputError, match=r"x: contains Inf \(first in row 17\)"):
        pq.encode(bad)
    with pytest.raises(InputError, match=r"expected dtype uint8 \(Ks=16\), got uint16"):
        pq.decode(np.zeros((3, 4), np.uint16))
    with pytest.raises(InputError, match="expected dtype uint8"):
        pq.decode(np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="expected a numpy array"):
        pq.decode([[1, 2, 3, 4]])
    with pytest.raises(InputError, match="dimension mismatch, expected 4 columns, got 5"):
        pq.decode(np.zeros((3, 5), np.uint8))
    with pytest.raises(InputError, match="code 16 out of range for Ks=16"):
        pq.decode(np.full((3, 4), 16, np.uint8))
    pq.codes = np.zeros((300, 4), np.uint8)  # as if 300 vectors were added
    with pytest.raises(InputError, match="k=301 is larger than the database"):
        pq.search(q, 301)
    with pytest.raises(InputError, match="k: must be >= 1"):
        pq.search_sdc(q, 0)
    with pytest.raises(InputError, match="query: dimension mismatch"):
        pq.search(q[:, :8], 3)
    with pytest.raises(InputError, match="query: contains Inf"):
        pq.search(np.full((1, 32), np.inf, np.float32), 3)


def integer_pq(M, dsub=3, Ks=256, seed=0):
    """A PQ whose codewords (and so every ADC distance) are small integers: exact in float32
    whatever the order of the additions, so ids and distances can be compared exactly."""
    rng = np.random.default_rng(seed)
    pq = PQ(M=M, Ks=Ks)
    pq.dim = M * dsub
    pq.codewords = rng.integers(0, 4, size=(M, Ks, dsub)).astype(np.float32)
    return pq, rng


@pytest.mark.parametrize("M", [4, 5, 8, 16])
def test_u8_adc_equals_brute_force_at_any_m(M):
    pq, rng = integer_pq(M)
    n, dsub = 3000, pq.dim // M
    pq.codes = rng.integers(0, 256, size=(n, M)).astype(np.uint8)
    pq.codes[1000:1400] = pq.codes[:400]  # exact ties between ids
    queries = rng.integers(0, 4, size=(9, pq.dim)).astype(np.float32)
    sub = queries.reshape(9, M, 1, dsub).astype(np.int64)
    tables = ((sub - pq.codewords.astype(np.int64)[None]) ** 2).sum(-1)  # (nq, M, Ks)
    exact = tables[:, np.arange(M), pq.codes].sum(-1)                    # (nq, n) int64
    for k in (1, 37, n):
        ref_ids = np.array([np.lexsort((np.arange(n), row))[:k] for row in exact])
        for nq in (9, 1):  # parallel over queries; one query over a split database
            distances, ids = pq.search(queries[:nq], k)
            np.testing.assert_array_equal(ids, ref_ids[:nq])
            np.testing.assert_array_equal(distances, np.take_along_axis(exact, ref_ids, 1)[:nq])


PINNED_DATA_SEED = 2024
#: (M, Ks, max_points_per_centroid) -> sha256[:16] of codewords, codes, ADC distances, ADC ids,
#: SDC distances, SDC ids; mse; the first two codes. Measured with the code before the ADC,
#: threading and OPQ speed changes (at 1 and at 2 threads); the distances re-recorded on the
#: scalar path (BENCHPQ_SIMD=scalar) when the core's sums got one defined order (sub-space
#: tables without fused multiply-adds), the rest unchanged. Every SIMD path must give them.
PINNED = {
    (4, 64, 16): ("223395793b20f0f4", "6b14a44700540bc8", "715b2bf3026a4506", "54eeb7ead3ed9a30",
                  "1a7ef5add77b538f", "08b12687607eedeb", 51.63308334350586,
                  [[48, 30, 63, 20], [41, 2, 17, 59]]),
    (5, 256, None): ("bf1da187a9005739", "456f95a7af5eaf94", "5b222094028c6aa5", "a9cea79c7be2d84a",
                     "39b94ea3ced4dcdf", "f16e601df5472990", 23.939794540405273,
                     [[27, 204, 63, 110, 2], [6, 43, 200, 119, 0]]),
    (8, 16, 256): ("f5c8d3faccac16b5", "3e8d1c121c155ecb", "1768635c902bd301", "db11d7677a79fb9a",
                   "2140dc90f3a5cf07", "104c2eda1fdd0aea", 43.110328674316406,
                   [[1, 5, 3, 10, 4, 0, 12, 5], [0, 6, 10, 3, 15, 5, 8, 3]]),
    (10, 300, 8): ("9e8d0baae3e18532", "e15cc4ad171e6e81", "fd740bc1f5b2188c", "e149e4cae94a8059",
                   "fbc41bc9793c9daa", "17eafad03a1277bb", 7.2482075691223145,
                   [[18, 113, 159, 117, 17, 0, 235, 152, 16, 22],
                    [105, 255, 12, 94, 72, 298, 109, 56, 94, 76]]),
    (20, 16, None): ("8c7c9b6c2d7d5d06", "39811c89c6296184", "d5caaaf5e41acea5", "42bc45f4627ad445",
                     "eb5012fd6b36bed0", "b83ae793a1903b33", 11.784689903259277,
                     [[2, 5, 14, 13, 13, 9, 4, 4, 9, 6, 10, 11, 6, 10, 13, 13, 9, 3, 5, 1],
                      [10, 3, 13, 2, 6, 10, 5, 11, 10, 15, 13, 14, 1, 11, 5, 10, 0, 0, 0, 0]]),
}


@pytest.mark.native_kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M, Ks, mppc", list(PINNED))
def test_results_equal_pinned_values(M, Ks, mppc, threads):
    """Training, encoding, ADC and SDC give exactly what they gave before the speed work."""
    import hashlib

    def digest(a):
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]

    rng = np.random.default_rng(PINNED_DATA_SEED)
    x = (rng.normal(size=(3000, 40)) * rng.uniform(0.5, 3, size=40)).astype(np.float32)
    q = rng.normal(size=(30, 40)).astype(np.float32)
    native.set_num_threads(threads)
    try:
        pq = PQ(M=M, Ks=Ks, iter=6, seed=11, max_points_per_centroid=mppc).fit(x)
        codes = pq.encode(x)
        mse = float(((x - pq.decode(codes)) ** 2).sum(1).mean())
        pq.add(x)
        adc, sdc = pq.search(q, 17), pq.search_sdc(q, 5)
    finally:
        native.set_num_threads(2)
    *hashes, pinned_mse, first = PINNED[M, Ks, mppc]
    assert [digest(a) for a in (pq.codewords, codes, *adc, *sdc)] == hashes
    assert mse == pinned_mse
    assert codes[:2].tolist() == first


def test_training_rows_give_the_same_codebooks(small):
    x, _ = small
    x = np.tile(x, (4, 1)) + np.random.default_rng(1).normal(0, 0.1, (2400, 32)).astype(np.float32)
    pq = PQ(M=4, Ks=16, iter=5, seed=9, max_points_per_centroid=40)
    rows = pq.training_rows(len(x))
    assert rows.shape == (640,) and np.all(np.diff(rows) > 0) and rows[-1] < len(x)
    np.testing.assert_array_equal(PQ(M=4, Ks=16, iter=5, seed=9, max_points_per_centroid=40)
                                  .fit(x[rows]).codewords, pq.fit(x).codewords)
    assert pq.training_rows(640) is None and PQ(M=4, Ks=16).training_rows(10 ** 6) is not None
    assert PQ(M=4, Ks=16, max_points_per_centroid=None).training_rows(10 ** 6) is None


def test_hot_start_continues_from_given_codewords(small):
    x, _ = small
    first = PQ(M=4, Ks=16, iter=3, seed=0).fit(x)
    more = PQ(M=4, Ks=16, iter=4, seed=5).fit(x, codewords=first.codewords)
    longer = PQ(M=4, Ks=16, iter=7, seed=0).fit(x)
    # 3 + 4 iterations from the same start: the objective continues where it stopped
    np.testing.assert_allclose(more.objective[:, -1], longer.objective[:, -1], rtol=1e-6)
    assert np.all(more.objective[:, 0] <= first.objective[:, -1] * (1 + 1e-6))
    with pytest.raises(InputError, match=r"codewords: expected shape \(4, 16, 8\)"):
        PQ(M=4, Ks=16).fit(x, codewords=first.codewords[:, :8])
    bad = first.codewords.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="codewords: contains NaN"):
        PQ(M=4, Ks=16).fit(x, codewords=bad)
