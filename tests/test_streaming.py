"""Bases kept in their stored type and built block by block: no float copy of a whole base.

A uint8 base (SIFT1B's 1B x 128 bytes would be 512 GB as float32) stays uint8 (a memory
map stays mapped); the search task adds and encodes it in float32 blocks of at most
``task.block_mb`` MiB and gets the results a single block gives.
"""
import numpy as np
import pytest

from benchpq import registry
from benchpq.checks import InputError
from benchpq.datasets import Dataset, load_dataset
from benchpq.datasets.bigann_formats import write_bin
from benchpq.datasets.formats import read_array
from benchpq.measure.tasks import block_rows, build_search_model

D = 32


@pytest.fixture(scope="module")
def uint8_set(tmp_path_factory):
    rng = np.random.default_rng(5)
    centres = rng.integers(30, 220, (10, D))
    base = np.clip(centres[rng.integers(0, 10, 6000)] + rng.normal(0, 15, (6000, D)), 0, 255)
    path = write_bin(tmp_path_factory.mktemp("u8") / "base.u8bin", base.astype(np.uint8))
    mapped = read_array(path)
    return Dataset("u8", learn=mapped[:2000], base=mapped, query=mapped[:20].astype(np.float32))


def test_a_uint8_base_is_kept_as_stored(uint8_set):
    assert uint8_set.base.dtype == np.uint8 and isinstance(uint8_set.base, np.memmap)
    assert uint8_set.learn.dtype == np.uint8 and uint8_set.query.dtype == np.float32
    uint8_set.validate()


@pytest.mark.parametrize("name, rows", [("pq", 1000), ("faiss_ivfpq", 1000), ("lopq", 1000),
                                        ("pqfs", 1000), ("pqfs", 1024)])
def test_blocks_give_the_results_of_one_block(uint8_set, name, rows, monkeypatch):
    params = {"pq": {"M": 4, "Ks": 64}, "faiss_ivfpq": {"nlist": 16, "M": 4, "nbits": 6},
              "lopq": {"V": 4, "M": 4, "Ks": 32}, "pqfs": {"M": 8}}[name]
    one = registry.create({"name": name, **params, "seed": 3})
    blocks = registry.create({"name": name, **params, "seed": 3})
    task = {"name": "search", "mse": True, "diagnostics": False}
    whole = build_search_model(one, uint8_set, task)  # 256 MiB: the 6000 rows in one block
    # the smallest budget, 1 MiB, holds 8192 rows of 32 floats: cut the 6000 rows smaller
    # (pqfs: 1000 rows end in a partial block of 32 codes, 1024 rows do not)
    monkeypatch.setattr("benchpq.measure.tasks.block_rows", lambda task, dim: rows)
    part = build_search_model(blocks, uint8_set, task)
    assert part["codes_bytes"] == whole["codes_bytes"]
    (d1, i1), (d2, i2) = one.search(uint8_set.query, 10), blocks.search(uint8_set.query, 10)
    if name.startswith("faiss"):
        # faiss assigns through BLAS, whose rounding depends on the matrix shapes: a code
        # whose two nearest centroids are within that rounding may flip between block sizes
        assert part["mse"] == pytest.approx(whole["mse"], rel=1e-4)
        assert (i2 == i1).mean() >= 0.98
    else:  # our kernels: one defined order of operations, whatever the block
        assert part["mse"] == pytest.approx(whole["mse"], rel=1e-12)
        np.testing.assert_array_equal(i2, i1)
        np.testing.assert_allclose(d2, d1, rtol=1e-6)


def test_every_call_gets_one_float32_block_at_most(uint8_set, monkeypatch):
    plugin = registry.create({"name": "pq", "M": 4, "Ks": 64, "seed": 3})
    calls = []

    def recording(method):
        bound = getattr(plugin, method)

        def recorded(x):
            calls.append((method, x.shape[0], x.dtype, x.flags.c_contiguous))
            return bound(x)
        return recorded
    for method in ("add", "encode"):
        monkeypatch.setattr(plugin, method, recording(method))
    monkeypatch.setattr("benchpq.measure.tasks.block_rows", lambda task, dim: 1000)
    build_search_model(plugin, uint8_set, {"name": "search", "diagnostics": False})
    # add encodes through self.encode: each add block is seen once more as an encode
    assert [c[1] for c in calls if c[0] == "add"] == [1000] * 6
    assert max(c[1] for c in calls) == 1000
    assert all(dtype == np.float32 and contiguous for _, _, dtype, contiguous in calls)


def test_a_block_holds_the_budget_in_float32_rows():
    assert block_rows({}, 128) == (256 << 20) // 512  # the default 256 MiB
    assert block_rows({"block_mb": 1}, 32) == 8192
    assert block_rows({"block_mb": 1}, 100) == 2048  # 2621 rows fit: whole 1024s
    assert block_rows({"block_mb": 1}, 1000) == 262  # fewer than 1024 fit: as many as fit
    assert block_rows({"block_mb": 1}, 1 << 20) == 1  # wider than the budget: one row


@pytest.mark.parametrize("budget", [0, -4, 1.5, "x"])
def test_a_bad_block_budget_is_named(budget):
    with pytest.raises(InputError, match="task.block_mb"):
        block_rows({"block_mb": budget}, D)


# -- generated sets written as bytes ------------------------------------------------------

@pytest.mark.parametrize("cache_min_rows", [1, 10**9])  # written to a file, or in memory
def test_the_sift_like_generator_stores_bytes_with_the_same_values(tmp_path, cache_min_rows):
    spec = {"name": "s", "loader": "synthetic_sift", "n_learn": 500, "n_base": 70000,
            "n_query": 10, "dim": 16, "groundtruth_k": None, "cache_min_rows": cache_min_rows}
    floats = load_dataset(spec, cache_dir=tmp_path)
    ints = load_dataset({**spec, "dtype": "uint8"}, cache_dir=tmp_path)
    assert ints.base.dtype == np.uint8 and ints.learn.dtype == np.uint8
    np.testing.assert_array_equal(ints.base, floats.base)  # 70000 rows: two chunks
    np.testing.assert_array_equal(ints.learn, floats.learn)
    if cache_min_rows == 1:
        (stored,) = (tmp_path / "synthetic").rglob("base-n70000-uint8.npy")
        assert stored.stat().st_size < 70000 * 16 + 200  # bytes, not floats


def test_uniform_values_cannot_be_stored_as_bytes(tmp_path):
    with pytest.raises(InputError, match="uint8 holds integers 0..255 only"):
        load_dataset({"name": "u", "loader": "synthetic_uniform", "dtype": "uint8"},
                     cache_dir=tmp_path)
    with pytest.raises(InputError, match="dtype must be one of"):
        load_dataset({"name": "u", "loader": "synthetic_sift", "dtype": "float16"},
                     cache_dir=tmp_path)


def test_a_shipped_config_takes_a_key_its_yaml_does_not_list(tmp_path):
    ds = load_dataset("synthetic_sift1m", n_base=3000, n_learn=100, n_query=5, dtype="uint8",
                      groundtruth_k=None, cache_dir=tmp_path)
    assert ds.base.dtype == np.uint8 and ds.base.shape == (3000, 128)
    with pytest.raises(InputError, match="does not accept 'colour'; its keys are"):
        load_dataset("synthetic_sift1m", colour=1, cache_dir=tmp_path)


def test_the_pages_of_a_mapped_base_leave_the_process_once_used(uint8_set, monkeypatch):
    released = []
    monkeypatch.setattr("benchpq.measure.tasks.release_pages",
                        lambda a: released.append(a.shape[0]) or True)
    monkeypatch.setattr("benchpq.measure.tasks.block_rows", lambda task, dim: 1000)
    plugin = registry.create({"name": "pq", "M": 4, "Ks": 64, "seed": 3})
    build_search_model(plugin, uint8_set, {"name": "search", "diagnostics": False})
    # the whole base once before training, then every block after add and after encode
    assert released[0] == 6000 and released[1:].count(1000) >= 12


def test_whole_structures_are_built_once_per_build(uint8_set, monkeypatch):
    """lopq builds its inverted multi-index once, after the last block, not at every add;
    pqfs appends blocks of whole fast-scan groups into one growing buffer."""
    monkeypatch.setattr("benchpq.measure.tasks.block_rows", lambda task, dim: 1024)
    lopq = registry.create({"name": "lopq", "V": 4, "M": 4, "Ks": 32, "seed": 3})
    builds = []
    index = type(lopq)._index
    monkeypatch.setattr(type(lopq), "_index", lambda self: builds.append(1) or index(self))
    build_search_model(lopq, uint8_set, {"name": "search", "mse": False})
    assert len(builds) == 1
    pqfs = registry.create({"name": "pqfs", "M": 8, "seed": 3})
    seen = []
    add = pqfs.add_codes

    def recording(codes):
        add(codes)
        seen.append(pqfs.blocks)
    monkeypatch.setattr(pqfs, "add_codes", recording)
    build_search_model(pqfs, uint8_set, {"name": "search", "mse": False})
    assert len(seen) == 6
    # a buffer that doubles: 64, 128, 256 groups of 32 codes for 2 to 6 blocks of 32 groups
    buffers = [next(b for b in seen if np.shares_memory(a, b)) for a in seen[1:]]
    assert len({id(b) for b in buffers}) == 3


def test_the_encode_phase_holds_one_block_of_codes_not_all(uint8_set, monkeypatch):
    """The mse and diagnostics are measured block by block: no second copy of all codes."""
    import tracemalloc

    base = np.tile(np.asarray(uint8_set.base), (10, 1))  # 60,000 x 32 bytes
    plugin = registry.create({"name": "pq", "M": 32, "Ks": 16, "seed": 3})
    plugin.fit(np.asarray(uint8_set.learn, np.float32))
    from benchpq.measure import tasks
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = tasks.encode_base(plugin, base, tasks.Phases(), 500, diagnose=True)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # one block of 500 rows and its temporaries (float32 rows, decodes, float64 differences
    # in the diagnostics' frame: about 0.6 MB); the codes of the whole base are 1.92 MB
    assert peak < 1_000_000
    one = tasks.encode_base(plugin, base, tasks.Phases(), 60_000, diagnose=True)
    assert out["mse"] == pytest.approx(one["mse"], rel=1e-12)
    assert out["subspace_mse"] == pytest.approx(one["subspace_mse"], rel=1e-9)
    assert out["code_entropy_bits"] == pytest.approx(one["code_entropy_bits"], rel=1e-12)
    assert out["mse"] == pytest.approx(out["subspace_mse_sum"], rel=1e-6)


def test_the_encode_time_leaves_out_the_mse_measurement(uint8_set, monkeypatch):
    import time

    from benchpq.measure import tasks
    plugin = registry.create({"name": "pq", "M": 4, "Ks": 16, "seed": 3})
    plugin.fit(np.asarray(uint8_set.learn, np.float32))
    decode = plugin.decode

    def slow_decode(codes):
        time.sleep(0.05)
        return decode(codes)
    monkeypatch.setattr(plugin, "decode", slow_decode)
    phases = tasks.Phases()
    tasks.encode_base(plugin, uint8_set.base, phases, 1000, diagnose=False)  # 6 decodes
    assert phases.metrics["encode_s"] < 0.2



def test_hashing_and_checking_a_mapped_base_leave_it_out_of_the_resident_set(tmp_path):
    """The model cache's fingerprint and the ground-truth check read the whole base: a
    memory-mapped one must not stay resident after (it would count in the build's peak)."""
    from benchpq.datasets.fingerprint import array_fingerprint
    from benchpq.datasets.groundtruth import ground_truth
    from benchpq.measure.memory import current_rss_bytes
    rng = np.random.default_rng(3)
    path = write_bin(tmp_path / "big.u8bin",
                     rng.integers(0, 256, (1_600_000, 64), dtype=np.uint8))  # 100 MiB
    base = read_array(path)
    before = current_rss_bytes()
    array_fingerprint(base)
    assert current_rss_bytes() - before < 40 << 20
    ground_truth(base, np.asarray(base[:5], np.float32), k=5, cache_dir=tmp_path / "gt")
    assert current_rss_bytes() - before < 40 << 20
