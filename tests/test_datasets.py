"""Named datasets, the loader registry, Dataset.validate, synthetic data, downloads."""
from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from benchpq.checks import InputError
from benchpq.datasets import (
    ChecksumError,
    Dataset,
    DatasetNotFoundError,
    Expected,
    UnknownLoaderError,
    download_file,
    extract_archive,
    fashion_mnist,
    known_loaders,
    load_dataset,
    oxford5k,
    read_array,
    read_vecs,
    register_loader,
    shuffle_split,
    synthetic,
    texmex,
    write_ann_hdf5,
    write_vecs,
)
from benchpq.datasets.download import DownloadDisabledError, verify_file
from benchpq.datasets.registry import _check_params, get_loader

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def conf(name: str, **overrides) -> dict:
    """conf/dataset/<name>.yaml as a dict, with overrides."""
    from omegaconf import OmegaConf
    raw = OmegaConf.load(CONF / f"{name}.yaml")
    parents = [d for d in raw.get("defaults", []) if d != "_self_"]
    cfg = {}
    for parent in parents:  # a config that extends another (defaults: [fashion-mnist, _self_])
        cfg.update(conf(parent))
    cfg.update(OmegaConf.to_container(raw))
    cfg.pop("defaults", None)
    if "${" in str(cfg["name"]):  # named after its file at composition; here by the config
        cfg["name"] = name
    cfg.update(overrides)
    return cfg


# ---- the configs ---------------------------------------------------------------------------

def test_every_dataset_config_names_a_loader_and_valid_keys():
    names = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert {"siftsmall", "sift1m", "gist1m", "deep1m", "fashion-mnist", "oxford5k", "synthetic",
            "synthetic_uniform", "synthetic_sift", "synthetic_sift1m", "files",
            "ann_hdf5"} <= set(names)
    from benchpq.datasets.registry import COMMON_KEYS
    for name in names:
        cfg = conf(name)
        assert cfg["name"] == name
        params = {k: v for k, v in cfg.items() if k not in ("name", "loader", *COMMON_KEYS)}
        _check_params(name, cfg["loader"], get_loader(cfg["loader"]), params)


def test_siftsmall(siftsmall_dir, tmp_path):
    ds = load_dataset(conf("siftsmall"), data_dir=siftsmall_dir.parent, cache_dir=tmp_path)
    assert ds.name == "siftsmall" and ds.dim == 128
    assert ds.base.shape == (10000, 128) and ds.query.shape == (100, 128)
    assert ds.learn is ds.base and ds.base.dtype == np.float32 and ds.base.flags.c_contiguous
    assert ds.groundtruth.shape == (100, 100) and ds.groundtruth.dtype == np.int64
    assert "shipped" in ds.info["groundtruth"]
    assert not (tmp_path / "groundtruth").exists()  # shipped ground truth is enough


def test_subsetting_keys(siftsmall_dir, tmp_path):
    cfg = conf("siftsmall", n_base=2000, n_query=10)
    ds = load_dataset(cfg, data_dir=siftsmall_dir.parent, cache_dir=tmp_path)
    assert ds.base.shape == (2000, 128) and ds.query.shape == (10, 128) and ds.learn is ds.base
    assert ds.groundtruth.shape == (10, 100) and ds.groundtruth.max() < 2000  # recomputed
    assert ds.info["subset"] == {"n_base": 2000, "n_query": 10}
    ds = load_dataset(conf("siftsmall", n_query=7, n_learn=500), data_dir=siftsmall_dir.parent,
                      cache_dir=tmp_path)
    assert ds.learn.shape == (500, 128) and ds.groundtruth.shape == (7, 100)
    with pytest.raises(InputError, match=r"n_base: must be \[1, 10000\], got 20000"):
        load_dataset(conf("siftsmall", n_base=20000), data_dir=siftsmall_dir.parent,
                     cache_dir=tmp_path)


def test_fashion_mnist(fashion_mnist_dir, tmp_path):
    ds = load_dataset(conf("fashion-mnist"), data_dir=fashion_mnist_dir.parent, cache_dir=tmp_path)
    assert ds.base.shape == (60000, 784) and ds.base.dtype == np.uint8 and ds.learn is ds.base
    assert ds.query.shape == (10000, 784) and ds.base.max() == 255.0
    assert ds.labels.shape == (60000,) and ds.labels.dtype == np.int64
    assert np.array_equal(np.bincount(ds.labels), np.full(10, 6000))
    assert ds.groundtruth.shape == (10000, 100)


def test_oxford5k_split(oxford5k_dir, tmp_path):
    ds = load_dataset(conf("oxford5k"), data_dir=oxford5k_dir.parent, cache_dir=tmp_path)
    assert ds.base.shape == (4050, 128) and ds.query.shape == (1013, 128) and ds.learn is ds.base
    assert ds.groundtruth.shape == (1013, 100) and "computed" in ds.info["groundtruth"]
    data = read_vecs(oxford5k_dir / "oxford_features.fvecs")
    train, test = shuffle_split(5063, 0.2, 40)
    np.testing.assert_array_equal(ds.query, data[test])
    sklearn = pytest.importorskip("sklearn.model_selection")
    sk_train, sk_test = sklearn.train_test_split(np.asarray(data), test_size=0.2, random_state=40)
    np.testing.assert_array_equal(ds.base, sk_train)
    np.testing.assert_array_equal(ds.query, sk_test)


def test_shuffle_split_matches_sklearn():
    sklearn = pytest.importorskip("sklearn.model_selection")
    idx = np.arange(101)
    for test_size, seed in [(0.2, 40), (0.33, 0), (7, 3)]:
        train, test = shuffle_split(101, test_size, seed)
        sk_train, sk_test = sklearn.train_test_split(idx, test_size=test_size, random_state=seed)
        assert np.array_equal(train, sk_train) and np.array_equal(test, sk_test)
    with pytest.raises(InputError, match="test_size"):
        shuffle_split(10, 1.5)


# ---- synthetic ----------------------------------------------------------------------------

def test_synthetic_is_deterministic():
    n = synthetic.CHUNK_ROWS + 100  # crosses a chunk boundary
    a = synthetic.generate("sift", n, 16, seed=0)
    assert a.tobytes() == synthetic.generate("sift", n, 16, seed=0).tobytes()
    assert not np.array_equal(a[:100], synthetic.generate("sift", 100, 16, seed=1))
    assert not np.array_equal(a[:100], synthetic.generate("sift", 100, 16, 0, split="query"))
    u = synthetic.generate("uniform", 1000, 8, seed=3)
    assert u.tobytes() == synthetic.generate("uniform", 1000, 8, seed=3).tobytes()
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1


def test_synthetic_sift_is_sift_like(tmp_path):
    ds = load_dataset(conf("synthetic"), cache_dir=tmp_path)
    assert (ds.learn.shape, ds.base.shape, ds.query.shape) == ((10000, 128), (20000, 128),
                                                                (200, 128))
    x = ds.base
    assert x.dtype == np.float32 and x.min() == 0 and x.max() <= 255
    assert np.array_equal(x, np.rint(x))  # integer valued, like SIFT
    assert 0.05 < np.mean(x == 0) < 0.5  # many zeros from clipping
    assert 10 < x.mean() < 40
    ev = np.linalg.eigvalsh(np.cov(x[:5000].T))
    assert ev[-1] / ev[len(ev) // 2] > 5  # anisotropic, not a round blob
    kurt = ((x - x.mean(0)) ** 4).mean(0) / x.var(0) ** 2
    assert np.median(kurt) > 3  # heavier tails than a Gaussian
    assert ds.groundtruth.shape == (200, 100)


def test_synthetic_large_sets_are_cached(tmp_path):
    cfg = {"name": "big", "loader": "synthetic_sift", "n_learn": 300, "n_base": 2000,
           "n_query": 5, "dim": 8, "cache_min_rows": 1000, "groundtruth_k": None}
    ds = load_dataset(cfg, cache_dir=tmp_path)
    files = sorted(p.name for p in (tmp_path / "synthetic").rglob("*.npy"))
    assert files == ["base-n2000.npy", "learn-n300.npy", "query-n5.npy"]
    assert isinstance(ds.base, np.memmap)
    np.testing.assert_array_equal(ds.base, synthetic.generate("sift", 2000, 8, 0, "base"))
    again = load_dataset(cfg, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.learn, ds.learn)


def test_synthetic_uniform_config(tmp_path):
    ds = load_dataset(conf("synthetic_uniform", n_base=500, n_query=3, n_learn=400, dim=4),
                      cache_dir=tmp_path)
    assert ds.base.shape == (500, 4) and ds.learn.shape == (400, 4) and ds.query.shape == (3, 4)
    assert ds.base.max() < 1 and ds.groundtruth.shape == (3, 100)


# ---- validate -----------------------------------------------------------------------------

def _small(**kw):
    rng = np.random.default_rng(0)
    parts = dict(learn=rng.random((20, 4)), base=rng.random((30, 4)), query=rng.random((5, 4)))
    parts.update(kw)
    return Dataset("small", **parts)


def test_validate_accepts_a_good_dataset():
    ds = _small(groundtruth=np.zeros((5, 3), np.int32), labels=np.arange(30))
    assert ds.validate() is ds and ds.dim == 4
    assert ds.learn.dtype == np.float32 and ds.groundtruth.dtype == np.int64


def test_validate_dimension_mismatch():
    with pytest.raises(InputError, match="dataset 'small': dimension mismatch: learn has 4, "
                                         "query has 3"):
        _small(query=np.zeros((5, 3))).validate()
    with pytest.raises(InputError, match="dimension mismatch: learn has 5, base has 4"):
        _small(learn=np.zeros((5, 5))).validate()


def test_validate_nan_and_inf():
    base = np.random.default_rng(0).random((30, 4))
    base[17, 2] = np.nan
    with pytest.raises(InputError, match=r"dataset 'small' base: contains NaN \(first in row 17\)"):
        _small(base=base).validate()
    query = np.zeros((5, 4))
    query[3, 0] = np.inf
    with pytest.raises(InputError, match=r"query: contains Inf \(first in row 3\)"):
        _small(query=query).validate()
    with pytest.raises(InputError, match=r"learn: contains Inf"):  # float64 overflow
        _small(learn=np.full((2, 4), 1e300)).validate()


def test_validate_groundtruth_labels_and_types():
    with pytest.raises(InputError, match=r"groundtruth ids must be in \[0, 30\) \(the base "
                                         r"size\), found \[30, 30\]"):
        _small(groundtruth=np.full((5, 2), 30)).validate()
    with pytest.raises(InputError, match="groundtruth has 4 rows but there are 5 queries"):
        _small(groundtruth=np.zeros((4, 2), int)).validate()
    with pytest.raises(InputError, match="29 labels for 30 base vectors"):
        _small(labels=np.zeros(29, int)).validate()
    with pytest.raises(InputError, match="base has dtype <U1, which cannot be converted"):
        _small(base=np.array([["a"] * 4] * 3)).validate()
    with pytest.raises(InputError, match=r"query must be a 2-D array \(n, d\), got \(4,\)"):
        _small(query=np.zeros(4)).validate()


# ---- registry -----------------------------------------------------------------------------

def test_unknown_loader_lists_known_ones():
    with pytest.raises(UnknownLoaderError,
                       match=r"unknown dataset loader 'nope'; known loaders: "
                             r"ann_hdf5, bigann, calibrated, fashion_mnist, files, oxford5k"):
        load_dataset({"name": "x", "loader": "nope"})
    with pytest.raises(InputError, match="has no 'loader' key"):
        load_dataset({"name": "x"})


def test_unknown_and_missing_keys(tmp_path):
    with pytest.raises(InputError, match=r"loader 'texmex' does not accept 'colour'"):
        load_dataset(conf("siftsmall", colour="red"), data_dir=tmp_path)
    with pytest.raises(InputError, match=r"loader 'texmex' needs the key 'prefix'"):
        load_dataset({"name": "t", "loader": "texmex", "folder": "x"}, data_dir=tmp_path)
    with pytest.raises(InputError, match=r"dataset 'files': set 'base', 'query'"):
        load_dataset(conf("files"), data_dir=tmp_path)


def test_register_a_new_loader(tmp_path):
    @register_loader("test_tiny")
    def tiny(ctx, n: int = 3):
        x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        return Dataset(ctx.name, learn=x, base=x, query=x[:1])

    assert "test_tiny" in known_loaders()
    ds = load_dataset({"name": "t", "loader": "test_tiny", "n": 4, "groundtruth_k": 2},
                      cache_dir=tmp_path)
    assert ds.base.shape == (4, 2) and ds.groundtruth.tolist() == [[0, 1]]
    with pytest.raises(InputError, match="already registered"):
        register_loader("test_tiny")(lambda ctx: None)


def test_dictconfig_is_accepted(siftsmall_dir, tmp_path):
    from omegaconf import OmegaConf
    cfg = OmegaConf.load(CONF / "siftsmall.yaml")
    assert load_dataset(cfg, siftsmall_dir.parent, tmp_path).base.shape == (10000, 128)


# ---- files and ann_hdf5 -------------------------------------------------------------------

def test_files_loader_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    base, query, learn = (rng.random((n, 6), dtype=np.float32) for n in (200, 9, 50))
    labels = rng.integers(0, 4, 200)
    (tmp_path / "data").mkdir()
    write_vecs(tmp_path / "data" / "base.fvecs", base)
    np.save(tmp_path / "data" / "query.npy", query)
    with h5py.File(tmp_path / "data" / "more.hdf5", "w") as f:
        f.create_dataset("learn", data=learn)
        f.create_dataset("labels", data=labels)
    cfg = dict(conf("files"), base="base.fvecs", query="query.npy", learn="more.hdf5:learn",
               labels=str(tmp_path / "data" / "more.hdf5"), labels_key="labels")
    ds = load_dataset(cfg, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds.base, base)
    np.testing.assert_array_equal(ds.query, query)
    np.testing.assert_array_equal(ds.learn, learn)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.groundtruth.shape == (9, 100)  # computed
    write_vecs(tmp_path / "data" / "gt.ivecs", ds.groundtruth[:, :10])
    cfg.update(groundtruth="gt.ivecs", learn=None, groundtruth_k=10)
    ds2 = load_dataset(cfg, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert ds2.learn is ds2.base and np.array_equal(ds2.groundtruth, ds.groundtruth[:, :10])


def test_files_loader_split_and_missing(tmp_path):
    x = np.random.default_rng(0).random((100, 3), dtype=np.float32)
    np.save(tmp_path / "all.npy", x)
    cfg = dict(conf("files"), base="all.npy", query=None, test_size=0.2, seed=40)
    ds = load_dataset(cfg, data_dir=tmp_path, cache_dir=tmp_path)
    train, test = shuffle_split(100, 0.2, 40)
    np.testing.assert_array_equal(ds.query, x[test])
    np.testing.assert_array_equal(ds.base, x[train])
    with pytest.raises(DatasetNotFoundError, match=r"dataset 'files': query file .*q\.fvecs not "
                                                   r"found \(relative paths are taken from"):
        load_dataset(dict(cfg, query="q.fvecs"), data_dir=tmp_path, cache_dir=tmp_path)


def test_ann_hdf5_loader(tmp_path):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    train, test = rng.random((300, 5), dtype=np.float32), rng.random((7, 5), dtype=np.float32)
    from benchpq.datasets import ground_truth
    nbrs, dist = ground_truth(train, test, 10, use_cache=False)
    write_ann_hdf5(tmp_path / "toy-5-euclidean.hdf5", train, test, nbrs, np.sqrt(dist))
    cfg = dict(conf("ann_hdf5"), path="toy-5-euclidean.hdf5", groundtruth_k=10)
    ds = load_dataset(cfg, data_dir=tmp_path, cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.base, train)
    np.testing.assert_array_equal(ds.query, test)
    np.testing.assert_array_equal(ds.groundtruth, nbrs)
    assert ds.learn is ds.base
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (train, test)]
    angular_nbrs, _ = ground_truth(*unit, 10, use_cache=False)  # the neighbours it ships
    write_ann_hdf5(tmp_path / "toy-angular.hdf5", train, test, angular_nbrs, distance="angular")
    cfg["path"] = "toy-angular.hdf5"
    ds = load_dataset(cfg, data_dir=tmp_path, cache_dir=tmp_path)  # read as cosine
    assert ds.metric == "cosine"
    np.testing.assert_allclose(np.linalg.norm(ds.base, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(ds.groundtruth, angular_nbrs)


# ---- missing files and downloads ----------------------------------------------------------

def test_missing_dataset_message(tmp_path):
    data = tmp_path / "data"
    expected = (f"dataset 'sift1m' not found: put sift_base.fvecs, sift_learn.fvecs, "
                f"sift_query.fvecs, sift_groundtruth.ivecs in {data / 'sift'} "
                f"(set BENCHPQ_DATA or data_dir to change the folder); "
                f"download is disabled (download: false)")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(conf("sift1m", download=False), data_dir=data, cache_dir=tmp_path / "c")
    assert str(err.value) == expected
    with pytest.raises(DatasetNotFoundError, match=r"download is disabled \(BENCHPQ_OFFLINE=1\)"):
        load_dataset(conf("gist1m"), data_dir=data, cache_dir=tmp_path / "c")
    with pytest.raises(DatasetNotFoundError, match=r"put deep1M_base\.fvecs.*no download source"):
        load_dataset(conf("deep1m"), data_dir=data, cache_dir=tmp_path / "c")
    with pytest.raises(DatasetNotFoundError, match=r"train-images-idx3-ubyte\.gz \(or "
                                                   r"train-images-idx3-ubyte\)"):
        load_dataset(conf("fashion-mnist"), data_dir=data, cache_dir=tmp_path / "c")
    assert not data.exists()  # nothing written to the data directory


def test_download_file_verifies_checksums(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"benchpq" * 1000)
    sha, md5 = (hashlib.new(a, src.read_bytes()).hexdigest() for a in ("sha256", "md5"))
    dest = download_file(src.as_uri(), tmp_path / "out" / "a.bin", Expected(sha256=sha))
    assert dest.read_bytes() == src.read_bytes()
    download_file(src.as_uri(), tmp_path / "out" / "b.bin", Expected(md5=md5))
    with pytest.raises(ChecksumError, match=r"sha256 mismatch: expected 0+, got " + sha):
        download_file(src.as_uri(), tmp_path / "out" / "c.bin", Expected(sha256="0" * 64))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin", "b.bin"]
    with pytest.raises(DownloadDisabledError, match="BENCHPQ_OFFLINE"):
        download_file("http://example.invalid/x.bin", tmp_path / "out" / "d.bin")


def test_extract_archive(tmp_path):
    (tmp_path / "f.txt.gz").write_bytes(gzip.compress(b"hello"))
    out = extract_archive(tmp_path / "f.txt.gz", tmp_path / "x")
    assert (out / "f.txt").read_bytes() == b"hello"
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InputError, match="cannot extract archive"):
        extract_archive(evil, tmp_path / "y")
    assert not (tmp_path / "escaped.txt").exists()


def _siftsmall_archive(siftsmall_dir: Path, out: Path, corrupt: bool = False) -> Path:
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for name in ("siftsmall_base.fvecs", "siftsmall_query.fvecs",
                     "siftsmall_groundtruth.ivecs"):
            data = (siftsmall_dir / name).read_bytes()
            if corrupt and name.endswith("query.fvecs"):
                data = data[:-1] + b"\x01"
            info = tarfile.TarInfo(f"siftsmall/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def test_texmex_download_from_archive(siftsmall_dir, tmp_path):
    archive = _siftsmall_archive(siftsmall_dir, tmp_path / "siftsmall.tar.gz")
    cfg = conf("siftsmall", url=archive.as_uri())
    ds = load_dataset(cfg, data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    assert ds.base.shape == (10000, 128) and ds.groundtruth.shape == (100, 100)
    placed = sorted(p.name for p in (tmp_path / "cache" / "data" / "siftsmall").iterdir())
    assert placed == ["siftsmall_base.fvecs", "siftsmall_groundtruth.ivecs",
                      "siftsmall_query.fvecs"]
    assert sorted(p.name for p in (tmp_path / "cache" / "data").iterdir()) == ["siftsmall"]


def test_texmex_download_with_wrong_checksum(siftsmall_dir, tmp_path):
    archive = _siftsmall_archive(siftsmall_dir, tmp_path / "siftsmall.tar.gz", corrupt=True)
    with pytest.raises(DatasetNotFoundError, match=r"siftsmall_query\.fvecs from .* sha256 "
                                                   r"mismatch"):
        load_dataset(conf("siftsmall", url=archive.as_uri()), data_dir=tmp_path / "empty",
                     cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "data").iterdir()) == []  # nothing half-placed


def test_embedded_checksums_match_the_real_files(siftsmall_dir, fashion_mnist_dir, oxford5k_dir):
    for name, expected in texmex.SOURCES["siftsmall"].files.items():
        if expected.sha256:
            verify_file(siftsmall_dir / name, expected)
    for name, expected in fashion_mnist.FILES.items():  # content md5: any gzip of the same data
        verify_file(fashion_mnist_dir / name, Expected(content_md5=expected.content_md5))
    verify_file(oxford5k_dir / oxford5k.OXFORD_FILE, oxford5k.SOURCE.files[oxford5k.OXFORD_FILE])
    with pytest.raises(ChecksumError, match="shape"):
        verify_file(siftsmall_dir / "siftsmall_query.fvecs", Expected(shape=(101, 128)))


def test_fashion_mnist_download_of_single_files(fashion_mnist_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in fashion_mnist.FILES:  # recompressed copies: check the content md5 only
        shutil.copy(fashion_mnist_dir / name, mirror / name)
    files = {n: Expected(content_md5=e.content_md5) for n, e in fashion_mnist.FILES.items()}
    source = fashion_mnist.SOURCE.__class__(mirror.as_uri() + "/", files=files, archive=False)
    monkeypatch.setattr(fashion_mnist, "SOURCE", source)
    ds = load_dataset(conf("fashion-mnist", n_query=5), data_dir=tmp_path / "empty",
                      cache_dir=tmp_path / "cache")
    assert ds.base.shape == (60000, 784) and ds.groundtruth.shape == (5, 100)
    assert (tmp_path / "cache" / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_a_shipped_dataset_loads_by_name_with_the_command_lines_keys(siftsmall_dir):
    from benchpq.datasets import named_datasets
    ds = load_dataset("siftsmall", data_dir=siftsmall_dir.parent, n_query=20)
    assert ds.name == "siftsmall" and ds.base.shape == (10000, 128)
    assert ds.query.shape == (20, 128) and ds.groundtruth.shape == (20, 100)
    assert "siftsmall" in named_datasets() and "synthetic" in named_datasets()
    ds = load_dataset("synthetic", n_learn=300, n_base=500, n_query=7, groundtruth_k=5)
    assert (ds.learn.shape[0], ds.base.shape[0], ds.groundtruth.shape) == (300, 500, (7, 5))


def test_a_dataset_name_that_is_not_shipped_is_named_with_a_suggestion():
    with pytest.raises(InputError, match=r"dataset 'siftsmal': no such config in "
                                         r"conf/dataset \(did you mean 'siftsmall'\?\)"):
        load_dataset("siftsmal")
    with pytest.raises(InputError, match="keys \\['n_query'\\] are taken with a dataset name"):
        load_dataset({"loader": "synthetic_uniform"}, n_query=5)


def test_a_config_that_extends_another_composes_by_name():
    from benchpq.datasets import dataset_config
    cfg = dataset_config("fashion-mnist-10k", n_query=10)
    assert cfg["loader"] == "fashion_mnist" and cfg["folder"] == "fashion-mnist"  # inherited
    assert (cfg["name"], cfg["n_learn"], cfg["n_query"]) == ("fashion-mnist-10k", 10000, 10)
    assert dataset_config("files", base="/data/x.fvecs")["name"] == "x"  # resolvers resolved


def test_a_new_file_format_is_one_registered_reader_and_its_reads_are_recorded(tmp_path):
    """What a module adding a format does: register its reader; read_array dispatches to
    it, and the file enters the dataset's fingerprint without the reader doing anything."""
    from benchpq.datasets import formats
    from benchpq.datasets.reads import tracking_reads

    @formats.register_format(".txt (whitespace-separated rows)",
                             lambda path: path.suffix.lower() == ".txt")
    def read_text(path, key, mmap):
        return np.loadtxt(path, dtype=np.float32, ndmin=2)
    try:
        rows = np.arange(12, dtype=np.float32).reshape(4, 3)
        np.savetxt(tmp_path / "base.txt", rows)
        with tracking_reads() as reads:
            got = read_array(tmp_path / "base.txt")
        np.testing.assert_array_equal(got, rows)
        assert reads == [(tmp_path / "base.txt").resolve()]
        ds = load_dataset({"loader": "files", "name": "txt", "base": str(tmp_path / "base.txt"),
                           "query": str(tmp_path / "base.txt"), "groundtruth_k": 2})
        assert ds.base.shape == (4, 3) and ds.groundtruth.shape == (4, 2)
        with pytest.raises(ValueError, match="already registered"):
            formats.register_format(".txt (whitespace-separated rows)", lambda path: False)(
                read_text)
    finally:
        formats.FORMATS[:] = [f for f in formats.FORMATS if f.read is not read_text]
    with pytest.raises(InputError, match=r"unsupported file type '\.txt'; supported: "
                                         r"\.fvecs \.ivecs \.bvecs, \.npy"):
        read_array(tmp_path / "base.txt")
