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
on ``.<name>.lock`` beside the entry, removed when released; Linux maps flock
onto POSIX locks on NFS, so it also holds across machines sharing an NFS
cache. It is released when the holder exits or dies, so a killed producer never
blocks the others; only a killed producer leaves files behind (its lock file
and its temp file, named ``.<name>.<host>.<pid>.tmp``).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path


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

    The lock file is removed on release, while still held; a waiter that then
    gets the lock on the removed file sees that its inode is no longer the
    one at the path and starts over on a fresh file, so two processes never
    hold the lock at once.
    """
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        f = _acquire(lock)
    except OSError:
        if required:
            raise
        f = None
    if f is None:
        yield False
        return
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)
        f.close()  # closing releases the lock


def _acquire(lock: Path):
    while True:
        f = open(lock, "a")
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(f.fileno()).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()  # the holder we waited for removed this file: lock the new one


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
