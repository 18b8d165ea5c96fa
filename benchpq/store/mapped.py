"""Memory-mapped arrays: code buffers kept in files instead of RAM, and releasing the pages
of mapped arrays from the process (Linux).

A run at the scale of SIFT1B holds gigabytes of codes. Inside :func:`codes_in_files`,
:func:`empty_rows` gives arrays above a size threshold as shared mappings of a file in a
folder of the cache instead of anonymous memory: the kernel keeps their pages in its page
cache and writes them back under memory pressure, so they count in the process's resident
set only while they are read or written, and :func:`release_pages` drops them from it
again. The file is unlinked as soon as it is mapped: it lives exactly as long as the
arrays over it, and nothing is left behind by a crash or shared with another user of the
cache. Its whole size is reserved on disk up front, so a full disk is an error when the
buffer is made, not a bus error when a page of it is first written.
"""
from __future__ import annotations

import contextvars
import mmap
import os
import tempfile
import weakref
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..checks import InputError, check_positive_int

#: (folder, threshold in bytes) of the innermost :func:`codes_in_files`, or None
_SETTING: contextvars.ContextVar = contextvars.ContextVar("benchpq_codes_in_files",
                                                          default=None)
#: the mappings :func:`empty_rows` made: the writable mappings whose pages may be released
_FILE_MAPS: weakref.WeakSet = weakref.WeakSet()


@contextmanager
def codes_in_files(folder, threshold_bytes: int):
    """Within this block, :func:`empty_rows` puts arrays of more than ``threshold_bytes``
    bytes in files under ``folder`` (created when first needed); 0: every non-empty one."""
    threshold = check_positive_int(threshold_bytes, "threshold_bytes", 0)
    token = _SETTING.set((Path(folder), threshold))
    try:
        yield
    finally:
        _SETTING.reset(token)


def empty_rows(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype``: in RAM (``np.empty``) unless an
    enclosing :func:`codes_in_files` sends arrays of its size to a file."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    setting = _SETTING.get()
    if setting is None or nbytes <= setting[1] or nbytes == 0 or os.name != "posix":
        return np.empty(shape, dtype)
    folder = setting[0]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="codes-", suffix=".bin", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot create a codes file in {folder}: {exc}") from None
    try:
        os.unlink(path)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as exc:
            raise InputError(f"cannot reserve {nbytes} bytes of codes in {folder}: "
                             f"{exc.strerror or exc}") from None
        buffer = mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    _FILE_MAPS.add(buffer)
    return np.ndarray(shape, dtype, buffer=buffer)


def _mapping(a: np.ndarray):
    """The mmap under ``a`` whose pages may be dropped (a read-only ``np.memmap``'s, or a
    mapping made by :func:`empty_rows`), else None."""
    obj = a
    while obj is not None:  # a view's .base chain leads to the mapping
        if isinstance(obj, np.memmap):
            if obj.mode not in ("r", "readonly"):
                return None
            mm = getattr(obj, "_mmap", None)
            return mm if isinstance(mm, mmap.mmap) else None
        if isinstance(obj, mmap.mmap):
            return obj if obj in _FILE_MAPS else None
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    return None


def in_file(a: np.ndarray) -> bool:
    """Whether ``a`` is (a view of) a buffer that :func:`empty_rows` put in a file."""
    mm = _mapping(a)
    return mm is not None and mm in _FILE_MAPS


def release_pages(a: np.ndarray) -> bool:
    """Drop the resident pages of a memory-mapped array from this process (Linux).

    ``madvise(MADV_DONTNEED)`` on the whole pages inside ``a``'s bytes: the data stay in
    the page cache (the next read maps them back, without disk I/O while memory allows),
    but no longer count in the process's resident set. Only views of a read-only
    ``np.memmap`` (``np.load(..., mmap_mode="r")``) and of the file-backed buffers of
    :func:`empty_rows` (shared mappings: what was written is in the page cache) are
    released; other arrays are left alone. Returns whether pages were released.
    """
    mm = _mapping(a)
    if mm is None or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    try:
        start = a.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data
        page = mmap.PAGESIZE
        first, last = -(-start // page) * page, (start + a.nbytes) // page * page
        if last > first:
            mm.madvise(mmap.MADV_DONTNEED, first, last - first)
        return True
    except (ValueError, OSError, BufferError):
        return False
