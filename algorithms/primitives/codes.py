"""Code helpers: the integer type of codes, their size in bits, faiss's packed layout."""
from __future__ import annotations

import numpy as np


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
