"""Cache entries made once by many processes: an inter-process lock and atomic writes.

Many runs of a sweep (joblib, Ray or SLURM workers, on one machine or on many
sharing a file system) may ask for the same cache entry at the same moment:
the native library, a dataset's ground truth, a generated dataset, a download.
The pattern for each is::

    if path.exists(): use it                    # the common, lock-free case
    with entry_lock(path):                      # one producer at a time
        if path.exists(): use it                # made while we waited
        write_atomic(path, produce)             # temp file beside it, then rename

so each entry is produced once, and a reader never sees a half-written file
(``os.replace`` is atomic within a file system). The lock is an ``fcntl.flock``
on ``.<name>.lock`` beside the entry; Linux maps it onto POSIX locks on NFS, so
it also holds across machines sharing an NFS cache. It is released when the
holder exits or dies, so a killed producer never blocks the others; its temp
file is removed when it fails and left (named ``.<name>.<host>.<pid>.tmp``) only
if it was killed.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Callable, Iterator


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file guarding ``path``: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def entry_lock(path: str | os.PathLike, required: bool = True) -> Iterator[bool]:
    """Hold an exclusive inter-process lock on the cache entry ``path`` (blocks until free).

    The entry's folder is created if needed; the entry itself may be a file or
    a folder. Yields True when locked. With ``required=False`` a lock that
    cannot be made (read-only cache folder) yields False instead of raising
    OSError, for callers that can go on without a cache.
    """
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock, "a")
    except OSError:
        if required:
            raise
        yield False
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def temp_path(path: str | os.PathLike, suffix: str = "") -> Path:
    """A temp name beside ``path``, unique to this host and process (``suffix`` appended)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp{suffix}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None],
                 suffix: str = "") -> Path:
    """Create ``path`` by ``write(tmp)`` on a temp file beside it, then an atomic rename.

    Args:
        path: the final file.
        write: writes the whole content to the path it is given.
        suffix: ending the temp name needs (e.g. ``".npy"``, which numpy adds otherwise).

    Returns ``path``. If ``write`` raises, the temp file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
