"""Codes beyond ``task.codes_in_ram_mb`` live in memory-mapped files of the cache, not RAM:
the same codes and the same search results, a resident set that does not grow with them,
no file left behind, and a clear error when the disk cannot hold them."""
import errno
import os

import numpy as np
import pytest

from benchpq import registry
from benchpq.algorithms.primitives.codes import appended_rows
from benchpq.checks import InputError
from benchpq.datasets import Dataset
from benchpq.measure.memory import current_rss_bytes, peak_rss_bytes, reset_peak
from benchpq.measure.tasks import build_search_model
from benchpq.store.mapped import codes_in_files, empty_rows, in_file, release_pages


def test_a_buffer_above_the_threshold_is_a_file_that_no_one_else_sees(tmp_path):
    with codes_in_files(tmp_path, 1000):
        small, large = empty_rows((100, 8), np.uint8), empty_rows((1000, 8), np.uint8)
    assert not in_file(small) and in_file(large) and in_file(large[10:20])
    assert list(tmp_path.iterdir()) == []  # unlinked once mapped: nothing left, nothing shared
    large[:] = np.arange(8000).reshape(1000, 8) % 251
    assert release_pages(large[100:900]) and not release_pages(small)
    np.testing.assert_array_equal(large, np.arange(8000).reshape(1000, 8) % 251)
    assert not in_file(empty_rows((1000, 8), np.uint8))  # outside the block: RAM


def test_appended_codes_in_a_file_leave_the_resident_set(tmp_path):
    rng = np.random.default_rng(1)
    block = rng.integers(0, 256, (1 << 20, 16), dtype=np.uint8)  # 16 MiB a block
    rows, before = None, current_rss_bytes()
    with codes_in_files(tmp_path, 1 << 20):
        for i in range(8):  # 128 MiB of codes
            rows = appended_rows(rows, block ^ np.uint8(i))
    grown = current_rss_bytes() - before
    assert in_file(rows) and rows.shape == (8 << 20, 16)
    assert grown < 48 << 20, f"resident set grew by {grown >> 20} MiB for 128 MiB of codes"
    for i in (0, 3, 7):
        np.testing.assert_array_equal(rows[i << 20:(i + 1) << 20], block ^ np.uint8(i))


@pytest.fixture(scope="module")
def small_set():
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 4, (20, 16))
    base = (centres[rng.integers(0, 20, 8000)] + rng.normal(0, 1, (8000, 16))).astype(np.float32)
    return Dataset("toy", learn=base[:3000], base=base, query=base[:30] + 0.1)


@pytest.mark.parametrize("name, params", [("pq", {"M": 4, "Ks": 32}),
                                          ("lopq", {"V": 4, "M": 4, "Ks": 32}),
                                          ("pqfs", {"M": 8})])
def test_a_build_with_codes_in_files_searches_as_one_in_ram(small_set, name, params,
                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    monkeypatch.setattr("benchpq.measure.tasks.block_rows", lambda task, dim: 1024)
    task = {"name": "search", "diagnostics": False}
    ram = registry.create({"name": name, **params, "seed": 3})
    in_ram = build_search_model(ram, small_set, task)
    mapped = registry.create({"name": name, **params, "seed": 3})
    in_files = build_search_model(mapped, small_set, {**task, "codes_in_ram_mb": 0})
    stored = mapped.blocks if name == "pqfs" else mapped.codes
    assert in_file(stored) and not in_file(ram.blocks if name == "pqfs" else ram.codes)
    assert in_files["mse"] == in_ram["mse"] and in_files["codes_bytes"] == in_ram["codes_bytes"]
    (d1, i1), (d2, i2) = ram.search(small_set.query, 10), mapped.search(small_set.query, 10)
    np.testing.assert_array_equal(i2, i1)
    np.testing.assert_array_equal(d2, d1)
    assert list((tmp_path / "codes").iterdir()) == []


def test_a_disk_that_cannot_hold_the_codes_is_named(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "posix_fallocate", full)
    with codes_in_files(tmp_path, 0), \
            pytest.raises(InputError, match="cannot reserve 8000 bytes of codes in .*No space"):
        empty_rows((1000, 8), np.uint8)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [-1, 1.5, "big"])
def test_a_bad_threshold_is_named(small_set, value):
    plugin = registry.create({"name": "pq", "M": 4, "Ks": 32, "seed": 3})
    with pytest.raises(InputError, match="task.codes_in_ram_mb"):
        build_search_model(plugin, small_set, {"name": "search", "codes_in_ram_mb": value})


def test_storing_a_model_leaves_its_codes_file_out_of_the_resident_set(small_set, tmp_path,
                                                                      monkeypatch):
    """The model cache writes the codes (reading every page of their file): they must go
    back out of the process, or the search phase starts with them resident."""
    from benchpq.store.model_cache import ModelCache
    monkeypatch.setenv("BENCHPQ_CACHE", str(tmp_path))
    plugin = registry.create({"name": "pq", "M": 16, "Ks": 16, "seed": 3})
    plugin.fit(small_set.learn)
    with codes_in_files(tmp_path / "codes", 0):
        codes = empty_rows((10_000_000, 16), np.uint8)  # 160 MB in a file
    for start in range(0, len(codes), 1 << 20):
        codes[start:start + (1 << 20)] = np.arange(16, dtype=np.uint8)
        release_pages(codes[start:start + (1 << 20)])
    plugin.codes = codes
    release_pages(plugin.codes)
    assert in_file(plugin.codes)
    before = current_rss_bytes()
    measured_peak = reset_peak()
    assert ModelCache(tmp_path / "models").store("k" * 64, plugin, {})
    grown = current_rss_bytes() - before
    assert grown < 50 << 20, f"storing 160 MB of codes kept {grown >> 20} MiB resident"
    if measured_peak:  # written a chunk at a time: never all resident at once
        peak = peak_rss_bytes() - before
        assert peak < 100 << 20, f"storing 160 MB of codes peaked {peak >> 20} MiB above"
