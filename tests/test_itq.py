"""Our ITQ (plugin ``itq``, ``benchpq.algorithms.own.itq``) and the Hamming search: the C++ loops
against numpy, the loss within 1% of the pqkmeans library's ITQEncoder on siftsmall, the search
contract (exact top-k, ties by id), determinism, pickling, bad input rejected before C++."""
import pickle

import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.itq import ITQ, hamming_distances, hamming_search, serial_blas
from benchpq.api import Searcher
from benchpq.checks import InputError
from benchpq.measure import metrics


@pytest.fixture(scope="module")
def itq32(siftsmall):
    model = ITQ(num_bit=32, seed=0).fit(siftsmall[0])
    model.add(siftsmall[0])
    return model


def popcount_reference(a, b):
    ua, ub = (np.unpackbits(c, axis=1, bitorder="little") for c in (a, b))
    return (ua[:, None, :] != ub[None, :, :]).sum(-1)


def topk_reference(dist, k):
    ids = np.array([np.lexsort((np.arange(row.size), row))[:k] for row in dist])
    return np.take_along_axis(dist, ids, 1), ids


def test_plugin_is_a_registered_searcher(siftsmall, itq32):
    base, query, gt = siftsmall
    assert registry.get("itq") is ITQ and isinstance(itq32, Searcher)
    distances, ids = itq32.search(query, 100)
    assert distances.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (100, 100)
    assert np.all(np.diff(distances, axis=1) >= 0)
    assert metrics.recall_at(ids, gt, 100) > 0.5  # 32 bits on SIFT: far better than chance
    assert itq32.code_bits == 32 and itq32.codes_bytes == len(base) * 4
    assert itq32.model_bytes == 128 * 4 + 128 * 32 * 4
    extra = itq32.extra_metrics()
    assert extra["quantization_loss"] == itq32.loss and extra["n_train"] == len(base)


def test_cpp_loops_equal_numpy(siftsmall):
    base = siftsmall[0][:3000]
    ns = native.load()
    mean, cov = np.empty(128), np.empty((128, 128))
    ns.itq_mean_cov(base, 3000, 128, mean, cov)
    x64 = base.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-6)
    model = ITQ(num_bit=64, niter=5, seed=1).fit(base)
    v = (x64 - model.mean) @ model.components.astype(np.float64)
    z = v @ model.rotation.astype(np.float64)
    b = np.where(z >= 0, 1.0, -1.0)
    assert model.loss == pytest.approx(((b - z) ** 2).sum(), rel=1e-5)
    v32 = np.ascontiguousarray(v, dtype=np.float32)
    cross = np.empty((64, 64))
    loss = ns.itq_step(v32, 3000, 64, model.rotation, cross)
    z32 = v32.astype(np.float64) @ model.rotation.astype(np.float64)
    b32 = np.where(z32 >= 0, 1.0, -1.0)
    assert loss == pytest.approx(((b32 - z32) ** 2).sum(), rel=1e-5)
    np.testing.assert_allclose(cross, v32.astype(np.float64).T @ b32, rtol=1e-4, atol=1e-2)
    codes = model.encode(base)
    proj = (x64 - model.mean) @ model.projection.astype(np.float64)
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    differ = bits != (proj >= 0)
    assert differ.mean() < 1e-4 and np.all(np.abs(proj[differ]) < 1e-3 * np.abs(proj).max())


def test_loss_never_increases_and_beats_pca_signs(siftsmall):
    model = ITQ(num_bit=32, niter=30, seed=2).fit(siftsmall[0])
    assert np.all(np.diff(model.losses) <= 1e-6 * model.losses[1:])
    assert len(model.losses) == 31
    one = ITQ(num_bit=32, niter=1, seed=2).fit(siftsmall[0])
    assert model.loss < one.losses[0]


def test_loss_within_one_percent_of_the_library(siftsmall):
    pqk = pytest.importorskip("pqkmeans")
    base = siftsmall[0]
    for num_bit in (32, 64):
        ours = ITQ(num_bit=num_bit, niter=50, seed=0).fit(base).loss
        np.random.seed(0)
        lib = pqk.encoder.ITQEncoder(iteration=50, num_bit=num_bit)
        with serial_blas():  # the library's numpy loop, without BLAS threads fighting OpenMP's
            lib.fit(base)
        z = lib.trained_encoder.pca.transform(base) @ lib.trained_encoder.R
        theirs = float(((np.where(z >= 0, 1.0, -1.0) - z) ** 2).sum())
        assert ours <= theirs * 1.01, (num_bit, ours, theirs)


@pytest.mark.parametrize("nbytes", [1, 2, 3, 4, 6, 8, 12, 16, 24, 40, 520])
def test_hamming_distances_and_search_equal_numpy(nbytes):
    rng = np.random.default_rng(nbytes)
    codes = rng.integers(0, 256, (500, nbytes)).astype(np.uint8)
    codes[250:300] = codes[:50]  # exact ties
    queries = np.concatenate([codes[:3], rng.integers(0, 256, (9, nbytes)).astype(np.uint8)])
    ref = popcount_reference(queries, codes)
    assert np.array_equal(hamming_distances(queries, codes), ref)
    for k in (1, 10, 500):
        distances, ids = hamming_search(queries, codes, k)
        ref_d, ref_i = topk_reference(ref, k)
        assert np.array_equal(ids, ref_i) and np.array_equal(distances, ref_d.astype(np.float32))
    d1, i1 = hamming_search(queries[:1], codes, 7)  # fewer queries than threads
    assert np.array_equal(i1[0], hamming_search(queries, codes, 7)[1][0])


def test_deterministic_whatever_the_threads(siftsmall):
    models = []
    for threads in (1, 2):
        native.set_num_threads(threads)
        models.append(ITQ(num_bit=32, niter=10, seed=3).fit(siftsmall[0]))
    assert np.array_equal(models[0].projection, models[1].projection)
    assert np.array_equal(models[0].losses, models[1].losses)
    other = ITQ(num_bit=32, niter=10, seed=4).fit(siftsmall[0])
    assert not np.array_equal(other.projection, models[0].projection)


def test_pickle_round_trip(siftsmall, itq32):
    _, query, _ = siftsmall
    clone = pickle.loads(pickle.dumps(itq32))
    assert np.array_equal(clone.encode(query), itq32.encode(query))
    for a, b in zip(clone.search(query, 5), itq32.search(query, 5)):
        assert np.array_equal(a, b)
    assert pickle.loads(pickle.dumps(ITQ(num_bit=16))).projection is None


def test_train_size_samples_rows(siftsmall):
    model = ITQ(num_bit=16, niter=5, seed=0, train_size=2000).fit(siftsmall[0])
    assert model.n_train == 2000
    again = ITQ(num_bit=16, niter=5, seed=0, train_size=2000).fit(siftsmall[0])
    assert np.array_equal(model.projection, again.projection)


def test_num_bit_not_a_multiple_of_8_pads_with_zero_bits(siftsmall):
    """12 bits: ITQ in 12 dimensions, codes of 2 bytes whose last 4 bits are 0."""
    base = siftsmall[0][:3000]
    itq = ITQ(num_bit=12, niter=10, seed=0).fit(base)
    codes = itq.encode(base)
    assert codes.shape == (3000, 2) and itq.nbytes == 2 and itq.code_bits == 12
    assert not np.any(codes[:, 1] & 0xF0)
    bits = np.unpackbits(codes, axis=1, bitorder="little")[:, :12]
    projected = (base - itq.mean) @ itq.projection
    assert (bits == (projected >= 0)).mean() > 0.999  # float rounding at 0 only
    assert itq.rotation.shape == (12, 12) and itq.losses[-1] <= itq.losses[0]


def test_bad_input_is_rejected_before_cpp(siftsmall, itq32, monkeypatch):
    base, query, _ = siftsmall
    with pytest.raises(InputError, match="num_bit: must be >= 1"):
        ITQ(num_bit=0)
    with pytest.raises(InputError, match="niter: must be >= 1"):
        ITQ(niter=0)

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(InputError, match="num_bit=256 exceeds the dimension D=128"):
        ITQ(num_bit=256).fit(base)
    bad = base[:100].copy()
    bad[5, 2] = np.nan
    with pytest.raises(InputError, match=r"learn: contains NaN \(first in row 5\)"):
        ITQ(num_bit=16).fit(bad)
    with pytest.raises(InputError, match="at least 2 rows"):
        ITQ(num_bit=16).fit(base[:1])
    with pytest.raises(InputError, match=r"call fit\(\)"):
        ITQ(num_bit=16).encode(base)
    with pytest.raises(InputError, match=r"add\(\) vectors before searching"):
        ITQ(num_bit=16).search(query, 1)
    with pytest.raises(InputError, match="x: dimension mismatch, expected 128 columns, got 64"):
        itq32.encode(base[:, :64])
    with pytest.raises(InputError, match="x: contains NaN"):
        itq32.search(bad, 3)
    with pytest.raises(InputError, match="k=10001 is larger than the database"):
        itq32.search(query, 10001)
    codes = itq32.codes
    with pytest.raises(InputError, match=r"expected dtype uint8 \(packed bits\), got uint16"):
        hamming_search(codes.astype(np.uint16), codes, 3)
    with pytest.raises(InputError, match=r"code width mismatch, expected 4 bytes \(32 bits\)"):
        hamming_search(codes[:, :2], codes, 3)
    with pytest.raises(InputError, match="expected a numpy array"):
        hamming_distances(codes.tolist(), codes)
