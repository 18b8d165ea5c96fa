"""The native-call tables: every declared call exists, long calls release the GIL, and a
call whose arrays disagree with each other or with the model fails before C++."""
import numpy as np
import pytest

from benchpq import native, registry
from benchpq.algorithms.own.pq import PQ_CALLS
from benchpq.algorithms.primitives.native_calls import NativeTable


@pytest.fixture(scope="module")
def ns():
    registry.discover()  # every plugin module declares its tables on import
    return native.load()


def test_every_declared_call_exists_and_long_calls_release_the_gil(ns):
    assert len(NativeTable.declared) >= 9
    for table in NativeTable.declared:
        scope = getattr(ns, table.scope) if table.scope else ns
        for name, call in table.calls.items():
            assert hasattr(scope, name), f"{table}: {name} is not in the library"
            assert getattr(getattr(scope, name), "__release_gil__", False) is not call.quick, \
                f"{table}: {name}"


def test_arrays_must_agree_with_the_scalars_and_the_model(ns):
    pq = ns.ProductQuantizer(4, 2, 16)
    x, codes = np.zeros((5, 4), np.float32), np.zeros((5, 2), np.uint8)
    with pytest.raises(native.NativeArgumentError, match=r"x: expected shape \(6, 4\), got "
                                                         r"\(5, 4\)"):
        PQ_CALLS.call(pq, "encode_u8", x, 6, codes, d=4, M=2, Ks=16, ds=2)
    with pytest.raises(native.NativeArgumentError, match="encode_u8: n is 6 in one argument "
                                                         "and 5 in another"):
        PQ_CALLS.call(pq, "encode_u8", x, 5, codes, n=6)
    with pytest.raises(native.NativeArgumentError, match=r"x: expected shape \(5, 8\)"):
        PQ_CALLS.call(pq, "encode_u8", x, 5, codes, d=8)
    with pytest.raises(native.NativeArgumentError, match="codes: expected dtype uint8"):
        PQ_CALLS.call(pq, "encode_u8", x, 5, codes.astype(np.uint16), d=4, M=2)
    with pytest.raises(native.NativeArgumentError, match="codes: read-only"):
        PQ_CALLS.call(pq, "encode_u8", x, 5, np.broadcast_to(codes, codes.shape), d=4, M=2)
    with pytest.raises(TypeError, match="encode_u8: expected 3 arguments, got 2"):
        PQ_CALLS.call(pq, "encode_u8", x, 5)


def test_arrays_passed_to_a_method_are_not_kept_alive_after_the_call():
    """cppyy's lifelines would hold each method's last array (a whole block of the base)."""
    import sys

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 16)).astype(np.float32)
    plugin = registry.create({"name": "pq", "M": 4, "Ks": 16, "seed": 0}).fit(x)
    block = x[:1000].copy()
    before = sys.getrefcount(block)
    codes = plugin.encode(block)
    assert sys.getrefcount(block) == before
    held = sys.getrefcount(codes)
    plugin.decode(codes)
    assert sys.getrefcount(codes) == held
