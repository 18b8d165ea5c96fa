"""The big-ann-benchmarks binary formats (https://big-ann-benchmarks.com/).

Vector files: a header of two little-endian uint32, ``n`` and ``d``, then ``n * d`` values
in row-major order; the extension gives the value type:

=========  =========
extension  values
=========  =========
.fbin      float32
.u8bin     uint8
.i8bin     int8
.ibin      int32
=========  =========

big-ann-benchmarks stores the first ``n`` rows of a 1B file as
``<name>.crop_nb_<n>`` (its header rewritten to ``n``); those names are read too.

Ground-truth files (``GT_10M/bigann-10M``, ``GT.public.1B.ibin``, ...): a header ``nq``,
``k`` (uint32), then ``nq * k`` int32 neighbour ids, nearest first, then ``nq * k``
float32 distances. Their names say nothing of the layout (the 1B file of BIGANN ends in
``.ibin`` yet holds distances after the ids), so they are read by naming the format:
``read_array(path, fmt=GROUNDTRUTH_FORMAT, key="ids" | "distances")``.

Reading memory-maps the file: opening SIFT1B's 128 GB base costs nothing until rows are
touched, and ``x[:n]`` reads only those rows. :class:`BinWriter` writes a file block by
block (the header's ``n`` is filled in when it is closed).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..checks import InputError, as_matrix
from ..store.cachefiles import temp_path
from .formats import register_format
from .vecs import check_values_fit

#: value dtype of each extension
BIN_DTYPES = {".fbin": np.dtype("<f4"), ".u8bin": np.dtype("u1"), ".i8bin": np.dtype("i1"),
              ".ibin": np.dtype("<i4")}
HEADER = np.dtype("<u4")
HEADER_BYTES = 8
#: a vector file's name: ``x.u8bin``, or big-ann-benchmarks' crop ``x.u8bin.crop_nb_1000``
BIN_NAME = re.compile(r"(\.(?:fbin|u8bin|i8bin|ibin))(?:\.crop_nb_\d+)?$", re.IGNORECASE)
GROUNDTRUTH_FORMAT = "big-ann ground truth (ids, then distances)"
GROUNDTRUTH_KEYS = ("ids", "distances")


def bin_dtype(path) -> np.dtype:
    """The value dtype a vector file's name gives, or InputError."""
    match = BIN_NAME.search(Path(path).name)
    if match is None:
        raise InputError(f"{path}: not a big-ann vector file name (expected .fbin, .u8bin, "
                         f".i8bin or .ibin, optionally followed by .crop_nb_<n>)")
    return BIN_DTYPES[match.group(1).lower()]


def read_header(path) -> tuple[int, int]:
    """(n, d) from a big-ann file's header; FileNotFoundError or InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise InputError(f"{path}: truncated file ({len(raw)} bytes, less than the 8-byte "
                         f"header of two uint32)")
    n, d = (int(v) for v in np.frombuffer(raw, HEADER))
    return n, d


def _mapped(path: Path, dtype: np.dtype, shape: tuple[int, int], offset: int,
            mmap: bool) -> np.ndarray:
    if shape[0] == 0:
        return np.empty(shape, dtype)
    if mmap:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    with open(path, "rb") as f:
        f.seek(offset)
        return np.fromfile(f, dtype=dtype, count=shape[0] * shape[1]).reshape(shape)


def read_bin(path, mmap: bool = True) -> np.ndarray:
    """Read a .fbin / .u8bin / .i8bin / .ibin file as an (n, d) array.

    Args:
        path: the file; its name gives the value type.
        mmap: memory-map it (default: read-only, nothing read until used) or read it whole.

    Raises:
        FileNotFoundError: no such file.
        InputError: a header of no rows' width, or a size that is not 8 + n * d * itemsize
            bytes (truncated, padded, or another format such as a ground-truth file).
    """
    path = Path(path)
    dtype = bin_dtype(path)
    n, d = read_header(path)
    if d == 0 and n > 0:
        raise InputError(f"{path}: header says {n} rows of dimension 0 (not a big-ann file?)")
    want = HEADER_BYTES + n * d * dtype.itemsize
    size = path.stat().st_size
    if size != want:
        hint = (" (twice the ids: a ground-truth file, with distances after the ids? read it "
                f"with fmt={GROUNDTRUTH_FORMAT!r})"
                if dtype == BIN_DTYPES[".ibin"] and size == HEADER_BYTES + 2 * n * d * 4 else "")
        raise InputError(f"{path}: {size} bytes, but its header (n={n}, d={d}) of "
                         f"{dtype.name} values needs {want}: truncated, padded or not a "
                         f"{path.suffix} file{hint}")
    return _mapped(path, dtype, (n, d), HEADER_BYTES, mmap)


def read_bin_groundtruth(path, key: str = "ids", mmap: bool = True) -> np.ndarray:
    """The ``ids`` (nq, k) int32 or ``distances`` (nq, k) float32 of a ground-truth file."""
    path = Path(path)
    if key not in GROUNDTRUTH_KEYS:
        raise InputError(f"{path}: a big-ann ground-truth file holds {GROUNDTRUTH_KEYS}, "
                         f"not {key!r}")
    nq, k = read_header(path)
    want = HEADER_BYTES + 2 * nq * k * 4
    size = path.stat().st_size
    if size != want:
        raise InputError(f"{path}: {size} bytes, but a ground-truth file with header "
                         f"(nq={nq}, k={k}) holds {want} (ids then distances): truncated, "
                         f"or not a big-ann ground-truth file")
    if key == "ids":
        return _mapped(path, np.dtype("<i4"), (nq, k), HEADER_BYTES, mmap)
    return _mapped(path, np.dtype("<f4"), (nq, k), HEADER_BYTES + nq * k * 4, mmap)


@register_format(".fbin .u8bin .i8bin .ibin (big-ann)",
                 lambda path: BIN_NAME.search(path.name) is not None)
def _bin(path: Path, key, mmap: bool) -> np.ndarray:
    return read_bin(path, mmap=mmap)


@register_format(GROUNDTRUTH_FORMAT, lambda path: False)  # chosen by name only
def _groundtruth(path: Path, key, mmap: bool) -> np.ndarray:
    return read_bin_groundtruth(path, key or "ids", mmap=mmap)


class BinWriter:
    """Write a big-ann vector file block by block, atomically.

    Rows go to a temporary file beside ``path``; :meth:`close` writes the row count into
    the header and renames the file into place, so a reader never sees a partial file.
    Use as a context manager (an exception discards the file)::

        with BinWriter("base.u8bin", dim=128) as out:
            for block in blocks:
                out.write(block)
    """

    def __init__(self, path, dim: int):
        self.path = Path(path)
        self.dtype = bin_dtype(self.path)
        if int(dim) < 1:
            raise InputError(f"{self.path}: cannot write vectors of dimension {dim}")
        self.dim = int(dim)
        self.rows = 0
        self._tmp = temp_path(self.path)
        self._file = open(self._tmp, "wb")
        self._file.write(np.zeros(2, HEADER).tobytes())

    def write(self, block) -> None:
        """Append (m, dim) rows; values the file's type cannot hold exactly are refused."""
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputError(f"{self.path}: expected rows of shape (m, {self.dim}), got "
                             f"{x.shape}")
        check_values_fit(x, self.dtype, self.path)
        x = as_matrix(x, name=str(self.path), dtype=self.dtype, finite=True)
        if self.rows + x.shape[0] > np.iinfo(HEADER).max:
            raise InputError(f"{self.path}: more than 2^32 - 1 rows")
        x.tofile(self._file)
        self.rows += x.shape[0]

    def close(self) -> Path:
        """Fill in the header, flush and rename into place; returns the path."""
        self._file.seek(0)
        self._file.write(np.array([self.rows, self.dim], HEADER).tobytes())
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Drop what was written."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BinWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def write_bin(path, array, block_rows: int = 65536) -> Path:
    """Write an (n, d) array as a big-ann vector file (type from the extension)."""
    x = np.asarray(array)
    if x.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array (n, d) to write, got shape {x.shape}")
    with BinWriter(path, x.shape[1]) as out:
        for start in range(0, x.shape[0], block_rows):
            out.write(x[start:start + block_rows])
    return Path(path)
