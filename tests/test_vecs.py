"""File readers and writers: texmex vecs, IDX, .npy, HDF5, and read_array dispatch."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.datasets import (
    read_ann_hdf5,
    read_array,
    read_hdf5,
    read_idx,
    read_vecs,
    write_ann_hdf5,
    write_vecs,
)

RNG = np.random.default_rng(0)
SAMPLES = {
    "fvecs": RNG.standard_normal((37, 5)).astype(np.float32),
    "ivecs": RNG.integers(-2**31, 2**31 - 1, size=(37, 7)).astype(np.int32),
    "bvecs": RNG.integers(0, 256, size=(37, 3)).astype(np.uint8),
}


# ---- vecs -------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", sorted(SAMPLES))
@pytest.mark.parametrize("mmap", [True, False])
def test_vecs_round_trip(tmp_path, ext, mmap):
    x = SAMPLES[ext]
    path = write_vecs(tmp_path / f"x.{ext}", x)
    y = read_vecs(path, mmap=mmap)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    row = 4 + x.shape[1] * x.itemsize
    assert path.stat().st_size == x.shape[0] * row
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    if mmap:  # a strided view of the memory map: no copy, read-only
        assert not y.flags.owndata and not y.flags.writeable
        assert y.strides == (row, x.itemsize)


def test_vecs_file_layout(tmp_path):
    path = write_vecs(tmp_path / "x.fvecs", np.array([[1.5, 2.0], [3.0, -4.0]]))
    raw = path.read_bytes()
    assert raw[:4] == struct.pack("<i", 2) and raw[12:16] == struct.pack("<i", 2)
    assert struct.unpack("<2f", raw[4:12]) == (1.5, 2.0)


def test_vecs_writer_converts_ints_to_ivecs_and_bvecs(tmp_path):
    ids = np.arange(12, dtype=np.int64).reshape(3, 4)
    np.testing.assert_array_equal(read_vecs(write_vecs(tmp_path / "g.ivecs", ids)), ids)
    np.testing.assert_array_equal(read_vecs(write_vecs(tmp_path / "g.bvecs", ids)), ids)


def test_vecs_real_siftsmall(siftsmall_dir):
    base = read_vecs(siftsmall_dir / "siftsmall_base.fvecs")
    query = read_vecs(siftsmall_dir / "siftsmall_query.fvecs")
    gt = read_vecs(siftsmall_dir / "siftsmall_groundtruth.ivecs")
    assert base.shape == (10000, 128) and base.dtype == np.float32
    assert query.shape == (100, 128) and gt.shape == (100, 100) and gt.dtype == np.int32
    assert gt.min() == 0 and gt.max() < 10000
    assert base.min() >= 0 and base.max() <= 255 and np.all(base[:100] == np.rint(base[:100]))


def test_vecs_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.fvecs: no such file"):
        read_vecs(tmp_path / "nothere.fvecs")


def test_vecs_empty_file(tmp_path):
    (tmp_path / "e.fvecs").write_bytes(b"")
    with pytest.raises(InputError, match=r"e\.fvecs: empty file"):
        read_vecs(tmp_path / "e.fvecs")


def test_vecs_truncated_file(tmp_path):
    path = write_vecs(tmp_path / "t.fvecs", SAMPLES["fvecs"])
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InputError, match=r"t\.fvecs: truncated or not a fvecs file: size 885 "
                                         r"bytes is not a multiple of the row size 24"):
        read_vecs(path)
    (tmp_path / "tiny.ivecs").write_bytes(b"\x01\x00")
    with pytest.raises(InputError, match="truncated file"):
        read_vecs(tmp_path / "tiny.ivecs")


def test_vecs_inconsistent_dimensions(tmp_path):
    path = write_vecs(tmp_path / "c.fvecs", SAMPLES["fvecs"])
    raw = bytearray(path.read_bytes())
    raw[2 * 24:2 * 24 + 4] = struct.pack("<i", 6)  # header of row 2
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"inconsistent dimensions: row 2 has header 6, row 0 "
                                         r"has 5"):
        read_vecs(path)
    raw[-24:-20] = struct.pack("<i", 9)  # header of the last row
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"last row \(row 36\) has header 9"):
        read_vecs(path)


def test_vecs_wrong_type(tmp_path):
    np.save(tmp_path / "a.npy", SAMPLES["fvecs"])
    (tmp_path / "a.fvecs").write_bytes((tmp_path / "a.npy").read_bytes())
    with pytest.raises(InputError, match=r"a\.fvecs: not a valid fvecs file \(first dimension "
                                         r"header is \d+"):
        read_vecs(tmp_path / "a.fvecs")
    # a bvecs file read as fvecs: its rows are not fvecs rows
    write_vecs(tmp_path / "b.bvecs", SAMPLES["bvecs"])
    (tmp_path / "b.fvecs").write_bytes((tmp_path / "b.bvecs").read_bytes())
    with pytest.raises(InputError, match=r"b\.fvecs: truncated or not a fvecs file"):
        read_vecs(tmp_path / "b.fvecs")
    with pytest.raises(InputError, match=r"unknown vecs extension '\.txt'"):
        read_vecs(tmp_path / "a.txt")


def test_vecs_writer_refuses_bad_values(tmp_path):
    with pytest.raises(InputError, match=r"floating point values to a \.ivecs file"):
        write_vecs(tmp_path / "x.ivecs", np.ones((2, 2)))
    with pytest.raises(InputError, match=r"values in \[0, 256\] do not fit in uint8"):
        write_vecs(tmp_path / "x.bvecs", np.array([[0, 256]]))
    with pytest.raises(InputError, match="contains NaN"):
        write_vecs(tmp_path / "x.fvecs", np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match="expected a 2-D array"):
        write_vecs(tmp_path / "x.fvecs", np.zeros(3))
    assert list(tmp_path.iterdir()) == []


# ---- IDX ---------------------------------------------------------------------------------

def _idx_bytes(x: np.ndarray, type_byte: int = 0x08) -> bytes:
    head = bytes([0, 0, type_byte, x.ndim]) + struct.pack(f">{x.ndim}I", *x.shape)
    return head + x.astype(x.dtype.newbyteorder(">")).tobytes()


def test_idx_real_fashion_mnist(fashion_mnist_dir):
    images = read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(fashion_mnist_dir / "train-labels-idx1-ubyte.gz")
    test = read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (60000, 784) and images.dtype == np.uint8
    assert test.shape == (10000, 784) and labels.shape == (60000,) and labels.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), np.full(10, 6000))
    assert images.max() == 255 and images.min() == 0


def test_idx_raw_and_gz(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(x))
    with gzip.open(tmp_path / "a-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(x))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), x.reshape(2, 12))
        np.testing.assert_array_equal(read_array(tmp_path / name), x.reshape(2, 12))
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte", flatten=False), x)
    y = np.array([1.5, -2.0], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(y, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), y)


def test_idx_errors(tmp_path):
    x = np.arange(10, dtype=np.uint8)
    (tmp_path / "bad-idx1-ubyte").write_bytes(b"\x12\x34" + _idx_bytes(x)[2:])
    with pytest.raises(InputError, match=r"bad-idx1-ubyte: bad magic number 0x1234"):
        read_idx(tmp_path / "bad-idx1-ubyte")
    (tmp_path / "short-idx1-ubyte").write_bytes(_idx_bytes(x)[:-1])
    with pytest.raises(InputError, match=r"truncated IDX file: header says shape \(10,\)"):
        read_idx(tmp_path / "short-idx1-ubyte")
    (tmp_path / "notgz-idx1-ubyte.gz").write_bytes(_idx_bytes(x))
    with pytest.raises(InputError, match="cannot decompress"):
        read_idx(tmp_path / "notgz-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_idx(tmp_path / "none-idx1-ubyte")


# ---- npy, HDF5, dispatch --------------------------------------------------------------------

def test_read_array_npy_is_memory_mapped(tmp_path):
    x = SAMPLES["fvecs"]
    np.save(tmp_path / "x.npy", x)
    y = read_array(tmp_path / "x.npy")
    assert isinstance(y, np.memmap) and not y.flags.writeable
    np.testing.assert_array_equal(y, x)
    (tmp_path / "bad.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(InputError, match=r"bad\.npy: not a valid \.npy file"):
        read_array(tmp_path / "bad.npy")


def test_read_array_hdf5_keys(tmp_path):
    h5py = pytest.importorskip("h5py")
    x, y = SAMPLES["fvecs"], SAMPLES["ivecs"]
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("x", data=x)
        f.create_dataset("y", data=y, compression="gzip")  # not memory-mappable: read
    np.testing.assert_array_equal(read_array(f"{tmp_path / 'd.h5'}:x"), x)
    np.testing.assert_array_equal(read_array(tmp_path / "d.h5", key="y"), y)
    assert isinstance(read_hdf5(tmp_path / "d.h5", "x"), np.memmap)
    with pytest.raises(InputError, match=r"needs a dataset key \(write '.*d\.h5:train'"):
        read_array(tmp_path / "d.h5")
    with pytest.raises(InputError, match=r"no dataset 'z' in the file \(it has \['x', 'y'\]\)"):
        read_array(f"{tmp_path / 'd.h5'}:z")


def test_read_array_unsupported(tmp_path):
    with pytest.raises(InputError, match=r"unsupported file type '\.csv'"):
        read_array(tmp_path / "x.csv")


def test_ann_hdf5_round_trip(tmp_path):
    train, test = SAMPLES["fvecs"], SAMPLES["fvecs"][:4] + 0.5
    nbrs = np.tile(np.arange(10), (4, 1))
    path = write_ann_hdf5(tmp_path / "a.hdf5", train, test, nbrs, np.ones((4, 10)), "euclidean")
    d = read_ann_hdf5(path)
    np.testing.assert_array_equal(d["train"], train)
    np.testing.assert_array_equal(d["test"], test)
    assert d["neighbors"].dtype == np.int64 and np.array_equal(d["neighbors"], nbrs)
    assert d["distances"].dtype == np.float32 and d["distance"] == "euclidean"
    write_ann_hdf5(tmp_path / "b.hdf5", train, test)
    assert read_ann_hdf5(tmp_path / "b.hdf5")["neighbors"] is None
    with pytest.raises(InputError, match=r"not an ann-benchmarks file: no dataset 'test'"):
        import h5py
        with h5py.File(tmp_path / "c.hdf5", "w") as f:
            f.create_dataset("train", data=train)
        read_ann_hdf5(tmp_path / "c.hdf5")
