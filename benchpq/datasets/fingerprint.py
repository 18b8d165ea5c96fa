"""Dataset fingerprints: the content of the files a dataset is read from, cheaply.

A run's id and record carry its dataset's fingerprint, so that a changed data
file (a regenerated base, a shuffled ground truth) is a new run, never "already
recorded". While :func:`dataset_fingerprint` loads a dataset it collects the
files the load read (:mod:`benchpq.datasets.reads`) and hashes their contents.
A file's digest is cached under ``<cache_dir>/fingerprints``, sealed
(:mod:`benchpq.store.sealing`), with the file's inode, size, mtime and ctime as they
were before it was hashed; the digest is reused only while all four are
unchanged. A rewrite in place at the same size with its mtime set back is
still seen: the kernel sets ctime on every write and every mtime change, and a
user cannot set it back. A dataset that reads no file (made in memory) is
fingerprinted by the content of its arrays.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..store import sealing
from ..store.mapped import release_pages
from .context import resolve_cache_dir
from .reads import tracking_reads
from .registry import _plain, load_dataset

CHUNK_BYTES = 1 << 24


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "inode": st.st_ino, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def file_digest(path, cache_dir=None) -> str:
    """blake2b (32 hex digits) of a file's bytes; cached while the file's inode, size, mtime
    and ctime stay as they were when it was hashed (see the module doc)."""
    path = Path(path).resolve()
    stamp = _stamp(path)  # before hashing: a write during the hash changes it
    entry = None
    if cache_dir is not None:
        key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
        entry = Path(cache_dir) / "fingerprints" / f"{key}.json"
        try:
            sealing.verify(entry)
            cached = json.loads(entry.read_text())
            if all(cached.get(k) == v for k, v in stamp.items()):
                return cached["digest"]
        except (sealing.UntrustedEntry, OSError, ValueError, KeyError, AttributeError):
            pass
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    value = digest.hexdigest()
    if entry is not None:
        try:
            sealing.write_sealed(entry, lambda tmp: tmp.write_text(
                json.dumps({**stamp, "digest": value})))
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
    return value


def array_fingerprint(*arrays, chunk_rows: int = 65536) -> str:
    """blake2b digest (32 hex digits) of the shapes, dtypes and bytes of ``arrays``.

    ``None`` entries are hashed as absent; arrays are read in row chunks, each chunk's
    pages released once hashed, so a memory-mapped set is neither loaded whole nor left
    resident.
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
            release_pages(rows[start:start + chunk_rows])  # a mapped set does not stay resident
    return digest.hexdigest()


def dataset_fingerprint(cfg, data_dir=None, cache_dir=None) -> str:
    """The content fingerprint (32 hex digits) of the dataset ``cfg`` describes.

    Loads the dataset (memory-mapped where the format allows; no validation
    and no ground-truth computation) while tracking the files it reads.
    Raises what :func:`benchpq.datasets.load_dataset` raises for a missing or
    bad dataset.
    """
    params = {**_plain(cfg), "groundtruth_k": None, "validate": False}
    cache = resolve_cache_dir(cache_dir)
    with tracking_reads() as reads:
        ds = load_dataset(params, data_dir=data_dir, cache_dir=cache_dir)
    digest = hashlib.blake2b(digest_size=16)
    if reads:
        for path in sorted(set(reads)):
            digest.update(file_digest(path, cache).encode())
    else:
        digest.update(array_fingerprint(ds.learn, ds.base, ds.query, ds.groundtruth,
                                        ds.labels).encode())
    # what a loader takes from a file (a split, a subset) is in the config, also hashed
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    return digest.hexdigest()
