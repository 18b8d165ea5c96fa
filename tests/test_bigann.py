"""The big-ann-benchmarks binary formats and the ``bigann`` loader (BIGANN, Deep1B).

Files are written here byte by byte in the published layout (a header of two
little-endian uint32, then row-major values; ground truth: ids then distances), not with
benchpq's own writer, so that the reader is checked against the layout itself.
"""
import struct

import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.datasets import dataset_config, load_dataset, read_array
from benchpq.datasets import groundtruth as gtmod
from benchpq.datasets.bigann import groundtruth_spec
from benchpq.datasets.bigann_formats import (
    GROUNDTRUTH_FORMAT,
    BinWriter,
    read_bin,
    write_bin,
)
from benchpq.datasets.download import ChecksumError, Expected, verify_file
from benchpq.datasets.locate import DatasetNotFoundError
from benchpq.datasets.reads import tracking_reads


def hand_written(path, array, dtype):
    """``array`` in the published vector layout, written without benchpq."""
    n, d = array.shape
    path.write_bytes(struct.pack("<II", n, d) + np.asarray(array, dtype=dtype).tobytes())
    return path


def hand_written_groundtruth(path, ids, dist):
    nq, k = ids.shape
    path.write_bytes(struct.pack("<II", nq, k) + np.asarray(ids, "<i4").tobytes()
                     + np.asarray(dist, "<f4").tobytes())
    return path


@pytest.mark.parametrize("ext,dtype", [(".fbin", "<f4"), (".u8bin", "u1"), (".i8bin", "i1"),
                                       (".ibin", "<i4")])
def test_each_vector_format_reads_the_published_layout(tmp_path, ext, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(-100, 100, (37, 5)) if dtype in ("i1", "<i4") else \
        rng.integers(0, 255, (37, 5))
    path = hand_written(tmp_path / f"base{ext}", x, dtype)
    got = read_array(path)
    assert isinstance(got, np.memmap) and got.dtype == np.dtype(dtype) and got.shape == (37, 5)
    np.testing.assert_array_equal(got, np.asarray(x, dtype))
    np.testing.assert_array_equal(read_array(path, mmap=False), np.asarray(x, dtype))


def test_a_crop_made_by_big_ann_benchmarks_is_read(tmp_path):
    x = np.arange(60, dtype=np.uint8).reshape(10, 6)
    path = hand_written(tmp_path / "base.1B.u8bin.crop_nb_10", x, "u1")
    np.testing.assert_array_equal(read_array(path), x)


@pytest.mark.parametrize("damage,message", [
    (lambda raw: raw[:-3], "truncated, padded"),
    (lambda raw: raw + b"\0", "truncated, padded"),
    (lambda raw: raw[:5], "less than the 8-byte header"),
    (lambda raw: struct.pack("<II", 4, 0) + raw[8:], "dimension 0"),
])
def test_damaged_vector_files_are_named(tmp_path, damage, message):
    path = tmp_path / "x.fbin"
    raw = hand_written(path, np.ones((4, 3)), "<f4").read_bytes()
    path.write_bytes(damage(raw))
    with pytest.raises(InputError, match=message) as err:
        read_array(path)
    assert str(path) in str(err.value)


def test_ground_truth_files_give_ids_and_distances_by_name(tmp_path):
    ids = np.arange(12).reshape(3, 4)[:, ::-1]
    dist = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    path = hand_written_groundtruth(tmp_path / "bigann-10M", ids, dist)
    np.testing.assert_array_equal(read_array(path, fmt=GROUNDTRUTH_FORMAT), ids)
    np.testing.assert_array_equal(read_array(path, key="distances", fmt=GROUNDTRUTH_FORMAT),
                                  dist)
    with pytest.raises(InputError, match="not 'labels'"):
        read_array(path, key="labels", fmt=GROUNDTRUTH_FORMAT)
    with pytest.raises(InputError, match="no file format named 'gt'"):
        read_array(path, fmt="gt")
    with pytest.raises(InputError, match="unsupported file type"):
        read_array(path)  # the name says nothing: the format must be named
    # BIGANN's 1B file ends in .ibin yet holds distances after the ids: the error says so
    ibin = hand_written_groundtruth(tmp_path / "GT.public.1B.ibin", ids, dist)
    with pytest.raises(InputError, match="a ground-truth file"):
        read_array(ibin)
    np.testing.assert_array_equal(read_array(ibin, fmt=GROUNDTRUTH_FORMAT), ids)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(InputError, match="ids then distances"):
        read_array(path, fmt=GROUNDTRUTH_FORMAT)


def test_the_writer_writes_the_published_layout_block_by_block(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (1000, 7)).astype(np.uint8)
    path = tmp_path / "base.u8bin"
    with BinWriter(path, dim=7) as out:
        for start in range(0, 1000, 300):
            out.write(x[start:start + 300])
    raw = path.read_bytes()
    assert struct.unpack("<II", raw[:8]) == (1000, 7) and raw[8:] == x.tobytes()
    write_bin(tmp_path / "q.fbin", x[:5].astype(np.float32))
    np.testing.assert_array_equal(read_bin(tmp_path / "q.fbin"), x[:5])


def test_the_writer_refuses_what_the_type_cannot_hold_and_leaves_no_file(tmp_path):
    path = tmp_path / "base.u8bin"
    with pytest.raises(InputError, match="do not fit in uint8"), BinWriter(path, 2) as out:
        out.write(np.array([[1, 300]]))
    with pytest.raises(InputError, match="floating point"), BinWriter(path, 2) as out:
        out.write(np.array([[1.5, 2.0]]))
    with pytest.raises(InputError, match=r"shape \(m, 2\)"), BinWriter(path, 2) as out:
        out.write(np.zeros((3, 4), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        write_bin(tmp_path / "x.fbin", np.array([[np.nan, 1.0]]))
    assert list(tmp_path.iterdir()) == []


def test_downloads_are_checked_by_shape_in_any_format(tmp_path):
    path = hand_written(tmp_path / "query.public.10K.u8bin", np.zeros((10, 4)), "u1")
    verify_file(path, Expected(shape=(10, 4)))
    with pytest.raises(ChecksumError, match=r"shape \(10, 4\), expected \(10000, 128\)"):
        verify_file(path, Expected(shape=(10000, 128)))
    gt = hand_written_groundtruth(tmp_path / "bigann-10M", np.zeros((10, 3)), np.zeros((10, 3)))
    verify_file(gt, Expected(shape=(10, 3), fmt=GROUNDTRUTH_FORMAT))


# -- the loader --------------------------------------------------------------------------

N, NQ, D = 3000, 40, 16


@pytest.fixture
def collection(tmp_path):
    """A tiny big-ann collection: base, queries, and the exact top-100 of the whole base
    in the published ground-truth layout (computed here by brute force)."""
    rng = np.random.default_rng(2)
    centres = rng.integers(20, 230, (12, D))
    base = np.clip(centres[rng.integers(0, 12, N)] + rng.normal(0, 12, (N, D)), 0, 255)
    base = base.astype(np.uint8)
    query = base[rng.choice(N, NQ, replace=False)].astype(np.int64) + rng.integers(-3, 4, (NQ, D))
    query = np.clip(query, 0, 255).astype(np.uint8)
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    hand_written(folder / "base.1B.u8bin", base, "u1")
    hand_written(folder / "query.public.10K.u8bin", query, "u1")
    d2 = ((query[:, None, :].astype(np.int64) - base[None].astype(np.int64)) ** 2).sum(-1)
    order = np.lexsort((np.broadcast_to(np.arange(N), d2.shape), d2), axis=1)[:, :100]
    hand_written_groundtruth(folder / "gt-3K", order, np.take_along_axis(d2, order, 1))
    cfg = {"name": "tiny", "loader": "bigann", "folder": "tiny", "base": "base.1B.u8bin",
           "base_rows": N, "dim": D, "query": "query.public.10K.u8bin",
           "n_query_published": NQ, "groundtruth": {N: "gt-3K"}, "learn": None,
           "n_learn": 500, "groundtruth_k": 100}
    return cfg, base, query, order, tmp_path


def test_the_shipped_ground_truth_of_the_size_asked_for_is_used(collection, monkeypatch):
    cfg, base, query, order, tmp = collection

    def no_recompute(*args, **kwargs):
        raise AssertionError("ground truth computed although the file was shipped")
    monkeypatch.setattr(gtmod, "_compute", no_recompute)
    with tracking_reads() as reads:
        ds = load_dataset({**cfg, "n_base": N}, data_dir=tmp / "data", cache_dir=tmp / "c")
    np.testing.assert_array_equal(ds.groundtruth, order)
    np.testing.assert_array_equal(ds.base, base.astype(np.float32))
    np.testing.assert_array_equal(ds.learn, base[:500].astype(np.float32))
    assert ds.info["groundtruth"].startswith("shipped gt-3K")
    assert {p.name for p in reads} == {"base.1B.u8bin", "query.public.10K.u8bin", "gt-3K"}


def test_another_size_computes_its_ground_truth_from_a_prefix(collection):
    cfg, base, query, order, tmp = collection
    ds = load_dataset({**cfg, "n_base": 2000}, data_dir=tmp / "data", cache_dir=tmp / "c")
    assert ds.base.shape == (2000, D) and ds.info["groundtruth"].startswith("computed")
    ids, _ = gtmod.ground_truth(base[:2000].astype(np.float32), query.astype(np.float32), 100,
                                use_cache=False)
    np.testing.assert_array_equal(ds.groundtruth, ids)


def test_a_cropped_base_serves_its_own_size_only(collection):
    cfg, base, query, order, tmp = collection
    folder = tmp / "data" / "tiny"
    (folder / "base.1B.u8bin").unlink()
    hand_written(folder / "base.1B.u8bin.crop_nb_1000", base[:1000], "u1")
    ds = load_dataset({**cfg, "n_base": 1000}, data_dir=tmp / "data", cache_dir=tmp / "c")
    np.testing.assert_array_equal(ds.base, base[:1000].astype(np.float32))
    with pytest.raises(DatasetNotFoundError, match=r"base.1B.u8bin or base.1B.u8bin.crop_nb_2000"):
        load_dataset({**cfg, "n_base": 2000}, data_dir=tmp / "data", cache_dir=tmp / "c")


def test_bad_sizes_and_files_are_named(collection):
    cfg, base, query, order, tmp = collection
    where = {"data_dir": tmp / "data", "cache_dir": tmp / "c"}
    with pytest.raises(InputError, match="n_base"):
        load_dataset({**cfg, "n_base": N + 1}, **where)
    with pytest.raises(InputError, match="set dataset.n_learn"):
        load_dataset({**cfg, "n_learn": None}, **where)
    with pytest.raises(InputError, match=r"holds 3000 x 16 vectors; 3000 x 8 are needed"):
        load_dataset({**cfg, "dim": 8}, **where)


@pytest.mark.parametrize("name,files", [
    ("bigann", {10**7: "GT_10M/bigann-10M", 10**8: "GT_100M/bigann-100M",
                10**9: "GT.public.1B.ibin"}),
    ("deep1b", {10**7: "GT_10M/deep-10M", 10**8: "GT_100M/deep-100M",
                10**9: "deep_new_groundtruth.public.10K.bin"}),
])
def test_the_shipped_configs_pick_the_published_ground_truth(name, files):
    cfg = dataset_config(name)
    assert cfg["n_base"] == 10**7 and cfg["loader"] == "bigann"
    for rows, tail in files.items():
        assert groundtruth_spec(cfg["groundtruth"], rows).endswith(tail)
    assert groundtruth_spec(cfg["groundtruth"], 5 * 10**6) is None


def test_offline_the_error_names_every_file_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPQ_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("bigann", data_dir=tmp_path, cache_dir=tmp_path / "c")
    message = str(err.value)
    for wanted in ("base.1B.u8bin", "query.public.10K.u8bin", "GT_10M/bigann-10M",
                   str(tmp_path / "bigann"), "BENCHPQ_OFFLINE"):
        assert wanted in message
