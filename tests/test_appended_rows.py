"""Codes appended block after block: a buffer that doubles, never shared by mistake."""
import copy

import numpy as np

from benchpq import registry
from benchpq.algorithms.primitives.codes import appended_rows


def test_appending_copies_each_row_a_constant_number_of_times():
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 256, (100, 8), dtype=np.uint8) for _ in range(50)]
    rows, buffers = None, set()
    for block in blocks:
        rows = appended_rows(rows, block)
        buffers.add(rows.ctypes.data)
    np.testing.assert_array_equal(rows, np.concatenate(blocks))
    assert len(buffers) <= 8  # doubling from 100 rows to 5000: a handful of buffers


def test_an_older_view_does_not_overwrite_a_newer_one():
    first = appended_rows(np.zeros((4, 2), np.uint8), np.ones((1, 2), np.uint8))  # 5 of 8
    second = appended_rows(first, np.full((1, 2), 2, np.uint8))  # in place: 6 of 8
    assert second.ctypes.data == first.ctypes.data
    third = appended_rows(first, np.full((1, 2), 3, np.uint8))  # first is no longer the end
    assert third.ctypes.data != first.ctypes.data
    assert second[5, 0] == 2 and third[5, 0] == 3


def test_a_shallow_copy_of_a_plugin_keeps_its_own_codes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 16)).astype(np.float32)
    first = registry.create({"name": "pq", "M": 4, "Ks": 16, "seed": 0}).fit(x)
    first.add(x[:200])
    first.add(x[200:300])
    twin = copy.copy(first)
    first.add(x[300:400])
    twin.add(x[400:500])
    np.testing.assert_array_equal(first.codes, first.encode(np.concatenate([x[:300],
                                                                             x[300:400]])))
    np.testing.assert_array_equal(twin.codes, twin.encode(np.concatenate([x[:300],
                                                                           x[400:500]])))
