"""Shared fixtures: where the real test data lives, and no network in tests.

``data_dir`` is ``$BENCHPQ_DATA`` or ``<repo>/../shared/data``. The per-dataset
fixtures skip a test when that dataset's folder is absent, and the summary
line counts those skips (they hold the checks against independent references:
faiss, nanopq, the pqkmeans library, the LOPQ reference's thresholds). With
``BENCHPQ_REQUIRE_DATA=1`` (set by ``.ci/run``) a missing dataset fails the
test instead, naming the missing folder, so CI cannot pass without its data.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# OpenMP threads that wait for work sleep instead of spinning (set before faiss or our
# core starts its thread pool; children of the tests inherit it). Spinning waits pay off
# only on an otherwise idle machine: beside other processes, faiss's OPQ training ran
# about 3x slower with spinning than without.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
REQUIRE_DATA_VARIABLE = "BENCHPQ_REQUIRE_DATA"
MISSING_DATA = "missing data set"  # the skip reason starts with this


def data_required() -> bool:
    """True when BENCHPQ_REQUIRE_DATA is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get(REQUIRE_DATA_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session", autouse=True)
def _offline():
    """Tests never reach the network: BENCHPQ_OFFLINE=1 unless set otherwise."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCHPQ_OFFLINE", os.environ.get("BENCHPQ_OFFLINE", "1"))
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def _one_native_build():
    """Every test, and every run a test starts with a cache folder of its own, loads one
    compiled core (BENCHPQ_NATIVE_CACHE) instead of compiling it again per folder."""
    from benchpq import native
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCHPQ_NATIVE_CACHE", str(native.cache_dir()))
    yield
    mp.undo()


@pytest.fixture()
def tiny_native_src(tmp_path) -> Path:
    """A two-file C++ source folder in the native layer's shape (namespace ``benchpq``,
    an OpenMP loop): what the loader's build, cache and load paths need, compiled in a
    second where the real sources take half a minute."""
    src = tmp_path / "tiny_cpp"
    src.mkdir()
    (src / "tiny.h").write_text("#pragma once\n#include <cstdint>\n"
                                "namespace benchpq {\nint64_t tiny_sum(int64_t n);\n"
                                "int get_num_threads();\n}\n")
    (src / "tiny.cpp").write_text(
        '#include "tiny.h"\n#include <omp.h>\nnamespace benchpq {\n'
        "int64_t tiny_sum(int64_t n) {\n  int64_t s = 0;\n"
        "#pragma omp parallel for reduction(+ : s)\n"
        "  for (int64_t i = 0; i < n; ++i) s += i;\n  return s;\n}\n"
        "int get_num_threads() { return omp_get_max_threads(); }\n}\n")
    return src


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only folder with the real datasets."""
    return Path(os.environ.get("BENCHPQ_DATA", REPO.parent / "shared" / "data"))


def require_dataset(data_dir: Path, folder: str) -> Path:
    """``data_dir / folder``; when absent, skip the test (fail it under BENCHPQ_REQUIRE_DATA=1)."""
    path = Path(data_dir) / folder
    if not path.is_dir():
        message = f"{MISSING_DATA} {folder!r}: {path} is absent"
        if data_required():
            pytest.fail(f"{message} and {REQUIRE_DATA_VARIABLE}=1 requires it "
                        f"(set BENCHPQ_DATA to the folder holding {folder}/)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def siftsmall_dir(data_dir) -> Path:
    """texmex siftsmall: siftsmall_{base,query}.fvecs, siftsmall_groundtruth.ivecs."""
    return require_dataset(data_dir, "siftsmall")


@pytest.fixture(scope="session")
def siftsmall(siftsmall_dir):
    """siftsmall (base (10000, 128), queries (100, 128), ground truth (100, 100)), read
    once per session as C-contiguous arrays (float32 vectors, int32 ids)."""
    import numpy as np

    from benchpq.datasets.vecs import read_vecs

    def read(name):
        return np.ascontiguousarray(read_vecs(siftsmall_dir / f"siftsmall_{name}"))
    return read("base.fvecs"), read("query.fvecs"), read("groundtruth.ivecs")


@pytest.fixture(scope="session")
def fashion_mnist_dir(data_dir) -> Path:
    """Fashion-MNIST IDX .gz files and derived/ ground truth."""
    return require_dataset(data_dir, "fashion-mnist")


@pytest.fixture(scope="session")
def oxford5k_dir(data_dir) -> Path:
    """LOPQ's oxford_features.fvecs (5063 x 128)."""
    return require_dataset(data_dir, "oxford5k-lopq")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def simd_path_not_run() -> str | None:
    """Why the SIMD path BENCHPQ_SIMD names cannot run on this CPU (None: it can)."""
    from benchpq.native import simd
    from benchpq.store.provenance import cpu_model
    requested = simd.requested()
    missing = simd.missing_features(requested) if requested in simd.PATHS else []
    if not missing:
        return None
    return (f"{simd.ENV}={requested}: this CPU ({cpu_model()}) lacks {', '.join(missing)}, "
            f"so the {requested} path's native-kernel tests did not run")


def pytest_collection_modifyitems(config, items):
    """Native-kernel tests asked to run on a SIMD path this CPU lacks are skipped, saying
    so, instead of running on a narrower path under the wider one's name."""
    reason = simd_path_not_run()
    if reason:
        for item in items:
            if "native_kernels" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    """Name the native build the tests ran on; say how many tests (reference checks) were
    skipped for missing data, and which data."""
    from benchpq import native
    from benchpq.native import simd
    if native.loaded():
        info = native.build_info()
        terminalreporter.write_line(
            f"native core: {info['simd']} path, OpenMP {'on' if info['openmp'] else 'off'}, "
            f"{info['compiler_version']}, CPU {info['cpu_model']} (this CPU runs: "
            f"{', '.join(simd.supported())})")
    if simd_path_not_run():
        terminalreporter.write_line(simd_path_not_run(), yellow=True)
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if MISSING_DATA in _skip_reason(r)]
    if not skipped:
        return
    folders = sorted({_skip_reason(r).split("'")[1] for r in skipped if "'" in _skip_reason(r)})
    terminalreporter.write_line(
        f"{len(skipped)} reference checks skipped for missing data ({', '.join(folders)}); "
        f"set BENCHPQ_DATA, or {REQUIRE_DATA_VARIABLE}=1 to make them fail", yellow=True)


@pytest.fixture()
def test_plugins(monkeypatch):
    """The test plugins (tests/plugins) importable here and in the runs' child processes."""
    import sys

    from compose import TEST_PLUGINS
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TEST_PLUGINS), os.environ.get("PYTHONPATH")])))
    sys.path.insert(0, str(TEST_PLUGINS))
    yield TEST_PLUGINS
    sys.path.remove(str(TEST_PLUGINS))
