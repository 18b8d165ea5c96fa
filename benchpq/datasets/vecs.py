"""Readers and writers for the texmex ``.fvecs`` / ``.ivecs`` / ``.bvecs`` formats.

Format (http://corpus-texmex.irisa.fr/): every row is a little-endian int32
dimension ``d`` followed by ``d`` values, float32 (fvecs), int32 (ivecs) or
uint8 (bvecs). All rows have the same ``d``.

:func:`read_vecs` memory-maps the file and returns a strided view that skips
the dimension column, so opening a 1M x 128 file costs nothing until rows are
touched. The whole header column is checked through a strided view too (one
int per row), which catches truncated, padded and mis-typed files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..checks import InputError, as_matrix

#: value dtype of each extension (little-endian, as written by the texmex tools)
VECS_DTYPES = {".fvecs": np.dtype("<f4"), ".ivecs": np.dtype("<i4"), ".bvecs": np.dtype("u1")}
#: largest dimension header accepted; anything larger means "not a vecs file"
MAX_DIM = 1 << 20
_WRITE_CHUNK = 65536


def vecs_dtype(path) -> np.dtype:
    """Return the value dtype implied by the extension of ``path``, or raise InputError."""
    ext = Path(path).suffix.lower()
    try:
        return VECS_DTYPES[ext]
    except KeyError:
        raise InputError(f"{path}: unknown vecs extension {ext!r} "
                         f"(expected .fvecs, .ivecs or .bvecs)") from None


def _open(path: Path, mmap: bool) -> np.ndarray:
    """The file as a flat uint8 array (memory-mapped or read)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: empty file")
    if mmap:
        return np.memmap(path, dtype=np.uint8, mode="r")
    return np.fromfile(path, dtype=np.uint8)


def read_vecs(path, mmap: bool = True) -> np.ndarray:
    """Read a .fvecs / .ivecs / .bvecs file as an (n, d) array.

    Args:
        path: file path; the extension selects the value dtype.
        mmap: memory-map the file (default; no copy, read-only) or read it
            whole into memory.

    Returns:
        (n, d) array of float32 (fvecs), int32 (ivecs) or uint8 (bvecs). With
        ``mmap=True`` it is a read-only, non-contiguous view of an
        ``np.memmap`` (rows are ``4 + d * itemsize`` bytes apart).

    Raises:
        FileNotFoundError: the file does not exist.
        InputError: empty, truncated, inconsistent or mis-typed file; the
            message names the file and the problem.
    """
    path = Path(path)
    dtype = vecs_dtype(path)
    kind = path.suffix.lower()[1:]
    raw = _open(path, mmap)
    size = raw.shape[0]
    if size < 4:
        raise InputError(f"{path}: truncated file ({size} bytes, less than one dimension header)")
    d = int(raw[:4].view("<i4")[0])
    if d <= 0 or d > MAX_DIM:
        raise InputError(f"{path}: not a valid {kind} file (first dimension header is {d}, "
                         f"expected 1..{MAX_DIM}; wrong extension or not a texmex file?)")
    row_bytes = 4 + d * dtype.itemsize
    if size % row_bytes:
        raise InputError(f"{path}: truncated or not a {kind} file: size {size} bytes is not a "
                         f"multiple of the row size {row_bytes} bytes (dim {d} from the first "
                         f"header); {size // row_bytes} whole rows and {size % row_bytes} bytes "
                         f"left over")
    n = size // row_bytes
    rows = raw.reshape(n, row_bytes)
    headers = rows[:, :4].view("<i4")[:, 0]  # strided: one int per row
    if headers[-1] != d:
        raise InputError(f"{path}: inconsistent dimensions: last row (row {n - 1}) has header "
                         f"{int(headers[-1])}, first row has {d} (not a valid {kind} file?)")
    bad = np.flatnonzero(headers != d)
    if bad.size:
        raise InputError(f"{path}: inconsistent dimensions: row {int(bad[0])} has header "
                         f"{int(headers[bad[0]])}, row 0 has {d} ({bad.size} rows differ; "
                         f"not a valid {kind} file?)")
    return rows[:, 4:].view(dtype)


def vecs_shape(path) -> tuple[int, int]:
    """Return (n, d) of a vecs file, with the same checks as :func:`read_vecs`."""
    return read_vecs(path, mmap=True).shape


def check_values_fit(x: np.ndarray, dtype: np.dtype, path: Path) -> None:
    """Refuse values that ``path``'s value type ``dtype`` cannot hold exactly (a writer's
    check: floats into an integer file, integers out of its range)."""
    if dtype.kind == "f" or x.size == 0:
        return
    if x.dtype.kind == "f":
        raise InputError(f"{path}: cannot write floating point values to a "
                         f"{path.suffix} file (integers required)")
    info = np.iinfo(dtype)
    lo, hi = int(x.min()), int(x.max())
    if lo < info.min or hi > info.max:
        raise InputError(f"{path}: values in [{lo}, {hi}] do not fit in {dtype} "
                         f"(range [{info.min}, {info.max}]) required by {path.suffix}")


def write_vecs(path, array) -> Path:
    """Write an (n, d) array as .fvecs / .ivecs / .bvecs (chosen by extension).

    Args:
        path: destination; the parent folder must exist. The file is written
            to a temporary name next to it and renamed, so a reader never sees
            a half-written file.
        array: (n, d) numbers; converted to float32 (fvecs), int32 (ivecs) or
            uint8 (bvecs). Integer values out of range and floats for the
            integer formats are refused; NaN/Inf are refused for fvecs.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    dtype = vecs_dtype(path)
    x = np.asarray(array)
    if x.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array (n, d) to write, got shape {x.shape}")
    check_values_fit(x, dtype, path)
    x = as_matrix(x, name=str(path), dtype=dtype, finite=True)
    n, d = x.shape
    if d < 1:
        raise InputError(f"{path}: cannot write vectors of dimension 0")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    header = np.array([d], dtype="<i4").view(np.uint8)
    try:
        with open(tmp, "wb") as f:
            for start in range(0, n, _WRITE_CHUNK):
                block = x[start:start + _WRITE_CHUNK]
                out = np.empty((block.shape[0], 4 + d * dtype.itemsize), dtype=np.uint8)
                out[:, :4] = header
                out[:, 4:] = block.astype(dtype, copy=False).view(np.uint8)
                out.tofile(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
