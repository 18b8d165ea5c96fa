"""Exact ground truth: agreement with shipped files and brute force, ties, cache."""
from __future__ import annotations

import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.datasets import (
    Dataset,
    ensure_groundtruth,
    exact_distances,
    ground_truth,
    read_idx,
    read_vecs,
)
from benchpq.datasets import groundtruth as gtmod


def brute_force(base, query, k):
    """Reference: all float64 distances, sorted by (distance, id)."""
    d = ((query[:, None, :].astype(np.float64) - base[None].astype(np.float64)) ** 2).sum(-1)
    ids = np.broadcast_to(np.arange(base.shape[0]), d.shape)
    order = np.lexsort((ids, d), axis=-1)[:, :k]
    return order, np.take_along_axis(d, order, 1)


@pytest.fixture(scope="module")
def siftsmall(siftsmall_dir):
    return (read_vecs(siftsmall_dir / "siftsmall_base.fvecs"),
            read_vecs(siftsmall_dir / "siftsmall_query.fvecs"),
            read_vecs(siftsmall_dir / "siftsmall_groundtruth.ivecs"))


def test_matches_shipped_siftsmall_groundtruth(siftsmall, tmp_path):
    base, query, shipped = siftsmall
    ids, dist = ground_truth(base, query, k=100, cache_dir=tmp_path)
    assert ids.shape == (100, 100) and ids.dtype == np.int64 and dist.dtype == np.float32
    np.testing.assert_array_equal(ids[:, 0], shipped[:, 0])  # top-1, all 100 queries
    agree = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(ids, shipped)])
    assert agree >= 0.99  # as sets (ties at the 100th distance may differ)
    assert np.all(np.diff(dist, axis=1) >= 0)
    # same distances where the ids differ: only ties were ordered differently
    np.testing.assert_array_equal(exact_distances(base, query, shipped), dist)


def test_equals_brute_force_with_ties_and_small_blocks(monkeypatch):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 3, size=(700, 6)).astype(np.float32)  # many exact ties
    query = rng.integers(0, 3, size=(45, 6)).astype(np.float32)
    monkeypatch.setattr(gtmod, "_BASE_BLOCK", 64)  # exercise block merging
    monkeypatch.setattr(gtmod, "_QUERY_BLOCK", 16)
    ids, dist = ground_truth(base, query, k=20, use_cache=False)
    ref_ids, ref_d = brute_force(base, query, 20)
    np.testing.assert_array_equal(ids, ref_ids)  # ties broken by the smaller id
    np.testing.assert_array_equal(dist, ref_d.astype(np.float32))


def test_duplicates_beyond_the_candidate_margin_are_exact():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((3000, 16)).astype(np.float32)
    base[500:1500] = base[0]  # 1001 copies of one vector: ties far beyond k + margin
    query = base[[0, 1, 2]] + np.float32(1e-3)
    ids, _ = ground_truth(base, query, k=10, use_cache=False)
    np.testing.assert_array_equal(ids[0], [0] + list(range(500, 509)))
    np.testing.assert_array_equal(ids, brute_force(base, query, 10)[0])


def test_uniform_float_data_equals_brute_force():
    rng = np.random.default_rng(3)
    base = rng.random((5000, 32), dtype=np.float32) + 100.0  # far from the origin
    query = rng.random((30, 32), dtype=np.float32) + 100.0
    ids, _ = ground_truth(base, query, k=50, use_cache=False)
    np.testing.assert_array_equal(ids, brute_force(base, query, 50)[0])


def test_cache_is_reused(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    base, query = rng.random((500, 8), dtype=np.float32), rng.random((20, 8), dtype=np.float32)
    ids, dist = ground_truth(base, query, k=5, cache_dir=tmp_path)
    files = list((tmp_path / "groundtruth").glob("*.npz"))
    assert len(files) == 1

    def fail(*args):
        raise AssertionError("recomputed despite the cache")
    monkeypatch.setattr(gtmod, "_compute", fail)
    ids2, dist2 = ground_truth(base, query, k=5, cache_dir=tmp_path)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(dist2, dist)
    with pytest.raises(AssertionError, match="recomputed"):  # other k, other data: new key
        ground_truth(base, query, k=6, cache_dir=tmp_path)
    base2 = base.copy()
    base2[0, 0] += 1
    with pytest.raises(AssertionError, match="recomputed"):
        ground_truth(base2, query, k=5, cache_dir=tmp_path)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    rng = np.random.default_rng(5)
    ground_truth(rng.random((50, 4)), rng.random((3, 4)), k=2)
    assert len(list((tmp_path / "groundtruth").glob("*.npz"))) == 1


def test_exact_distances():
    rng = np.random.default_rng(6)
    base, query = rng.random((100, 8), dtype=np.float32), rng.random((4, 8), dtype=np.float32)
    ids = np.array([[0, 5, -1], [99, 1, 2], [3, 3, 3], [-1, -1, 7]])
    d = exact_distances(base, query, ids)
    assert d.shape == (4, 3) and d.dtype == np.float32
    ref = ((query[:, None, :].astype(np.float64) - base[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(d[ids >= 0], ref[ids >= 0], rtol=1e-6)
    assert np.all(np.isinf(d[ids < 0]))
    with pytest.raises(InputError, match=r"ids: values must be in \[-1, 100\)"):
        exact_distances(base, query, ids + 200)
    with pytest.raises(InputError, match=r"expected an integer array \(4, k\)"):
        exact_distances(base, query, ids[:2])


def test_input_errors():
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(InputError, match="k=11 is larger than the database"):
        ground_truth(x, x[:2], k=11, use_cache=False)
    with pytest.raises(InputError, match="query: dimension mismatch, expected 4 columns"):
        ground_truth(x, np.zeros((2, 3)), k=1, use_cache=False)


def test_ensure_groundtruth(tmp_path):
    rng = np.random.default_rng(7)
    base, query = rng.random((300, 8), dtype=np.float32), rng.random((10, 8), dtype=np.float32)
    ds = Dataset("t", learn=base, base=base, query=query)
    assert ensure_groundtruth(ds, 20, tmp_path) is ds  # filled in place
    assert ds.groundtruth.shape == (10, 20) and "computed" in ds.info["groundtruth"]
    ref = brute_force(base, query, 20)[0]
    np.testing.assert_array_equal(ds.groundtruth, ref)
    shipped = ref[:, :5].copy()
    ds = Dataset("t", learn=base, base=base, query=query, groundtruth=shipped)
    ensure_groundtruth(ds, 5, tmp_path)
    assert ds.groundtruth is shipped or np.shares_memory(ds.groundtruth, shipped)  # kept
    ensure_groundtruth(ds, 20, tmp_path)  # too few columns: recomputed
    np.testing.assert_array_equal(ds.groundtruth, ref)
    small = Dataset("s", learn=base[:7], base=base[:7], query=query)
    assert ensure_groundtruth(small, 100, tmp_path).groundtruth.shape == (10, 7)  # k <= n_base


def test_fashion_mnist_shipped_groundtruth_agrees(fashion_mnist_dir, tmp_path):
    train = read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz").astype(np.float32)
    test = read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:20].astype(np.float32)
    shipped = read_vecs(fashion_mnist_dir / "derived" / "fashion-mnist_groundtruth.ivecs")
    ids, dist = ground_truth(train, test, k=10, use_cache=False)
    np.testing.assert_array_equal(ids[:, 0], shipped[:20, 0])
    np.testing.assert_array_equal(dist, exact_distances(train, test, shipped[:20, :10]))


# -- checkpoints: a killed computation resumes -----------------------------------------------

BLOCK = 256


class Killed(Exception):
    """Stands for a kill in the middle of a computation."""
RESUME_DATA = """
import numpy as np
rng = np.random.default_rng(11)
base = rng.normal(size=(20 * 256 + 37, 8)).astype(np.float32)
query = rng.normal(size=(60, 8)).astype(np.float32)
"""


def resume_data():
    scope = {}
    exec(RESUME_DATA, scope)
    return scope["base"], scope["query"]


def _partial(cache) -> list:
    return sorted((cache / "groundtruth").glob("*.partial-?.npz"))


def test_an_interrupted_computation_resumes_after_its_last_checkpoint(tmp_path, monkeypatch,
                                                                      caplog):
    base, query = resume_data()
    want_ids, want_dist = brute_force(base, query, 10)
    monkeypatch.setattr(gtmod, "_BASE_BLOCK", BLOCK)
    monkeypatch.setattr(gtmod, "CHECKPOINT_S", 0.0)
    blocks, killed = [], []
    advance = gtmod.Progress.advance

    def interrupted(self, amount):
        blocks.append(amount)
        if len(blocks) == 8 and not killed:
            killed.append(True)
            raise Killed  # as a kill would, after 7 blocks were saved
        advance(self, amount)
    monkeypatch.setattr(gtmod.Progress, "advance", interrupted)
    with pytest.raises(Killed):
        ground_truth(base, query, 10, cache_dir=tmp_path)
    assert len(_partial(tmp_path)) == 2
    blocks.clear()
    with caplog.at_level("INFO"):
        ids, dist = ground_truth(base, query, 10, cache_dir=tmp_path)
    assert f"after {7 * BLOCK} base rows" in caplog.text
    assert len(blocks) == 21 - 7  # 21 blocks in all: only the rest was computed
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-5)
    assert _partial(tmp_path) == []  # removed once the result is cached


def test_a_tampered_checkpoint_is_not_resumed(tmp_path, monkeypatch, caplog):
    base, query = resume_data()
    monkeypatch.setattr(gtmod, "_BASE_BLOCK", BLOCK)
    monkeypatch.setattr(gtmod, "CHECKPOINT_S", 0.0)
    calls = []
    advance = gtmod.Progress.advance

    def interrupted(self, amount):
        calls.append(amount)
        if len(calls) == 5:
            raise Killed
        advance(self, amount)
    monkeypatch.setattr(gtmod.Progress, "advance", interrupted)
    with pytest.raises(Killed):
        ground_truth(base, query, 10, cache_dir=tmp_path)
    monkeypatch.setattr(gtmod.Progress, "advance", advance)
    slots = _partial(tmp_path)
    assert len(slots) == 2
    for slot in slots:
        with np.load(slot) as f:
            state = dict(f)
        state["best_i"][:, 0] = 0  # forged candidates, the seal left as it was
        with open(slot, "wb") as f:
            np.savez(f, **state)
    with caplog.at_level("INFO"):
        ids, _ = ground_truth(base, query, 10, cache_dir=tmp_path)
    assert caplog.text.count("is not used") == 2 and "resuming" not in caplog.text
    np.testing.assert_array_equal(ids, brute_force(base, query, 10)[0])


def test_a_computation_killed_by_sigkill_resumes(tmp_path, caplog):
    """A real kill (SIGKILL, in a child process) half way through the base."""
    import os
    import signal
    import subprocess
    import sys
    import time
    script = RESUME_DATA + f"""
import time
from benchpq.datasets import groundtruth as gtmod
gtmod._BASE_BLOCK = {BLOCK}
gtmod.CHECKPOINT_S = 0.0
advance = gtmod.Progress.advance
def slow(self, amount):
    time.sleep(0.1)
    advance(self, amount)
gtmod.Progress.advance = slow
gtmod.ground_truth(base, query, 10, cache_dir={str(tmp_path)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while True:
            starts = []
            for slot in _partial(tmp_path):
                try:
                    with np.load(slot) as f:
                        starts.append(int(f["start"]))
                except (OSError, ValueError, KeyError):
                    pass  # replaced while read
            if starts and min(starts) >= 5 * BLOCK:
                break
            assert proc.poll() is None and time.time() < deadline, "no checkpoint half way"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    base, query = resume_data()
    gtmod_block = gtmod._BASE_BLOCK
    gtmod._BASE_BLOCK = BLOCK
    try:
        with caplog.at_level("INFO"):
            ids, dist = ground_truth(base, query, 10, cache_dir=tmp_path)
    finally:
        gtmod._BASE_BLOCK = gtmod_block
    assert "resuming from" in caplog.text
    want_ids, want_dist = brute_force(base, query, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-5)
