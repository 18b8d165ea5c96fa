"""Reader for the IDX format of MNIST and Fashion-MNIST, raw or gzipped.

Format (http://yann.lecun.com/exdb/mnist/): a big-endian header of two zero
bytes, a type byte, a number-of-dimensions byte, then one uint32 per
dimension, then the values in C order (big-endian).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..checks import InputError

#: IDX type byte -> big-endian dtype
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def is_idx_path(path) -> bool:
    """True for names like ``train-images-idx3-ubyte(.gz)`` or ``*.idx(.gz)``."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(".idx") or ("-idx" in name and name.endswith("-ubyte"))


def _parse_header(head: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (dtype, shape, header size) from the first bytes of an IDX file."""
    if len(head) < 4:
        raise InputError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or not 1 <= head[3] <= 4:
        raise InputError(f"{path}: bad magic number 0x{head[:4].hex()}, not an IDX file "
                         f"(expected 0x0000TTNN with type TT in "
                         f"{sorted(f'{t:02x}' for t in IDX_DTYPES)} and 1..4 dimensions NN)")
    ndim = head[3]
    header_size = 4 + 4 * ndim
    if len(head) < header_size:
        raise InputError(f"{path}: truncated IDX header ({len(head)} of {header_size} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(head[4:header_size], dtype=">u4"))
    return IDX_DTYPES[head[2]], shape, header_size


def read_idx(path, flatten: bool = True) -> np.ndarray:
    """Read an IDX file (``.gz`` is decompressed in memory).

    Args:
        path: file path; gzip is recognised by its ``.gz`` extension.
        flatten: reshape arrays of 3 or more dimensions to (n, prod(rest)),
            e.g. Fashion-MNIST images (n, 28, 28) -> (n, 784).

    Returns:
        Array in native byte order: images (n, 784) uint8, labels (n,) uint8.
        Raw (non-gzipped) files are memory-mapped when already in native order.

    Raises:
        FileNotFoundError: missing file.
        InputError: bad magic number, truncated or over-long file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                data = f.read()
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot decompress gzip IDX file ({exc})") from None
        buf = np.frombuffer(data, dtype=np.uint8)
    else:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file")
        buf = np.memmap(path, dtype=np.uint8, mode="r")
    dtype, shape, header_size = _parse_header(bytes(buf[:4 + 4 * 4]), path)
    count = int(np.prod(shape, dtype=np.int64))
    expected = header_size + count * dtype.itemsize
    if buf.shape[0] != expected:
        what = "truncated" if buf.shape[0] < expected else "too long"
        raise InputError(f"{path}: {what} IDX file: header says shape {shape} of {dtype.name} "
                         f"({expected} bytes), file has {buf.shape[0]} bytes")
    x = buf[header_size:].view(dtype).reshape(shape)
    if dtype.byteorder == ">":
        x = x.astype(dtype.newbyteorder("="))
    if flatten and x.ndim >= 3:
        x = x.reshape(shape[0], -1)
    return x
