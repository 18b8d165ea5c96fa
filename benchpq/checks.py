"""Input checks at the Python door.

Native code (faiss, our C++) trusts what it is given, so every array that
crosses into it goes through one of these functions first. Each raises
:class:`InputError` (a ``ValueError``) whose message names the argument and
the problem.
"""
from __future__ import annotations

import numpy as np


class InputError(ValueError):
    """Bad input to a benchpq function, dataset or plugin."""


def as_matrix(x, name: str = "x", dtype=np.float32, dim: int | None = None,
              min_rows: int = 1, finite: bool = True) -> np.ndarray:
    """Return ``x`` as a C-contiguous 2-D array of ``dtype``, or raise.

    Args:
        x: array-like of shape (n, d).
        name: how the argument is called in error messages.
        dtype: required dtype; a lossless numeric conversion is made (float64
            to float32 included), anything else (strings, objects) is refused.
        dim: required number of columns, if any.
        min_rows: the least number of rows accepted.
        finite: refuse NaN and Inf (floating dtypes only).
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise InputError(f"{name}: cannot be read as an array ({exc})") from None
    if x.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array of shape (n, d), got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise InputError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    if np.dtype(dtype).kind in "iu" and x.dtype.kind == "f":
        raise InputError(f"{name}: expected integer dtype {np.dtype(dtype)}, got {x.dtype}")
    if x.shape[0] < min_rows:
        raise InputError(f"{name}: expected at least {min_rows} rows, got {x.shape[0]}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{name}: dimension mismatch, expected {dim} columns, got {x.shape[1]}")
    x = np.ascontiguousarray(x, dtype=dtype)
    if finite and x.dtype.kind == "f":
        check_finite(x, name)
    return x


#: the stored types a streaming consumer reads as they are, converting block by block
STREAMED_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8))


def as_streamed_matrix(x, name: str = "x", min_rows: int = 1) -> np.ndarray:
    """``x`` (n, d) unchanged when it is a 2-D array stored as float32, uint8 or int8 (a
    memory map stays mapped, a byte base is never copied to floats whole), else
    :func:`as_matrix` to float32. For consumers that read ``x`` block by block,
    converting and checking for NaN/Inf one block at a time."""
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype in STREAMED_DTYPES:
        if x.shape[0] < min_rows:
            raise InputError(f"{name}: expected at least {min_rows} rows, got {x.shape[0]}")
        return x
    return as_matrix(x, name, min_rows=min_rows, finite=False)


def check_finite(x: np.ndarray, name: str = "x", chunk_rows: int = 65536) -> None:
    """Raise if ``x`` holds NaN or Inf, naming the first offending row.

    Works chunk by chunk so that a memory-mapped array is not copied whole.
    """
    for start in range(0, x.shape[0], chunk_rows):
        block = np.asarray(x[start:start + chunk_rows])
        bad = ~np.isfinite(block)
        if bad.any():
            row = start + int(np.flatnonzero(bad.any(axis=tuple(range(1, block.ndim))))[0])
            kind = "NaN" if np.isnan(block).any() else "Inf"
            raise InputError(f"{name}: contains {kind} (first in row {row})")


def check_positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int in [minimum, maximum], or raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"[{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise InputError(f"{name}: must be {bound}, got {value}")
    return value


def check_path_part(value, name: str) -> str:
    """``value`` as one folder or file name, or raise naming ``name``.

    Names that become part of a path (the sweep's ``name``, ``dataset.name``) may not
    leave the folder they are put in: no path separator, no ``.`` or ``..``, no control
    character (a newline would also escape a comment line of a LaTeX or Markdown report).
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name}: expected a non-empty name, got {value!r}")
    if "/" in value or "\\" in value or value in (".", "..") \
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InputError(f"{name}: {value!r} is not a plain name: it names a folder of the "
                         "results, so it may not hold '/', '\\' or control characters, nor be "
                         "'.' or '..'")
    return value


def check_subspaces(dim: int, M: int) -> int:
    """Return the sub-vector length ``dim // M``, or raise if M does not divide dim."""
    check_positive_int(M, "M", 1, dim)
    if dim % M:
        raise InputError(f"M={M} does not divide the dimension D={dim}")
    return dim // M


def check_codebook_size(n_train: int, n_codewords: int, what: str = "codewords") -> None:
    """Raise if there are fewer training vectors than codewords to learn."""
    if n_train < n_codewords:
        raise InputError(
            f"more {what} ({n_codewords}) than training vectors ({n_train}): "
            f"k-means cannot train them")


def check_k(k: int, n_database: int) -> int:
    """Return k, or raise if it is not in [1, n_database]."""
    check_positive_int(k, "k")
    if k > n_database:
        raise InputError(f"k={k} is larger than the database ({n_database} vectors)")
    return int(k)


def check_labels(labels: np.ndarray, n: int, n_clusters: int) -> np.ndarray:
    """labels as C-contiguous int64 (n,) in [0, n_clusters), or InputError naming what is
    wrong (shape, dtype or range)."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InputError(f"labels: expected shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise InputError(f"labels: expected integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= n_clusters):
        raise InputError(f"labels: values must be in [0, {n_clusters}), "
                         f"got [{labels.min()}, {labels.max()}]")
    return np.ascontiguousarray(labels, dtype=np.int64)
