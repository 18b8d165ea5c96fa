"""Code helpers: the integer type of codes, their size in bits, faiss's packed layout, and
appending codes block after block."""
from __future__ import annotations

import weakref

import numpy as np

from benchpq.store.mapped import empty_rows, in_file, release_pages

#: the buffers :func:`appended_rows` made, by id, and how many of their rows are in use:
#: only the view of all used rows of such a buffer is extended in place
_GROWN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_USED: dict[int, int] = {}


def code_dtype(*cardinalities: int) -> np.dtype:
    """The smallest unsigned dtype holding values below every cardinality given.

    uint8 up to 256, uint16 up to 65536, else uint32: ``code_dtype(Ks)`` for PQ
    codes, ``code_dtype(V, Ks)`` for codes that mix coarse ids and sub-codes.
    """
    largest = max(cardinalities)
    return np.dtype(np.uint8 if largest <= 2 ** 8 else
                    np.uint16 if largest <= 2 ** 16 else np.uint32)


def pq_code_bits(M: int, Ks: int) -> int:
    """Bits of one PQ code: M sub-codes of ceil(log2 Ks) bits each."""
    return int(M * np.ceil(np.log2(Ks)))


def pack_codes(codes: np.ndarray, nbits: int) -> np.ndarray:
    """(n, M) codes -> (n, ceil(M * nbits / 8)) uint8, faiss's bit layout.

    faiss (BitstringWriter) writes sub-code m at bits [m * nbits, (m + 1) * nbits)
    of a little-endian bit string, least significant bit first.
    """
    if nbits in (8, 16):
        return np.ascontiguousarray(codes.astype(f"<u{nbits // 8}")).view(np.uint8)
    n, M = codes.shape
    bits = (codes[:, :, None].astype(np.uint32) >> np.arange(nbits, dtype=np.uint32)) & 1
    return np.packbits(bits.astype(np.uint8).reshape(n, M * nbits), axis=1, bitorder="little")


def unpack_codes(packed: np.ndarray, M: int, nbits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: (n, code_size) uint8 -> (n, M) of ``code_dtype(2**nbits)``."""
    dtype = code_dtype(1 << nbits)
    if nbits in (8, 16):
        return np.ascontiguousarray(packed).view(f"<u{nbits // 8}").astype(dtype)
    n = packed.shape[0]
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, :M * nbits].reshape(n, M, nbits)
    return (bits.astype(np.uint32) << np.arange(nbits, dtype=np.uint32)).sum(-1).astype(dtype)


def appended_rows(rows: np.ndarray | None, more: np.ndarray) -> np.ndarray:
    """``rows`` followed by ``more`` (same trailing shape and dtype), as a view of the first
    rows of a buffer that doubles when full.

    A base added in many blocks then copies each code a constant number of times on
    average, where concatenating block after block copies all codes so far each time
    (quadratic in the number of blocks). Spare rows are never touched, so they cost no
    memory until used. Inside :func:`benchpq.store.mapped.codes_in_files` a large buffer is
    a memory-mapped file, whose written pages leave the resident set. Only a buffer made
    here is written past the end of ``rows``, and only when ``rows`` is the view of all its
    used rows (an older, shorter view held elsewhere, e.g. by a shallow copy of a plugin,
    gets a buffer of its own).
    """
    if rows is None or rows.shape[0] == 0:
        return more
    n, m = rows.shape[0], more.shape[0]
    buffer = rows.base
    if (isinstance(buffer, np.ndarray) and _GROWN.get(id(buffer)) is buffer
            and _USED.get(id(buffer)) == n and buffer.shape[0] >= n + m
            and buffer.shape[1:] == rows.shape[1:] and buffer.dtype == rows.dtype
            and buffer.ctypes.data == rows.ctypes.data):
        _written(buffer, n, more)
        _USED[id(buffer)] = n + m
        return buffer[:n + m]
    buffer = empty_rows((max(n + m, 2 * n),) + rows.shape[1:], rows.dtype)
    _GROWN[id(buffer)] = buffer
    _USED[id(buffer)] = n + m
    weakref.finalize(buffer, _USED.pop, id(buffer), None)
    _written(buffer, 0, rows)
    release_pages(rows)
    _written(buffer, n, more)
    return buffer[:n + m]


def _written(buffer: np.ndarray, start: int, rows: np.ndarray) -> None:
    """Copy ``rows`` into ``buffer`` from row ``start``; a buffer in a file
    (:func:`benchpq.store.mapped.empty_rows`) is written in slices whose pages leave the
    process once written, so a growing file of codes does not grow the resident set."""
    if not in_file(buffer):
        buffer[start:start + rows.shape[0]] = rows
        return
    step = max(1, (64 << 20) // max(1, rows[:1].nbytes))
    for i in range(0, rows.shape[0], step):
        target = buffer[start + i:start + min(i + step, rows.shape[0])]
        target[...] = rows[i:i + step]
        release_pages(target)
        release_pages(rows[i:i + step])
