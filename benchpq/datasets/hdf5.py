"""HDF5 arrays, and the ann-benchmarks file layout.

ann-benchmarks (https://github.com/erikbern/ann-benchmarks) ships each dataset
as one .hdf5 file with datasets ``train`` (n, d), ``test`` (nq, d),
``neighbors`` (nq, k) int ids into train, nearest first, and ``distances``
(nq, k), plus the attribute ``distance`` ("euclidean", "angular", ...).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..checks import InputError
from .reads import note_read

ANN_KEYS = ("train", "test", "neighbors", "distances")

log = logging.getLogger(__name__)


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise InputError("reading .hdf5 files needs h5py: pip install h5py") from None
    return h5py


def _open(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    note_read(path)
    try:
        return _h5py().File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None


def _dataset_array(ds, path: Path, mmap: bool) -> np.ndarray:
    """A dataset as an array; contiguous uncompressed ones are memory-mapped."""
    offset = ds.id.get_offset() if mmap and ds.chunks is None and ds.compression is None else None
    if offset is not None and ds.dtype.kind in "fiub" and ds.size:
        return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
    return ds[()]


def read_hdf5(path, key: str, mmap: bool = True) -> np.ndarray:
    """Read dataset ``key`` of an HDF5 file.

    Args:
        path: .hdf5 / .h5 file.
        key: dataset name inside the file (e.g. ``train``).
        mmap: memory-map contiguous, uncompressed datasets instead of reading them.

    Returns:
        The dataset as an array of its stored dtype and shape.
    """
    path = Path(path)
    with _open(path) as f:
        if key not in f:
            raise InputError(f"{path}: no dataset {key!r} in the file "
                             f"(it has {sorted(f.keys())})")
        ds = f[key]
        if not hasattr(ds, "shape"):
            raise InputError(f"{path}: {key!r} is a group, not a dataset")
        return _dataset_array(ds, path, mmap)


def read_ann_hdf5(path, mmap: bool = True) -> dict:
    """Read an ann-benchmarks file.

    Returns:
        dict with ``train`` (n, d), ``test`` (nq, d), ``neighbors`` (nq, k)
        int64 or None, ``distances`` (nq, k) float32 or None, and
        ``distance`` (str, the metric the neighbours were computed with; a
        file without the attribute is taken as Euclidean, with a warning).
    """
    path = Path(path)
    with _open(path) as f:
        missing = [k for k in ("train", "test") if k not in f]
        if missing:
            raise InputError(f"{path}: not an ann-benchmarks file: no dataset "
                             f"{' or '.join(map(repr, missing))} (it has {sorted(f.keys())})")
        out = {k: (_dataset_array(f[k], path, mmap) if k in f else None) for k in ANN_KEYS}
        distance = f.attrs.get("distance")
    if distance is None:
        log.warning("%s has no 'distance' attribute: taking it as Euclidean (ann-benchmarks "
                    "files name their metric; an angular file read as Euclidean gives wrong "
                    "neighbours)", path)
        distance = "euclidean"
    out["distance"] = distance.decode() if isinstance(distance, bytes) else str(distance)
    if out["neighbors"] is not None:
        out["neighbors"] = np.asarray(out["neighbors"], dtype=np.int64)
        if out["neighbors"].ndim != 2 or out["neighbors"].shape[0] != out["test"].shape[0]:
            raise InputError(f"{path}: 'neighbors' has shape {out['neighbors'].shape}, expected "
                             f"({out['test'].shape[0]}, k) to match 'test'")
    if out["distances"] is not None:
        out["distances"] = np.asarray(out["distances"], dtype=np.float32)
    return out


def write_ann_hdf5(path, train, test, neighbors=None, distances=None,
                   distance: str = "euclidean") -> Path:
    """Write an ann-benchmarks style file (atomically: temp name, then rename).

    Args:
        train: (n, d) float32 database vectors.
        test: (nq, d) float32 queries.
        neighbors: (nq, k) ids into train, nearest first (stored int32 as
            ann-benchmarks does), or None.
        distances: (nq, k) float32 distances for ``neighbors``, or None.
        distance: the metric, stored in the ``distance`` attribute.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _h5py().File(tmp, "w") as f:
            f.attrs["distance"] = distance
            f.create_dataset("train", data=np.asarray(train, dtype=np.float32))
            f.create_dataset("test", data=np.asarray(test, dtype=np.float32))
            if neighbors is not None:
                f.create_dataset("neighbors", data=np.asarray(neighbors, dtype=np.int32))
            if distances is not None:
                f.create_dataset("distances", data=np.asarray(distances, dtype=np.float32))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
