"""The calibrated generator: fitting any base file, the named siftsmall model, the loader."""
import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.datasets import calibrated, load_dataset
from benchpq.datasets.fingerprint import dataset_fingerprint
from benchpq.datasets.synthetic import CHUNK_ROWS


@pytest.fixture(scope="module")
def small_model():
    """A model fitted to 3000 x 16 integer vectors of 5 elongated, clipped clusters."""
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 40, (5, 16))
    directions = rng.normal(size=(5, 16, 2)) * 6
    comp = rng.integers(0, 5, 3000)
    x = centres[comp] + np.einsum("ndr,nr->nd", directions[comp], rng.normal(size=(3000, 2))) \
        + rng.normal(size=(3000, 16))
    x = np.rint(np.clip(x, 0, 50)).astype(np.float32)
    return x, calibrated.fit_calibration(x, n_components=10, rank=2, seed=0)


def test_fit_records_the_data_range_and_structure(small_model):
    x, model = small_model
    assert model["means"].shape == (10, 16) and model["loadings"].shape == (10, 16, 2)
    assert model["weights"].sum() == pytest.approx(1.0) and bool(model["integer"])
    np.testing.assert_array_equal(model["low"], x.min(axis=0))
    np.testing.assert_array_equal(model["high"], x.max(axis=0))
    assert float(model["norm"]) == 0                      # rows of unequal norms
    assert model["data_knots"].shape == model["draw_knots"].shape == (10, 9, 16)
    assert np.all(np.diff(model["draw_knots"].astype(np.float64), axis=1) > 0)
    assert model["noise_quantiles"].shape == (16, 257) and model["noise_mixing"].shape == (16, 16)
    # the rank-2 directions carry the clusters' elongation: most of the local variance
    latent = (model["loadings"].astype(np.float64) ** 2).sum(axis=(1, 2))
    residual = (model["noise"].astype(np.float64) ** 2).sum(axis=1)
    assert np.median(latent / (latent + residual)) > 0.8


def test_generation_is_deterministic_and_chunked(small_model):
    _, model = small_model
    n = CHUNK_ROWS + 100                                   # crosses a chunk boundary
    a = calibrated.generate_calibrated(model, n, seed=0)
    assert a.dtype == np.float32 and a.shape == (n, 16)
    assert a.tobytes() == calibrated.generate_calibrated(model, n, seed=0).tobytes()
    assert not np.array_equal(a[:100], calibrated.generate_calibrated(model, 100, seed=1))
    assert not np.array_equal(a[:100], calibrated.generate_calibrated(model, 100, 0, "query"))
    assert np.all(a == np.rint(a)) and np.all(a >= model["low"]) and np.all(a <= model["high"])


def test_generated_data_resembles_the_fitted_data(small_model):
    x, model = small_model
    g = calibrated.generate_calibrated(model, 3000, seed=0)
    assert g.mean(axis=0) == pytest.approx(x.mean(axis=0), abs=1.5)
    assert g.var(axis=0).sum() == pytest.approx(x.var(axis=0).sum(), rel=0.1)


def test_save_load_round_trip_and_errors(small_model, tmp_path):
    _, model = small_model
    path = calibrated.save_calibration(model, tmp_path / "m.npz")
    loaded = calibrated.load_calibration(path)
    for key in calibrated.MODEL_KEYS:
        np.testing.assert_array_equal(loaded[key], model[key])
    with pytest.raises(InputError, match=r"not a .npz file nor a named model \(named: siftsmall\)"):
        calibrated.load_calibration("nope")
    np.savez(tmp_path / "bad.npz", weights=np.ones(2))
    with pytest.raises(InputError, match="not a calibration file"):
        calibrated.load_calibration(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="at least 30 vectors"):
        calibrated.fit_calibration(np.zeros((20, 4), np.float32), n_components=10, rank=2)
    with pytest.raises(InputError, match="rank"):
        calibrated.fit_calibration(np.zeros((200, 4), np.float32), n_components=2, rank=5)
    with pytest.raises(InputError, match="split"):
        calibrated.generate_calibrated(model, 10, split="train")


def test_cli_fits_a_file(small_model, tmp_path, capsys):
    from benchpq.datasets import write_vecs
    x, _ = small_model
    write_vecs(tmp_path / "x.fvecs", x)
    out = tmp_path / "fit.npz"
    from benchpq.datasets.calibrate import main
    assert main([str(tmp_path / "x.fvecs"), str(out), "--components", "10", "--rank", "2"]) == 0
    assert calibrated.load_calibration(out)["means"].shape == (10, 16)
    assert main([str(tmp_path / "missing.fvecs"), str(out)]) == 2
    assert "error" in capsys.readouterr().err


def test_named_model_is_fitted_once_from_the_data_folder(siftsmall_dir, tmp_path):
    """``siftsmall`` is fitted from the data folder's base on first use and cached; the
    next load reads the cache (no data needed); without either, the error names the file.
    Fitting is not part of the data set's identity: its fingerprint is the same before and
    after the model is cached."""
    spec = {"name": "cal", "loader": "calibrated", "n_base": 2000, "n_query": 20,
            "groundtruth_k": 10}
    fitting = dataset_fingerprint(spec, data_dir=siftsmall_dir.parent, cache_dir=tmp_path)
    ds = load_dataset(spec, data_dir=siftsmall_dir.parent, cache_dir=tmp_path)
    assert ds.base.shape == (2000, 128) and ds.query.shape == (20, 128)
    assert ds.learn is ds.base and ds.groundtruth.shape == (20, 10)
    assert "siftsmall" in ds.info["source"]
    cached = tmp_path / "calibration" / f"siftsmall-v{calibrated.FORMAT_VERSION}.npz"
    stamp = cached.stat().st_mtime_ns
    again = load_dataset(spec, data_dir=tmp_path / "nothing", cache_dir=tmp_path)
    np.testing.assert_array_equal(again.base, ds.base)
    assert cached.stat().st_mtime_ns == stamp
    assert dataset_fingerprint(spec, data_dir=tmp_path / "nothing", cache_dir=tmp_path) == fitting
    with pytest.raises(InputError, match=r"siftsmall_base.fvecs, which is absent"):
        load_dataset(spec, data_dir=tmp_path / "nothing", cache_dir=tmp_path / "empty")


def _pq16_mse(x: np.ndarray) -> float:
    """Mean squared error of faiss's PQ (M=16 sub-spaces of 8 dimensions, 256 codewords)
    trained and measured on x (n, 128) float32."""
    import faiss
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # tiny k-means: OpenMP waits cost more than they save
    try:
        pq = faiss.ProductQuantizer(x.shape[1], 16, 8)
        pq.cp.seed = 0
        pq.train(x)
        return float(((pq.decode(pq.compute_codes(x)) - x) ** 2).sum(axis=1).mean())
    finally:
        faiss.omp_set_num_threads(threads)


def test_siftsmall_calibration_matches_statistics_and_fine_structure(siftsmall, siftsmall_dir,
                                                                     tmp_path):
    """10k generated vectors against siftsmall's base: total variance and mean norm within
    5% (measured -1.2% and 0%), fraction of zeros within 10% (0.217 against 0.230: the
    remap's 9 knots place the mass at zero to within a knot), and the distortion of a PQ
    with 8-dimensional sub-spaces (the fine structure: 9.9e3 on siftsmall, +16% with a
    Gaussian-copula residual alone, +10.0% with the per-component marginal remap) within
    15%. The full PQ/OPQ mse and recall comparison over M is the calibrated_vs_siftsmall
    experiment."""
    real = np.asarray(siftsmall[0], np.float64)
    model = calibrated.load_calibration("siftsmall", siftsmall_dir.parent, tmp_path)
    fake = calibrated.generate_calibrated(model, 10000)
    fake64 = fake.astype(np.float64)
    assert fake64.var(axis=0).sum() == pytest.approx(real.var(axis=0).sum(), rel=0.05)
    assert np.linalg.norm(fake64, axis=1).mean() == pytest.approx(
        np.linalg.norm(real, axis=1).mean(), rel=0.05)
    assert (fake == 0).mean() == pytest.approx((real == 0).mean(), rel=0.1)
    assert _pq16_mse(fake) == pytest.approx(_pq16_mse(siftsmall[0]), rel=0.15)


def test_components_keep_their_spread_with_few_members():
    """40 clusters of about 25 members with heavy-tailed (Student t, 5 dof) spread: the
    generated points lie as far from the model's component means as the data do (measured
    0.96 of the data's mean squared distance). The remap's end knots sit at the same
    probability in a component's members as in the draws: taking the whole range of 256
    draws onto that of 25 members squeezed every component's tails (0.78)."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(40, 8)) * 3)[rng.integers(0, 40, 1000)] \
        + rng.standard_t(5, size=(1000, 8))
    x = x.astype(np.float32)
    model = calibrated.fit_calibration(x, n_components=40, rank=2)
    g = calibrated.generate_calibrated(model, 20000)
    means = model["means"].astype(np.float64)

    def spread(a: np.ndarray) -> float:
        a = a.astype(np.float64)
        return float(((a[:, None] - means[None]) ** 2).sum(axis=2).min(axis=1).mean())

    assert spread(g) == pytest.approx(spread(x), rel=0.1)


def test_remap_gives_each_component_its_mass_at_the_bound():
    """Data with a per-dimension mass at zero (as pixels or SIFT bins): the generated
    fraction of zeros per dimension follows the data's, to within the remap's knot spacing
    (1/8 of the mass with 9 knots; measured: at most 0.058 off)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 8)) * 3 + np.linspace(-3, 3, 8)
    x = np.rint(np.maximum(x + np.where(rng.random((4000, 1)) < 0.5, 4, -4), 0))
    x = x.astype(np.float32)
    model = calibrated.fit_calibration(x, n_components=8, rank=2)
    g = calibrated.generate_calibrated(model, 8000)
    np.testing.assert_allclose((g == 0).mean(axis=0), (x == 0).mean(axis=0), atol=0.07)


def test_normalised_rows_keep_their_norm():
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(600, 8))) + rng.uniform(0, 1, (600, 1))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True) * 50).astype(np.float32)
    model = calibrated.fit_calibration(x, n_components=4, rank=2)
    assert float(model["norm"]) == pytest.approx(50, rel=1e-5) and not bool(model["integer"])
    norms = np.linalg.norm(calibrated.generate_calibrated(model, 500), axis=1)
    assert norms == pytest.approx(np.full(500, 50.0), rel=0.02)


@pytest.mark.parametrize("cache_min_rows", [1, 10**9])  # written to a file, or in memory
def test_uint8_storage_holds_the_same_integers(small_model, tmp_path, cache_min_rows):
    x, model = small_model
    path = calibrated.save_calibration(model, tmp_path / "m.npz")
    spec = {"name": "cal", "loader": "calibrated", "calibration": str(path), "n_base": 3000,
            "n_query": 10, "groundtruth_k": None, "cache_min_rows": cache_min_rows}
    floats = load_dataset(spec, cache_dir=tmp_path)
    ints = load_dataset({**spec, "dtype": "uint8"}, cache_dir=tmp_path)
    assert ints.base.dtype == np.uint8 and ints.learn is ints.base
    np.testing.assert_array_equal(ints.base, floats.base)
    np.testing.assert_array_equal(ints.query, floats.query)
    if cache_min_rows == 1:
        assert isinstance(ints.base, np.memmap)
        (stored,) = (tmp_path / "synthetic").rglob("base-n3000-uint8.npy")
        assert np.load(stored, mmap_mode="r").dtype == np.uint8


def test_uint8_storage_is_refused_for_values_it_cannot_hold(small_model, tmp_path):
    x, _ = small_model
    wide = calibrated.fit_calibration(x * 10, n_components=10, rank=2, seed=0)  # up to 500
    path = calibrated.save_calibration(wide, tmp_path / "wide.npz")
    with pytest.raises(InputError, match="uint8 holds integers 0..255 only"):
        load_dataset({"name": "w", "loader": "calibrated", "calibration": str(path),
                      "n_base": 100, "n_query": 5, "dtype": "uint8"}, cache_dir=tmp_path)
