"""The C++-backed plugins reproduce the results recorded in tests/golden/native_results.npz.

The recording was made before the native layer's shared primitives (top-k heap, RNG, ADC
scan, code-space k-means driver) replaced their per-module copies; the refactoring must not
change what any plugin computes. Our own kernels give the same bits on every CPU and SIMD
path, so their codes, labels, ids, mse and distances are compared exactly (except where
REORDERED says why a different float summation order is allowed).

numpy's BLAS is in the loop of OPQ (every vector is rotated by a float32 matrix product)
and of ITQ (its projection comes from an SVD). Another CPU's BLAS kernels may round those
products differently in their last bits (float32 unit roundoff u = 2^-24 ~ 6e-8, times the
product's length), so for them the test states tolerances instead of one BLAS build's bits:
distances within rtol 1e-5 and mse within rtol 1e-6 (a rotation perturbed by ~1e-7
relative moves a squared distance by a few 1e-7 relative, an average of them less), and a
code, id or bit may differ from the recording only where this run's own margin
(tests/golden/native_results.py) was within that tolerance of going the other way.
LOPQ's rotations and Bk-means' ITQ encoder are computed in float64 by LAPACK and rounded
to float32 before any use; that rounding absorbs last-bit differences of the double-
precision kernels, so they are held to their recorded bits like our own kernels.
"""
import numpy as np
import pytest
from golden.native_results import GOLDEN, compute

pytestmark = pytest.mark.native_kernels


@pytest.fixture(scope="module")
def results():
    return compute()


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


def test_same_keys(results, golden):
    assert sorted(k for k in results if not k.startswith("margin.")) == sorted(golden)


# LOPQ's list scan now sums the 8 lookups of a uint8 code as a tree (PQ's fast path) where it
# summed them in sub-space order: reordering a sum of M non-negative float32 terms moves it by at
# most 2 (M - 1) u of its value (u = 2^-24, unit roundoff). Measured: 1.6e-7 at most, every id
# and code unchanged.
REORDERED = {"lopq_m8.distances": 2 * (8 - 1) * 2.0 ** -24}
#: floats computed through numpy's BLAS: relative tolerance (module doc)
BLAS_RTOL = {"opq_m8.distances": 1e-5, "opq_m8.mse": 1e-6}
#: discrete outputs of a BLAS product: they may differ only where margin.<key> < this
BLAS_MARGIN = {"opq_m8.codes": 1e-5, "opq_m8.ids": 1e-5, "itq.codes": 1e-5}


def _flips_within_margin(key, got, want, margin):
    """Positions where got and want differ; assert each lies within the key's margin."""
    if key == "itq.codes":
        got, want = (np.unpackbits(a, axis=1, bitorder="little")[:, :margin.shape[1]]
                     for a in (got, want))
    differ = got != want
    assert np.all(margin[differ] < BLAS_MARGIN[key]), \
        f"{key}: {int(differ.sum())} values differ, some with a margin of " \
        f"{float(margin[differ].max()):.2e} >= {BLAS_MARGIN[key]}"
    return differ


@pytest.mark.parametrize("key", sorted(np.load(GOLDEN).files))
def test_identical(results, golden, key):
    got, want = results[key], golden[key]
    assert got.dtype == want.dtype and got.shape == want.shape, key
    if key in REORDERED:
        np.testing.assert_allclose(got, want, rtol=REORDERED[key], atol=0, err_msg=key)
    elif key in BLAS_RTOL:
        np.testing.assert_allclose(got, want, rtol=BLAS_RTOL[key], atol=0, err_msg=key)
    elif key in BLAS_MARGIN:
        _flips_within_margin(key, got, want, results[f"margin.{key}"])
    else:
        np.testing.assert_array_equal(got, want, err_msg=key)


def test_margins_are_those_of_the_outputs(results):
    """The margins have the shapes of the outputs they excuse: one per ITQ bit (|projection|
    over the row's largest, in [0, 1]), per OPQ sub-code and per ranked id (gaps >= 0)."""
    bits = np.unpackbits(results["itq.codes"], axis=1, bitorder="little")
    margin = results["margin.itq.codes"]
    assert margin.shape == bits.shape and margin.min() >= 0 and margin.max() == 1
    assert results["margin.opq_m8.codes"].shape == results["opq_m8.codes"].shape
    assert results["margin.opq_m8.codes"].min() >= 0
    assert results["margin.opq_m8.ids"].shape == results["opq_m8.ids"].shape


def test_a_flip_far_from_its_margin_is_caught(results):
    """The tolerance is no blanket: changing a code whose margin is large fails."""
    codes = results["opq_m8.codes"].copy()
    margin = results["margin.opq_m8.codes"]
    i, m = np.unravel_index(np.argmax(margin), margin.shape)
    codes[i, m] ^= 1
    with pytest.raises(AssertionError, match="opq_m8.codes: 1 values differ"):
        _flips_within_margin("opq_m8.codes", codes, results["opq_m8.codes"], margin)
