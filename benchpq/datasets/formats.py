"""One entry point for every supported array file: :func:`read_array`, and its table of
formats.

=====================  ==========================================  =================
format                 reader                                      result
=====================  ==========================================  =================
.fvecs .ivecs .bvecs   :func:`benchpq.datasets.vecs.read_vecs`     (n, d) memmap view
.npy                   :func:`read_npy` (``mmap_mode='r'``)        stored shape/dtype
.hdf5 .h5              :func:`benchpq.datasets.hdf5.read_hdf5`     dataset ``key``
*-idxN-ubyte[.gz],     :func:`benchpq.datasets.idx.read_idx`       (n, prod(rest))
*.idx[.gz]
.fbin .u8bin .i8bin    :mod:`benchpq.datasets.bigann_formats`      (n, d) memmap
.ibin (big-ann)
=====================  ==========================================  =================

A file whose name does not tell its format (big-ann ground-truth files) is read by naming
the format: ``read_array(path, fmt=...)``.

HDF5 keys are given either as ``key=`` or inside the path: ``data.hdf5:train``.

:func:`read_array` records every file it opens (:func:`benchpq.datasets.reads.note_read`),
so a dataset's fingerprint covers it whatever the format; loaders read their
array files through it. A new format is one module that registers its reader
with :func:`register_format` (modules of ``benchpq.datasets`` are imported with
the package).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import InputError
from .hdf5 import read_hdf5
from .idx import is_idx_path, read_idx
from .reads import note_read
from .vecs import VECS_DTYPES, read_vecs

HDF5_EXTENSIONS = (".hdf5", ".h5")


@dataclass(frozen=True)
class Format:
    """A file format :func:`read_array` reads.

    Attributes:
        name: what the format is called in messages (e.g. ``.npy``).
        matches: ``matches(path) -> bool``, from the path alone.
        read: ``read(path, key, mmap) -> array``; ``key`` is the HDF5-style key or None.
    """

    name: str
    matches: Callable[[Path], bool]
    read: Callable[[Path, str | None, bool], np.ndarray]


#: the formats :func:`read_array` knows, tried in order
FORMATS: list[Format] = []


def register_format(name: str, matches: Callable[[Path], bool]):
    """Decorator: ``read(path, key, mmap)`` reads files that ``matches(path)``."""
    def add(read):
        if any(f.name == name for f in FORMATS):
            raise ValueError(f"file format {name!r} is already registered")
        FORMATS.append(Format(name, matches, read))
        return read
    return add


def read_npy(path, mmap: bool = True) -> np.ndarray:
    """Read a .npy file, memory-mapped read-only by default (no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
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


@register_format(".fvecs .ivecs .bvecs", lambda path: path.suffix.lower() in VECS_DTYPES)
def _vecs(path: Path, key, mmap: bool) -> np.ndarray:
    return read_vecs(path, mmap=mmap)


@register_format(".npy", lambda path: path.suffix.lower() == ".npy")
def _npy(path: Path, key, mmap: bool) -> np.ndarray:
    return read_npy(path, mmap=mmap)


@register_format(".hdf5/.h5 (with a key)", lambda path: path.suffix.lower() in HDF5_EXTENSIONS)
def _hdf5(path: Path, key, mmap: bool) -> np.ndarray:
    if not key:
        raise InputError(f"{path}: an HDF5 file needs a dataset key "
                         f"(write '{path}:train' or give key=...)")
    return read_hdf5(path, key, mmap=mmap)


@register_format("IDX (*-idxN-ubyte, *.idx, optionally .gz)", is_idx_path)
def _idx(path: Path, key, mmap: bool) -> np.ndarray:
    return read_idx(path)


def find_format(path: Path, fmt: str | None = None) -> Format:
    """The format named ``fmt``, else the first of :data:`FORMATS` that matches ``path``."""
    if fmt is not None:
        for known in FORMATS:
            if known.name == fmt:
                return known
        raise InputError(f"{path}: no file format named {fmt!r}; known: "
                         f"{', '.join(repr(f.name) for f in FORMATS)}")
    for known in FORMATS:
        if known.matches(path):
            return known
    raise InputError(f"{path}: unsupported file type {path.suffix.lower() or '(no extension)'!r}; "
                     f"supported: {', '.join(f.name for f in FORMATS)}")


def read_array(path, key: str | None = None, mmap: bool = True,
               fmt: str | None = None) -> np.ndarray:
    """Read an array from any supported file (the format named ``fmt``, else the first of
    :data:`FORMATS` that matches the path), recording the read for the dataset's
    fingerprint.

    Args:
        path: file path, optionally ``file.hdf5:key``.
        key: HDF5 dataset name (overrides one given in the path), or the part of a
            multi-part file (a big-ann ground-truth file's ``ids`` or ``distances``).
        mmap: memory-map where the format allows it.
        fmt: a registered format's name, for files whose name does not tell it.

    Raises:
        FileNotFoundError: missing file.
        InputError: unsupported extension or format name, missing HDF5 key, malformed file.
    """
    path, path_key = split_key(path)
    out = find_format(path, fmt).read(path, key or path_key, mmap)
    note_read(path)
    return out


def array_shape(path, key: str | None = None, fmt: str | None = None) -> tuple[int, ...]:
    """The shape of the array :func:`read_array` would return, without recording a read
    (for checking a download before it is put in place)."""
    path, path_key = split_key(path)
    return tuple(find_format(path, fmt).read(path, key or path_key, True).shape)
