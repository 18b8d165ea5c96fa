"""The trained-model cache: build a model once, search it in many sweeps.

A *build* is everything a search task does before it searches: fit on learn,
add base, and encode/decode base for mse. The trained plugin is stored after
its build under ``<cache_dir>/models/<key>/`` as arrays and JSON, never as a
pickle (:mod:`benchpq.store.model_state`): ``arrays.npys``, the state's arrays as
consecutive NPY records read with ``allow_pickle=False``, and ``state.json``,
the rest of the state and the build's metrics. Both are sealed with the
user's signing key (:mod:`benchpq.store.sealing`). A
load verifies the seal over both files, so a forged, corrupted or swapped
entry is removed and rebuilt, never searched. A plugin whose state cannot be
stored that way is not cached (logged).

The key hashes what defines the build (:func:`build_key`): the algorithm's
build parameters, the dataset's config and content fingerprint
(:func:`benchpq.datasets.fingerprint.array_fingerprint`), the build-related task
keys, seed, threads and SIMD path (times depend on them), the CPU model
(third-party BLAS kernels, as in OPQ's rotations, differ in their last bits from
CPU to CPU) and a stamp of the code that trains
(:func:`benchpq.sweep.code_stamp.code_version`). A later run that differs only in
search settings, ``k``, ``recall_at``, ``k_recall`` or ``search_repeats``
loads the model and the build's metrics instead of training.

Writes are atomic: the entry is written and sealed in a temporary folder,
fsynced and renamed into place, so a run killed while writing leaves nothing
that a later run loads; the next store of that key removes the temporary
folder it left. An ``fcntl`` lock per key makes concurrent runs of the same
build train once (the others wait, then load).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import sealing
from .cachefiles import entry_lock
from .mapped import release_pages
from .model_state import BadState, NotStorable, from_storage, to_storage
from .provenance import cpu_model

log = logging.getLogger("benchpq")

STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npys"
ENTRY_FILES = (STATE_FILE, ARRAYS_FILE)
FORMAT = 2

#: task keys that only change how the built model is searched
SEARCH_ONLY_TASK_KEYS = ("k", "recall_at", "k_recall", "search_repeats", "rerank",
                         "query_mode", "search_threads")
#: dataset keys that only change the queries and their ground truth
SEARCH_ONLY_DATASET_KEYS = ("n_query", "groundtruth_k")


def build_key(config: dict, fingerprint: str, code_stamp: str) -> str:
    """A 24-hex-digit key of one build.

    ``config`` is the run's resolved config; its search grid, the search-only
    task and dataset keys and the keys that say where a run executes are left
    out. ``fingerprint`` is the content of the data the build reads (learn and
    base), ``code_stamp`` the :func:`benchpq.sweep.code_stamp.code_version` of the plugin class.
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


#: bytes of an array written (and, if it lives in a file, released) at a time
WRITE_CHUNK_BYTES = 64 << 20


def _write_record(f, array: np.ndarray) -> None:
    """One NPY record of ``array``, as ``np.lib.format.write_array`` writes it; a large
    C-ordered array goes out in chunks of rows, each chunk's pages released once written,
    so codes kept in a file never become resident all at once."""
    if array.nbytes <= WRITE_CHUNK_BYTES or not array.flags.c_contiguous:
        np.lib.format.write_array(f, array, allow_pickle=False)
        release_pages(array)
        return
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    rows = max(1, WRITE_CHUNK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, array.shape[0], rows):
        chunk = array[start:start + rows]
        f.write(memoryview(chunk).cast("B"))
        release_pages(chunk)


class ModelCache:
    """Trained models under ``<root>/<key>/``; see the module doc."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str, plugin_cls: type):
        """(plugin of class ``plugin_cls``, build metrics dict) of a complete entry, or None.

        An entry whose seal does not verify, or that cannot be read back into
        a ``plugin_cls``, is removed with a warning naming why (the caller then
        rebuilds); an absent entry is a plain miss. A cache folder that other
        users can write into raises :class:`benchpq.store.sealing.UntrustedCacheError`.
        """
        folder = self.entry(key)
        if not folder.exists():
            return None
        try:
            files = sealing.verify(folder, expected=ENTRY_FILES)
            stored = json.loads(files[STATE_FILE].read_text())
            build = stored["build"]
            arrays = _read_arrays(files[ARRAYS_FILE], stored["arrays"])
            plugin = from_storage(stored["tree"], arrays, plugin_cls)
        except (sealing.UntrustedEntry, BadState, OSError, ValueError, KeyError) as exc:
            log.warning("cached model %s is not used (%s); removing it and rebuilding",
                        folder, exc)
            self.discard(key)
            return None
        return plugin, build

    def store(self, key: str, plugin, build: dict, replace: bool = False) -> bool:
        """Save ``plugin`` and its build metrics atomically, sealed; False if it cannot be stored.

        An existing entry is kept (another run stored the same build), unless
        ``replace`` (a forced rebuild), which swaps it for the new one.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        sealing.check_folder(self.root)
        self._remove_stale_temporaries(key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            try:
                tree, arrays = to_storage(plugin)
            except NotStorable as exc:  # e.g. a C++ handle in the state: not cached
                log.info("model of %s is not cached: its state cannot be stored as arrays "
                         "and JSON (%s)", getattr(plugin, "name", type(plugin).__name__), exc)
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            with open(tmp / ARRAYS_FILE, "wb") as f:
                for array in arrays.values():
                    _write_record(f, array)
            with open(tmp / STATE_FILE, "w") as f:
                json.dump({"tree": tree, "arrays": list(arrays),
                           "build": {**build, "stored_at": time.time()}}, f)
            # the seal hashes the files while another thread flushes them to disk (both
            # release the GIL); neither changes what the other reads
            with ThreadPoolExecutor(1) as flusher:
                flushed = flusher.submit(_fsync_all, [tmp / name for name in ENTRY_FILES])
                sealing.seal(tmp, [tmp / name for name in ENTRY_FILES])
                flushed.result()
            target = self.entry(key)
            if target.exists():
                if not replace:  # another run stored the same build first
                    shutil.rmtree(tmp, ignore_errors=True)
                    return True
                self.discard(key)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True

    def discard(self, key: str) -> None:
        """Remove the entry of ``key`` (under its lock, by the caller)."""
        shutil.rmtree(self.entry(key), ignore_errors=True)

    def _remove_stale_temporaries(self, key: str) -> None:
        """Remove the temporary folders of stores of ``key`` that were killed.

        Called under the key's lock, so no live store of this key owns one.
        """
        for tmp in self.root.glob(f".{key}.*"):
            if tmp.is_dir():
                log.info("removing %s, left by a store of this model that was killed", tmp)
                shutil.rmtree(tmp, ignore_errors=True)

    @contextmanager
    def lock(self, key: str):
        """Hold the key's build lock: concurrent runs of one build train once."""
        with entry_lock(self.entry(key)):
            yield


def _fsync_all(paths) -> None:
    for path in paths:
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _read_arrays(path: Path, names) -> dict[str, np.ndarray]:
    """The NPY records of ``path``, one per name, in order; no pickles, nothing left over."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadState("state.json lists no array names")
    with open(path, "rb") as f:
        arrays = {name: np.lib.format.read_array(f, allow_pickle=False) for name in names}
        if f.read(1):
            raise BadState(f"{path.name} holds more than the {len(names)} arrays listed")
    return arrays
