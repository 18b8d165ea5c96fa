"""The nanopq-compatible API (``benchpq.algorithms.compat.nanopq_api``): the same signatures,
attributes, dtypes, equality, pickling and errors as nanopq; the same training (same initial
draws, so the same codewords up to float rounding, mse within 1% on siftsmall and Fashion-
MNIST); adist equal to nanopq's; faiss conversion both ways for PQ and OPQ."""
import copy
import inspect
import pickle

import numpy as np
import pytest

from benchpq import native
from benchpq.algorithms.compat import nanopq_api
from benchpq.checks import InputError
from benchpq.datasets.idx import read_idx
from benchpq.datasets.vecs import read_vecs

nanopq = pytest.importorskip("nanopq")
faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def sift(siftsmall_dir):
    return np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))


@pytest.fixture(scope="module")
def fashion(fashion_mnist_dir):
    x = read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:3000]
    return np.ascontiguousarray(x, dtype=np.float32)


def rel_mse(x, recon):
    return float(((x.astype(np.float64) - recon) ** 2).sum(1).mean())


def test_signatures_match_nanopq():
    pairs = [(nanopq_api.PQ, nanopq.PQ), (nanopq_api.OPQ, nanopq.OPQ),
             (nanopq_api.DistanceTable, nanopq.DistanceTable)]
    for ours, theirs in pairs:
        names = [n for n, v in vars(theirs).items() if callable(v) and not n.startswith("_")]
        for name in ["__init__"] + names:
            mine, lib = inspect.signature(getattr(ours, name)), inspect.signature(
                getattr(theirs, name))
            assert [(p.name, p.default) for p in mine.parameters.values()] == \
                [(p.name, p.default) for p in lib.parameters.values()], (ours, name)
    for name in ("nanopq_to_faiss", "faiss_to_nanopq"):
        assert list(inspect.signature(getattr(nanopq_api, name)).parameters) == \
            list(inspect.signature(getattr(nanopq, name)).parameters)


def test_attributes_dtypes_and_shapes(capsys):
    x = np.random.default_rng(0).random((300, 12), dtype=np.float32)
    for Ks, dtype in ((256, np.uint8), (500, np.uint16), (2 ** 16 + 10, np.uint32)):
        assert nanopq_api.PQ(M=4, Ks=Ks, verbose=False).code_dtype is dtype
    pq = nanopq_api.PQ(M=4, Ks=10)
    assert "M: 4, Ks: 10, metric : l2, code_dtype: <class 'numpy.uint8'>" in capsys.readouterr().out
    assert pq.fit(x) is pq and pq.Ds == 3 and type(pq.Ds) is int
    assert pq.codewords.shape == (4, 10, 3) and pq.codewords.dtype == np.float32
    codes = pq.encode(x)
    assert codes.shape == (300, 4) and codes.dtype == np.uint8
    recon = pq.decode(codes)
    assert recon.shape == x.shape and recon.dtype == np.float32
    table = pq.dtable(x[3])
    assert isinstance(table, nanopq_api.DistanceTable) and table.metric == "l2"
    assert table.dtable.shape == (4, 10) and table.dtable.dtype == np.float32
    dists = table.adist(codes)
    assert dists.shape == (300,) and dists.dtype == np.float32 and np.argmin(dists) == 3
    out = capsys.readouterr().out
    assert "iter: 20, seed: 123" in out and "Encoding" in out
    opq = nanopq_api.OPQ(M=4, Ks=10, verbose=False).fit(x, rotation_iter=3)
    assert (opq.M, opq.Ks, opq.metric, opq.Ds, opq.code_dtype) == (4, 10, "l2", 3, np.uint8)
    assert opq.R.shape == (12, 12) and opq.R.dtype == np.float32
    np.testing.assert_allclose(opq.R.T @ opq.R, np.eye(12), atol=1e-5)
    assert opq.rotate(x[0]).shape == (12,) and opq.rotate(x[:3]).shape == (3, 12)
    np.testing.assert_allclose(opq.rotate(x[:3]), x[:3] @ opq.R, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opq.decode(opq.encode(x)), opq.pq.decode(opq.encode(x)) @ opq.R.T,
                               rtol=1e-5, atol=1e-6)
    opq.verbose = True
    assert opq.pq.verbose is True


def test_training_reproduces_nanopq(sift):
    """Same seed: the same initial draws from numpy's global generator, the same Lloyd
    iterations, so the same codewords up to float rounding; numpy's global state after
    fit is the same too."""
    x = sift[:2000]
    for minit in ("points", "random"):
        theirs = nanopq.PQ(M=8, Ks=32, verbose=False).fit(x, iter=6, seed=7, minit=minit)
        after_theirs = np.random.random()
        ours = nanopq_api.PQ(M=8, Ks=32, verbose=False).fit(x, iter=6, seed=7, minit=minit)
        assert np.random.random() == after_theirs
        same = np.isclose(ours.codewords, theirs.codewords, rtol=1e-4, atol=1e-2).all(axis=2)
        if minit == "points":
            assert same.mean() > 0.97
        else:  # Gaussian draws leave clusters empty: scipy keeps them, we split big ones
            assert rel_mse(x, ours.decode(ours.encode(x))) < rel_mse(
                x, theirs.decode(theirs.encode(x)))
        assert np.array_equal(ours.encode(x), nanopq_api.PQ(M=8, Ks=32, verbose=False).fit(
            x, iter=6, seed=7, minit=minit).encode(x))  # deterministic
    plus = nanopq_api.PQ(M=8, Ks=32, verbose=False).fit(x, iter=6, minit="++")
    assert rel_mse(x, plus.decode(plus.encode(x))) <= 1.01 * rel_mse(
        x, theirs.decode(theirs.encode(x)))


@pytest.mark.parametrize("which", ["sift", "fashion"])
def test_mse_within_one_percent_of_nanopq(which, request):
    """The same user code with each library: M=8, Ks=256, nanopq's seed and minit."""
    x = request.getfixturevalue(which)[:3000]
    errors = {}
    for lib in (nanopq, nanopq_api):
        pq = lib.PQ(M=8, verbose=False).fit(x, iter=8)
        errors[lib] = rel_mse(x, pq.decode(pq.encode(x)))
    assert errors[nanopq_api] <= errors[nanopq] * 1.01
    assert errors[nanopq_api] >= errors[nanopq] * 0.97  # the same algorithm, not a better one
    if which == "sift":
        x = x[:1500]
        errors = {}
        for lib in (nanopq, nanopq_api):
            opq = lib.OPQ(M=8, Ks=64, verbose=False).fit(x, pq_iter=5, rotation_iter=3)
            errors[lib] = rel_mse(x, opq.decode(opq.encode(x)))
        assert errors[nanopq_api] <= errors[nanopq] * 1.01


def test_adist_equals_nanopq_for_every_code_dtype(sift):
    x = sift[:2000]
    for Ks, M in ((256, 8), (16, 16), (300, 4)):
        ours = nanopq_api.PQ(M=M, Ks=Ks, verbose=False).fit(x, iter=3)
        theirs = nanopq.PQ(M=M, Ks=Ks, verbose=False)
        theirs.Ds, theirs.codewords = ours.Ds, ours.codewords
        codes = ours.encode(x)
        assert codes.dtype == theirs.code_dtype
        for metric in ("l2", "dot"):
            ours.metric = theirs.metric = metric
            t_ours, t_theirs = ours.dtable(x[5]), theirs.dtable(x[5])
            np.testing.assert_allclose(t_ours.dtable, t_theirs.dtable, rtol=1e-5, atol=1e-2)
            d = t_ours.adist(codes)
            ref = t_ours.dtable[np.arange(M), codes].astype(np.float64).sum(1)
            np.testing.assert_allclose(d, ref, rtol=1e-5, atol=1e-3)
            for dtype in (np.int64, np.uint32):  # any integer codes, as nanopq's fancy indexing
                assert np.array_equal(t_ours.adist(codes.astype(dtype)), d)
        np.testing.assert_allclose(ours.decode(codes), theirs.decode(codes))
    empty = ours.dtable(x[0]).adist(np.zeros((0, 4), np.uint16))
    assert empty.shape == (0,) and empty.dtype == np.float32


def test_uint32_codes_decode_and_adist_in_numpy():
    rng = np.random.default_rng(1)
    pq = nanopq_api.PQ(M=2, Ks=2 ** 16 + 10, verbose=False)
    pq.Ds, pq.codewords = 2, rng.random((2, pq.Ks, 2), dtype=np.float32)
    codes = rng.integers(0, pq.Ks, (50, 2)).astype(np.uint32)
    recon = pq.decode(codes)
    np.testing.assert_array_equal(recon[:, :2], pq.codewords[0][codes[:, 0]])
    table = pq.dtable(recon[0])
    np.testing.assert_allclose(table.adist(codes), ((recon - recon[0]) ** 2).sum(1), atol=1e-5)
    with pytest.raises(nanopq_api.NanopqAssertionError, match="at most 65536"):
        pq.encode(recon)
    with pytest.raises(nanopq_api.NanopqAssertionError, match="at most 65536"):
        pq.fit(rng.random((2 ** 16 + 20, 4), dtype=np.float32))


def test_equality_pickle_and_deepcopy(sift):
    x = sift[:1000]
    pq1, pq2 = nanopq_api.PQ(M=4, Ks=16, verbose=False), nanopq_api.PQ(M=4, Ks=16, verbose=False)
    assert pq1 == pq2 and pq1 == copy.deepcopy(pq1) and pq1 != nanopq_api.PQ(M=4, Ks=32,
                                                                            verbose=False)
    assert pq1 != nanopq.PQ(M=4, Ks=16, verbose=False)  # another library's class
    pq1.fit(x)
    pq2.fit(x)
    codes = pq1.encode(x)  # builds the C++ quantizer, which must not travel
    assert pq1 == pq2 and pq1 != nanopq_api.PQ(M=4, Ks=16, verbose=False)
    for clone in (copy.deepcopy(pq1), pickle.loads(pickle.dumps(pq1))):
        assert clone == pq1 and np.array_equal(clone.encode(x), codes)
    assert len(pickle.dumps(pq1)) < pq1.codewords.nbytes + 2000
    pq2.codewords[0, 0] += 1  # codewords changed in place: the C++ copy follows
    assert pq1 != pq2 and not np.array_equal(pq2.decode(codes), pq1.decode(codes))
    opq = nanopq_api.OPQ(M=4, Ks=16, verbose=False).fit(x, rotation_iter=2)
    assert copy.deepcopy(opq) == opq and pickle.loads(pickle.dumps(opq)) == opq
    other = copy.deepcopy(opq)
    other.R = other.R[::-1].copy()
    assert other != opq


def test_faiss_conversion_both_ways(sift):
    xt, xb, xq = sift[:3000], sift[3000:8000], sift[8000:8020]
    pq = nanopq_api.PQ(M=8, verbose=False).fit(xt, iter=5)
    index = nanopq_api.nanopq_to_faiss(pq)
    assert isinstance(index, faiss.IndexPQ)
    codes = pq.encode(xb)
    assert np.array_equal(index.pq.compute_codes(xb), codes)
    index.add(xb)
    _, ids = index.search(xq, 10)
    ours = np.array([np.argsort(pq.dtable(q).adist(codes), kind="stable")[:10] for q in xq])
    assert (ids == ours).mean() > 0.98  # float ties may order differently
    back, back_codes = nanopq_api.faiss_to_nanopq(index)
    assert isinstance(back, nanopq_api.PQ) and np.array_equal(back_codes, codes)
    assert back.codewords.shape == (8, 256, 16) and np.array_equal(back.codewords, pq.codewords)
    # OPQ: from faiss's OPQMatrix (a short training on 32-d data), and our OPQ to faiss
    matrix = faiss.OPQMatrix(32, 4)
    matrix.niter, matrix.niter_pq, matrix.niter_pq_0 = 3, 2, 2
    trained = faiss.IndexPreTransform(matrix, faiss.IndexPQ(32, 4, 4))
    x32 = np.ascontiguousarray(xt[:2000, :32])
    trained.train(x32)
    trained.add(x32)
    opq, opq_codes = nanopq_api.faiss_to_nanopq(trained)
    assert isinstance(opq, nanopq_api.OPQ) and opq.R.shape == (32, 32) and opq.Ks == 16
    assert np.array_equal(opq.encode(x32), opq_codes)
    ours_opq = nanopq_api.OPQ(M=4, Ks=16, verbose=False).fit(x32, pq_iter=3, rotation_iter=2)
    converted = nanopq_api.nanopq_to_faiss(ours_opq)
    assert isinstance(converted, faiss.IndexPreTransform)
    converted.add(x32)  # faiss rotates and encodes: the same codes as ours
    round_trip, stored = nanopq_api.faiss_to_nanopq(converted)
    assert np.array_equal(stored, ours_opq.encode(x32))
    round_trip.verbose = False  # faiss_to_nanopq builds with nanopq's default verbose=True
    assert round_trip == ours_opq
    # 4-bit sub-codes and the inner-product metric survive the round trip
    small = nanopq_api.PQ(M=8, Ks=16, metric="dot", verbose=False).fit(xt, iter=3)
    index16 = nanopq_api.nanopq_to_faiss(small)
    assert index16.pq.nbits == 4 and index16.metric_type == faiss.METRIC_INNER_PRODUCT
    index16.add(xb)
    back16, codes16 = nanopq_api.faiss_to_nanopq(index16)
    assert back16.metric == "dot" and np.array_equal(codes16, small.encode(xb))


def test_misuse_raises_what_nanopq_raises(sift):
    """nanopq's asserts are AssertionErrors here too (and InputErrors); bad input never
    reaches the C++ core."""
    x = sift[:500]
    bad_calls = [
        lambda: nanopq_api.PQ(M=4, Ks=0),
        lambda: nanopq_api.PQ(M=4, metric="cosine"),
        lambda: nanopq_api.PQ(M=4, verbose=False).fit(x.astype(np.float64)),
        lambda: nanopq_api.PQ(M=4, verbose=False).fit(x[0]),
        lambda: nanopq_api.PQ(M=4, Ks=600, verbose=False).fit(x),
        lambda: nanopq_api.PQ(M=5, verbose=False).fit(x),
        lambda: nanopq_api.PQ(M=4, verbose=False).fit(x, minit="kmeans"),
        lambda: nanopq_api.PQ(M=4, verbose=False).encode(x),
        lambda: nanopq_api.PQ(M=4, verbose=False).dtable(x[0]),
        lambda: nanopq_api.OPQ(M=4, verbose=False).encode(x),
        lambda: nanopq_api.OPQ(M=4, verbose=False).rotate(x),
        lambda: nanopq_api.nanopq_to_faiss(nanopq_api.OPQ(M=4, verbose=False)),
        lambda: nanopq_api.nanopq_to_faiss(nanopq.PQ(M=4, verbose=False)),
        lambda: nanopq_api.faiss_to_nanopq(faiss.IndexFlatL2(8)),
        lambda: nanopq_api.DistanceTable(np.zeros((4, 8))),
    ]
    for call in bad_calls:
        for lib_error in (AssertionError, InputError):
            with pytest.raises(lib_error):
                call()
    fitted = nanopq_api.PQ(M=4, Ks=16, verbose=False).fit(x, iter=2)
    codes = fitted.encode(x)
    with pytest.raises(AssertionError, match="input dimension must be Ds \\* M"):
        fitted.encode(x[:, :64])
    with pytest.raises(AssertionError, match="single vector"):
        fitted.dtable(x[:2])
    with pytest.raises(AssertionError, match="dtype must be uint8"):
        fitted.decode(codes.astype(np.int64))
    with pytest.raises(AssertionError, match="sub-codes"):
        fitted.dtable(x[0]).adist(codes[:, :3])
    with pytest.raises(IndexError, match=r"codes must be in \[0, 16\)"):
        fitted.dtable(x[0]).adist(codes + 16)
    with pytest.raises(ValueError, match="k array doesn't match data rank"):
        nanopq_api.PQ(M=4, verbose=False).fit(x, minit="matrix")
    nan = x.copy()
    nan[3, 3] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        nanopq_api.PQ(M=4, Ks=16, verbose=False).fit(nan)
    with pytest.raises(nanopq_api.NanopqAssertionError, match="power of two"):
        nanopq_api.nanopq_to_faiss(nanopq_api.PQ(M=4, Ks=10, verbose=False).fit(x, iter=1))


def test_bad_input_never_reaches_cpp(sift, monkeypatch):
    x = sift[:500]
    fitted = nanopq_api.PQ(M=4, Ks=16, verbose=False).fit(x, iter=2)
    codes = fitted.encode(x)
    fitted.codewords = fitted.codewords[:, :8]  # inconsistent with Ks

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    with pytest.raises(nanopq_api.NanopqAssertionError, match="codewords must have shape"):
        fitted.encode(x)
    with pytest.raises(nanopq_api.CodeRangeError):
        nanopq_api.DistanceTable(np.zeros((4, 16), np.float32)).adist(codes.astype(np.int8) - 1)


@pytest.mark.native_kernels
@pytest.mark.parametrize("Ks", [16, 256, 4096])
def test_adist_is_bit_equal_to_nanopqs_numpy_sum_for_every_m(Ks):
    """nanopq sums a code's lookups with np.sum(..., axis=1): numpy's pairwise order (in
    order below 8 terms, 8 interleaved partial sums up to 128, halves above). Our C++ sum
    follows it, so the distances are the same bits for any M."""
    rng = np.random.default_rng(Ks)
    for M in [*range(1, 21), 31, 64, 127, 128, 129, 200]:
        table = rng.normal(size=(M, Ks)).astype(np.float32) * 100
        codes = rng.integers(0, Ks, (1001, M)).astype(np.uint8 if Ks <= 256 else np.uint16)
        want = np.sum(table[range(M), codes], axis=1)
        got = nanopq_api.DistanceTable(table).adist(codes)
        assert got.dtype == np.float32 and np.array_equal(got, want), M


def test_dot_table_is_bit_equal_to_nanopqs():
    """A dot-product table is nanopq's own product (q_m @ C_m.T through numpy's BLAS)."""
    import nanopq
    rng = np.random.default_rng(3)
    x = rng.random((300, 12)).astype(np.float32)
    ours = nanopq_api.PQ(M=4, Ks=10, metric="dot").fit(x, seed=1)
    theirs = nanopq.PQ(M=4, Ks=10, metric="dot")
    theirs.Ds, theirs.codewords = ours.Ds, ours.codewords.copy()
    for q in x[:5]:
        assert np.array_equal(ours.dtable(q).dtable, theirs.dtable(q).dtable)
