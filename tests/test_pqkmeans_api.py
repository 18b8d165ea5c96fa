"""The pqkmeans-compatible API (``benchpq.algorithms.compat.pqkmeans_api``): the library's
signatures, return types and dtypes, its labels from the same codes, any num_bit for ITQ,
generators, live verbose output, pickles no larger than twice the library's, the evaluation
module, bad input rejected before C++."""
import inspect
import io
import pickle

import numpy as np
import pytest

from benchpq import native
from benchpq.algorithms.compat import pqkmeans_api
from benchpq.checks import InputError
from benchpq.datasets.download import DownloadDisabledError
from benchpq.datasets.vecs import read_vecs, write_vecs
from benchpq.measure import metrics

pqk = pytest.importorskip("pqkmeans")


@pytest.fixture(scope="module")
def sift(siftsmall_dir):
    return np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))


@pytest.fixture(scope="module")
def encoded(sift):
    """Our PQEncoder (M=4, Ks=256) on siftsmall and the codes of the first 4000 vectors."""
    enc = pqkmeans_api.PQEncoder(iteration=8, num_subdim=4, Ks=256, seed=0)
    enc.fit(sift)
    return enc, enc.transform(sift[:4000])


def test_signatures_match_the_library():
    pairs = [(pqkmeans_api.PQEncoder, pqk.encoder.PQEncoder),
             (pqkmeans_api.ITQEncoder, pqk.encoder.ITQEncoder),
             (pqkmeans_api.PQKMeans, pqk.clustering.PQKMeans),
             (pqkmeans_api.BKMeans, pqk.clustering.BKMeans)]
    for ours, theirs in pairs:
        mine = [p for p in inspect.signature(ours).parameters.values()
                if p.kind is not p.KEYWORD_ONLY]
        lib = list(inspect.signature(theirs).parameters.values())
        assert [(p.name, p.default) for p in mine] == [(p.name, p.default) for p in lib], ours
        public = [n for n in dir(theirs) if not n.startswith("_")  # methods, not scikit-learn's
                  and inspect.isfunction(getattr(theirs, n))
                  and not n.endswith(("_params", "_request", "_routing"))]
        assert all(hasattr(ours, n) for n in public), (ours, public)
    for name in ("calc_error", "get_gmm_random_dataset", "get_siftsmall_dataset",
                 "get_sift1m_dataset", "get_texmex_dataset"):
        assert list(inspect.signature(getattr(pqkmeans_api.evaluation, name)).parameters) == \
            list(inspect.signature(getattr(pqk.evaluation, name)).parameters)


def test_readme_code_switches_by_changing_the_import(sift):
    """The library's README example with each library: same types; our labels are the
    library's labels when both cluster the same codes."""
    x = sift[:4000]
    results = {}
    for lib in (pqk, pqkmeans_api):
        np.random.seed(0)
        encoder = lib.encoder.PQEncoder(iteration=8, num_subdim=4, Ks=256)
        assert encoder.fit(x[:3000]) is None
        codes = encoder.transform(x)
        kmeans = lib.clustering.PQKMeans(encoder=encoder, k=20)
        clustered = kmeans.fit_predict(codes)
        centers = encoder.inverse_transform(np.array(kmeans.cluster_centers_,
                                                     dtype=encoder.code_dtype))
        assert type(clustered) is list and type(clustered[0]) is int
        assert type(kmeans.cluster_centers_) is list and type(kmeans.cluster_centers_[0]) is list
        assert type(kmeans.cluster_centers_[0][0]) is int
        assert encoder.codewords.dtype == np.float64 and centers.dtype == np.float64
        assert codes.dtype == np.uint8 and codes.shape == (4000, 4) and centers.shape == (20, 128)
        assert kmeans.predict(codes[:5]).dtype == np.int64
        results[lib] = (codes, clustered)
    e_lib, e_ours = (metrics.clustering_error(x, np.array(lab), 20) for _, lab in results.values())
    assert e_ours <= e_lib * 1.03  # different encoders (scipy's kmeans2, ours): close errors
    codes = results[pqkmeans_api][0]
    ours = pqkmeans_api.PQKMeans(encoder=encoder, k=20, iteration=10)
    theirs = pqk.clustering.PQKMeans(encoder=encoder, k=20, iteration=10)
    assert ours.fit(codes) is None and theirs.fit(codes) is None
    assert ours.labels_ == theirs.labels_ and ours.cluster_centers_ == theirs.cluster_centers_
    assert np.array_equal(ours.predict(codes[:100]), theirs.predict(codes[:100]))
    assert list(ours.predict_generator(iter(codes[:30]))) == \
        list(theirs.predict_generator(iter(codes[:30])))


def test_bkmeans_and_itq_as_the_library(sift):
    x = sift[:3000]
    itq = pqkmeans_api.ITQEncoder(iteration=10, num_bit=32, seed=0)
    assert itq.fit(x) is None
    bits = itq.transform(x)
    assert bits.shape == (3000, 32) and bits.dtype == bool
    assert np.array_equal(np.packbits(bits, axis=1, bitorder="little"), itq.transform_packed(x))
    ours = pqkmeans_api.BKMeans(k=10, input_dim=32, iteration=5)
    theirs = pqk.clustering.BKMeans(k=10, input_dim=32, iteration=5)
    labels = ours.fit_predict(bits)
    theirs.fit(bits)
    assert type(labels) is list and labels == theirs.labels_
    centers = ours.cluster_centers_
    assert type(centers) is list and np.array(centers).dtype == np.int64
    assert np.array(centers).shape == (10, 32) and set(np.unique(centers)) <= {0, 1}
    assert np.array_equal(ours.predict(itq.transform_packed(x)), labels)  # packed input too
    assert list(ours.predict_generator(bits[:7])) == labels[:7]


def test_itq_takes_any_num_bit(sift):
    """num_bit=3 as the library's tests: (n, 3) bool codes, the first bits of no wider code
    but ITQ in 3 dimensions; the padding bits of packed codes are 0."""
    x = sift[:2000]
    for num_bit in (3, 12):
        itq = pqkmeans_api.ITQEncoder(iteration=20, num_bit=num_bit, seed=1)
        itq.fit(x)
        bits = itq.transform(x)
        assert bits.shape == (2000, num_bit) and bits.dtype == bool
        packed = itq.transform_packed(x)
        assert packed.shape == (2000, -(-num_bit // 8))
        assert np.array_equal(np.unpackbits(packed, axis=1, bitorder="little")[:, num_bit:], 0 *
                              np.unpackbits(packed, axis=1, bitorder="little")[:, num_bit:])
        model = itq._fitted()
        projected = (x - model.mean) @ model.projection
        assert model.projection.shape == (128, num_bit)
        assert (bits == (projected >= 0)).mean() > 0.999  # float rounding at 0 only
        assert 0 < bits.mean() < 1
    generated = list(itq.transform_generator(iter(x[:25])))
    assert np.array_equal(np.array(generated), bits[:25])


def test_encoder_generators_and_inverse(sift):
    x = sift[:2000]
    enc = pqkmeans_api.PQEncoder(iteration=5, num_subdim=8, Ks=16, seed=1)
    assert enc.fit_generator(iter(x)) is None  # the library's raises NotImplementedError
    codes = enc.transform(x)
    assert codes.shape == (2000, 8) and codes.dtype == np.uint8 and codes.max() < 16
    assert enc.codewords.shape == (8, 16, 16) and enc.Ds == 16
    assert np.array_equal(np.array(list(enc.transform_generator(iter(x)))), codes)
    recon = enc.inverse_transform(codes)
    assert recon.dtype == np.float64 and recon.shape == x.shape
    assert metrics.mse(x, recon) < metrics.mse(x, x * 0 + x.mean(0))
    np.testing.assert_array_equal(np.array(list(enc.inverse_transform_generator(codes[:5]))),
                                  recon[:5])
    with pytest.raises(NotImplementedError):
        pqkmeans_api.ITQEncoder().inverse_transform(codes)


class _Recorder(io.StringIO):
    """stdout that notes, for every line written, how many assignments had run by then."""

    def __init__(self, counter):
        super().__init__()
        self.counter, self.seen = counter, []

    def write(self, text):
        self.seen += [(line, self.counter[0]) for line in text.splitlines() if line]
        return super().write(text)


@pytest.mark.parametrize("empty", ["keep", "farthest"])
def test_verbose_prints_each_iteration_as_it_ends(encoded, monkeypatch, empty):
    enc, codes = encoded
    quiet = pqkmeans_api.PQKMeans(enc, 300, iteration=6, empty=empty)
    quiet.fit(codes)
    counter = [0]
    for name in ("pqkmeans", "pqkmeans_assign"):
        real = getattr(pqkmeans_api, name)

        def counted(*args, _real=real, **kwargs):
            counter[0] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(pqkmeans_api, name, counted)
    out = _Recorder(counter)
    monkeypatch.setattr("sys.stdout", out)
    loud = pqkmeans_api.PQKMeans(enc, 300, iteration=6, verbose=True, empty=empty)
    loud.fit(codes)
    monkeypatch.undo()
    assert loud.labels_ == quiet.labels_ and loud.cluster_centers_ == quiet.cluster_centers_
    assert loud.iterations_ == quiet.iterations_
    errors = [(line, calls) for line, calls in out.seen if line.startswith("find_nn finished")]
    assert len(errors) == quiet.iterations_ >= 3
    assert [calls for _, calls in errors] == list(range(1, len(errors) + 1))  # live
    means = [float(line.split(": ")[1]) for line, _ in errors]
    np.testing.assert_allclose(means, quiet.objective_ / len(codes), rtol=1e-4)
    starts = [line for line, _ in out.seen if line.startswith("Iteration start")]
    assert starts[:2] == ["Iteration start: 0 / 6", "Iteration start: 1 / 6"]


def test_bkmeans_verbose_is_live_too(sift, capsys):
    itq = pqkmeans_api.ITQEncoder(iteration=5, num_bit=16, seed=0)
    itq.fit(sift[:3000])
    bits = itq.transform(sift[:3000])
    quiet = pqkmeans_api.BKMeans(20, 16, iteration=4)
    loud = pqkmeans_api.BKMeans(20, 16, iteration=4, verbose=True)
    assert quiet.fit_predict(bits) == loud.fit_predict(bits)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("error:")] == \
        [f"error:{obj:.0f}" for obj in quiet.objective_]


def test_pickles_are_small(sift):
    """The tutorial's setting (1000 6-d vectors, 2 sub-spaces) and siftsmall at M=4: at most
    twice the library's pickle (the SDC tables are rebuilt on load, labels not kept)."""
    for x, M in ((np.random.default_rng(0).random((1000, 6)), 2), (sift[:1000], 4)):
        sizes = {}
        for lib in (pqk, pqkmeans_api):
            np.random.seed(0)
            enc = lib.encoder.PQEncoder(iteration=5, num_subdim=M, Ks=256)
            enc.fit(x)
            km = lib.clustering.PQKMeans(encoder=enc, k=10)
            codes = enc.transform(x)
            km.fit(codes)
            clone = pickle.loads(pickle.dumps(km))
            assert np.array_equal(clone.predict(codes), km.predict(codes))
            assert clone.cluster_centers_ == km.cluster_centers_
            sizes[lib] = len(pickle.dumps(km))
        assert sizes[pqkmeans_api] <= 2 * sizes[pqk], sizes
    itq = pqkmeans_api.ITQEncoder(num_bit=16, seed=0)
    itq.fit(sift[:2000])
    bk = pqkmeans_api.BKMeans(8, 16)
    bk.fit(itq.transform(sift[:2000]))
    clone_itq, clone_bk = pickle.loads(pickle.dumps((itq, bk)))  # the library's BKMeans cannot
    assert np.array_equal(clone_bk.predict(clone_itq.transform(sift[:2000])), bk.labels_)


def test_calc_error_equals_the_library(sift):
    x = sift[:3000]
    labels = list(np.random.default_rng(0).integers(0, 12, len(x)))  # cluster 11 and others
    labels = [min(label, 10) for label in labels]                     # 11 empty
    ours, theirs = pqkmeans_api.evaluation.calc_error(labels, x, 12), \
        pqk.evaluation.calc_error(labels, x, 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert all(type(v) is np.float32 for v in ours)  # the input's dtype, as the library
    with pytest.raises(InputError, match=r"assignments must be integers in \[0, 12\)"):
        pqkmeans_api.evaluation.calc_error([12] * len(x), x, 12)


def test_dataset_getters_read_folders_and_never_download_in_tests(siftsmall_dir, tmp_path):
    learn, base = pqkmeans_api.evaluation.get_siftsmall_dataset(siftsmall_dir.parent)
    assert base.shape == (10000, 128) and base.dtype == np.float32
    assert learn.shape[1] == 128 and learn.dtype == np.float32
    np.testing.assert_array_equal(base, read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))
    # the library's cache layout: the texmex archive in the folder
    import tarfile
    small = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_vecs(tmp_path / "a.fvecs", small)
    with tarfile.open(tmp_path / "toy.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "a.fvecs", arcname="toy/toy_learn.fvecs")
    (got,) = pqkmeans_api.evaluation.get_texmex_dataset(
        "ftp://example.invalid/toy.tar.gz", "toy.tar.gz", ["toy/toy_learn.fvecs"], tmp_path)
    np.testing.assert_array_equal(got, small)
    with pytest.raises(DownloadDisabledError):
        pqkmeans_api.evaluation.get_sift1m_dataset(tmp_path / "empty")
    train, test = pqkmeans_api.evaluation.get_gmm_random_dataset(3, dimension=5, test_size=40,
                                                                 train_size=10)
    assert train.shape == (10, 5) and test.shape == (40, 5)


def test_bad_input_is_rejected_before_cpp(encoded, monkeypatch):
    enc, codes = encoded
    unfitted = pqkmeans_api.PQKMeans(enc, 3)

    def no_native():
        raise AssertionError("the native library was used with bad input")
    monkeypatch.setattr(native, "load", no_native)
    x = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    with pytest.raises(InputError, match="not fitted yet"):
        pqkmeans_api.PQEncoder().transform(x)
    with pytest.raises(InputError, match="not fitted yet"):
        unfitted.predict(codes)
    with pytest.raises(InputError, match="fitted PQ encoder"):
        pqkmeans_api.PQKMeans(object(), 3)
    with pytest.raises(InputError, match="num_bit: must be >= 1"):
        pqkmeans_api.ITQEncoder(num_bit=0)
    with pytest.raises(InputError, match="num_bit=40 exceeds the dimension D=32"):
        pqkmeans_api.ITQEncoder(num_bit=40).fit(x)
    with pytest.raises(InputError, match="num_bit: must be a multiple of 8"):
        pqkmeans_api.BKMeans(4, input_dim=12)
    with pytest.raises(InputError, match="code width mismatch, expected 16 bits or 2 packed"):
        pqkmeans_api.BKMeans(4, input_dim=16).fit(np.zeros((10, 8), np.uint8))
    with pytest.raises(InputError, match=r"codes: values must be in \[0, 256\)"):
        enc.inverse_transform(codes.astype(np.int64) - 1)
