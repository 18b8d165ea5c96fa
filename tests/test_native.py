"""The native loader: build cache keyed by sources/flags/compiler, errors, cppyy calls."""
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from benchpq import native

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def src(tmp_path):
    """A private copy of cpp/ to edit."""
    copy = tmp_path / "cpp"
    shutil.copytree(native.SOURCE_DIR, copy)
    return copy


def test_key_changes_with_sources_headers_flags_and_compiler(src, monkeypatch):
    key = native.build_key(src)
    assert native.build_key(src) == key
    header = src / "pq.h"
    header.write_text(header.read_text() + "\n// comment\n")
    assert native.build_key(src) != key
    key2 = native.build_key(src)
    monkeypatch.setattr(native, "FLAGS", native.FLAGS + ("-DEXTRA",))
    assert native.build_key(src) != key2
    monkeypatch.setattr(native, "FLAGS", native.FLAGS[:-1])
    monkeypatch.setenv("CXX", "g++")
    assert native.build_key(src) != key2  # the compiler command is part of the key


def test_cache_rebuilds_after_a_source_change(tiny_native_src, tmp_path):
    src, cache = tiny_native_src, tmp_path / "cache"
    first = native.build(src, cache)
    assert first.is_file() and first.name == "libbenchpq.so"
    include = first.parent / "include"  # every header, the sub-folders kept (internal/)
    assert sorted(p.relative_to(include) for p in include.rglob("*.h")) == \
        sorted(p.relative_to(src) for p in src.rglob("*.h"))
    mtime = first.stat().st_mtime_ns
    assert native.build(src, cache) == first and first.stat().st_mtime_ns == mtime  # cached
    source = src / "tiny.cpp"
    source.write_text("// a changed comment\n" + source.read_text())
    second = native.build(src, cache)
    assert second.parent != first.parent and second.is_file() and first.is_file()
    command = (second.parent / "build.txt").read_text()
    assert " ".join(native.build_flags()) in command and "-march=native" not in command


def test_compile_error_reports_command_and_compiler_output(tiny_native_src, tmp_path):
    src = tiny_native_src
    (src / "broken.cpp").write_text("int broken( { return 0; }\n")
    with pytest.raises(native.NativeBuildError) as info:
        native.build(src, tmp_path / "cache")
    message = str(info.value)
    assert "broken.cpp" in message and "error" in message  # the compiler's stderr
    assert "$ " in message and "-fopenmp" in message  # the command
    assert not list((tmp_path / "cache").glob("*/libbenchpq.so"))


def test_missing_compiler_is_a_build_error(src, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    with pytest.raises(native.NativeBuildError, match="cannot be run"):
        native.build(src, tmp_path / "cache")


def test_concurrent_builds_compile_once(tiny_native_src, tmp_path):
    src = tiny_native_src
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "cxx.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec c++ "$@"\n')
    wrapper.chmod(0o755)
    code = ("import sys; from benchpq import native; "
            "print(native.build(sys.argv[1], sys.argv[2]))")
    env = {**os.environ, "CXX": str(wrapper), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(src), str(tmp_path / "cache")],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    paths = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1 and Path(paths.pop()).is_file()
    # compilations, not the preprocessor runs that look for OpenMP (-E)
    compiles = [line for line in log.read_text().splitlines()
                if " -o " in f" {line} " and " -E " not in f" {line} "]
    assert len(compiles) == 1


def test_cached_load_does_not_rebuild():
    """A second process loads the cached library: no compilation (the library file is not
    rewritten), and well within a compile's time even on a loaded machine (a compile takes
    ~20 s unloaded; the load ~1 s)."""
    library = native.build()  # make sure the cache holds this checkout's build
    before = library.stat()
    code = textwrap.dedent("""
        import time
        t = time.perf_counter()
        from benchpq import native
        ns = native.load()
        assert ns.get_num_threads() >= 1
        print(time.perf_counter() - t)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stderr
    after = library.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert float(done.stdout) < 10.0


def test_array_arg_checks_dtype_shape_layout_and_never_copies():
    a = np.zeros((4, 3), np.float32)
    assert native.array_arg(a, np.float32, (4, None)) is a
    with pytest.raises(native.NativeArgumentError, match="expected dtype float32, got float64"):
        native.array_arg(a.astype(np.float64), np.float32, (4, 3))
    with pytest.raises(native.NativeArgumentError, match=r"expected shape \(4, 2\)"):
        native.array_arg(a, np.float32, (4, 2))
    with pytest.raises(native.NativeArgumentError, match="not C-contiguous"):
        native.array_arg(np.asfortranarray(a), np.float32, (4, 3))
    a.flags.writeable = False
    with pytest.raises(native.NativeArgumentError, match="read-only"):
        native.array_arg(a, np.float32, (4, 3), writeable=True)
    with pytest.raises(native.NativeArgumentError, match="numpy array"):
        native.array_arg([[1.0]], np.float32, (1, 1))


def test_cpp_writes_into_numpy_buffers_in_place():
    ns = native.load()
    centroids = np.array([[0, 0], [10, 10]], np.float32)
    x = np.array([[1, 1], [9, 8], [-1, 0]], np.float32)
    labels = np.full(3, -7, np.int64)
    distances = np.zeros(3, np.float32)
    ns.kmeans_assign(x, 3, 2, centroids, 2, labels, distances)
    assert labels.tolist() == [0, 1, 0]
    np.testing.assert_allclose(distances, [2, 5, 1])
    # inputs are not copied either: passing 512 MiB for one row to read allocates nothing
    big = np.zeros((1 << 26, 2), np.float32)
    tracemalloc.start()
    try:
        ns.kmeans_assign(big, 1, 2, centroids, 2, labels, distances)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and labels[0] == 0


def test_threads_setting_and_gil_released_in_long_calls():
    import benchpq.algorithms.own.pq  # noqa: F401  its load hook releases the GIL in train()
    ns = native.load()
    before = ns.get_num_threads()
    native.set_num_threads(1)
    assert ns.get_num_threads() == 1
    native.set_num_threads(before)
    assert ns.ProductQuantizer.train.__release_gil__
    x = np.random.default_rng(0).random((60000, 64), dtype=np.float32)
    objective = np.zeros((4, 30))
    pq = ns.ProductQuantizer(64, 4, 256)
    worker = threading.Thread(target=pq.train, args=(x, len(x), 30, 1, 0, 0, objective))
    # With the GIL held for the whole call this loop would wait for the call to end: at most
    # one or two turns while the worker lives. Released, it turns every few milliseconds
    # (the call lasts a second or more; a loaded machine slows both alike).
    turns = 0
    worker.start()
    while worker.is_alive():
        time.sleep(0.005)
        turns += 1
    worker.join()
    assert objective[0, 0] > 0
    assert turns >= 10, "Python was blocked during the C++ call"
