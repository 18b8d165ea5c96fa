"""Our fast-scan PQ (plugin ``pqfs``): quantized distances against a numpy reference
within the quantization bound, exact ADC top-k after re-ranking, the scalar and SIMD
paths and any thread count giving identical results, no 16-bit overflow at large M,
faiss interop (same blocks, same ids as IndexPQFastScan on siftsmall), pickling, and
bad input rejected before any C++ call."""
import pickle

import faiss
import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.pq import PQ
from benchpq.algorithms.own.pqfs import BLOCK, PQFastScan, simd_supported
from benchpq.api import Quantizer, Searcher
from benchpq.checks import InputError
from benchpq.measure import metrics

pytestmark = pytest.mark.native_kernels

SIMD = [level for level in ("scalar", "avx2", "avx512") if simd_supported(level)]


@pytest.fixture(scope="module")
def small():
    """Random data: 1000 x 48 database (not a multiple of 32), 7 queries."""
    rng = np.random.default_rng(11)
    return rng.normal(size=(1000, 48)).astype(np.float32), \
        rng.normal(size=(7, 48)).astype(np.float32)


@pytest.fixture(scope="module")
def model(small):
    """M=6 (three sub-quantizer pairs: an odd pair count), trained and filled."""
    x, _ = small
    m = PQFastScan(M=6, seed=0).fit(x)
    m.add(x)
    return m


def sub_codes(codes):
    """(n, M/2) two-nibble codes -> (n, M) sub-codes."""
    return np.stack([codes & 15, codes >> 4], axis=-1).reshape(len(codes), -1)


def table_sums(tables, codes):
    """sum_m tables[q, m, codes[i, m]] for every query q and code i: (nq, n)."""
    M = tables.shape[1]
    return tables[:, np.arange(M), codes].sum(axis=-1)


def top_k(values, k):
    """The k smallest of each row, ties by the smaller column: (values, columns)."""
    cols = np.array([np.lexsort((np.arange(row.size), row))[:k] for row in values])
    return np.take_along_axis(values, cols, 1), cols


def search(m, q, k, **params):
    m.set_search_params(**params)
    try:
        return m.search(q, k)
    finally:
        m.set_search_params(k_factor=1, simd="auto")


def test_plugin_is_registered_quantizer_and_searcher():
    assert registry.get("pqfs") is PQFastScan
    assert issubclass(PQFastScan, Quantizer) and issubclass(PQFastScan, Searcher)


def test_codes_are_our_pq_codes_in_nibbles(small, model):
    x, _ = small
    pq = PQ(M=6, Ks=16)
    pq.dim, pq.codewords = model.dim, model.codewords
    codes = model.encode(x)
    assert codes.shape == (1000, 3) and codes.dtype == np.uint8
    assert np.array_equal(sub_codes(codes), pq.encode(x))
    np.testing.assert_array_equal(model.decode(codes), pq.decode(pq.encode(x)))
    assert model.blocks.shape == (32, BLOCK * 3) and model.ntotal == 1000
    assert model.code_bits == 24 and model.codes_bytes == 32 * 32 * 3
    assert model.model_bytes == 6 * 16 * 8 * 4


def test_quantized_search_is_the_integer_top_k_within_the_bound(small, model):
    x, q = small
    tables, qtables, scale, offset = model.lookup_tables(q)
    codes = sub_codes(model.encode(x))
    exact = table_sums(tables.astype(np.float64), codes)
    sums = table_sums(qtables.astype(np.int64), codes)
    assert qtables.max() <= 255
    approx = offset[:, None] + sums / scale[:, None]
    bound = model.M / (2 * scale[:, None])  # each entry is rounded by at most 1/2
    assert np.all(np.abs(approx - exact) <= bound * (1 + 1e-5))
    assert np.abs(approx - exact).max() > 0.1 * bound.max()  # the bound is not vacuous
    ref_sums, ref_ids = top_k(sums, 50)
    distances, ids = model.search(q, 50)
    assert np.array_equal(ids, ref_ids)
    np.testing.assert_allclose(distances, offset[:, None] + ref_sums / scale[:, None], rtol=1e-6)


def test_reranking_all_candidates_returns_the_exact_adc_top_k(small, model):
    x, q = small
    tables, _, _, _ = model.lookup_tables(q)
    exact = table_sums(tables.astype(np.float64), sub_codes(model.encode(x)))
    ref_d, ref_ids = top_k(exact, 20)
    distances, ids = search(model, q, 20, k_factor=50)  # 50 * 20 >= n: every code re-ranked
    np.testing.assert_allclose(distances, ref_d, rtol=1e-5)
    differ = ids != ref_ids
    assert differ.mean() < 0.02  # only float32-rounding ties may swap
    np.testing.assert_allclose(np.take_along_axis(exact, ids, 1)[differ], ref_d[differ], rtol=1e-5)
    assert (search(model, q, 20, k_factor=2)[1] == ref_ids).mean() > 0.9


@pytest.mark.parametrize("M, D, n, nq",
                         [(6, 48, 1000, 7), (8, 32, 4000, 1), (64, 128, 300, 5), (300, 600, 70, 3)])
def test_scalar_simd_and_thread_counts_give_identical_results(M, D, n, nq):
    """Every SIMD level, 1 and 2 threads (over queries, or over blocks for one query),
    query batches of 1..3, odd pair counts and large M (300 * 255 would overflow
    16 bits: the tables are scaled down instead)."""
    rng = np.random.default_rng(M)
    x = rng.normal(size=(n, D)).astype(np.float32)
    q = rng.normal(size=(nq, D)).astype(np.float32)
    m = PQFastScan(M=M, seed=1).fit(x)
    m.add(x)
    _, qtables, scale, _ = m.lookup_tables(q)
    assert qtables.astype(np.int64).max(axis=2).sum(axis=1).max() <= 65535
    k = min(25, n)
    for k_factor in (1, 3):
        results = []
        for threads in (1, 2):
            native.set_num_threads(threads)
            results += [search(m, q, k, simd=level, k_factor=k_factor) for level in SIMD]
        for distances, ids in results[1:]:
            assert np.array_equal(ids, results[0][1])
            assert np.array_equal(distances, results[0][0])
    if M == 300:  # the quantized top-k is still exact in integers
        codes = sub_codes(m.encode(x))
        _, ref_ids = top_k(table_sums(qtables.astype(np.int64), codes), k)
        assert np.array_equal(search(m, q, k)[1], ref_ids)


def test_adding_in_parts_equals_adding_at_once(small, model):
    x, q = small
    parts = PQFastScan.from_faiss(model.to_faiss())
    parts.blocks, parts.ntotal = None, 0
    for start, stop in ((0, 5), (5, 37), (37, 64), (64, 1000)):
        parts.add(x[start:stop])
    assert parts.ntotal == 1000 and np.array_equal(parts.blocks, model.blocks)
    assert np.array_equal(parts.search(q, 10)[1], model.search(q, 10)[1])


def test_pickle_round_trip(small, model):
    x, q = small
    model.set_search_params(k_factor=3)
    clone = pickle.loads(pickle.dumps(model))
    model.set_search_params(k_factor=1)
    assert clone.k_factor == 3 and clone.pq._cpp is None
    assert np.array_equal(clone.encode(x), model.encode(x))
    for a, b in zip(clone.search(q, 7), search(model, q, 7, k_factor=3)):
        assert np.array_equal(a, b)
    unfitted = pickle.loads(pickle.dumps(PQFastScan(M=4)))
    assert unfitted.M == 4 and unfitted.codewords is None


def test_search_parameters(small):
    from benchpq.measure import search_grid
    m = PQFastScan(M=4)
    m.set_search_params(k_factor=4, simd="scalar")
    assert (m.k_factor, m.simd) == (4, "scalar")
    m.set_search_params(k_factor=2)
    assert (m.k_factor, m.simd) == (2, "scalar")
    assert search_grid.accepted(m) == ["k_factor", "simd"]
    with pytest.raises(InputError,
                       match="unknown search parameter nprobe; it accepts k_factor, simd"):
        search_grid.check(m, [{"nprobe": 3}])
    with pytest.raises(InputError, match="k_factor: must be >= 1"):
        m.set_search_params(k_factor=0)
    with pytest.raises(InputError, match="simd: expected one of"):
        m.set_search_params(simd="sse")
    if not simd_supported("avx512"):
        with pytest.raises(InputError, match="this CPU cannot run 'avx512'"):
            m.set_search_params(simd="avx512")


class _NoCpp:
    """Stands in for the C++ object: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"C++ was called ({name}) with bad input")


def test_bad_input_is_rejected_before_cpp(small, monkeypatch):
    x, q = small
    with pytest.raises(InputError, match="M must be even, got 5"):
        PQFastScan(M=5)

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(InputError, match="M=10 does not divide the dimension D=48"):
        PQFastScan(M=10).fit(x)
    with pytest.raises(InputError, match=r"more codewords \(16\) than training vectors \(10\)"):
        PQFastScan(M=4).fit(x[:10])
    with pytest.raises(InputError, match=r"call fit\(\)"):
        PQFastScan(M=4).encode(x)
    monkeypatch.undo()

    m = PQFastScan(M=4, seed=0).fit(x)
    monkeypatch.setattr(native, "load", no_native)
    m.pq._cpp = _NoCpp()
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match=r"add\(\) vectors before searching"):
        m.search(q, 1)
    with pytest.raises(InputError, match="dimension mismatch, expected 48 columns, got 16"):
        m.encode(x[:, :16])
    with pytest.raises(InputError, match=r"x: contains NaN \(first in row 3\)"):
        m.encode(bad)
    with pytest.raises(InputError, match="expected a numpy array of uint8 codes"):
        m.decode(np.zeros((3, 2), np.uint16))
    with pytest.raises(InputError, match="dimension mismatch, expected 2 columns, got 4"):
        m.decode(np.zeros((3, 4), np.uint8))
    with pytest.raises(InputError, match="dimension mismatch"):
        m.add_codes(np.zeros((3, 3), np.uint8))
    m.blocks, m.ntotal = np.zeros((1, BLOCK * 2), np.uint8), 20
    with pytest.raises(InputError, match="k"):
        m.search(q, 21)
    with pytest.raises(InputError, match=r"query: contains NaN \(first in row 3\)"):
        m.search(bad, 5)
    with pytest.raises(InputError, match="dimension mismatch"):
        m.search(q[:, :8], 5)


# -- siftsmall: against faiss's IndexPQFastScan ----------------------------------------

@pytest.fixture(scope="module")
def faiss_fs(siftsmall):
    """faiss IndexPQFastScan 16x4 trained on base, base added."""
    base, _, _ = siftsmall
    index = faiss.IndexPQFastScan(base.shape[1], 16, 4)
    index.train(base)
    index.add(base)
    return index


def test_same_codebooks_as_faiss_give_the_same_codes_and_ids(siftsmall, faiss_fs):
    base, query, _ = siftsmall
    ours = PQFastScan.from_faiss(faiss_fs)
    assert np.array_equal(ours.encode(base), faiss_fs.sa_encode(base))
    packed = PQFastScan.from_faiss(faiss_fs)
    packed.blocks, packed.ntotal = None, 0
    packed.add(base)
    assert np.array_equal(packed.blocks, ours.blocks)  # faiss's block layout, byte for byte
    faiss_d, faiss_i = faiss_fs.search(query, 100)
    distances, ids = ours.search(query, 100)
    np.testing.assert_allclose(distances, faiss_d, rtol=1e-6)
    # faiss returns equal quantized distances in no particular order, we by id: compare
    # after ordering faiss's ties by id too; every raw difference is such a tie.
    order = np.array([np.lexsort((i, d)) for d, i in zip(faiss_d, faiss_i)])
    assert (np.take_along_axis(faiss_i, order, 1) == ids).mean() >= 0.99
    differ = faiss_i != ids
    np.testing.assert_allclose(distances[differ], faiss_d[differ], rtol=1e-6)
    back = ours.to_faiss()
    assert isinstance(back, faiss.IndexPQFastScan) and back.ntotal == len(base)
    assert np.array_equal(back.search(query, 100)[1], faiss_i)


def test_siftsmall_recall_matches_faiss_and_reranking_helps(siftsmall, faiss_fs):
    base, query, gt = siftsmall
    ours = PQFastScan(M=16, seed=0).fit(base)
    ours.add(base)
    _, faiss_ids = faiss_fs.search(query, 100)
    _, ids = ours.search(query, 100)
    for R in (1, 10, 100):
        assert metrics.recall_at(ids, gt, R) == pytest.approx(
            metrics.recall_at(faiss_ids, gt, R), abs=0.05)
    _, reranked = search(ours, query, 100, k_factor=4)
    for R in (1, 10):
        assert metrics.recall_at(reranked, gt, R) >= metrics.recall_at(ids, gt, R)
