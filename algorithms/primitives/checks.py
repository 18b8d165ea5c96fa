"""Input checks specific to quantizers and code clusterers (general ones: :mod:`benchpq.checks`).

Each returns the checked value (an array ready to pass to C++: the exact
dtype, C-contiguous) or raises :class:`benchpq.checks.InputError` naming the
problem.
"""
from __future__ import annotations

import numpy as np

from benchpq.checks import InputError, as_matrix, check_positive_int

from .codes import code_dtype


def plugin_seed(seed) -> int:
    """The seed of a plugin's random draws: None -> 0 (as the nanopq adapter), else an
    integer in [0, 2**64) (our C++ core's generator takes 64 bits, and the drop-ins pass
    their callers' seeds through). A sweep's ``seed`` option is narrower, [0, 2**31 - 1]
    (:func:`benchpq.sweep.options.check_seed`: what a faiss index accepts)."""
    return 0 if seed is None else check_positive_int(seed, "seed", 0, 2 ** 64 - 1)


def check_choice(value, choices, name: str):
    """``value`` if it is one of ``choices`` (a mapping's keys or a sequence), else InputError."""
    if value not in choices:
        raise InputError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value


def check_flag(value, name: str) -> bool:
    """``value`` as a bool, or InputError unless it is true or false (not 0/1, not a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: expected true or false, got {value!r}")
    return bool(value)


def subsample_arg(max_points_per_centroid: int | None, k: int, n: int) -> int:
    """The C++ argument: 0 (train on all n points) unless subsampling leaves fewer than n."""
    mppc = max_points_per_centroid
    return mppc if mppc is not None and mppc * k < n else 0


def check_codes(codes, M: int, Ks: int, name: str = "codes") -> np.ndarray:
    """Return (n, M) codes of dtype ``code_dtype(Ks)`` with values < Ks, C-contiguous, or raise."""
    dtype = code_dtype(Ks)
    if not isinstance(codes, np.ndarray):
        raise InputError(f"{name}: expected a numpy array of {dtype} codes, got "
                         f"{type(codes).__name__}")
    if codes.dtype != dtype:
        raise InputError(f"{name}: expected dtype {dtype} (Ks={Ks}), got {codes.dtype}")
    codes = as_matrix(codes, name, dtype=dtype, dim=M, finite=False)
    if Ks < np.iinfo(dtype).max + 1 and codes.max() >= Ks:
        raise InputError(f"{name}: code {int(codes.max())} out of range for Ks={Ks}")
    return codes


def check_pq_codes(codes, M: int, Ks: int = 256, name: str = "codes") -> np.ndarray:
    """(n, M) uint8 PQ codes with values < Ks, C-contiguous, or InputError (k-means on codes)."""
    if not isinstance(codes, np.ndarray):
        raise InputError(f"{name}: expected a numpy array of uint8 PQ codes, got "
                         f"{type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise InputError(f"{name}: expected dtype uint8 (PQk-means needs Ks <= 256), got "
                         f"{codes.dtype}")
    if codes.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (n, M), got shape {codes.shape}")
    if codes.shape[1] != M:
        raise InputError(f"{name}: code width mismatch, expected M={M} sub-codes, got "
                         f"{codes.shape[1]}")
    if codes.shape[0] < 1:
        raise InputError(f"{name}: empty (shape {codes.shape})")
    codes = np.ascontiguousarray(codes)
    if Ks < 256 and codes.max() >= Ks:
        raise InputError(f"{name}: code {int(codes.max())} out of range for Ks={Ks}")
    return codes


def check_num_bit(num_bit, dim: int | None = None, whole_bytes: bool = True) -> int:
    """num_bit as a positive int <= dim; a multiple of 8 (whole bytes) unless whole_bytes=False."""
    num_bit = check_positive_int(num_bit, "num_bit")
    if whole_bytes and num_bit % 8:
        raise InputError(f"num_bit: must be a multiple of 8 (codes are packed into bytes), "
                         f"got {num_bit}")
    if dim is not None and num_bit > dim:
        raise InputError(f"num_bit={num_bit} exceeds the dimension D={dim}: ITQ projects on "
                         f"num_bit principal directions")
    return num_bit


def check_binary_codes(codes, nbytes: int | None = None, name: str = "codes") -> np.ndarray:
    """Packed binary codes as a C-contiguous (n, nbytes) uint8 array, or raise InputError."""
    if not isinstance(codes, np.ndarray):
        raise InputError(f"{name}: expected a numpy array of packed uint8 codes, got "
                         f"{type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise InputError(f"{name}: expected dtype uint8 (packed bits), got {codes.dtype}")
    if codes.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (n, nbytes), got shape {codes.shape}")
    if nbytes is not None and codes.shape[1] != nbytes:
        raise InputError(f"{name}: code width mismatch, expected {nbytes} bytes "
                         f"({nbytes * 8} bits), got {codes.shape[1]}")
    if codes.shape[0] < 1 or codes.shape[1] < 1:
        raise InputError(f"{name}: empty (shape {codes.shape})")
    return np.ascontiguousarray(codes)


def check_n_clusters(k, n: int) -> int:
    """k as an int in [1, n], or InputError."""
    k = check_positive_int(k, "k")
    if k > n:
        raise InputError(f"k={k} is larger than the number of codes ({n})")
    return k



def check_tables(tables) -> np.ndarray:
    """(M, Ks, Ks) float32 finite tables with Ks <= 256, C-contiguous, or InputError."""
    if not isinstance(tables, np.ndarray) or tables.ndim != 3 or \
            tables.shape[1] != tables.shape[2]:
        raise InputError(f"tables: expected an (M, Ks, Ks) array, got "
                         f"{getattr(tables, 'shape', type(tables).__name__)}")
    if tables.shape[1] > 256 or min(tables.shape) < 1:
        raise InputError(f"tables: PQk-means needs 1 <= Ks <= 256, got shape {tables.shape}")
    tables = np.ascontiguousarray(tables, dtype=np.float32)
    if not np.isfinite(tables).all():
        raise InputError("tables: contains NaN or Inf")
    return tables
