"""One entry point for every supported array file: :func:`read_array`.

=====================  ==========================================  =================
extension              reader                                      result
=====================  ==========================================  =================
.fvecs .ivecs .bvecs   :func:`benchpq.datasets.vecs.read_vecs`     (n, d) memmap view
.npy                   :func:`read_npy` (``mmap_mode='r'``)        stored shape/dtype
.hdf5 .h5              :func:`benchpq.datasets.hdf5.read_hdf5`     dataset ``key``
*-idxN-ubyte[.gz],     :func:`benchpq.datasets.idx.read_idx`       (n, prod(rest))
*.idx[.gz]
=====================  ==========================================  =================

HDF5 keys are given either as ``key=`` or inside the path: ``data.hdf5:train``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import InputError
from .fingerprint import note_read
from .hdf5 import read_hdf5
from .idx import is_idx_path, read_idx
from .vecs import VECS_DTYPES, read_vecs

HDF5_EXTENSIONS = (".hdf5", ".h5")


def read_npy(path, mmap: bool = True) -> np.ndarray:
    """Read a .npy file, memory-mapped read-only by default (no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    note_read(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: not a valid .npy file ({exc})") from None


def split_key(spec) -> tuple[Path, str | None]:
    """Split ``"file.hdf5:train"`` into (Path("file.hdf5"), "train").

    Only a colon after an HDF5 extension counts, so other paths pass unchanged.
    """
    text = str(spec)
    lower = text.lower()
    for ext in HDF5_EXTENSIONS:
        pos = lower.rfind(ext + ":")
        if pos >= 0:
            return Path(text[:pos + len(ext)]), text[pos + len(ext) + 1:] or None
    return Path(text), None


def read_array(path, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Read an array from any supported file, dispatching on the extension.

    Args:
        path: file path, optionally ``file.hdf5:key``.
        key: HDF5 dataset name (overrides one given in the path).
        mmap: memory-map where the format allows it.

    Raises:
        FileNotFoundError: missing file.
        InputError: unsupported extension, missing HDF5 key, malformed file.
    """
    path, path_key = split_key(path)
    key = key or path_key
    ext = path.suffix.lower()
    if ext in VECS_DTYPES:
        return read_vecs(path, mmap=mmap)
    if ext == ".npy":
        return read_npy(path, mmap=mmap)
    if ext in HDF5_EXTENSIONS:
        if not key:
            raise InputError(f"{path}: an HDF5 file needs a dataset key "
                             f"(write '{path}:train' or give key=...)")
        return read_hdf5(path, key, mmap=mmap)
    if is_idx_path(path):
        return read_idx(path)
    raise InputError(f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: "
                     f".fvecs .ivecs .bvecs .npy .hdf5/.h5 (with a key) and IDX "
                     f"(*-idxN-ubyte, *.idx, optionally .gz)")
