"""Our OPQ (Ge et al. 2014): rotations, the C++ products, accuracy on siftsmall, bad input."""
import pickle

import faiss
import numpy as np
import pytest

import benchpq.algorithms.own.opq as own_opq
from benchpq.algorithms.own.opq import OPQ, code_cross_product
from benchpq.algorithms.own.pq import PQ
from benchpq.algorithms.primitives.rotations import (
    eigenvalue_allocation,
    procrustes,
    random_rotation,
    rotate,
)
from benchpq.checks import InputError
from benchpq.datasets import read_vecs
from benchpq.measure import metrics


@pytest.fixture(scope="module")
def sift(siftsmall_dir):
    return np.ascontiguousarray(read_vecs(siftsmall_dir / "siftsmall_base.fvecs"))


@pytest.fixture(scope="module")
def faiss_opq(sift):
    """faiss's OPQ8,PQ8 at its defaults, trained on siftsmall's base (once per module).

    Built from its parts, as ``index_factory(128, "OPQ8,PQ8").train`` builds it: the
    rotation trained on the data, then the PQ on the rotated data. The model is the same
    (mse equal to the last digit on siftsmall), in a third of the factory's time.
    """
    rotation = faiss.OPQMatrix(128, 8)
    rotation.train(sift)
    pq = faiss.IndexPQ(128, 8, 8)
    pq.train(rotation.apply(sift))
    index = faiss.IndexPreTransform(rotation, pq)
    return index


@pytest.fixture(scope="module")
def trained(sift):
    return OPQ(M=8, niter=20, seed=0).fit(sift)


@pytest.mark.parametrize("Ks, n", [(16, 1000), (256, 100)])  # sums by code; plain product
def test_code_cross_product_equals_numpy(Ks, n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 24)).astype(np.float32)
    pq = PQ(M=3, Ks=Ks, iter=2, seed=0).fit(rng.normal(size=(max(n, Ks), 24)).astype(np.float32))
    codes = pq.encode(rng.normal(size=(n, 24)).astype(np.float32))
    expected = x.astype(np.float64).T @ pq.decode(codes).astype(np.float64)
    got = code_cross_product(pq._quantizer(), x, codes, pq.codewords)
    assert got.dtype == np.float64 and got.shape == (24, 24)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
    R = random_rotation(24, 1)
    np.testing.assert_allclose(rotate(x, R), x @ R, rtol=1e-5, atol=1e-5)


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    R = random_rotation(16, 2)
    np.testing.assert_allclose(procrustes(x.T @ (x @ R)), R, atol=1e-4)


def test_eigenvalue_allocation_matches_nanopq(sift):
    nanopq = pytest.importorskip("nanopq")
    ours = eigenvalue_allocation(sift, 8)
    theirs = nanopq.OPQ(M=8, verbose=False).eigenvalue_allocation(sift)
    np.testing.assert_allclose(ours.T @ ours, np.eye(128), atol=1e-5)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-3)  # eigenvectors up to sign


def test_opq_beats_pq_and_faiss_opq_on_siftsmall(sift, trained, faiss_opq):
    pq = PQ(M=8, iter=25, seed=0).fit(sift)
    ours = metrics.mse(sift, trained.decode(trained.encode(sift)))
    plain = metrics.mse(sift, pq.decode(pq.encode(sift)))
    theirs = metrics.mse(sift, faiss_opq.sa_decode(faiss_opq.sa_encode(sift)))
    assert ours < 0.96 * plain      # at the defaults (niter=50) 20,048 vs 21,917 (experiment speed)
    assert ours <= 1.01 * theirs    # faiss's OPQ: 26,814


def test_final_pq_starts_from_the_loop_or_from_scratch(sift):
    """final_init=random is PQ trained from scratch on the rotated data (faiss's recipe);
    loop hot-starts it from the rotation loop's codebooks, which ends lower."""
    scratch = OPQ(M=8, niter=3, final_init="random", seed=0).fit(sift)
    pq = PQ(M=8, iter=25, seed=0, init="random").fit(rotate(sift, scratch.rotation))
    np.testing.assert_array_equal(scratch.pq.codewords, pq.codewords)
    loop = OPQ(M=8, niter=3, seed=0).fit(sift)
    np.testing.assert_array_equal(loop.rotation, scratch.rotation)
    assert loop.pq.objective[:, -1].sum() < scratch.pq.objective[:, -1].sum()


def test_opq_distortion_within_3_percent_of_nanopq_opq(sift, trained):
    """Two-sided: nanopq's non-parametric OPQ (its adapter's defaults: 10 rotation updates,
    20 k-means iterations) lands within 3% of ours; measured ours 20,394 vs 20,564 and
    20,530 (nanopq seeds 0 and 1), a ratio of 0.99. A regression of ours, or a gain that
    would need explaining, moves the ratio out of [0.97, 1.03]."""
    pytest.importorskip("nanopq")
    from benchpq import registry
    nano = registry.create({"name": "nanopq_opq", "M": 8, "Ks": 256, "iter": 20,
                            "rotation_iter": 10, "parametric_init": False, "seed": 0}).fit(sift)
    ours = metrics.mse(sift, trained.decode(trained.encode(sift)))
    theirs = metrics.mse(sift, nano.decode(nano.encode(sift)))
    assert 0.97 <= ours / theirs <= 1.03, (ours, theirs)


def test_rotation_objective_never_increases(trained):
    objective = np.array(trained.objective)
    assert len(objective) == 20
    assert np.all(np.diff(objective) <= 1e-4 * objective[:-1])
    R = trained.rotation
    np.testing.assert_allclose(R.T @ R, np.eye(128), atol=1e-4)


def test_parametric_opq_is_eigenvalue_allocation(sift):
    model = OPQ(M=8, niter=0, init="eigen", seed=0).fit(sift)
    np.testing.assert_array_equal(model.rotation, eigenvalue_allocation(sift, 8))
    assert model.objective == []


def test_search_and_decode_agree_with_rotated_pq(sift, trained):
    queries = sift[:50] + 1.0
    trained.add(sift)
    distances, ids = trained.search(queries, 10)
    # ADC distance = ||q R - decode_pq(code)||² = ||q - decode(code)||² since R is orthogonal
    recon = trained.decode(trained.pq.codes[ids[:, 0]])
    np.testing.assert_allclose(distances[:, 0], ((queries - recon) ** 2).sum(1), rtol=1e-3)
    assert trained.code_bits == 64 and trained.codes_bytes == 10000 * 8
    assert trained.model_bytes == 256 * 128 * 4 + 128 * 128 * 4
    trained.pq.codes = None


def test_encoding_and_decoding_by_blocks_equal_one_pass(sift, trained, monkeypatch):
    whole = trained.encode(sift[:3000])
    decoded = trained.decode(whole)
    np.testing.assert_array_equal(whole, trained.pq.encode(sift[:3000] @ trained.rotation))
    monkeypatch.setattr(own_opq, "BLOCK_BYTES", 700 * 128 * 4)  # 700 rows: a partial last block
    np.testing.assert_array_equal(trained.encode(sift[:3000]), whole)
    # BLAS may round a row differently in a product of another size (its kernels
    # depend on the shape): equal to float32 rounding, not bit for bit
    np.testing.assert_allclose(trained.decode(whole), decoded, rtol=1e-5, atol=1e-3)


def test_pickling_round_trip(sift, trained):
    clone = pickle.loads(pickle.dumps(trained))
    np.testing.assert_array_equal(clone.encode(sift[:500]), trained.encode(sift[:500]))
    np.testing.assert_array_equal(clone.rotation, trained.rotation)


def test_bad_input_is_rejected_before_cpp(sift, trained):
    with pytest.raises(InputError, match="M=7 does not divide the dimension D=128"):
        OPQ(M=7).fit(sift)
    with pytest.raises(InputError, match=r"more codewords \(256\) than training vectors \(100\)"):
        OPQ().fit(sift[:100])
    bad = sift[:1000].copy()
    bad[3, 3] = np.inf
    with pytest.raises(InputError, match=r"learn: contains Inf \(first in row 3\)"):
        OPQ().fit(bad)
    with pytest.raises(InputError, match="init: expected one of"):
        OPQ(init="pca")
    with pytest.raises(InputError, match="final_init: expected one of"):
        OPQ(final_init="eigen")
    with pytest.raises(InputError, match=r"niter: must be >= 0"):
        OPQ(niter=-1)
    with pytest.raises(InputError, match="call fit"):
        OPQ().encode(sift)
    with pytest.raises(InputError, match="dimension mismatch, expected 128 columns, got 64"):
        trained.encode(sift[:, :64])
    with pytest.raises(InputError, match="expected dtype uint8"):
        trained.decode(np.zeros((2, 8), np.int64))


def test_export_to_faiss_gives_the_same_codes_and_search(sift, trained):
    index = trained.to_faiss()
    ours, theirs = trained.encode(sift), index.sa_encode(sift)
    # codes may differ only where two codewords are at (float-rounding) equal distance
    assert (ours != theirs).any(axis=1).mean() < 1e-3
    np.testing.assert_allclose(index.sa_decode(ours), trained.decode(ours), atol=1e-2)
    trained.add(sift[:2000])
    exported = trained.to_faiss()
    assert exported.ntotal == 2000
    d_ours, i_ours = trained.search(sift[:20], 5)
    d_faiss, i_faiss = exported.search(sift[:20], 5)
    assert (i_ours == i_faiss).mean() > 0.99
    np.testing.assert_allclose(d_ours, d_faiss, rtol=1e-4)
    trained.pq.codes = None


def test_import_from_faiss_gives_the_same_codes(sift, faiss_opq):
    model = OPQ.from_faiss(faiss_opq)
    assert (model.encode(sift) != faiss_opq.sa_encode(sift)).any(axis=1).mean() < 1e-3
    with pytest.raises(InputError, match="expected a faiss IndexPreTransform"):
        OPQ.from_faiss(faiss.IndexPQ(128, 8, 8))
