"""What benchpq reads back from its caches is what it wrote: each probe of a forged, corrupted,
swapped or stale entry, and of a cache folder other users could write into.

Each test is written to fail on the cache that trusted its files: model pickles, a
library checksum kept beside the library, headers included unchecked, ground truth
checked on shape or on five queries, file digests keyed by size and mtime.
"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_search_grid import config_for, counting, fits

from benchpq import native
from benchpq.checks import InputError
from benchpq.datasets import ground_truth, load_dataset
from benchpq.datasets import groundtruth as gtmod
from benchpq.datasets.fingerprint import file_digest
from benchpq.datasets.hdf5 import read_ann_hdf5, write_ann_hdf5
from benchpq.store import model_state, sealing
from benchpq.store.model_cache import ARRAYS_FILE, STATE_FILE, ModelCache
from benchpq.sweep import runner


@pytest.fixture(autouse=True)
def _plugins_on_path(test_plugins, monkeypatch):
    monkeypatch.delenv(sealing.SHARED_ENV, raising=False)


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    """A signing key of this test's own, so that no other test's entries are involved."""
    path = tmp_path / "keys" / "cache.key"
    monkeypatch.setenv(sealing.KEY_ENV, str(path))
    return path


def _entry(tmp_path) -> Path:
    (entry,) = [p for p in (tmp_path / "cache" / "models").iterdir()
                if p.is_dir() and not p.name.startswith(".")]
    return entry


def _first_and_rerun(tmp_path, tamper):
    """A counting build stored, ``tamper(entry)``, then a rerun that may load it."""
    config = config_for(tmp_path, counting(tmp_path))
    (first,) = runner.execute(config)
    tamper(_entry(tmp_path))
    (again,) = runner.execute({**config, "task": {**config["task"], "k": 20, "recall_at": [1, 10]}})
    return first, again


# -- trained models ------------------------------------------------------------------------

def test_a_forged_pickle_in_a_model_entry_never_runs(tmp_path, own_key):
    marker = tmp_path / "the-payload-ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    forged = pickle.dumps(Payload())

    def forge(entry):
        for name in (ARRAYS_FILE, STATE_FILE, "model.pkl"):
            (entry / name).write_bytes(forged)
    first, again = _first_and_rerun(tmp_path, forge)
    assert not marker.exists()
    assert again["status"] == "ok" and not again["build_cached"] and fits(tmp_path) == 2
    assert "since it was sealed" in Path(again["log"]).read_text()


def test_a_state_naming_a_function_is_refused_without_calling_it(tmp_path):
    from counting_plugins import Counting
    marker = tmp_path / "called"
    tree = {"format": model_state.FORMAT, "class": "counting_plugins:Counting",
            "state": {"object": "posix:system", "state": {"dict": {}}}}
    with pytest.raises(model_state.BadState, match="posix:system, which is not a storable"):
        model_state.from_storage(tree, {}, Counting)
    tree["state"] = {"dict": {"x": {"object": "os:system", "state": {"dict": {}}}}}
    with pytest.raises(model_state.BadState, match="os:system"):
        model_state.from_storage(tree, {}, Counting)
    assert not marker.exists()


def test_an_xor_corrupted_model_is_rebuilt_not_searched(tmp_path, own_key):
    def corrupt(entry):
        data = bytearray((entry / ARRAYS_FILE).read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 4096):
            data[i] ^= 0x5A
        (entry / ARRAYS_FILE).write_bytes(bytes(data))  # same size, other content
    first, again = _first_and_rerun(tmp_path, corrupt)
    assert again["status"] == "ok" and not again["build_cached"] and fits(tmp_path) == 2
    assert again["metrics"]["recall@1"] == first["metrics"]["recall@1"]
    assert "arrays.npys changed since it was sealed" in Path(again["log"]).read_text()


def test_build_metrics_cannot_be_edited(tmp_path, own_key):
    def edit(entry):
        stored = json.loads((entry / STATE_FILE).read_text())
        stored["build"] = {k: (0.0 if isinstance(v, float) else v)
                           for k, v in stored["build"].items()}
        (entry / STATE_FILE).write_text(json.dumps(stored))
    _, again = _first_and_rerun(tmp_path, edit)
    assert not again["build_cached"] and fits(tmp_path) == 2


def test_an_entry_sealed_with_another_key_is_rebuilt(tmp_path, own_key, monkeypatch):
    config = config_for(tmp_path, counting(tmp_path))
    runner.execute(config)
    monkeypatch.setenv(sealing.KEY_ENV, str(tmp_path / "other" / "cache.key"))
    (again,) = runner.execute({**config, "task": {**config["task"], "k": 20, "recall_at": [1, 10]}})
    assert not again["build_cached"] and fits(tmp_path) == 2
    assert "not made with your signing key" in Path(again["log"]).read_text()


def test_a_cache_folder_others_can_write_is_refused_unless_shared(tmp_path, own_key,
                                                                   monkeypatch):
    cache = ModelCache(tmp_path / "cache" / "models")
    cache.root.mkdir(parents=True)
    os.chmod(cache.root, 0o777)
    with pytest.raises(sealing.UntrustedCacheError,
                       match=r"has mode 777 \(writable by other users\).*BENCHPQ_SHARED_CACHE=1"):
        cache.store("k" * 24, object(), {})
    config = config_for(tmp_path, counting(tmp_path))
    (record,) = runner.execute(config)
    assert record["status"] == "error" and "writable by other users" in record["message"]
    monkeypatch.setenv(sealing.SHARED_ENV, "1")
    (record,) = runner.execute({**config, "force": True})
    assert record["status"] == "ok"


def test_a_signing_key_others_can_read_is_refused(own_key):
    sealing.signing_key()
    assert own_key.stat().st_mode & 0o777 == 0o600
    os.chmod(own_key, 0o644)
    with pytest.raises(sealing.UntrustedCacheError, match="mode 644 lets other users read"):
        sealing.signing_key()
    os.chmod(own_key, 0o600)
    own_key.write_text("short\n")
    with pytest.raises(sealing.UntrustedCacheError, match="expected 64 hex digits"):
        sealing.signing_key()


def test_a_plugin_that_cannot_be_stored_is_not_cached(tmp_path, own_key, caplog):
    class Handle:  # a class from outside benchpq and the plugins: not storable
        pass
    from counting_plugins import Counting
    plugin = Counting(log=str(tmp_path / "log"))
    plugin.name = "test_counting"
    plugin.handle = Handle()
    cache = ModelCache(tmp_path / "models")
    with caplog.at_level("INFO", logger="benchpq"):
        assert cache.store("a" * 24, plugin, {}) is False
    assert "is not a storable class" in caplog.text
    assert [p for p in cache.root.iterdir()] == []  # no temporary folder left


# -- the native library and its headers ----------------------------------------------------

def _load_in_subprocess(cache: Path, src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from benchpq import native; "
                           "print('loaded', native.load().tiny_sum(10))"], capture_output=True,
                          text=True, timeout=900,
                          env=dict(os.environ, BENCHPQ_NATIVE_CACHE=str(cache),
                                   BENCHPQ_NATIVE_SRC=str(src)))


def test_a_swapped_library_with_a_recomputed_checksum_is_rebuilt(tmp_path, tiny_native_src,
                                                                  own_key):
    library = native.build(tiny_native_src, tmp_path / "native")
    other_src = tmp_path / "other_cpp"
    other_src.mkdir()
    for f in tiny_native_src.iterdir():
        (other_src / f.name).write_text(f.read_text().replace("s += i", "s += 2 * i"))
    other = native.build(other_src, tmp_path / "other-native")
    library.write_bytes(other.read_bytes())  # a working library, not the one that was built
    import hashlib
    (library.parent / "libbenchpq.so.sha256").write_text(
        hashlib.sha256(library.read_bytes()).hexdigest())  # the old, forgeable checksum
    assert not native._intact(library.parent, tiny_native_src)
    done = _load_in_subprocess(tmp_path / "native", tiny_native_src)
    assert done.returncode == 0 and "loaded 45" in done.stdout, done.stderr[-2000:]
    assert "libbenchpq.so changed since it was sealed" in done.stderr


def test_an_edited_cached_header_is_never_included(tmp_path, tiny_native_src, own_key):
    library = native.build(tiny_native_src, tmp_path / "native")
    marker = tmp_path / "the-header-ran"
    header = library.parent / "include" / "tiny.h"
    header.write_text(header.read_text() + "\n#include <cstdlib>\nnamespace { int evil = "
                      f'std::system("touch {marker}"); }}\n')
    done = _load_in_subprocess(tmp_path / "native", tiny_native_src)
    assert done.returncode == 0 and "loaded 45" in done.stdout, done.stderr[-2000:]
    assert "include/tiny.h changed" in done.stderr and "since it was sealed" in done.stderr
    assert not marker.exists()


def test_an_added_header_is_not_included(tmp_path, tiny_native_src, own_key):
    library = native.build(tiny_native_src, tmp_path / "native")
    (library.parent / "include" / "zz_extra.h").write_text("#error never included\n")
    assert native._intact(library.parent, tiny_native_src)
    assert [p.name for p in native._public_headers(library)] == ["tiny.h"]


# -- ground truth --------------------------------------------------------------------------

@pytest.fixture
def points():
    rng = np.random.default_rng(11)
    base = rng.normal(size=(3000, 16)).astype(np.float32)
    return base, rng.normal(size=(60, 16)).astype(np.float32)


def _recompute_counter(monkeypatch):
    calls = []
    real = gtmod._compute
    monkeypatch.setattr(gtmod, "_compute", lambda *a: calls.append(1) or real(*a))
    return calls


def test_a_rolled_ground_truth_cache_is_recomputed(tmp_path, own_key, points, monkeypatch):
    base, query = points
    ids, _ = ground_truth(base, query, k=10, cache_dir=tmp_path)
    (path,) = (tmp_path / "groundtruth").glob("*.npz")
    with np.load(path) as f:
        rolled, dist = np.roll(f["ids"], 1, axis=0), f["dist"]
    np.savez(path, ids=rolled, dist=dist)  # the same shape: the old check passed it
    calls = _recompute_counter(monkeypatch)
    again, _ = ground_truth(base, query, k=10, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, ids)
    assert calls == [1]
    # rolled and sealed again (as a stale entry of one's own would be): the brute-force
    # check on a sample refuses it all the same
    np.savez(path, ids=rolled, dist=dist)
    sealing.seal(path)
    again, _ = ground_truth(base, query, k=10, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, ids)
    assert calls == [1, 1]


def test_refresh_recomputes_cached_ground_truth(tmp_path, own_key, points, monkeypatch):
    base, query = points
    ground_truth(base, query, k=10, cache_dir=tmp_path)
    calls = _recompute_counter(monkeypatch)
    ground_truth(base, query, k=10, cache_dir=tmp_path)
    assert calls == []
    ground_truth(base, query, k=10, cache_dir=tmp_path, refresh=True)
    assert calls == [1]


def test_force_recomputes_cached_ground_truth_in_a_run(tmp_path, own_key):
    config = config_for(tmp_path, counting(tmp_path))
    runner.execute(config)
    (path,) = (tmp_path / "cache" / "groundtruth").glob("*.npz")
    made = path.stat().st_ino
    runner.execute({**config, "task": {**config["task"], "k": 20, "recall_at": [1, 10]}})
    assert path.stat().st_ino == made  # reused
    runner.execute({**config, "task": {**config["task"], "k": 20, "recall_at": [1, 10]},
                    "force": True})
    assert path.stat().st_ino != made  # written again


def _shipped(base, query, k=100):
    d = ((query[:, None].astype(np.float64) - base[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k], np.sort(d, axis=1)[:, :k]


def test_shipped_ground_truth_with_two_rows_swapped_is_refused(points):
    base, query = points
    truth, _ = _shipped(base, query)
    gtmod.check_groundtruth(base, query, truth)
    swapped = truth.copy()
    swapped[[1, 2]] = swapped[[2, 1]]
    with pytest.raises(InputError, match="query 1 "):
        gtmod.check_groundtruth(base, query, swapped, what="shipped")


def test_shipped_ground_truth_with_far_columns_is_refused(points):
    base, query = points
    truth, _ = _shipped(base, query)
    far = truth.copy()
    # columns 1..99 replaced by far ids, sorted by distance: rows stay sorted, the first
    # neighbour stays right (all the old check looked at)
    far_ids, _ = _shipped(base, query, k=base.shape[0])
    far[:, 1:] = far_ids[:, -99:]
    with pytest.raises(InputError, match=r"lists at rank 1 a neighbour at squared distance"):
        gtmod.check_groundtruth(base, query, far, what="shipped")


def test_a_large_query_set_checks_at_least_fifty_queries_whole():
    assert gtmod.check_queries(10_000, 1_000_000, 128) == 78
    assert gtmod.check_queries(10_000, 100_000_000, 96) == 50
    assert gtmod.check_queries(100, 10_000, 128) == 100
    assert gtmod.check_queries(30, 10 ** 9, 128) == 30


def test_shipped_ground_truth_is_checked_when_a_dataset_loads(tmp_path, points):
    from benchpq.datasets import write_vecs
    base, query = points
    truth, _ = _shipped(base, query)
    truth[[1, 2]] = truth[[2, 1]]
    for name, data in (("base.fvecs", base), ("query.fvecs", query),
                       ("gt.ivecs", truth.astype(np.int32))):
        write_vecs(tmp_path / name, data)
    cfg = {"loader": "files", "name": "mine", "base": str(tmp_path / "base.fvecs"),
           "query": str(tmp_path / "query.fvecs"), "groundtruth": str(tmp_path / "gt.ivecs")}
    with pytest.raises(InputError, match="dataset 'mine': shipped ground truth: query 1 "):
        load_dataset(cfg, cache_dir=tmp_path / "cache")


# -- data identity, generated data, HDF5 ---------------------------------------------------

def test_a_rewrite_in_place_with_its_mtime_set_back_changes_the_digest(tmp_path, own_key):
    path = tmp_path / "base.bin"
    path.write_bytes(b"a" * 4096)
    st = path.stat()
    before = file_digest(path, tmp_path / "cache")
    with open(path, "r+b") as f:  # same size, same inode
        f.seek(100)
        f.write(b"b")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    assert file_digest(path, tmp_path / "cache") != before


def test_a_forged_digest_cache_entry_is_not_believed(tmp_path, own_key):
    path = tmp_path / "base.bin"
    path.write_bytes(b"a" * 4096)
    before = file_digest(path, tmp_path / "cache")
    path.write_bytes(b"c" * 4096)
    (entry,) = (tmp_path / "cache" / "fingerprints").glob("*.json")
    stamp = json.loads(entry.read_text())
    st = path.stat()
    stamp.update(inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns,
                 ctime_ns=st.st_ctime_ns)
    entry.write_text(json.dumps(stamp))  # claims the old digest for the new file
    assert file_digest(path, tmp_path / "cache") != before


def test_tampered_generated_data_is_generated_again(tmp_path, own_key):
    cfg = {"loader": "synthetic_uniform", "n_learn": 300, "n_base": 400, "n_query": 5,
           "dim": 8, "cache_min_rows": 1, "groundtruth_k": None}
    first = np.array(load_dataset(cfg, cache_dir=tmp_path).base)
    (path,) = (tmp_path / "synthetic").rglob("base-*.npy")
    data = np.load(path)
    data[3] = 0
    np.save(path, data)
    again = load_dataset(cfg, cache_dir=tmp_path).base
    np.testing.assert_array_equal(again, first)


def test_an_hdf5_file_without_a_distance_is_named_in_a_warning(tmp_path, caplog):
    import h5py
    path = write_ann_hdf5(tmp_path / "x.hdf5", np.zeros((4, 2)), np.zeros((1, 2)))
    with h5py.File(path, "a") as f:
        del f.attrs["distance"]
    with caplog.at_level("WARNING"):
        assert read_ann_hdf5(path)["distance"] == "euclidean"
    assert f"{path} has no 'distance' attribute: taking it as Euclidean" in caplog.text


def test_a_folder_writable_by_the_users_private_group_is_accepted(tmp_path):
    """umask 002 (user private groups) makes folders group-writable: that group is the
    user alone; any other group is refused."""
    import grp
    import pwd
    folder = tmp_path / "cache"
    folder.mkdir()
    os.chmod(folder, 0o775)
    user = pwd.getpwuid(os.geteuid())
    os.chown(folder, -1, user.pw_gid)
    if grp.getgrgid(user.pw_gid).gr_name != user.pw_name:
        pytest.skip(f"{user.pw_name}'s primary group is not a private group")
    sealing.check_folder(folder)
    other = next(g.gr_gid for g in grp.getgrall() if g.gr_gid != user.pw_gid)
    try:
        os.chown(folder, -1, other)
    except PermissionError:
        pytest.skip("cannot give the folder to another group here")
    with pytest.raises(sealing.UntrustedCacheError, match="writable by other users"):
        sealing.check_folder(folder)
