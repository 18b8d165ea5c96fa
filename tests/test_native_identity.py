"""The C++-backed plugins reproduce the results recorded in tests/golden/native_results.npz.

The recording was made before the native layer's shared primitives (top-k heap, RNG, ADC
scan, code-space k-means driver) replaced their per-module copies; the refactoring must not
change what any plugin computes. Codes, labels and ids are compared exactly; so are mse and
distances, except where a comment says why a different float summation order is allowed.
"""
import numpy as np
import pytest
from golden.native_results import GOLDEN, compute


@pytest.fixture(scope="module")
def results():
    return compute()


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


def test_same_keys(results, golden):
    assert sorted(results) == sorted(golden)


@pytest.mark.parametrize("key", sorted(np.load(GOLDEN).files))
def test_identical(results, golden, key):
    got, want = results[key], golden[key]
    assert got.dtype == want.dtype and got.shape == want.shape, key
    np.testing.assert_array_equal(got, want, err_msg=key)
