"""The process one run executes in: ``python -m benchpq.sweep.child JOB.json RESULT.json``.

``JOB.json`` holds ``{"config": resolved config, "settings": [search settings]}``.
The child loads the dataset, builds the plugin (or loads its trained model from
the cache, :mod:`benchpq.store.model_cache`), runs the task at every setting and
writes a result JSON: ``{"status": "ok", "build": ..., "build_cached": ...,
"model_key": ..., "points": [...]}`` or ``{"status": "error", "message": ...}``.
A crash (segfault, abort) or a kill leaves no result file; the runner records
that from the exit status. Thread variables are set by the runner before this
process starts, so OpenMP and BLAS pick them up when they load.
"""
from __future__ import annotations

import json
import os
import sys
import traceback


def run(config: dict, settings: list[dict] | None = None) -> dict:
    from .. import registry
    from ..datasets import load_dataset
    from ..measure.tasks import run_task
    from ..measure.threads import apply_in_process
    from ..native import simd

    threads = int(config.get("threads", 1))
    if config.get("simd"):  # before anything loads the native core
        os.environ[simd.ENV] = str(config["simd"])
    if config.get("cache_dir"):
        os.environ["BENCHPQ_CACHE"] = str(config["cache_dir"])
    registry.import_plugins(config.get("plugins"))  # a dataset loader may be a plugin
    dataset = dict(config["dataset"])
    if config["task"].get("name") != "search":
        dataset["groundtruth_k"] = None  # only the search task uses neighbours
    ds = load_dataset(dataset, data_dir=config.get("data_dir"), cache_dir=config.get("cache_dir"),
                      refresh=bool(config.get("force", False)))
    ds.validate()
    plugin = registry.create(config["algorithm"])
    _seed(plugin, config)
    apply_in_process(threads)
    store = _model_store(config, ds, plugin)
    result = run_task(plugin, ds, config["task"], threads, settings, store)
    result["model_key"] = store.key if store is not None else None
    result["metric"] = ds.metric  # the dataset's, which its files may set
    from .code_stamp import code_version
    result["code_stamp"] = code_version(type(plugin))
    return result


def _model_store(config: dict, ds, plugin):
    """The trained-model cache entry of this run's build, or None when caching is off."""
    from ..datasets import resolve_cache_dir
    from ..datasets.fingerprint import array_fingerprint
    from ..measure.tasks import BuildStore
    from ..store.model_cache import ModelCache, build_key
    from .code_stamp import code_version
    if config["task"].get("name") != "search" or not config.get("cache_models", True):
        return None
    fingerprint = array_fingerprint(ds.learn, ds.base)  # what the build reads
    key = build_key(config, fingerprint, code_version(type(plugin)))
    cache = ModelCache(resolve_cache_dir(config.get("cache_dir")) / "models")
    return BuildStore(cache, key, reuse=not config.get("force", False))


def _seed(plugin, config: dict) -> None:
    import numpy as np
    seed = int(config.get("seed", 0))
    np.random.seed(seed)  # for libraries (nanopq) that draw from the global generator
    if hasattr(plugin, "seed") and plugin.seed is None:
        plugin.seed = seed


def runtime_threads() -> dict:
    """The thread settings in force in this process, as the libraries see them."""
    from ..store.provenance import THREAD_VARIABLES, cpu_model
    out = {"thread_env": {k: os.environ.get(k) for k in THREAD_VARIABLES}}
    from .. import native
    from ..native import simd
    # what our C++ core runs as here (SIMD path, OpenMP, flags, compiler, CPU), whether or
    # not this run loaded it
    try:
        info = native.build_info()
    except native.NativeBuildError as exc:  # no compiler: faiss-only runs still record
        info = {"simd": simd.resolve(), "cpu_model": cpu_model(), "error": str(exc)}
    out["native"] = {**info, "loaded": native.loaded()}
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        out["faiss_omp_max_threads"] = int(faiss.omp_get_max_threads())
    return out


LOG_FORMAT = "%(levelname)s benchpq: %(message)s"


def main(argv: list[str]) -> int:
    import logging

    from .lifecycle import die_with_parent
    die_with_parent()
    # benchpq's log lines go to the output the runner relays to the sweep's log
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("benchpq")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    job_path, result_path = argv
    with open(job_path) as f:
        job = json.load(f)
    try:
        result = {"status": "ok", "message": "", **run(job["config"], job.get("settings")),
                  "runtime": runtime_threads()}
    except Exception as exc:  # recorded, the sweep goes on
        from ..checks import InputError
        message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        result = {"status": "error", "message": message, "traceback": traceback.format_exc()}
        traceback.print_exc()
    from ..store.records import write_record
    write_record(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
