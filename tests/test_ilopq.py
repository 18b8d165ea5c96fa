"""I-LOPQ (``ilopq``): LOPQ on a single inverted file, checked against the quantizers it
generalises and against brute force over its own reconstructions."""
import pickle

import numpy as np
import pytest

from benchpq import registry
from benchpq.algorithms.own.ilopq import ILOPQ
from benchpq.algorithms.own.opq import OPQ
from benchpq.checks import InputError


@pytest.fixture(scope="module")
def clustered():
    """6000 x 32 float32 Gaussian mixture (12 clusters, anisotropic) and 40 queries."""
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 4, (12, 32))
    scales = rng.uniform(0.3, 2.0, (12, 32))
    labels = rng.integers(0, 12, 6040)
    x = (centres[labels] + rng.normal(0, 1, (6040, 32)) * scales[labels]).astype(np.float32)
    return x[:6000], x[6000:]


def mse(model, x):
    return float(((model.decode(model.encode(x)) - x) ** 2).sum(1).mean())


def test_one_cell_is_our_opq_on_the_data_centred_on_its_mean(clustered):
    x, _ = clustered
    ilopq = ILOPQ(nlist=1, M=8, Ks=16, local="opq", local_niter=5, iter=10, seed=3,
                  min_cell_rows=16).fit(x)
    centred = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
    opq = OPQ(M=8, Ks=16, niter=5, iter=10, init="identity", max_train_points=65536,
              max_points_per_centroid=256, seed=3).fit(centred)
    assert ilopq.own_cells.tolist() == [True]
    # the cell's frame starts from the coarse centroid plus the residuals' mean: the
    # mean of x up to float rounding, which may move a code whose two nearest codewords tie
    assert mse(ilopq, x) == pytest.approx(mse(opq, centred), rel=1e-4)
    same = (ilopq.encode(x)[:, 1:] == opq.encode(centred)).all(axis=1).mean()
    assert same >= 0.99
    np.testing.assert_allclose(ilopq.local_rotations[0], opq.rotation, atol=1e-4)


def test_identity_frames_and_pooled_codebooks_are_ivfadc(clustered):
    """IVF with PQ on residuals (Jégou et al. 2011), in numpy from the learnt codebooks."""
    x, q = clustered
    model = ILOPQ(nlist=8, M=4, Ks=16, local="identity", codebooks="pooled", iter=10,
                  nprobe=3, seed=1).fit(x)
    model.add(x)
    C, cw = model.coarse_centroids, model.codewords[0]
    assert all(np.array_equal(model.codewords[c], cw) for c in range(8))
    assert not model.local_means.any()
    cells = ((x[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
    r = (x - C[cells]).reshape(len(x), 4, 8)
    fine = ((r[:, :, None, :] - cw[None]) ** 2).sum(-1).argmin(-1)
    codes = model.encode(x)
    assert (codes[:, 0] == cells).mean() >= 0.999 and (codes[:, 1:] == fine).mean() >= 0.999
    # search: the nprobe nearest cells, ADC on the residual of the query to each cell
    qcells = np.argsort(((q[:, None, :] - C[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :3]
    recon = C[codes[:, 0]] + cw[np.arange(4), codes[:, 1:]].reshape(len(x), 32)
    d, ids = model.search(q, 10)
    for i in range(len(q)):
        candidates = np.flatnonzero(np.isin(codes[:, 0], qcells[i]))
        dist = ((recon[candidates] - q[i]) ** 2).sum(1)
        best = candidates[np.lexsort((candidates, dist))[:10]]
        np.testing.assert_allclose(d[i], np.sort(dist)[:10], rtol=1e-4, atol=1e-3)
        assert (ids[i] == best).mean() >= 0.9  # ties in float32 sums aside


@pytest.mark.parametrize("local", ["opq", "eigen"])
def test_search_ranks_the_decoded_candidates_exactly(clustered, local):
    x, q = clustered
    model = ILOPQ(nlist=6, M=8, Ks=16, local=local, local_niter=3, iter=8, min_cell_rows=64,
                  seed=2).fit(x)
    model.add(x)
    decoded = model.decode(model.codes)
    for setting in ({"nprobe": None, "quota": None}, {"nprobe": 2, "quota": None},
                    {"nprobe": None, "quota": 1500, "exact_quota": True}):
        model.set_search_params(**setting)
        d, ids = model.search(q, 20)
        stats = model.last_search
        if setting.get("exact_quota"):
            assert stats["mean_candidates"] == stats["max_candidates"] == 1500
        for i in range(len(q)):
            exact = ((decoded[ids[i]] - q[i]) ** 2).sum(1)
            np.testing.assert_allclose(d[i], exact, rtol=1e-4, atol=1e-3)
        if setting["nprobe"] is None and setting["quota"] is None:  # every code: brute force
            exact = ((decoded[None] - q[:, None]) ** 2).sum(-1)
            np.testing.assert_allclose(d, np.sort(exact, axis=1)[:, :20], rtol=1e-4, atol=1e-3)


def test_local_frames_beat_pooled_ones_and_small_cells_take_the_pooled(clustered):
    x, _ = clustered
    common = dict(nlist=6, M=8, Ks=16, iter=10, local="eigen", seed=4)
    local = ILOPQ(**common, min_cell_rows=64).fit(x)
    pooled_only = ILOPQ(**common, min_cell_rows=10**6).fit(x)
    assert local.own_cells.all() and not pooled_only.own_cells.any()
    assert local.extra_metrics()["local_cells"] == 6
    for c in range(1, 6):  # every cell holds the one pooled fit
        np.testing.assert_array_equal(pooled_only.local_rotations[c],
                                      pooled_only.local_rotations[0])
        np.testing.assert_array_equal(pooled_only.codewords[c], pooled_only.codewords[0])
    ivfadc = ILOPQ(**{**common, "local": "identity"}, codebooks="pooled").fit(x)
    assert mse(local, x) < mse(pooled_only, x) and mse(local, x) < mse(ivfadc, x)


def test_the_model_does_not_depend_on_the_threads(clustered):
    x, q = clustered
    models = []
    for threads in (1, 2):
        model = ILOPQ(nlist=4, M=8, Ks=16, local="opq", local_niter=3, iter=5,
                      min_cell_rows=64, seed=5)
        model.set_threads(threads)
        models.append(model.fit(x))
    for name in ("coarse_centroids", "local_means", "local_rotations", "codewords"):
        np.testing.assert_array_equal(getattr(models[0], name), getattr(models[1], name))


def test_search_is_the_same_one_query_at_a_time_and_on_any_threads(clustered):
    """The search groups each block's visits by cell and rotates them 8 at a time; a query
    alone, or the block split over threads, gives the same bits."""
    x, q = clustered
    model = ILOPQ(nlist=6, M=8, Ks=16, local="opq", local_niter=3, iter=5, min_cell_rows=64,
                  seed=8).fit(x)
    model.add(x)
    for setting in ({"nprobe": None, "quota": None}, {"nprobe": 2, "quota": None},
                    {"nprobe": None, "quota": 1500, "exact_quota": True}):
        model.set_search_params(**setting)
        model.set_threads(1)
        d, ids = model.search(q, 12)
        alone = [model.search(q[i:i + 1], 12) for i in range(len(q))]
        np.testing.assert_array_equal(d, np.concatenate([a[0] for a in alone]))
        np.testing.assert_array_equal(ids, np.concatenate([a[1] for a in alone]))
        model.set_threads(2)
        for a, b in zip((d, ids), model.search(q, 12)):
            np.testing.assert_array_equal(a, b)


def test_pickled_model_searches_the_same(clustered):
    x, q = clustered
    model = ILOPQ(nlist=4, M=8, Ks=16, local="eigen", iter=5, min_cell_rows=64, seed=6).fit(x)
    model.add(x)
    copy = pickle.loads(pickle.dumps(model))
    for a, b in zip(model.search(q, 10), copy.search(q, 10)):
        np.testing.assert_array_equal(a, b)


def test_bad_input_is_named_before_cpp(clustered):
    x, q = clustered
    with pytest.raises(InputError, match="local"):
        ILOPQ(local="global")
    with pytest.raises(InputError, match="codebooks"):
        ILOPQ(codebooks="mixed")
    with pytest.raises(InputError, match="min_cell_rows"):
        ILOPQ(Ks=256, min_cell_rows=100)  # fewer rows than codewords
    with pytest.raises(InputError, match="nlist"):
        ILOPQ(nlist=0)
    model = ILOPQ(nlist=4, M=8, Ks=16, local="identity", iter=3, seed=1)
    with pytest.raises(InputError, match="call fit"):
        model.encode(x)
    with pytest.raises(InputError, match="coarse cells"):
        ILOPQ(nlist=50, M=8, Ks=16).fit(x[:20])
    model.fit(x)
    with pytest.raises(InputError, match="add"):
        model.search(q, 5)
    with pytest.raises(InputError, match="dimension"):
        model.encode(x[:, :16])
    codes = model.encode(x[:10])
    bad = codes.copy()
    bad[0, 0] = 4
    with pytest.raises(InputError, match="cell 4 out of range for nlist=4"):
        model.decode(bad)
    bad = codes.copy()
    bad[0, 3] = 16
    with pytest.raises(InputError, match="fine code 16 out of range"):
        model.decode(bad)
    with pytest.raises(InputError, match="NaN"):
        model.fit(np.full((100, 32), np.nan, np.float32))
    with pytest.raises(InputError, match="nprobe"):
        model.set_search_params(nprobe=-1)


def test_registered_with_its_config():
    model = registry.create({"name": "ilopq", "nlist": 16, "seed": 1})
    assert isinstance(model, ILOPQ) and model.min_cell_rows == 4 * 256 and model.nprobe == 16
