"""The trained-model cache: build a model once, search it in many sweeps.

A *build* is everything a search task does before it searches: fit on learn,
add base, and encode/decode base for mse. A plugin that pickles (our C++
plugins, the faiss adapters through ``faiss.serialize_index``, nanopq) is
stored after its build under ``<cache_dir>/models/<key>/`` as ``model.pkl``
beside ``build.json`` (the build's metrics). The key hashes what defines the
build (:func:`build_key`): the algorithm's build parameters, the dataset's
config and content fingerprint (:func:`array_fingerprint`), the build-related
task keys, seed, threads and SIMD path (times depend on them), the CPU model
(third-party BLAS kernels, as in OPQ's rotations, differ in their last bits
from CPU to CPU) and a stamp of the code that trains (:func:`code_version`).
A later run that differs only in search settings, ``k``, ``recall_at``,
``k_recall`` or ``search_repeats`` loads the model and the build's metrics
instead of training.

Writes are atomic: the entry is written into a temporary folder, fsynced and
renamed into place, so a run killed while writing leaves nothing that a later
run loads. An ``fcntl`` lock per key makes concurrent runs of the same build
train once (the others wait, then load). An entry that cannot be read or
unpickled is removed with a warning and the model is rebuilt.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import numpy as np

from .cachefiles import entry_lock
from .simd import cpu_model

log = logging.getLogger("benchpq")

MODEL_FILE = "model.pkl"
BUILD_FILE = "build.json"
FORMAT = 1

#: task keys that only change how the built model is searched
SEARCH_ONLY_TASK_KEYS = ("k", "recall_at", "k_recall", "search_repeats")
#: dataset keys that only change the queries and their ground truth
SEARCH_ONLY_DATASET_KEYS = ("n_query", "groundtruth_k")


def build_key(config: dict, fingerprint: str, code_stamp: str) -> str:
    """A 24-hex-digit key of one build.

    ``config`` is the run's resolved config; its search grid, the search-only
    task and dataset keys and the keys that say where a run executes are left
    out. ``fingerprint`` is the content of the data the build reads (learn and
    base), ``code_stamp`` the :func:`code_version` of the plugin class.
    """
    algorithm = {k: v for k, v in config["algorithm"].items() if k != "search"}
    task = {k: v for k, v in config["task"].items() if k not in SEARCH_ONLY_TASK_KEYS}
    dataset = {k: v for k, v in config["dataset"].items() if k not in SEARCH_ONLY_DATASET_KEYS}
    defining = {"format": FORMAT, "algorithm": algorithm, "dataset": dataset,
                "task": task, "seed": config.get("seed"), "threads": config.get("threads"),
                "simd": config.get("simd"), "cpu_model": cpu_model(),
                "plugins": config.get("plugins") or [], "fingerprint": fingerprint,
                "code": code_stamp}
    text = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def array_fingerprint(*arrays, chunk_rows: int = 65536) -> str:
    """blake2b digest (32 hex digits) of the shapes, dtypes and bytes of ``arrays``.

    ``None`` entries are hashed as absent; arrays are read in row chunks, so a
    memory-mapped set is not loaded whole.
    """
    digest = hashlib.blake2b(digest_size=16)
    for x in arrays:
        if x is None:
            digest.update(b"none;")
            continue
        x = np.asarray(x)
        digest.update(f"{x.dtype.str}{x.shape};".encode())
        rows = x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)
        for start in range(0, rows.shape[0], chunk_rows):
            digest.update(np.ascontiguousarray(rows[start:start + chunk_rows]).data)
    return digest.hexdigest()


def code_version(cls: type) -> str:
    """A stamp of the code that trains plugin class ``cls`` (hex digest).

    Hashes the source of every module that defines a class in ``cls``'s MRO
    (outside the core API), the versions of the third-party distributions those
    modules import (faiss, nanopq, ...), and, when they use the native layer,
    the key of the C++ library (its sources, flags and compiler).
    """
    digest = hashlib.sha256()
    modules = [sys.modules[c.__module__] for c in cls.__mro__
               if c.__module__ in sys.modules and c.__module__ not in ("builtins", "benchpq.api")]
    seen, distributions, native = set(), set(), False
    for module in modules:
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):
            digest.update(module.__name__.encode())
        for value in vars(module).values():
            owner = getattr(value, "__module__", None) if not inspect.ismodule(value) \
                else value.__name__
            if not isinstance(owner, str):
                continue
            if owner == "benchpq.native" or owner.startswith("benchpq.native."):
                native = True
            top = owner.split(".")[0]
            if (top not in ("benchpq", "builtins", "__main__")
                    and top not in sys.builtin_module_names):
                distributions.update(_distributions_of().get(top, []))
    for name in sorted(distributions):
        try:
            digest.update(f"{name}=={version(name)};".encode())
        except PackageNotFoundError:
            pass
    if native:
        from . import native as native_layer
        digest.update(native_layer.build_key().encode())
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def _distributions_of() -> dict:
    """Top-level import names to the distributions that provide them."""
    return packages_distributions()


class ModelCache:
    """Trained models under ``<root>/<key>/``; see the module doc."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str):
        """(plugin, build metrics dict) of a complete entry, or None.

        A complete entry that cannot be read is removed with a warning (the
        caller then rebuilds); an absent entry is a plain miss.
        """
        folder = self.entry(key)
        if not (folder / BUILD_FILE).is_file():
            return None
        try:
            build = json.loads((folder / BUILD_FILE).read_text())
            with open(folder / MODEL_FILE, "rb") as f:
                plugin = pickle.load(f)
        except Exception as exc:  # any unreadable entry is rebuilt, never fatal
            log.warning("cached model %s cannot be loaded (%s: %s); removing it and "
                        "rebuilding", folder, type(exc).__name__, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return plugin, build

    def store(self, key: str, plugin, build: dict, replace: bool = False) -> bool:
        """Save ``plugin`` and its build metrics atomically; False if it cannot be pickled.

        An existing entry is kept (another run stored the same build), unless
        ``replace`` (a forced rebuild), which swaps it for the new one.
        """
        try:
            payload = pickle.dumps(plugin, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a plugin without pickling support is not cached
            log.info("model of %s is not cached: it cannot be pickled (%s: %s)",
                     getattr(plugin, "name", type(plugin).__name__), type(exc).__name__, exc)
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            for name, data in ((MODEL_FILE, payload),
                               (BUILD_FILE, json.dumps({**build, "stored_at": time.time()},
                                                       sort_keys=True).encode())):
                with open(tmp / name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            target = self.entry(key)
            if target.exists():
                if not replace:  # another run stored the same build first
                    shutil.rmtree(tmp, ignore_errors=True)
                    return True
                shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True

    @contextmanager
    def lock(self, key: str):
        """Hold the key's build lock: concurrent runs of one build train once."""
        with entry_lock(self.entry(key)):
            yield
