"""Every SIMD build of the native core gives the same bits, and the loader builds what it says.

:mod:`simd_kernels` computes every kernel's outputs (PQ training, encoding, ADC and SDC
tables and scans; k-means; OPQ, LOPQ, ITQ; fast-scan; PQk-means and Bk-means; nanopq's
adist) on awkward shapes. It runs in a child process per build: ``scalar`` (the
reference: no intrinsics), ``avx2``, ``avx512`` and ``generic`` (scalar without OpenMP,
the build of a compiler without it), and each build's outputs must equal the scalar
build's bit for bit. A build this CPU cannot run is skipped with the reason in the
summary (e.g. the AVX-512 tests on a CPU without AVX-512).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchpq import native
from benchpq.native import simd
from benchpq.store.provenance import cpu_model

KERNELS = Path(__file__).with_name("simd_kernels.py")
#: build -> (BENCHPQ_SIMD, BENCHPQ_OPENMP)
BUILDS = {"scalar": ("scalar", "auto"), "avx2": ("avx2", "auto"), "avx512": ("avx512", "auto"),
          "generic": ("scalar", "off")}
#: key prefix of each kernel family's outputs in simd_kernels
KERNEL_FAMILIES = ("pq_", "kmeans_", "opq.", "lopq_", "ilopq_", "itq_", "pqfs_", "pqkmeans_",
                   "bkmeans_", "adist_", "rabitq_")


def _unsupported(build: str) -> str | None:
    path = BUILDS[build][0]
    missing = simd.missing_features(path)
    if missing:
        return (f"{build} path not run: this CPU ({cpu_model()}) lacks "
                f"{', '.join(missing)}")
    return None


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict | str]:
    """build -> its kernel outputs (or the reason it cannot run here)."""
    folder = tmp_path_factory.mktemp("simd_paths")
    results: dict[str, dict | str] = {}
    running = {}
    for build, (path, openmp) in BUILDS.items():  # the builds run side by side
        reason = _unsupported(build)
        if reason:
            results[build] = reason
            continue
        env = {**os.environ, simd.ENV: path, native.OPENMP_ENV: openmp}
        running[build] = subprocess.Popen(
            [sys.executable, str(KERNELS), str(folder / f"{build}.npz")], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for build, proc in running.items():
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{build}:\n{out[-3000:]}\n{err[-3000:]}"
        with np.load(folder / f"{build}.npz") as data:
            results[build] = dict(data)
    return results


def _outputs_of(outputs, build: str) -> dict:
    result = outputs[build]
    if isinstance(result, str):
        pytest.skip(result)
    return result


def test_each_build_is_the_one_asked_for(outputs):
    for build, (path, _) in BUILDS.items():
        result = outputs[build]
        if isinstance(result, str):
            continue
        assert int(result["build.level"]) == simd.LEVELS[path], build
        assert bool(result["build.openmp"]) == (build != "generic"), build


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
@pytest.mark.parametrize("build", ["avx2", "avx512", "generic"])
def test_build_gives_the_scalar_bits(outputs, build, family):
    reference, got = _outputs_of(outputs, "scalar"), _outputs_of(outputs, build)
    keys = sorted(k for k in reference if k.startswith(family))
    assert keys and sorted(k for k in got if k.startswith(family)) == keys
    differing = [k for k in keys if reference[k].dtype != got[k].dtype
                 or reference[k].shape != got[k].shape or not np.array_equal(reference[k], got[k])]
    assert not differing, f"{build} differs from scalar in {differing}"


def test_outputs_cover_the_awkward_shapes(outputs):
    keys = _outputs_of(outputs, "scalar")
    for M in (1, 3, 5, 8, 16, 64):
        assert any(k.startswith(f"pq_M{M}_") for k in keys), M
        assert f"adist_M{M}_Ks4096" in keys
    assert keys["pq_M8_Ks4096_d3.codes"].dtype == np.uint16
    assert keys["pq_M8_Ks4096_d3.codes"].max() > 255


# -- choosing a path -------------------------------------------------------------------------

def test_auto_takes_the_widest_path_the_cpu_runs(monkeypatch):
    monkeypatch.setattr(simd, "is_x86", lambda: True)
    monkeypatch.setattr(simd, "cpu_features", lambda: frozenset(simd.FEATURES["avx2"]))
    assert simd.supported() == ["scalar", "avx2"] and simd.resolve("auto") == "avx2"
    monkeypatch.setattr(simd, "cpu_features", lambda: frozenset(simd.FEATURES["avx512"]))
    assert simd.resolve("auto") == "avx512"
    monkeypatch.setattr(simd, "cpu_features", lambda: frozenset({"SSE2", "AVX2"}))  # no FMA
    assert simd.resolve("auto") == "scalar"


def test_a_path_beyond_the_cpu_is_capped_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(simd, "is_x86", lambda: True)
    monkeypatch.setattr(simd, "cpu_features", lambda: frozenset(simd.FEATURES["avx2"]))
    with caplog.at_level(logging.WARNING, logger="benchpq"):
        assert simd.resolve("avx512") == "avx2"
    assert "BENCHPQ_SIMD=avx512" in caplog.text and "AVX512F" in caplog.text
    assert "using avx2 instead" in caplog.text and "AVX2," not in caplog.text
    monkeypatch.setenv(simd.ENV, "AVX2")
    assert simd.resolve() == "avx2"


def test_off_x86_every_request_builds_the_portable_path(monkeypatch, caplog):
    monkeypatch.setattr(simd, "is_x86", lambda: False)
    assert simd.supported() == ["scalar"] and simd.resolve("auto") == "scalar"
    with caplog.at_level(logging.WARNING, logger="benchpq"):
        assert simd.resolve("avx2") == "scalar"
    assert "x86-64" in caplog.text
    assert simd.compiler_flags("scalar") == ()


def test_an_unknown_path_is_refused():
    with pytest.raises(simd.SimdError, match=r"BENCHPQ_SIMD='sse9' is not a SIMD path: "
                                             r"expected one of auto, scalar, avx2, avx512"):
        simd.resolve("sse9")


def test_flags_are_fixed_and_name_no_native_target(monkeypatch):
    for path in simd.PATHS:
        monkeypatch.setenv(simd.ENV, path)
        if simd.missing_features(path):
            continue
        flags = native.build_flags()
        assert "-march=native" not in flags and "-ffp-contract=off" in flags
        assert set(simd.compiler_flags(path)) <= set(flags)
    monkeypatch.setenv(simd.ENV, "native")
    assert "-march=native" in native.build_flags()
    assert "-ffp-contract=off" not in native.build_flags()


def test_every_path_and_openmp_setting_is_its_own_library(monkeypatch):
    keys = set()
    for path in ("scalar", "avx2", "native"):
        for openmp in ("auto", "off"):
            monkeypatch.setenv(simd.ENV, path)
            monkeypatch.setenv(native.OPENMP_ENV, openmp)
            keys.add(native.build_key())
    assert len(keys) == 6


def test_a_compiler_without_openmp_builds_single_threaded(tiny_native_src, tmp_path, caplog):
    """A compiler that refuses -fopenmp (Apple's clang) gets a build without it and one
    warning, not a failure."""
    wrapper = tmp_path / "no-openmp-cxx.sh"
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && '
                       '{ echo "clang: error: unsupported option \'-fopenmp\'" >&2; exit 1; }; '
                       'done\nexec c++ "$@"\n')
    wrapper.chmod(0o755)
    src = tiny_native_src
    (src / "tiny.cpp").write_text(
        (src / "tiny.cpp").read_text().replace("#include <omp.h>",
                                               "#ifdef _OPENMP\n#include <omp.h>\n#else\n"
                                               "inline int omp_get_max_threads() { return 1; }\n"
                                               "#endif"))
    env = {"CXX": str(wrapper)}
    with pytest.MonkeyPatch.context() as mp, caplog.at_level(logging.WARNING, logger="benchpq"):
        for name, value in env.items():
            mp.setenv(name, value)
        native._has_openmp.cache_clear()
        library = native.build(src, tmp_path / "cache")
        assert native.OPENMP_FLAG not in native.build_flags()
        native.build(src, tmp_path / "cache")
    native._has_openmp.cache_clear()
    assert library.is_file()
    assert "-fopenmp" not in (library.parent / "build.txt").read_text().splitlines()[0]
    warnings = [r for r in caplog.records if "has no OpenMP" in r.getMessage()]
    assert len(warnings) == 1 and "single-threaded" in warnings[0].getMessage()


# -- records ---------------------------------------------------------------------------------

def test_records_name_their_path_and_cpu_and_paths_are_separate_runs(tmp_path):
    """A run on the scalar path and the same run on the default path: two run ids, two
    model-cache entries, each record naming its path, its CPU and the build it loaded."""
    from benchpq.sweep import runner

    from compose import compose_config
    common = ["algorithm=pq", "algorithm.M=4", "algorithm.Ks=16", "algorithm.iter=3",
              "dataset=synthetic", "++dataset.n_learn=2000", "++dataset.n_base=2000",
              "++dataset.n_query=10", "experiment=none", f"results_dir={tmp_path / 'results'}",
              f"cache_dir={tmp_path / 'cache'}"]
    (scalar,) = runner.execute(compose_config([*common, "simd=scalar"]))
    (default,) = runner.execute(compose_config(common))
    assert scalar["status"] == default["status"] == "ok", (scalar["message"], default["message"])
    assert scalar["simd"] == "scalar" and default["simd"] == simd.best()
    for record in (scalar, default):
        assert record["provenance"]["cpu_model"] == cpu_model()
        assert record["provenance"]["native"]["simd"] == record["simd"]
        assert "-march=native" not in record["provenance"]["native"]["flags"]
    (faiss,) = runner.execute(compose_config(["algorithm=faiss_pq", "algorithm.M=4", *common[4:],
                                              "simd=scalar"]))
    assert faiss["status"] == "ok" and faiss["provenance"]["native"]["simd"] == "scalar"
    assert faiss["provenance"]["native"]["loaded"] is False
    assert scalar["provenance"]["native"]["loaded"] is True
    if default["simd"] != "scalar":
        assert scalar["run_id"] != default["run_id"]
        assert scalar["model_key"] != default["model_key"]
        # the portable paths agree: same codes, same search results
        for metric in ("recall@1", "recall@10", "mse"):
            assert scalar["metrics"][metric] == default["metrics"][metric], metric


def test_an_unknown_simd_option_is_refused_before_the_run(tmp_path):
    from benchpq.checks import InputError
    from benchpq.sweep import runner

    from compose import compose_config
    config = compose_config(["algorithm=pq", "dataset=synthetic", "experiment=none",
                             f"results_dir={tmp_path}", "simd=sse9"])
    with pytest.raises(InputError, match="is not a SIMD path"):
        runner.execute(config)
